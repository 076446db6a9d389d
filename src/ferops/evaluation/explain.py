"""Where the model looks: Grad-CAM and Grad-CAM++ panels of a fixed, seeded set of probe faces.

The CAMs come from the ``grad-cam`` package (``pytorch_grad_cam``); nothing here re-derives them.
Each map explains the logit of the *predicted* class (what drove the decision, right or wrong),
at one target layer chosen by :func:`find_target_layer`:

    the last stage whose activation map is still at least ``MIN_CAM_SIZE`` x ``MIN_CAM_SIZE``
    (6x6) for a 48x48 face: the map that the downsampling below 6x6 takes, found by a
    forward-hook probe of every module's input and output shapes (no layer names).

On our ``fer_vgg`` that is the last conv block, before the last pooling (6x6; the final map is
3x3, too coarse to tell a mouth from a nose); on ``fer_resnet`` (stride-2 stages, 48 -> 6) the
last stage; on timm CNNs (resnet18, mobilenetv3, efficientnet: stride 32, 2x2 or less at 48x48)
the last block at 6x6, i.e. stride 8 (layer4 at 7x7 when ``input_size`` resizes to 224).
A 6x6 map has 8x8-pixel cells at 48x48: enough to separate mouth, eyes and brows.

Files of :func:`write_explanations` (in ``out_dir``): one PNG per class (rows: its probes;
columns: face, Grad-CAM overlay, Grad-CAM++ overlay; true / predicted class and probability),
and ``index.json`` (the files, the layer, the seed, every probe's row, id and prediction).
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from ferops.data.constants import IMAGE_SIZE
from ferops.evaluation.figures import check_images, finish, new_figure, show_face, text_figure

__all__ = [
    "CAM_METHODS",
    "MIN_CAM_SIZE",
    "TargetLayer",
    "choose_probes",
    "class_activation_maps",
    "find_target_layer",
    "plot_class_explanations",
    "write_explanations",
]

MIN_CAM_SIZE = 6
# name in files and index.json -> (grad-cam class, column title)
CAM_METHODS: dict[str, tuple[type[BaseCAM], str]] = {
    "gradcam": (GradCAM, "Grad-CAM"),
    "gradcam++": (GradCAMPlusPlus, "Grad-CAM++"),
}
DEFAULT_PER_CLASS = 4  # 2 correct + 2 wrong where the class has them
DEFAULT_SEED = 0
TARGET_LAYER_RULE = (
    f"the last stage's output of at least {MIN_CAM_SIZE}x{MIN_CAM_SIZE} at 48x48 input: the input of the "
    "downsampling that takes the map below that size, found by a forward-hook probe (the innermost "
    "conv-holding module returning it); without one, the last such map"
)


@dataclass(frozen=True)
class TargetLayer:
    """The layer the CAMs are computed at: its qualified name in the model, the module, its map size."""

    name: str
    module: nn.Module
    map_size: tuple[int, int]


def _holds_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


@dataclass
class _Call:
    """One module call of the probe: its name, when it started and ended, its first input and output."""

    name: str
    module: nn.Module
    start: int
    input: Any
    end: int = -1
    output: Any = None


def _is_map(t: Any, min_size: int, max_size: float = float("inf")) -> bool:
    return isinstance(t, torch.Tensor) and t.ndim == 4 and min_size <= min(t.shape[-2:]) < max_size


def _probe(model: nn.Module, image_size: int) -> list[_Call]:
    """Every module call of one forward pass of a blank face, in the order the calls ended."""
    calls: list[_Call] = []
    open_calls: list[_Call] = []  # module calls nest, so the innermost open one ends first
    order = itertools.count()
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def started(module: nn.Module, args: tuple, name: str = name) -> None:
            open_calls.append(_Call(name, module, next(order), args[0] if args else None))

        def ended(_module: nn.Module, _args: tuple, output: Any) -> None:
            call = open_calls.pop()
            call.end, call.output = next(order), output
            calls.append(call)

        handles += [module.register_forward_pre_hook(started), module.register_forward_hook(ended)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 1, image_size, image_size))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return calls


def find_target_layer(model: nn.Module, image_size: int = IMAGE_SIZE, min_size: int = MIN_CAM_SIZE) -> TargetLayer:
    """The CAM layer of ``model`` (float [B, 1, S, S] 0..255 -> logits) by the module docstring's rule.

    A forward-hook probe of a blank ``image_size`` face records every module call. The module calls
    that take a map of at least ``min_size`` to a smaller one (not to 1x1: that is a global or
    squeeze-excite pooling) and whose input is a conv-holding module's output mark the last stage
    at ``min_size`` or more: the latest such input is the map, and the target is the innermost
    conv-holding module that returned it (the block, not its stage; a module run twice is skipped:
    grad-cam would record two activations). Without such a downsampling (e.g. 7x7 at 224x224
    before global pooling) the last conv-holding module's map of at least ``min_size`` is used.
    """
    calls = _probe(model, image_size)
    runs = Counter(c.name for c in calls)
    conv_calls = [c for c in calls if runs[c.name] == 1 and _holds_conv(c.module)]  # in the order they ended
    downsamplings = [c for c in calls if _is_map(c.input, min_size) and _is_map(c.output, 2, min_size)]
    # A container of several stages downsamples too; its input is an earlier map, or no conv's output.
    stage_outputs = [next((c for c in conv_calls if c.output is d.input), None) for d in downsamplings]
    producers = [c for c in stage_outputs if c is not None]
    last_map = max(producers, key=lambda c: c.end).output if producers else None
    if last_map is None:
        last_map = next((c.output for c in reversed(conv_calls) if _is_map(c.output, min_size)), None)
    if last_map is None:
        raise ValueError(
            f"{type(model).__name__}: no convolutional activation map of at least {min_size}x{min_size} at "
            f"{image_size}x{image_size} input; Grad-CAM needs a CNN backbone"
        )
    chosen = next(c for c in conv_calls if c.output is last_map)
    if any(c.end > chosen.end and isinstance(c.output, torch.Tensor) and c.output.ndim == 3 for c in conv_calls):
        # ViT-style backbones turn the patch-embedding map into tokens: their CAM needs a token
        # reshape, and a CAM of the patch embedding itself says nothing about the decision.
        raise ValueError(
            f"{type(model).__name__}: the backbone works on token sequences after {chosen.name!r}; "
            "Grad-CAM panels support CNN backbones only"
        )
    return TargetLayer(chosen.name, chosen.module, (int(last_map.shape[-2]), int(last_map.shape[-1])))


def class_activation_maps(
    model: nn.Module, images: np.ndarray, classes: Sequence[int], layer: TargetLayer, method: str, batch_size: int = 64
) -> np.ndarray:
    """float32 [N, H, W] in 0..1 (each map scaled to its own maximum by grad-cam): ``method``'s
    (a key of `CAM_METHODS`) map of ``classes[i]``'s logit for uint8 ``images [N, H, W]``."""
    imgs = check_images(images)
    if len(classes) != len(imgs):
        raise ValueError(f"{len(imgs)} images but {len(classes)} target classes")
    cam_class = CAM_METHODS[method][0]
    cam = cam_class(model=model, target_layers=[layer.module])
    out = []
    try:  # not `with cam`: its __exit__ swallows IndexErrors
        with torch.enable_grad():  # callers may run under no_grad
            for start in range(0, len(imgs), batch_size):
                x = torch.from_numpy(np.ascontiguousarray(imgs[start : start + batch_size])).unsqueeze(1).float()
                targets = [ClassifierOutputTarget(int(c)) for c in classes[start : start + batch_size]]
                out.append(cam(input_tensor=x, targets=targets).astype(np.float32))
    finally:
        cam.activations_and_grads.release()
        model.zero_grad(set_to_none=True)  # grad-cam's backward leaves .grad on every parameter
    return np.concatenate(out) if out else np.zeros((0, *imgs.shape[1:]), np.float32)


