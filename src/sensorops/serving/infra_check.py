"""Infrastructure check before promotion (like TFX's InfraValidator).

:func:`infra_check` serves one registered version the way production would, in a sandbox: a
``sensorops serve NAME --version V`` subprocess with its own local Ray (own session folder and
namespace) on a free port. It sends canned raw series and checks

- the service comes up (``/ready``) within ``startup_timeout_s``;
- every answer is 200 and matches the version loaded in-process (same classes, probabilities
  within ``parity_atol``);
- the p99 latency of ``n_requests`` sequential requests is within ``latency_budget_ms``.

Anything else refuses the promotion, and the result carries the numbers. The sandbox process
tree is stopped by PID whatever happens.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sensorops.serving.config import InfraCheckConfig


@dataclass
class InfraCheckResult:
    """Outcome of one check; ``passed`` False means: do not promote.

    Attributes:
        passed: every check held.
        model, version: what was checked.
        reasons: why it was refused (empty when passed).
        numbers: startup_s, n_requests, errors, max_abs_diff, classes_match, p50_ms, p99_ms,
            latency_budget_ms, parity_atol.
    """

    passed: bool
    model: str
    version: str
    reasons: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def message(self) -> str:
        nums = ", ".join(f"{k}={v}" for k, v in self.numbers.items())
        return f"infra check of {self.model} v{self.version} refused: {'; '.join(self.reasons)} ({nums})"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: dict[str, Any], timeout: float) -> tuple[int, Any]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")[:300]


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def infra_check(
    tracking_uri: str,
    name: str,
    version: str,
    canned: list[np.ndarray],
    config: InfraCheckConfig | None = None,
    workdir: str | Path | None = None,
) -> InfraCheckResult:
    """Serve ``name`` v``version`` in a sandbox and check it with ``canned`` raw series.

    Args:
        tracking_uri: the registry holding the version.
        name, version: the version to check.
        canned: raw ``(time, channels)`` series (e.g. a few test-split series).
        config: budgets (default :class:`InfraCheckConfig`).
        workdir: where the sandbox writes its logs (default a temporary folder).
    """
    from sensorops.serving.model_source import load_version, resolve

    cfg = config or InfraCheckConfig()
    result = InfraCheckResult(False, name, str(version))
    nums = result.numbers
    nums.update(latency_budget_ms=cfg.latency_budget_ms, parity_atol=cfg.parity_atol)
    work = Path(workdir or tempfile.mkdtemp(prefix="sensorops-infra-"))
    # 1. the reference answers: the same version loaded in this process
    try:
        expected_model = load_version(tracking_uri, resolve(tracking_uri, name, "", version=version),
                                      cache_dir=work / "cache").model  # fmt: skip
        expected, _ = expected_model.predict_proba_series(canned)
    except Exception as exc:
        result.reasons.append(f"the version does not load as a servable model: {exc}")
        return result
    # 2. the sandbox service
    port = _free_port()
    params = work / "serving.yml"
    params.write_text(yaml.safe_dump({"serving": {
        "namespace": f"sensorops-infra-{uuid.uuid4().hex[:8]}", "app_name": "infra-check",
        "ray_temp_dir": tempfile.mkdtemp(prefix="ri", dir="/tmp"),
        "prediction_log": {"dir": str(work / "prediction_log")}, "jobs": {"dir": str(work / "jobs")},
    }}))  # fmt: skip
    log = work / "sandbox.log"
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    start = time.monotonic()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sensorops.cli", "serve", name, "--version", str(version),
             "--port", str(port), "--tracking-uri", tracking_uri, "--params", str(params)],
            stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        ready = False
        while time.monotonic() - start < cfg.startup_timeout_s and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/ready", timeout=3) as resp:
                    ready = resp.status == 200
            except OSError:
                pass
            if ready:
                break
            time.sleep(0.5)
        nums["startup_s"] = round(time.monotonic() - start, 2)
        if not ready:
            tail = log.read_text(errors="replace")[-600:].replace("\n", " | ")
            result.reasons.append(
                f"the service did not become ready in {cfg.startup_timeout_s:.0f}s "
                f"(exit code {proc.poll()}): {tail}"
            )
            return result
        # 3. canned requests
        latencies, errors, diffs, same = [], 0, [], True
        for i in range(cfg.n_requests):
            k = i % len(canned)
            t0 = time.perf_counter()
            status, out = _post(f"{url}/v1/predict", {"data": canned[k].T.tolist()}, 30.0)
            latencies.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                errors += 1
                continue
            classes = out["classes"]
            got = np.array([out["predictions"][0]["probabilities"][c] for c in classes])
            diffs.append(float(np.abs(got - expected[k]).max()))
            same &= out["predictions"][0]["predicted"] == classes[int(expected[k].argmax())]
        lat = np.asarray(latencies)
        nums.update(
            n_requests=cfg.n_requests,
            errors=errors,
            max_abs_diff=max(diffs) if diffs else None,
            classes_match=bool(same),
            p50_ms=round(float(np.percentile(lat, 50)), 2),
            p99_ms=round(float(np.percentile(lat, 99)), 2),
        )
        if errors:
            result.reasons.append(f"{errors} of {cfg.n_requests} canned requests failed")
        if not same or (diffs and max(diffs) > cfg.parity_atol):
            result.reasons.append("answers differ from the version loaded in-process")
        if nums["p99_ms"] > cfg.latency_budget_ms:
            result.reasons.append(
                f"p99 {nums['p99_ms']} ms over the {cfg.latency_budget_ms} ms budget"
            )
    finally:
        _kill_tree(proc)
    result.passed = not result.reasons
    return result


def check_before_staging(
    registered: dict[str, Any],
    staging_variant: str,
    raw_long: Any,
    serving_params: dict[str, Any] | None,
) -> InfraCheckResult | None:
    """The promotion pipeline's hook: check the version about to become ``@staging``.

    Args:
        registered: ``mdl_registered_versions`` (model_name, tracking_uri, versions).
        staging_variant: the variant the pipeline stages.
        raw_long: ``int_sensor_long`` (canned requests: its first test-split series).
        serving_params: ``params:serving``.

    Returns:
        None when ``serving.infra_check.enabled`` is false, else the result.
    """
    from sensorops.registry.pyfunc import long_frame_to_series
    from sensorops.serving.config import ServingConfig

    cfg = ServingConfig.from_dict(serving_params).infra_check
    if not cfg.enabled:
        return None
    chosen = [v for v in registered["versions"] if v["variant"] == staging_variant]
    if not chosen:
        return None  # stage_registered names the missing variant
    split = raw_long["split"].astype(str) if "split" in raw_long.columns else None
    frame = raw_long[split == "test"] if split is not None and (split == "test").any() else raw_long
    channels = [c for c in frame.columns if c not in ("series_id", "t", "label", "split")]
    _, values = long_frame_to_series(frame, channels)
    return infra_check(
        registered["tracking_uri"], registered["model_name"], chosen[0]["version"],
        values[: cfg.n_series], cfg,
    )  # fmt: skip
