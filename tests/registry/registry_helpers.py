"""Shared helpers of the registry tests (imported by conftest.py and test modules).

Data: 3 classes over 3 channels; a series of class k has channel k raised to 1.0 (plus noise).
Models: ``Flatten -> Linear`` exported to ONNX; ``good`` averages channel k into logit k
(accuracy ~1.0), ``bad`` looks at the wrong channel (accuracy ~0), ``noisy`` sits in between.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sensorops.model_input import ModelInput
from sensorops.registry import LockConfig

LENGTH, N_CH, N_CLASSES = 8, 3, 3
FAST_LOCK = LockConfig(ttl_s=60, settle_s=0.4, max_write_gap_s=0.3, timeout_s=60)
FAULT_LOCK = LockConfig(ttl_s=60, settle_s=1.0, max_write_gap_s=0.8, timeout_s=90)
"""The fault tests' lease: a little more slack, since killed subprocesses and retries load the server."""
GOOD_TAGS = {
    "dq.passed": "true",
    "dq.raw.tier1": "pass (evaluated=10, failed=0)",
    "dq.model_input.tier2": "fail:warn (evaluated=4, failed=1)",
    "parity.passed": "true",
    "parity.max_abs_diff": "1.2e-07",
    "execution_provider": "CPUExecutionProvider",
    "training.mlflow_child_run_id": "none",
    "compression.gate_passed": "n/a",
}


def make_model_input(seed: int = 0, per_class: int = 10) -> ModelInput:
    """Tiny ModelInput: ``(3 * per_class, 8, 3)`` per split."""
    rng = np.random.default_rng(seed)
    X, y, ids = {}, {}, {}
    for split in ("train", "val", "test"):
        labels = np.repeat(np.arange(N_CLASSES), per_class)
        data = rng.normal(0.0, 0.3, size=(len(labels), LENGTH, N_CH)).astype(np.float32)
        data[np.arange(len(labels)), :, labels] += 1.0
        X[split], y[split] = data, labels.astype(np.int64)
        ids[split] = np.array([f"{split}-{i}" for i in range(len(labels))])
    return ModelInput(
        X=X,
        y=y,
        series_ids=ids,
        classes=("a", "b", "c"),
        channels=("c0", "c1", "c2"),
        metadata={"source": "synthetic", "raw_sha256": "deadbeef"},
    )


def export_linear(path: Path, shift: int, noise: float = 0.0, seed: int = 0) -> Path:
    """Export ``Flatten -> Linear`` whose logit k averages channel ``(k + shift) % 3``."""
    import torch

    weight = np.zeros((N_CLASSES, LENGTH, N_CH), dtype=np.float32)
    for k in range(N_CLASSES):
        weight[k, :, (k + shift) % N_CH] = 1.0 / LENGTH
    weight += np.random.default_rng(seed).normal(0, noise, weight.shape).astype(np.float32)
    lin = torch.nn.Linear(LENGTH * N_CH, N_CLASSES)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(weight.reshape(N_CLASSES, -1)))
        lin.bias.zero_()
    model = torch.nn.Sequential(torch.nn.Flatten(), lin).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(2, LENGTH, N_CH),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )
    return path


def clone_versions(reg: Any, name: str, template: dict[str, Any], n: int) -> list[str]:
    """``n`` new candidate versions of ``name`` sharing ``template``'s artifact, with history.

    Cheap versions for transition tests: no ONNX is scored or logged again.
    """
    from sensorops.registry.history import append_event
    from sensorops.registry.intent import register_event
    from sensorops.registry.register import ensure_registered_model

    ensure_registered_model(reg, name)
    out = []
    for _ in range(n):
        mv = reg.client.create_model_version(
            name, template["source"], run_id=template["run_id"],
            tags={**template["tags"], "sensorops.registration_id": "clone"},
            model_id=template["model_id"],
        )  # fmt: skip
        append_event(reg, name, register_event(str(mv.version), "fp32", "clone"))
        out.append(str(mv.version))
    return out
