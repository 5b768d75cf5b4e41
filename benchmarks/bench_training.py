"""Training throughput: the pipeline's training loop vs a plain hand-written PyTorch DDP loop.

Both sides run the same work per optimizer step, in the same process layout:

- layout: this script starts one child Python per run; it hosts the torchelastic agent
  (``elastic_launch``, spawn) with 2 gloo workers of 1 intra-op thread each;
- model, data and order: ``sensorops.architectures`` LSTM-attention, one synthetic model input,
  ``DistributedSampler`` shards, global batch 128, fp32, dropout 0.1;
- optimizer step: AdamW (lr 2e-3, weight decay 0.01), global-norm clipping at 1.0, the same
  warmup + cosine learning-rate schedule stepped every step;
- validation: in both, every epoch over the whole validation split (eval batch 256, all-reduced);
  timed and **excluded** from samples/s on both sides;
- checkpointing: **excluded**: the pipeline writes its checkpoints as configured (``last.pt``
  every 100 steps and each epoch end, ``best.pt``), and their time (the summary's
  ``checkpoint_seconds``, collective included) is subtracted; the plain loop writes none.

What only the pipeline does stays on and inside the timed window: per-step metrics of every step
to a real local ``mlflow server`` (a child run of a parent run), system metrics of every rank,
the callbacks, the run summary bookkeeping. samples/s is measured on rank 0 from the first to the
last optimizer step, by each loop itself.

Runs alternate (A B, B A, A B, ...) after one untimed warm-up run of each side, so drifting
machine load hits both sides alike; the overhead is the median of the per-pair overheads
``1 - pipeline/plain`` and its 95% interval a bootstrap over the pairs.

    python benchmarks/bench_training.py                  # full sizes, 7 pairs (~6-12 min)
    python benchmarks/bench_training.py --quick          # smoke test
    python benchmarks/bench_training.py --baseline-src /path/to/old/src   # + a third side: the
        # same pipeline run from another checkout (before/after a change), interleaved too
    python benchmarks/bench_training.py --profile        # torch.profiler on rank 0 of each loop

The last line printed is one JSON object with pipeline_samples_per_s, plain_samples_per_s,
overhead_fraction, overhead_ci95 and repetitions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
LR, WEIGHT_DECAY, CLIP, WARMUP, MIN_LR_RATIO = 2e-3, 0.01, 1.0, 20, 0.05
EVAL_BATCH, CKPT_EVERY = 256, 100
WORK_PER_STEP = {
    "batch": "global 128 (64 per rank), fp32",
    "optimizer": f"AdamW lr {LR} wd {WEIGHT_DECAY}, clip {CLIP}, warmup {WARMUP} + cosine",
    "validation": "every epoch in both, whole val split, timed and excluded from samples/s",
    "checkpointing": f"excluded: pipeline writes last.pt every {CKPT_EVERY} steps + epoch ends "
    "(time subtracted); plain writes none",
    "mlflow": "pipeline only, inside the timed window: every step's metrics to a real local "
    "mlflow server, system metrics of every rank",
}


def make_data(
    path: Path, n_train: int, length: int, channels: int, classes: int, seed: int = 0
) -> None:
    from sensorops.model_input import ModelInput, save_model_input

    rng = np.random.default_rng(seed)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, classes, n)
        t = np.linspace(0, 1, length)[None, :, None]
        x = np.sin(2 * np.pi * (1 + y)[:, None, None] * t + rng.uniform(0, 6.3, (n, 1, channels)))
        return (x + 0.3 * rng.standard_normal((n, length, channels))).astype(np.float32), y.astype(
            np.int64
        )

    parts = {"train": split(n_train), "val": split(max(64, n_train // 16)), "test": split(64)}
    save_model_input(
        ModelInput(
            X={k: v[0] for k, v in parts.items()},
            y={k: v[1] for k, v in parts.items()},
            series_ids={
                k: np.asarray([f"{k}{i}" for i in range(len(v[1]))]) for k, v in parts.items()
            },
            classes=tuple(f"c{i}" for i in range(classes)),
            channels=tuple(f"ch{i}" for i in range(channels)),
        ),
        path,
    )


# -- the plain loop ------------------------------------------------------------------------------


def _cosine_factor(step: int, total: int) -> float:
    if step < WARMUP:
        return (step + 1) / WARMUP
    progress = min(1.0, (step - WARMUP) / max(total - WARMUP, 1))
    return MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * progress))


def plain_worker(
    npz: str, spec: dict[str, Any], global_batch: int, epochs: int, seed: int, profile: str | None
) -> dict[str, float]:
    """The textbook DDP loop (pytorch/examples ddp-tutorial-series) with the same step work."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data.distributed import DistributedSampler

    from sensorops.architectures import ModelSpec, build_model
    from sensorops.model_input import load_model_input

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mi = load_model_input(npz)
    X, y = torch.from_numpy(mi.X["train"]), torch.from_numpy(mi.y["train"])
    Xv, yv = torch.from_numpy(mi.X["val"]), torch.from_numpy(mi.y["val"])
    torch.manual_seed(seed)
    model = DDP(build_model(ModelSpec(**spec)))
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    loss_fn = torch.nn.CrossEntropyLoss()
    sampler = DistributedSampler(range(len(y)), num_replicas=world, rank=rank, seed=seed)
    micro = global_batch // world
    total = epochs * math.ceil(len(sampler) / micro)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _cosine_factor(s, total))
    prof = _profiler(profile) if rank == 0 else None
    steps, val_seconds, val_cpu = 0, 0.0, 0.0
    dist.barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        idx = torch.tensor(list(sampler))
        for b in range(0, len(idx), micro):
            sel = idx[b : b + micro]
            loss = loss_fn(model(X[sel]), y[sel])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            opt.step()
            sched.step()
            steps += 1
            if prof is not None:
                prof.step()
        v0, vc0 = time.perf_counter(), time.process_time()
        model.eval()
        with torch.no_grad():
            acc = torch.zeros(2, dtype=torch.float64)
            shard = torch.arange(rank, len(yv), world)
            for b in range(0, len(shard), EVAL_BATCH):
                sel = shard[b : b + EVAL_BATCH]
                logits = model.module(Xv[sel])
                acc[0] += torch.nn.functional.cross_entropy(logits, yv[sel], reduction="sum")
                acc[1] += (logits.argmax(1) == yv[sel]).sum()
            dist.all_reduce(acc)
        model.train()
        val_seconds += time.perf_counter() - v0
        val_cpu += time.process_time() - vc0
    seconds = time.perf_counter() - t0 - val_seconds
    cpu = time.process_time() - c0 - val_cpu
    if prof is not None:
        prof.stop()
        _write_profile(prof, profile, steps)
    dist.destroy_process_group()
    return {"samples": steps * global_batch, "seconds": seconds, "cpu": cpu, "steps": steps}