def choose_probes(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, per_class: int, seed: int) -> list[np.ndarray]:
    """Row indices of each true class's probes: half correct, half wrong (the other kind fills in
    where one runs short), correct first, drawn with a generator seeded by (``seed``, class), so a
    class's probes do not depend on the other classes."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    probes = []
    for c in range(n_classes):
        rows = np.flatnonzero(y_true == c)
        right, wrong = rows[y_pred[rows] == c], rows[y_pred[rows] != c]
        n_wrong = min(len(wrong), per_class - min(len(right), per_class - per_class // 2))
        n_right = min(len(right), per_class - n_wrong)
        rng = np.random.default_rng([seed, c])
        picked = [np.sort(rng.choice(group, n, replace=False)) for group, n in ((right, n_right), (wrong, n_wrong))]
        probes.append(np.concatenate(picked).astype(np.int64))
    return probes


def plot_class_explanations(
    images: np.ndarray,
    cams: dict[str, np.ndarray],
    y_true: np.ndarray,
    y_pred: np.ndarray,
    confidence: np.ndarray,
    class_names: Sequence[str],
    title: str,
    row_labels: Sequence[str] | None = None,
    out_path: str | Path | None = None,
) -> Figure:
    """One row per face: the face, then each ``cams`` map (a `CAM_METHODS` key -> [N, H, W] in 0..1)
    over it; each face titled with its true and predicted class and the predicted probability."""
    imgs = check_images(images)
    if len(imgs) == 0:
        return finish(text_figure("no images of this class", title), out_path)
    n_cols = 1 + len(cams)
    tile = 1.9
    fig = new_figure((tile * n_cols, tile * len(imgs) + 0.7))
    grid = fig.add_gridspec(len(imgs), n_cols, left=0.02, right=0.98, bottom=0.01, top=1 - 0.7 / (tile * len(imgs) + 0.7))
    for r in range(len(imgs)):
        correct = y_true[r] == y_pred[r]
        ax = fig.add_subplot(grid[r, 0])
        show_face(ax, imgs[r])
        label = f"{row_labels[r]}  " if row_labels is not None else ""
        ax.set_title(
            f"{label}true: {class_names[y_true[r]]}\npred: {class_names[y_pred[r]]} {confidence[r]:.2f}",
            fontsize=7.5,
            color="#006400" if correct else "#8B0000",
            pad=3,
        )
        for c, (method, maps) in enumerate(cams.items(), start=1):
            ax = fig.add_subplot(grid[r, c])
            show_face(ax, imgs[r])
            ax.imshow(maps[r], cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0, interpolation="bilinear")
            if r == 0:
                ax.set_title(CAM_METHODS[method][1], fontsize=9, pad=3)
    fig.suptitle(title, fontsize=9)
    return finish(fig, out_path)


def _file_name(index: int, class_name: str) -> str:
    return f"{index}_{re.sub(r'[^A-Za-z0-9_-]+', '_', class_name)}.png"


def write_explanations(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    out_dir: str | Path,
    per_class: int = DEFAULT_PER_CLASS,
    seed: int = DEFAULT_SEED,
    ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The panels of ``model`` (float [B, 1, 48, 48] 0..255 -> logits) on uint8 ``images [N, 48, 48]``
    with true ``labels [N]`` and the model's ``probs [N, C]``; writes one PNG per class and
    ``index.json`` into ``out_dir`` and returns the index."""
    imgs = check_images(images)
    y_true = np.asarray(labels).astype(np.int64).ravel()
    probs = np.asarray(probs)
    if not (len(imgs) == len(y_true) == len(probs)) or probs.ndim != 2 or probs.shape[1] != len(class_names):
        raise ValueError(
            f"images {imgs.shape}, labels {y_true.shape} and probs {probs.shape} do not match each other "
            f"and the {len(class_names)} classes"
        )
    y_pred = probs.argmax(1)
    confidence = probs[np.arange(len(probs)), y_pred]
    layer = find_target_layer(model, image_size=imgs.shape[-1])
    probes = choose_probes(y_true, y_pred, len(class_names), per_class, seed)
    rows = np.concatenate(probes)
    cams = {m: class_activation_maps(model, imgs[rows], y_pred[rows].tolist(), layer, m) for m in CAM_METHODS}

    out = Path(out_dir)
    classes, start = [], 0
    for c, picked in enumerate(probes):
        sl = slice(start, start + len(picked))
        start += len(picked)
        file = _file_name(c, class_names[c])
        plot_class_explanations(
            imgs[picked],
            {m: maps[sl] for m, maps in cams.items()},
            y_true[picked],
            y_pred[picked],
            confidence[picked],
            class_names,
            title=f"{class_names[c]}\nevidence for the predicted class at {layer.name} ({layer.map_size[0]}x{layer.map_size[1]})",
            row_labels=[f"#{i}" for i in picked],
            out_path=out / file,
        )
        classes.append(
            {
                "class": class_names[c],
                "file": file,
                "probes": [
                    {
                        "row": int(i),
                        **({"id": str(ids[i])} if ids is not None else {}),
                        "true": class_names[y_true[i]],
                        "predicted": class_names[y_pred[i]],
                        "probability": round(float(confidence[i]), 4),
                        "correct": bool(y_true[i] == y_pred[i]),
                    }
                    for i in picked
                ],
            }
        )
    index = {
        "methods": {m: title for m, (_, title) in CAM_METHODS.items()},
        "explained": "the logit of the predicted class",
        "target_layer": {"name": layer.name, "map_size": list(layer.map_size), "rule": TARGET_LAYER_RULE},
        "seed": seed,
        "per_class": per_class,
        "classes": classes,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return index
