"""run_export's outputs (metrics.json, reports), the config file and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from ferops.export import FORMATS, ExportConfig, flat_metrics, run_export
from ferops.export.__main__ import load_config, main

REPO = Path(__file__).resolve().parents[2]


def test_metrics_json_has_every_format(exported):
    out = exported["out_dir"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(exported["report"]["metrics"]))
    assert metrics["n_eval"] == 160 and metrics["n_calibration"] == 96 and metrics["num_classes"] == 3
    for fmt in FORMATS:
        m = metrics[fmt]
        assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["macro_f1"] <= 1.0
        assert 0 < m["latency_median_ms"] <= m["latency_p95_ms"]
        assert m["size_bytes"] > 0
    assert metrics["tflite_int8"]["size_bytes"] < metrics["tflite_fp32"]["size_bytes"]
    for key in ("top1_agreement", "top1_agreement_vs_tflite_fp32", "accuracy_drop_points", "max_abs_logit_diff"):
        assert key in metrics["tflite_int8"]
    assert metrics["gates_passed"] is True
    assert metrics["edgetpu"] == {
        "compatible": True,
        "mapped_fraction": 1.0,
        "n_ops": metrics["edgetpu"]["n_ops"],
        "n_mapped": metrics["edgetpu"]["n_ops"],
    }


def test_accuracy_is_computed_from_the_logits(exported):
    from ferops.export.onnx import torch_logits

    data = exported["data"]
    pred = torch_logits(exported["model"], data["eval_x"]).argmax(1)
    assert exported["report"]["metrics"]["pytorch"]["accuracy"] == pytest.approx(np.mean(pred == data["eval_y"]))


def test_report_files(exported):
    exports = exported["out_dir"] / "exports"
    report = json.loads((exports / "export_report.json").read_text())
    assert {g["name"] for g in report["gates"]} >= {"int8_accuracy_drop", "int8_top1_agreement"}
    assert all(g["passed"] for g in report["gates"])
    assert report["latency"]["tflite_int8"]["n_runs"] == 20
    assert "onnx2tf" in report["converters"]["tensorflow"]
    md = (exports / "report.md").read_text()
    assert "| tflite_int8 |" in md and "EdgeTPU: all" in md
    edgetpu = json.loads((exports / "edgetpu_report.json").read_text())
    assert edgetpu["compatible"] and [o["op"] for o in edgetpu["ops"]][-1] == "FULLY_CONNECTED"


def test_flat_metrics_for_mlflow(exported):
    flat = flat_metrics(exported["report"]["metrics"])
    assert flat["export/tflite_int8/accuracy"] == exported["report"]["metrics"]["tflite_int8"]["accuracy"]
    assert flat["export/edgetpu/compatible"] == 1.0
    assert all(isinstance(v, float) for v in flat.values())


def test_conf_export_yaml_holds_the_export_config_defaults():
    # the file is generated from ExportConfig (tests/test_typed_config.py checks the text)
    raw = yaml.safe_load((REPO / "conf" / "export" / "default.yaml").read_text())
    cfg = ExportConfig.from_mapping(raw)
    assert cfg.to_dict() == ExportConfig().to_dict()
    assert isinstance(cfg.gates.max_onnx_logit_diff, float)


def test_config_rejects_unknown_and_bad_options():
    with pytest.raises(ValueError, match="unknown export option"):
        ExportConfig.from_mapping({"n_calibraton": 10})
    with pytest.raises(ValueError, match=r"unknown export\.gates option"):
        ExportConfig.from_mapping({"gates": {"max_drop": 1}})
    with pytest.raises(ValueError, match="input_dtype"):
        ExportConfig.from_mapping({"input_dtype": "float32"})
    cfg = load_config(None, ["gates.max_int8_acc_drop_points=0.5", "input_dtype=uint8"])
    assert ExportConfig.from_mapping(cfg).gates.max_int8_acc_drop_points == 0.5
    with pytest.raises(SystemExit, match="no such file"):
        load_config(REPO / "no-such-export.yaml", [])


def test_config_from_hydra_dictconfig():
    from omegaconf import OmegaConf

    composed = OmegaConf.create({"export": OmegaConf.load(REPO / "conf" / "export" / "default.yaml")})
    composed.export.n_calibration = 1000
    cfg = ExportConfig.from_mapping(composed.export, require_edgetpu_compatible=True)
    assert cfg.n_calibration == 1000 and cfg.require_edgetpu_compatible and cfg.gates.min_int8_agreement == 0.98


def test_run_export_rejects_bad_inputs(tiny_model, tiny_data, tmp_path):
    from ferops.export.chain import _check_images

    with pytest.raises(ValueError, match="uint8"):
        _check_images("eval", tiny_data["eval_x"].astype(np.float32), tiny_data["eval_y"], 48, 3)
    with pytest.raises(ValueError, match="outside"):
        _check_images("eval", tiny_data["eval_x"], tiny_data["eval_y"] + 5, 48, 3)
    meta = {"class_names": ["a", "b"], "preprocessing": {}, "model_name": "x"}
    with pytest.raises(ValueError, match="3 logits but meta lists 2"):
        run_export(
            tiny_model,
            meta,
            tiny_data["train_x"],
            tiny_data["train_y"] % 2,
            tiny_data["eval_x"],
            tiny_data["eval_y"] % 2,
            tmp_path,
            {"progress": False},
        )


def test_cli_runs_the_chain_uint8_and_fails_a_gate(tiny_model, tiny_data, tmp_path, monkeypatch, capsys):
    """`python -m ferops.export` end to end (uint8 io this time), then again with a gate it must fail."""
    from ferops.export import __main__ as cli

    meta = {"class_names": ["top", "bottom", "left"], "preprocessing": {"input_size": 48}, "model_name": "tiny"}
    monkeypatch.setattr(cli, "load_model", lambda ckpt: (tiny_model, meta))
    data = tmp_path / "data.npz"
    x = np.concatenate([tiny_data["train_x"][:200], tiny_data["eval_x"][:60]])
    y = np.concatenate([tiny_data["train_y"][:200], tiny_data["eval_y"][:60]])
    usage = np.array(["train"] * 200 + ["test"] * 60)
    np.savez(data, images=x, labels=y, usage=usage)
    common = [
        "--checkpoint",
        "fake.ckpt",
        "--data",
        str(data),
        "-q",
        "--set",
        "n_calibration=40",
        "--set",
        "n_latency_runs=5",
        "--set",
        "n_latency_warmup=1",
        "--set",
        "edgetpu_compiler=off",
    ]
    out = tmp_path / "out"
    rc = main([*common, "--out", str(out), "--run-id", "abc", "--set", "input_dtype=uint8", "--set", "output_dtype=uint8"])
    assert rc == 0
    assert "| tflite_int8 |" in capsys.readouterr().out
    meta_json = json.loads((out / "bundle" / "model_metadata.json").read_text())
    assert meta_json["input"]["dtype"] == "uint8" and meta_json["input"]["quantization"] == {"scale": 1.0, "zero_point": 0}
    assert meta_json["source"]["run_id"] == "abc" and meta_json["source"]["checkpoint"] == "fake.ckpt"
    assert json.loads((out / "metrics.json").read_text())["n_eval"] == 60

    # an unreachable gate: exit code 2, message on stderr, metrics written, no bundle
    rc = main([*common, "--out", str(out), "--set", "gates.min_int8_agreement=1.5"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "export gate failed: int8_top1_agreement" in err and "must be >= 150.00%" in err
    assert not (out / "bundle").exists()
    assert json.loads((out / "metrics.json").read_text())["gates_passed"] is False


def test_eval_predictions_file(exported):
    """Per-row predictions with row ids next to the metrics: what the registry's paired bootstrap reads."""
    with np.load(exported["out_dir"] / "exports" / "eval_predictions.npz") as z:
        assert z["ids"].tolist() == [str(i) for i in range(160)] and str(z["split"]) == "eval" and int(z["num_classes"]) == 3
        assert set(FORMATS) == {k.removeprefix("pred/") for k in z.files if k.startswith("pred/")}
        m = exported["report"]["metrics"]
        for fmt in FORMATS:
            assert np.mean(z[f"pred/{fmt}"] == z["labels"]) == pytest.approx(m[fmt]["accuracy"])


