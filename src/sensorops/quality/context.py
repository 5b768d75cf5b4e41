"""One Great Expectations file context per process, and the GE plumbing around it.

The context lives in ``<gx_project_dir>/gx`` (``data/08_reporting/gx`` in the project; a run
never writes into ``conf/``): suites, validation definitions and checkpoints are JSON files
there; ``conf/base/gx`` is the committed snapshot of what the base parameters generate.

``import great_expectations`` takes ~2.4 s, so it happens on first use only, and the context is
created once per process and directory (:func:`get_gx_context`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import pandas as pd

from sensorops.quality.suites import DATA, SuiteSpec, import_gx

logger = logging.getLogger(__name__)

DATASOURCE = "sensorops"
BATCH_DEFINITION = "whole_frame"
SITE_NAME = "sensorops_data_docs"

_LOCK = threading.RLock()
_CONTEXTS: dict[Path, Any] = {}
_REGISTERED: dict[tuple[str, str], tuple[str, Any]] = {}


def get_gx_context(project_dir: str | os.PathLike[str]) -> Any:
    """The file data context in ``<project_dir>/gx``, created on first use and cached per process.

    Progress bars are switched off in the context's configuration (they would flood Kedro logs).
    """
    root = Path(project_dir).resolve()
    with _LOCK:
        if root in _CONTEXTS:
            return _CONTEXTS[root]
        gx = import_gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        root.mkdir(parents=True, exist_ok=True)
        ctx = gx.get_context(mode="file", project_root_dir=str(root))
        bars = ctx.variables.progress_bars
        if isinstance(bars, dict):
            bars = ProgressBarsConfig(**bars)
        if bars is None or bars.globally or bars.metric_calculations:
            ctx.variables.progress_bars = ProgressBarsConfig(
                globally=False, metric_calculations=False
            )
            ctx.variables.save()
        _CONTEXTS[root] = ctx
        logger.info("Great Expectations file context at %s", ctx.root_directory)
        return ctx


def _batch_definition(ctx: Any, asset_name: str) -> Any:
    try:
        source = ctx.data_sources.get(DATASOURCE)
    except KeyError:
        source = ctx.data_sources.add_pandas(name=DATASOURCE)
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_dataframe_asset(name=asset_name)
    try:
        return asset.get_batch_definition(BATCH_DEFINITION)
    except KeyError:
        return asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)


def result_format(frame: str) -> dict[str, Any]:
    """SUMMARY for the (large) long table, COMPLETE with the ``key`` of each failing row otherwise."""
    if frame == DATA:
        return {"result_format": "SUMMARY"}
    return {"result_format": "COMPLETE", "unexpected_index_column_names": ["key"]}


def register_suite(ctx: Any, spec: SuiteSpec) -> Any:
    """Write ``spec``'s suite, validation definition and checkpoint (``add_or_update``); return the checkpoint."""
    gx = import_gx()

    fingerprint = hashlib.sha256(
        json.dumps(
            [
                spec.name,
                result_format(spec.frame),
                [_expectation_identity(e) for e in spec.expectations],
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()
    cache_key = (str(ctx.root_directory), spec.name)
    with _LOCK:
        cached = _REGISTERED.get(cache_key)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]  # this process already wrote exactly this suite
        batch_definition = _batch_definition(ctx, spec.asset)
        suite = gx.ExpectationSuite(
            name=spec.name,
            expectations=list(spec.expectations),
            meta={
                "stage": spec.stage,
                "tier": spec.tier,
                "frame": spec.frame,
                "generated_by": "sensorops.quality",
            },
        )
        _keep_expectation_ids(ctx, suite)
        suite = ctx.suites.add_or_update(suite)
        definition = ctx.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=spec.name, data=batch_definition, suite=suite)
        )
        checkpoint = ctx.checkpoints.add_or_update(
            gx.Checkpoint(
                name=spec.name,
                validation_definitions=[definition],
                actions=[],
                result_format=result_format(spec.frame),
            )
        )
        _REGISTERED[cache_key] = (fingerprint, checkpoint)
        return checkpoint


def _expectation_identity(expectation: Any) -> str:
    config = expectation.configuration.to_json_dict()
    config.pop("id", None)
    config.pop("rendered_content", None)
    return json.dumps(config, sort_keys=True, default=str)


def _keep_expectation_ids(ctx: Any, suite: Any) -> None:
    """Give unchanged expectations their stored ids, so regenerating a suite leaves its JSON as is.

    (GE 1.24's ``add_or_update`` compares ids too, so it would hand every expectation a new id.)
    """
    try:
        existing = ctx.suites.get(name=suite.name)
    except Exception:
        return
    stored: dict[str, list[str]] = {}
    for expectation in existing.expectations:
        stored.setdefault(_expectation_identity(expectation), []).append(expectation.id)
    for expectation in suite.expectations:
        ids = stored.get(_expectation_identity(expectation))
        if ids:
            expectation.id = ids.pop(0)


def run_checkpoint(checkpoint: Any, frame: pd.DataFrame) -> Any:
    """Validate ``frame`` with ``checkpoint``; return the single ``ExpectationSuiteValidationResult``."""
    with _LOCK:
        result = checkpoint.run(batch_parameters={"dataframe": frame})
    (validation,) = result.run_results.values()
    return validation


def prune_validation_results(ctx: Any, stage: str) -> int:
    """Drop stored validation results of ``stage`` so Data Docs show only its latest run.

    Returns:
        The number of results removed. (Every run's results still reach MLflow via the report.)
    """
    store = ctx.validation_results_store
    removed = 0
    with _LOCK:
        for key in store.list_keys():
            suite_id = getattr(key, "expectation_suite_identifier", None)
            name = getattr(suite_id, "name", "")
            if name.startswith(f"{stage}_tier"):
                store.remove_key(key)
                removed += 1
    return removed


def build_data_docs(ctx: Any, site_dir: str | os.PathLike[str]) -> Path:
    """Build the Data Docs site (suites + stored validation results) into ``site_dir``.

    The site is built in a temporary sibling folder and swapped in, so ``site_dir`` is never
    half-written. The site is registered in memory only: ``great_expectations.yml`` keeps no
    machine-specific path.

    Returns:
        Path of the site's ``index.html``.
    """
    target = Path(site_dir).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        original = dict(ctx.variables.data_docs_sites or {})
        site_config = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(staging),
            },
        }
        try:
            ctx.variables.data_docs_sites = {**original, SITE_NAME: site_config}
            ctx.build_data_docs(site_names=[SITE_NAME])
        except Exception:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            ctx.variables.data_docs_sites = original
        old = target.with_name(f".{target.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    index = target / "index.html"
    logger.info("Data Docs built at %s", index)
    return index