def _profiler(path: str | None) -> Any:
    if path is None:
        return None
    from torch.profiler import ProfilerActivity, profile, schedule

    prof = profile(
        activities=[ProfilerActivity.CPU],
        schedule=schedule(wait=2, warmup=3, active=40, repeat=1),
        record_shapes=False,
    )
    prof.start()
    return prof


def _write_profile(prof: Any, path: str, steps: int) -> None:
    rows = []
    for ev in prof.key_averages():
        rows.append(
            {
                "op": ev.key,
                "calls": ev.count,
                "self_cpu_us": ev.self_cpu_time_total,
                "cpu_us": ev.cpu_time_total,
            }
        )
    rows.sort(key=lambda r: -r["self_cpu_us"])
    Path(path).write_text(json.dumps({"steps_profiled": 40, "ops": rows}))


def run_plain(npz: Path, spec: dict[str, Any], args: argparse.Namespace) -> dict[str, float]:
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    cfg = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=args.workers,
        run_id=uuid.uuid4().hex,
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        start_method="spawn",
        monitor_interval=0.5,
    )
    out = elastic_launch(cfg, plain_worker)(
        str(npz), spec, args.batch, args.epochs, 0, args.profile_out
    )
    r0 = out[0]
    return {
        "samples_per_s": r0["samples"] / r0["seconds"],
        "samples_per_cpu_s": r0["samples"] / r0["cpu"],
        "steps": r0["steps"],
    }


