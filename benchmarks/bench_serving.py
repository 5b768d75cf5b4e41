"""Online serving: `sensorops serve` (Ray Serve, direct ingress) vs `mlflow models serve`, one run.

Both serve the same registered version (the self-contained pyfunc model: preprocessing + ONNX),
pinned to CPU 0 (``taskset``); the load generator runs on CPU 1. Bounded closed loop on
loopback (each client sends its next request when the previous answer arrives), body = one raw
test-split series as JSON. Phases, each ``--seconds`` long:

1. closed loop with 32 clients against both servers -> rps and server CPU ms per request
   (utime + stime of the server's whole process tree, from /proc, over the phase);
2. ours, paced at half the 32-client throughput -> p99 latency at half saturation;
3. ours, paced at twice that throughput, deadline ``--deadline-ms`` -> shed fraction (503 with
   Retry-After), the largest latency of an admitted request, other errors;
4. ours, 8 clients while the alias moves to another version -> the longest gap between two
   completed requests during the swap (hot-swap pause) and errors.

Usage::

    python benchmarks/bench_serving.py [--tracking-uri URI] [--model NAME] [--alias staging]
                                       [--seconds 15] [--quick]

Prints one JSON object; ``errors_non_shed`` counts every answer that is neither 200 nor 503.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_cpu_s(pid: int) -> float:
    """utime + stime (s) of ``pid`` and all its descendants (live ones), from /proc."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, stack = 0.0, [pid]
    while stack:
        p = stack.pop()
        if p in stats:
            total += (int(stats[p][11]) + int(stats[p][12])) / CLK
        stack.extend(children.get(p, []))
    return total


