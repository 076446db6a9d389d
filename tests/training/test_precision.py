"""CPU precision default: bf16 where the CPU has native bf16, fp32 with one notice elsewhere; the
ChannelsLast callback really puts the weights in NHWC."""

from __future__ import annotations

import logging

import mlflow
import torch
from hydra.utils import instantiate

from confutil import TINY, compose_config
from ferops.training.callbacks import ChannelsLast
from ferops.training.precision import cpu_has_native_bf16, training_precision
from ferops.training.run import build_module, train


def _cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse4_2 avx2 {flags}\n")
    return path


def test_bf16_is_kept_on_a_cpu_with_native_bf16(tmp_path, caplog):
    info = _cpuinfo(tmp_path, "avx512f avx512_bf16")
    assert cpu_has_native_bf16(info)
    with caplog.at_level(logging.WARNING):
        assert training_precision("bf16-mixed", "cpu", info) == "bf16-mixed"
    assert not caplog.records


def test_bf16_falls_back_to_fp32_with_one_notice_without_native_bf16(tmp_path, caplog):
    info = _cpuinfo(tmp_path, "avx512f")
    assert not cpu_has_native_bf16(info)
    with caplog.at_level(logging.WARNING):
        assert training_precision("bf16-mixed", "cpu", info) == "32-true"
    assert len(caplog.records) == 1 and "fp32" in caplog.records[0].getMessage()


def test_other_requests_pass_through(tmp_path):
    info = _cpuinfo(tmp_path, "")
    assert training_precision(32, "cpu", info) == "32"
    assert training_precision("16-mixed", "gpu", info) == "16-mixed"
    assert training_precision("bf16-mixed", "gpu", info) == "bf16-mixed"  # a GPU decides for itself


def test_cpu_default_is_bf16_with_channels_last_and_the_run_records_what_ran(mlflow_store, tmp_path):
    cfg = compose_config(["experiment=smoke", *TINY])
    assert cfg.trainer.precision == "bf16-mixed" and "channels_last" in cfg.callbacks
    result = train(cfg, tmp_path / "out")
    tags = mlflow.MlflowClient(mlflow_store).get_run(result.run_id).data.tags
    assert tags["trainer.precision_used"] == training_precision("bf16-mixed", "cpu")
    state = torch.load(result.best_checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())  # fp32 master weights


def test_channels_last_callback_converts_net_and_ema(mlflow_store, tmp_path):
    cfg = compose_config(["experiment=smoke", *TINY, "optim.ema_decay=0.9"])
    dm = instantiate(cfg.data)
    dm.setup("fit")
    module = build_module(cfg, dm)
    convs = [m.weight for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and not all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    ChannelsLast().setup(None, module, "fit")
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    ema_convs = [m for m in module.ema.module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert ema_convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in ema_convs)
