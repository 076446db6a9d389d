"""Latency helpers and benchmarks/latency.py on the session's export."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from ferops.export.latency import latency_stats, time_calls

REPO = Path(__file__).resolve().parents[2]


def test_latency_stats():
    s = latency_stats(np.array([1, 2, 3, 4, 100]) / 1e3)
    assert s["median_ms"] == 3.0 and s["min_ms"] == 1.0 and s["n_runs"] == 5
    assert 4.0 < s["p95_ms"] < 100.0
    calls = []
    r = time_calls(lambda: calls.append(1), n_runs=7, n_warmup=2)
    assert len(calls) == 9 and r["n_runs"] == 7


def test_latency_in_report_is_per_format(exported):
    lat = exported["report"]["latency"]
    assert set(lat) == {"pytorch", "onnx", "tflite_fp32", "tflite_int8"}
    assert all(v["n_runs"] == 20 and v["median_ms"] > 0 for v in lat.values())


def test_benchmark_script(exported, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("ferops_bench_latency", REPO / "benchmarks" / "latency.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out_json = tmp_path / "lat.json"
    rc = mod.main(
        [
            "--export-dir",
            str(exported["out_dir"] / "exports"),
            "--bundle",
            str(exported["out_dir"] / "bundle"),
            "--runs",
            "5",
            "--warmup",
            "1",
            "--json",
            str(out_json),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    for name in ("onnx", "tflite_fp32", "tflite_int8", "bundle_int8"):
        assert name in text
    assert set(json.loads(out_json.read_text())["results"]) == {"onnx", "tflite_fp32", "tflite_int8", "bundle_int8"}
