"""A lease on a registered model, so that only one promotion changes it at a time.

MLflow's registry has no compare-and-set, so the lease is Fischer's timed mutual exclusion built on
one registered-model tag, ``sensorops.lock`` = ``{"owner", "actor", "expires_at"}``:

1. read the tag; if another owner's unexpired lease is there, wait and retry (until ``timeout_s``);
2. write our lease, and check that the read -> write took at most ``max_write_gap_s``
   (otherwise we may have overwritten someone who already verified: back off and retry);
3. wait ``settle_s`` (> ``max_write_gap_s``), re-read: we hold the lease only if it still names us.

When the tag does not exist yet, two simultaneous writes may collide on the store's unique key;
the loser gets an error, which counts as "someone else wrote first" (back off and retry).

Any contender that read "free" before our write has written within ``max_write_gap_s`` of its
read, hence before our re-read; the last writer wins and every other contender sees it and backs
off. The holder re-verifies the lease (:meth:`RegistryLease.verify`) right before and after its
writes, and the promotion checks the invariants (one production version, aliases = stage tags =
legacy stages) once done. A crashed holder's lease expires after ``ttl_s``; a holder on this
host whose process is gone (:func:`sensorops.runlock.is_alive`) is taken over at once.

What a dead holder left half-done is described by its intent record
(:mod:`sensorops.registry.intent`); whoever takes the lease next repairs it before its own work.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import uuid
from types import TracebackType
from typing import Any

from sensorops.registry.client import Registry, lookup
from sensorops.registry.config import LockConfig
from sensorops.registry.errors import LockBusy, TransitionFailed
from sensorops.registry.lineage import actor
from sensorops.runlock import is_alive, process_identity

logger = logging.getLogger(__name__)

LOCK_TAG = "sensorops.lock"


def _live(lease: dict[str, Any]) -> bool:
    """A lease counts while unexpired and its holder is not known to be dead."""
    if lease.get("expires_at", 0) <= time.time():
        return False
    if (
        "pid" in lease
        and is_alive(lease["pid"], lease.get("host"), lease.get("start_ticks")) is False
    ):
        return False
    return True


class RegistryLease:
    """Context manager holding the promotion lease of registered model ``name``.

    Args:
        reg: connected registry.
        name: registered model name (must exist).
        config: timing of the lease.
        purpose: free text stored with the lease (shown to waiting processes).
        tag: the registered-model tag holding the lease: ``sensorops.lock`` (promotions) or
            another name for a longer-lived lease of its own kind (a rollout controller holds
            ``sensorops.rollout.lock`` for its whole run and takes ``sensorops.lock`` per write).
    """

    def __init__(
        self,
        reg: Registry,
        name: str,
        config: LockConfig | None = None,
        purpose: str = "",
        tag: str = LOCK_TAG,
    ) -> None:
        self.reg = reg
        self.name = name
        self.config = config or LockConfig()
        self.purpose = purpose
        self.tag = tag
        self.owner = f"{uuid.uuid4().hex}:{os.getpid()}"
        self.held = False

    def _read(self) -> dict[str, Any] | None:
        rm = lookup(
            lambda: self.reg.client.get_registered_model(self.name),
            f"registered model {self.name!r}",
        )
        raw = rm.tags.get(self.tag)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            logger.warning("lease tag on %s is not JSON (%r); treating it as free", self.name, raw)
            return None

    def acquire(self) -> None:
        """Take the lease or raise :class:`LockBusy` after ``timeout_s``."""
        cfg = self.config
        deadline = time.monotonic() + cfg.timeout_s
        holder: dict[str, Any] | None = None
        while True:
            t_read = time.monotonic()
            current = self._read()
            if current and current.get("owner") != self.owner and _live(current):
                holder = current
            else:
                if current and current.get("owner") != self.owner:
                    logger.warning(
                        "taking over the %s lease of %s held by %s (PID %s: %s)",
                        "expired" if current.get("expires_at", 0) <= time.time() else "dead",
                        self.name,
                        current.get("actor"),
                        current.get("pid"),
                        current.get("purpose"),
                    )
                lease = {
                    "owner": self.owner,
                    "actor": actor(),
                    "purpose": self.purpose,
                    "expires_at": time.time() + cfg.ttl_s,
                    **process_identity(),
                }
                if not self._write(lease):
                    holder = self._read()
                    time.sleep(cfg.settle_s * (0.5 + random.random()))
                    continue
                gap = time.monotonic() - t_read
                time.sleep(cfg.settle_s)
                now = self._read()
                if gap <= cfg.max_write_gap_s and now and now.get("owner") == self.owner:
                    self.held = True
                    logger.info("acquired promotion lease on %s", self.name)
                    return
                if gap > cfg.max_write_gap_s:
                    logger.info(
                        "lease write on %s took %.2fs > max_write_gap_s; retrying", self.name, gap
                    )
                holder = now
            if time.monotonic() > deadline:
                if holder and holder.get("owner") == self.owner:
                    raise LockBusy(
                        f"could not confirm the promotion lease on {self.name!r} within {cfg.timeout_s:.0f}s: "
                        f"the server took longer than lock.max_write_gap_s={cfg.max_write_gap_s}s to "
                        "answer; raise lock.max_write_gap_s and lock.settle_s"
                    )
                who = holder.get("actor", "?") if holder else "?"
                what = holder.get("purpose", "") if holder else ""
                raise LockBusy(
                    f"registered model {self.name!r} is locked by another promotion ({who}: {what}) "
                    f"for more than {cfg.timeout_s:.0f}s; retry later, or delete tag {self.tag!r} "
                    "if that process is dead"
                )
            time.sleep(cfg.settle_s * (0.5 + random.random()))

    def _write(self, lease: dict[str, Any]) -> bool:
        """Write our lease; False when a concurrent writer won the insert (unique-key conflict)."""
        from mlflow.exceptions import MlflowException

        try:
            self.reg.client.set_registered_model_tag(self.name, self.tag, json.dumps(lease))
        except MlflowException as exc:
            text = str(exc)
            if "UNIQUE" in text or "IntegrityError" in text or "already exists" in text:
                logger.info("lease write on %s lost a concurrent insert; retrying", self.name)
                return False
            raise
        return True

    def verify(self) -> None:
        """Raise :class:`TransitionFailed` unless we still hold an unexpired lease."""
        current = self._read()
        if not current or current.get("owner") != self.owner:
            raise TransitionFailed(f"lost the promotion lease on {self.name!r} (now {current})")
        if current.get("expires_at", 0) <= time.time():
            raise TransitionFailed(f"promotion lease on {self.name!r} expired; raise lock.ttl_s")

    def renew(self) -> None:
        """Verify the lease and push its expiry ``ttl_s`` into the future (long registrations)."""
        self.verify()
        current = self._read() or {}
        current["expires_at"] = time.time() + self.config.ttl_s
        self.reg.client.set_registered_model_tag(self.name, self.tag, json.dumps(current))
        self.verify()

    def release(self) -> None:
        """Delete the lease tag if it is still ours."""
        if not self.held:
            return
        self.held = False
        try:
            current = self._read()
            if current and current.get("owner") == self.owner:
                self.reg.client.delete_registered_model_tag(self.name, self.tag)
        except Exception:  # the lease expires by itself; never mask the real outcome
            logger.exception("could not release the promotion lease on %s", self.name)

    def __enter__(self) -> RegistryLease:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
