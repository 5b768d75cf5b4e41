"""Registering ONNX models as versions of a registered model, with lineage tags.

Each version is logged with ``mlflow.onnx.log_model`` (CPU execution provider, signature, input
example, explicit pip requirements) into the active MLflow run (the ``kedro run``'s) or a new run,
linked to its input data with ``mlflow.log_input``, registered, tagged and described. New versions
start in stage ``candidate``. Registration is idempotent (an identical artifact on identical data
returns the existing version) and all-or-nothing: when one variant fails, the versions (and
history events) this call created are deleted again before the error is raised; when the process
is killed, the next command completes or undoes it (:mod:`sensorops.registry.intent`).

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
from sensorops.faultpoints import kill_point
from sensorops.hygiene import process_tags
from sensorops.model_input import ModelInput
from sensorops.modeling.comparison import ComparisonRow, ComparisonTable
from sensorops.modeling.errors import ModelingError
from sensorops.registry.client import Registry, connect
from sensorops.registry.config import PromotionConfig
from sensorops.registry.errors import RegistrationFailed, RegistryConfigError
from sensorops.registry.evidence import close_dead_runs_in
from sensorops.registry.history import append_event, delete_event
from sensorops.registry.intent import (
    REGISTRATION_TAG,
    VARIANT_TAG,
    Intent,
    clear_intent,
    register_event,
    registration_versions,
    repair_pending,
    write_intent,
)
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
        reused: True when an identical version (same ONNX sha256, variant and data digests)
            already existed and was returned instead of registering a new one.
    """

    name: str
    version: str
    variant: str
    run_id: str
    model_uri: str
    test_accuracy: float
    test_macro_f1: float
    reused: bool = False

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
        with mlflow.start_run(run_name="sensorops-register", tags=process_tags()) as run:
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
) -> tuple[list[str], list[str]]:
    """Delete what one failed :func:`register_variants` call created; ``(deleted versions, errors)``.

    Versions are those recorded in ``versions`` plus any version of ``name`` tagged with
    ``registration_id`` (one whose ``register_model`` call failed after the version was created).
    """
    errors: list[str] = []
    for seq in events:
        try:
            delete_event(reg, name, seq)
        except Exception as exc:  # keep undoing the rest
            errors.append(f"history event #{seq}: {exc}")
    targets = list(versions)
    try:
        targets += list(registration_versions(reg, name, registration_id))
    except Exception as exc:
        errors.append(f"listing versions of {name!r}: {exc}")
    deleted = []
    for version in sorted(set(targets), key=int):
        try:
            reg.client.delete_model_version(name, version)
            deleted.append(version)
        except Exception as exc:
            errors.append(f"v{version}: {exc}")
    return deleted, errors


IDENTITY_TAGS = (
    "onnx.sha256",
    VARIANT_TAG,
    "data.train_digest",
    "data.val_digest",
    "data.test_digest",
)
"""Tags that make two versions the same thing: artifact hash, variant and data digests."""


def find_existing(
    reg: Registry, name: str, variant: str, sha256: str, digests: dict[str, str]
) -> Any | None:
    """The lowest-numbered version of ``name`` with this artifact hash, variant and data digests."""
    wanted = {"onnx.sha256": sha256, VARIANT_TAG: variant, **digests}
    matches = []
    for mv in reg.client.search_model_versions(f"name='{name}'"):
        tags = mv.tags or {}
        if all(tags.get(k) == wanted.get(k) for k in IDENTITY_TAGS) and mv.status == "READY":
            matches.append(mv)
    return min(matches, key=lambda mv: int(mv.version), default=None)


