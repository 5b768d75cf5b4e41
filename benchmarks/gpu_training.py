"""GPU training benchmark: throughput and achieved TFLOP/s per architecture and precision, and
scaling of the pipeline's launcher with nproc_per_node. For a GPU machine; prints JSON.

Part 1 (one process, cuda:0): for each architecture x {fp32, tf32, bf16}, training steps
(forward, backward, AdamW, clipping) at a realistic size with the project's own precision policy;
samples/s, step time, and achieved TFLOP/s from torch.utils.flop_counter (forward+backward FLOPs of
one step, counted once).
Part 2: `launch_training` (DDP over NCCL, bf16, checkpoints on, MLflow off) with
nproc_per_node = 1, 2, 4, ... up to the visible GPUs; samples/s and scaling efficiency.

    python benchmarks/gpu_training.py              # full (< 5 min on one 8-GPU node)
    python benchmarks/gpu_training.py --quick      # small sizes
    python benchmarks/gpu_training.py --quick --device cpu   # smoke test of the script without a GPU

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sensorops.architectures import ARCHITECTURES, ModelSpec, build_model, count_parameters
from sensorops.training.precision import resolve_precision


def step_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, policy: Any) -> int:
    """FLOPs of one forward+backward pass by torch's flop counter.

    Fused RNN kernels (cuDNN LSTM) have no FLOP formula there, so the LSTM's count covers only its
    attention and head: its TFLOP/s is a lower bound (``flops_note`` says so).
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        with policy.autocast():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def bench_single(
    name: str, precision: str, args: argparse.Namespace, device: torch.device
) -> dict[str, Any]:
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 (cuDNN defaults to TF32 convs)
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    spec = ModelSpec(
        name,
        n_channels=args.channels,
        n_classes=args.classes,
        length=args.length,
        hidden=args.hidden,
        layers=args.layers,
        dropout=0.1,
        heads=8,
    )
    model = build_model(spec).to(device)
    policy = resolve_precision(precision, device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device.type == "cuda")
    scaler = policy.make_scaler()
    x = torch.randn(args.batch, args.length, args.channels, device=device)
    y = torch.randint(0, args.classes, (args.batch,), device=device)
    flops = step_flops(model, x, y, policy)

    def step() -> None:
        with policy.autocast():
            loss = torch.nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = time.perf_counter() - t0
    result = {
        "architecture": name,
        "precision": policy.mode,
        "params": count_parameters(model),
        "batch": args.batch,
        "length": args.length,
        "steps": args.steps,
        "step_ms": 1000 * seconds / args.steps,
        "samples_per_s": args.batch * args.steps / seconds,
        "flops_per_step": flops,
        "achieved_tflops": flops * args.steps / seconds / 1e12,
    }
    if name == "lstm_attention":
        result["flops_note"] = "lower bound: fused LSTM kernels are not counted"
    if device.type == "cuda":
        result["max_memory_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
        torch.cuda.reset_peak_memory_stats(device)
    return result


def make_model_input(path: Path, args: argparse.Namespace) -> None:
    from sensorops.model_input import ModelInput, save_model_input

    rng = np.random.default_rng(0)
    parts = {}
    for split, n in (("train", args.scaling_series), ("val", 256), ("test", 64)):
        y = rng.integers(0, args.classes, n).astype(np.int64)
        parts[split] = (
            rng.standard_normal((n, args.length, args.channels)).astype(np.float32)
            + y[:, None, None] * 0.1,
            y,
        )
    save_model_input(
        ModelInput(
            {k: v[0] for k, v in parts.items()},
            {k: v[1] for k, v in parts.items()},
            {k: np.asarray([f"{k}{i}" for i in range(len(v[1]))]) for k, v in parts.items()},
            tuple(f"c{i}" for i in range(args.classes)),
            tuple(f"ch{i}" for i in range(args.channels)),
        ),
        path,
    )


def bench_scaling(
    args: argparse.Namespace, workdir: Path, device: torch.device
) -> list[dict[str, Any]]:
    from sensorops.training.launcher import launch_training

    npz = workdir / "model_input.npz"
    make_model_input(npz, args)
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    counts = [1]
    while counts[-1] * 2 <= max(gpus, 1 if gpus else 2):
        counts.append(counts[-1] * 2)
    if gpus and counts[-1] != gpus:
        counts.append(gpus)
    rows = []
    for nproc in counts:
        params = {
            "model": {
                "name": args.scaling_model,
                "hidden": args.hidden,
                "layers": args.layers,
                "heads": 8,
            },
            "data": {"batch_size": args.batch * nproc},  # weak scaling: fixed per-GPU batch
            "loop": {
                "epochs": 1000,
                "max_steps": args.scaling_steps,
                "early_stopping_patience": None,
            },
            "checkpoint": {"every_n_steps": None, "resume": "never"},
            "launch": {"nproc_per_node": nproc, "threads_per_worker": 4},
            "mlflow": {"enabled": False},
            "precision": "bf16" if device.type == "cuda" else "fp32",
            "progress_bar": "never",
            "output_dir": str(workdir / f"scale_{nproc}"),
        }
        t0 = time.perf_counter()
        summary = launch_training(params, npz)
        rows.append(
            {
                "nproc_per_node": nproc,
                "samples_per_s": summary["train_samples_per_s"],
                "global_batch": summary["global_batch_size"],
                "steps": summary["final_step"],
                "launch_wall_s": time.perf_counter() - t0,
            }
        )
    base = rows[0]["samples_per_s"]
    for row in rows:
        row["speedup"] = row["samples_per_s"] / base
        row["efficiency"] = row["speedup"] / row["nproc_per_node"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--skip-scaling", action="store_true")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error(
            "no CUDA device visible; this benchmark is for GPU machines (use --device cpu for a smoke test)"
        )
    full = {
        "batch": 256,
        "length": 512,
        "channels": 16,
        "classes": 8,
        "hidden": 256,
        "layers": 4,
        "steps": 30,
        "warmup": 5,
        "scaling_series": 16384,
        "scaling_steps": 150,
    }
    quick = {
        "batch": 32,
        "length": 64,
        "channels": 6,
        "classes": 4,
        "hidden": 32,
        "layers": 2,
        "steps": 5,
        "warmup": 1,
        "scaling_series": 2048,
        "scaling_steps": 10,
    }
    for key, value in (quick if args.quick else full).items():
        setattr(args, key, value)
    args.scaling_model = "transformer"
    device = torch.device(args.device, 0) if args.device == "cuda" else torch.device("cpu")
    started = time.perf_counter()
    single = []
    for name in ARCHITECTURES:
        for precision in ("fp32", "tf32", "bf16"):
            row = bench_single(name, precision, args, device)
            single.append(row)
            print(json.dumps(row), flush=True)
    scaling: list[dict[str, Any]] = []
    if not args.skip_scaling:
        with tempfile.TemporaryDirectory(prefix="gpu_training_") as tmp:
            scaling = bench_scaling(args, Path(tmp), device)
        for row in scaling:
            print(json.dumps(row), flush=True)
    result = {
        "benchmark": "gpu_training",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "visible_gpus": torch.cuda.device_count() if device.type == "cuda" else 0,
        "torch": torch.__version__,
        "sizes": {k: getattr(args, k) for k in full},
        "single_process": single,
        "best_tflops": max(r["achieved_tflops"] for r in single),
        "scaling": scaling,
        "wall_s": time.perf_counter() - started,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
