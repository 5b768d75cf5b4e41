"""Read-only views of the registry: model list, version details and the lineage chain."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from sensorops.registry.client import Registry, lookup
from sensorops.registry.errors import NotFoundError, RegistryConfigError
from sensorops.registry.transitions import audit_record, read_state

logger = logging.getLogger(__name__)

_REF = re.compile(r"^(?P<name>[^@/]+?)(?:@(?P<alias>[^@/]+)|/(?P<version>\d+))?$")


@dataclass(frozen=True)
class ModelRef:
    """``NAME``, ``NAME@alias`` or ``NAME/version``."""

    name: str
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        m = _REF.match(text.strip())
        if not m:
            raise RegistryConfigError(
                f"model reference must look like NAME, NAME@ALIAS or NAME/VERSION; got {text!r}"
            )
        return cls(m["name"], m["alias"], m["version"])


def list_models(reg: Registry) -> list[dict[str, Any]]:
    """One row per registered model: name, number of versions, production/staging versions."""
    rows = []
    for rm in reg.client.search_registered_models(max_results=1000):
        aliases = {a: str(v) for a, v in (rm.aliases or {}).items()}
        latest = max((int(v.version) for v in rm.latest_versions or []), default=None)
        rows.append(
            {
                "name": rm.name,
                "latest_version": str(latest) if latest is not None else "-",
                "production": aliases.get("production", "-"),
                "staging": aliases.get("staging", "-"),
                "aliases": ", ".join(f"@{a}=v{v}" for a, v in sorted(aliases.items())) or "-",
            }
        )
    return sorted(rows, key=lambda r: r["name"])


def list_versions(reg: Registry, name: str) -> list[dict[str, Any]]:
    """One row per version of ``name`` (newest first): stage, legacy stage, aliases, variant, metrics."""
    state = read_state(reg, name)
    by_version: dict[str, list[str]] = {}
    for alias, v in state.aliases.items():
        by_version.setdefault(v, []).append(f"@{alias}")
    rows = []
    for v in sorted(state.versions.values(), key=lambda s: int(s.version), reverse=True):
        rows.append(
            {
                "version": v.version,
                "variant": v.tags.get("sensorops.variant", "-"),
                "stage": v.stage,
                "legacy_stage": v.legacy_stage,
                "aliases": " ".join(sorted(by_version.get(v.version, []))) or "-",
                "test_accuracy": v.tags.get("metric.test_accuracy", "-"),
                "test_macro_f1": v.tags.get("metric.test_macro_f1", "-"),
                "kedro_run_id": v.tags.get("kedro.run_id", "-"),
            }
        )
    return rows


def resolve_version(reg: Registry, ref: ModelRef) -> str:
    """Version number that ``ref`` points at (latest version when neither alias nor version given)."""
    lookup(lambda: reg.client.get_registered_model(ref.name), f"registered model {ref.name!r}")
    if ref.alias:
        mv = lookup(
            lambda: reg.client.get_model_version_by_alias(ref.name, ref.alias),
            f"alias @{ref.alias} of registered model {ref.name!r}",
        )
        return str(mv.version)
    if ref.version:
        lookup(
            lambda: reg.client.get_model_version(ref.name, ref.version),
            f"version {ref.version} of registered model {ref.name!r}",
        )
        return ref.version
    versions = [int(mv.version) for mv in reg.client.search_model_versions(f"name='{ref.name}'")]
    if not versions:
        raise NotFoundError(f"registered model {ref.name!r} has no versions")
    return str(max(versions))


def describe_version(reg: Registry, ref: ModelRef) -> dict[str, Any]:
    """Details and lineage chain of the version ``ref`` points at.

    Returns a dict with ``version`` (number, stage, legacy stage, aliases, variant, description),
    ``lineage`` (MLflow run id/name/status/experiment, kedro run id, training child run (id and
    whether it exists), git commit, package version), ``data`` (digests), ``dq`` (tier results),
    ``parity``, ``metrics``, ``audit`` (the last transition's tags) and ``inputs`` (the
    ``mlflow.data`` datasets linked to the run).
    """
    version = resolve_version(reg, ref)
    mv = reg.client.get_model_version(ref.name, version)
    tags = dict(mv.tags or {})
    rm = reg.client.get_registered_model(ref.name)
    aliases = sorted(f"@{a}" for a, v in (rm.aliases or {}).items() if str(v) == version)
    run_info: dict[str, Any] = {"run_id": mv.run_id or "-"}
    inputs: list[dict[str, str]] = []
    if mv.run_id:
        try:
            run = reg.client.get_run(mv.run_id)
            exp = reg.client.get_experiment(run.info.experiment_id)
            run_info.update(
                run_name=run.info.run_name,
                status=run.info.status,
                experiment=exp.name if exp else run.info.experiment_id,
                kedro_run_id_on_run=run.data.tags.get("run_id", "-"),
                kedro_command=run.data.tags.get("kedro_command", "-"),
            )
            for di in run.inputs.dataset_inputs if run.inputs else []:
                ctx = next((t.value for t in di.tags if t.key == "mlflow.data.context"), "-")
                inputs.append(
                    {"name": di.dataset.name, "digest": di.dataset.digest, "context": ctx}
                )
        except Exception as exc:
            if not _is_missing(exc):
                raise
            run_info["status"] = "run not found (deleted?)"
    child_id = tags.get("training.mlflow_child_run_id")
    child: dict[str, Any] = {"run_id": child_id or "-"}
    if child_id:
        try:
            child_run = reg.client.get_run(child_id)
            child.update(run_name=child_run.info.run_name, status=child_run.info.status)
        except Exception as exc:
            if not _is_missing(exc):
                raise
            child["status"] = "run not found"

    def pick(prefix: str) -> dict[str, str]:
        return {k[len(prefix) :]: v for k, v in sorted(tags.items()) if k.startswith(prefix)}

    return {
        "name": ref.name,
        "version": {
            "version": version,
            "stage": tags.get("sensorops.stage", "candidate"),
            "legacy_stage": mv.current_stage,
            "aliases": aliases,
            "variant": tags.get("sensorops.variant", "-"),
            "source": mv.source,
            "description": mv.description or "",
        },
        "lineage": {
            "mlflow_run": run_info,
            "kedro_run_id": tags.get("kedro.run_id", "-"),
            "training_child_run": child,
            "git_commit": tags.get("git.commit", "-"),
            "sensorops_version": tags.get("sensorops.version", "-"),
            "registered_by": tags.get("registered.by", "-"),
            "registered_at": tags.get("registered.at", "-"),
        },
        "data": pick("data."),
        "inputs": inputs,
        "dq": pick("dq."),
        "parity": pick("parity."),
        "metrics": {**pick("metric."), **{f"eval.{k}": v for k, v in pick("eval.").items()}},
        "compression": pick("compression."),
        "audit": audit_record(tags),
    }


def _is_missing(exc: BaseException) -> bool:
    """Not found, or (on an auth-enabled server) not visible to this user: MLflow's basic-auth
    app answers 403 for a run the user may not read *and* for a run that does not exist."""
    from sensorops.registry.client import is_not_found

    return is_not_found(exc) or getattr(exc, "error_code", "") == "PERMISSION_DENIED"
