"""Progressive rollout on a live service with the default thresholds: time to promotion and to rollback.

Run in a project whose workflow has run (``make run``: ``NAME`` has an fp32 version in
``@staging`` and compression variants). The script

1. promotes the staged version to ``@production`` if there is none, and stages the candidate
   (``--candidate VERSION``; default the production version's artifact registered again, a
   retrained twin) through the gates;
2. starts ``sensorops serve NAME@production`` (its own local Ray; ``debug_delay_header`` on for
   phase 4) and the replay load generator on the test split (``--rate`` requests/s, labels posted
   back after ``--feedback-delay`` s);
3. ``sensorops rollout start NAME CANDIDATE`` + ``sensorops rollout run NAME`` with the default
   ``conf/base/parameters_rollout.yml`` -> seconds from start to promotion;
4. re-stages the previous production version as a candidate and rolls it out while the replay
   makes its arm 400 ms slower per batch (``X-Debug-Delay-Arm: canary``) -> seconds from start to
   rollback;
5. writes the per-arm numbers of every decision (from the model's history) to ``--out`` as JSON
   and plots them to ``--png``.

Usage::

    python benchmarks/bench_rollout.py --tracking-uri http://127.0.0.1:5000 [--rate 20]
        [--png docs/images/rollout_arms.png] [--out rollout_run.json]

Prints one JSON object with ``seconds_start_to_promotion``, ``seconds_start_to_rollback``,
the number of steps and holds of each, and the interval used.
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path.cwd()


def _cli(
    args: list[str], tracking_uri: str, params: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "sensorops.cli", *args, "--tracking-uri", tracking_uri]
    if args[0] == "rollout":
        cmd += ["--params", str(params)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {r.returncode}:\n{r.stderr[-3000:]}")
    return r


def _events(client: Any, uri: str, name: str, since_seq: int) -> list[dict[str, Any]]:
    from sensorops.registry.client import Registry
    from sensorops.registry.history import read_history

    reg = Registry(uri, client)
    return [
        e for e in read_history(reg, name) if e.get("kind") == "rollout" and e["seq"] > since_seq
    ]


def _register_again(uri: str, client: Any, name: str, version: str) -> str:
    """Register the artifact of ``version`` again (its gate tags included): a retrained twin."""
    import mlflow

    from sensorops.registry.client import Registry
    from sensorops.registry.stages import STAGE_TAG
    from sensorops.registry.transitions import AUDIT_TAG

    mv = client.get_model_version(name, version)
    tags = {k: v for k, v in mv.tags.items() if k not in (STAGE_TAG, AUDIT_TAG)}
    with Registry(uri, client).fluent():
        new = mlflow.register_model(mv.source, name, tags={**tags, STAGE_TAG: "candidate"})
    return str(new.version)


def _plot(phases: dict[str, list[dict[str, Any]]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(5, 2, figsize=(12, 13), sharex="col")
    rows = [("weight", "canary weight (%)"), ("p50_ms", "p50 latency (ms)"),
            ("p99_ms", "p99 latency (ms)"), ("cpu_ms_per_series", "model CPU (ms/series)"),
            ("accuracy", "accuracy (labelled)")]  # fmt: skip
    for col, (title, events) in enumerate(phases.items()):
        decided = [e for e in events if "arms" in e]
        t0 = events[0]["_t"] if events else 0.0
        for row, (key, label) in enumerate(rows):
            ax = axes[row][col]
            if key == "weight":
                ax.step([e["_t"] - t0 for e in events], [e["weight"] for e in events],
                        where="post", color="tab:orange")  # fmt: skip
            else:
                for arm, color in (("production", "tab:blue"), ("canary", "tab:orange")):
                    xs = [e["_t"] - t0 for e in decided if arm in e["arms"]]
                    ys = [e["arms"][arm].get(key) for e in decided if arm in e["arms"]]
                    ax.plot(xs, [float("nan") if y is None else y for y in ys], "o-", color=color,
                            label=arm)  # fmt: skip
                if row == 1:
                    ax.legend(loc="upper left")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[0][col].set_title(title)
        axes[-1][col].set_xlabel("seconds since `rollout start`")
    fig.suptitle("sensorops rollout: per-arm numbers of each decision window (default thresholds)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--model", default="sensorops-classifier")
    p.add_argument("--candidate", default=None)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--feedback-delay", type=float, default=2.0)
    p.add_argument("--port", type=int, default=0, help="service port (default: a free one)")
    p.add_argument("--png", default="docs/images/rollout_arms.png")
    p.add_argument("--out", default="rollout_run.json")
    args = p.parse_args()
    from mlflow import MlflowClient

    from sensorops.rollout.config import load_rollout_config
    from sensorops.rollout.replay import load_series, replay

    uri, name = args.tracking_uri, args.model
    if not args.port:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            args.port = sock.getsockname()[1]
    client = MlflowClient(uri, uri)
    rm = client.get_registered_model(name)
    aliases = {a: str(v) for a, v in rm.aliases.items()}
    if "production" not in aliases:
        _cli(["models", "promote", name, aliases["staging"], "--to", "production"], uri, Path())
        aliases["production"] = aliases.pop("staging")
    prod = aliases["production"]
    cand = args.candidate or _register_again(uri, client, name, prod)
    if client.get_model_version(name, cand).tags.get("sensorops.stage") != "staging":
        _cli(["models", "promote", name, cand, "--to", "staging"], uri, Path())
    work = Path(tempfile.mkdtemp(prefix="bench-rollout-"))
    params = work / "params.yml"
    params.write_text(yaml.safe_dump({"serving": {
        "prediction_log": {"dir": str(work / "prediction_log")},
        "jobs": {"dir": str(work / "jobs")}, "rollout": {"log_dir": str(work / "arm_log")},
        "debug_delay_header": True, "ray_temp_dir": tempfile.mkdtemp(prefix="rr", dir="/tmp"),
    }}))  # fmt: skip
    cfg = load_rollout_config(ROOT / "conf")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    serve_log = open(work / "serve.log", "wb")
    serve = subprocess.Popen(
        [sys.executable, "-m", "sensorops.cli", "serve", f"{name}@production", "--port",
         str(args.port), "--params", str(params), "--tracking-uri", uri],
        cwd=ROOT, env=env, stdout=serve_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out: dict[str, Any] = {"interval_s": cfg.interval_s, "step_points": cfg.step_points,
                           "rate_rps": args.rate, "model": name}  # fmt: skip
    phases: dict[str, list[dict[str, Any]]] = {}
    try:
        url = None
        for _ in range(600):
            text = (work / "serve.log").read_text(errors="replace")
            if "replicas: " in text:
                url = text.split("replicas: ", 1)[1].split()[0]
                break
            if serve.poll() is not None:
                raise SystemExit(f"serve exited:\n{text[-3000:]}")
            time.sleep(1)
        assert url, "service did not come up"
        series, labels = load_series(ROOT / "data/02_intermediate/sensor_long.parquet")

        def phase(title: str, version: str, headers: dict[str, str] | None) -> dict[str, Any]:
            seq0 = max([e["seq"] for e in _events(client, uri, name, 0)], default=0)
            stop = threading.Event()
            reports: list[Any] = []
            load = threading.Thread(target=lambda: reports.append(replay(
                url, series, labels, rate=args.rate, max_requests=10**7, max_seconds=3600,
                feedback_delay_s=args.feedback_delay, headers=headers, stop=stop)), daemon=True)  # fmt: skip
            load.start()
            time.sleep(5)
            t0 = time.time()
            _cli(["rollout", "start", name, version], uri, params)
            r = _cli(["rollout", "run", name], uri, params, check=False)
            took = time.time() - t0
            stop.set()
            load.join()
            events = _events(client, uri, name, seq0)
            for e in events:
                e["_t"] = calendar.timegm(time.strptime(e["at"], "%Y-%m-%dT%H:%M:%SZ"))
            phases[title] = events
            return {"exit_code": r.returncode, "seconds": round(took, 1),
                    "steps": sum(e["action"] == "step" for e in events),
                    "final": events[-1]["action"] if events else None,
                    "final_reason": events[-1].get("reason") if events else None,
                    "replay": reports[0].to_dict() if reports else None}  # fmt: skip

        good = phase(f"good candidate v{cand} (v{prod} registered again): promoted", cand, None)
        out["promotion"] = good
        out["seconds_start_to_promotion"] = good["seconds"] if good["final"] == "promoted" else None
        slow = cand
        if good["final"] == "promoted":  # the old production version comes back as a candidate
            _cli(["models", "promote", name, prod, "--to", "staging"], uri, Path())
            slow = prod
        bad = phase(f"slow candidate v{slow} (+400 ms/batch): rolled back", slow,
                    {"X-Debug-Delay-Ms": "400", "X-Debug-Delay-Arm": "canary"})  # fmt: skip
        out["rollback"] = bad
        out["seconds_start_to_rollback"] = bad["seconds"] if bad["final"] == "rollback" else None
    finally:
        serve.terminate()
        try:
            serve.wait(timeout=120)
        except subprocess.TimeoutExpired:
            serve.kill()
    Path(args.out).write_text(json.dumps({"summary": out, "events": phases}, indent=2, default=str))
    _plot(phases, Path(args.png))
    print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
