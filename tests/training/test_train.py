"""train(cfg) end to end: every preset composes and runs, runs are recorded in MLflow,
checkpoints rebuild the deployable model, and the synthetic default is learnable."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from confutil import CONF_DIR, TINY, compose_config
from ferops.data.ferplus import FERPLUS_TO_FER
from ferops.models.checkpoint import load_deployable
from ferops.training.run import train
from fixtures_data import FERPLUS_HEADER, ferplus_line, write_fer2013_csv, write_text


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


def test_config_groups_mirror_packages():
    src = Path(CONF_DIR).parent / "src" / "ferops"
    for group in ["data", "model", "loss", "export", "registry"]:
        assert (Path(CONF_DIR) / group).is_dir(), group
    for package in ["data", "models", "losses", "training"]:
        assert (src / package).is_dir(), package


@pytest.mark.parametrize("option", _options("model"))
def test_model_presets_instantiate_and_fit_a_few_batches(option, mlflow_store, tmp_path):
    overrides = ["experiment=smoke", f"model={option}", *TINY]
    if option == "vit_tiny_patch16":
        overrides.append("data.input_size=48")
    cfg = compose_config(overrides)
    result = train(cfg, tmp_path / "out")
    assert np.isfinite(result.metrics["val/loss"])
    assert result.best_checkpoint.is_file()


@pytest.mark.parametrize("option", _options("loss"))
def test_loss_presets_instantiate(option):
    cfg = compose_config([f"loss={option}"])
    loss = instantiate(cfg.loss)
    loss.set_class_counts([10, 5, 3, 8, 9, 7, 6])
    value = loss(torch.randn(4, 7), torch.tensor([0, 1, 2, 3]))
    assert value.ndim == 0 and torch.isfinite(value)


@pytest.mark.parametrize("option", _options("optim"))
def test_optim_presets_instantiate(option):
    cfg = compose_config([f"optim={option}"])
    opt = instantiate(cfg.optim.optimizer)(params=[torch.nn.Parameter(torch.zeros(2))])
    assert opt.param_groups[0]["lr"] == cfg.optim.optimizer.lr


@pytest.mark.parametrize("option", _options("trainer"))
def test_trainer_presets_instantiate(option):
    cfg = compose_config([f"trainer={option}"])
    overrides = {} if torch.cuda.is_available() else {"accelerator": "cpu", "precision": 32}
    trainer = instantiate(cfg.trainer, **overrides, logger=False, enable_checkpointing=False)
    assert trainer.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("option", _options("data"))
def test_data_presets_instantiate(option):
    cfg = compose_config([f"data={option}"])
    dm = instantiate(cfg.data)
    assert dm is not None


@pytest.fixture
def fer_csv(tmp_path):
    """A FER2013-format CSV with every class in Training and PublicTest (no PrivateTest)."""
    specs = [
        (label, usage, 1000 * i + 10 * label + k)
        for i, usage in enumerate(["Training", "PublicTest"])
        for label in range(7)
        for k in range(6)
    ]
    return write_fer2013_csv(tmp_path / "fer2013.csv", specs)


def ferplus_votes(fer_csv) -> list[tuple[str, str]]:
    """(Usage, FER+ emotion) per row of `fer_csv`: the row's own class, every sixth one contempt."""
    fer_to_ferplus = {fer_id: name for name, fer_id in FERPLUS_TO_FER.items()}
    rows = [line.split(",") for line in fer_csv.read_text().splitlines()[1:]]
    return [(r[2], "contempt" if i % 6 == 5 else fer_to_ferplus[int(r[0])]) for i, r in enumerate(rows)]


@pytest.mark.parametrize("preset", _options("experiment"))
def test_every_experiment_preset_fast_dev_run(preset, fer_csv, mlflow_store, tmp_path):
    overrides = [
        f"experiment={preset}",
        "+trainer.fast_dev_run=true",
        "trainer.accelerator=cpu",
        "trainer.precision=32",
        "data.num_workers=0",
        "data.batch_size=8",
    ]
    cfg = compose_config(overrides)
    if "source" in cfg.data and "ferplus_path" in cfg.data.source:  # FER+ votes for those rows, contempt too
        lines = [FERPLUS_HEADER] + [ferplus_line(u, f"f{i}.png", {c: 8}) for i, (u, c) in enumerate(ferplus_votes(fer_csv))]
        overrides.append(f"data.source.ferplus_path={write_text(tmp_path / 'fer2013new.csv', lines)}")
    if "source" in cfg.data and ("path" in cfg.data.source or "fer2013_path" in cfg.data.source):
        cfg = compose_config([*overrides, f"data.path={fer_csv}", f"data.cache_dir={tmp_path / 'cache'}"])
    result = train(cfg, tmp_path / "out")
    assert "test/acc" in result.metrics
    assert result.class_names == list(cfg.data.class_map.names)  # ferplus8_cpu: contempt included