def _reused(name: str, mv: Any) -> RegisteredVersion:
    tags = mv.tags or {}
    logger.warning(
        "%s v%s already holds %s (sha256 %s..., same data digests, stage %s); not registered again",
        name, mv.version, tags.get(VARIANT_TAG), tags.get("onnx.sha256", "")[:12],
        tags.get(STAGE_TAG, "candidate"),
    )  # fmt: skip
    return RegisteredVersion(
        name=name,
        version=str(mv.version),
        variant=tags.get(VARIANT_TAG, "?"),
        run_id=mv.run_id or "",
        model_uri=mv.source or "",
        test_accuracy=float(tags.get("metric.test_accuracy", "nan")),
        test_macro_f1=float(tags.get("metric.test_macro_f1", "nan")),
        reused=True,
    )


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

    Idempotent: a variant whose ONNX file (sha256), variant name and data digests already exist
    as a version of ``name`` is not registered again; that version is returned with
    ``reused=True`` (and a warning says so).

    The ONNX models are scored on ``mi.X["test"]`` (``(n_series, length, n_channels)``) so that
    every version carries its own test metrics; the train and test splits are logged as run
    inputs (``mlflow.data``) and their digests put on every version. The whole registration runs
    under the model's lease, behind a ``register`` intent record: a registration killed half-way
    is completed or undone by the next command (:mod:`sensorops.registry.intent`).

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
        The versions, in the order of ``variants`` (new ones and reused ones).

    Raises:
        RegistryConfigError: an ONNX file is missing; nothing was registered.
        RegistrationFailed: a variant could not be scored, logged, registered or recorded; the
            versions and history events this call had created were deleted again, and the
            message lists them.
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
    identity_digests = {k: digests[k] for k in IDENTITY_TAGS if k in digests}
    keys = [(spec.variant, _file_sha256(Path(spec.onnx_path))) for spec in variants]
    example = np.ascontiguousarray(mi.X["test"][: min(5, len(mi.X["test"]))], dtype=np.float32)
    model_created = ensure_registered_model(
        reg,
        name,
        description=f"sensorops classifier over channels {list(mi.channels)} -> classes {list(mi.classes)}",
    )
    registration_id = uuid.uuid4().hex
    results: dict[tuple[str, str], RegisteredVersion] = {}  # by (variant, sha256)
    made: list[str] = []  # version numbers created so far, also the one being tagged
    events: list[int] = []
    current = variants[0].variant
    failure: RegistrationFailed | None = None
    with RegistryLease(reg, name, cfg.lock, purpose="register variants") as lease:
        repair_pending(reg, name, lease.owner)
        close_dead_runs_in(reg, cfg.experiment_name)
        todo: list[tuple[tuple[str, str], VariantSpec]] = []
        for key, spec in zip(keys, variants, strict=True):
            if key in results or key in dict(todo):  # listed twice in this call: once is enough
                continue
            existing = find_existing(reg, name, key[0], key[1], identity_digests)
            if existing is not None:
                results[key] = _reused(name, existing)
            else:
                todo.append((key, spec))
        if todo:
            intent = Intent(
                kind="register",
                owner=lease.owner,
                summary=f"registration of {[s.variant for _, s in todo]}",
                registration_id=registration_id,
                variants=[s.variant for _, s in todo],
            )
            lease.verify()
            write_intent(reg, name, intent)
            kill_point("register.after_intent")
        try:
            if todo:
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
                    for key, spec in todo:
                        current = spec.variant
                        lease.renew()
                        results[key] = _register_one(
                            reg, spec, mi, name, example, run_id, {
                                **(common_tags or {}), **digests, **lineage, **spec.tags,
                                REGISTRATION_TAG: registration_id,
                            }, made, key[1], preprocessing,
                        )  # fmt: skip
                lease.verify()
                for key, _ in todo:
                    rv = results[key]
                    current = rv.variant
                    event = register_event(rv.version, rv.variant, registration_id)
                    event["evidence_run_id"] = rv.run_id
                    events.append(append_event(reg, name, event))
                    kill_point("register.after_event")
                kill_point("register.before_clear")
                clear_intent(reg, name)
        except Exception as exc:
            deleted, errors = _undo_registration(reg, name, registration_id, made, events)
            undone = (
                f"deleted the version(s) {deleted} this call had created"
                if deleted
                else "no version had been created"
            )
            if errors:
                undone += f"; could not undo everything: {errors}"
            else:
                with contextlib.suppress(Exception):
                    clear_intent(reg, name)
            failure = RegistrationFailed(
                f"registering variant {current!r} of {name!r} failed ({type(exc).__name__}: {exc}); "
                f"registration is all-or-nothing, so {undone}"
            )
            failure.__cause__ = exc
    if failure is not None:
        if model_created and "could not undo" not in str(failure):
            with contextlib.suppress(Exception):  # this call created the model: remove it again
                if not reg.client.search_model_versions(f"name='{name}'"):
                    reg.client.delete_registered_model(name)
        raise failure
    return [results[key] for key in keys]


