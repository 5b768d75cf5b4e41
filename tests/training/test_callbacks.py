"""Trainer callbacks, stop requests, state_dict round trip, plug points, and the standalone entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from sensorops.architectures import read_checkpoint
from sensorops.model_input import ModelInput
from sensorops.training.callbacks import Callback, StepOutput
from sensorops.training.config import ConfigError, TrainingConfig
from sensorops.training.distributed import setup_distributed
from sensorops.training.launcher import ChildRun, plan_launch, prepare
from sensorops.training.loop import Trainer
from sensorops.training.train import apply_override, load_params, main
from tests.training.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[2]


class Recorder(Callback):
    """Records every hook call; asks to stop after evaluation number ``stop_after_evals``."""

    def __init__(self, stop_after_evals: int | None = None) -> None:
        self.calls: list[str] = []
        self.steps: list[StepOutput] = []
        self.evals: list[tuple[int, dict[str, float]]] = []
        self.stop_after_evals = stop_after_evals

    def on_fit_start(self, trainer: Trainer) -> None:
        self.calls.append("fit_start")

    def on_step_end(self, trainer: Trainer, out: StepOutput) -> None:
        self.steps.append(out)

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        self.calls.append(f"epoch_end {epoch}")

    def on_eval_end(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        self.evals.append((step, metrics))
        if self.stop_after_evals is not None and len(self.evals) >= self.stop_after_evals:
            trainer.request_stop(f"pruned at evaluation {len(self.evals)}")

    def on_fit_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        self.calls.append("fit_end")


def _trainer(out: Path, mi: ModelInput, callbacks=(), **overrides: object) -> Trainer:
    cfg = TrainingConfig.from_dict(tiny_config(out, **overrides))
    return Trainer(cfg, setup_distributed("gloo"), mi, callbacks=callbacks)


def test_hooks_see_every_step_and_eval_and_a_stop_request_ends_the_run(
    tmp_path: Path, tiny_mi: ModelInput
) -> None:
    rec = Recorder(stop_after_evals=2)
    trainer = _trainer(tmp_path, tiny_mi, [rec], loop={"epochs": 5})
    summary = trainer.fit()
    per_epoch = trainer.steps_per_epoch
    assert [o.step for o in rec.steps] == list(range(1, 2 * per_epoch + 1))
    first = rec.steps[0]
    assert isinstance(first.loss, torch.Tensor) and first.loss.ndim == 0  # no sync forced
    assert first.samples == 8 and first.lr > 0 and torch.isfinite(first.grad_norm)
    assert rec.calls == ["fit_start", "epoch_end 0", "epoch_end 1", "fit_end"]
    assert [step for step, _ in rec.evals] == [per_epoch, 2 * per_epoch]
    assert {"val_loss", "val_accuracy", "val_macro_f1", "best_val_accuracy"} <= set(rec.evals[0][1])
    assert summary["stopped_by"] == "pruned at evaluation 2"
    assert summary["epochs_completed"] == 2 and summary["interrupted"] is False
    last = read_checkpoint(summary["last_checkpoint"])
    assert last["train_state"]["completed"] is True and last["train_state"]["step"] == 2 * per_epoch
    # a finished (stopped) run is not trained again
    again = _trainer(tmp_path, tiny_mi, loop={"epochs": 5})
    assert again.fit()["final_step"] == 2 * per_epoch


def test_state_dict_round_trip_restores_weights_optimizer_and_counters(
    tmp_path: Path, tiny_mi: ModelInput
) -> None:
    a = _trainer(tmp_path / "a", tiny_mi, loop={"epochs": 2}, checkpoint={"every_n_steps": None})
    a.fit()
    b = _trainer(tmp_path / "b", tiny_mi, loop={"epochs": 2})
    assert b.state.step == 0
    b.load_state_dict(a.state_dict())
    assert b.state == a.state
    for (name, x), y in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)
    assert b.scheduler.last_epoch == a.scheduler.last_epoch
    sa, sb = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    for key, state in sa.items():
        torch.testing.assert_close(sb[key]["exp_avg"], state["exp_avg"], rtol=0, atol=0)


def test_batch_transform_and_custom_batches_plug_in(tmp_path: Path, tiny_mi: ModelInput) -> None:
    seen: list[int] = []

    def soft_targets(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(len(y))  # e.g. Mixup/CutMix: class probabilities instead of labels
        return x, torch.nn.functional.one_hot(y, 3).float() * 0.9 + 0.1 / 3

    class FirstHalfOnly:
        """A curriculum-like schedule: 2 micro-batches of the first 8 series, every epoch."""

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __len__(self) -> int:
            return 2

        def iter_from(self, skip: int = 0):
            for b in range(skip, 2):
                yield torch.arange(4 * b, 4 * b + 4)

    cfg = TrainingConfig.from_dict(tiny_config(tmp_path, loop={"epochs": 3}))
    cfg_micro = cfg.data.batch_size  # one process: the micro-batch is the global batch
    trainer = Trainer(
        cfg,
        setup_distributed("gloo"),
        tiny_mi,
        batch_transform=soft_targets,
        batches=FirstHalfOnly(),
    )
    summary = trainer.fit()
    assert summary["final_step"] == 6 == trainer.total_steps
    assert seen == [4] * 6 and cfg_micro == 8
    assert all(h["train_loss"] is not None for h in summary["history"])


def test_prepare_fills_the_run_time_fields_in_one_config(tmp_path: Path) -> None:
    cfg = TrainingConfig.from_dict(tiny_config(tmp_path / "rel", precision="auto"))
    plan = plan_launch(cfg, visible_gpus=0)
    run = ChildRun("http://127.0.0.1:1", "run123", "parent9")
    out = prepare(cfg, plan, tmp_path / "run", tmp_path / "mi.npz", run)
    assert out.precision == "fp32"  # never 'auto' for the workers
    assert out.output_dir == str(tmp_path / "run")
    assert out.model_input_path == str(tmp_path / "mi.npz")
    assert (out.mlflow.run_id, out.mlflow.parent_run_id) == ("run123", "parent9")
    assert cfg.precision == "auto"  # the input is not changed


def test_entry_point_trains_from_the_project_yaml_with_overrides(
    tmp_path: Path, tiny_mi_path: Path
) -> None:
    out = tmp_path / "by_hand"
    argv = [
        "--config",
        str(ROOT / "conf" / "base" / "parameters_training.yml"),
        "--model-input",
        str(tiny_mi_path),
        "--output-dir",
        str(out),
        "--set",
        "loop.epochs=2",
        "--set",
        "loop.min_steps=null",  # the base floor (200 steps) would add epochs on tiny data
        "--set",
        "model.hidden=8",
        "--set",
        "model.layers=1",
        "--set",
        "training.trainer.mlflow.enabled=false",
        "--set",
        "launch.threads_per_worker=1",
        "--set",
        "progress_bar=never",
    ]
    assert main(argv) == 0
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["epochs_completed"] == 2 and summary["model_spec"]["hidden"] == 8
    # and the same from the resolved JSON form
    resolved = tmp_path / "resolved.json"
    resolved.write_text(TrainingConfig.from_dict(load_params(argv[1])).to_json())
    params = load_params(resolved)
    assert params["model"]["hidden"] == 64


def test_overrides_and_params_files_fail_with_the_key(tmp_path: Path) -> None:
    params: dict[str, Any] = {"loop": {"epochs": 3}, "seed": 1}
    apply_override(params, "optimizer.lr=0.5")
    apply_override(params, "loop.max_steps=null")
    assert params["optimizer"] == {"lr": 0.5} and params["loop"]["max_steps"] is None
    with pytest.raises(ConfigError, match=r"--set expects key=value"):
        apply_override(params, "loop.epochs")
    with pytest.raises(ConfigError, match=r"training\.trainer\.seed is 1, not a section"):
        apply_override(params, "seed.x=2")
    apply_override(params, "loop.epochz=2")
    with pytest.raises(ConfigError, match=r"training\.trainer\.loop\.epochz is not a known key"):
        TrainingConfig.from_dict(params)
    with pytest.raises(ConfigError, match=r"nothing\.yml does not exist"):
        load_params(tmp_path / "nothing.yml")
    bad = tmp_path / "list.yml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"list\.yml must hold a mapping"):
        load_params(bad)
