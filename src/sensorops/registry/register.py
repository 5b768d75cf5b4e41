"""Registering ONNX models as versions of a registered model, with lineage tags.

Each version is logged with ``mlflow.onnx.log_model`` (CPU execution provider, signature, input
example, explicit pip requirements) into the active MLflow run (the ``kedro run``'s) or a new run,
linked to its input data with ``mlflow.log_input``, registered, tagged and described. New versions
start in stage ``candidate``. Registration is all-or-nothing: when one variant fails, the versions
(and history events) this call created are deleted again before the error is raised.

The compression pipeline's ``rpt_compression_comparison`` JSON is parsed once, at the node
boundary, by its contract (:class:`sensorops.modeling.comparison.ComparisonTable`) into typed
:class:`ComparisonRow` objects (:func:`parse_comparison`); everything after that works on them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensorops.contracts.preprocessing import PreprocessingState
from sensorops.model_input import ModelInput
from sensorops.modeling.comparison import ComparisonRow, ComparisonTable
from sensorops.modeling.errors import ModelingError
from sensorops.registry.client import Registry, connect
from sensorops.registry.config import PromotionConfig
from sensorops.registry.errors import RegistrationFailed, RegistryConfigError
from sensorops.registry.history import append_event, delete_event
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
REGISTRATION_TAG = "sensorops.registration_id"
"""Version tag naming the :func:`register_variants` call that created the version (for undo)."""


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


def ensure_registered_model(reg: Registry, name: str, description: str = "") -> bool:
    """Create registered model ``name`` unless it exists; True when this call created it."""
    from mlflow.exceptions import MlflowException

    try:
        reg.client.create_registered_model(name, description=description or None)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise
        return False
    return True


def _undo_registration(
    reg: Registry,
    name: str,
    registration_id: str,
    versions: list[str],
    events: list[int],
    model_created: bool,
) -> tuple[list[str], list[str]]:
    """Delete what one failed :func:`register_variants` call created; ``(deleted versions, errors)``.

    Versions are those recorded in ``versions`` plus any version of ``name`` tagged with
    ``registration_id`` (one whose ``register_model`` call failed after the version was created).
    The registered model goes too when this call created it and no version is left.
    """
    errors: list[str] = []
    for seq in events:
        try:
            delete_event(reg, name, seq)
        except Exception as exc:  # keep undoing the rest
            errors.append(f"history event #{seq}: {exc}")
    targets = list(versions)
    try:
        for mv in reg.client.search_model_versions(f"name='{name}'"):
            if (mv.tags or {}).get(REGISTRATION_TAG) == registration_id:
                targets.append(str(mv.version))
    except Exception as exc:
        errors.append(f"listing versions of {name!r}: {exc}")
    deleted = []
    for version in sorted(set(targets), key=int):
        try:
            reg.client.delete_model_version(name, version)
            deleted.append(version)
        except Exception as exc:
            errors.append(f"v{version}: {exc}")
    if model_created and not errors:
        try:
            if not reg.client.search_model_versions(f"name='{name}'"):
                reg.client.delete_registered_model(name)
        except Exception as exc:
            errors.append(f"registered model {name!r}: {exc}")
    return deleted, errors


def register_variants(
    variants: list[VariantSpec],
    mi: ModelInput,
    name: str,
    common_tags: dict[str, str] | None = None,
    reg: Registry | None = None,
    config: PromotionConfig | None = None,
    preprocessing: PreprocessingState | None = None,
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
        preprocessing: when given, every version is the self-contained model of
            :mod:`sensorops.registry.pyfunc` (ONNX + this state; raw series in, probabilities
            out); otherwise the bare ONNX network.

    Returns:
        The created versions, in the order of ``variants``.

    Raises:
        RegistryConfigError: an ONNX file is missing; nothing was registered.
        RegistrationFailed: a variant could not be scored, logged, registered or recorded; the
            versions and history events this call had created were deleted again (and the
            registered model, when this call created it), and the message lists them.
    """
    import mlflow
    import mlflow.data

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
    model_created = ensure_registered_model(
        reg,
        name,
        description=f"sensorops classifier over channels {list(mi.channels)} -> classes {list(mi.classes)}",
    )
    registration_id = uuid.uuid4().hex
    created: list[RegisteredVersion] = []
    made: list[str] = []  # version numbers created so far, also the one being tagged
    events: list[int] = []
    current = variants[0].variant
    try:
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
                current = spec.variant
                created.append(
                    _register_one(reg, spec, mi, name, example, run_id, {
                        **(common_tags or {}), **digests, **lineage, **spec.tags,
                        REGISTRATION_TAG: registration_id,
                    }, made, preprocessing)
                )  # fmt: skip
        with RegistryLease(reg, name, cfg.lock, purpose="record registrations"):
            for rv in created:
                current = rv.variant
                event = {
                    "kind": "register",
                    "version": rv.version,
                    "variant": rv.variant,
                    "from": None,
                    "to": "candidate",
                    "at": lineage["registered.at"],
                    "by": lineage["registered.by"],
                    "evidence_run_id": rv.run_id,
                    "reason": "registered",
                }
                events.append(append_event(reg, name, event))
    except Exception as exc:
        deleted, errors = _undo_registration(
            reg, name, registration_id, made, events, model_created
        )
        undone = (
            f"deleted the version(s) {deleted} this call had created"
            if deleted
            else "no version had been created"
        )
        if errors:
            undone += f"; could not undo everything: {errors}"
        raise RegistrationFailed(
            f"registering variant {current!r} of {name!r} failed ({type(exc).__name__}: {exc}); "
            f"registration is all-or-nothing, so {undone}"
        ) from exc
    return created


