"""Connecting to the MLflow tracking server / registry with clear errors.

``connect(uri)`` checks that the server answers *before* anything is read or written (MLflow's
own client would retry for minutes against a dead server), and :func:`lookup` turns MLflow's
``RESOURCE_DOES_NOT_EXIST`` into :class:`NotFoundError` naming the model, version or alias.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sensorops.registry.errors import NotFoundError, RegistryError, ServerUnreachable
from sensorops.tracking import (
    TrackingAuthError,
    TrackingServerUnreachable,
    apply_credentials,
    check_tracking_uri,
    default_tracking_uri,
    mask_secrets,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

T = TypeVar("T")

START_HINT = "start one with `make mlflow-server` (or `mlflow server --host 127.0.0.1 --port 5000`)"

_FLUENT_LOCK = threading.RLock()
"""Held for the whole ``with`` block of :meth:`Registry.fluent` (MLflow's fluent URIs are process-global)."""


class AccessDenied(RegistryError, PermissionError):
    """The server refused the login (HTTP 401) or the user lacks a permission (HTTP 403)."""

    exit_code = 7


def resolve_tracking_uri(uri: str | None) -> str:
    """``uri`` if given, else :func:`sensorops.tracking.default_tracking_uri` (``$MLFLOW_TRACKING_URI``,
    else ``sqlite:///<project root>/mlflow.db``, absolute, whatever the working directory).

    A login in the URI (``http://user:secret@host``) moves to ``MLFLOW_TRACKING_USERNAME``/
    ``_PASSWORD`` (:func:`sensorops.tracking.apply_credentials`); the URI returned has none.
    """
    return apply_credentials(uri) if uri else default_tracking_uri()


def access_denied(exc: BaseException, uri: str, action: str) -> AccessDenied | None:
    """An :class:`AccessDenied` for MLflow's 401/403 answers (``exc`` or its causes), else None."""
    from mlflow.exceptions import MlflowException

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, MlflowException):
            code = getattr(seen, "error_code", "")
            user = os.environ.get("MLFLOW_TRACKING_USERNAME")
            who = f"user {user!r}" if user else "an anonymous client"
            if code == "PERMISSION_DENIED" or "403 != 200" in str(seen):
                endpoint = re.search(r"endpoint (/\S+)", str(seen))
                where = f" at {endpoint[1]}" if endpoint else ""
                return AccessDenied(
                    f"permission denied: MLflow at {uri} does not let {who} {action} "
                    f"(HTTP 403{where}); nothing was changed. Ask the server's admin for the "
                    "permission (EDIT or MANAGE on the registered model), or use another login."
                )
            if code == "UNAUTHENTICATED" or "401 != 200" in str(seen):
                return AccessDenied(
                    f"MLflow at {uri} refused the login of {who} (HTTP 401); nothing was changed. "
                    "Check MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD."
                )
        seen = seen.__cause__ or seen.__context__
    return None


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Raise :class:`ServerUnreachable` unless the tracking store behind ``uri`` answers.

    ``http(s)://`` URIs are probed by :func:`sensorops.tracking.check_tracking_uri` (``GET /health``;
    401/403 count as up, an auth-protected server answers); ``sqlite:///`` files must already exist
    (we never create an empty registry by accident); other schemes are accepted as they are.
    """
    if uri.startswith(("http://", "https://")):
        try:
            check_tracking_uri(uri, timeout_s=timeout_s)
        except TrackingAuthError as exc:
            raise AccessDenied(mask_secrets(str(exc))) from None
        except TrackingServerUnreachable as exc:
            raise ServerUnreachable(f"{mask_secrets(str(exc))} Or pass --tracking-uri.") from None
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
        """Point MLflow's fluent API (``mlflow.onnx.log_model``, ``models:/`` loading) at ``uri``.

        MLflow keeps the fluent tracking and registry URIs in process-global state, so this block
        swaps them and restores them on exit. A module-level re-entrant lock is held for the whole
        ``with`` block: two threads of one process (a threaded Kedro runner, a notebook) cannot
        swap the URIs under each other; nested blocks in one thread (registration inside a run,
        the no-regression gate inside a promotion) are fine. Code that calls MLflow's fluent API
        *without* this block is not serialised by it.
        """
        import mlflow

        with _FLUENT_LOCK:
            if mlflow.get_tracking_uri() == self.uri and mlflow.get_registry_uri() == self.uri:
                yield
                return
            saved = _save_fluent_state()
            mlflow.set_tracking_uri(self.uri)
            mlflow.set_registry_uri(self.uri)
            try:
                yield
            finally:
                _restore_fluent_state(saved)


_URI_ENV_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def _save_fluent_state() -> tuple[Any, Any, dict[str, str | None]]:
    """MLflow's fluent URIs exactly as they are, unset ones included.

    ``set_tracking_uri``/``set_registry_uri`` also export ``MLFLOW_*_URI`` to ``os.environ`` (and so
    to every subprocess); restoring with them would pin a URI that was only a default before.
    """
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    env = {name: os.environ.get(name) for name in _URI_ENV_VARS}
    return tracking_utils._tracking_uri, registry_utils._registry_uri, env


def _restore_fluent_state(saved: tuple[Any, Any, dict[str, str | None]]) -> None:
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    tracking_utils._tracking_uri, registry_utils._registry_uri, env = saved
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def connect(uri: str | None = None, check: bool = True) -> Registry:
    """Connect to ``uri``; ``None`` means the URI MLflow was pointed at (inside a Kedro run: the
    one kedro-mlflow configured; or ``$MLFLOW_TRACKING_URI``), else :func:`resolve_tracking_uri`'s
    ``sqlite:///<project root>/mlflow.db`` (never MLflow's own working-directory default).

    Raises:
        ServerUnreachable: the server does not answer or the sqlite file is missing.
    """
    import mlflow
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    if uri is None:
        uri = mlflow.get_tracking_uri() if is_tracking_uri_set() else resolve_tracking_uri(None)
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