def test_smoke_run_is_recorded_in_mlflow(mlflow_store, tmp_path):
    cfg = compose_config(
        ["experiment=smoke", "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "~callbacks.progress_bar"]
    )
    result = train(cfg, tmp_path / "out")
    client = mlflow.MlflowClient(mlflow_store)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "fer_vgg"
    assert run.data.params["loss._target_"] == "ferops.losses.CrossEntropyLoss"
    for key in ["val/macro_f1", "val/acc", "val/loss", "train/loss", "test/acc", "test/macro_f1"]:
        assert key in run.data.metrics, key
    assert len(client.get_metric_history(result.run_id, "val/macro_f1")) == 2  # one per epoch
    tags = run.data.tags
    assert tags["data.name"] == "synthetic" and len(tags["data.fingerprint"]) >= 16
    assert tags["data.class_map"].split(",")[0] == "angry"
    assert tags["git.commit"] and tags["git.dirty"] in {"true", "false", "unknown"}
    # the split record, the environment and the data inputs (the run page showed "Datasets: None")
    assert tags["split.val_digest"] and tags["split.test_source"] == "source:test" and tags["split.val_count"] == "84"
    assert tags["env.torch"].startswith(torch.__version__[:4]) and tags["env.avx512_bf16"] in {"true", "false"}
    from ferops.tracking import split_inputs

    inputs = split_inputs(run)
    assert set(inputs) == {"train", "val", "test"} and inputs["val"]["digest"].startswith(tags["split.val_digest"][:16])
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.yaml", "training_curves.png", "test_report", "checkpoints"} <= artifacts
    report = {Path(a.path).name for a in client.list_artifacts(result.run_id, "test_report")}
    assert {"confusion_matrix.png", "classification_report.txt", "metrics.json"} <= report
    assert any(k.startswith("lr-") for k in run.data.metrics), "learning rate of each param group"


def test_logger_group_adds_a_csv_logger_and_keeps_mlflow_in_the_run(mlflow_store, tmp_path):
    # the logger group, not train(), decides which Lightning loggers a run has
    result = train(compose_config(["experiment=smoke", *TINY, "logger=mlflow_csv"]), tmp_path / "out")
    csvs = list((tmp_path / "out" / "csv").rglob("metrics.csv"))
    assert len(csvs) == 1 and "val/macro_f1" in csvs[0].read_text().splitlines()[0]
    run = mlflow.MlflowClient(mlflow_store).get_run(result.run_id)
    assert "val/macro_f1" in run.data.metrics  # the MLflow logger still writes into train()'s run


def test_run_names_are_unique_under_the_same_seed(mlflow_store, tmp_path):
    cfg = compose_config(["experiment=smoke", *TINY])
    a = train(cfg, tmp_path / "a")
    b = train(compose_config(["experiment=smoke", *TINY]), tmp_path / "b")
    client = mlflow.MlflowClient(mlflow_store)
    assert client.get_run(a.run_id).info.run_name != client.get_run(b.run_id).info.run_name


def test_checkpoint_rebuilds_the_deployable_model(mlflow_store, tmp_path):
    cfg = compose_config(["experiment=smoke", *TINY, "optim.ema_decay=0.9"])
    result = train(cfg, tmp_path / "out")
    model, meta = load_deployable(result.best_checkpoint)
    assert meta["class_names"] == result.class_names
    assert meta["preprocessing"]["input_size"] == 48
    x = torch.randint(0, 256, (3, 1, 48, 48)).float()
    ckpt = torch.load(result.best_checkpoint, map_location="cpu", weights_only=False)
    assert any(k.startswith("ema.module.") for k in ckpt["state_dict"])  # EMA weights are what ships
    with torch.no_grad():
        out = model(x)
    assert out.shape == (3, 7)
    # The EMA weights, not the raw ones, are loaded.
    ema_w = ckpt["state_dict"]["ema.module.head.layers.1.weight"]
    assert torch.equal(model.net.head.layers[-1].weight, ema_w)


def test_synthetic_default_is_learnable(mlflow_store, tmp_path):
    """A short CPU run on the embedded default ends well above chance (1/7) and below 100%.
    Without augmentation, so the check is about the data, not the training recipe."""
    cfg = compose_config(
        [
            "experiment=smoke",
            "data.source.n_per_class=400",
            "data.batch_size=64",
            "data/augment=none",
            "model.dropout=0.1",
            "model.backbone_kwargs.widths=[16,32,64]",
            "trainer.max_epochs=6",
            "trainer.enable_progress_bar=false",
        ]
    )
    result = train(cfg, tmp_path / "out")
    acc = result.metrics["test/acc"]
    assert 0.40 < acc < 0.995, acc
