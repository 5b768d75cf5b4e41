"""The Optuna study: sample, train with the project's trainer, prune, measure, record.

One trial = one in-process run of :func:`sensorops.training.train.train` (world size 1, the same
code, precision policy and checkpoints as ``kedro run --pipeline=training``) under a step budget
(``loop.max_steps``). Three objectives per completed trial:

- ``val_accuracy`` of the best checkpoint (maximise);
- ``latency_p50_ms``: ONNX Runtime median latency at batch 1 on the exported best checkpoint
  (minimise; :func:`sensorops.modeling.onnx_export.export_onnx`, CPU provider);
- ``onnx_params``: weights stored in that ONNX file (minimise).

Pruning: Optuna does not prune multi-objective trials (``Trial.report`` raises there), so every
trial has a twin in a single-objective *pruning study* (``<name>.val_loss``, same storage) to
which a trainer callback reports the validation loss after each validation pass; the configured
pruner (median) decides on that history, and a pruned twin prunes the trial. Only completed
trials are exported, which keeps the ~30 s dynamo export off the pruned ones.

Resume: the study lives in an RDB storage (sqlite next to ``mlflow.db`` by default). Running
trials send heartbeats; on restart a trial whose process died is failed and re-queued with its
parameters (:class:`optuna.storages.RetryFailedTrialCallback`), and only
``n_trials - finished`` trials run.

Tracking: each trial is the trainer's own MLflow run, nested under the active run (the
``kedro run``'s run), tagged with its Optuna number, state and objective values.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from sensorops.model_input import ModelInput, save_model_input
from sensorops.search.config import SearchConfig, SearchSpace, TrialPoint, point_problem
from sensorops.training.callbacks import Callback
from sensorops.training.config import TrainingConfig

logger = logging.getLogger(__name__)

OBJECTIVES: tuple[str, ...] = ("val_accuracy", "latency_p50_ms", "onnx_params")
DIRECTIONS: tuple[str, ...] = ("maximize", "minimize", "minimize")
MODEL_INPUT_FILE = "model_input.npz"


class SearchError(RuntimeError):
    """The search could not run or produced no completed trial."""


# -- storage -----------------------------------------------------------------------------------
def storage_url(cfg: SearchConfig) -> str:
    """``study.storage`` or ``sqlite:///<absolute storage_path>``."""
    if cfg.study.storage:
        return cfg.study.storage
    path = Path(cfg.study.storage_path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def open_storage(cfg: SearchConfig) -> optuna.storages.RDBStorage:
    """The RDB storage with heartbeats and re-queueing of trials whose process died."""
    return optuna.storages.RDBStorage(
        storage_url(cfg),
        heartbeat_interval=cfg.study.heartbeat_interval_s,
        grace_period=cfg.study.grace_period_s,
        failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=1),
    )


def _sampler(cfg: SearchConfig) -> optuna.samplers.BaseSampler:
    seed = cfg.study.seed
    if cfg.study.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if cfg.study.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=4)


def _pruner(cfg: SearchConfig) -> optuna.pruners.BasePruner:
    if cfg.pruner.kind == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=cfg.pruner.n_startup_trials,
        n_warmup_steps=cfg.pruner.n_warmup_steps,
    )


def open_studies(cfg: SearchConfig) -> tuple[optuna.Study, optuna.Study]:
    """The multi-objective study and its single-objective pruning twin (created or resumed)."""
    storage = open_storage(cfg)
    study = optuna.create_study(
        study_name=cfg.study.name,
        storage=storage,
        directions=list(DIRECTIONS),
        sampler=_sampler(cfg),
        load_if_exists=True,
    )
    if list(study.directions) != [optuna.study.StudyDirection[d.upper()] for d in DIRECTIONS]:
        raise SearchError(
            f"study {cfg.study.name!r} in {storage_url(cfg)} has directions {study.directions}, "
            f"not {list(DIRECTIONS)} ({list(OBJECTIVES)}); use another search.study.name"
        )
    study.set_metric_names(list(OBJECTIVES))
    pruning = optuna.create_study(
        study_name=f"{cfg.study.name}.val_loss",
        storage=storage,
        direction="minimize",
        pruner=_pruner(cfg),
        load_if_exists=True,
    )
    return study, pruning


FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


