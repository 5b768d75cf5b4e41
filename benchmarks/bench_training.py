"""Training throughput: the pipeline's launcher vs a minimal hand-written PyTorch DDP loop.

Same model (sensorops.architectures), data, precision (fp32), worker count (2 gloo workers, 1
thread each) and global batch. The pipeline side runs `launch_training` with everything on:
AdamW + schedule + clipping, checkpoints every 100 steps and per epoch (rank 0, atomic), MLflow
logging into a child run of a parent run on a real local `mlflow server` (per-step metrics sent
in batches every 10 steps, system metrics from every rank). Its samples/s is measured inside the
workers over the training loop, excluding the per-epoch validation pass (which the plain loop
does not do); the plain loop's samples/s is measured the same way (first to last step).

    python benchmarks/bench_training.py            # full sizes (~3-4 min)
    python benchmarks/bench_training.py --quick    # smoke test

The last line printed is one JSON object with pipeline_samples_per_s, plain_samples_per_s,
overhead_fraction (1 - pipeline/plain, medians over interleaved repetitions).
"""

from __future__ import annotations

import argparse
import json
import os
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


def plain_worker(
    npz: str, spec: dict[str, Any], global_batch: int, epochs: int, lr: float, seed: int
) -> dict[str, float]:
    """Minimal DDP loop: DistributedSampler, forward, backward, AdamW step. Nothing else."""
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
    torch.manual_seed(seed)
    model = DDP(build_model(ModelSpec(**spec)))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    sampler = DistributedSampler(range(len(y)), num_replicas=world, rank=rank, seed=seed)
    micro = global_batch // world
    steps = 0
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
            opt.step()
            steps += 1
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    dist.destroy_process_group()
    return {"samples": steps * global_batch, "seconds": seconds, "cpu_seconds": cpu}


def run_plain(npz: Path, spec: dict[str, Any], args: argparse.Namespace) -> tuple[float, float]:
    """(samples/s over wall time, samples per rank-0 CPU second)."""
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
    out = elastic_launch(cfg, plain_worker)(str(npz), spec, args.batch, args.epochs, 2e-3, 0)
    return out[0]["samples"] / out[0]["seconds"], out[0]["samples"] / out[0]["cpu_seconds"]


def run_pipeline(
    npz: Path, workdir: Path, args: argparse.Namespace, tracking_uri: str
) -> tuple[float, dict]:
    import mlflow

    from sensorops.training.launcher import launch_training

    params = {
        "model": {"name": args.model, "hidden": args.hidden, "layers": 2, "dropout": 0.1},
        "data": {"batch_size": args.batch},
        "optimizer": {"lr": 2e-3},
        "loop": {"epochs": args.epochs, "early_stopping_patience": None},
        "checkpoint": {"every_n_steps": 100, "resume": "never"},
        "launch": {"nproc_per_node": args.workers, "threads_per_worker": 1},
        "mlflow": {
            "enabled": True,
            "tracking_uri": tracking_uri,
            "log_every_n_steps": 10,
            "system_metrics_interval_s": 10.0,
            "log_checkpoint_artifact": True,
        },
        "precision": "fp32",
        "progress_bar": "never",
        "seed": 0,
        "output_dir": str(workdir / f"run_{uuid.uuid4().hex[:8]}"),
    }
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("bench_training")
    with mlflow.start_run(run_name="bench-parent"):
        summary = launch_training(params, npz)
    return summary["train_samples_per_s"], summary


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, one repetition (smoke test)"
    )
    parser.add_argument("--model", default="lstm_attention")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    sizes = (
        {"n_train": 512, "length": 64, "epochs": 1, "reps": 1, "hidden": 32}
        if args.quick
        else {"n_train": 4096, "length": 100, "epochs": 4, "reps": 5, "hidden": 64}
    )
    args.n_train, args.length, args.epochs, args.reps, args.hidden = (
        sizes["n_train"],
        sizes["length"],
        sizes["epochs"],
        sizes["reps"],
        sizes["hidden"],
    )
    args.batch = 128
    channels, classes = 6, 4
    spec = {
        "name": args.model,
        "n_channels": channels,
        "n_classes": classes,
        "length": args.length,
        "hidden": args.hidden,
        "layers": 2,
        "dropout": 0.1,
    }
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        workdir = Path(tmp)
        npz = workdir / "model_input.npz"
        make_data(npz, args.n_train, args.length, channels, classes)
        server, uri = start_server(workdir)
        try:
            # one untimed round first (server, page cache, first-launch costs), then interleaved
            # repetitions in alternating order (ABBA) so drifting machine load hits both sides
            run_pipeline(npz, workdir, args, uri)
            run_plain(npz, spec, args)
            pipe, plain, pipe_cpu, plain_cpu, paired, details = [], [], [], [], [], []
            for rep in range(args.reps):
                if rep % 2 == 0:
                    p, summary = run_pipeline(npz, workdir, args, uri)
                    q, q_cpu = run_plain(npz, spec, args)
                else:
                    q, q_cpu = run_plain(npz, spec, args)
                    p, summary = run_pipeline(npz, workdir, args, uri)
                p_cpu = summary["samples_trained"] / summary["train_cpu_seconds"]
                pipe.append(p)
                plain.append(q)
                pipe_cpu.append(p_cpu)
                plain_cpu.append(q_cpu)
                paired.append(1.0 - p / q)
                details.append(
                    {
                        "rep": rep,
                        "pipeline": p,
                        "plain": q,
                        "pipeline_per_cpu_s": p_cpu,
                        "plain_per_cpu_s": q_cpu,
                        "validation_seconds": summary["validation_seconds"],
                        "loop_seconds": summary["loop_seconds"],
                        "steps": summary["final_step"],
                    }
                )
                print(json.dumps(details[-1]))
        finally:
            stop_server(server)
    p_med, q_med = statistics.median(pipe), statistics.median(plain)
    result = {
        "benchmark": "training_throughput",
        "model": args.model,
        "workers": args.workers,
        "global_batch": args.batch,
        "precision": "fp32",
        "n_train": args.n_train,
        "length": args.length,
        "channels": channels,
        "epochs": args.epochs,
        "reps": args.reps,
        "pipeline_samples_per_s": p_med,
        "plain_samples_per_s": q_med,
        "overhead_fraction": 1.0 - p_med / q_med,
        # median of per-repetition pairs (each pair ran back to back under similar load)
        "overhead_fraction_paired_median": statistics.median(paired),
        # samples per CPU-second of rank 0 (its threads included, the MLflow server not):
        # insensitive to other processes competing for the cores
        "pipeline_samples_per_cpu_s": statistics.median(pipe_cpu),
        "plain_samples_per_cpu_s": statistics.median(plain_cpu),
        "overhead_fraction_cpu": 1.0 - statistics.median(pipe_cpu) / statistics.median(plain_cpu),
        "pipeline_all": pipe,
        "plain_all": plain,
        "mlflow": "real local server, child run, batched every 10 steps, system metrics every 10 s",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
