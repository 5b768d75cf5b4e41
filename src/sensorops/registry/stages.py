"""The stage vocabulary and how each stage is stored (alias, legacy stage, version tag)."""

from __future__ import annotations

from typing import Literal

Stage = Literal["candidate", "staging", "production", "archived"]
STAGES: tuple[str, ...] = ("candidate", "staging", "production", "archived")

STAGE_TAG = "sensorops.stage"
"""Version tag holding the canonical stage of a version."""

LEGACY_STAGE: dict[str, str] = {
    "candidate": "None",
    "staging": "Staging",
    "production": "Production",
    "archived": "Archived",
}
"""Mirror of each stage in MLflow's deprecated stage field."""

STAGE_ALIASES: dict[str, tuple[str, ...]] = {
    "candidate": (),
    "staging": ("staging",),
    "production": ("production", "champion"),
    "archived": (),
}
"""Registry aliases that point at the (latest) version in each stage; ``@champion`` = production."""

ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "staging": ("candidate", "archived"),
    "production": ("staging",),
    "archived": ("candidate", "staging", "production"),
}
"""Legal transitions: target stage -> stages a version may come from."""


def check_stage(stage: str) -> str:
    """Return ``stage`` if valid, else raise ``ValueError`` naming the valid stages."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {list(STAGES)}; got {stage!r}")
    return stage
