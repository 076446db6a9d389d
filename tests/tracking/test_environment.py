"""Environment tags: CPU model and flags, threads, accelerator, library versions (no TensorFlow import)."""

from __future__ import annotations

import subprocess
import sys

from ferops.tracking.environment import cpu_info, environment_tags

X86 = """processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse4_2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8
processor	: 1
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse4_2
"""
ARM = """processor	: 0
BogoMIPS	: 50.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp sve bf16 i8mm
CPU implementer	: 0x41
"""


def test_x86_model_and_the_flags_that_matter(tmp_path):
    (tmp_path / "cpuinfo").write_text(X86)
    model, flags = cpu_info(tmp_path / "cpuinfo")
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert flags == [
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512_vnni",
        "avx512_bf16",
        "amx_tile",
        "amx_bf16",
        "amx_int8",
    ]
    tags = environment_tags("cpu", cpuinfo=tmp_path / "cpuinfo")
    assert tags["env.cpu"] == model and tags["env.avx512_bf16"] == "true"
    assert "amx_bf16" in tags["env.cpu_flags"].split(",") and "fpu" not in tags["env.cpu_flags"]


def test_arm_features_and_missing_cpuinfo(tmp_path):
    (tmp_path / "cpuinfo").write_text(ARM)
    _, flags = cpu_info(tmp_path / "cpuinfo")
    assert {"asimd", "asimddp", "sve", "bf16", "i8mm"} <= set(flags)
    model, flags = cpu_info(tmp_path / "absent")
    assert model and flags == []
    assert environment_tags(cpuinfo=tmp_path / "absent")["env.cpu_flags"] == "none"


def test_versions_threads_and_accelerator():
    import torch

    tags = environment_tags("cpu")
    for pkg in ("torch", "lightning", "timm", "tensorflow", "onnx2tf"):
        assert tags[f"env.{pkg}"] not in ("", "not installed"), pkg
    assert tags["env.torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert tags["env.threads"] == str(torch.get_num_threads())
    assert tags["env.accelerator"] == "cpu"
    assert int(tags["env.cpu_count"]) >= 1
    assert all(isinstance(v, str) and len(v) <= 5000 for v in tags.values())


def test_tensorflow_is_not_imported():
    code = "import sys; from ferops.tracking import environment_tags as e; t = e(); print('tensorflow' in sys.modules, t['env.tensorflow'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "False" and out[1] != "not installed"
