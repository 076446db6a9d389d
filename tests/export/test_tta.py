"""export.tta=hflip: every format is scored on the crop and its mirror averaged (the comparison the
gates make is like with like), the temperature is fitted on those outputs, and the bundle records
``"tta": "hflip"`` so the runtime averages the same two views."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ferops.evaluation.calibration import fit_temperature
from ferops.export import ExportConfig
from ferops.export.onnx import torch_logits
from ferops.runtime import BundleModel
from ferops.runtime.bundle import METADATA_FILE


def test_hflip_export_scores_both_views_and_the_bundle_runs_them(exported_hflip, exported):
    report, out = exported_hflip["report"], exported_hflip["out_dir"]
    x = exported_hflip["data"]["eval_x"]
    assert report["metrics"]["tta"] == "hflip" and exported["report"]["metrics"]["tta"] == "none"
    meta = json.loads((Path(report["bundle_dir"]) / METADATA_FILE).read_text())
    assert meta["tta"] == "hflip"
    bundle = BundleModel(report["bundle_dir"])
    assert bundle.tta == "hflip"
    single = torch_logits(exported_hflip["model"], x)
    two = (single + torch_logits(exported_hflip["model"], np.ascontiguousarray(x[:, :, ::-1]))) / 2
    assert np.abs(two - single).max() > 0.5, "the fixture should make the views disagree"
    with np.load(out / "exports" / "eval_predictions.npz") as z:
        np.testing.assert_array_equal(z["pred/pytorch"], two.argmax(1))
        # the int8 predictions recorded for the gates are what the deployed bundle answers
        np.testing.assert_array_equal(z["pred/tflite_int8"], bundle.predict_outputs(x).argmax(1))
    # calibration was fitted on the two-view int8 outputs (its NLL at T = 1 is theirs), not on one view's
    y = exported_hflip["data"]["eval_y"]
    fitted = report["postprocessing"]["calibration"]["eval"]["nll_before"]
    assert fitted == pytest.approx(fit_temperature(bundle.predict_outputs(x), y).nll_before, rel=1e-5)
    one_view = BundleModel(report["bundle_dir"], tta="none").predict_outputs(x)
    assert fitted != pytest.approx(fit_temperature(one_view, y).nll_before, rel=1e-3)


def test_unknown_tta_is_refused():
    with pytest.raises(ValueError, match=r"export.tta must be one of \['hflip', 'none'\], got 'tencrop'"):
        ExportConfig(tta="tencrop")