def _register_one(
    reg: Registry,
    spec: VariantSpec,
    mi: ModelInput,
    name: str,
    example: np.ndarray,
    run_id: str,
    tags: dict[str, str],
    made: list[str],
    sha256: str,
    preprocessing: PreprocessingState | None = None,
) -> RegisteredVersion:
    """Score, log and register one variant in the current run; appends its version to ``made``.

    ``sha256`` is the hash of ``spec.onnx_path`` taken before the registration started; the file
    is read once, checked against it, and every tag computed from those bytes.
    """
    import mlflow
    import mlflow.onnx
    import onnx
    from mlflow.models import infer_signature

    path = Path(spec.onnx_path)
    model_bytes = path.read_bytes()
    actual = hashlib.sha256(model_bytes).hexdigest()
    if actual != sha256:
        raise RegistryConfigError(
            f"{path} changed while it was being registered (sha256 {actual} != {sha256}); "
            "is another run writing it? Re-run the export/compression pipeline"
        )
    model = onnx.load_model_from_string(model_bytes)
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
    kill_point("register.after_log_model")
    tags = {
        **tags,
        VARIANT_TAG: spec.variant,
        STAGE_TAG: "candidate",
        "onnx.path": str(path),
        "onnx.sha256": sha256,
        "metric.test_accuracy": f"{scores.accuracy:.6f}",
        "metric.test_macro_f1": f"{scores.macro_f1:.6f}",
        "metric.n_test": str(scores.n),
    }
    mv = mlflow.register_model(info.model_uri, name, tags=tags)
    made.append(str(mv.version))
    kill_point("register.after_version")
    description = (
        f"{spec.variant} ONNX of {name}: test accuracy {scores.accuracy:.4f}, macro-F1 "
        f"{scores.macro_f1:.4f} on {scores.n} series (test digest {tags['data.test_digest']}); "
        f"MLflow run {run_id}, kedro run {tags['kedro.run_id']}, commit {tags['git.commit'][:12]}; "
        f"onnx sha256 {sha256}."
    )
    reg.client.update_model_version(name, mv.version, description=description)
    kill_point("register.after_description")
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


class LineageMismatch(RegistryConfigError):
    """A file does not match the hash its summary recorded; nothing was registered."""


def verify_lineage(
    export_summary: dict[str, Any],
    comparison: list[ComparisonRow] | None = None,
    training_summary: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
) -> None:
    """Check every file the promotion is about to register against the hash its summary recorded.

    - the exported ONNX against ``mdl_export_summary.onnx_sha256``;
    - the checkpoint the export was made from (``checkpoint_sha256``) against the training
      summary's ``best_checkpoint_sha256`` and the evaluation's ``checkpoint_sha256``, so the
      ``training.*`` and ``eval.*`` tags describe the registered model;
    - each compression variant's ONNX against its row's ``onnx_sha256`` (when the row has one).

    A summary written before hashes were recorded is not checked for that file (logged).

    Raises:
        LineageMismatch: names the file, both hashes and what to run.
    """
    problems = []
    onnx = Path(str(export_summary.get("onnx_path", "")))
    recorded = export_summary.get("onnx_sha256")
    if recorded is None:
        logger.warning(
            "mdl_export_summary has no onnx_sha256 (older export); %s not verified", onnx
        )
    elif onnx.is_file() and _file_sha256(onnx) != recorded:
        problems.append(
            f"{onnx} has sha256 {_file_sha256(onnx)} but mdl_export_summary.onnx_sha256 is "
            f"{recorded}: the file was replaced after export; run `kedro run --pipelines=export`"
        )
    exported = export_summary.get("checkpoint_sha256")
    for label, summary, key, run in (
        ("mdl_training_summary.best_checkpoint_sha256", training_summary, "best_checkpoint_sha256",
         "kedro run --pipelines=export,compression"),
        ("rpt_evaluation.checkpoint_sha256", evaluation, "checkpoint_sha256",
         "kedro run --pipelines=training"),
    ):  # fmt: skip
        value = (summary or {}).get(key)
        if exported and value and value != exported:
            problems.append(
                f"the export was made from a checkpoint with sha256 {exported}, but {label} is "
                f"{value}: the summaries describe different models; run `{run}`"
            )
    for row in comparison or []:
        want = row.onnx_sha256
        if row.onnx_path and want and Path(row.onnx_path).is_file():
            got = _file_sha256(Path(row.onnx_path))
            if got != want:
                problems.append(
                    f"{row.onnx_path} (variant {row.name}) has sha256 {got} but "
                    f"rpt_compression_comparison recorded {want}; run `kedro run --pipelines=compression`"
                )
    if problems:
        raise LineageMismatch(
            "refusing to register: " + "; ".join(problems) + ". Nothing was registered."
        )


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
        for key in (
            "mlflow_child_run_id", "model_name", "best_val_metric", "best_checkpoint",
            "best_checkpoint_sha256",
        ):  # fmt: skip
            if key in training_summary:
                tags[f"training.{key}"] = str(training_summary[key])
    return tags
