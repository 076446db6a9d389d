"""edgetpu_compiler's output goes into the bundle as model_int8_edgetpu.tflite (only when it compiled)."""

from __future__ import annotations

import json
import stat

from ferops.export import chain
from ferops.export.edgetpu import check_edgetpu
from ferops.export.edgetpu_compiler import run_edgetpu_compiler
from ferops.runtime import BundleModel
from ferops.runtime.bundle import EDGETPU_MODEL_FILE, METADATA_FILE, MODEL_FILE

LOG_OK = """Edge TPU Compiler version 16.0.384591198

Model compiled successfully in 45 ms.

Number of Edge TPU subgraphs: 1
Total number of operations: 7
"""


def _fake_compiler(tmp_path, exit_code: int = 0):
    """Prints a log and writes <model>_edgetpu.tflite (marked, so the bundle copy can be told apart)."""
    log_file = tmp_path / "log.txt"
    log_file.write_text(LOG_OK if exit_code == 0 else "Model could not be parsed\n")
    script = tmp_path / "edgetpu_compiler"
    script.write_text(
        "#!/bin/sh\n"
        'out=""; while [ $# -gt 1 ]; do if [ "$1" = "-o" ]; then out="$2"; shift; fi; shift; done\n'
        f'cat "{log_file}"\n'
        f"[ {exit_code} -eq 0 ] || exit {exit_code}\n"
        'cp "$1" "$out/$(basename "$1" .tflite)_edgetpu.tflite"; printf compiled >> "$out/$(basename "$1" .tflite)_edgetpu.tflite"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def _bundle_with(exported, tmp_path, exit_code: int):
    int8 = exported["out_dir"] / "exports" / "model_int8.tflite"
    report = check_edgetpu(int8)
    report.compiler = run_edgetpu_compiler(int8, tmp_path / "edgetpu", _fake_compiler(tmp_path, exit_code))
    rep = exported["report"]
    meta = {"class_names": rep["class_names"], "model_name": rep["model_name"], "preprocessing": {"input_size": 48}}
    bundle = tmp_path / "bundle"
    chain._write_bundle(bundle, int8, rep["class_names"], meta, rep["source"], rep["quantization"], report)
    return bundle, report


def test_compiled_model_goes_into_the_bundle(exported, tmp_path, caplog):
    bundle, report = _bundle_with(exported, tmp_path, 0)
    assert report.compiler["ok"]
    compiled = (tmp_path / "edgetpu" / "model_int8_edgetpu.tflite").read_bytes()
    assert (bundle / EDGETPU_MODEL_FILE).read_bytes() == compiled and compiled.endswith(b"compiled")
    assert (bundle / MODEL_FILE).read_bytes() == (exported["out_dir"] / "exports" / "model_int8.tflite").read_bytes()
    assert json.loads((bundle / METADATA_FILE).read_text())["edgetpu_model_file"] == EDGETPU_MODEL_FILE
    # no libedgetpu here: the runtime says so and runs the CPU model
    assert BundleModel(bundle).device == "cpu"
    assert any("EdgeTPU not used" in r.getMessage() for r in caplog.records)


def test_failed_compilation_leaves_no_compiled_model(exported, tmp_path):
    bundle, report = _bundle_with(exported, tmp_path, 1)
    assert not report.compiler["ok"]
    assert not (bundle / EDGETPU_MODEL_FILE).exists()
    assert json.loads((bundle / METADATA_FILE).read_text())["edgetpu_model_file"] is None
