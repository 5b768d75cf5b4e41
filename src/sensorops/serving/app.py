"""The Ray Serve application: one deployment, a FastAPI ingress, dynamic batching, hot reload.

Each replica of :class:`SensorService` holds one loaded model (PreprocessingState + ONNX Runtime
session, :class:`~sensorops.registry.pyfunc.SensorModel`) for ``NAME@ALIAS`` and answers

- ``POST /v1/predict`` and ``POST /v2/models/{name}/infer`` through ``@serve.batch`` (max batch
  size and max wait from ``serving.batching``), with admission control: a request whose
  estimated answer time exceeds its deadline is refused at once with ``503`` and
  ``Retry-After``, and a queued series whose deadline can no longer be met is dropped before
  its batch runs (also ``503``) -- the queue never grows without bound;
- ``POST /v1/jobs`` / ``GET /v1/jobs/{id}`` (:mod:`sensorops.serving.jobs`);
- ``POST /v1/feedback``, ``GET /-/healthz``, ``GET /ready``, ``GET /metrics``.

**Hot reload.** A watcher thread resolves the alias every ``reload.poll_s`` seconds; when it
moved, the new version is downloaded, its session built and warmed *beside* the old one, and
the reference is swapped between two batches. No request fails and none waits for the load
(a batch uses the model it started with). This replaces ``reconfigure()``/redeploys, which
held requests for 3-5 s in the probe.

**Two arms** (:mod:`sensorops.rollout`). The same watcher reads the registered model's
``@canary`` alias and its ``sensorops.rollout`` tag (:func:`sensorops.rollout.state.arms_from`);
while both name one version, that version is loaded beside production and a request goes to it
with the rollout's weight: sticky by ``X-Request-Key`` (a hash of the key and the rollout id, so
every replica sends one key to the same arm and a key stays on the canary as its weight grows),
else by a seeded generator. In shadow mode callers always get production and the canary scores a
copy in the background. Each answer names its arm (``X-Model-Arm``, ``X-Model-Version`` and
``arm`` in the JSON). One record per request and arm (status, latency, model CPU seconds,
prediction) goes to the arm log (``serving.rollout.log_dir``) that the rollout controller reads.
"""

import asyncio
import concurrent.futures
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve

from sensorops.contracts.preprocessing import InputError
from sensorops.registry.pyfunc import softmax
from sensorops.rollout.state import Arms, arms_from, bucket
from sensorops.serving.config import ServingConfig
from sensorops.serving.jobs import JobError, JobStore, check_job_input, run_job
from sensorops.serving.metrics import ServingMetrics
from sensorops.serving.model_source import LoadedModel, load_version, resolve
from sensorops.serving.prediction_log import PartitionedLog
from sensorops.serving.protocol import (
    RequestError,
    oip_response,
    parse_json,
    parse_oip,
    parse_predict,
    predict_response,
)

logger = logging.getLogger(__name__)

api = FastAPI(title="sensorops serving", docs_url=None, redoc_url=None)


