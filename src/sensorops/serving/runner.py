"""Start and stop the service: Ray (local or a cluster), Serve, the application, the URL.

Ingress modes (``serving.ingress``):

- ``direct`` (default): ``RAY_SERVE_ENABLE_DIRECT_INGRESS=1``. No Serve proxy is started; each
  ingress replica runs its own HTTP server, on ports allocated from
  ``RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT`` upwards, which :func:`start` sets to
  ``serving.port`` (so one replica listens exactly there; more replicas take the next ports and
  need a load balancer in front, e.g. the Kubernetes Service of the KubeRay recipe). Measured
  2-3 ms CPU per request against 14-29 ms through the proxy (``benchmarks/bench_serving.py``,
  ``shared/notes/serving-probe.md``).
- ``proxy``: Ray Serve's HTTP proxy on ``serving.port`` routes to every replica.

The direct-ingress variables are read by the Serve controller and replicas at import time, so
on a cluster started with ``ray start`` they must be exported before ``ray start`` (the recipes
in ``pipelines/serving/`` do); :func:`start` sets them for a local Ray it starts itself.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensorops.serving.config import ServingConfig

logger = logging.getLogger(__name__)

DIRECT_ENV = "RAY_SERVE_ENABLE_DIRECT_INGRESS"


class ServiceStartError(RuntimeError):
    """The application did not come up (names the URL and the last error)."""


@dataclass
class Service:
    """A running application.

    Attributes:
        url: base URL of the (first) ingress, e.g. ``http://127.0.0.1:8000``.
        config: the resolved configuration it runs with.
        started_ray: whether :func:`start` started Ray (and :func:`stop` shuts it down).
        urls: every ready replica's base URL (direct ingress: one port per replica).
    """

    url: str
    config: ServingConfig
    started_ray: bool
    urls: list[str] | None = None


def direct_ingress_env(port: int, n_ports: int = 64) -> dict[str, str]:
    """Environment that makes Serve's direct ingress allocate ports from ``port`` upwards."""
    return {
        DIRECT_ENV: "1",
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(port),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(port + n_ports),
    }


