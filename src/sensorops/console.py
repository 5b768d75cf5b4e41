"""What a person sees on the console: one clear block per failure, no third-party noise.

- :func:`install_excepthook` (``settings.py``): an uncaught error prints one block, what failed
  (the node, if a node failed), the error, its root cause, and where the full traceback went
  (``logs/last-error.log``). ``SENSOROPS_DEBUG=1`` prints the traceback on the console as well.
- :class:`NoiseFilter`: drops known third-party log lines that every successful run printed,
  each pattern with the reason it is safe to drop; :func:`configure_project_logging`
  (``settings.py``) puts it on the console handlers and adds ``logs/sensorops.log``
  (:class:`ProjectFileHandler` creates ``logs/``; a fresh clone has none, it is git-ignored).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

from sensorops.tracking import mask_secrets

DEBUG_ENV = "SENSOROPS_DEBUG"
ERROR_LOG = Path("logs") / "last-error.log"
MAX_MESSAGE_LINES = 10
FAILED_NODE: dict[str, str] = {}
"""``{"name": node}`` of the node whose failure ends the run (set by the project hooks)."""

# Each pattern: a message that carries no information for this project, and why.
NOISE = (
    # torch.onnx's dynamo exporter probes torchvision's custom ops; sensorops exports no vision ops
    re.compile(r"torchvision is not installed"),
    # Kedro warns whenever a dataset is re-registered in the catalog; kedro-mlflow and the
    # runner do that on purpose in every run (7 lines a run, none actionable)
    re.compile(r"^Replacing dataset "),
    # omegaconf 2.4 deprecates register_new_resolver, which Kedro and kedro-mlflow still call
    re.compile(r"register_new_resolver"),
)
ONCE = (
    # kedro-mlflow logs this for every nested run it closes on a failure; once is the news
    re.compile(r"was closed because of an error in the pipeline"),
)


WARNINGS = (
    # omegaconf 2.4 deprecates register_new_resolver, which Kedro and kedro-mlflow still call
    r".*register_new_resolver.*",
    # MLflow asks every PythonModel subclass for type hints on predict; sensorops' pyfunc wrapper
    # takes a DataFrame and checks its input itself (sensorops.registry.pyfunc)
    r".*Add type hints to the `predict` method.*",
    # tslearn can read/write HDF5 with h5py; sensorops never uses that
    r".*h5py not installed, hdf5 features will not be supported.*",
)


def quiet_third_party_warnings() -> None:
    """Ignore the :data:`WARNINGS` (each with its reason); called as early as the project loads
    (``sensorops.cli``, which Kedro imports at start-up, and ``settings.py``)."""
    import warnings

    for message in WARNINGS:
        warnings.filterwarnings("ignore", message=message)


class NoiseFilter(logging.Filter):
    """Drop :data:`NOISE`; let the first record matching each :data:`ONCE` pattern through."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._seen: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to judge
            return True
        if any(p.search(message) for p in NOISE):
            return False
        for i, pattern in enumerate(ONCE):
            if pattern.search(message):
                if i in self._seen:
                    return False
                self._seen.add(i)
        return True


class ProjectFileHandler(logging.handlers.RotatingFileHandler):
    """The log file (rotating, 10 MB x 3), its folder created when missing (``logs/`` is
    git-ignored), third-party noise dropped (:class:`NoiseFilter`)."""

    def __init__(self, filename: str, **kwargs: Any) -> None:
        Path(filename).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("maxBytes", 10_000_000)
        kwargs.setdefault("backupCount", 3)
        kwargs.setdefault("encoding", "utf-8")
        super().__init__(filename, **kwargs)
        self.addFilter(NoiseFilter())


LOG_FILE = Path("logs") / "sensorops.log"


def configure_project_logging(log_file: Path = LOG_FILE) -> None:
    """Put :class:`NoiseFilter` on every root handler and add the project's log file (idempotent).

    Kedro's logging config admits handler classes from ``logging``/``kedro.logging`` only (no
    ``()`` factories, no filter classes), so ``settings.py`` calls this once the config is in.
    """
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, NoiseFilter) for f in handler.filters):
            handler.addFilter(NoiseFilter())
    if any(isinstance(h, ProjectFileHandler) for h in root.handlers):
        return
    try:
        handler = ProjectFileHandler(str(Path.cwd() / log_file))
    except OSError:  # a read-only checkout: the console still works
        return
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    root.addHandler(handler)


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes")


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in out:
        out.append(seen)
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:400]}"


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of ``exc``'s cause/context chain (the real reason)."""
    return _chain(exc)[-1]


def error_block(exc: BaseException, log_path: Path | None) -> str:
    """The console block for ``exc``: what failed, the error, its root cause, where to look."""
    lines: list[str] = []
    node = FAILED_NODE.get("name")
    lines.append(f"error: node '{node}' failed" if node else "error: the run failed")
    raised = exc
    # the project's own error says what happened; a third-party one raised while cleaning up
    # after it (kedro-mlflow closing the run against a dead server) is only a footnote
    exc = next((e for e in _chain(raised) if type(e).__module__.startswith("sensorops")), raised)
    message = str(exc).strip().splitlines() or [""]
    first = f"{type(exc).__name__}: {message[0]}"
    lines.append(f"  {first}")
    for extra in message[1:MAX_MESSAGE_LINES]:
        lines.append(f"    {extra}")
    if len(message) > MAX_MESSAGE_LINES:
        lines.append(f"    ... ({len(message) - MAX_MESSAGE_LINES} more lines in the log)")
    cause = root_cause(exc)
    if cause is not exc and str(cause) not in str(exc):
        lines.append(f"  cause: {_one_line(cause)}")
    if exc is not raised:
        lines.append(f"  then: {_one_line(raised)[:200]}")
    where = f"full traceback in {log_path}" if log_path else "no log file could be written"
    lines.append(f"  {where} ({DEBUG_ENV}=1 prints it here)")
    return mask_secrets("\n".join(lines))


def _write_traceback(text: str) -> Path | None:
    path = Path.cwd() / ERROR_LOG
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError:
        return None
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def install_excepthook() -> None:
    """Replace the traceback dump of an uncaught error by :func:`error_block` (idempotent).

    The full traceback (secrets masked) goes to ``logs/last-error.log`` and to the ``sensorops``
    log file handlers; the console gets the block. ``KeyboardInterrupt`` and ``SystemExit`` and
    ``SENSOROPS_DEBUG=1`` keep Python's own behaviour.
    """
    if getattr(sys.excepthook, "_sensorops", False):
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if not issubclass(kind, Exception) or debug_enabled():
            previous(kind, exc, tb)
            return
        text = mask_secrets("".join(traceback.format_exception(kind, exc, tb)))
        path = _write_traceback(text)
        logging.getLogger("sensorops.traceback").debug("%s", text)
        sys.stderr.write(error_block(exc, path) + "\n")
        sys.stderr.flush()

    hook._sensorops = True  # type: ignore[attr-defined]
    sys.excepthook = hook
