"""The export report in words: converter versions recorded with it, and the Markdown rendering
(``exports/report.md``, also what ``python -m ferops.export`` prints)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["FORMATS", "converter_versions", "render_markdown"]

# Every format the chain scores, in report order.
FORMATS = ("pytorch", "onnx", "tflite_fp32", "tflite_int8")


def converter_versions(onnx_info: Mapping[str, str]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    def v(pkg: str) -> str:
        try:
            return version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            return "?"

    return {
        "onnx": f"torch.onnx.export ({onnx_info['exporter']} exporter, opset {onnx_info['opset']}), torch {v('torch')}, onnx {v('onnx')}",
        "onnx_exporter": onnx_info["exporter"],
        "onnx_opset": onnx_info["opset"],
        "onnxruntime": v("onnxruntime"),
        "tensorflow": f"onnx2tf {v('onnx2tf')}, tensorflow {v('tensorflow')}",
        "int8": f"tf.lite.TFLiteConverter.from_saved_model + representative dataset, TFLITE_BUILTINS_INT8 (tensorflow {v('tensorflow')})",
        "runtime": f"ai-edge-litert {v('ai-edge-litert')}",
    }


def render_markdown(report: Mapping[str, Any]) -> str:
    """A short human-readable export report (formats table, quantisation, EdgeTPU, gates)."""
    m = report["metrics"]
    lines = [
        f"# Export report: {report.get('model_name') or 'model'}",
        "",
        f"{m['n_eval']} eval images, {m['n_calibration']} calibration images; latency per face, batch 1, "
        f"{report['config']['latency_threads']} thread(s).",
        "",
        "| format | accuracy | macro-F1 | top-1 agreement vs PyTorch | max abs logit diff | size (KiB) | median ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fmt in FORMATS:
        r = m[fmt]
        agree = f"{r['top1_agreement']:.2%}" if "top1_agreement" in r else "-"
        diff = f"{r['max_abs_logit_diff']:.2e}" if "max_abs_logit_diff" in r else "-"
        lines.append(
            f"| {fmt} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {agree} | {diff} | {r['size_bytes'] / 1024:.1f} | "
            f"{r['latency_median_ms']:.3f} | {r['latency_p95_ms']:.3f} |"
        )
    q = report["quantization"]
    lines += [
        "",
        f"int8: accuracy drop {m['tflite_int8']['accuracy_drop_points']:.2f} points, "
        f"agreement with fp32 TFLite {m['tflite_int8']['top1_agreement_vs_tflite_fp32']:.2%}.",
        f"Input {q['input']['dtype']} {q['input']['shape']} scale {q['input']['scale']!r} zero point {q['input']['zero_point']}; "
        f"output {q['output']['dtype']} {q['output']['shape']} scale {q['output']['scale']!r} zero point {q['output']['zero_point']}.",
        "",
        report["edgetpu"]["summary"],
        *_postprocessing_lines(report.get("postprocessing")),
        "",
        "| gate | measured | threshold | passed |",
        "|---|---|---|---|",
    ]
    for g in report["gates"]:
        lines.append(f"| {g['name']} | {g['measured']:.6g} | {g['op']} {g['threshold']:.6g} | {'yes' if g['passed'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def _postprocessing_lines(post: Mapping[str, Any] | None) -> list[str]:
    """Temperature and unknown threshold fitted on the eval split (run_export's ``postprocessing``)."""
    if not post:
        return []
    split, cal, rec = post["split"], post["calibration"], post["recommendation"]
    c, r = cal[split], rec[split]
    acc = "-" if r["accepted_accuracy"] is None else f"{r['accepted_accuracy']:.4f}"
    return [
        "",
        f"Temperature {cal['temperature']:.4f} fitted on {split} ({'on' if cal.get('enabled', True) else 'off: T = 1'}): "
        f"NLL {c['nll_before']:.4f} -> {c['nll_after']:.4f}, ECE {c['ece_before']:.4f} -> {c['ece_after']:.4f}.",
        f"Unknown threshold {rec['threshold']:.2f} ({rec['rule']}): {split} coverage {r['coverage']:.4f}, accepted accuracy {acc}.",
    ]
