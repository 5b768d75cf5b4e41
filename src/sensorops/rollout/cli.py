"""``sensorops rollout``: progressive rollout of a registry version on the running service.

Usage::

    sensorops rollout start NAME VERSION [--shadow]   # gates, then @canary at 5% (or shadow)
    sensorops rollout status NAME [--json]            # weight, arms, their numbers, next decision
    sensorops rollout step NAME                       # one manual step
    sensorops rollout abort NAME [--reason TEXT]      # manual rollback: @canary removed, weight 0
    sensorops rollout run NAME                        # the controller, until promoted or rolled back
    sensorops rollout replay URL [--input TABLE] [--rate R] [--max-requests N] [--max-seconds S]

Configuration: ``conf/base/parameters_rollout.yml`` (key ``rollout``) and
``conf/base/parameters_serving.yml`` (key ``serving``: where the service writes its arm and
feedback logs), each with ``conf/<ENV>/`` on top (``--env``), then ``--params FILE`` (a YAML with
``rollout``, ``serving`` and/or ``promotion`` keys). The promotion gates are the project's
``promotion`` parameters, as for ``sensorops models promote``.

Exit codes: 0 done (``run``: promoted); 1 rolled back, or a gate refused the version; 2 bad
arguments, configuration, or no such model/version/rollout; 3 the tracking server does not answer;
4 another rollout or controller holds the model; 5 a registry write failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

DEFAULT_REPLAY_INPUT = "data/02_intermediate/sensor_long.parquet"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sensorops rollout", description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tracking-uri", default=None)
    common.add_argument("--env", default=None, help="Kedro environment overriding conf/base")
    common.add_argument(
        "--params", default=None, help="YAML with rollout/serving/promotion keys, merged on top"
    )
    common.add_argument("--model-input", default=None, help="ModelInput .npz for the gates")
    common.add_argument("--json", action="store_true", help="print JSON")
    common.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start", parents=[common], help="set @canary after the gates pass")
    s.add_argument("name")
    s.add_argument("version")
    s.add_argument(
        "--shadow", action="store_true", help="canary sees a copy; callers get production"
    )
    s.add_argument("--reason", default="")
    for cmd, text in (("status", "weight, arms, numbers, next decision"), ("step", "manual step"),
                      ("run", "run the controller until it finishes")):  # fmt: skip
        c = sub.add_parser(cmd, parents=[common], help=text)
        c.add_argument("name")
    a = sub.add_parser("abort", parents=[common], help="manual rollback")
    a.add_argument("name")
    a.add_argument("--reason", default="manual abort")
    r = sub.add_parser("replay", parents=[common], help="bounded replay load with feedback")
    r.add_argument("url", help="base URL of the service, e.g. http://127.0.0.1:8000")
    r.add_argument(
        "--input", default=None, help=f"long-format table (default {DEFAULT_REPLAY_INPUT})"
    )
    r.add_argument("--split", default="test", help="rows with this split ('' = all)")
    r.add_argument("--rate", type=float, default=20.0, help="requests per second")
    r.add_argument("--max-requests", type=int, default=1000)
    r.add_argument("--max-seconds", type=float, default=60.0)
    r.add_argument("--feedback-delay", type=float, default=1.0, help="seconds before the label")
    r.add_argument("--concurrency", type=int, default=8)
    r.add_argument("--header", action="append", default=[], help="K=V sent with each request")
    return p


def _params(path: str | None) -> dict[str, Any]:
    from sensorops.rollout.config import RolloutConfigError

    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise RolloutConfigError(f"--params {p} does not exist")
    doc = yaml.safe_load(p.read_text()) or {}
    if not isinstance(doc, dict):
        raise RolloutConfigError(
            f"--params {p} must be a mapping with rollout/serving/promotion keys"
        )
    return doc


def _rollout(args: argparse.Namespace) -> Any:
    from sensorops.cli import DEFAULT_MODEL_INPUT, _config, _mi_loader
    from sensorops.registry.client import connect, resolve_tracking_uri
    from sensorops.rollout.config import load_rollout_config
    from sensorops.rollout.controller import Rollout
    from sensorops.serving.config import load_serving_config
    from sensorops.tracking import project_root

    root = project_root()
    doc = _params(args.params)
    cfg = load_rollout_config(root / "conf", args.env, doc.get("rollout") or {})
    serving = load_serving_config(root / "conf", args.env, doc.get("serving") or {})
    serving = serving.resolve_paths(root)
    promotion = _config(args.params, None, "production", args.env)
    uri = resolve_tracking_uri(args.tracking_uri or serving.tracking_uri)
    reg = connect(uri)
    return Rollout(
        reg=reg,
        name=args.name,
        cfg=cfg,
        promotion=promotion,
        arm_log=Path(serving.rollout.log_dir),
        feedback_log=Path(serving.prediction_log.dir).parent / "feedback",
        mi=_mi_loader(args.model_input or str(root / DEFAULT_MODEL_INPUT)),
        production_alias=serving.alias,
    )


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    sys.stdout.write((json.dumps(data, default=str) if args.json else text) + "\n")
    sys.stdout.flush()


def _replay(args: argparse.Namespace) -> int:
    from sensorops.rollout.replay import ReplayError, load_series, replay
    from sensorops.tracking import project_root

    try:
        series, labels = load_series(args.input or project_root() / DEFAULT_REPLAY_INPUT,
                                     split=args.split or None)  # fmt: skip
        headers = {}
        for h in args.header:
            k, sep, v = h.partition("=")
            if not sep or not k:
                raise ReplayError(f"--header must be K=V; got {h!r}")
            headers[k] = v
        report = replay(args.url, series, labels, rate=args.rate, max_requests=args.max_requests,
                        max_seconds=args.max_seconds, feedback_delay_s=args.feedback_delay,
                        concurrency=args.concurrency, headers=headers)  # fmt: skip
    except ReplayError as exc:
        _say(f"error: {exc}")
        return 2
    _print(args, report.to_dict(), json.dumps(report.to_dict(), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    if args.command == "replay":
        return _replay(args)
    from sensorops.config_validation import ConfigError
    from sensorops.registry.errors import RegistryError
    from sensorops.serving.config import ServingConfigError

    try:
        ro = _rollout(args)
        if args.command == "start":
            state = ro.start(args.version, shadow=args.shadow, reason=args.reason)
            _print(args, json.loads(state.to_json()),
                   f"rollout {state.id}: {args.name} v{state.version} is @{ro.cfg.canary_alias} "
                   f"({state.mode}, {state.weight:.0f}% of live traffic)")  # fmt: skip
            return 0
        if args.command == "status":
            st = ro.status()
            _print(args, st, _status_text(st))
            return 0
        if args.command == "step":
            state = ro.step(manual=True)
            _print(args, json.loads(state.to_json()),
                   f"{args.name} v{state.version}: {state.mode}, {state.weight:.0f}%")  # fmt: skip
            return 0
        if args.command == "abort":
            state = ro.abort(args.reason)
            _print(args, json.loads(state.to_json()),
                   f"{args.name}: rollout of v{state.version} aborted at {state.weight:.0f}%")  # fmt: skip
            return 1
        if args.command == "run":
            code = ro.run()
            tail = ro.reg.client.get_registered_model(args.name).aliases
            _say(f"{args.name}: {'promoted' if code == 0 else 'rolled back'}; aliases {tail}")
            return code
    except RegistryError as exc:
        _say(f"error: {exc}")
        return exc.exit_code
    except (ConfigError, ServingConfigError) as exc:
        _say(f"error: {exc}")
        return 2
    return 2


def _status_text(st: dict[str, Any]) -> str:
    lines = [f"{st['model']}: @production v{st['production']}, @canary v{st['canary']}"]
    if st["inconsistent"]:
        lines.append(f"  half-written: {st['inconsistent']} (the next command repairs it)")
    ro = st["rollout"]
    if ro is None:
        lines.append("  no rollout in progress")
        return "\n".join(lines)
    lines.append(f"  rollout {ro['id']}: v{ro['version']} {ro['mode']} at {ro['weight']:.0f}%, "
                 f"step {ro['step']}, window {ro['window_s']:.0f}s")  # fmt: skip
    for arm, n in ro["next"]["arms"].items():
        lines.append(
            f"  {arm:>10}: {n['requests']} req, err {n['error_rate']:.3f}, p50 {n['p50_ms']} ms, "
            f"p99 {n['p99_ms']} ms, cpu {n['cpu_ms_per_series']} ms/series, acc {n['accuracy']} "
            f"({n['labelled']} labelled)"
        )
    lines.append(f"  next: {ro['next']['action']} - {ro['next']['reason']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
