"""The base of every cross-pipeline artifact: frozen, typed, one ``load``/``save`` pair.

An artifact is a JSON file one pipeline writes and another reads (``rpt_dq_summary``,
``mdl_training_summary``, ``rpt_evaluation``, ``mdl_export_summary``). Its contract is a frozen
pydantic model: the fields consumers rely on are typed and named, everything else the producer
wrote travels along untouched (``extra="allow"``), so :meth:`Artifact.to_dict` gives back the file
the producer wrote. Consumers build the contract with :meth:`Artifact.from_dict` (a dict from the
Kedro catalog) or :meth:`Artifact.load` (a file), and never walk the raw dict themselves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from sensorops.atomic import atomic_write_text
from sensorops.config_validation import describe_errors

A = TypeVar("A", bound="Artifact")


class ArtifactError(ValueError):
    """An artifact file or dict does not match its contract; the message names the field."""


class Artifact(BaseModel):
    """A frozen, typed view of one JSON artifact; unknown fields are kept, not dropped."""

    model_config = ConfigDict(extra="allow", frozen=True)
    artifact: ClassVar[str] = "artifact"
    """The catalog name of the artifact, used in error messages."""

    @classmethod
    def from_dict(cls: type[A], data: Mapping[str, Any] | A) -> A:
        """Build from the dict the catalog's JSON dataset loads (an instance is returned as is).

        Raises:
            ArtifactError: a field the contract types is missing or has the wrong type.
        """
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise ArtifactError(f"{cls.artifact} must be a mapping; got {type(data).__name__}")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise ArtifactError(
                f"{cls.artifact} does not match its contract: "
                + "; ".join(describe_errors(exc, cls.artifact, cls))
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict (the fields the producer set, in its order, extras included)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def load(cls: type[A], path: str | os.PathLike[str]) -> A:
        """Read the JSON file at ``path``.

        Raises:
            ArtifactError: missing file, invalid JSON, or a field that breaks the contract.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ArtifactError(f"{cls.artifact}: {path} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{cls.artifact}: {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON file atomically (a failed write leaves the previous file)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, default=str))
