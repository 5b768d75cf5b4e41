"""Facts that tie a model version to its data, checks and runs: digests, DQ tiers, run context."""

from __future__ import annotations

import getpass
import importlib.metadata
import logging
import os
import socket
from pathlib import Path
from typing import Any

from sensorops.contracts import DataQualitySummary
from sensorops.model_input import ModelInput, split_digest
from sensorops.tracking import git_commit as tracking_git_commit
from sensorops.tracking import project_root

logger = logging.getLogger(__name__)

KEDRO_RUN_ID_TAG = "run_id"
"""Tag kedro-mlflow sets on its run: the Kedro session id (``run_params["run_id"]``)."""


def data_digests(mi: ModelInput) -> dict[str, str]:
    """``{"data.train_digest": ..., "data.test_digest": ..., ...}`` plus upstream metadata digests.

    Any ``*digest*``/``*hash*``/``source`` entry of ``mi.metadata`` (e.g. a raw-file hash written by
    ingestion) is carried over as ``data.meta.<key>``.
    """
    out = {f"data.{split}_digest": split_digest(mi, split) for split in ("train", "val", "test")}
    out["data.counts"] = ",".join(f"{k}={v}" for k, v in mi.counts().items())
    for key, value in sorted(mi.metadata.items()):
        if isinstance(value, str | int | float) and any(
            word in key.lower() for word in ("digest", "hash", "sha", "source")
        ):
            out[f"data.meta.{key}"] = str(value)[:500]
    return out


def dq_tiers(summary: dict[str, Any] | DataQualitySummary) -> dict[str, dict[str, Any]]:
    """Every tier result in a ``rpt_dq_summary``, keyed ``<stage>.<tier>`` (``raw.tier1``)."""
    tiers = DataQualitySummary.from_dict(summary).tiers()
    return {path: tier.model_dump(exclude_unset=True) for path, tier in tiers.items()}


def dq_tags(summary: dict[str, Any] | DataQualitySummary) -> dict[str, str]:
    """Version tags for the DQ results: ``dq.passed`` and ``dq.<stage>.<tier>`` = ``pass``/``fail:<action>``.

    See :meth:`sensorops.contracts.DataQualitySummary.to_tags`.
    """
    return DataQualitySummary.from_dict(summary).to_tags()


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str:
    """HEAD commit of the git checkout at ``cwd`` (default: the project root), else ``unknown``.

    The same helper writes the run tag ``sensorops.git_commit`` (:func:`sensorops.tracking.git_commit`).
    """
    commit, _ = tracking_git_commit(Path(cwd) if cwd is not None else project_root())
    return commit or "unknown"


def package_version() -> str:
    """Installed version of the ``sensorops`` distribution."""
    try:
        return importlib.metadata.version("sensorops")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def actor() -> str:
    """``user@host`` of this process, for audit tags."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = os.environ.get("USER", "unknown")
    return f"{user}@{socket.gethostname()}"


def scalar_tags(prefix: str, data: dict[str, Any]) -> dict[str, str]:
    """``{prefix.key: str(value)}`` for every top-level str/int/float/bool entry of ``data``."""
    out = {}
    for key, value in data.items():
        if isinstance(value, bool):
            out[f"{prefix}.{key}"] = str(value).lower()
        elif isinstance(value, int | float):
            out[f"{prefix}.{key}"] = f"{value:.6g}" if isinstance(value, float) else str(value)
        elif isinstance(value, str) and len(value) <= 500:
            out[f"{prefix}.{key}"] = value
    return out
