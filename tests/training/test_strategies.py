"""zero1 (ZeroRedundancyOptimizer) and fsdp (FSDP2 fully_shard) with 2 real gloo workers:
same training as DDP, consolidated checkpoints, and resume after a killed worker."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sensorops.architectures import load_checkpoint_model, read_checkpoint
from sensorops.training.config import ConfigError, TrainingConfig
from sensorops.training.faults import KillWorker
from sensorops.training.launcher import launch_training
from tests.training.conftest import make_model_input, tiny_config

pytestmark = pytest.mark.slow


def _run(out: Path, strategy: str, callbacks: list | None = None, **overrides: object) -> dict:
    params = tiny_config(
        out,
        model={"name": "resnet1d", "hidden": 8, "layers": 1, "dropout": 0.0},
        loop={"epochs": 3},
        checkpoint={"every_n_steps": 4},
        strategy=strategy,
        **overrides,
    )
    return launch_training(params, make_model_input(), callbacks=callbacks or [])


@pytest.fixture(scope="module")
def ddp_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    summary = _run(tmp_path_factory.mktemp("ddp"), "ddp")
    return read_checkpoint(summary["last_checkpoint"])["model_state"]


@pytest.mark.parametrize("strategy", ["zero1", "fsdp"])
def test_strategy_trains_like_ddp_and_checkpoints_are_consolidated(
    strategy: str, tmp_path: Path, ddp_weights: dict[str, torch.Tensor]
) -> None:
    summary = _run(tmp_path / strategy, strategy)
    assert summary["world_size"] == 2
    ckpt = read_checkpoint(summary["last_checkpoint"])
    assert ckpt["config"]["strategy"] == strategy
    # full (unsharded) tensors: the bare model loads them and exports as usual
    model, _, _ = load_checkpoint_model(summary["last_checkpoint"])
    for name, value in ckpt["model_state"].items():
        assert type(value) is torch.Tensor, name
        assert value.shape == ddp_weights[name].shape, name
        # AdamW sharded or not is the same arithmetic: the weights match DDP's
        torch.testing.assert_close(value, ddp_weights[name], rtol=2e-4, atol=2e-5, msg=name)
    n_params = sum(1 for _ in model.parameters())
    assert len(ckpt["optimizer"]["state"]) == n_params  # optimizer state of EVERY parameter


@pytest.mark.parametrize("strategy", ["zero1", "fsdp"])
def test_strategy_resumes_after_a_killed_worker(strategy: str, tmp_path: Path) -> None:
    marker = tmp_path / "killed.txt"
    kill = KillWorker(rank=1, step=6, marker=marker)
    summary = _run(tmp_path / "run", strategy, callbacks=[kill], launch={"max_restarts": 1})
    assert marker.read_text().startswith("rank 1 killed at step 6")
    assert summary["restart_count"] == 1
    assert summary["resumed_from_step"] == 5  # the epoch-end checkpoint (5 steps per epoch)
    assert summary["final_step"] == summary["total_steps"]


def test_unknown_strategy_names_the_options() -> None:
    with pytest.raises(
        ConfigError,
        match=r"training\.trainer\.strategy must be one of \['ddp', 'zero1', 'fsdp'\]; got 'zero3'",
    ):
        TrainingConfig.from_dict({"strategy": "zero3"})