class Shed(Exception):
    """Admission control refused the request (answered 503 with Retry-After)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class _Item:
    values: np.ndarray
    deadline: float  # time.monotonic() by which the answer is due
    debug_delay_s: float = 0.0
    loaded: LoadedModel | None = None  # the arm's model (None: production at batch time)


@dataclass
class _Result:
    proba: np.ndarray | None
    info: dict[str, Any] | None
    version: str
    alias: str
    shed: bool = False
    cpu_s: float = 0.0  # model CPU seconds (preprocessing + inference) of this series
    batch_n: int = (
        1  # series in the ONNX Runtime call that scored it (CPU per series depends on it)
    )
    classes: tuple[str, ...] = ()


@serve.deployment(name="SensorService")
@serve.ingress(api)
class SensorService:
    """One replica: the loaded model, the batcher, the logs, the job runner."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.cfg = ServingConfig.from_dict(config)
        if not self.cfg.tracking_uri:
            raise ValueError("serving.tracking_uri must be resolved before the app is built")
        import numba

        numba.set_num_threads(min(self.cfg.runtime.numba_threads, numba.config.NUMBA_NUM_THREADS))
        self.metrics = ServingMetrics()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="infer")
        # the canary computes in its own thread: a slow candidate never delays production
        self._canary_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="canary")
        self.canary: LoadedModel | None = None
        self.arms = Arms()
        self._rng = np.random.default_rng(self.cfg.rollout.seed)
        self._shadow_inflight = 0
        self._shadow_tasks: set[Any] = set()
        self._cache = Path(self.cfg.jobs.dir).parent / ".model_cache"
        self._depth = 0
        self._batch_s = 0.005  # EWMA of one batch's preprocessing + inference time
        self._swap_lock = threading.Lock()
        self.current: LoadedModel = self._load(self._resolve())
        self._measure_batch()
        for batcher in (self._predict_batch, self._canary_batch):
            batcher.set_max_batch_size(self.cfg.batching.max_batch_size)
            batcher.set_batch_wait_timeout_s(self.cfg.batching.max_wait_ms / 1000.0)
        self.log = PartitionedLog(
            self.cfg.prediction_log.dir,
            self.cfg.prediction_log.flush_records,
            self.cfg.prediction_log.flush_s,
        )
        self.feedback = PartitionedLog(
            Path(self.cfg.prediction_log.dir).parent / "feedback",
            self.cfg.prediction_log.flush_records,
            self.cfg.prediction_log.flush_s,
            partition_by=("date",),
        )
        self.armlog = PartitionedLog(
            self.cfg.rollout.log_dir,
            self.cfg.prediction_log.flush_records,
            self.cfg.prediction_log.flush_s,
            partition_by=("date",),
        )
        self._refresh_arms()
        self.jobs = JobStore(self.cfg.jobs.dir)
        self._job_refs: dict[str, Any] = {}
        for rec in self.jobs.claim_open():
            logger.info("resubmitting job %s (attempt %d)", rec.id, rec.attempts)
            self._submit_job(rec.id)
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch_alias, name="alias-watch", daemon=True)
        self._watcher.start()

    # --- model lifecycle ------------------------------------------------------------------------

    def _load(self, resolved: Any, info: bool = True) -> LoadedModel:
        runtime = self.cfg.runtime
        from sensorops.registry.pyfunc import choose_providers

        loaded = load_version(
            self.cfg.tracking_uri,
            resolved,
            providers=choose_providers(runtime.providers),
            intra_op_threads=runtime.intra_op_threads,
            cache_dir=self._cache,
        )
        self.metrics.model_load.labels(resolved.version).set(loaded.load_s)
        if info:  # the canary keeps model_info naming the production version
            self.metrics.serving(
                resolved.name, resolved.version, resolved.alias, loaded.model.provider
            )
        logger.info(
            "serving %s v%s (@%s) on %s; loaded in %.2fs",
            resolved.name,
            resolved.version,
            resolved.alias,
            loaded.model.provider,
            loaded.load_s,
        )
        return loaded

    def _measure_batch(self) -> None:
        """Seed the batch-time estimate with one full batch of the model's own length."""
        m = self.current.model
        state = m.state
        B = self.cfg.batching.max_batch_size
        ref = (
            np.asarray(state.alignment.references[0])
            if state.alignment.method == "dtw"
            else np.zeros((state.length, state.n_channels))
        )
        start = time.perf_counter()
        X, _ = state.transform([ref] * B)
        m.logits(X)
        self._batch_s = time.perf_counter() - start

    def _resolve(self) -> Any:
        c = self.cfg
        return resolve(c.tracking_uri, c.model, c.alias, c.fallback_alias, c.version)

    def _watch_alias(self) -> None:
        if self.cfg.version is not None:  # pinned: nothing to follow
            return
        while not self._stop.wait(self.cfg.reload.poll_s):
            try:
                now = self._resolve()
                cur = self.current.resolved
                if (now.version, now.alias) != (cur.version, cur.alias):
                    logger.info("alias moved: v%s -> v%s; loading beside", cur.version, now.version)
                    loaded = self._load(now)
                    with self._swap_lock:
                        self.current = loaded  # one reference swap; running batches keep theirs
                    self.metrics.reloads.inc()
            except Exception:
                logger.exception("alias check failed; keeping v%s", self.current.resolved.version)
            try:
                self._refresh_arms()
            except Exception:
                logger.exception("rollout check failed; keeping %s", self.arms)

    def _refresh_arms(self) -> None:
        """Read ``@canary`` and the rollout tag; load a new canary beside, or drop the arm."""
        rc = self.cfg.rollout
        if not rc.enabled or self.cfg.version is not None:
            return
        from mlflow import MlflowClient

        from sensorops.serving.model_source import Resolved

        client = MlflowClient(
            tracking_uri=self.cfg.tracking_uri, registry_uri=self.cfg.tracking_uri
        )
        rm = client.get_registered_model(self.cfg.model)
        aliases = {a: str(v) for a, v in (rm.aliases or {}).items()}
        arms = arms_from(dict(rm.tags or {}), aliases, rc.canary_alias)
        if arms.canary is None:
            if self.arms.canary is not None:
                logger.info("rollout ended: canary arm v%s dropped", self.arms.canary)
            self.arms, self.canary = arms, None
            return
        if self.canary is None or self.canary.resolved.version != arms.canary:
            mv = client.get_model_version(self.cfg.model, arms.canary)
            resolved = Resolved(self.cfg.model, rc.canary_alias, arms.canary, str(mv.source))
            self.canary = self._load(resolved, info=False)
        if arms != self.arms:
            logger.info("rollout: canary v%s at %.1f%% (%s)", arms.canary, arms.weight, arms.mode)
        self.arms = arms
        self.metrics.arm_weight.set(arms.weight if arms.mode == "live" else 0.0)

    def _route(self, key: str | None) -> tuple[LoadedModel, bool]:
        """The model that answers this request, and whether it is the canary (live routing)."""
        arms, canary = self.arms, self.canary
        if canary is None or arms.mode != "live" or arms.weight <= 0:
            return self.current, False
        u = bucket(key, arms.rollout_id) if key else float(self._rng.random())
        if u * 100.0 < arms.weight:
            return canary, True
        return self.current, False

    def check_health(self) -> None:
        """Ray Serve's replica health check: unhealthy when the alias watcher died."""
        if self.cfg.version is None and not self._watcher.is_alive():
            raise RuntimeError("alias watcher thread died")

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            for name in ("log", "feedback", "armlog"):
                log = getattr(self, name, None)
                if log is not None:
                    log.close()

    # --- batching + admission -------------------------------------------------------------------

    def _estimate_s(self, n_new: int) -> float:
        """Estimated time until ``n_new`` more series are answered (queue + their batch)."""
        B = self.cfg.batching.max_batch_size
        batches = math.ceil((self._depth + n_new) / B) + 1  # + the batch running now
        return batches * self._batch_s + self.cfg.batching.max_wait_ms / 1000.0

    def _admit(self, endpoint: str, n: int, arrival: float, deadline_ms: float) -> float:
        deadline = arrival + deadline_ms / 1000.0
        adm = self.cfg.admission
        if self._depth + n > adm.max_queued:
            self.metrics.shed.labels(endpoint, "queue_full").inc()
            raise Shed("queue_full", f"{self._depth} series queued; the limit is {adm.max_queued}")
        if self._depth == 0:  # nothing queued: always admit (keeps the estimate fresh)
            return deadline
        eta = time.monotonic() + self._estimate_s(n)
        if eta > deadline:
            self.metrics.shed.labels(endpoint, "deadline").inc()
            raise Shed(
                "deadline",
                f"estimated answer in {(eta - arrival) * 1000:.0f} ms exceeds the "
                f"{deadline_ms:.0f} ms deadline ({self._depth} series queued)",
            )
        return deadline

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _predict_batch(self, items: list[_Item]) -> list[_Result]:
        return await self._score_batch(items)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _canary_batch(self, items: list[_Item]) -> list[_Result]:
        """The canary's own queue: a batch resolves as a whole, so a slow canary sharing
        production's batches would hold production's answers too."""
        return await self._score_batch(items)

    async def _score_batch(self, items: list[_Item]) -> list[_Result]:
        self._depth -= len(items)
        self.metrics.queue_depth.set(max(self._depth, 0))
        primary = self.current
        now = time.monotonic()
        results: list[_Result] = [
            _Result(None, None, primary.resolved.version, primary.resolved.alias, shed=True)
            for _ in items
        ]
        groups: dict[int, tuple[LoadedModel, list[int]]] = {}  # one ORT call per arm
        for i, it in enumerate(items):
            if now + self._batch_s <= it.deadline:
                loaded = it.loaded or primary
                groups.setdefault(id(loaded), (loaded, []))[1].append(i)
        if not groups:
            return results
        await asyncio.gather(*(self._run_group(items, results, g) for g in groups.values()))
        return results

    async def _run_group(
        self, items: list[_Item], results: list[_Result], group: tuple[LoadedModel, list[int]]
    ) -> None:
        loaded, live = group
        ver, alias = loaded.resolved.version, loaded.resolved.alias
        is_canary = loaded is not self.current and loaded is self.canary
        pool = self._canary_pool if is_canary else self._pool
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        delay = max(items[i].debug_delay_s for i in live)
        proba, info, cpu_s = await loop.run_in_executor(
            pool, self._compute, loaded, [items[i].values for i in live], delay
        )
        took = time.perf_counter() - start
        if not is_canary:
            self._batch_s = 0.7 * self._batch_s + 0.3 * took
        self.metrics.batch_size.observe(len(live))
        self.metrics.batch_seconds.observe(took)
        classes = tuple(loaded.model.state.classes)
        for j, i in enumerate(live):
            results[i] = _Result(proba[j], info[j], ver, alias, cpu_s=cpu_s / len(live), batch_n=len(live),
                                 classes=classes)  # fmt: skip

    def _compute(
        self, loaded: LoadedModel, values: list[np.ndarray], delay_s: float = 0.0
    ) -> tuple[np.ndarray, list[dict[str, Any]], float]:
        if delay_s:  # test-only slow model (serving.debug_delay_header)
            time.sleep(delay_s)
        cpu0 = time.thread_time()
        m = loaded.model
        X, info = m.state.transform(values)
        proba = softmax(m.logits(X))
        return proba, info, time.thread_time() - cpu0

    async def _run(
        self,
        endpoint: str,
        values: list[np.ndarray],
        deadline_ms: float,
        arrival: float,
        delay_s: float = 0.0,
        field: str = "instances",
        loaded: LoadedModel | None = None,
    ) -> list[_Result]:
        state = (loaded or self.current).model.state
        checked = state.check(
            values, field=field, max_nan_run=self.cfg.runtime.max_nan_run, index=field != "data"
        )
        deadline = self._admit(endpoint, len(checked), arrival, deadline_ms)
        self._depth += len(checked)
        self.metrics.queue_depth.set(self._depth)
        items = [_Item(v, deadline, delay_s, loaded) for v in checked]
        is_canary = loaded is not None and loaded is self.canary and loaded is not self.current
        batcher = self._canary_batch if is_canary else self._predict_batch
        results = await asyncio.gather(*(batcher(it) for it in items))
        if any(r.shed for r in results):
            self.metrics.shed.labels(endpoint, "expired_in_queue").inc()
            raise Shed("expired_in_queue", "the deadline passed while the request was queued")
        return list(results)

    def _record(
        self,
        rid: str,
        endpoint: str,
        arrival_wall: float,
        values: list[np.ndarray],
        results: list[_Result],
        latency_ms: float,
    ) -> None:
        records = []
        for i, (v, r) in enumerate(zip(values, results, strict=True)):
            assert r.proba is not None and r.info is not None
            classes = list(r.classes)
            records.append(
                {
                    "request_id": rid,
                    "series_index": i,
                    "time": np.datetime64(int(arrival_wall * 1e6), "us"),
                    "endpoint": endpoint,
                    "model": self.cfg.model,
                    "version": r.version,
                    "alias": r.alias,
                    "n_steps": int(r.info["length"]),
                    "nans_filled": int(r.info["nans_filled"]),
                    "points_repaired": int(r.info["points_repaired"]),
                    "reference": r.info["reference"],
                    "alignment_cost": float(r.info["alignment_cost"]),
                    "input_mean": np.nanmean(v, axis=0).tolist(),
                    "input_std": np.nanstd(v, axis=0).tolist(),
                    "predicted": classes[int(r.proba.argmax())],
                    "probabilities": r.proba.tolist(),
                    "classes": classes,
                    "latency_ms": latency_ms,
                }
            )
            if self.cfg.prediction_log.raw_input:  # NaN as null: Parquet keeps the gap
                records[-1]["input_values"] = np.where(np.isnan(v), None, v).tolist()
        self.log.append(records)

    async def _handle(self, endpoint: str, request: Request, name: str | None = None) -> Response:
        arrival = time.monotonic()
        arrival_wall = time.time()
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        loaded, is_canary = self._route(request.headers.get("x-request-key"))
        version, arm = loaded.resolved.version, loaded.resolved.alias
        rt, adm = self.cfg.runtime, self.cfg.admission
        delay_arm = request.headers.get("x-debug-delay-arm")
        try:
            if name is not None and name != self.cfg.model:
                raise RequestError(
                    404, "model_name", f"no model {name!r}; this service serves {self.cfg.model!r}"
                )
            body = parse_json(await request.body())
            header = request.headers.get("x-deadline-ms")
            if endpoint == "infer":
                state = loaded.model.state
                values, oip_id, deadline_ms = parse_oip(
                    body, state.n_channels, rt.max_request_series, adm.deadline_ms, header
                )
                rid, field = oip_id or rid, "inputs[0].data"
            else:
                values, deadline_ms, field = parse_predict(
                    body, rt.max_request_series, adm.deadline_ms, header
                )
            delay_ms = 0.0
            if self.cfg.debug_delay_header and request.headers.get("x-debug-delay-ms"):
                try:
                    delay_ms = float(request.headers["x-debug-delay-ms"])
                except ValueError as exc:
                    raise RequestError(422, "X-Debug-Delay-Ms", "must be a number") from exc
            delay_s = delay_ms / 1000.0 if delay_arm in (None, arm) else 0.0
            results = await self._run(
                endpoint, values, deadline_ms, arrival, delay_s, field, loaded
            )
        except RequestError as exc:
            return self._fail(endpoint, loaded, arrival, arrival_wall, exc.status, exc.body(), rid)
        except InputError as exc:
            body = {"error": str(exc), "field": exc.field}
            return self._fail(endpoint, loaded, arrival, arrival_wall, 422, body, rid)
        except Shed as exc:
            body = {"error": f"overloaded: {exc.detail}", "reason": exc.reason}
            return self._fail(endpoint, loaded, arrival, arrival_wall, 503, body, rid,
                              headers={"Retry-After": str(adm.retry_after_s)})  # fmt: skip
        proba = np.stack([r.proba for r in results])
        version, alias = results[0].version, results[0].alias
        classes = list(results[0].classes)
        if endpoint == "infer":
            payload = oip_response(rid, self.cfg.model, version, classes, proba)
        else:
            payload = predict_response(rid, self.cfg.model, version, alias, classes, proba)
            payload["arm"] = alias
        latency_ms = (time.monotonic() - arrival) * 1000
        response = self._answer(endpoint, version, arrival, 200, payload, rid,
                                headers={"X-Model-Version": version, "X-Model-Arm": alias})  # fmt: skip
        self._record(rid, endpoint, arrival_wall, values, results, latency_ms)
        self._arm_records(rid, arrival_wall, alias, version, results, 200, latency_ms)
        if not is_canary and self.canary is not None and self.arms.mode == "shadow":
            self._shadow(rid, arrival_wall, values, delay_ms if delay_arm in (None, self.cfg.rollout.canary_alias) else 0.0)  # fmt: skip
        return response

    def _fail(
        self,
        endpoint: str,
        loaded: LoadedModel,
        arrival: float,
        arrival_wall: float,
        status: int,
        payload: dict[str, Any],
        rid: str,
        headers: dict[str, str] | None = None,
    ) -> Response:
        version, arm = loaded.resolved.version, loaded.resolved.alias
        response = self._answer(
            endpoint, version, arrival, status, payload, rid,
            headers={"X-Model-Version": version, "X-Model-Arm": arm, **(headers or {})},
        )  # fmt: skip
        latency_ms = (time.monotonic() - arrival) * 1000
        self._arm_records(rid, arrival_wall, arm, version, None, status, latency_ms)
        return response

    def _arm_records(
        self,
        rid: str,
        arrival_wall: float,
        arm: str,
        version: str,
        results: list[_Result] | None,
        status: int,
        latency_ms: float,
        shadow: bool = False,
    ) -> None:
        """One arm-log record per series (one per request when it failed before scoring)."""
        if not self.cfg.rollout.enabled:
            return
        t = np.datetime64(int(arrival_wall * 1e6), "us")
        base = {"request_id": rid, "time": t, "model": self.cfg.model, "version": version,
                "arm": arm, "shadow": shadow, "status": int(status), "latency_ms": latency_ms}  # fmt: skip
        if not results:
            self.armlog.append([{**base, "series_index": 0, "cpu_s": None, "batch_n": None,
                                 "predicted": None}])  # fmt: skip
            return
        records = []
        for i, r in enumerate(results):
            predicted = r.classes[int(r.proba.argmax())] if r.proba is not None else None
            records.append({**base, "series_index": i, "cpu_s": float(r.cpu_s), "batch_n": r.batch_n,
                            "predicted": predicted})  # fmt: skip
        self.armlog.append(records)

    def _shadow(
        self, rid: str, arrival_wall: float, values: list[np.ndarray], delay_ms: float
    ) -> None:
        """Score a copy on the canary in the background; the caller already has production's answer."""
        canary = self.canary
        if canary is None:
            return
        if self._shadow_inflight >= self.cfg.rollout.shadow_max_inflight:
            self.metrics.shadow_dropped.inc()
            return
        self._shadow_inflight += 1

        async def run() -> None:
            start = time.monotonic()
            status, results = 200, None
            try:
                state = canary.model.state
                checked = state.check(values, field="instances",
                                      max_nan_run=self.cfg.runtime.max_nan_run)  # fmt: skip
                loop = asyncio.get_running_loop()
                proba, info, cpu_s = await loop.run_in_executor(
                    self._canary_pool, self._compute, canary, checked, delay_ms / 1000.0
                )
                classes = tuple(state.classes)
                results = [_Result(proba[j], info[j], canary.resolved.version,
                                   canary.resolved.alias, cpu_s=cpu_s / len(checked), batch_n=len(checked),
                                   classes=classes) for j in range(len(checked))]  # fmt: skip
            except InputError:
                status = 422
            except Exception:
                logger.exception("shadow scoring on v%s failed", canary.resolved.version)
                status = 500
            finally:
                self._shadow_inflight -= 1
            self._arm_records(rid, arrival_wall, canary.resolved.alias, canary.resolved.version,
                              results, status, (time.monotonic() - start) * 1000, shadow=True)  # fmt: skip

        task = asyncio.get_running_loop().create_task(run())
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    def _answer(
        self,
        endpoint: str,
        version: str,
        arrival: float,
        status: int,
        payload: dict[str, Any],
        rid: str,
        headers: dict[str, str] | None = None,
    ) -> Response:
        if status != 200:
            payload = {**payload, "request_id": rid}
        self.metrics.observe(endpoint, version, status, time.monotonic() - arrival)
        return JSONResponse(
            payload,
            status_code=status,
            headers={"X-Request-Id": rid, "X-Replica": self._replica_id(), **(headers or {})},
        )

    def _replica_id(self) -> str:
        try:
            return str(serve.get_replica_context().replica_id.unique_id)
        except Exception:  # outside a replica (never in the service)
            return ""

    # --- routes ----------------------------------------------------------------------------------

    @api.post("/v1/predict")
    async def predict(self, request: Request) -> Response:
        return await self._handle("predict", request)

    @api.post("/v2/models/{name}/infer")
    async def infer(self, name: str, request: Request) -> Response:
        return await self._handle("infer", request, name=name)

    @api.get("/v2/models/{name}")
    async def model_metadata(self, name: str) -> Response:
        if name != self.cfg.model:
            return JSONResponse({"error": f"no model {name!r}", "field": "model_name"}, 404)
        state = self.current.model.state
        return JSONResponse(
            {
                "name": self.cfg.model,
                "versions": [self.current.resolved.version],
                "platform": "onnxruntime+sensorops-preprocessing",
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, state.n_channels, -1]}],
                "outputs": [
                    {
                        "name": "probabilities",
                        "datatype": "FP64",
                        "shape": [-1, len(state.classes)],
                    },
                    {"name": "predicted", "datatype": "BYTES", "shape": [-1]},
                ],
            }
        )

    @api.get("/v2/health/ready")
    async def oip_ready(self) -> Response:
        return await self.ready()

    @api.get("/-/healthz")
    async def healthz(self) -> Response:
        return Response("ok", media_type="text/plain")

    @api.get("/ready")
    async def ready(self) -> Response:
        cur = self.current
        arms, canary = self.arms, self.canary
        replica = self._replica_id() or None
        return JSONResponse(
            {
                "ready": True,
                "app": self.cfg.app_name,
                "replica": replica,
                "rollout": {
                    "canary_version": canary.resolved.version if canary else None,
                    "weight": arms.weight if canary else 0.0,
                    "mode": arms.mode,
                    "rollout_id": arms.rollout_id,
                },
                "model": cur.resolved.name,
                "version": cur.resolved.version,
                "alias": cur.resolved.alias,
                "provider": cur.model.provider,
                "providers": list(cur.model.session.get_providers()),
                "model_load_s": cur.load_s,
                "classes": list(cur.model.state.classes),
                "channels": list(cur.model.state.channels),
                "length": cur.model.state.length,
                "batching": self.cfg.batching.model_dump(),
            }
        )

    @api.get("/metrics")
    async def metrics(self) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")

    @api.post("/v1/feedback")
    async def feedback_route(self, request: Request) -> Response:
        try:
            body = parse_json(await request.body())
            if not isinstance(body, dict):
                raise RequestError(422, "body", "must be a JSON object {request_id, label}")
            rid, label = body.get("request_id"), body.get("label")
            if not isinstance(rid, str) or not rid:
                raise RequestError(
                    422, "request_id", "must be the non-empty id of an answered request"
                )
            classes = list(self.current.model.state.classes)
            new_class = body.get("new_class", False)
            if not isinstance(new_class, bool):
                raise RequestError(422, "new_class", f"must be true or false; got {new_class!r}")
            if new_class and (not isinstance(label, str) or not label or label in classes):
                raise RequestError(
                    422, "label", f"a new class must be a non-empty name not in {classes}; "
                    f"got {label!r}",
                )  # fmt: skip
            if not new_class and label not in classes:
                raise RequestError(
                    422, "label", f"must be one of {classes}; got {label!r} (a class the "
                    'model does not know, e.g. a new kind of fault: send "new_class": true)',
                )  # fmt: skip
            index = body.get("series_index", 0)
            if not isinstance(index, int) or index < 0:
                raise RequestError(422, "series_index", f"must be an integer >= 0; got {index!r}")
        except RequestError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        self.feedback.append(
            [{"request_id": rid, "series_index": index, "label": label,
              "time": np.datetime64(int(time.time() * 1e6), "us")}]
        )  # fmt: skip
        return JSONResponse(
            {"accepted": True, "request_id": rid, "new_class": new_class}, status_code=202
        )

    @api.post("/v1/jobs")
    async def submit_job(self, request: Request) -> Response:
        try:
            body = parse_json(await request.body())
            if not isinstance(body, dict) or not isinstance(body.get("input"), str):
                raise RequestError(422, "input", "must be the path of a long-format Parquet file")
            try:
                path = check_job_input(body["input"], self.current.model.state.channels)
            except JobError as exc:
                raise RequestError(422, "input", str(exc).removeprefix("input: ")) from exc
        except RequestError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        cur = self.current.resolved
        rec = self.jobs.create(
            str(path.resolve()), cur.name, cur.version, cur.alias, self.cfg.tracking_uri
        )
        self._submit_job(rec.id)
        return JSONResponse(
            {
                "job_id": rec.id,
                "state": rec.state,
                "version": rec.version,
                "status": f"/v1/jobs/{rec.id}",
            },
            status_code=202,
        )

    @api.get("/v1/jobs/{job_id}")
    async def get_job(self, job_id: str) -> Response:
        try:
            rec = self.jobs.get(job_id)
        except JobError as exc:
            return JSONResponse({"error": str(exc), "field": "job_id"}, status_code=404)
        return JSONResponse(rec.public())

    def _submit_job(self, job_id: str) -> None:
        import ray

        task = ray.remote(num_cpus=0)(run_job)
        self._job_refs[job_id] = task.remote(self.cfg.jobs.dir, job_id, self.cfg.jobs.batch_size)


def build_app(cfg: ServingConfig) -> Any:
    """The bound application for ``serve.run`` (deployment options from ``cfg``)."""
    adm, b = cfg.admission, cfg.batching
    return SensorService.options(
        num_replicas=cfg.num_replicas,
        max_ongoing_requests=adm.max_queued + b.max_batch_size,
        max_queued_requests=adm.max_queued,
        ray_actor_options={"num_cpus": 1},
        health_check_period_s=5,
        graceful_shutdown_timeout_s=5,
    ).bind(cfg.model_dump())
