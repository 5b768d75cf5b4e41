"""Fixtures for registry tests: tiny data, tiny exported ONNX classifiers, a registry client.

Data: 3 classes over 3 channels; a series of class k has channel k raised to 1.0 (plus noise).
Models: ``Flatten -> Linear`` exported to ONNX; ``good`` averages channel k into logit k
(accuracy ~1.0), ``bad`` looks at the wrong channel (accuracy ~0), ``noisy`` sits in between.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from sensorops.model_input import ModelInput
from sensorops.registry import (
    PromotionConfig,
    RegisteredVersion,
    Registry,
    VariantSpec,
    connect,
    register_variants,
)
from tests.registry.registry_helpers import FAST_LOCK, GOOD_TAGS, export_linear, make_model_input


@pytest.fixture(scope="session")
def mi() -> ModelInput:
    return make_model_input()


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``good`` (accuracy ~1), ``good2``/``good3`` (other good ones), ``noisy`` and ``bad`` (~0)."""
    d = tmp_path_factory.mktemp("onnx")
    return {
        "good": export_linear(d / "good.onnx", shift=0),
        "good2": export_linear(d / "good2.onnx", shift=0, noise=0.01, seed=1),
        "good3": export_linear(d / "good3.onnx", shift=0, noise=0.01, seed=3),
        "noisy": export_linear(d / "noisy.onnx", shift=0, noise=0.6, seed=2),
        "bad": export_linear(d / "bad.onnx", shift=1),
    }


@pytest.fixture(scope="session")
def reg(mlflow_server: str) -> Registry:
    return connect(mlflow_server)


@pytest.fixture
def config() -> PromotionConfig:
    return PromotionConfig(lock=FAST_LOCK)


@pytest.fixture
def model_name() -> str:
    """A fresh registered-model name per test."""
    return f"t-{uuid.uuid4().hex[:10]}"


RegisterFn = Callable[..., list[RegisteredVersion]]


@pytest.fixture
def register(
    reg: Registry, mi: ModelInput, onnx_models: dict[str, Path], config: PromotionConfig
) -> RegisterFn:
    """``register(name, "good", "bad", tags={...})`` registers those models, in order, as candidates."""

    def _register(
        name: str, *models: str, tags: dict[str, str] | None = None
    ) -> list[RegisteredVersion]:
        specs = [VariantSpec(variant=m, onnx_path=str(onnx_models[m])) for m in models]
        return register_variants(
            specs, mi, name, {**GOOD_TAGS, **(tags or {})}, reg=reg, config=config
        )

    return _register


@pytest.fixture(scope="session")
def template(reg: Registry, mi: ModelInput, onnx_models: dict[str, Path]) -> dict:
    """One real registered version whose artifact the transition tests' versions share."""
    from tests.registry.registry_helpers import FAULT_LOCK

    name = f"template-{uuid.uuid4().hex[:8]}"
    (rv,) = register_variants(
        [VariantSpec("fp32", str(onnx_models["good"]))], mi, name, GOOD_TAGS, reg=reg,
        config=PromotionConfig(lock=FAULT_LOCK),
    )  # fmt: skip
    mv = reg.client.get_model_version(name, rv.version)
    return {
        "source": mv.source,
        "run_id": mv.run_id,
        "tags": dict(mv.tags),
        "model_id": getattr(mv, "model_id", None) or mv.source.removeprefix("models:/"),
    }
