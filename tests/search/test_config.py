"""The ``search`` parameters: the shipped files parse, a bad space is rejected before any trial,
naming the key; the Pareto front and the choice on known rows."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from sensorops.config_validation import deep_merge
from sensorops.search import SearchConfig, SearchConfigError
from sensorops.search.report import choose, chosen_overrides, trials_frame

CONF = Path(__file__).resolve().parents[2] / "conf"


def base_params() -> dict:
    return yaml.safe_load((CONF / "base" / "parameters_search.yml").read_text())["search"]


def test_shipped_parameters_parse() -> None:
    base = SearchConfig.from_dict(base_params())
    assert set(base.space.architectures) == {"lstm_attention", "resnet1d", "transformer"}
    assert base.study.storage is None and base.study.storage_path == "optuna.db"
    test = yaml.safe_load((CONF / "test" / "parameters_search.yml").read_text())["search"]
    cfg = SearchConfig.from_dict(deep_merge(base_params(), test))
    assert cfg.budget.n_trials == 4 and len(cfg.enqueue) == 4
    assert cfg.enqueue[2].lr == 1e-6  # the two trials pruned by construction


@pytest.mark.parametrize(
    ("edit", "key", "fragment"),
    [
        (lambda p: p["space"]["architectures"].update(gatx=p["space"]["architectures"]["resnet1d"]),
         "search.space.architectures.gatx", "must be one of"),
        (lambda p: p["space"]["lr"].update(low=0.1, high=0.001),
         "search.space.lr", "low must be <= high; got low=0.1, high=0.001"),
        (lambda p: p["space"]["architectures"]["resnet1d"]["layers"].update(low=4, high=2),
         "search.space.architectures.resnet1d.layers", "low must be <= high"),
        (lambda p: p["space"]["architectures"]["transformer"].update(heads=[3]),
         "search.space.architectures.transformer.hidden", "heads=3 does not divide"),
        (lambda p: p["budget"].update(n_trails=3), "search.budget.n_trails", "did you mean 'n_trials'"),
        (lambda p: p.update(enqueue=[{"architecture": "resnet1d", "hidden": 1000, "layers": 1,
                                      "dropout": 0.0, "lr": 0.001}]),
         "search.enqueue.0", "hidden=1000 lies outside"),
    ],
)  # fmt: skip
def test_bad_space_names_the_key(edit, key: str, fragment: str) -> None:
    params = copy.deepcopy(base_params())
    edit(params)
    with pytest.raises(SearchConfigError) as info:
        SearchConfig.from_dict(params)
    assert key in str(info.value) and fragment in str(info.value), str(info.value)


def test_bad_space_fails_before_any_trial(tmp_path: Path) -> None:
    from sensorops.pipelines.search.nodes import run_search
    from tests.training.conftest import make_model_input

    params = copy.deepcopy(base_params())
    params["study"]["storage_path"] = str(tmp_path / "optuna.db")
    params["output_dir"] = str(tmp_path / "search")
    params["space"]["dropout"] = {"low": 0.5, "high": 0.1}
    with pytest.raises(SearchConfigError, match=r"search\.space\.dropout: low must be <= high"):
        run_search(make_model_input(), {"passed": True}, params, {})
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "search").exists()


def _row(number: int, acc: float, ms: float, n: int, state: str = "COMPLETE") -> dict:
    return {"number": number, "state": state, "architecture": "resnet1d", "hidden": 8, "layers": 1,
            "heads": None, "dropout": 0.0, "lr": 0.01, "val_accuracy": acc, "latency_p50_ms": ms,
            "onnx_params": n, "val_loss": 0.5, "mlflow_run_id": None}  # fmt: skip


def test_pareto_front_and_choice() -> None:
    rows = [
        _row(0, 0.90, 1.0, 100),  # front
        _row(1, 0.95, 2.0, 200),  # front (most accurate)
        _row(2, 0.90, 1.5, 150),  # dominated by 0
        _row(3, 0.95, 1.8, 300),  # front: faster than 1 at the same accuracy, but bigger
        _row(4, float("nan"), float("nan"), 0, state="PRUNED"),
    ]
    df = trials_frame(rows)
    assert df.set_index("number")["pareto"].to_dict() == {
        0: True, 1: True, 2: False, 3: True, 4: False
    }  # fmt: skip
    assert choose(df, 0.0)["number"] == 3  # fastest of the most accurate
    assert choose(df, 0.05)["number"] == 0  # within 0.05 of the best: the fastest
    overrides = chosen_overrides(choose(df, 0.0))["training"]["trainer"]
    assert overrides == {
        "model": {"name": "resnet1d", "hidden": 8, "layers": 1, "dropout": 0.0},
        "optimizer": {"lr": 0.01},
    }


def test_no_completed_trial_is_an_error() -> None:
    from sensorops.search.study import SearchError

    df = trials_frame([_row(0, float("nan"), float("nan"), 0, state="PRUNED")])
    with pytest.raises(SearchError, match=r"no completed trial.*PRUNED"):
        choose(df, 0.0)
