"""Where MLflow data goes, and whether that place answers.

Kedro-free helpers used by the project hooks, the CLI and the training launcher.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse, urlunparse

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def find_project(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` whose ``pyproject.toml`` has a ``[tool.kedro]``."""
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            try:
                if "[tool.kedro]" in pyproject.read_text(encoding="utf-8"):
                    return folder
            except OSError:
                continue
    return None


def project_root() -> Path:
    """The Kedro project around the working directory, else the checkout this package lives in."""
    return find_project(Path.cwd().resolve()) or PROJECT_ROOT


def embedded_db() -> Path:
    """Path of the embedded tracking store: ``<project root>/mlflow.db``."""
    return project_root() / "mlflow.db"


class TrackingServerUnreachable(RuntimeError):
    """The configured MLflow tracking server does not answer."""


class TrackingAuthError(TrackingServerUnreachable):
    """The tracking server answers but refuses the credentials (HTTP 401) or the user (403)."""


class TrackingOutage(TrackingServerUnreachable):
    """The tracking server stopped answering during a run (after MLflow's bounded retries)."""


HTTP_RETRY_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
"""MLflow's HTTP client for project runs: 4 retries 0, 2, 4, 8 s apart (+ up to 0.5 s jitter), 10 s
per attempt. A refused connection gives up after about 15 s per call, a server that accepts but
never answers after about a minute (5 x 10 s + 14 s). MLflow's own defaults (7 retries, factor 2,
120 s timeout) kept a run alive for 26 minutes against a dead server. Each value is a default:
one already in the environment wins."""


def bound_http_retries() -> None:
    """Set :data:`HTTP_RETRY_DEFAULTS` where the environment does not say otherwise."""
    for key, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(key, value)


def stop_retrying() -> None:
    """The server is known to be gone: every later MLflow call of this process tries once, briefly
    (closing the run, failure tags), instead of waiting out the retries again."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "3"


_UNREACHABLE_WORDS = (
    "connection refused",
    "max retries",
    "connectionerror",
    "timed out",
    "read timeout",
    "remotedisconnected",
    "failed to establish a new connection",
)


def looks_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the tracking server could not be reached."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TrackingServerUnreachable) and not isinstance(seen, TrackingAuthError):
            return True
        text = f"{type(seen).__name__} {seen}".lower()
        if any(w in text for w in _UNREACHABLE_WORDS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


USER_ENV, PASSWORD_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
CREDENTIALS_FILE = Path("conf") / "local" / "credentials.yml"
"""Where a user keeps their tracking-server login (git-ignored), relative to the project root::

    mlflow:
      MLFLOW_TRACKING_USERNAME: alice
      MLFLOW_TRACKING_PASSWORD: ...