# -- the pipeline ----------------------------------------------------------------------------------


class ProfileSteps:
    """A trainer callback (duck-typed: works with any Callback-based Trainer) profiling rank 0."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.prof: Any = None

    def on_fit_start(self, trainer: Any) -> None:
        if trainer.ctx.is_main:
            self.prof = _profiler(self.path)

    def on_step_end(self, trainer: Any, out: Any) -> None:
        if self.prof is not None:
            self.prof.step()

    def on_epoch_end(self, trainer: Any, epoch: int) -> None:
        pass

    def on_eval_end(self, trainer: Any, step: int, metrics: dict[str, float]) -> None:
        pass

    def on_fit_end(self, trainer: Any, summary: dict[str, Any]) -> None:
        if self.prof is not None:
            self.prof.stop()
            _write_profile(self.prof, self.path, summary["final_step"])
            self.prof = None


def run_pipeline(npz: Path, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    import mlflow

    from sensorops.training.launcher import launch_training

    params = {
        "model": {"name": args.model, "hidden": args.hidden, "layers": 2, "dropout": 0.1},
        "data": {"batch_size": args.batch, "eval_batch_size": EVAL_BATCH},
        "optimizer": {"lr": LR, "weight_decay": WEIGHT_DECAY, "grad_clip_norm": CLIP},
        "schedule": {"warmup_steps": WARMUP, "min_lr_ratio": MIN_LR_RATIO},
        "loop": {"epochs": args.epochs, "early_stopping_patience": None},
        "checkpoint": {"every_n_steps": CKPT_EVERY, "resume": "never"},
        "launch": {"nproc_per_node": args.workers, "threads_per_worker": 1},
        "mlflow": {
            "enabled": True,
            "tracking_uri": args.tracking_uri,
            "log_every_n_steps": 10,
            "system_metrics_interval_s": 10.0,
            "log_checkpoint_artifact": True,
        },
        "precision": "fp32",
        "progress_bar": "never",
        "seed": 0,
        "output_dir": str(workdir / f"run_{uuid.uuid4().hex[:8]}"),
    }
    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment("bench_training")
    extra = {"callbacks": [ProfileSteps(args.profile_out)]} if args.profile_out else {}
    with mlflow.start_run(run_name="bench-parent"):
        summary = launch_training(params, npz, **extra)
    timed = summary["loop_seconds"] - summary["validation_seconds"] - summary["checkpoint_seconds"]
    from mlflow.tracking import MlflowClient

    history = MlflowClient(args.tracking_uri).get_metric_history(
        summary["mlflow_child_run_id"], "train_loss"
    )
    return {
        "samples_per_s": summary["samples_trained"] / timed,
        # rank 0's CPU seconds (all its threads: MLflow sender and sampler included) in the
        # same window; None for a pipeline that does not report its checkpoint CPU time
        "samples_per_cpu_s": summary["samples_trained"]
        / (summary["train_cpu_seconds"] - summary["checkpoint_cpu_seconds"])
        if "checkpoint_cpu_seconds" in summary
        else None,
        "samples_per_s_with_checkpoints": summary["samples_trained"]
        / (timed + summary["checkpoint_seconds"]),
        "steps": summary["final_step"],
        "checkpoint_seconds": summary["checkpoint_seconds"],
        "validation_seconds": summary["validation_seconds"],
        "train_loss_steps_logged": len({m.step for m in history}),
    }


# -- one run in a child process (same layout for every side) ---------------------------------------


def _child(args: argparse.Namespace) -> None:
    job = json.loads(args.child)
    ns = argparse.Namespace(**job["args"])
    npz, workdir = Path(job["npz"]), Path(job["workdir"])
    if job["side"] == "plain":
        result = run_plain(npz, job["spec"], ns)
    else:
        result = run_pipeline(npz, workdir, ns)
    print("RESULT " + json.dumps(result), flush=True)


def _group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group ``pgid`` (from /proc)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def run_side(side: str, src: str | None, job: dict[str, Any], server_pid: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if src:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    server_cpu = _group_cpu_seconds(server_pid)
    proc = subprocess.run(
        [sys.executable, str(HERE), "--child", json.dumps({**job, "side": side})],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{side} run failed:\n{proc.stderr[-4000:]}")
    line = next(x for x in reversed(proc.stdout.splitlines()) if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    result["tracking_server_cpu_s"] = _group_cpu_seconds(server_pid) - server_cpu
    return result


def bootstrap_ci(values: list[float], n: int = 10000, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval of the median of ``values``."""
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(n))
    return [meds[int(0.025 * n)], meds[int(0.975 * n) - 1]]


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination",
        str(workdir / "art"),
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(uri + "/health", timeout=2):
                return proc, uri
        except OSError:
            time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError("mlflow server did not start")


