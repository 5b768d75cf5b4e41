"""CutMix / Mixup (shapes, label mass, train split only) and the curriculum's score and pacing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sensorops.training.augment import AugmentConfig, BatchAugmenter, cutmix, mixup, one_hot
from sensorops.training.config import ConfigError, TrainingConfig
from sensorops.training.curriculum import (
    Curriculum,
    CurriculumConfig,
    difficulty_scores,
    pool_fraction,
)
from tests.training.conftest import make_model_input


def test_cutmix_swaps_one_segment_and_mixes_labels_by_its_length() -> None:
    x = torch.arange(2 * 10 * 3, dtype=torch.float32).reshape(2, 10, 3)
    y = one_hot(torch.tensor([0, 2]), 3)
    perm = torch.tensor([1, 0])
    out, soft = cutmix(x, y, perm, start=2, width=4)
    assert out.shape == x.shape and soft.shape == (2, 3)
    torch.testing.assert_close(out[0, 2:6], x[1, 2:6])
    torch.testing.assert_close(out[0, :2], x[0, :2])
    torch.testing.assert_close(out[0, 6:], x[0, 6:])
    torch.testing.assert_close(soft[0], torch.tensor([0.6, 0.0, 0.4]))
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(2))
    assert x[0, 2, 0] == 6.0  # input untouched


def test_mixup_label_mass_sums_to_one() -> None:
    x = torch.randn(4, 8, 2)
    y = one_hot(torch.tensor([0, 1, 1, 0]), 2)
    out, soft = mixup(x, y, torch.tensor([3, 2, 1, 0]), 0.3)
    torch.testing.assert_close(out[0], 0.3 * x[0] + 0.7 * x[3])
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(4))


def test_augmenter_follows_its_probabilities_and_is_seeded() -> None:
    cfg = AugmentConfig(cutmix_prob=1.0, mixup_prob=0.0)
    aug = BatchAugmenter(cfg, 3, seed=0)
    x, y = torch.randn(6, 20, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    outs = [aug(x, y) for _ in range(20)]
    assert aug.counts["mixup"] == 0 and aug.counts["cutmix"] >= 18
    for out, soft in outs:
        assert out.shape == x.shape and soft.shape == (6, 3)
        torch.testing.assert_close(soft.sum(dim=1), torch.ones(6))
    again = BatchAugmenter(cfg, 3, seed=0)
    torch.testing.assert_close(again(x, y)[0], outs[0][0])
    off = BatchAugmenter(AugmentConfig(), 3, seed=0)
    same, soft = off(x, y)
    assert same is x and torch.equal(soft.argmax(1), y)


@pytest.mark.parametrize("key", ["cutmix_prob", "mixup_prob"])
def test_bad_probability_names_the_key(key: str) -> None:
    with pytest.raises(ConfigError, match=f"training.trainer.augment.{key}"):
        TrainingConfig.from_dict({"augment": {key: 1.5}})


def test_trainer_augments_train_batches_only(tmp_path) -> None:
    """Validation and the test split never pass through the augmenter."""
    from sensorops.training.distributed import DistContext
    from sensorops.training.loop import Trainer

    mi = make_model_input(n_per_class=8, length=16)
    cfg = TrainingConfig.from_dict(
        {
            "model": {"name": "resnet1d", "hidden": 8, "layers": 1},
            "data": {"batch_size": 4},
            "loop": {"epochs": 1, "early_stopping_patience": None},
            "augment": {"cutmix_prob": 0.5, "mixup_prob": 0.5},
            "mlflow": {"enabled": False},
            "precision": "fp32",
            "progress_bar": "never",
            "output_dir": str(tmp_path),
        }
    )
    ctx = DistContext(0, 0, 1, torch.device("cpu"), None, "localhost")
    trainer = Trainer(cfg, ctx, mi)
    seen: list[int] = []
    original = trainer.augmenter

    class Spy:
        def __call__(self, x, y):
            seen.append(len(y))
            return original(x, y)

        def reseed(self, step: int) -> None:
            original.reseed(step)

    trainer.augmenter = Spy()  # type: ignore[assignment]
    summary = trainer.fit()
    assert sum(seen) == summary["samples_trained"]  # every training sample, nothing else
    seen.clear()
    trainer.validate()
    assert seen == []  # validation never augmented
    assert sum(original.counts.values()) == summary["final_step"]


def test_difficulty_ranks_a_typical_series_easier_than_an_atypical_one() -> None:
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 40)
    X, y = [], []
    for code, freq in enumerate((1.0, 3.0)):
        for i in range(6):
            noise = 0.05 if i < 5 else 0.0
            series = np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(40)
            if i == 5:  # looks like the other class
                series = np.sin(2 * np.pi * (4.0 - freq) * t)
            X.append(series[:, None])
            y.append(code)
    X, y = np.stack(X), np.asarray(y)
    scores = difficulty_scores(X, y)
    assert scores.shape == (12,) and ((0 <= scores) & (scores <= 1)).all()
    for code in (0, 1):
        members = np.flatnonzero(y == code)
        assert scores[members].argmax() == 5  # the atypical one is the hardest


def test_pacing_widens_from_start_fraction_to_all() -> None:
    cfg = CurriculumConfig(enabled=True, start_fraction=0.25, pace_share=0.5)
    assert pool_fraction(0, 100, cfg) == pytest.approx(0.25)
    assert pool_fraction(25, 100, cfg) == pytest.approx(0.625)
    assert pool_fraction(50, 100, cfg) == 1.0 and pool_fraction(99, 100, cfg) == 1.0
    assert pool_fraction(0, 100, CurriculumConfig(enabled=False)) == 1.0
    mi = make_model_input(n_per_class=12, length=16)
    cur = Curriculum(cfg, mi.X["train"], mi.y["train"], total_steps=100, seed=0)
    pool0 = cur.pool(0)
    assert set(np.unique(mi.y["train"][pool0])) == {0, 1, 2}  # every class from step 0
    assert len(pool0) < len(mi.y["train"]) and len(cur.pool(60)) == len(mi.y["train"])
    sel = torch.arange(len(mi.y["train"]))
    restricted = cur.restrict(sel, 0).numpy()
    assert set(restricted) <= set(pool0.tolist())
    np.testing.assert_array_equal(mi.y["train"][restricted], mi.y["train"])  # same class