# -- the space ---------------------------------------------------------------------------------
def suggest(trial: optuna.Trial, space: SearchSpace) -> TrialPoint:
    """Sample one configuration (define-by-run: width/depth names are per architecture)."""
    arch = trial.suggest_categorical("architecture", list(space.architectures))
    a = space.architectures[arch]
    hidden = trial.suggest_int(
        f"{arch}.hidden", a.hidden.low, a.hidden.high, step=a.hidden.step, log=a.hidden.log
    )
    layers = trial.suggest_int(
        f"{arch}.layers", a.layers.low, a.layers.high, step=a.layers.step, log=a.layers.log
    )
    heads = trial.suggest_categorical(f"{arch}.heads", list(a.heads)) if a.heads else None
    dropout = trial.suggest_float(
        "dropout", space.dropout.low, space.dropout.high, log=space.dropout.log
    )
    lr = trial.suggest_float("lr", space.lr.low, space.lr.high, log=space.lr.log)
    return TrialPoint(
        architecture=arch, hidden=hidden, layers=layers, dropout=dropout, lr=lr, heads=heads
    )


def point_params(point: TrialPoint) -> dict[str, Any]:
    """The Optuna parameter names of ``point`` (for ``enqueue_trial``)."""
    params: dict[str, Any] = {
        "architecture": point.architecture,
        f"{point.architecture}.hidden": point.hidden,
        f"{point.architecture}.layers": point.layers,
        "dropout": point.dropout,
        "lr": point.lr,
    }
    if point.heads is not None:
        params[f"{point.architecture}.heads"] = point.heads
    return params


def default_point(trainer: TrainingConfig, space: SearchSpace) -> TrialPoint | None:
    """The ``training.trainer`` configuration as a point of the space (``None`` if outside)."""
    m = trainer.model
    arch = space.architectures.get(m.name)
    point = TrialPoint(
        architecture=m.name,
        hidden=m.hidden,
        layers=m.layers,
        dropout=m.dropout,
        lr=trainer.optimizer.lr,
        heads=m.heads if arch is not None and arch.heads else None,
    )
    return None if point_problem(space, point) else point


def trial_config(
    base: TrainingConfig, point: TrialPoint, steps: int, output_dir: Path, run_name: str
) -> TrainingConfig:
    """``base`` with the sampled model/lr, a step budget, its own run directory, no resume."""
    model = {
        "name": point.architecture,
        "hidden": point.hidden,
        "layers": point.layers,
        "dropout": point.dropout,
    }
    if point.heads is not None:
        model["heads"] = point.heads
    return base.replace(
        model=model,
        optimizer={"lr": point.lr},
        loop={"max_steps": steps, "epochs": max(base.loop.epochs, steps)},
        checkpoint={"every_n_steps": None, "resume": "never"},
        mlflow={"run_name": run_name, "run_id": None, "log_checkpoint_artifact": False},
        progress_bar="never",
        output_dir=str(output_dir),
    )


# -- the pruning callback ----------------------------------------------------------------------
class PruneOnValLoss(Callback):
    """Reports ``val_loss`` after each validation pass to the pruning twin; stops a pruned trial.

    The training package never imports Optuna: this callback is the only bridge.
    """

    def __init__(self, twin: optuna.Trial) -> None:
        self.twin = twin
        self.pruned_at: int | None = None
        self.reported: list[tuple[int, float]] = []

    def on_eval_end(self, trainer: Any, step: int, metrics: dict[str, float]) -> None:
        if not trainer.ctx.is_main:
            return
        value = float(metrics["val_loss"])
        self.reported.append((step, value))
        self.twin.report(value, step)
        if self.twin.should_prune():
            self.pruned_at = step
            trainer.request_stop(f"pruned by optuna at step {step} (val_loss {value:.4f})")


# -- measurement -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measured:
    onnx_path: str
    latency_p50_ms: float
    latency_p99_ms: float
    onnx_params: int
    export_seconds: float


def measure_onnx(checkpoint: str, X: np.ndarray, out_dir: Path, cfg: SearchConfig) -> Measured:
    """Export ``checkpoint`` to ONNX, count its stored weights, time ORT at batch 1."""
    import onnx
    import torch
    from onnx import numpy_helper

    from sensorops.architectures import load_checkpoint_model
    from sensorops.modeling.latency import measure_ort_latency
    from sensorops.modeling.onnx_export import export_onnx
    from sensorops.modeling.runtime import create_session

    model, _, _ = load_checkpoint_model(checkpoint)
    t0 = time.perf_counter()
    example = torch.from_numpy(np.ascontiguousarray(X[:2], dtype=np.float32))
    result = export_onnx(
        model, example, out_dir / "model.onnx", opset=cfg.objectives.opset, dynamic_time=False
    )
    export_seconds = time.perf_counter() - t0
    proto = onnx.load(result.onnx_path)
    n_params = int(sum(numpy_helper.to_array(t).size for t in proto.graph.initializer))
    session = create_session(result.onnx_path, intra_op_threads=cfg.objectives.intra_op_threads)
    stats = measure_ort_latency(
        session, X, 1, n_warmup=cfg.objectives.latency_warmup, n_iter=cfg.objectives.latency_iters
    )
    return Measured(result.onnx_path, stats.p50_ms, stats.p99_ms, n_params, export_seconds)


