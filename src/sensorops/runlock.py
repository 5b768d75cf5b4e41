"""One ``kedro run`` per project folder, and telling live processes from dead ones.

:class:`RunLock` is an exclusive lock on the project's ``data/`` folder: the file
``data/.sensorops-run.lock`` holds ``{"pid", "host", "started_at", "pipelines", "start_ticks"}``
and is held with ``flock`` for the whole run. The kernel drops a ``flock`` when its process dies
(SIGKILL included), so a killed run never leaves the folder blocked: the next run finds the file
still naming the dead process, says so in a warning and takes it over. A second live run in the
same folder is refused at once with :class:`RunLockBusy`, naming the holder.

Separate checkouts have separate ``data/`` folders and never block each other; promotions they
share are serialised by the registry lease (:mod:`sensorops.registry.lock`).

:func:`process_identity` and :func:`is_alive` are shared with the registry lease, the intent
records and the start-of-run hygiene: a process is named by ``(host, pid, start_ticks)`` (the
start time from ``/proc/<pid>/stat``), so a recycled PID is not mistaken for the old process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LOCK_NAME = ".sensorops-run.lock"


class RunLockBusy(RuntimeError):
    """Another live run holds the project folder."""


def _start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has exited; only its parent has not reaped it yet
        return None
    return int(fields[19])


def process_identity(pid: int | None = None) -> dict[str, Any]:
    """``{"pid", "host", "start_ticks"}`` of ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "host": socket.gethostname(), "start_ticks": _start_ticks(pid)}


def is_alive(pid: Any, host: Any, start_ticks: Any = None) -> bool | None:
    """Whether process ``pid`` on ``host`` still runs: True, False, or None (another host: unknown).

    When ``start_ticks`` is given, a process with the same PID but another start time is a
    different (recycled) process, hence the old one is dead.
    """
    if host != socket.gethostname():
        return None
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    ticks = _start_ticks(pid)
    if ticks is None:
        return False
    if start_ticks is not None and str(start_ticks) != str(ticks):
        return False
    return True


def describe_holder(info: dict[str, Any]) -> str:
    return (
        f"PID {info.get('pid')} on {info.get('host')}, started {info.get('started_at', '?')}, "
        f"pipelines {info.get('pipelines') or '-'}"
    )


_HELD: dict[str, RunLock] = {}
"""Locks held by this process, by lock-file path (a second session in one process takes over)."""


class RunLock:
    """Exclusive lock of one project folder's ``data/`` for the duration of a run.

    Args:
        data_dir: the project's ``data/`` folder (created if missing).
        pipelines: names of the pipelines being run (stored in the lock file).
    """

    def __init__(self, data_dir: str | os.PathLike[str], pipelines: list[str] | None = None):
        self.path = Path(data_dir) / LOCK_NAME
        self.pipelines = list(pipelines or [])
        self._fd: int | None = None
        self.took_over: dict[str, Any] | None = None

    def _read(self, fd: int) -> dict[str, Any]:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 65536).decode(errors="replace").strip()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return {"raw": raw}

    def acquire(self) -> RunLock:
        """Take the lock, or raise :class:`RunLockBusy` naming the live holder."""
        key = str(self.path.resolve())
        previous = _HELD.pop(key, None)
        if previous is not None:  # a second session in this process: the first one is over
            logger.warning("run lock %s was still held by this process; released", self.path)
            previous.release()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read(fd)
            os.close(fd)
            raise RunLockBusy(
                f"another run is using {self.path.parent}: {describe_holder(holder)}. "
                "Wait for it to finish (one run per project folder), or run from a separate "
                "checkout; the lock is released when that process ends"
            ) from None
        old = self._read(fd)
        if old.get("pid") is not None:
            alive = is_alive(old.get("pid"), old.get("host"), old.get("start_ticks"))
            self.took_over = old
            logger.warning(
                "taking over the run lock %s left by a %s run (%s)",
                self.path,
                "dead" if alive is False else "finished or foreign",
                describe_holder(old),
            )
        info = {
            **process_identity(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "pipelines": self.pipelines,
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info, sort_keys=True).encode())
        os.fsync(fd)
        self._fd = fd
        _HELD[key] = self
        return self

    def release(self) -> None:
        """Empty the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        _HELD.pop(str(self.path.resolve()), None)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def release_project_lock(data_dir: str | os.PathLike[str]) -> None:
    """Release this process's lock on ``data_dir`` if it holds one (end of a Kedro run)."""
    held = _HELD.get(str((Path(data_dir) / LOCK_NAME).resolve()))
    if held is not None:
        held.release()