def start(
    cfg: ServingConfig, temp_dir: str | Path | None = None, timeout_s: float = 180.0
) -> Service:
    """Start (or join) Ray, start Serve, deploy the app and wait until ``/ready`` answers.

    Args:
        cfg: configuration with ``tracking_uri`` resolved and absolute log/job directories.
        temp_dir: Ray's session directory root when this call starts Ray (default Ray's own).
        timeout_s: how long to wait for the first replica to load and warm the model.

    Raises:
        ServiceStartError: the app did not become ready in time.
    """
    if cfg.ray_address is None and "RAY_AUTH_MODE" not in os.environ:
        # token auth with a token of our own: the default ~/.ray/auth_token is shared by every
        # Ray on the machine and may be rewritten under us. Set before `import ray`, which
        # caches the auth mode.
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    import ray
    from ray import serve

    if cfg.ingress == "direct" and cfg.ray_address is None:
        os.environ.update(direct_ingress_env(cfg.port))
    elif cfg.ingress == "proxy" and cfg.ray_address is None:
        os.environ.pop(DIRECT_ENV, None)
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"namespace": cfg.namespace, "log_to_driver": False}
        if cfg.ray_address is not None:
            kwargs["address"] = cfg.ray_address
        else:
            kwargs["address"] = "local"  # a new local Ray, never someone else's running one
            kwargs["include_dashboard"] = False

            temp_dir = temp_dir or cfg.ray_temp_dir
            if temp_dir is not None:
                kwargs["_temp_dir"] = str(temp_dir)
        ray.init(**kwargs)
        started = cfg.ray_address is None
    from sensorops.serving.app import build_app

    serve.start(
        http_options={"host": cfg.host, "port": cfg.port},
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    try:
        serve.run(build_app(cfg), name=cfg.app_name, route_prefix="/", blocking=False)
    except Exception as exc:  # e.g. another application of the cluster holds the prefix "/"
        cause = str(getattr(exc, "cause", None) or exc).strip().splitlines()[-1]
        raise ServiceStartError(
            f"Serve refused to deploy application {cfg.app_name!r}: {cause}"
        ) from exc
    urls = wait_replicas(cfg, timeout_s)
    return Service(url=urls[0], config=cfg, started_ray=started, urls=urls)


def _ready(url: str, timeout: float = 5.0) -> dict[str, Any] | None:
    with urllib.request.urlopen(f"{url}/ready", timeout=timeout) as resp:
        body = json.loads(resp.read())
        return body if resp.status == 200 and body.get("ready") else None


def find_replicas(cfg: ServingConfig, n_ports: int = 64) -> list[str]:
    """Base URLs of this application's ready replicas, one per replica.

    Through the proxy that is ``serving.port``. With direct ingress on a shared cluster, Serve
    gives each ingress replica the lowest free port from ``serving.port`` upwards (another
    application may hold the first ones), and may also answer on a port of the range that
    forwards to any replica. Every port is asked ``/ready`` three times; a port answered by
    different replicas is such a forwarder and is skipped, and of two ports naming one replica
    the higher (the replica's own, allocated after the forwarder's) is kept."""
    ports = [cfg.port] if cfg.ingress == "proxy" else range(cfg.port, cfg.port + n_ports)
    found: dict[str, str] = {}  # replica id -> URL
    for port in ports:
        url = f"http://{cfg.host}:{port}"
        ids = set()
        for _ in range(3 if cfg.ingress == "direct" else 1):
            try:
                body = _ready(url, timeout=2.0)
            except (OSError, ValueError, http.client.HTTPException):
                break  # nothing there, or not HTTP (a replica's gRPC port, another program)
            if not body or body.get("model") != cfg.model:
                break
            if body.get("app", cfg.app_name) != cfg.app_name:
                break
            ids.add(str(body.get("replica") or url))
        else:
            if len(ids) == 1:
                found[ids.pop()] = url
    return list(found.values())


def wait_ready(cfg: ServingConfig, timeout_s: float) -> str:
    """Wait until ``serving.num_replicas`` replicas of this app answer ``/ready``; the first URL."""
    urls = wait_replicas(cfg, timeout_s)
    return urls[0]


def wait_replicas(cfg: ServingConfig, timeout_s: float) -> list[str]:
    """Poll until this application's replicas (all ``num_replicas`` of them) are ready."""
    deadline = time.monotonic() + timeout_s
    want = cfg.num_replicas if cfg.ingress == "direct" else 1
    found: list[str] = []
    while time.monotonic() < deadline:
        found = find_replicas(cfg)
        if len(found) >= want:
            return found
        time.sleep(0.5)
    raise ServiceStartError(
        f"{want} replica(s) of {cfg.app_name} ({cfg.model}) did not answer /ready on "
        f"http://{cfg.host}:{cfg.port}+ within {timeout_s:.0f}s (found {found})"
    )


def stop(service: Service | None = None, config: ServingConfig | None = None) -> None:
    """Delete the application; on a Ray this process started, shut Serve and Ray down.

    On a cluster it joined, only this application is deleted: Serve (its controller) stays up for
    the other applications and for a restart of this one, which then deploys on a live
    controller instead of racing a dying one. ``config`` says which case it is when
    :func:`start` failed before it returned a service."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        return
    cfg = service.config if service is not None else config
    joined = not service.started_ray if service is not None else bool(cfg and cfg.ray_address)
    try:
        if joined and cfg is not None:
            try:
                serve.delete(cfg.app_name, _blocking=True)
            except Exception as exc:  # it may never have deployed
                logger.info("application %r not deleted: %s", cfg.app_name, exc)
        elif not joined:
            serve.shutdown()
            _wait_controller_gone()
    finally:
        ray.shutdown()  # stops a local Ray this process started; only disconnects from a cluster


def _wait_controller_gone(timeout_s: float = 30.0) -> None:
    """Block until Serve's controller actor is really gone from the cluster.

    ``serve.shutdown()`` kills the controller asynchronously; a service restarted on the same
    cluster meanwhile would attach to the dying controller and fail to deploy."""
    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        except ValueError:
            return
        time.sleep(0.2)
    logger.warning("Serve's controller was still registered %.0f s after shutdown", timeout_s)