def _register_one(
    reg: Registry,
    spec: VariantSpec,
    mi: ModelInput,
    name: str,
    example: np.ndarray,
    run_id: str,
    tags: dict[str, str],
    made: list[str],
    preprocessing: PreprocessingState | None = None,
) -> RegisteredVersion:
    """Score, log and register one variant in the current run; appends its version to ``made``."""
    import mlflow
    import mlflow.onnx
    import onnx
    from mlflow.models import infer_signature

    path = Path(spec.onnx_path)
    model = onnx.load(str(path))
    model_bytes = model.SerializeToString()
    scores = score(onnx_logits(model_bytes, mi.X["test"]), mi.y["test"])
    signature = infer_signature(example, onnx_logits(model_bytes, example))
    if preprocessing is not None:
        from sensorops.registry import pyfunc

        info = pyfunc.log_model(path, preprocessing, spec.variant, pyfunc.pip_requirements())
        tags = {**tags, "sensorops.flavor": "pyfunc+onnx"}
    else:
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
        **tags,
        VARIANT_TAG: spec.variant,
        STAGE_TAG: "candidate",
        "onnx.path": str(path),
        "onnx.sha256": _file_sha256(path),
        "metric.test_accuracy": f"{scores.accuracy:.6f}",
        "metric.test_macro_f1": f"{scores.macro_f1:.6f}",
        "metric.n_test": str(scores.n),
    }
    mv = mlflow.register_model(info.model_uri, name, tags=tags)
    made.append(str(mv.version))
    description = (
        f"{spec.variant} ONNX of {name}: test accuracy {scores.accuracy:.4f}, macro-F1 "
        f"{scores.macro_f1:.4f} on {scores.n} series (test digest {tags['data.test_digest']}); "
        f"MLflow run {run_id}, kedro run {tags['kedro.run_id']}, commit {tags['git.commit'][:12]}."
    )
    reg.client.update_model_version(name, mv.version, description=description)
    logger.info(
        "registered %s v%s (%s): accuracy %.4f", name, mv.version, spec.variant, scores.accuracy
    )
    return RegisteredVersion(
        name=name,
        version=str(mv.version),
        variant=spec.variant,
        run_id=run_id,
        model_uri=info.model_uri,
        test_accuracy=scores.accuracy,
        test_macro_f1=scores.macro_f1,
    )


def parse_comparison(data: Any) -> list[ComparisonRow]:
    """The rows of ``rpt_compression_comparison``, read by its one parser
    (:meth:`sensorops.modeling.comparison.ComparisonTable.from_json`).

    Raises:
        RegistryConfigError: the mapping or a row is malformed; the message names the row and key.
    """
    try:
        return list(ComparisonTable.from_json(data).rows)
    except ModelingError as exc:
        raise RegistryConfigError(str(exc)) from None


def _identity(path: str) -> str:
    """Content hash of an ONNX file (its resolved path when it does not exist)."""
    p = Path(path)
    return _file_sha256(p) if p.is_file() else str(p.resolve())


def build_variants(
    export_summary: dict[str, Any],
    comparison: list[ComparisonRow],
    evaluation: dict[str, Any] | None,
    config: PromotionConfig,
) -> list[VariantSpec]:
    """The base export plus every compression variant whose gate passed and that is registrable.

    Args:
        export_summary: ``mdl_export_summary`` (``onnx_path``, ``parity_passed``, parity numbers...).
        comparison: ``rpt_compression_comparison`` rows, parsed by :func:`parse_comparison`.
        evaluation: ``rpt_evaluation`` (accuracy, macro_f1...), attached to the base variant.
        config: promotion config (``base_variant``, ``register_compression_variants``).
    """
    if "onnx_path" not in export_summary:
        raise RegistryConfigError(
            f"mdl_export_summary lacks 'onnx_path'; keys are {sorted(export_summary)}"
        )
    base_tags = {"compression.gate_passed": "n/a", **scalar_tags("eval", evaluation or {})}
    specs = [VariantSpec(config.base_variant, str(export_summary["onnx_path"]), base_tags)]
    if not config.register_compression_variants:
        return specs
    seen = {_identity(str(export_summary["onnx_path"]))}
    for row in comparison:
        if row.gate_passed is not True or not row.registrable or row.onnx_path is None:
            logger.info(
                "not registering variant %s: gate_passed=%s, registrable=%s",
                row.name,
                row.gate_passed,
                row.registrable,
            )
            continue
        identity = _identity(row.onnx_path)
        if identity in seen:
            logger.info("compression variant %s is the export itself; registered once", row.name)
            continue
        seen.add(identity)
        tags = scalar_tags("compression", row.columns)
        tags["compression.gate_passed"] = "true"
        tags["compression.registrable"] = "true"
        specs.append(VariantSpec(row.name, row.onnx_path, tags))
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
