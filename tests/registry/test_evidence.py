"""Promotion decides on val, on evidence: the split record travels to the version, versions validated
on different val rows are not compared, and a challenger wins only when the paired-bootstrap
interval of its improvement clears the margin (a 0.01 macro-F1 "win" on a few hundred images does not)."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow.entities.model_registry import ModelVersion, ModelVersionTag

from ferops.evaluation.metrics import accuracy, macro_f1
from ferops.registry import tags as T
from ferops.registry.config import Gates, RegistryConfig, load_registry_config
from ferops.registry.evidence import load_predictions, paired_bootstrap, save_predictions, statistic
from ferops.registry.promote import PROMOTE, REFUSE, REJECT, decide, promote
from ferops.registry.register import CHAMPION, register_model

NAME = "fer-evidence"
N_CLASSES = 7


def mv(version: int, f1: float, digest: str | None = "d-val", **extra: str) -> ModelVersion:
    tags = {T.EXPORT_GATES: "true", T.DATA_FINGERPRINT: "fp-a", T.INT8_MACRO_F1: str(f1), **extra}
    if digest is not None:
        tags[T.SPLIT_VAL_DIGEST] = digest
    return ModelVersion(
        name=NAME, version=str(version), creation_timestamp=0, tags=[ModelVersionTag(k, v) for k, v in tags.items()]
    )


def val_rows(n: int = 300, acc: float = 0.55, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ids, labels and a model's predictions (correct with probability `acc`, else a random other class)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, n)
    wrong = (y + rng.integers(1, N_CLASSES, n)) % N_CLASSES
    pred = np.where(rng.random(n) < acc, y, wrong)
    return np.array([f"row{i:05d}" for i in range(n)]), y, pred


def nudge(y: np.ndarray, pred: np.ndarray, k: int, churn: int = 8, seed: int = 1) -> np.ndarray:
    """`pred` with k + churn more rows right and churn rows newly wrong (a net k): a challenger that
    differs from the champion both ways, as two trainings do, and is a little better on these rows."""
    rng = np.random.default_rng(seed)
    out = pred.copy()
    fix = rng.choice(np.flatnonzero(out != y), k + churn, replace=False)
    brk = rng.choice(np.flatnonzero(out == y), churn, replace=False)
    out[fix] = y[fix]
    out[brk] = (y[brk] + 1) % N_CLASSES
    return out


# -- the statistic and the bootstrap -----------------------------------------------------------
def test_statistic_matches_the_project_metrics():
    _, y, p = val_rows(200)
    p[p == 3] = 4  # class 3 never predicted; class 6 absent from the labels below
    y[y == 6] = 5
    assert statistic("macro_f1", y, p, N_CLASSES) == pytest.approx(macro_f1(y, p, N_CLASSES))
    assert statistic("accuracy", y, p, N_CLASSES) == pytest.approx(accuracy(y, p))


def test_bootstrap_small_win_is_noise_large_win_is_not(capsys):
    _ids, y, champ = val_rows(300)
    small = nudge(y, champ, 3)  # net 3 more right of 300: about +0.01 macro-F1
    c = paired_bootstrap(y, small, champ, N_CLASSES, resamples=2000, confidence=0.95, seed=0)
    print(f"small win: {c.interval()}")
    assert 0.003 < c.delta < 0.02 and c.low < 0 < c.high
    big = nudge(y, champ, 45)
    c2 = paired_bootstrap(y, big, champ, N_CLASSES, resamples=2000, confidence=0.95, seed=0)
    print(f"large win: {c2.interval()}")
    assert c2.low > 0.05
    # reproducible: the same seed gives the same interval
    assert paired_bootstrap(y, small, champ, N_CLASSES, resamples=2000, seed=0).low == c.low
    with capsys.disabled():
        print(f"\n  [bootstrap] +3/300 rows: {c.interval()}\n  [bootstrap] +45/300 rows: {c2.interval()}")


def test_predictions_file_roundtrip(tmp_path):
    ids, y, p = val_rows(20)
    path = save_predictions(tmp_path / "p.npz", ids, y, {"tflite_int8": p}, N_CLASSES)
    back = load_predictions(path)
    assert back.ids.tolist() == ids.tolist() and back.labels.tolist() == y.tolist() and back.split == "val"
    assert back.pred["tflite_int8"].tolist() == p.tolist() and back.num_classes == N_CLASSES


# -- the decision ------------------------------------------------------------------------------
def test_refuses_different_val_rows_and_warns_on_legacy_versions():
    d = decide(NAME, mv(2, 0.9, digest="d-other"), mv(1, 0.5), 0.0, Gates())
    assert d.action == REFUSE and "different val rows" in d.reason and T.SPLIT_VAL_DIGEST in d.reason
    # registered before the split record: compared on the tags, with a warning
    d = decide(NAME, mv(2, 0.6), mv(1, 0.5, digest=None), 0.0, Gates())
    assert d.action == PROMOTE and any("champion version 1 has no split record" in w for w in d.warnings)
    assert "WARNING" in d.summary()


def test_decision_uses_the_interval_not_the_point_difference():
    _ids, y, champ = val_rows(300)
    small = paired_bootstrap(y, nudge(y, champ, 3), champ, N_CLASSES, resamples=1000)
    d = decide(NAME, mv(2, 0.51), mv(1, 0.50), 0.0, Gates(), evidence=small)
    assert d.action == REJECT and "does not clear margin" in d.reason and d.comparison["low"] == small.low
    big = paired_bootstrap(y, nudge(y, champ, 45), champ, N_CLASSES, resamples=1000)
    assert decide(NAME, mv(2, 0.65), mv(1, 0.50), 0.0, Gates(), evidence=big).action == PROMOTE
    # the margin applies to the lower bound
    assert decide(NAME, mv(2, 0.65), mv(1, 0.50), big.low + 0.01, Gates(), evidence=big).action == REJECT
    assert "interval:" in decide(NAME, mv(2, 0.65), mv(1, 0.50), 0.0, Gates(), evidence=big).summary()


def test_config_has_bootstrap_settings(tmp_path):
    (tmp_path / "params.yaml").write_text("registry:\n  confidence: 0.9\n  bootstrap_resamples: 0\n")
    cfg = load_registry_config(tmp_path / "params.yaml")
    assert (cfg.confidence, cfg.bootstrap_resamples) == (0.9, 0)
    with pytest.raises(ValueError, match="confidence"):
        RegistryConfig(confidence=1.5)


# -- on a store --------------------------------------------------------------------------------
SPLIT = {
    "split.val_source": "carved from Training (10%, seed 42)",
    "split.test_source": "PublicTest",
    "split.val_digest": "ab" * 32,
    "split.val_count": "300",
}


def _split_run(make_run, split: dict | None = SPLIT) -> str:
    run_id = make_run()
    if split:
        for k, v in split.items():
            mlflow.MlflowClient().set_tag(run_id, k, v)
    return run_id


def test_register_copies_split_record_and_predictions(store, bundle_dir, make_run, export_metrics, tmp_path):
    ids, y, p = val_rows(300)
    preds = save_predictions(tmp_path / "eval_predictions.npz", ids, y, {"tflite_int8": p}, N_CLASSES)
    metrics = export_metrics(0.50) | {"eval_split": "val", "test": {"tflite_int8": {"accuracy": 0.61, "macro_f1": 0.58}}}
    v = register_model(_split_run(make_run), bundle_dir, NAME, metrics=metrics, predictions=preds)
    tags = mlflow.MlflowClient().get_model_version(NAME, v).tags
    assert {k: tags[k] for k in SPLIT} == SPLIT
    assert tags[T.EVAL_SPLIT] == "val" and tags[T.INT8_MACRO_F1] == "0.5" and tags[T.INT8_TEST_MACRO_F1] == "0.58"
    assert tags[T.PREDICTIONS_URI].startswith("runs:/") and len(tags[T.PREDICTIONS_SHA256]) == 64
    local = mlflow.artifacts.download_artifacts(tags[T.PREDICTIONS_URI])
    assert load_predictions(local).ids.tolist() == ids.tolist()


def test_promotion_on_a_store_needs_evidence(store, bundle_dir, make_run, export_metrics, tmp_path, capsys):
    """Champion and two challengers with stored val predictions: +0.01 is rejected as noise, a clear
    win is promoted; the interval is printed. Then the old comparison for a version without predictions."""
    client = mlflow.MlflowClient()
    ids, y, champ = val_rows(300)

    def version(pred: np.ndarray, tag_f1: float, with_predictions: bool = True) -> str:
        path = (
            save_predictions(tmp_path / f"p{tag_f1}.npz", ids, y, {"tflite_int8": pred}, N_CLASSES) if with_predictions else None
        )
        return register_model(
            _split_run(make_run), bundle_dir, NAME, metrics=export_metrics(tag_f1) | {"eval_split": "val"}, predictions=path
        )

    f1 = lambda p: round(macro_f1(y, p, N_CLASSES), 6)
    v1 = version(champ, f1(champ))
    assert promote(NAME, version=v1).action == PROMOTE
    small = nudge(y, champ, 3)
    v2 = version(small, f1(small))
    d = promote(NAME, version=v2, resamples=2000)
    assert d.challenger_value > d.champion_value  # the old rule would have promoted it
    assert d.action == REJECT and d.comparison is not None and d.comparison["low"] < 0, d.summary()
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == v1
    big = nudge(y, champ, 45)
    v3 = version(big, f1(big))
    d3 = promote(NAME, version=v3)
    assert d3.action == PROMOTE and d3.comparison["low"] > 0 and "lower bound clears margin" in d3.reason
    with capsys.disabled():
        print(f"\n  [promote] v{v2} vs v{v1}: {d.reason}\n  [promote] v{v3} vs v{v1}: {d3.reason}")
    # a version without stored predictions: the tag comparison, with a warning
    v4 = version(big, f1(big) + 0.05, with_predictions=False)
    d4 = promote(NAME, version=v4)
    assert d4.action == PROMOTE and d4.comparison is None and any("no stored val predictions" in w for w in d4.warnings)
    # another val split: refused, saying why
    other = {**SPLIT, "split.val_digest": "cd" * 32}
    v5 = register_model(_split_run(make_run, other), bundle_dir, NAME, metrics=export_metrics(0.99) | {"eval_split": "val"})
    d5 = promote(NAME, version=v5)
    assert d5.action == REFUSE and "different val rows" in d5.reason
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == v4
