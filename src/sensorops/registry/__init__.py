"""MLflow model registry for sensorops: register, gate, promote, roll back, inspect.

No Kedro imports here; the ``promotion`` pipeline and the ``sensorops models`` CLI are thin
layers over this package.
"""

from sensorops.registry.client import Registry, connect, resolve_tracking_uri
from sensorops.registry.config import GateConfig, LockConfig, PromotionConfig
from sensorops.registry.errors import (
    GateRefused,
    LockBusy,
    NotFoundError,
    RegistrationFailed,
    RegistryConfigError,
    RegistryError,
    ServerUnreachable,
    TransitionFailed,
)
from sensorops.registry.gates import GateReport, GateResult
from sensorops.registry.history import read_history
from sensorops.registry.inspect import ModelRef, describe_version, list_models, list_versions
from sensorops.registry.lock import RegistryLease
from sensorops.registry.register import (
    ComparisonRow,
    RegisteredVersion,
    VariantSpec,
    build_variants,
    lineage_tags,
    parse_comparison,
    register_variants,
)
from sensorops.registry.transitions import (
    ModelState,
    TransitionResult,
    consistency_problems,
    production_lineage,
    promote,
    read_state,
    rollback,
)

__all__ = [
    "ComparisonRow",
    "GateConfig",
    "GateRefused",
    "GateReport",
    "GateResult",
    "LockBusy",
    "LockConfig",
    "ModelRef",
    "ModelState",
    "NotFoundError",
    "PromotionConfig",
    "RegisteredVersion",
    "RegistrationFailed",
    "Registry",
    "RegistryConfigError",
    "RegistryError",
    "RegistryLease",
    "ServerUnreachable",
    "TransitionFailed",
    "TransitionResult",
    "VariantSpec",
    "build_variants",
    "connect",
    "consistency_problems",
    "describe_version",
    "lineage_tags",
    "list_models",
    "list_versions",
    "parse_comparison",
    "production_lineage",
    "promote",
    "read_history",
    "read_state",
    "register_variants",
    "resolve_tracking_uri",
    "rollback",
]
