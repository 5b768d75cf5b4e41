"""Training config: strict keys, errors that name the key, JSON round trip, conf files parse."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sensorops.training.config import ConfigError, TrainingConfig
from sensorops.training.evaluation import EvaluationConfig

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"model": {"name": "gru"}},
            r"training\.trainer\.model\.name must be one of \['lstm_attention', 'resnet1d', 'transformer', 'gat'\]; got 'gru'",
        ),
        (
            {"optimzer": {}},
            r"training\.trainer\.optimzer is not a known key; valid keys are \['model', 'data', 'optimizer'",
        ),
        ({"optimizer": {"lr": -1}}, r"training\.trainer\.optimizer\.lr must be > 0"),
        (
            {"precision": "fp8"},
            r"precision must be one of \['auto', 'fp32', 'tf32', 'bf16', 'fp16'\]; got 'fp8'",
        ),
        ({"launch": {"nproc_per_node": 0}}, r"launch\.nproc_per_node must be >= 1"),
        ({"launch": {"nnodes": 2}}, r"rdzv_endpoint \(host:port\) is required"),
        ({"loop": {"early_stopping_metric": "acc"}}, r"early_stopping_metric must be one of"),
        (
            {"checkpoint": {"resume": "yes"}},
            r"checkpoint\.resume must be one of \['auto', 'never', 'must'\]",
        ),
    ],
)
def test_bad_params_raise_naming_the_key(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainingConfig.from_dict(params)


def test_json_round_trip_and_replace(tmp_path: Path) -> None:
    cfg = TrainingConfig.from_dict({"optimizer": {"lr": 1}, "launch": {"nproc_per_node": 3}})
    assert cfg.optimizer.lr == 1.0 and isinstance(cfg.optimizer.lr, float)
    path = tmp_path / "resolved.json"
    path.write_text(cfg.to_json())
    back = TrainingConfig.from_json(path)
    assert back == cfg
    changed = back.replace(mlflow={"run_id": "abc"}, output_dir="x")
    assert (
        changed.mlflow.run_id == "abc"
        and changed.mlflow.log_every_n_steps == cfg.mlflow.log_every_n_steps
    )
    assert (
        changed.fingerprint_dict() == cfg.fingerprint_dict()
    )  # launch/tracking do not change WHAT is trained
    assert cfg.replace(optimizer={"lr": 0.5}).fingerprint_dict() != cfg.fingerprint_dict()


def test_missing_config_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist; `kedro run --pipelines=training`"):
        TrainingConfig.from_json(tmp_path / "none.json")


@pytest.mark.parametrize("env", ["base", "test", "gpu"])
def test_parameter_files_build_valid_configs(env: str) -> None:
    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return out

    base = yaml.safe_load((CONF / "base" / "parameters_training.yml").read_text())["training"]
    params = base
    if env != "base":
        params = merge(
            base, yaml.safe_load((CONF / env / "parameters_training.yml").read_text())["training"]
        )
    assert set(params) == {"trainer", "evaluation"}
    TrainingConfig.from_dict(params["trainer"])
    EvaluationConfig.from_dict(params["evaluation"])
    # base is the complete reference: the dataclass defaults and base keys agree one to one
    assert set(base["trainer"]) == set(TrainingConfig().to_dict())
