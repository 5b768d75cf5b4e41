"""Resolve ``NAME@ALIAS`` in the MLflow registry and load the self-contained model it points at."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sensorops.registry.pyfunc import ONNX_FILE, PREPROCESSING_DIR, SensorModel

logger = logging.getLogger(__name__)


class ModelSourceError(RuntimeError):
    """The alias does not exist, or its version is not a servable (pyfunc + ONNX) model."""


PINNED = "pinned"
"""The ``alias`` of a :class:`Resolved` that names a pinned version (``serving.version``)."""


@dataclass(frozen=True)
class Resolved:
    """Where an alias points now.

    Attributes:
        name: registered model name.
        alias: the alias that resolved (the fallback when the asked one is missing).
        version: the version number, as a string.
        source: the version's model URI.
    """

    name: str
    alias: str
    version: str
    source: str


@dataclass
class LoadedModel:
    """A loaded, warmed model and what it is.

    Attributes:
        model: the :class:`~sensorops.registry.pyfunc.SensorModel`.
        resolved: which alias/version it is.
        load_s: seconds from download to warmed.
    """

    model: SensorModel
    resolved: Resolved
    load_s: float


def resolve(
    tracking_uri: str,
    name: str,
    alias: str,
    fallback_alias: str | None = None,
    version: str | None = None,
) -> Resolved:
    """Resolve ``name@alias`` (or ``name@fallback_alias`` with a warning), or a pinned version.

    Raises:
        ModelSourceError: neither alias (or the pinned version) exists on ``name``.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if version is not None:
        try:
            mv = client.get_model_version(name, str(version))
        except MlflowException as exc:
            raise ModelSourceError(f"{name} has no version {version!r}: {exc}") from exc
        return Resolved(name, PINNED, str(mv.version), str(mv.source))
    tried = []
    for candidate in (alias, fallback_alias):
        if not candidate or candidate in tried:
            continue
        tried.append(candidate)
        try:
            mv = client.get_model_version_by_alias(name, candidate)
        except MlflowException:
            continue
        if candidate != alias:
            logger.warning(
                "%s@%s does not exist; serving %s@%s (v%s) instead",
                name,
                alias,
                name,
                candidate,
                mv.version,
            )
        return Resolved(name, candidate, str(mv.version), str(mv.source))
    raise ModelSourceError(
        f"registered model {name!r} has no alias {' or '.join(repr(a) for a in tried)} at "
        f"{tracking_uri}; promote a version first (sensorops models promote ...)"
    )


def load_version(
    tracking_uri: str,
    resolved: Resolved,
    providers: list[str] | None = None,
    intra_op_threads: int = 1,
    cache_dir: str | Path | None = None,
) -> LoadedModel:
    """Download version ``resolved.version`` and build a warmed :class:`SensorModel`.

    Warm-up runs one series of the model's own length through the whole path (this compiles
    the DTW kernel and initialises ORT), so the first real request pays neither.

    Raises:
        ModelSourceError: the version lacks ``model.onnx`` or ``preprocessing/`` (a bare-ONNX
            version registered before the self-contained format).
    """
    import mlflow.artifacts
    import numpy as np

    start = time.perf_counter()
    root = Path(cache_dir or tempfile.mkdtemp(prefix="sensorops-model-"))
    dst = root / f"{resolved.name}-v{resolved.version}"
    found = sorted(dst.glob(f"*/{ONNX_FILE}")) if dst.is_dir() else []
    if found:
        model_dir = found[0].parent
    else:
        from mlflow import MlflowClient

        # the artifact location itself: `models:/` URIs resolve through the process-wide
        # tracking/registry URIs, not the one given here
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        location = client.get_model_version_download_uri(resolved.name, resolved.version)
        dst.mkdir(parents=True, exist_ok=True)
        model_dir = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=str(dst), tracking_uri=tracking_uri
            )
        )
    if not (model_dir / ONNX_FILE).is_file() or not (model_dir / PREPROCESSING_DIR).is_dir():
        raise ModelSourceError(
            f"{resolved.name} v{resolved.version} has no {ONNX_FILE} + {PREPROCESSING_DIR}/; it is "
            "not a self-contained sensorops model (re-register it with the promotion pipeline)"
        )
    model = SensorModel.from_dir(model_dir, providers=providers, intra_op_threads=intra_op_threads)
    state = model.state
    warm = np.asarray(state.alignment.references[0]) if state.alignment.method == "dtw" else None
    if warm is None:
        warm = np.zeros((state.length, state.n_channels))
    model.predict_proba_series([warm])
    return LoadedModel(model=model, resolved=resolved, load_s=time.perf_counter() - start)
