"""Grad-CAM / Grad-CAM++ panels (ferops.evaluation.explain, python -m ferops.explain): the maps land
on the region a trained model uses, the target layer follows the documented rule, and the CLI
writes a panel per class from a checkpoint it loads safely."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoints import Payload, train_tiny_checkpoint
from torch import nn

from ferops.evaluation.explain import (
    CAM_METHODS,
    choose_probes,
    class_activation_maps,
    find_target_layer,
    write_explanations,
)
from ferops.explain import main as explain_main
from ferops.models import build_model
from ferops.models.checkpoint import DeployableModel, UnsafeCheckpointError
from ferops.models.preprocess import Preprocess
from fixtures_data import write_fer2013_csv

# The cue: a stripe patch in the mouth region, horizontal for class 0 and vertical for class 1. Two
# distractor patches of the same contrast (random orientation, no class information) sit where the
# eyes are, so a model that merely reacts to contrast, not to the cue, spreads its map over them too.
PATCH_H, PATCH_W = 8, 16
MOUTH, EYES = (34, 16), ((8, 2), (8, 30))


def _stripes(horizontal: bool) -> np.ndarray:
    k = np.arange(PATCH_H)[:, None] if horizontal else np.arange(PATCH_W)[None, :]
    return np.broadcast_to(np.where((k // 2) % 2 == 0, 70.0, -70.0), (PATCH_H, PATCH_W))


def cue_faces(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """uint8 images [n, 48, 48], labels [n] (0 / 1), and bool masks [n, 48, 48] of the cue and the distractors."""
    rng = np.random.default_rng(seed)
    images = rng.normal(120, 20, (n, 48, 48))
    labels = rng.integers(0, 2, n)
    cue, distractors = np.zeros((n, 48, 48), bool), np.zeros((n, 48, 48), bool)
    for i in range(n):
        r, c = MOUTH[0] + rng.integers(-2, 3), MOUTH[1] + rng.integers(-2, 3)
        images[i, r : r + PATCH_H, c : c + PATCH_W] += _stripes(labels[i] == 0)
        cue[i, r : r + PATCH_H, c : c + PATCH_W] = True
        for r0, c0 in EYES:
            r, c = r0 + rng.integers(-2, 3), c0 + rng.integers(0, 3)
            images[i, r : r + PATCH_H, c : c + PATCH_W] += _stripes(bool(rng.random() < 0.5))
            distractors[i, r : r + PATCH_H, c : c + PATCH_W] = True
    return np.clip(images, 0, 255).astype(np.uint8), labels, cue, distractors


def tiny_vgg(num_classes: int) -> DeployableModel:
    """fer_vgg with small widths; four stages, so its last conv block is at 6x6 like the default."""
    net = build_model("fer_vgg", num_classes, backbone_kwargs={"widths": [8, 16, 16, 32], "convs_per_stage": 1})
    return DeployableModel(Preprocess(), net)


def concentration(model: nn.Module, method: str) -> dict[str, float]:
    """Over the correctly classified held-out faces: the mean CAM in the cue over the mean CAM outside
    it, and over the mean CAM on the distractors; and the accuracy."""
    images, labels, cue, distractors = cue_faces(64, seed=1)
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(images).unsqueeze(1).float()).argmax(1).numpy()
    right = np.flatnonzero(pred == labels)
    cams = class_activation_maps(model, images[right], pred[right].tolist(), find_target_layer(model), method)
    inside = np.mean([cam[m].mean() for cam, m in zip(cams, cue[right])])
    outside = np.mean([cam[~m].mean() for cam, m in zip(cams, cue[right])])
    on_distractors = np.mean([cam[m].mean() for cam, m in zip(cams, distractors[right])])
    return {
        "accuracy": float(len(right) / len(labels)),
        "vs_outside": float(inside / outside),
        "vs_distractors": float(inside / on_distractors),
    }


@pytest.fixture(scope="module")
def cue_model() -> DeployableModel:
    """tiny_vgg trained (under a second) until it reads the cue."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a net this small trains fastest on one thread (20x faster on a busy machine)
    try:
        torch.manual_seed(0)
        model = tiny_vgg(2)
        images, labels, _, _ = cue_faces(512, seed=0)
        x, y = torch.from_numpy(images).unsqueeze(1).float(), torch.from_numpy(labels)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        batches = torch.Generator().manual_seed(0)
        model.train()
        for _ in range(40):
            idx = torch.randint(0, len(x), (32,), generator=batches)
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


