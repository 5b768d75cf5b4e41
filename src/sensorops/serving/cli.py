"""``sensorops serve [NAME[@ALIAS]]``: serve a registry alias on Ray Serve until interrupted.

Usage::

    sensorops serve                                   # sensorops-classifier@production on 127.0.0.1:8000
    sensorops serve sensorops-classifier@staging --port 8080
    sensorops serve --ingress proxy --num-replicas 2  # Serve's HTTP proxy in front of 2 replicas
    sensorops serve --ray-address auto                # join a cluster started by `ray start --head`

Configuration: ``conf/base/parameters_serving.yml`` with ``conf/<ENV>/`` on top (``--env``,
default ``local``), then ``--params FILE`` (a YAML with a ``serving`` key), then the flags.
The tracking URI is ``--tracking-uri``, else ``serving.tracking_uri``, else
``$MLFLOW_TRACKING_URI``, else ``sqlite:///<project root>/mlflow.db``.

Exit codes: 0 stopped by a signal; 2 bad configuration or no such model/alias; 3 the tracking
server does not answer; 4 the service did not become ready.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sensorops serve", description=__doc__.split("\n")[0])
    p.add_argument(
        "ref", nargs="?", help="NAME or NAME@ALIAS (default from parameters_serving.yml)"
    )
    p.add_argument("--version", default=None, help="serve this version (pinned, no reload)")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--ingress", choices=["direct", "proxy"], default=None)
    p.add_argument("--num-replicas", type=int, default=None)
    p.add_argument(
        "--ray-address", default=None, help="join this Ray cluster ('auto' or host:port)"
    )
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--env", default=None, help="Kedro environment overriding conf/base")
    p.add_argument("--params", default=None, help="YAML with a 'serving' key, merged on top")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def build_config(args: argparse.Namespace, root: Path) -> Any:
    """The :class:`ServingConfig` for these arguments, paths resolved under ``root``."""
    from sensorops.serving.config import ServingConfigError, load_serving_config
    from sensorops.tracking import default_tracking_uri

    overrides: dict[str, Any] = {}
    if args.params:
        doc = yaml.safe_load(Path(args.params).read_text()) or {}
        if "serving" not in doc:
            raise ServingConfigError(f"{args.params} must have a top-level 'serving' key")
        overrides = doc["serving"] or {}
    if args.ref:
        name, _, alias = args.ref.partition("@")
        overrides["model"] = name
        if alias:
            overrides["alias"] = alias
            overrides["fallback_alias"] = None
    for key in (
        "host", "port", "ingress", "num_replicas", "ray_address", "tracking_uri", "version",
    ):  # fmt: skip
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    cfg = load_serving_config(root / "conf", args.env, overrides)
    if not cfg.tracking_uri:
        cfg = cfg.model_copy(update={"tracking_uri": default_tracking_uri()})
    return cfg.resolve_paths(root)


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    from sensorops.serving.config import ServingConfigError
    from sensorops.serving.model_source import ModelSourceError, resolve
    from sensorops.serving.runner import ServiceStartError, start, stop
    from sensorops.tracking import TrackingServerUnreachable, check_tracking_uri, project_root

    try:
        cfg = build_config(args, project_root())
        check_tracking_uri(cfg.tracking_uri)
        found = resolve(cfg.tracking_uri, cfg.model, cfg.alias, cfg.fallback_alias, cfg.version)
    except (ServingConfigError, ModelSourceError) as exc:
        _say(f"error: {exc}")
        return 2
    except TrackingServerUnreachable as exc:
        _say(f"error: {exc}")
        return 3
    _say(f"serving {found.name}@{found.alias} (v{found.version}) ...")
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops as cleanly as Ctrl-C
    service = None
    code = 0
    try:
        service = start(cfg)
        _say(
            f"ready: {service.url}  (POST /v1/predict, /v2/models/{cfg.model}/infer, /v1/jobs; "
            "GET /ready, /metrics); Ctrl-C stops"
        )
        _say(f"replicas: {' '.join(service.urls or [service.url])}")
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    except ServiceStartError as exc:
        _say(f"error: {exc}")
        code = 4
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        stop(service, cfg)
    return code


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
