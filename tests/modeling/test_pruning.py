"""Structured pruning shrinks layers by the configured share; magnitude pruning hits its sparsity."""

from __future__ import annotations

import pytest
import torch

from sensorops.architectures import ARCHITECTURES, ModelSpec, build_model
from sensorops.modeling import PruningError
from sensorops.modeling.config import FinetuneConfig
from sensorops.modeling.finetune import finetune
from sensorops.modeling.metrics import count_params, weight_sparsity
from sensorops.modeling.pruning import MagnitudePruner, structured_prune
from tests.modeling.helpers import make_model_input


def _model(arch: str, hidden: int = 20, layers: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelSpec(arch, 3, 3, 32, hidden=hidden, layers=layers, heads=2)).eval()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_structured_pruning_removes_the_configured_share(arch: str) -> None:
    model = _model(arch)
    before = count_params(model)
    report = structured_prune(model, amount=0.2)
    assert report.groups
    for group in report.groups:
        assert group.units_before - group.units_after == round(0.2 * group.units_before)
    assert report.units_removed_share == pytest.approx(0.2)
    assert report.params_before == before and report.params_after == count_params(model) < before
    out = model(torch.randn(4, 17, 3))
    assert out.shape == (4, 3)


def test_lstm_pruning_shrinks_every_layer_and_the_consumers() -> None:
    model = _model("lstm_attention", hidden=20, layers=2)
    structured_prune(model, 0.25)
    assert model.lstm.hidden_size == 15
    assert model.lstm.weight_hh_l1.shape == (60, 15) and model.lstm.weight_ih_l1.shape == (60, 15)
    assert model.pool.proj.in_features == 15 and model.head.in_features == 15


def test_structured_pruning_keeps_the_largest_l2_units() -> None:
    model = _model("resnet1d", hidden=10, layers=1)
    conv1 = model.blocks[0].conv1.weight.detach().clone()
    norms = conv1.flatten(1).norm(dim=1)
    structured_prune(model, 0.2)
    kept = torch.sort(torch.topk(norms, 8).indices).values
    assert torch.equal(model.blocks[0].conv1.weight, conv1[kept])


def test_structured_pruning_rejects_bad_amount_and_unknown_models() -> None:
    with pytest.raises(PruningError, match=r"amount must be in \(0, 1\); got 1.5"):
        structured_prune(_model("resnet1d"), 1.5)
    with pytest.raises(PruningError, match="no structure that structured pruning knows"):
        structured_prune(torch.nn.Sequential(torch.nn.Conv1d(3, 4, 3)), 0.2)


def test_magnitude_pruning_sparsity_survives_finetuning() -> None:
    mi = make_model_input(n_per_class={"train": 4, "val": 1, "test": 1})
    model = _model("transformer", hidden=8, layers=1)
    pruner = MagnitudePruner(0.5).fit(model)
    assert weight_sparsity(model) == pytest.approx(0.5, abs=1e-3)
    losses = finetune(
        model,
        mi.X["train"],
        mi.y["train"],
        FinetuneConfig(epochs=2, batch_size=4),
        after_step=pruner.apply,
    )
    assert len(losses) == 2
    assert weight_sparsity(model) == pytest.approx(0.5, abs=1e-3)
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            assert torch.all(p[~pruner.masks_[name]] == 0)
    with pytest.raises(PruningError, match="sparsity must be in"):
        MagnitudePruner(0.0).fit(model)


def test_finetune_lowers_the_loss() -> None:
    mi = make_model_input()
    model = _model("resnet1d", hidden=8, layers=1)
    losses = finetune(
        model, mi.X["train"], mi.y["train"], FinetuneConfig(epochs=6, lr=1e-2, batch_size=16)
    )
    assert losses[-1] < losses[0]
    assert not model.training
