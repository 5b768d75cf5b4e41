"""Real 2-worker gloo DDP: identical gradients, worker kill + restart resumes, pre-launch errors."""

from __future__ import annotations

import re
import socket
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from sensorops.architectures import ModelSpec, build_model
from sensorops.model_input import ModelInput, ModelInputError, load_model_input, save_model_input
from sensorops.tracking import TrackingServerUnreachable
from sensorops.training.config import ConfigError, TrainingConfig
from sensorops.training.faults import KillWorker
from sensorops.training.launcher import TrainingLaunchError, launch_training, plan_launch
from tests.training.conftest import make_model_input, tiny_config
from tests.training.ddp_workers import one_step_worker

pytestmark = pytest.mark.slow


def test_gradients_identical_across_ranks_and_equal_to_full_batch(
    tmp_path: Path, tiny_mi_path: Path
) -> None:
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    params = tiny_config(
        tmp_path, model_input_path=str(tiny_mi_path), optimizer={"grad_clip_norm": None}
    )
    cfg = TrainingConfig.from_dict(params)
    launch = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=2,
        run_id=uuid.uuid4().hex,
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        start_method="spawn",
        monitor_interval=0.2,
    )
    out = elastic_launch(launch, one_step_worker)(cfg.to_json())
    r0, r1 = out[0], out[1]
    assert set(r0["indices"]).isdisjoint(r1["indices"])  # each rank saw its own shard
    assert r0["loss"] != r1["loss"]
    torch.testing.assert_close(
        r0["grads"], r1["grads"], rtol=0, atol=0
    )  # all-reduced: bit-identical
    torch.testing.assert_close(r0["params"], r1["params"], rtol=0, atol=0)

    # and equal to the gradient of one process on the union of both micro-batches
    mi = load_model_input(tiny_mi_path)
    torch.manual_seed(cfg.seed)
    model = build_model(
        ModelSpec(cfg.model.name, 3, 3, mi.length, hidden=16, layers=1, dropout=0.0, heads=2)
    )
    idx = r0["indices"] + r1["indices"]
    x, y = torch.from_numpy(mi.X["train"][idx]), torch.from_numpy(mi.y["train"][idx])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    full = torch.cat([p.grad.flatten() for p in model.parameters()])
    torch.testing.assert_close(r0["grads"], full, rtol=1e-4, atol=1e-6)


def test_killed_worker_restarts_and_resumes_from_checkpoint(tmp_path: Path) -> None:
    marker = tmp_path / "killed.txt"
    # restarted workers must not read the addresses their dead predecessors published in the
    # agent's store (distributed._attempt_store); without that this failed about every other run
    params = tiny_config(
        tmp_path / "run",
        loop={"epochs": 4},
        checkpoint={"every_n_steps": 5},
        launch={"max_restarts": 1},
    )
    summary = launch_training(
        params, make_model_input(), callbacks=[KillWorker(rank=1, step=12, marker=marker)]
    )
    assert marker.read_text().startswith("rank 1 killed at step 12")
    assert summary["restart_count"] == 1
    assert summary["resumed_from_step"] == 10  # the last checkpoint before the kill, not step 0
    assert summary["final_step"] == summary["total_steps"] == 20
    assert summary["epochs_completed"] == 4


def test_killed_worker_without_restarts_fails_with_a_clear_error(tmp_path: Path) -> None:
    params = tiny_config(tmp_path / "run", loop={"epochs": 2}, launch={"max_restarts": 0})
    kill = KillWorker(rank=0, step=3, marker=tmp_path / "killed.txt")
    with pytest.raises(TrainingLaunchError, match=r"failed after 0 restart\(s\)"):
        launch_training(params, make_model_input(), callbacks=[kill])


# -- errors before any worker starts -------------------------------------------------------------


def test_nproc_above_visible_gpus() -> None:
    cfg = TrainingConfig.from_dict({"launch": {"nproc_per_node": 4}})
    with pytest.raises(ConfigError, match=r"nproc_per_node=4 is more than the 2 visible GPU\(s\)"):
        plan_launch(cfg, visible_gpus=2)
    assert plan_launch(TrainingConfig(), visible_gpus=3).nproc_per_node == 3  # auto = GPUs
    assert plan_launch(TrainingConfig(), visible_gpus=3).backend == "nccl"
    cpu = plan_launch(TrainingConfig(), visible_gpus=0)
    assert (cpu.nproc_per_node, cpu.backend) == (2, "gloo")
    with pytest.raises(ConfigError, match="'nccl' needs GPUs"):
        plan_launch(TrainingConfig.from_dict({"launch": {"backend": "nccl"}}), visible_gpus=0)


def test_global_batch_smaller_than_world_size(tmp_path: Path) -> None:
    params = tiny_config(tmp_path, data={"batch_size": 1})
    with pytest.raises(
        ConfigError, match=r"batch_size=1 \(global batch\) is smaller than the world size 2"
    ):
        launch_training(params, make_model_input())
    assert not (tmp_path / "resolved_config.json").exists()


def test_unknown_model_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.name must be one of"):
        launch_training(tiny_config(tmp_path, model={"name": "gru"}), make_model_input())


def test_missing_and_mismatched_model_input(tmp_path: Path) -> None:
    with pytest.raises(
        ModelInputError,
        match=r"nothing\.npz does not exist; produce it with `kedro run --pipelines=ingestion`",
    ):
        launch_training(tiny_config(tmp_path), tmp_path / "nothing.npz")
    mi = make_model_input()
    y_test = mi.y["test"].copy()
    y_train = np.where(mi.y["train"] == 2, 1, mi.y["train"])  # class 'fast' vanishes from train
    broken = ModelInput(
        mi.X, {**mi.y, "train": y_train, "test": y_test}, mi.series_ids, mi.classes, mi.channels
    )
    path = tmp_path / "broken.npz"
    save_model_input(broken, path)
    with pytest.raises(
        ModelInputError, match=r"has class\(es\) \['fast'\] that never occur in train"
    ):
        launch_training(tiny_config(tmp_path), path)
    # resume: must against a checkpoint of other channels
    other = make_model_input()
    renamed = ModelInput(other.X, other.y, other.series_ids, other.classes, ("a", "b", "c"))
    run = tmp_path / "run"
    from sensorops.training.distributed import setup_distributed
    from sensorops.training.loop import Trainer

    Trainer(
        TrainingConfig.from_dict(tiny_config(run, loop={"epochs": 1})), setup_distributed(), mi
    ).fit()
    with pytest.raises(
        ModelInputError, match=r"channels \['a', 'b', 'c'\] do not match checkpoint"
    ):
        launch_training(
            tiny_config(run, loop={"epochs": 1}, checkpoint={"resume": "must"}), renamed
        )


def test_tracking_server_that_does_not_answer(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    params = tiny_config(
        tmp_path, mlflow={"enabled": True, "tracking_uri": f"http://127.0.0.1:{port}"}
    )
    with pytest.raises(TrackingServerUnreachable, match=re.escape(f"127.0.0.1:{port}")):
        launch_training(params, make_model_input())
    assert not (tmp_path / "resolved_config.json").exists()