def test_export_stage_gates_on_val_and_scores_test_once_afterwards(exported, tiny_model, tmp_path, monkeypatch):
    """The DVC export stage hands run_export the VAL split (the gates and the registry's metrics come
    from it) and scores TEST once afterwards, under metrics["test"]. run_export itself is stubbed
    with the session's real export (its int8 model scores the test split)."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from ferops.evaluation.metrics import accuracy, macro_f1
    from ferops.runtime import TFLiteModel
    from ferops.stages import export as stage

    def split(n: int, seed: int, prefix: str) -> SimpleNamespace:
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 3, n)
        images = np.clip(rng.normal(70, 25, (n, 48, 48)), 0, 255)
        for i, c in enumerate(labels):
            images[i][[np.s_[:24, :], np.s_[24:, :], np.s_[:, :24]][c]] += 110
        return SimpleNamespace(
            images=images.astype(np.uint8), labels=labels.astype(np.int64), ids=np.array([f"{prefix}{i}" for i in range(n)])
        )

    splits = {"train": split(100, 1, "tr"), "val": split(60, 2, "va"), "test": split(90, 3, "te")}
    record = {"val_source": "carved from Training (10%, seed 42)", "val_digest": "ab" * 32}
    data = SimpleNamespace(splits=splits, fingerprint="fp", split_record=record)
    calls = {}

    def fake_run_export(model, meta, cx, cy, ex, ey, out_dir, cfg, *, source, metrics_path, eval_ids, eval_split):
        calls.update(eval_images=ex, eval_ids=eval_ids, eval_split=eval_split, source=source)
        metrics = json.loads(json.dumps(exported["report"]["metrics"]))
        Path(metrics_path).parent.mkdir(parents=True, exist_ok=True)
        Path(metrics_path).write_text(json.dumps(metrics))
        return {"metrics": metrics, "files": exported["report"]["files"], "edgetpu": {"compatible": True}}

    logged = []
    fake_mlflow = SimpleNamespace(
        log_metrics=logged.append,
        set_tag=lambda *a: None,
        set_tags=lambda *a: None,
        log_artifacts=lambda *a, **k: None,
        log_artifact=lambda *a, **k: None,
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(stage, "load_params", lambda: OmegaConf.create({"export": {}, "tracking": {"experiment": "x"}}))
    monkeypatch.setattr(stage, "load_deployable", lambda path: (tiny_model, {"class_names": ["top", "bottom", "left"]}))
    monkeypatch.setattr(stage, "load_prepared", lambda path: data)
    monkeypatch.setattr(stage, "run_export", fake_run_export)
    monkeypatch.setattr(stage, "pipeline_run", lambda cfg: nullcontext())
    monkeypatch.setattr(stage, "mlflow", fake_mlflow)
    monkeypatch.setattr(stage.tracking, "read_run_id", lambda *a: "run-1")
    monkeypatch.setattr(stage, "EXPORT_DIR", tmp_path / "outputs/export")
    monkeypatch.setattr(stage, "EXPORT_METRICS", tmp_path / "reports/export/metrics.json")
    stage.main()

    assert calls["eval_images"] is splits["val"].images and calls["eval_split"] == "val"  # gates decided on val
    assert calls["eval_ids"].tolist() == splits["val"].ids.tolist()
    assert calls["source"]["val_digest"] == record["val_digest"] and calls["source"]["eval_split"] == "val"
    metrics = json.loads((tmp_path / "reports/export/metrics.json").read_text())
    assert metrics["eval_split"] == "val" and metrics["tflite_int8"] == exported["report"]["metrics"]["tflite_int8"]
    test = metrics["test"]
    t = splits["test"]
    assert test["n"] == 90
    int8_pred = TFLiteModel(exported["report"]["files"]["tflite_int8"]["path"]).predict_logits(t.images).argmax(1)
    assert test["tflite_int8"]["accuracy"] == pytest.approx(accuracy(t.labels, int8_pred))
    assert test["tflite_int8"]["macro_f1"] == pytest.approx(macro_f1(t.labels, int8_pred, 3))
    assert 0 <= test["pytorch"]["accuracy"] <= 1 and "macro_f1" in test["pytorch"]
    assert "export/test/tflite_int8/macro_f1" in logged[-1] and "export/tflite_int8/macro_f1" in logged[-1]
