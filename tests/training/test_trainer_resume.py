"""In-process (single worker) training: resume continues exactly; checkpoints; bf16 on CPU."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from sensorops.architectures import load_checkpoint_model, read_checkpoint
from sensorops.model_input import ModelInput
from sensorops.training.callbacks import Callback, StopAtStep
from sensorops.training.config import TrainingConfig
from sensorops.training.distributed import setup_distributed
from sensorops.training.loop import Trainer
from tests.training.conftest import make_model_input, tiny_config


def make_trainer(
    out: Path, mi: ModelInput, callbacks: Sequence[Callback] = (), **overrides: object
) -> Trainer:
    params = tiny_config(out, **overrides)
    params["model"]["dropout"] = 0.2  # exercise the RNG state on resume
    cfg = TrainingConfig.from_dict(params)
    return Trainer(cfg, setup_distributed("gloo"), mi, callbacks=callbacks)


def test_resume_continues_at_saved_step_with_identical_state(
    tmp_path: Path, tiny_mi: ModelInput
) -> None:
    steps = {"loop": {"epochs": 3}, "checkpoint": {"every_n_steps": 4}}
    straight = make_trainer(tmp_path / "a", tiny_mi, **steps)
    total = straight.total_steps
    straight.fit()

    # interrupted mid-epoch right after the step-8 checkpoint
    first = make_trainer(tmp_path / "b", tiny_mi, [StopAtStep(8, finish=False)], **steps)
    assert first.fit()["interrupted"] is True
    saved = read_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert saved["train_state"]["step"] == 8

    second = make_trainer(tmp_path / "b", tiny_mi, **steps)
    second.resume()
    assert second.state.step == 8
    assert second.resumed_from_step == 8
    opt_now, opt_saved = second.optimizer.state_dict(), saved["optimizer"]
    assert opt_now["param_groups"] == opt_saved["param_groups"]
    for key, state in opt_saved["state"].items():
        for name, value in state.items():
            torch.testing.assert_close(opt_now["state"][key][name], value, rtol=0, atol=0)
    assert second.scheduler.last_epoch == 8
    summary = second.fit()
    assert summary["resumed_from_step"] == 8 and summary["final_step"] == total

    # resumed training ends exactly where uninterrupted training ends
    for (name, a), b in zip(
        straight.model.state_dict().items(), second.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"{name} differs after resume")


def test_rerun_with_other_config_starts_fresh_and_must_fails(
    tmp_path: Path, tiny_mi: ModelInput
) -> None:
    make_trainer(tmp_path, tiny_mi, loop={"epochs": 1}).fit()
    fresh = make_trainer(tmp_path, tiny_mi, loop={"epochs": 1}, optimizer={"lr": 0.02})
    fresh.resume()
    assert fresh.resumed_from_step is None and fresh.state.step == 0
    strict = make_trainer(
        tmp_path, tiny_mi, loop={"epochs": 1}, optimizer={"lr": 0.02}, checkpoint={"resume": "must"}
    )
    with pytest.raises(ValueError, match="different config or model input"):
        strict.resume()
    same = make_trainer(tmp_path, tiny_mi, loop={"epochs": 1})
    assert same.fit()["resumed_from_step"] == same.total_steps  # completed run: nothing left to do


def test_checkpoints_are_self_describing_and_best_is_loadable(
    tmp_path: Path, tiny_mi: ModelInput
) -> None:
    trainer = make_trainer(tmp_path, tiny_mi, loop={"epochs": 4})
    summary = trainer.fit()
    last = read_checkpoint(summary["last_checkpoint"])
    for key in (
        "model_spec",
        "model_state",
        "optimizer",
        "scheduler",
        "scaler",
        "rng",
        "config",
        "metadata",
    ):
        assert key in last
    assert last["metadata"]["step"] == summary["final_step"]
    assert last["config"]["optimizer"]["lr"] == 0.01
    _model, spec, meta = load_checkpoint_model(summary["best_checkpoint"])
    assert spec.name == "lstm_attention" and meta["classes"] == list(tiny_mi.classes)
    assert meta["step"] == summary["best_step"]
    assert meta["val_metric"] == pytest.approx(summary["best_val_metric"])
    assert len(summary["history"]) == 4
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))  # no temporary files left behind


def test_bf16_autocast_trains_on_cpu(tmp_path: Path, tiny_mi: ModelInput) -> None:
    trainer = make_trainer(
        tmp_path, tiny_mi, precision="bf16", loop={"epochs": 2}, model={"name": "resnet1d"}
    )
    assert trainer.policy.autocast_dtype == torch.bfloat16
    summary = trainer.fit()
    assert summary["precision"] == "bf16"
    assert all(torch.isfinite(torch.tensor(h["val_loss"])) for h in summary["history"])
    # weights stay fp32 (autocast, not a cast of the model)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_early_stopping_stops_before_the_last_epoch(tmp_path: Path, tiny_mi: ModelInput) -> None:
    trainer = make_trainer(
        tmp_path,
        tiny_mi,
        optimizer={"lr": 1e-9},
        loop={"epochs": 20, "early_stopping_patience": 2, "min_delta": 0.5},
    )
    summary = trainer.fit()
    assert summary["stopped_early"] is True
    assert summary["epochs_completed"] == 3  # best at epoch 1, then 2 epochs without improvement


def test_rerun_on_other_data_of_the_same_shape_starts_fresh(
    tmp_path: Path, tiny_mi: ModelInput
) -> None:
    make_trainer(tmp_path, tiny_mi, loop={"epochs": 1}).fit()
    other = make_model_input(seed=1)
    assert {s: other.X[s].shape for s in other.X} == {s: tiny_mi.X[s].shape for s in tiny_mi.X}
    rerun = make_trainer(tmp_path, other, loop={"epochs": 1})
    rerun.resume()
    assert rerun.resumed_from_step is None and rerun.state.step == 0
    summary = rerun.fit()
    assert summary["resumed_from_step"] is None and summary["final_step"] == rerun.total_steps