@pytest.mark.parametrize("method", list(CAM_METHODS))
def test_cams_of_a_trained_model_concentrate_on_the_cue(cue_model, method):
    scores = concentration(cue_model, method)
    assert scores["accuracy"] >= 0.9, scores
    assert scores["vs_outside"] > 1.5, scores
    assert scores["vs_distractors"] > 2.0, scores


@pytest.mark.parametrize("method", list(CAM_METHODS))
def test_the_concentration_check_fails_on_an_untrained_model(method):
    # The same check on random weights: maps follow contrast (the distractors as much as the cue).
    torch.manual_seed(0)
    scores = concentration(tiny_vgg(2).eval(), method)
    assert scores["vs_outside"] < 1.5 or scores["vs_distractors"] < 2.0, scores


def test_cams_leave_no_gradients_and_run_under_no_grad(cue_model):
    images, labels, _, _ = cue_faces(4, seed=2)
    with torch.no_grad():
        cams = class_activation_maps(cue_model, images, labels.tolist(), find_target_layer(cue_model), "gradcam")
    assert cams.shape == (4, 48, 48) and cams.dtype == np.float32
    assert cams.min() >= 0.0 and cams.max() <= 1.0
    assert all(p.grad is None for p in cue_model.parameters())


# ----------------------------------------------------------------------------- target layer


def _output_size(model: nn.Module, module: nn.Module) -> tuple[int, int]:
    seen: list[tuple[int, int]] = []
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[-2:])))
    with torch.no_grad():
        model(torch.zeros(1, 1, 48, 48))
    handle.remove()
    return seen[0]


def test_fer_vgg_target_is_the_last_conv_block_before_the_last_pooling():
    model = DeployableModel(Preprocess(), build_model("fer_vgg", 7)).eval()  # default widths: ends at 3x3
    layer = find_target_layer(model)
    features = model.net.backbone.features
    assert isinstance(features[-1], nn.MaxPool2d)
    assert layer.module is features[-2], layer.name
    assert layer.name == f"net.backbone.features.{len(features) - 2}"
    assert layer.map_size == (6, 6) == _output_size(model, layer.module)
    assert _output_size(model, features[-1]) == (3, 3)


@pytest.mark.parametrize(
    ("name", "input_size", "in_chans", "expected", "size"),
    [
        ("fer_resnet", 48, 1, "net.backbone.stages.3", (6, 6)),
        ("resnet18", 48, 1, "net.backbone.layer2.1", (6, 6)),  # layer3 is 3x3
        ("resnet18", 224, 3, "net.backbone.layer4.1", (7, 7)),  # resized to 224 inside the model
        ("mobilenetv3_small_100", 48, 1, "net.backbone.blocks.1.1", (6, 6)),  # blocks.2 is 3x3
    ],
)
def test_cnn_target_is_the_last_stage_of_at_least_6x6(name, input_size, in_chans, expected, size):
    model = DeployableModel(Preprocess(input_size, in_chans), build_model(name, 7, in_chans=in_chans)).eval()
    layer = find_target_layer(model)
    assert (layer.name, layer.map_size) == (expected, size)
    assert _output_size(model, layer.module) == size


def test_a_token_backbone_is_refused_with_a_clear_error():
    model = DeployableModel(Preprocess(224, 3), build_model("vit_tiny_patch16_224", 7, in_chans=3)).eval()
    with pytest.raises(ValueError, match=r"token sequences after 'net\.backbone\.patch_embed\.proj'.*CNN backbones only"):
        find_target_layer(model)


# ----------------------------------------------------------------------------- probes and files


