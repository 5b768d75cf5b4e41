"""Prometheus metrics of one replica (``GET /metrics``), in their own registry.

Names (all prefixed ``sensorops_serving_``):

- ``requests_total{endpoint,version,code}`` and ``errors_total{endpoint,version,code}``
  (every 4xx/5xx answer, shed ones included) and ``shed_total{endpoint,reason}``;
- ``request_latency_seconds{endpoint,version}`` histogram (arrival to answer);
- ``batch_size`` histogram (series per ONNX Runtime call) and ``batch_seconds`` histogram;
- ``queue_depth`` gauge (series waiting for a batch);
- ``model_load_seconds{version}`` gauge (download + session + warm-up) and ``reloads_total``;
- ``model_info{model,version,alias,provider}`` gauge (1 for the version serving now), which
  carries the ONNX Runtime execution provider that ran;
- ``canary_weight_percent`` gauge (live share routed to ``@canary``; 0 without a rollout or in
  shadow mode) and ``shadow_dropped_total`` (shadow copies skipped because too many were running).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServingMetrics:
    """The service's metric families, registered in a private :class:`CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        p = "sensorops_serving_"
        r = self.registry
        self.requests = Counter(
            p + "requests", "Answered requests", ["endpoint", "version", "code"], registry=r
        )
        self.errors = Counter(
            p + "errors", "Requests answered 4xx/5xx", ["endpoint", "version", "code"], registry=r
        )
        self.shed = Counter(
            p + "shed", "Requests refused by admission control", ["endpoint", "reason"], registry=r
        )
        self.latency = Histogram(
            p + "request_latency_seconds",
            "Arrival to answer",
            ["endpoint", "version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            p + "batch_size", "Series per ONNX Runtime call", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            p + "batch_seconds", "Preprocessing + inference time of one batch",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge(p + "queue_depth", "Series waiting for a batch", registry=r)
        self.model_load = Gauge(
            p + "model_load_seconds", "Download + session + warm-up", ["version"], registry=r
        )
        self.reloads = Counter(p + "reloads", "Model swaps after the alias moved", registry=r)
        self.model_info = Gauge(
            p + "model_info",
            "1 for the version serving now",
            ["model", "version", "alias", "provider"],
            registry=r,
        )

        self.arm_weight = Gauge(
            p + "canary_weight_percent", "Live traffic share routed to @canary", registry=r
        )
        self.shadow_dropped = Counter(
            p + "shadow_dropped", "Shadow copies skipped (too many in flight)", registry=r
        )

    def observe(self, endpoint: str, version: str, code: int, seconds: float) -> None:
        self.requests.labels(endpoint, version, str(code)).inc()
        if code >= 400:
            self.errors.labels(endpoint, version, str(code)).inc()
        self.latency.labels(endpoint, version).observe(seconds)

    def serving(self, model: str, version: str, alias: str, provider: str) -> None:
        self.model_info.clear()
        self.model_info.labels(model, version, alias, provider).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