def ray_pids(temp_dir: str) -> list[int]:
    """PIDs whose command line names ``temp_dir`` (the local Ray of our server)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if temp_dir in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


class Load:
    """Closed-loop (or paced) HTTP clients on keep-alive connections."""

    def __init__(self, port: int, path: str, body: bytes, headers: dict[str, str]) -> None:
        self.port, self.path, self.body, self.headers = port, path, body, headers

    def run(self, clients: int, seconds: float, rate: float | None = None) -> dict[str, Any]:
        stop = time.monotonic() + seconds
        lock = threading.Lock()
        rows: list[tuple[float, float, int]] = []  # (done_at, latency_s, status)
        interval = clients / rate if rate else 0.0

        def worker(offset: float) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            nxt = time.monotonic() + offset
            while True:
                if interval:
                    now = time.monotonic()
                    if nxt > now:
                        time.sleep(nxt - now)
                    nxt += interval
                t0 = time.monotonic()
                if t0 >= stop:
                    break
                try:
                    conn.request("POST", self.path, self.body, self.headers)
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                except (OSError, http.client.HTTPException):
                    status = -1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                t1 = time.monotonic()
                with lock:
                    rows.append((t1, t1 - t0, status))
            conn.close()

        threads = [
            threading.Thread(target=worker, args=((i * interval / clients) if interval else 0.0,))
            for i in range(clients)
        ]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - start
        lat = np.array([r[1] for r in rows if r[2] == 200]) * 1000
        codes = [r[2] for r in rows]
        return {
            "clients": clients,
            "offered_rps": rate,
            "requests": len(rows),
            "ok": codes.count(200),
            "shed": codes.count(503),
            "other": len(codes) - codes.count(200) - codes.count(503),
            "rps": codes.count(200) / took,
            "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
            "max_ms": float(lat.max()) if len(lat) else None,
            "done_at": [r[0] for r in rows if r[2] == 200],
        }


def wait_http(port: int, path: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"port {port}{path} not ready after {timeout}s")


def stop_tree(proc: subprocess.Popen[bytes], extra: list[int] = ()) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    for pid in [proc.pid, *extra]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI")
                    or f"sqlite:///{ROOT / 'mlflow.db'}")  # fmt: skip
    ap.add_argument("--model", default="sensorops-classifier")
    ap.add_argument("--alias", default="staging")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--deadline-ms", type=float, default=250.0)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    seconds = 5.0 if args.quick else args.seconds
    import pandas as pd
    from mlflow import MlflowClient

    from sensorops.registry.pyfunc import long_frame_to_series

    client = MlflowClient(args.tracking_uri, args.tracking_uri)
    mv = client.get_model_version_by_alias(args.model, args.alias)
    raw = pd.read_parquet(ROOT / "data/02_intermediate/sensor_long.parquet")
    test = raw[raw["split"] == "test"]
    channels = [c for c in raw.columns if c not in ("series_id", "t", "label", "split")]
    _, values = long_frame_to_series(test, channels)
    series = values[0].T  # (channels, time)
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "NUMBA_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }  # mlflow execs uvicorn
    out: dict[str, Any] = {"model": args.model, "version": mv.version, "series_shape": list(series.shape),
                           "seconds_per_phase": seconds, "cpu_server": 0, "cpu_client": 1}  # fmt: skip
    os.sched_setaffinity(0, {1})  # this process is the load generator
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))

    # --- mlflow models serve (the textbook alternative) -----------------------------------------
    port = free_port()
    proc = subprocess.Popen(
        ["taskset", "-c", "0", str(bin_dir / "mlflow"), "models", "serve", "-m",
         f"models:/{args.model}/{mv.version}", "-p", str(port), "-h", "127.0.0.1", "-w", "1",
         "--env-manager", "local"],
        env={**env, "MLFLOW_TRACKING_URI": args.tracking_uri, "MLFLOW_REGISTRY_URI": args.tracking_uri},
        stdout=open(work / "mlflow.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_http(port, "/ping", proc, 300)
        frame = pd.DataFrame(series.T, columns=channels)
        frame.insert(0, "series_id", "s")
        body = json.dumps({"dataframe_split": frame.to_dict(orient="split")}).encode()
        load = Load(port, "/invocations", body, {"Content-Type": "application/json"})
        load.run(8, 3.0)
        cpu0 = tree_cpu_s(proc.pid)
        base = load.run(32, seconds)
        base["cpu_ms_per_req"] = (tree_cpu_s(proc.pid) - cpu0) * 1000 / max(base["ok"], 1)
        base.pop("done_at")
        out["mlflow_32_clients"] = base
    finally:
        stop_tree(proc)

    # --- sensorops serve (Ray Serve, direct ingress) ---------------------------------------------
    port = free_port()
    ray_tmp = tempfile.mkdtemp(prefix="rb", dir="/tmp")
    params = work / "serving.yml"
    params.write_text(json.dumps({"serving": {
        "ray_temp_dir": ray_tmp, "reload": {"poll_s": 0.5},
        "admission": {"deadline_ms": args.deadline_ms},
        "prediction_log": {"dir": str(work / "plog")}, "jobs": {"dir": str(work / "jobs")},
    }}))  # fmt: skip
    proc = subprocess.Popen(
        ["taskset", "-c", "0", str(bin_dir / "sensorops"), "serve", f"{args.model}@{args.alias}",
         "--tracking-uri", args.tracking_uri, "--port", str(port), "--params", str(params)],
        env=env, stdout=open(work / "serve.log", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True, cwd=ROOT,
    )  # fmt: skip
    try:
        wait_http(port, "/ready", proc, 600)
        # a long deadline outside the overload phase: those phases measure capacity, not shedding
        body = json.dumps({"data": series.tolist(), "deadline_ms": 30000}).encode()
        load = Load(port, "/v1/predict", body, {"Content-Type": "application/json"})
        tight = json.dumps({"data": series.tolist(), "deadline_ms": args.deadline_ms}).encode()
        overload = Load(port, "/v1/predict", tight, {"Content-Type": "application/json"})
        load.run(8, 3.0)
        pids = ray_pids(ray_tmp)
        cpu0 = sum(tree_cpu_s(p) for p in pids)
        ours = load.run(32, seconds)
        ours["cpu_ms_per_req"] = (
            (sum(tree_cpu_s(p) for p in pids) - cpu0) * 1000 / max(ours["ok"], 1)
        )
        ours.pop("done_at")
        out["ours_32_clients"] = ours
        sat = ours["rps"]
        half = load.run(32, seconds, rate=sat / 2)
        half.pop("done_at")
        over = overload.run(64, seconds, rate=sat * 2)
        over.pop("done_at")
        out["ours_half_saturation"], out["ours_2x_overload"] = half, over
        # hot swap: a new version (same model files) and move the alias under load
        new = client.create_model_version(args.model, mv.source, run_id=mv.run_id,
                                          tags={"sensorops.variant": "bench-hot-swap"})  # fmt: skip
        result: dict[str, Any] = {}
        runner = threading.Thread(target=lambda: result.update(load.run(8, seconds)))
        runner.start()
        time.sleep(seconds / 3)
        swapped_at = time.monotonic()
        client.set_registered_model_alias(args.model, args.alias, new.version)
        runner.join()
        client.set_registered_model_alias(args.model, args.alias, mv.version)
        client.delete_model_version(args.model, new.version)
        done = np.sort(np.array(result.pop("done_at")))
        window = done[(done > swapped_at - 1) & (done < swapped_at + seconds)]
        gaps = np.diff(window) * 1000 if len(window) > 1 else np.array([np.nan])
        before = np.diff(done[done < swapped_at]) * 1000
        out["ours_hot_swap"] = {**result, "max_gap_ms": float(gaps.max()),
                                "max_gap_before_swap_ms": float(before.max()) if len(before) else None}  # fmt: skip
    finally:
        stop_tree(proc, ray_pids(ray_tmp))
        shutil.rmtree(ray_tmp, ignore_errors=True)

    m, o = out["mlflow_32_clients"], out["ours_32_clients"]
    out["summary"] = {
        "rps_ratio_vs_mlflow": o["rps"] / m["rps"] if m["rps"] else None,
        "cpu_ms_per_req_ratio_vs_mlflow": o["cpu_ms_per_req"] / m["cpu_ms_per_req"],
        "p99_ms_at_half_saturation": out["ours_half_saturation"]["p99_ms"],
        "shed_fraction_at_2x_overload": over["shed"] / max(over["requests"], 1),
        "max_latency_ms_of_admitted_at_2x_overload": over["max_ms"],
        "deadline_ms": args.deadline_ms,
        "hot_swap_pause_ms": out["ours_hot_swap"]["max_gap_ms"],
        "errors_non_shed": sum(out[k]["other"] for k in ("ours_32_clients", "ours_half_saturation",
                                                          "ours_2x_overload", "ours_hot_swap")),
        "shed_outside_overload": sum(out[k]["shed"] for k in ("ours_32_clients",
                                                              "ours_half_saturation", "ours_hot_swap")),
        "load_average": os.getloadavg(),
    }  # fmt: skip
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
