"""Connecting to the MLflow tracking server / registry with clear errors.

``connect(uri)`` checks that the server answers *before* anything is read or written (MLflow's
own client would retry for minutes against a dead server), and :func:`lookup` turns MLflow's
``RESOURCE_DOES_NOT_EXIST`` into :class:`NotFoundError` naming the model, version or alias.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sensorops.registry.errors import NotFoundError, ServerUnreachable

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
T = TypeVar("T")

START_HINT = "start one with `make mlflow-server` (or `mlflow server --host 127.0.0.1 --port 5000`)"


def resolve_tracking_uri(uri: str | None) -> str:
    """``uri`` if given, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Raise :class:`ServerUnreachable` unless the tracking store behind ``uri`` answers.

    ``http(s)://`` URIs must answer ``GET /health``; ``sqlite:///`` files must already exist (we
    never create an empty registry by accident); other schemes are accepted as they are.
    """
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as resp:
                if resp.status == 200:
                    return
                raise ServerUnreachable(
                    f"MLflow server at {uri} answered /health with HTTP {resp.status}; {START_HINT}"
                )
        except urllib.error.HTTPError as exc:
            raise ServerUnreachable(
                f"MLflow server at {uri} answered /health with HTTP {exc.code}; {START_HINT}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerUnreachable(
                f"MLflow tracking server at {uri} is unreachable ({reason}); {START_HINT}, "
                "or pass --tracking-uri / set MLFLOW_TRACKING_URI"
            ) from exc
    elif uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        if not path.exists():
            raise ServerUnreachable(
                f"tracking database {path} (from {uri}) does not exist; run a pipeline first, "
                f"point --tracking-uri at a server, or {START_HINT}"
            )


@dataclass(frozen=True)
class Registry:
    """An MLflow client bound to one tracking/registry URI.

    Attributes:
        uri: tracking and registry URI.
        client: ``mlflow.MlflowClient`` for that URI.
    """

    uri: str
    client: MlflowClient

    @contextlib.contextmanager
    def fluent(self) -> Iterator[None]:
        """Point MLflow's fluent API (``mlflow.onnx.log_model``, ``models:/`` loading) at ``uri``."""
        import mlflow

        old_tracking, old_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
        if old_tracking == self.uri and old_registry == self.uri:
            yield
            return
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(old_tracking)
            mlflow.set_registry_uri(old_registry)


def connect(uri: str | None = None, check: bool = True) -> Registry:
    """Connect to ``uri``; ``None`` means ``mlflow.get_tracking_uri()`` (inside a Kedro run: the
    URI kedro-mlflow configured; otherwise ``$MLFLOW_TRACKING_URI`` or MLflow's default).

    Raises:
        ServerUnreachable: the server does not answer or the sqlite file is missing.
    """
    import mlflow

    if uri is None:
        uri = mlflow.get_tracking_uri()
    if check:
        check_reachable(uri)
    return Registry(uri=uri, client=mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri))


def is_not_found(exc: BaseException) -> bool:
    """True when ``exc`` is MLflow's RESOURCE_DOES_NOT_EXIST (or an equivalent 404)."""
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return False
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc).lower()


def lookup(fn: Callable[[], T], what: str) -> T:
    """Call ``fn``; translate "does not exist" into :class:`NotFoundError` naming ``what``."""
    try:
        return fn()
    except Exception as exc:
        if is_not_found(exc):
            raise NotFoundError(f"{what} does not exist") from exc
        raise
