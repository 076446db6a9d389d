"""Quantisation-aware fine-tuning: the fake quantisation simulates the int8 TFLite model the
export writes, and a QAT run starts from a checkpoint and writes a plain float checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoints import train_tiny_checkpoint

from ferops.data.synthetic import generate
from ferops.models import build_model
from ferops.models.checkpoint import DeployableModel, load_deployable
from ferops.models.preprocess import Preprocess, preprocessing_dict
from ferops.training import qat

CLASSES = ["angry", "happy", "surprise"]


def test_sites_are_where_tflite_requantises():
    """fer_vgg: after each fused conv + BN + ReLU, the global average pool and the classifier; timm's fused norm + act
    modules are one site each; a residual block's last BN (before the add) is one too."""
    vgg = build_model(name="fer_vgg", num_classes=3, in_chans=1)
    names = {id(m): k for k, m in vgg.named_modules()}
    sites = [names[id(m)] for m in qat.activation_sites(vgg, torch.zeros(2, 1, 48, 48))]
    relus = [k for k, m in vgg.named_modules() if isinstance(m, torch.nn.ReLU)]
    assert sites == [*relus, "backbone.pool", "head.layers.0"]  # MEAN requantises too

    mobile = build_model(name="mobilenetv3_small_100", num_classes=3, in_chans=1, pretrained=False)
    kinds = {type(m).__name__ for m in qat.activation_sites(mobile, torch.zeros(2, 1, 48, 48))}
    assert "BatchNormAct2d" in kinds and "Conv2d" not in kinds
    resnet = build_model(name="fer_resnet", num_classes=3, in_chans=1)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in qat.activation_sites(resnet, torch.zeros(2, 1, 48, 48)))


def test_weight_fake_quant_is_tflite_per_channel_symmetric():
    w = torch.randn(4, 3, 3, 3)
    q = qat.PerChannelWeightFakeQuant()(w)
    scale = w.abs().flatten(1).amax(1) / 127
    ints = q / scale[:, None, None, None]
    np.testing.assert_allclose(ints, ints.round(), atol=1e-4)  # on the int8 grid of its channel
    assert ints.abs().max() <= 127 + 1e-4 and (q - w).abs().max() <= scale.max() / 2 + 1e-6