# -- progress ----------------------------------------------------------------------------------
class _Progress:
    """Trials done of the budget and the best validation accuracy so far (tqdm, rank 0)."""

    def __init__(self, mode: str, total: int, done: int) -> None:
        self.bar: Any = None
        if mode == "never" or (mode == "auto" and not sys.stderr.isatty()):
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=done, desc="search", unit="trial")

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done = len(finished_trials(study))
        best = max(
            (t.values[0] for t in study.get_trials(deepcopy=False, states=FINISHED[:1])),
            default=None,
        )
        text = f"trial {trial.number} {trial.state.name.lower()}"
        if best is not None:
            text += f", best val_accuracy {best:.4f}"
        logger.info("search: %d finished; %s", done, text)
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix_str(text)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- MLflow ------------------------------------------------------------------------------------
def _parent_run() -> tuple[str | None, str | None]:
    """(tracking URI, active run id) when a run is active (the ``kedro run``'s run)."""
    import mlflow

    run = mlflow.active_run()
    return mlflow.get_tracking_uri(), (run.info.run_id if run is not None else None)


def _record_trial(
    uri: str,
    run_id: str | None,
    tags: dict[str, Any],
    metrics: dict[str, float],
    params: dict[str, Any],
) -> None:
    if run_id is None:
        return
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    existing = client.get_run(run_id).data.params
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(f"search.{k}", float(v), now, 0) for k, v in metrics.items()],
        params=[
            Param(f"search.{k}", str(v)) for k, v in params.items() if f"search.{k}" not in existing
        ],
        tags=[RunTag(f"search.{k}", str(v)) for k, v in tags.items()],
    )


# -- the search --------------------------------------------------------------------------------
@dataclass
class SearchResult:
    """What :func:`run_search` did."""

    study_name: str
    storage: str
    trials: list[dict[str, Any]] = field(default_factory=list)
    """Every trial of the study (all invocations): number, state, params, objectives, run id."""
    ran_now: list[int] = field(default_factory=list)
    """Numbers of the trials this invocation ran."""
    seconds: float = 0.0


