"""Registering ONNX models as versions of a registered model, with lineage tags.

Each version is logged with ``mlflow.onnx.log_model`` (CPU execution provider, signature, input
example, explicit pip requirements) into the active MLflow run (the ``kedro run``'s) or a new run,
linked to its input data with ``mlflow.log_input``, registered, tagged and described. New versions
start in stage ``candidate``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensorops.model_input import ModelInput
from sensorops.registry.client import Registry, connect
from sensorops.registry.config import PromotionConfig
from sensorops.registry.errors import RegistryConfigError
from sensorops.registry.history import append_event
from sensorops.registry.lineage import (
    KEDRO_RUN_ID_TAG,
    actor,
    data_digests,
    dq_tags,
    git_commit,
    package_version,
    scalar_tags,
)
from sensorops.registry.lock import RegistryLease
from sensorops.registry.scoring import CPU_PROVIDERS, onnx_logits, score
from sensorops.registry.stages import STAGE_TAG

logger = logging.getLogger(__name__)

VARIANT_TAG = "sensorops.variant"


@dataclass(frozen=True)
class VariantSpec:
    """One ONNX file to register.

    Attributes:
        variant: variant name (``fp32``, ``int8_dynamic``...).
        onnx_path: path of the ``.onnx`` file.
        tags: variant-specific version tags (metrics, gate results...).
    """

    variant: str
    onnx_path: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RegisteredVersion:
    """A version created by :func:`register_variants`.

    Attributes:
        name: registered model name.
        version: version number, as a string.
        variant: variant name.
        run_id: MLflow run the model was logged in.
        model_uri: ``models:/m-...`` URI of the logged model.
        test_accuracy: accuracy of the ONNX model on the test split, in [0, 1].
        test_macro_f1: macro-F1 of the ONNX model on the test split, in [0, 1].
    """

    name: str
    version: str
    variant: str
    run_id: str
    model_uri: str
    test_accuracy: float
    test_macro_f1: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pip_requirements() -> list[str]:
    reqs = []
    for dist in ("mlflow", "onnx", "onnxruntime", "onnxruntime-gpu", "numpy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            reqs.append(f"{dist}=={importlib.metadata.version(dist)}")
    return reqs


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def _logging_run(reg: Registry, experiment_name: str) -> Iterator[str]:
    """Yield the id of the active run, or of a run started (and ended) here."""
    import mlflow

    with reg.fluent():
        active = mlflow.active_run()
        if active is not None:
            yield active.info.run_id
            return
        mlflow.set_experiment(experiment_name)
        with mlflow.start_run(run_name="sensorops-register") as run:
            yield run.info.run_id


def ensure_registered_model(reg: Registry, name: str, description: str = "") -> None:
    """Create registered model ``name`` unless it exists."""
    from mlflow.exceptions import MlflowException

    try:
        reg.client.create_registered_model(name, description=description or None)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise


def register_variants(
    variants: list[VariantSpec],
    mi: ModelInput,
    name: str,
    common_tags: dict[str, str] | None = None,
    reg: Registry | None = None,
    config: PromotionConfig | None = None,
) -> list[RegisteredVersion]:
    """Log, register and tag each ONNX file in ``variants`` as a new ``candidate`` version of ``name``.

    The ONNX models are scored on ``mi.X["test"]`` (``(n_series, length, n_channels)``) so that
    every version carries its own test metrics; the train and test splits are logged as run
    inputs (``mlflow.data``) and their digests put on every version.

    Args:
        variants: files to register, in order.
        mi: model input used for the signature, input example, digests and test metrics.
        name: registered model name.
        common_tags: tags put on every version (DQ results, parity, lineage).
        reg: registry (default: the tracking URI of the current MLflow run / environment).
        config: promotion config (experiment and lease settings).

    Returns:
        The created versions, in the order of ``variants``.

    Raises:
        RegistryConfigError: an ONNX file is missing; nothing was registered.
    """
    import mlflow
    import mlflow.onnx
    import onnx
    from mlflow.models import infer_signature

    cfg = config or PromotionConfig()
    reg = reg or connect(None)
    missing = [v.onnx_path for v in variants if not Path(v.onnx_path).is_file()]
    if missing:
        raise RegistryConfigError(
            f"ONNX file(s) {missing} do not exist; run the export/compression pipelines first"
        )
    if not variants:
        return []
    digests = data_digests(mi)
    example = np.ascontiguousarray(mi.X["test"][: min(5, len(mi.X["test"]))], dtype=np.float32)
    ensure_registered_model(
        reg,
        name,
        description=f"sensorops classifier over channels {list(mi.channels)} -> classes {list(mi.classes)}",
    )
    created: list[RegisteredVersion] = []
    with _logging_run(reg, cfg.experiment_name) as run_id:
        run = reg.client.get_run(run_id)
        for split, context in (("train", "training"), ("test", "testing")):
            ds = mlflow.data.from_numpy(
                mi.X[split],
                targets=mi.y[split],
                name=f"mi_model_input_{split}",
                digest=digests[f"data.{split}_digest"],
            )
            mlflow.log_input(ds, context=context)
        lineage = {
            "mlflow.run_id": run_id,
            "kedro.run_id": run.data.tags.get(KEDRO_RUN_ID_TAG, "none"),
            "git.commit": git_commit(),
            "sensorops.version": package_version(),
            "registered.by": actor(),
            "registered.at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        for spec in variants:
            path = Path(spec.onnx_path)
            model = onnx.load(str(path))
            model_bytes = model.SerializeToString()
            logits = onnx_logits(model_bytes, mi.X["test"])
            scores = score(logits, mi.y["test"])
            signature = infer_signature(example, onnx_logits(model_bytes, example))
            info = mlflow.onnx.log_model(
                model,
                name=spec.variant,
                signature=signature,
                input_example=example,
                onnx_execution_providers=CPU_PROVIDERS,
                pip_requirements=_pip_requirements(),
                save_as_external_data=False,
            )
            tags = {
                **(common_tags or {}),
                **digests,
                **lineage,
                **spec.tags,
                VARIANT_TAG: spec.variant,
                STAGE_TAG: "candidate",
                "onnx.path": str(path),
                "onnx.sha256": _file_sha256(path),
                "metric.test_accuracy": f"{scores.accuracy:.6f}",
                "metric.test_macro_f1": f"{scores.macro_f1:.6f}",
                "metric.n_test": str(scores.n),
            }
            mv = mlflow.register_model(info.model_uri, name, tags=tags)
            description = (
                f"{spec.variant} ONNX of {name}: test accuracy {scores.accuracy:.4f}, macro-F1 "
                f"{scores.macro_f1:.4f} on {scores.n} series (test digest {digests['data.test_digest']}); "
                f"MLflow run {run_id}, kedro run {lineage['kedro.run_id']}, commit {lineage['git.commit'][:12]}."
            )
            reg.client.update_model_version(name, mv.version, description=description)
            logger.info(
                "registered %s v%s (%s): accuracy %.4f",
                name,
                mv.version,
                spec.variant,
                scores.accuracy,
            )
            created.append(
                RegisteredVersion(
                    name=name,
                    version=str(mv.version),
                    variant=spec.variant,
                    run_id=run_id,
                    model_uri=info.model_uri,
                    test_accuracy=scores.accuracy,
                    test_macro_f1=scores.macro_f1,
                )
            )
    with RegistryLease(reg, name, cfg.lock, purpose="record registrations"):
        for rv in created:
            append_event(
                reg,
                name,
                {
                    "kind": "register",
                    "version": rv.version,
                    "variant": rv.variant,
                    "from": None,
                    "to": "candidate",
                    "at": lineage["registered.at"],
                    "by": lineage["registered.by"],
                    "evidence_run_id": rv.run_id,
                    "reason": "registered",
                },
            )
    return created


def _variants_from_comparison(comparison: Any) -> list[dict[str, Any]]:
    if isinstance(comparison, list):
        rows = comparison
    elif isinstance(comparison, dict) and isinstance(comparison.get("variants"), list):
        rows = comparison["variants"]
    elif isinstance(comparison, dict):
        rows = [{"name": k, **v} for k, v in comparison.items() if isinstance(v, dict)]
    else:
        raise RegistryConfigError(
            "rpt_compression_comparison must be a list of variant rows, {'variants': [...]} or "
            f"{{name: row}}; got {type(comparison).__name__}"
        )
    for row in rows:
        if not isinstance(row, dict) or "name" not in row:
            raise RegistryConfigError(f"rpt_compression_comparison row needs a 'name'; got {row!r}")
    return rows


def _identity(path: str) -> str:
    """Content hash of an ONNX file (its resolved path when it does not exist)."""
    p = Path(path)
    return _file_sha256(p) if p.is_file() else str(p.resolve())


def build_variants(
    export_summary: dict[str, Any],
    compression_comparison: Any,
    evaluation: dict[str, Any] | None,
    config: PromotionConfig,
) -> list[VariantSpec]:
    """The base export plus every compression variant whose ``gate_passed`` is true.

    Args:
        export_summary: ``mdl_export_summary`` (``onnx_path``, ``parity_passed``, parity numbers...).
        compression_comparison: ``rpt_compression_comparison`` JSON (rows with ``name``,
            ``onnx_path``, ``accuracy``, ``gate_passed``...).
        evaluation: ``rpt_evaluation`` (accuracy, macro_f1...), attached to the base variant.
        config: promotion config (``base_variant``, ``register_compression_variants``).
    """
    if "onnx_path" not in export_summary:
        raise RegistryConfigError(
            f"mdl_export_summary lacks 'onnx_path'; keys are {sorted(export_summary)}"
        )
    base_tags = {"compression.gate_passed": "n/a", **scalar_tags("eval", evaluation or {})}
    specs = [VariantSpec(config.base_variant, str(export_summary["onnx_path"]), base_tags)]
    if config.register_compression_variants and compression_comparison is not None:
        seen = {_identity(str(export_summary["onnx_path"]))}
        for row in _variants_from_comparison(compression_comparison):
            ok = row.get("gate_passed") is True and row.get("registrable", True) is not False
            if not ok or not row.get("onnx_path"):
                logger.info(
                    "not registering variant %s: gate_passed=%s",
                    row["name"],
                    row.get("gate_passed"),
                )
                continue
            identity = _identity(str(row["onnx_path"]))
            if identity in seen:
                logger.info(
                    "compression variant %s is the export itself; registered once", row["name"]
                )
                continue
            seen.add(identity)
            tags = scalar_tags(
                "compression", {k: v for k, v in row.items() if k not in ("name", "onnx_path")}
            )
            tags["compression.gate_passed"] = "true"
            specs.append(VariantSpec(str(row["name"]), str(row["onnx_path"]), tags))
    return specs


def lineage_tags(
    export_summary: dict[str, Any],
    dq_summary: dict[str, Any],
    training_summary: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Tags shared by every version of one registration: DQ tiers, parity, export, training lineage.

    ``parity_*`` keys of the export summary become ``parity.*`` tags, its other scalars
    ``export.*``; every DQ tier becomes ``dq.<stage>.<tier>``.
    """
    tags = dq_tags(dq_summary)
    parity = {k[len("parity_") :]: v for k, v in export_summary.items() if k.startswith("parity_")}
    other = {
        k: v for k, v in export_summary.items() if not k.startswith("parity_") and k != "onnx_path"
    }
    tags.update(scalar_tags("parity", parity))
    tags.update(scalar_tags("export", other))
    tags["parity.passed"] = str(bool(export_summary.get("parity_passed", False))).lower()
    tags["execution_provider"] = str(
        export_summary.get("execution_provider", "CPUExecutionProvider")
    )
    if training_summary:
        for key in ("mlflow_child_run_id", "model_name", "best_val_metric", "best_checkpoint"):
            if key in training_summary:
                tags[f"training.{key}"] = str(training_summary[key])
    return tags