def stop_server(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Stop the server and everything it started (uvicorn workers).

    The server runs in its own session (``start_new_session=True``), so its process group id is its
    pid: SIGTERM the group, wait, then SIGKILL whatever of the group is left.
    """
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # children that outlived the leader
    except ProcessLookupError:
        pass
    proc.wait()


def _profile_summary(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    ops = data["ops"]
    per_step = data["steps_profiled"]
    top = [
        {
            "op": o["op"],
            "calls_per_step": o["calls"] / per_step,
            "self_us_per_step": o["self_cpu_us"] / per_step,
        }
        for o in ops[:15]
    ]
    return {
        "self_cpu_ms_per_step": sum(o["self_cpu_us"] for o in ops) / per_step / 1000,
        "ops_per_step": sum(o["calls"] for o in ops) / per_step,
        "top": top,
    }


def micro_costs(repeats: int = 2000) -> dict[str, float]:
    """Per-step microseconds of the loop's bookkeeping, before and after this change.

    ``before_*`` re-enact the pre-change per-step code (copied here, as it was in loop.py and
    run_logging.py): a zero tensor and an add per step for the loss, two indexed adds with a
    dtype conversion for the epoch loss, three environment reads for fault injection, and three
    ``mlflow.entities.Metric`` objects built on the loop thread. ``after_*`` is the current
    per-step path (one in-place add; callbacks get tensors; Metric objects built once per window).
    Compare with the step time (``1000 * 128 / samples_per_s`` ms on this benchmark).
    """
    import timeit

    import torch
    from mlflow.entities import Metric

    from sensorops.training.callbacks import MetricsLogger, PeriodicCheckpoint, StepOutput

    loss = torch.tensor(0.7)
    norm = torch.tensor(1.3)
    epoch2 = torch.zeros(2, dtype=torch.float64)
    epoch0 = torch.zeros((), dtype=torch.float64)

    def before_step() -> None:
        total = torch.zeros(())
        total += (loss / 1).detach().float()
        epoch2[0] += total.double()
        epoch2[1] += 1
        pending = [(1, total, norm, 1e-3)]
        for key in (
            "SENSOROPS_FAULT_KILL_RANK",
            "SENSOROPS_FAULT_KILL_STEP",
            "SENSOROPS_FAULT_MARKER",
        ):
            os.environ.get(key)
        now = int(time.time() * 1000)
        [
            Metric(k, float(v), now, 1)
            for k, v in {"train_loss": 0.7, "lr": 1e-3, "grad_norm": 1.3}.items()
        ]
        del pending

    class _Sink:
        def log_steps(self, rows: Any) -> None:
            pass

    class _T:
        global_batch = 128

        def save_last(self) -> None:
            pass

    logger_cb, ckpt_cb, trainer = MetricsLogger(_Sink(), 10**9), PeriodicCheckpoint(100), _T()

    def after_step() -> None:
        part = loss.detach()
        total = part.float()
        epoch0.add_(total)
        out = StepOutput(1, 0, total, norm, 1e-3, 128)
        ckpt_cb.on_step_end(trainer, out)  # type: ignore[arg-type]
        logger_cb.on_step_end(trainer, out)  # type: ignore[arg-type]

    losses = [torch.tensor(0.1 * i) for i in range(10)]

    def window() -> None:  # once per 10 steps, in both versions
        vals = torch.stack(losses).tolist()
        now = int(time.time() * 1000)
        [Metric("train_loss", v, now, i) for i, v in enumerate(vals)]

    def loss_sum_before() -> None:
        total = torch.zeros(())
        total += (loss / 1).detach().float()

    def epoch_loss_before() -> None:
        epoch2[0] += loss.double()
        epoch2[1] += 1

    def fault_env_before() -> None:
        for key in (
            "SENSOROPS_FAULT_KILL_RANK",
            "SENSOROPS_FAULT_KILL_STEP",
            "SENSOROPS_FAULT_MARKER",
        ):
            os.environ.get(key)

    def metric_objects_before() -> None:
        now = int(time.time() * 1000)
        [
            Metric(k, float(v), now, 1)
            for k, v in {"train_loss": 0.7, "lr": 1e-3, "grad_norm": 1.3}.items()
        ]

    def best(fn: Any) -> float:
        return min(timeit.repeat(fn, number=repeats, repeat=5)) / repeats * 1e6

    before, after = best(before_step), best(after_step)
    logger_cb._window.clear()
    return {
        "before_per_step_us": before,
        "after_per_step_us": after,
        "before_loss_zero_div_add_us": best(loss_sum_before),
        "before_epoch_loss_indexed_adds_us": best(epoch_loss_before),
        "before_fault_env_reads_us": best(fault_env_before),
        "before_metric_objects_on_loop_thread_us": best(metric_objects_before),
        "window_of_10_convert_us": best(window),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 pairs (smoke test)")
    parser.add_argument("--reps", type=int, default=None, help="pairs (default 7; --quick 2)")
    parser.add_argument("--model", default="lstm_attention")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--baseline-src",
        default=None,
        help="a third, interleaved side: the "
        "pipeline imported from this src/ directory (e.g. before a change)",
    )
    parser.add_argument("--profile", action="store_true", help="profile rank 0 of each loop")
    parser.add_argument(
        "--micro", action="store_true", help="per-step bookkeeping cost, before vs after"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    if args.micro:
        print(json.dumps({"benchmark": "training_step_bookkeeping_us", **micro_costs()}))
        return
    sizes = (
        {"n_train": 512, "length": 64, "epochs": 1, "reps": 2, "hidden": 32}
        if args.quick
        else {"n_train": 4096, "length": 100, "epochs": 4, "reps": 7, "hidden": 64}
    )
    reps = args.reps or sizes["reps"]
    if args.profile:
        reps = 1
    channels, classes = 6, 4
    run_args = {
        "model": args.model,
        "workers": args.workers,
        "batch": 128,
        "epochs": sizes["epochs"],
        "hidden": sizes["hidden"],
        "tracking_uri": None,
        "profile_out": None,
    }
    spec = {
        "name": args.model,
        "n_channels": channels,
        "n_classes": classes,
        "length": sizes["length"],
        "hidden": sizes["hidden"],
        "layers": 2,
        "dropout": 0.1,
    }
    sides = ["pipeline", "plain"] + (["baseline"] if args.baseline_src else [])
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        workdir = Path(tmp)
        npz = workdir / "model_input.npz"
        make_data(npz, sizes["n_train"], sizes["length"], channels, classes)
        server, uri = start_server(workdir)
        run_args["tracking_uri"] = uri
        server_pid = server.pid  # its own session: the process group id
        job = {"npz": str(npz), "workdir": str(workdir), "spec": spec, "args": run_args}

        def go(side: str, profile: Path | None = None) -> dict[str, Any]:
            j = {**job, "args": {**run_args, "profile_out": str(profile) if profile else None}}
            src = args.baseline_src if side == "baseline" else None
            return run_side("pipeline" if side == "baseline" else side, src, j, server_pid)

        try:
            if args.profile:
                out = {}
                for side in ("pipeline", "plain"):
                    path = workdir / f"profile_{side}.json"
                    go(side, path)
                    out[side] = _profile_summary(path)
                print(json.dumps({"benchmark": "training_profile_rank0", **out}))
                return
            for side in sides:  # warm-up: server, page cache, first-launch costs
                go(side)
            results: dict[str, list[dict[str, Any]]] = {s: [] for s in sides}
            for rep in range(reps):
                order = sides if rep % 2 == 0 else sides[::-1]
                for side in order:
                    results[side].append(go(side))
                print(
                    json.dumps(
                        {"rep": rep, "order": order}
                        | {s: round(results[s][-1]["samples_per_s"], 1) for s in sides}
                    ),
                    flush=True,
                )
        finally:
            stop_server(server)
    load_after = os.getloadavg()
    rate = {s: [r["samples_per_s"] for r in results[s]] for s in sides}
    paired = [1.0 - p / q for p, q in zip(rate["pipeline"], rate["plain"], strict=True)]
    cpu_paired = [
        1.0 - r["samples_per_cpu_s"] / q["samples_per_cpu_s"]
        for r, q in zip(results["pipeline"], results["plain"], strict=True)
    ]
    steps = results["pipeline"][0]["steps"]
    result = {
        "benchmark": "training_throughput",
        "model": args.model,
        "workers": args.workers,
        "global_batch": 128,
        "precision": "fp32",
        "n_train": sizes["n_train"],
        "length": sizes["length"],
        "epochs": sizes["epochs"],
        "steps_per_run": steps,
        "work_per_step": WORK_PER_STEP,
        "design": "interleaved pairs, order alternating (AB BA ...), 1 untimed warm-up run each",
        "repetitions": reps,
        "pipeline_samples_per_s": statistics.median(rate["pipeline"]),
        "plain_samples_per_s": statistics.median(rate["plain"]),
        "overhead_fraction": statistics.median(paired),
        "overhead_ci95": bootstrap_ci(paired),
        "overhead_paired": paired,
        # per CPU second of rank 0 (its threads included; the tracking server's CPU is reported
        # apart): what other tenants of a loaded machine distort least
        "overhead_fraction_cpu": statistics.median(cpu_paired),
        "overhead_cpu_ci95": bootstrap_ci(cpu_paired),
        # the same, with the pipeline's checkpoint time left in (the plain loop writes none)
        "overhead_fraction_with_checkpoints": statistics.median(
            1.0 - r["samples_per_s_with_checkpoints"] / q
            for r, q in zip(results["pipeline"], rate["plain"], strict=True)
        ),
        "pipeline_all": rate["pipeline"],
        "plain_all": rate["plain"],
        "mlflow_train_loss_steps_logged": [
            r["train_loss_steps_logged"] for r in results["pipeline"]
        ],
        "mlflow_steps_expected": steps,
        "tracking_server_cpu_s_per_pipeline_run": statistics.median(
            r["tracking_server_cpu_s"] for r in results["pipeline"]
        ),
        "checkpoint_seconds_subtracted": statistics.median(
            r["checkpoint_seconds"] for r in results["pipeline"]
        ),
        "load_average_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "cpu_count": os.cpu_count(),
    }
    if args.baseline_src:
        base = [1.0 - b / q for b, q in zip(rate["baseline"], rate["plain"], strict=True)]
        gain = [p / b - 1.0 for p, b in zip(rate["pipeline"], rate["baseline"], strict=True)]
        result |= {
            "baseline_src": args.baseline_src,
            "baseline_samples_per_s": statistics.median(rate["baseline"]),
            "baseline_overhead_fraction": statistics.median(base),
            "baseline_overhead_ci95": bootstrap_ci(base),
            "speedup_vs_baseline": statistics.median(gain),
            "speedup_vs_baseline_ci95": bootstrap_ci(gain),
            "baseline_all": rate["baseline"],
            "baseline_tracking_server_cpu_s_per_run": statistics.median(
                r["tracking_server_cpu_s"] for r in results["baseline"]
            ),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