def run_search(
    cfg: SearchConfig,
    trainer: TrainingConfig | dict[str, Any],
    model_input: ModelInput,
    callbacks: tuple[Callback, ...] = (),
) -> SearchResult:
    """Run (or resume) the study until it holds ``budget.n_trials`` finished trials or
    ``budget.timeout_s`` passes.

    Args:
        cfg: the search configuration.
        trainer: the ``training.trainer`` parameters every trial starts from.
        model_input: the aligned, normalized arrays (``val`` scores the trials).
        callbacks: extra trainer callbacks for every trial (tests stop a process mid-study).

    Raises:
        SearchError / ConfigError / ModelInputError: before any trial trains.
    """
    from sensorops.training.launcher import check_model_input
    from sensorops.training.train import train

    base = trainer if isinstance(trainer, TrainingConfig) else TrainingConfig.from_dict(trainer)
    check_model_input(model_input, base, "mi_model_input")
    if "WORLD_SIZE" in os.environ:
        raise SearchError(
            "run the search in one process (trials train in-process with world size 1); "
            "WORLD_SIZE is set, as under torchrun"
        )
    root = Path(cfg.output_dir).resolve() / cfg.study.name
    root.mkdir(parents=True, exist_ok=True)
    mi_path = root / MODEL_INPUT_FILE
    save_model_input(model_input, mi_path)
    base = base.replace(model_input_path=str(mi_path))
    uri, parent = _parent_run() if base.mlflow.enabled else (None, None)
    if base.mlflow.enabled:
        base = base.replace(mlflow={"tracking_uri": uri, "parent_run_id": parent})
    study, pruning = open_studies(cfg)
    started = time.perf_counter()
    result = SearchResult(cfg.study.name, storage_url(cfg))
    if not study.trials:  # a new study: fixed points first
        points = list(cfg.enqueue)
        default = default_point(base, cfg.space) if cfg.enqueue_default else None
        if default is not None:
            points.insert(0, default)
        elif cfg.enqueue_default:
            logger.warning(
                "training.trainer's configuration lies outside search.space; not enqueued"
            )
        for point in points:
            study.enqueue_trial(point_params(point))
    done = len(finished_trials(study))
    remaining = max(0, cfg.budget.n_trials - done)
    logger.info(
        "search %s: %d finished trial(s) in %s, running %d more",
        cfg.study.name,
        done,
        result.storage,
        remaining,
    )
    X_val = model_input.X["val"]

    def objective(trial: optuna.Trial) -> tuple[float, float, float]:
        result.ran_now.append(trial.number)
        point = suggest(trial, cfg.space)
        twin = pruning.ask()
        trial.set_user_attr("pruning_trial", twin.number)
        out = root / f"trial_{trial.number:04d}"
        tcfg = trial_config(base, point, cfg.budget.steps_per_trial, out, f"trial-{trial.number}")
        pruner_cb = PruneOnValLoss(twin)
        try:
            summary = train(tcfg, (pruner_cb, *callbacks))
        except BaseException:
            pruning.tell(twin, state=optuna.trial.TrialState.FAIL)
            raise
        run_id = summary.get("mlflow_child_run_id")
        trial.set_user_attr("mlflow_run_id", run_id)
        trial.set_user_attr("final_step", summary["final_step"])
        params = point.model_dump()
        common = {"study": cfg.study.name, "trial_number": trial.number}
        if pruner_cb.pruned_at is not None:
            pruning.tell(twin, state=optuna.trial.TrialState.PRUNED)
            trial.set_user_attr("pruned_at_step", pruner_cb.pruned_at)
            _record_trial(
                uri or "",
                run_id,
                {**common, "state": "PRUNED", "pruned_at_step": pruner_cb.pruned_at},
                {},
                params,
            )
            raise optuna.TrialPruned(f"pruned at step {pruner_cb.pruned_at}")
        best = next(h for h in summary["history"] if h["step"] == summary["best_step"])
        accuracy, val_loss = float(best["val_accuracy"]), float(best["val_loss"])
        pruning.tell(twin, min(v for _, v in pruner_cb.reported))
        m = measure_onnx(summary["best_checkpoint"], X_val, out, cfg)
        values = (accuracy, m.latency_p50_ms, float(m.onnx_params))
        for key, value in (
            ("val_loss", val_loss),
            ("latency_p99_ms", m.latency_p99_ms),
            ("onnx_path", m.onnx_path),
            ("export_seconds", m.export_seconds),
        ):
            trial.set_user_attr(key, value)
        _record_trial(
            uri or "",
            run_id,
            {**common, "state": "COMPLETE"},
            {
                **dict(zip(OBJECTIVES, values, strict=True)),
                "val_loss": val_loss,
                "latency_p99_ms": m.latency_p99_ms,
            },
            params,
        )
        return values

    progress = _Progress(cfg.progress_bar, cfg.budget.n_trials, done)
    try:
        if remaining:
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=cfg.budget.timeout_s,
                callbacks=[progress],
                catch=(),
                gc_after_trial=True,
            )
    finally:
        progress.close()
    result.seconds = time.perf_counter() - started
    result.trials = [trial_row(t) for t in study.get_trials(deepcopy=False)]
    return result


def trial_row(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trial as a flat row (params under their short names)."""
    arch = t.params.get("architecture")
    row: dict[str, Any] = {
        "number": t.number,
        "state": t.state.name,
        "architecture": arch,
        "hidden": t.params.get(f"{arch}.hidden"),
        "layers": t.params.get(f"{arch}.layers"),
        "heads": t.params.get(f"{arch}.heads"),
        "dropout": t.params.get("dropout"),
        "lr": t.params.get("lr"),
    }
    values = t.values if t.state == optuna.trial.TrialState.COMPLETE else None
    for i, name in enumerate(OBJECTIVES):
        row[name] = values[i] if values else math.nan
    for key in ("val_loss", "pruned_at_step", "final_step", "mlflow_run_id", "export_seconds"):
        row[key] = t.user_attrs.get(key)
    row["seconds"] = (
        (t.datetime_complete - t.datetime_start).total_seconds()
        if t.datetime_complete and t.datetime_start
        else None
    )
    return row
