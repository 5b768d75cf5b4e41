"""AdamW parameter groups, warmup+cosine schedule, precision policies and the fp16 loss scaler."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from torch import nn

from sensorops.architectures import ModelSpec, build_model
from sensorops.training.config import OptimizerConfig, ScheduleConfig
from sensorops.training.optim import build_optimizer, lr_factor, param_groups
from sensorops.training.precision import resolve_precision


def test_weight_decay_only_on_conv_and_linear_weights() -> None:
    model = build_model(ModelSpec("resnet1d", 3, 4, 20, hidden=8, layers=1))
    decay, no_decay = param_groups(model, 0.1)
    decay_ids = {id(p) for p in decay["params"]}
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if isinstance(module, nn.Conv1d | nn.Linear) and name == "weight":
                assert id(p) in decay_ids, f"{type(module).__name__}.{name} should decay"
            else:
                assert id(p) not in decay_ids, f"{type(module).__name__}.{name} must not decay"
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.1
    n_params = sum(1 for _ in model.parameters())
    assert len(decay["params"]) + len(no_decay["params"]) == n_params
    opt = build_optimizer(model, OptimizerConfig(weight_decay=0.1))
    assert isinstance(opt, torch.optim.AdamW)


def test_schedule_warmup_then_cosine_to_floor() -> None:
    cfg = ScheduleConfig(warmup_steps=10, min_lr_ratio=0.1)
    f = [lr_factor(s, 110, cfg) for s in range(110)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a < b for a, b in itertools.pairwise(f[:10]))  # linear warmup rises
    assert f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(f[10:]))  # cosine falls monotonically
    assert f[60] == pytest.approx(0.1 + 0.9 * 0.5, abs=1e-9)  # half way
    assert lr_factor(110, 110, cfg) == pytest.approx(0.1)


def test_schedule_warm_restarts_jump_back_up() -> None:
    cfg = ScheduleConfig(warmup_steps=0, min_lr_ratio=0.0, restarts=1, restart_mult=1.0)
    f = [lr_factor(s, 100, cfg) for s in range(100)]
    assert f[0] == pytest.approx(1.0) and f[49] < 0.01
    assert f[50] == pytest.approx(1.0)  # restart
    assert f[99] < 0.01


def test_precision_resolution() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu).mode == "fp32"
    bf16 = resolve_precision("bf16", cpu)
    assert bf16.autocast_dtype == torch.bfloat16 and not bf16.use_scaler
    with bf16.autocast():
        assert torch.nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.bfloat16
    cuda = torch.device("cuda", 0)  # policy only: nothing touches a GPU
    assert resolve_precision("auto", cuda, bf16_supported=lambda: True).mode == "bf16"
    no_bf16 = resolve_precision("auto", cuda, bf16_supported=lambda: False)
    assert no_bf16.mode == "fp16" and no_bf16.use_scaler  # dynamic loss scaler
    with pytest.raises(ValueError, match="'bf16' is not supported by this GPU"):
        resolve_precision("bf16", cuda, bf16_supported=lambda: False)
    fp16 = resolve_precision("fp16", cuda, bf16_supported=lambda: True)
    assert fp16.use_scaler and fp16.autocast_dtype == torch.float16


def test_fp16_loss_scaler_skips_inf_steps_and_regrows() -> None:
    """The GradScaler logic the fp16 policy relies on, exercised on CPU."""
    policy = resolve_precision("fp16", torch.device("cpu"))
    scaler = policy.make_scaler()
    assert scaler.is_enabled()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=2)
    lin = nn.Linear(3, 1)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    before = lin.weight.detach().clone()
    # an overflowing step: gradient becomes inf after scaling -> skipped, scale halves
    loss = lin(torch.full((1, 3), 1e38)).sum() * 1e38
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    opt.zero_grad()
    assert torch.equal(lin.weight, before)
    assert scaler.get_scale() == 512.0
    # two finite steps: parameters move and the scale grows back after growth_interval
    for _ in range(2):
        scaler.scale(lin(torch.ones(1, 3)).sum()).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
    assert not torch.equal(lin.weight, before)
    assert scaler.get_scale() == 1024.0
    # disabled scaler (fp32/bf16) is a pass-through
    assert not resolve_precision("bf16", torch.device("cpu")).make_scaler().is_enabled()


def test_gpu_choices_by_construction() -> None:
    """nccl on CUDA, gloo on CPU; SyncBatchNorm only where it can run (CUDA and >1 worker)."""
    from sensorops.training.distributed import resolve_backend
    from sensorops.training.loop import maybe_sync_batchnorm

    assert resolve_backend("auto", cuda=True) == "nccl"
    assert resolve_backend("auto", cuda=False) == "gloo"
    with pytest.raises(ValueError, match="'nccl' needs CUDA"):
        resolve_backend("nccl", cuda=False)
    model = build_model(ModelSpec("resnet1d", 3, 4, 20, hidden=8, layers=1))
    synced = maybe_sync_batchnorm(model, True, torch.device("cuda", 0), distributed=True)
    assert any(isinstance(m, nn.SyncBatchNorm) for m in synced.modules())
    assert not any(isinstance(m, nn.BatchNorm1d) for m in synced.modules())
    kept = maybe_sync_batchnorm(
        build_model(ModelSpec("resnet1d", 3, 4, 20, hidden=8, layers=1)),
        True,
        torch.device("cpu"),
        distributed=True,
    )
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in kept.modules())


def test_auto_precision_resolves_in_the_launcher_before_any_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """auto -> bf16 / fp16 (+ scaler) / fp32; bf16 on a GPU without it fails in plan_launch."""
    from sensorops.training.config import ConfigError, TrainingConfig
    from sensorops.training.launcher import plan_launch

    calls: list[bool] = []

    def probe(answer: bool):
        def is_bf16_supported(including_emulation: bool = True) -> bool:
            calls.append(including_emulation)
            return answer

        return is_bf16_supported

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla T4")
    auto = TrainingConfig()
    assert auto.precision == "auto"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", probe(True))
    assert plan_launch(auto).precision == "bf16"
    assert calls == [False]  # emulated bf16 does not count
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", probe(False))
    assert plan_launch(auto).precision == "fp16"
    policy = resolve_precision(plan_launch(auto).precision, torch.device("cuda", 0))
    assert policy.use_scaler and policy.autocast_dtype == torch.float16
    with pytest.raises(ConfigError, match=r"'bf16' is not supported by Tesla T4.*use 'auto'"):
        plan_launch(auto.replace(precision="bf16"))
    assert plan_launch(auto.replace(precision="fp32")).precision == "fp32"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    calls.clear()
    assert plan_launch(auto).precision == "fp32"  # CPU
    assert plan_launch(auto.replace(precision="bf16")).precision == "bf16"  # CPU autocast
    assert calls == []  # no GPU probe without GPUs


def test_gpu_env_inherits_auto_precision_and_only_overrides_what_differs() -> None:
    import yaml

    conf = Path(__file__).resolve().parents[2] / "conf"
    base = yaml.safe_load((conf / "base" / "parameters_training.yml").read_text())
    gpu = yaml.safe_load((conf / "gpu" / "parameters_training.yml").read_text())
    assert base["training"]["trainer"]["precision"] == "auto"

    def same_as_base(over: dict, ref: dict, path: str = "") -> list[str]:
        out = []
        for key, value in over.items():
            assert key in ref, f"conf/gpu key {path}{key} is not in conf/base"
            if isinstance(value, dict):
                out += same_as_base(value, ref[key], f"{path}{key}.")
            elif value == ref[key]:
                out.append(f"{path}{key}")
        return out

    assert same_as_base(gpu, base) == []
    assert "precision" not in gpu["training"]["trainer"]
