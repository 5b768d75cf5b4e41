"""Training sized in optimizer steps (floor, validation interval) and early-stopping tie-breaks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sensorops.training.config import TrainingConfig
from sensorops.training.distributed import DistContext
from sensorops.training.loop import Trainer, plan_steps
from tests.training.conftest import make_model_input

CPU = DistContext(0, 0, 1, torch.device("cpu"), None, "localhost")


def _cfg(tmp: Path, **loop: object) -> TrainingConfig:
    return TrainingConfig.from_dict(
        {
            "model": {"name": "resnet1d", "hidden": 8, "layers": 1},
            "data": {"batch_size": 8},
            "loop": {"epochs": 2, "early_stopping_patience": 1, **loop},
            "mlflow": {"enabled": False},
            "precision": "fp32",
            "progress_bar": "never",
            "output_dir": str(tmp),
        }
    )


def test_min_steps_is_a_floor_and_max_steps_still_wins(tmp_path: Path) -> None:
    assert plan_steps(_cfg(tmp_path, min_steps=25), 3) == (25, 9)  # 9 epochs of 3 steps
    assert plan_steps(_cfg(tmp_path, min_steps=4), 3) == (6, 2)  # epochs already give more
    assert plan_steps(_cfg(tmp_path, min_steps=25, max_steps=5), 3) == (5, 2)


def test_floor_with_validation_interval_and_no_early_stop_before_the_floor(
    tmp_path: Path,
) -> None:
    mi = make_model_input(n_per_class=8, length=16)  # 12 train series, batch 8: 2 steps/epoch
    trainer = Trainer(_cfg(tmp_path, min_steps=12, eval_every_n_steps=4), CPU, mi)
    summary = trainer.fit()
    assert summary["final_step"] == 12  # patience 1 would have stopped long before
    assert [h["step"] for h in summary["history"]] == [4.0, 8.0, 12.0]  # every 2nd epoch


@pytest.mark.parametrize(
    ("tie_break", "val_loss", "improved"),
    [("val_loss", 0.4, True), ("val_loss", 0.6, False), ("later", 0.6, True), ("none", 0.1, False)],
)
def test_a_tie_is_broken_by_validation_loss_or_the_later_checkpoint(
    tmp_path: Path, tie_break: str, val_loss: float, improved: bool
) -> None:
    trainer = Trainer(_cfg(tmp_path, tie_break=tie_break), CPU, make_model_input(8, 16))
    trainer.state.best_metric, trainer.state.best_val_loss = 1.0, 0.5
    assert trainer._improved(1.0, val_loss) is improved
    assert trainer._improved(0.9, 0.01) is False  # worse accuracy never wins on loss
    assert trainer._improved(1.01, 9.0) is True


def test_curriculum_pool_share_is_in_the_history(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, min_steps=8, early_stopping_patience=None).replace(
        curriculum={"enabled": True, "start_fraction": 0.5, "pace_share": 0.5}
    )
    summary = Trainer(cfg, CPU, make_model_input(n_per_class=8, length=16)).fit()
    shares = [h["curriculum_pool_fraction"] for h in summary["history"]]
    assert shares[0] < 1.0 and shares[-1] == 1.0 and shares == sorted(shares)