def test_probes_are_half_correct_half_wrong_seeded_and_filled_in():
    y_true = np.array([0] * 10 + [1] * 10 + [2] * 3)
    y_pred = np.array([0] * 9 + [1] + [1] * 2 + [0] * 8 + [2] * 3)  # class 0: 9 right; class 1: 2 right; class 2: 0 wrong
    probes = choose_probes(y_true, y_pred, 4, per_class=4, seed=3)
    kinds = [(y_pred[p] == y_true[p]).tolist() for p in probes]
    assert kinds == [[True, True, True, False], [True, True, False, False], [True, True, True], []]
    assert all((y_true[p] == c).all() for c, p in enumerate(probes))
    again = choose_probes(y_true, y_pred, 4, per_class=4, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(probes, again))
    assert any(not np.array_equal(a, b) for a, b in zip(probes, choose_probes(y_true, y_pred, 4, per_class=4, seed=4)))


def test_write_explanations_writes_a_panel_per_class_and_the_index(cue_model, tmp_path):
    images, labels, _, _ = cue_faces(12, seed=3)
    with torch.no_grad():
        probs = cue_model(torch.from_numpy(images).unsqueeze(1).float()).softmax(-1).numpy()
    ids = [f"cue:{i}" for i in range(len(images))]
    index = write_explanations(cue_model, images, labels, probs, ["horizontal", "vertical"], tmp_path, per_class=2, ids=ids)
    assert json.loads((tmp_path / "index.json").read_text()) == index
    assert [c["file"] for c in index["classes"]] == ["0_horizontal.png", "1_vertical.png"]
    assert all((tmp_path / c["file"]).stat().st_size > 0 for c in index["classes"])
    assert index["target_layer"]["map_size"] == [6, 6]
    probe = index["classes"][0]["probes"][0]
    assert probe["id"] == ids[probe["row"]] and probe["true"] == "horizontal"


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A checkpoint of the training code (smoke preset, tiny settings, small fer_vgg)."""
    return train_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), ["model.backbone_kwargs.widths=[8,8,16,16]"])


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory) -> Path:
    rows = [
        (label, usage, 100 * i + 10 * label + k)
        for i, usage in enumerate(["Training", "PublicTest"])
        for label in range(7)
        for k in range(3)
    ]
    return write_fer2013_csv(tmp_path_factory.mktemp("csv") / "fer2013.csv", rows)


def test_cli_writes_one_panel_per_class_and_an_index(tiny_ckpt, tiny_csv, tmp_path, capsys):
    out = tmp_path / "explain"
    explain_main([str(tiny_ckpt), str(tiny_csv), "--usage", "PublicTest", "--per-class", "2", "--seed", "1", "--out", str(out)])
    index = json.loads((out / "index.json").read_text())
    classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert [c["class"] for c in index["classes"]] == classes
    assert sorted(p.name for p in out.glob("*.png")) == sorted(c["file"] for c in index["classes"])
    assert all(len(c["probes"]) == 2 for c in index["classes"])  # 3 PublicTest rows per class
    assert index["seed"] == 1 and index["target_layer"]["map_size"] == [6, 6]
    assert index["target_layer"]["name"] in capsys.readouterr().out


def test_cli_refuses_a_tampered_checkpoint_without_running_it(tiny_ckpt, tiny_csv, tmp_path):
    marker = tmp_path / "payload-ran"
    ckpt = torch.load(tiny_ckpt, map_location="cpu", weights_only=True)
    ckpt["callbacks"]["Evil"] = {"state": Payload(f"open({str(marker)!r}, 'w').write('ran')")}
    evil = tmp_path / "evil.ckpt"
    torch.save(ckpt, evil)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.ckpt: refusing to load"):
        explain_main([str(evil), str(tiny_csv), "--out", str(tmp_path / "out")])
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_directory_as_checkpoint(tmp_path, tiny_csv, capsys):
    with pytest.raises(SystemExit):
        explain_main([str(tmp_path), str(tiny_csv)])
    assert "not a checkpoint file" in capsys.readouterr().err
