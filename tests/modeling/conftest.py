"""Fixtures for the modeling tests: a tiny seeded ModelInput and tiny trained checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensorops.architectures import ARCHITECTURES
from sensorops.model_input import ModelInput
from tests.modeling.helpers import make_model_input, train_checkpoint


@pytest.fixture(scope="session")
def model_input() -> ModelInput:
    return make_model_input()


@pytest.fixture(scope="session")
def checkpoints(
    model_input: ModelInput, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """One tiny trained checkpoint per architecture."""
    root = tmp_path_factory.mktemp("ckpt")
    return {
        name: train_checkpoint(name, model_input, root / f"{name}.pt") for name in ARCHITECTURES
    }


@pytest.fixture(scope="session")
def exports(
    checkpoints: dict[str, Path], model_input: ModelInput, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict]:
    """``export_checkpoint`` summary per architecture (default config, tiny data)."""
    from sensorops.modeling import ExportConfig, export_checkpoint

    out = tmp_path_factory.mktemp("onnx")
    return {
        name: export_checkpoint(
            str(path),
            model_input,
            ExportConfig(output_dir=str(out / name), parity={"batch_sizes": [1, 7]}),
        )
        for name, path in checkpoints.items()
    }
