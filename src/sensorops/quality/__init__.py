"""Three-tier data-quality gate on Great Expectations 1.x (library code; no Kedro imports).

Tier 1 (basic statistics), tier 2 (business rules) and tier 3 (model-based separability) are
expectation suites generated from :class:`DataQualityConfig`, stored as JSON in a GE file context
and validated against the long sensor table and statistics frames computed from it.
Great Expectations itself is imported lazily, on the first validation.
"""

from sensorops.quality.config import DataQualityConfig, DataQualityConfigError, load_config
from sensorops.quality.frames import DataQualityInputError, model_input_to_long
from sensorops.quality.gate import (
    DataQualityError,
    ExpectationOutcome,
    StageResult,
    TierResult,
    enforce,
    run_gate_on_model_input,
    run_gate_on_table,
    validate_model_input,
    validate_table,
)
from sensorops.quality.separability import SeparabilityProbe

__all__ = [
    "DataQualityConfig",
    "DataQualityConfigError",
    "DataQualityError",
    "DataQualityInputError",
    "ExpectationOutcome",
    "SeparabilityProbe",
    "StageResult",
    "TierResult",
    "enforce",
    "load_config",
    "model_input_to_long",
    "run_gate_on_model_input",
    "run_gate_on_table",
    "validate_model_input",
    "validate_table",
]