@pytest.fixture(scope="module")
def small_model():
    """A small fer_vgg trained a few hundred steps on synthetic faces, as a deployable module."""
    torch.manual_seed(0)
    images, labels = generate(120, seed=2, class_names=CLASSES)
    pre = preprocessing_dict(48, 1, [0.5], [0.25])
    net = build_model(name="fer_vgg", num_classes=3, in_chans=1, backbone_kwargs={"widths": [8, 16, 32, 32]})
    model = DeployableModel(Preprocess.from_dict(pre), net)
    x, y = torch.from_numpy(images[:, None].astype(np.float32)), torch.from_numpy(labels)
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        idx = torch.randint(0, len(y), (48,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    meta = {"class_names": CLASSES, "preprocessing": pre, "model_name": "fer_vgg", "config": {}}
    return model.eval(), meta, images, labels


def test_fake_quantisation_simulates_the_int8_tflite_error(small_model, tmp_path):
    """The point of QAT: training sees what the int8 file computes. On held-out faces the logit
    error the fake quantisation introduces (fake-quantised minus float) has the size of the
    exported int8 model's error and points the same way (positive correlation). It is close, not
    exact: the converter's own calibration subset gives slightly other ranges, and the rounding of
    the preprocessing ops and of ties is TFLite's (measured: correlation 0.32, size ratio 0.84)."""
    import copy

    from ferops.export import run_export
    from ferops.runtime import BundleModel

    model, meta, images, labels = small_model
    calib, held_out = images[::2], images[1::2]
    cfg = {"n_calibration": len(calib), "n_latency_runs": 3, "n_latency_warmup": 1, "progress": False}
    cfg |= {"edgetpu_compiler": "off", "gates": {"enforce": False}}
    report = run_export(model, meta, calib, labels[::2], held_out, labels[1::2], tmp_path / "export", cfg)
    bundle = BundleModel(report["bundle_dir"])
    assert not bundle.softmax_in_model
    int8 = bundle.predict_logits(held_out)

    fq = copy.deepcopy(model)
    handles = qat.prepare_qat(fq.net, fq.preprocess(torch.zeros(2, 1, 48, 48)), momentum=1.0)
    fq.train()
    qat.freeze_batch_norm(fq)
    x = torch.from_numpy(held_out[:, None].astype(np.float32))
    with torch.no_grad():
        fq(torch.from_numpy(calib[:, None].astype(np.float32)))  # activation ranges: the calibration set's
        fq.eval()
        simulated, exact = fq(x).numpy(), model(x).numpy()
    assert len(handles.activations) == 10 and all(bool(a.seen) for a in handles.activations)
    sim_err, int8_err = (simulated - exact).ravel(), (int8 - exact).ravel()
    assert np.corrcoef(sim_err, int8_err)[0, 1] > 0.2
    assert 0.5 < np.abs(sim_err).mean() / np.abs(int8_err).mean() < 2.0


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    return train_tiny_checkpoint(tmp_path_factory.mktemp("fp32"), [])


def test_a_qat_run_starts_from_a_checkpoint_and_writes_a_float_one(tmp_path, fp32):
    tuned = train_tiny_checkpoint(tmp_path / "qat", ["qat.enabled=true", f"qat.from={fp32}", "qat.epochs=1"])
    before, _ = load_deployable(fp32)
    after, meta = load_deployable(tuned)  # plain float keys: the export loads it as any checkpoint
    assert meta["qat"]["from"] == str(fp32) and meta["qat"]["epochs"] == 1
    assert meta["config"]["optim"]["ema_decay"] == 0.0 and meta["config"]["trainer"]["max_epochs"] == 1
    changed = [
        not torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()) if a.is_floating_point()
    ]
    assert any(changed), "the fine-tune changed no weight"
    # batch norms were frozen: their running statistics are the checkpoint's
    stats = {k: v for k, v in before.state_dict().items() if k.endswith(("running_mean", "running_var"))}
    assert all(torch.equal(v, after.state_dict()[k]) for k, v in stats.items())

    # exported through the same chain; the bundle says how its weights met int8
    from ferops.data.constants import FER_CLASSES
    from ferops.export import run_export

    images, labels = generate(12, seed=4, class_names=FER_CLASSES)
    cfg = {"n_calibration": 48, "n_latency_runs": 3, "n_latency_warmup": 1, "progress": False, "edgetpu_compiler": "off"}
    report = run_export(after, meta, images, labels, images, labels, tmp_path / "export", cfg | {"gates": {"enforce": False}})
    recorded = json.loads((Path(report["bundle_dir"]) / "model_metadata.json").read_text())["quantization"]
    assert recorded["method"].startswith("quantisation-aware fine-tune") and recorded["qat"]["from"] == str(fp32)


def test_qat_refuses_a_checkpoint_of_other_classes_and_a_missing_one(tmp_path, fp32):
    with pytest.raises(ValueError, match=r"its class names .* differ from this run's"):
        train_tiny_checkpoint(tmp_path / "q", ["qat.enabled=true", f"qat.from={fp32}", "data/class_map=fer5"])
    with pytest.raises(ValueError, match=r"needs qat\.from=CKPT"):
        qat.QATConfig.from_mapping({"enabled": True})
    with pytest.raises(ValueError, match="unknown keys"):
        qat.QATConfig.from_mapping({"enabeld": True})
    with pytest.raises(FileNotFoundError):
        train_tiny_checkpoint(tmp_path / "q2", ["qat.enabled=true", f"qat.from={Path(tmp_path) / 'none.ckpt'}"])
