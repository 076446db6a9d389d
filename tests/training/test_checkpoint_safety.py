"""Opening a checkpoint someone hands you runs nothing it carries: weights-only unpickling,
an allow-list for the model config's `_target_`s, and a rebuild without pretrained weights."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from checkpoints import Payload, train_tiny_checkpoint

from ferops.models.checkpoint import UnsafeCheckpointError, load_deployable


@pytest.fixture(scope="module")
def real_ckpt(tmp_path_factory) -> Path:
    """A real checkpoint of the training code (fer_vgg, EMA), trained once for this module."""
    return train_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), ["optim.ema_decay=0.9"])


def _tampered(src: Path, dest: Path, edit) -> Path:
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    edit(ckpt)
    torch.save(ckpt, dest)
    return dest


def _touch_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('payload ran')"


def test_real_checkpoint_needs_no_unsafe_globals(real_ckpt):
    # What a training run writes unpickles with weights_only=True as is (SAFE_GLOBALS stays empty).
    assert torch.serialization.get_unsafe_globals_in_checkpoint(real_ckpt) == []
    model, meta = load_deployable(real_ckpt)
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 48, 48)).shape == (2, len(meta["class_names"]))


def test_pickle_payload_is_refused_and_does_not_run(real_ckpt, tmp_path):
    marker = tmp_path / "payload-ran"

    def add_payload(ckpt):
        ckpt["callbacks"]["Evil"] = {"state": Payload(_touch_code(marker))}

    path = _tampered(real_ckpt, tmp_path / "evil.ckpt", add_payload)
    assert not marker.exists()
    with pytest.raises(
        UnsafeCheckpointError, match=r"evil\.ckpt: refusing to load.*globals builtins\.exec.*nothing was executed"
    ):
        load_deployable(path)
    assert not marker.exists(), "loading the checkpoint executed its pickle payload"


def test_nested_target_outside_allow_list_is_refused_and_does_not_run(real_ckpt, tmp_path):
    """Hydra instantiates nested `_target_`s first: the allow-list is checked on all of them, before any runs.
    (Hydra's own blocklist stops e.g. builtins.exec, not builtins.open: old code created / truncated the file.)"""
    marker = tmp_path / "target-ran"

    def add_target(ckpt):
        kwargs = ckpt["ferops"]["config"]["model"]["backbone_kwargs"]
        kwargs["extra"] = {"_target_": "builtins.open", "_args_": [str(marker), "w"]}

    path = _tampered(real_ckpt, tmp_path / "target.ckpt", add_target)
    with pytest.raises(
        UnsafeCheckpointError, match=r"target\.ckpt.*config\.model\.backbone_kwargs\.extra\._target_='builtins\.open'"
    ):
        load_deployable(path)
    assert not marker.exists(), "a target outside the allow-list was instantiated"


@pytest.mark.parametrize("where", ["class_map", "config.data.class_map"])
def test_class_map_of_a_checkpoint_is_not_instantiated(real_ckpt, tmp_path, where):
    """Evaluating someone's checkpoint rebuilds its class map from the names: a `_target_` there is
    refused, not called (the old `instantiate(config.data.class_map)` created the marker file).
    Both places a checkpoint records it: the applied map (``class_map``), and for checkpoints
    written before that, the config's."""
    from ferops.evaluation.external import evaluate_model
    from fixtures_data import write_fer2013_csv

    marker = tmp_path / "class-map-ran"
    payload = {"_target_": "builtins.open", "_args_": [str(marker), "w"]}

    def add_target(ckpt):
        meta = ckpt["ferops"]
        if where == "class_map":
            meta["class_map"] = payload
        else:
            meta.pop("class_map", None)
            meta["config"]["data"]["class_map"] = payload

    path = _tampered(real_ckpt, tmp_path / "classmap.ckpt", add_target)
    data = write_fer2013_csv(tmp_path / "x.csv", [(i % 7, "PublicTest", i) for i in range(7)])
    with pytest.raises(ValueError, match=re.escape(f"classmap.ckpt: {where}._target_='builtins.open'")):
        evaluate_model(path, data, tmp_path / "report")
    assert not marker.exists(), "the checkpoint's class map target was instantiated"


def test_evaluate_scores_a_checkpoint(real_ckpt, tmp_path):
    from ferops.evaluation.external import evaluate_model
    from fixtures_data import write_fer2013_csv

    data = write_fer2013_csv(tmp_path / "x.csv", [(i % 7, "PublicTest", i) for i in range(14)])
    result = evaluate_model(real_ckpt, data, tmp_path / "report")
    assert result["model"]["kind"] == "checkpoint" and result["metrics"]["n_samples"] == 14
    assert (tmp_path / "report" / "confusion_matrix.png").is_file()


@pytest.mark.parametrize(
    "target",
    [
        "os.system",
        "builtins.open",
        "ferops.models.factory.torch.load",  # starts with "ferops." but resolves to torch.load
        "torch.nn.modules.module.torch.load",
        "ferops.models.factory",  # a module, not a class or function
    ],
)
def test_model_target_outside_allow_list_is_refused(real_ckpt, tmp_path, target):
    def set_target(ckpt):
        ckpt["ferops"]["config"]["model"]["_target_"] = target

    path = _tampered(real_ckpt, tmp_path / "t.ckpt", set_target)
    with pytest.raises(UnsafeCheckpointError, match=rf"t\.ckpt.*config\.model\._target_='{target}'"):
        load_deployable(path)


def test_interpolation_in_stored_config_is_refused(real_ckpt, tmp_path):
    def interpolate(ckpt):
        ckpt["ferops"]["config"]["model"]["name"] = "${oc.env:HOME}"

    with pytest.raises(UnsafeCheckpointError, match="interpolations"):
        load_deployable(_tampered(real_ckpt, tmp_path / "i.ckpt", interpolate))


def test_rebuilds_without_pretrained_weights(real_ckpt, tmp_path):
    """A fine-tuned checkpoint whose training-time weights file is not on this machine still loads,
    with the checkpoint's weights (old code: FileNotFoundError from the pretrained_path)."""

    def pretrained_elsewhere(ckpt):
        model = ckpt["ferops"]["config"]["model"]
        model["pretrained"] = True
        model["pretrained_path"] = str(tmp_path / "elsewhere" / "imagenet.pth")

    path = _tampered(real_ckpt, tmp_path / "ft.ckpt", pretrained_elsewhere)
    model, meta = load_deployable(path)
    assert meta["config"]["model"]["pretrained_path"].endswith("imagenet.pth")  # metadata as stored
    state = torch.load(real_ckpt, map_location="cpu", weights_only=True)["state_dict"]
    for k, v in model.net.state_dict().items():
        assert torch.equal(v, state[f"ema.module.{k}"]), k