"""
CREDENTIALS_KEY = "mlflow"
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]*)@")


def mask_uri(uri: str) -> str:
    """``uri`` with any userinfo replaced by ``***`` (``http://***@host:5000``): for printing."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}***@", uri)


def mask_secrets(text: str) -> str:
    """``text`` with every URI's userinfo and the tracking password (if set) masked."""
    text = mask_uri(text)
    password = os.environ.get(PASSWORD_ENV)
    if password and len(password) >= 4:  # never mask "a" everywhere
        text = text.replace(password, "***")
    return text


def split_userinfo(uri: str) -> tuple[str, str | None, str | None]:
    """``(uri without userinfo, user, password)`` of an ``http(s)://user:secret@host`` URI.

    Other URIs (``sqlite:``, ``postgresql://user@db``: the database's own login) come back as
    they are, with ``None`` for both.
    """
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https") or "@" not in parsed.netloc:
        return uri, None, None
    userinfo, _, hostport = parsed.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    clean = urlunparse(parsed._replace(netloc=hostport))
    return clean, unquote(user) or None, unquote(password) if sep else None


def _credentials_file(root: Path) -> dict[str, str]:
    """``mlflow:`` of ``<root>/conf/local/credentials.yml`` (``{}`` when absent)."""
    import yaml

    path = root / CREDENTIALS_FILE
    if not path.is_file():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TrackingAuthError(f"{path}: cannot be read as YAML ({type(exc).__name__})") from None
    section = loaded.get(CREDENTIALS_KEY) if isinstance(loaded, dict) else None
    if section is None:
        return {}
    if not isinstance(section, dict) or not all(isinstance(v, str) for v in section.values()):
        raise TrackingAuthError(
            f"{path}: '{CREDENTIALS_KEY}' must map {USER_ENV}/{PASSWORD_ENV} to strings"
        )
    return {k: v for k, v in section.items() if k in (USER_ENV, PASSWORD_ENV)}


def apply_credentials(uri: str, root: Path | None = None) -> str:
    """Move the tracking-server login to where MLflow reads it; return ``uri`` without userinfo.

    Sources, first wins: the URI's userinfo (``http://user:secret@host:5000``), then
    ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD``, then the ``mlflow:`` key of the
    git-ignored ``<root>/conf/local/credentials.yml``. The login ends up in those two environment
    variables (MLflow's HTTP client sends them as basic auth; workers inherit them), and
    ``MLFLOW_TRACKING_URI`` is rewritten without userinfo, so no URI that is printed, logged or
    tagged carries the password.
    """
    clean, user, password = split_userinfo(uri)
    if user is not None:
        os.environ[USER_ENV] = user
        if password is not None:
            os.environ[PASSWORD_ENV] = password
    elif urlparse(uri).scheme in ("http", "https") and not os.environ.get(USER_ENV):
        os.environ.update(_credentials_file(root or project_root()))
    env_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if env_uri and env_uri != split_userinfo(env_uri)[0]:
        os.environ["MLFLOW_TRACKING_URI"] = split_userinfo(env_uri)[0]
    return clean


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set (userinfo moved to the credential variables by
    :func:`apply_credentials`), else ``sqlite:///<project root>/mlflow.db`` (absolute)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return apply_credentials(uri) if uri else f"sqlite:///{embedded_db()}"


def check_tracking_uri(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, with instructions, when an ``http(s)`` tracking server does not answer ``/health``.

    Local stores (``sqlite:``, ``postgresql:``, ``file:``...) are not probed here; MLflow's own
    errors for them are already specific.

    Raises:
        TrackingServerUnreachable: names the URI and how to start a local server.
    """
    uri, user, password = split_userinfo(uri)
    user = user or os.environ.get(USER_ENV)
    password = password if password is not None else os.environ.get(PASSWORD_ENV)
    scheme = urlparse(uri).scheme
    if scheme not in ("http", "https"):
        return
    url = uri.rstrip("/") + "/health"
    problem = ""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            if resp.status != 200:
                problem = f"answered HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        if exc.code not in (401, 403):  # 401/403: an auth-protected server is up
            problem = f"answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        problem = f"did not answer ({getattr(exc, 'reason', exc)})"
    if problem:
        raise TrackingServerUnreachable(
            f"MLflow tracking server {uri} {problem} at {url}. Start one with `make mlflow-server` "
            f"(serves http://127.0.0.1:5000), point MLFLOW_TRACKING_URI at a running server, or "
            f"unset MLFLOW_TRACKING_URI to use the embedded store sqlite:///{embedded_db()}."
        )
    _check_login(uri, user, password, timeout_s)


def _check_login(uri: str, user: str | None, password: str | None, timeout_s: float) -> None:
    """One authenticated read; 401/403 become :class:`TrackingAuthError` (the password unnamed)."""
    url = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    request = urllib.request.Request(url)
    if user:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return
    except urllib.error.HTTPError as exc:
        code = exc.code
        try:
            detail = json.loads(exc.read() or b"{}").get("message", "")
        except (ValueError, AttributeError):
            detail = ""
    except (urllib.error.URLError, OSError):
        return  # /health answered a moment ago; MLflow's own client reports what follows
    if code == 401:
        who = f"user {user!r}" if user else "no user"
        raise TrackingAuthError(
            f"MLflow tracking server {uri} refused the login of {who} (HTTP 401). Set "
            f"{USER_ENV}/{PASSWORD_ENV}, put them under '{CREDENTIALS_KEY}:' in "
            f"{CREDENTIALS_FILE}, or give them in the URI (http://USER:PASSWORD@host:port)."
        )
    if code == 403:
        raise TrackingAuthError(
            f"MLflow tracking server {uri}: user {user!r} may not read experiments (HTTP 403"
            + (f": {mask_secrets(detail)}" if detail else "")
            + "); ask the server's admin for READ permission."
        )


def git_commit(path: Path) -> tuple[str | None, bool]:
    """(HEAD commit, dirty flag) of the git checkout at ``path``; ``(None, False)`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None, False
    return commit or None, bool(dirty)
