"""Inference benchmark: ONNX Runtime fp32 and int8 vs torch eager fp32, batch 1 and batch 64.

For the default model (the training pipeline's best checkpoint and ``mi_model_input`` when
``data/06_models/training_summary.json`` and ``data/05_model_input/model_input.npz`` exist;
otherwise the default architecture, ``lstm_attention`` hidden 64 x 2 layers, trained briefly on
seeded synthetic sine-wave data of 6 channels x 100 steps, 4 classes), in one run:

- export with ``sensorops.modeling.onnx_export.export_onnx`` (dynamo, embedded weights);
- int8: dynamic (``quantize_dynamic``; quantizes the ONNX LSTM) and static QDQ per-channel;
- accuracy on the test split for torch, ORT fp32 and both int8 files;
- p50/p99 latency and throughput at batch 1 and 64, at every ``--threads`` value (torch and
  ORT get the same thread count; one JSON line per measurement). The headline speed-ups compare
  each engine at its best thread count (best vs best: torch eager at batch 1 is often fastest
  with one thread, and multi-threaded torch suffers most when other processes share the
  cores); ``*_same_threads`` compares both at the largest thread count.

Targets (issue 6): ORT fp32 >= 3x torch eager at batch 1; int8 file <= 30% of fp32; int8
accuracy drop <= 0.5 point. The headline int8 variant is ``--int8`` (default ``dynamic``).
The last line of stdout is one JSON object with ``ort_fp32_speedup_batch1``,
``int8_size_ratio`` and ``int8_accuracy_drop_points`` among its keys.

Usage::

    python benchmarks/bench_inference.py            # full: 1000 iters at batch 1, 200 at batch 64
    python benchmarks/bench_inference.py --quick    # smoke: tiny model, few iterations
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sensorops.architectures import ModelSpec, build_model, load_checkpoint_model
from sensorops.model_input import ModelInput, load_model_input
from sensorops.modeling.config import FinetuneConfig
from sensorops.modeling.finetune import finetune
from sensorops.modeling.latency import measure_ort_latency, measure_torch_latency
from sensorops.modeling.metrics import classification_scores
from sensorops.modeling.onnx_export import export_onnx
from sensorops.modeling.parity import torch_logits
from sensorops.modeling.ptq import quantize_dynamic_int8, quantize_static_int8, sample_calibration
from sensorops.modeling.runtime import create_session

ROOT = Path(__file__).resolve().parents[1]


def synthetic_model_input(
    n_train: int, n_test: int, length: int = 100, n_channels: int = 6, seed: int = 0
) -> ModelInput:
    """Seeded sine waves; class k has frequency 1 + k plus a class-specific channel phase pattern."""
    rng = np.random.default_rng(seed)
    classes = ("c0", "c1", "c2", "c3")
    t = np.arange(length, dtype=np.float32) / length

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, len(classes), n)
        freq = (1.0 + y)[:, None, None]
        phase = rng.uniform(0, 2 * np.pi, (n, 1, n_channels))
        amp = rng.uniform(0.7, 1.3, (n, 1, n_channels))
        X = amp * np.sin(
            2 * np.pi * freq * t[None, :, None] * 2 + phase
        ) + 0.3 * rng.standard_normal((n, length, n_channels))
        return X.astype(np.float32), y.astype(np.int64)

    X, y = {}, {}
    for name, n in (("train", n_train), ("val", max(n_test // 4, 4)), ("test", n_test)):
        X[name], y[name] = split(n)
    ids = {k: np.asarray([f"{k}{i}" for i in range(len(v))]) for k, v in y.items()}
    return ModelInput(
        X=X,
        y=y,
        series_ids=ids,
        classes=classes,
        channels=tuple(f"ch{i}" for i in range(n_channels)),
        metadata={"source": "synthetic"},
    )


def load_default(quick: bool) -> tuple[torch.nn.Module, str, ModelInput, str]:
    """(model, model name, model input, where they came from)."""
    summary = ROOT / "data/06_models/training_summary.json"
    mi_path = ROOT / "data/05_model_input/model_input.npz"
    if not quick and summary.is_file() and mi_path.is_file():
        ckpt = json.loads(summary.read_text())["best_checkpoint"]
        model, spec, _ = load_checkpoint_model(ckpt if Path(ckpt).is_absolute() else ROOT / ckpt)
        return model, spec.name, load_model_input(mi_path), f"pipeline checkpoint {ckpt}"
    mi = synthetic_model_input(64 if quick else 400, 32 if quick else 200)
    hidden, layers, epochs = (16, 1, 3) if quick else (64, 2, 8)
    torch.manual_seed(0)
    spec = ModelSpec(
        "lstm_attention", mi.n_channels, mi.n_classes, mi.length, hidden=hidden, layers=layers
    )
    model = build_model(spec)
    finetune(
        model, mi.X["train"], mi.y["train"], FinetuneConfig(epochs=epochs, lr=3e-3, batch_size=32)
    )
    return (
        model,
        spec.name,
        mi,
        f"synthetic data, {spec.name} hidden={hidden} layers={layers} trained {epochs} epochs",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny model and few iterations (smoke test)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=None,
        help="thread counts to measure at (default: 1 and the CPU count)",
    )
    parser.add_argument(
        "--int8", choices=["dynamic", "static"], default="dynamic", help="headline int8 variant"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    n1, n64 = (50, 10) if args.quick else (1000, 200)
    threads = args.threads or sorted({1, os.cpu_count() or 1})

    t0 = time.perf_counter()
    model, name, mi, source = load_default(args.quick)
    model.eval()
    X_test, y_test = mi.X["test"], mi.y["test"]
    workdir = tempfile.TemporaryDirectory(prefix="bench_inference_")
    tmp = Path(workdir.name)
    fp32 = tmp / "fp32.onnx"
    export_onnx(model, torch.from_numpy(X_test[:2]), fp32)
    paths = {
        "ort_fp32": fp32,
        "ort_int8_dynamic": quantize_dynamic_int8(fp32, tmp / "int8_dynamic.onnx"),
        "ort_int8_static": quantize_static_int8(
            fp32, tmp / "int8_static.onnx", sample_calibration(mi.X["train"], 128), batch_size=16
        ),
    }
    acc = {
        "torch_fp32": classification_scores(y_test, torch_logits(model, X_test), mi.n_classes)[
            "accuracy"
        ]
    }
    for key, path in paths.items():
        acc[key] = classification_scores(
            y_test, create_session(path).predict_logits(X_test), mi.n_classes
        )["accuracy"]
    sizes = {key: path.stat().st_size for key, path in paths.items()}

    rows = []
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        sessions = {
            key: create_session(path, intra_op_threads=n_threads) for key, path in paths.items()
        }
        for batch, iters in ((1, n1), (64, n64)):
            stats = {
                "torch_fp32": measure_torch_latency(model, X_test, batch, n_warmup=10, n_iter=iters)
            }
            for key, session in sessions.items():
                stats[key] = measure_ort_latency(session, X_test, batch, n_warmup=10, n_iter=iters)
            for key, s in stats.items():
                row = {
                    "threads": n_threads,
                    "batch": batch,
                    "engine": key,
                    **s.to_dict(),
                    "speedup_vs_torch": stats["torch_fp32"].p50_ms / s.p50_ms,
                }
                rows.append(row)
                print(json.dumps(row))

    def p50(engine: str, batch: int, n_threads: int | None = None) -> float:
        sel = [
            r["p50_ms"]
            for r in rows
            if r["engine"] == engine
            and r["batch"] == batch
            and (n_threads is None or r["threads"] == n_threads)
        ]
        return min(sel)

    top = max(threads)
    int8_key = f"ort_int8_{args.int8}"
    result = {
        "benchmark": "inference",
        "model": name,
        "source": source,
        "threads": threads,
        "n_test": int(len(y_test)),
        # headline: each engine at its best thread count (torch eager is often faster with 1)
        "ort_fp32_speedup_batch1": p50("torch_fp32", 1) / p50("ort_fp32", 1),
        "ort_fp32_speedup_batch1_same_threads": p50("torch_fp32", 1, top) / p50("ort_fp32", 1, top),
        "ort_fp32_speedup_batch64": p50("torch_fp32", 64) / p50("ort_fp32", 64),
        "int8_variant": args.int8,
        "int8_speedup_batch1": p50("torch_fp32", 1) / p50(int8_key, 1),
        "int8_size_ratio": sizes[int8_key] / sizes["ort_fp32"],
        "int8_accuracy_drop_points": 100.0 * (acc["torch_fp32"] - acc[int8_key]),
        "int8_static_size_ratio": sizes["ort_int8_static"] / sizes["ort_fp32"],
        "int8_static_accuracy_drop_points": 100.0 * (acc["torch_fp32"] - acc["ort_int8_static"]),
        "accuracy": acc,
        "size_bytes": sizes,
        "p50_ms_batch1_best": {k: p50(k, 1) for k in ("torch_fp32", *paths)},
        "p50_ms_batch64_best": {k: p50(k, 64) for k in ("torch_fp32", *paths)},
        "targets": {
            "ort_fp32_speedup_batch1": ">= 3",
            "int8_size_ratio": "<= 0.30",
            "int8_accuracy_drop_points": "<= 0.5",
        },
        "seconds": time.perf_counter() - t0,
    }
    result["targets_met"] = {
        "ort_fp32_speedup_batch1": result["ort_fp32_speedup_batch1"] >= 3.0,
        "int8_size_ratio": result["int8_size_ratio"] <= 0.30,
        "int8_accuracy_drop_points": result["int8_accuracy_drop_points"] <= 0.5,
    }
    workdir.cleanup()
    sys.stdout.flush()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
