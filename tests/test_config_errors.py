"""One config layer: every package answers the same unknown key with the same sentence.

Each package's parser is fed a misspelled key; each raises its own subclass of the one
:class:`~sensorops.config_validation.ConfigError`, and every message follows the one template:
``<dotted key> is not a known key; valid keys are [...]; did you mean '<closest>'?``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sensorops.config_validation import ConfigError, check_parameters, parse
from sensorops.modeling import CompressionConfig, ExportConfig
from sensorops.modeling import parse_config as modeling_parse
from sensorops.quality import DataQualityConfigError, load_config
from sensorops.registry.config import PromotionConfig
from sensorops.registry.errors import RegistryConfigError
from sensorops.timeseries import OutlierConfig, parse_config
from sensorops.timeseries.errors import IngestionConfigError
from sensorops.training.config import TrainingConfig, TrainingConfigError
from sensorops.training.evaluation import EvaluationConfig

TEMPLATE = re.compile(
    r"^(?P<key>[\w.]+) is not a known key; valid keys are \[(?P<valid>[^\]]*)\]"
    r"; did you mean '(?P<close>\w+)'\?$"
)

CASES: list[tuple[str, Callable[[], Any], type[ConfigError], str, str]] = [
    (
        "ingestion",
        lambda: parse_config(OutlierConfig, {"contamnation": 0.1}, "ingestion.outliers"),
        IngestionConfigError,
        "ingestion.outliers.contamnation",
        "contamination",
    ),
    (
        "data_quality",
        lambda: load_config({"basic_statistics": {"max_missing_rat": 0.1}}),
        DataQualityConfigError,
        "data_quality.basic_statistics.max_missing_rat",
        "max_missing_rate",
    ),
    (
        "promotion",
        lambda: PromotionConfig.from_params({"gates": {"regresion_metric": "accuracy"}}),
        RegistryConfigError,
        "promotion.gates.regresion_metric",
        "regression_metric",
    ),
    (
        "export",
        lambda: modeling_parse(ExportConfig, {"parity": {"atoll": 1e-4}}, "export"),
        ConfigError,
        "export.parity.atoll",
        "atol",
    ),
    (
        "compression",
        lambda: modeling_parse(CompressionConfig, {"opsett": 20}, "compression"),
        ConfigError,
        "compression.opsett",
        "opset",
    ),
    (
        "training.trainer",
        lambda: TrainingConfig.from_dict({"optimizer": {"weight_decy": 0.1}}),
        TrainingConfigError,
        "training.trainer.optimizer.weight_decy",
        "weight_decay",
    ),
    (
        "training.evaluation",
        lambda: EvaluationConfig.from_dict({"batch_sise": 8}),
        TrainingConfigError,
        "training.evaluation.batch_sise",
        "batch_size",
    ),
]


@pytest.mark.parametrize(
    ("package", "build", "error", "key", "close"), CASES, ids=[c[0] for c in CASES]
)
def test_every_package_words_an_unknown_key_the_same(
    package: str, build: Callable[[], Any], error: type[ConfigError], key: str, close: str
) -> None:
    with pytest.raises(error) as info:
        build()
    assert isinstance(info.value, ConfigError)
    match = TEMPLATE.match(str(info.value))
    assert match, f"{package}: {info.value}"
    assert match["key"] == key and match["close"] == close
    assert f"'{close}'" in match["valid"]


def test_the_parameter_tree_check_uses_the_same_sentence(tmp_path: Path) -> None:
    (tmp_path / "parameters_training.yml").write_text("training:\n  epochs: 3\n  batch_size: 8\n")
    with pytest.raises(ConfigError) as info:
        check_parameters({"training": {"batch_sise": 4}}, tmp_path, "test")
    line = str(info.value).splitlines()[-1].removeprefix("  - ")
    match = TEMPLATE.match(line)
    assert match and match["key"] == "training.batch_sise" and match["close"] == "batch_size"


def test_choices_bounds_and_types_follow_the_template() -> None:
    from sensorops.timeseries import AlignmentConfig

    with pytest.raises(ConfigError) as info:
        parse("ingestion.alignment", AlignmentConfig, {"dtw": {"window": "itakra", "radius": -1}})
    assert str(info.value) == (
        "ingestion.alignment.dtw.window must be one of ['none', 'sakoe_chiba', 'itakura']; "
        "got 'itakra'; did you mean 'itakura'?; "
        "ingestion.alignment.dtw.radius must be >= 0; got -1"
    )
    with pytest.raises(TrainingConfigError, match=r"training\.trainer\.seed: .*; got '3'"):
        TrainingConfig.from_dict({"seed": "3"})  # no silent "3" -> 3
    with pytest.raises(ConfigError, match=r"ingestion\.outliers must be a mapping; got list"):
        parse("ingestion.outliers", OutlierConfig, [1])
