"""Retake the screenshots in ``docs/images`` from the real tools, in headless Chromium.

Usage (from the checkout, after ``kedro run`` finished in PROJECT with the embedded store)::

    .venv/bin/python docs/take_screenshots.py PROJECT [--out docs/images]

It starts kedro-viz, an MLflow server over ``PROJECT/mlflow.db`` and a static file server over the Great
Expectations Data Docs, each on a free 127.0.0.1 port in its own process group, drives Debian's
``chromium`` over the DevTools protocol (to dismiss first-visit popups, expand the nested run and type
into a search box), and kills every process group it started on exit.

No request leaves the machine: Chromium may fetch only 127.0.0.1. Data Docs pull Bootstrap and jQuery
from public CDNs; those two are answered from Debian's ``libjs-bootstrap4`` and ``libjs-jquery`` when
installed (else the page renders unstyled), every other outside request is refused.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

logger = logging.getLogger("take_screenshots")

WIDTH, HEIGHT = 1600, 1000
MAX_BYTES = 400_000
LOCAL_ASSETS = {  # CDN file name -> Debian copy (same major version)
    "bootstrap.min.css": Path("/usr/share/javascript/bootstrap4/css/bootstrap.min.css"),
    "jquery-3.7.1.min.js": Path("/usr/share/javascript/jquery/jquery.min.js"),
}


def free_port() -> int:
    """A 127.0.0.1 port free right now, below 49152 (kedro-viz refuses higher ones)."""
    for port in random.sample(range(20000, 49000), 500):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port on 127.0.0.1 in 20000-49000")


@contextlib.contextmanager
def serve(cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    """Run ``cmd`` in its own session (process group); yield its pid; kill the group afterwards."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc.pid
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue


def wait_http(url: str, pid: int, log: Path, timeout: float = 180) -> None:
    """Poll ``url`` until it answers 2xx; fail with the log tail if the server exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status < 300:
                    return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(1)
    raise RuntimeError(f"no answer from {url}; {log}:\n{log.read_text()[-3000:]}")


class Chromium:
    """Headless Chromium driven over the DevTools protocol; only 127.0.0.1 requests go through."""

    def __init__(self, profile: Path, binary: str = "chromium") -> None:
        from websockets.sync.client import connect

        profile.mkdir(parents=True, exist_ok=True)
        port_file = profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)
        cmd = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-breakpad",
            "--disable-crash-reporter", "--hide-scrollbars", f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}", "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0", "about:blank",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 60
        targets: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not targets:
            time.sleep(0.3)
            if not port_file.exists() or not port_file.read_text().strip():
                continue
            port = int(port_file.read_text().split()[0])
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    targets = [t for t in json.load(r) if t["type"] == "page"]
        if not targets:
            self.close()
            raise RuntimeError("chromium did not open its DevTools port")
        self._ws_stack = contextlib.ExitStack()  # closed in close()
        self.ws = self._ws_stack.enter_context(
            connect(targets[0]["webSocketDebuggerUrl"], max_size=None)
        )
        self.ids = itertools.count(1)
        self.call("Page.enable")
        self.call("Fetch.enable", patterns=[{"urlPattern": "*"}])
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _event(self, msg: dict[str, Any]) -> None:
        if msg.get("method") != "Fetch.requestPaused":
            return
        params = msg["params"]
        request_id, url = params["requestId"], params["request"]["url"]
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or parsed.hostname == "127.0.0.1":
            self._send("Fetch.continueRequest", requestId=request_id)
            return
        local = LOCAL_ASSETS.get(Path(parsed.path).name)
        if local is not None and local.is_file():
            kind = "text/css" if local.suffix == ".css" else "application/javascript"
            self._send(
                "Fetch.fulfillRequest",
                requestId=request_id,
                responseCode=200,
                responseHeaders=[{"name": "Content-Type", "value": kind}],
                body=base64.b64encode(local.read_bytes()).decode(),
            )
            return
        self._send("Fetch.failRequest", requestId=request_id, errorReason="BlockedByClient")

    def _send(self, method: str, **params: Any) -> int:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        return msg_id

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = self._send(method, **params)
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def pump(self, seconds: float) -> None:
        """Let the page work for ``seconds`` while answering its requests."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                self._event(json.loads(self.ws.recv(timeout=left)))

    def js(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def open(self, url: str, ready: str, settle: float = 3.0, timeout: float = 60) -> None:
        """Load ``url`` afresh and wait until the JS expression ``ready`` is true, then ``settle`` s."""
        self.call("Page.navigate", url="about:blank")
        self.pump(0.3)
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                if self.js(ready):
                    self.pump(settle)
                    return
            self.pump(0.5)
        raise TimeoutError(f"{url}: {ready} still false after {timeout}s")

    def has_text(self, text: str) -> str:
        return f"document.body && document.body.innerText.includes({json.dumps(text)})"

    def screenshot(self, path: Path) -> None:
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        path.write_bytes(data)
        if len(data) > MAX_BYTES:  # fewer colours; these are UI captures
            from PIL import Image

            Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)
        logger.info("%s (%d bytes)", path, path.stat().st_size)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws_stack.close()
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue


def latest_run(project: Path, tracking_uri: str) -> dict[str, str]:
    """Ids of the experiment, the latest ``kedro run`` parent run, its child and the @staging model."""
    import yaml
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    mlflow_yml = yaml.safe_load((project / "conf/base/mlflow.yml").read_text())
    experiment = client.get_experiment_by_name(mlflow_yml["tracking"]["experiment"]["name"])
    if experiment is None:
        raise RuntimeError(f"no MLflow experiment in {tracking_uri}: run `kedro run` first")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    child = next(r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id)
    promotion = yaml.safe_load((project / "conf/base/parameters_promotion.yml").read_text())
    model = promotion["promotion"]["model_name"]
    version = client.get_model_version_by_alias(model, "staging").version
    return {"exp": experiment.experiment_id, "parent": parent.info.run_id,
            "child": child.info.run_id, "model": model, "version": str(version)}  # fmt: skip


def shoot_kedro_viz(browser: Chromium, url: str, out: Path) -> None:
    node = "document.querySelectorAll('.pipeline-node').length > 0"
    browser.open(url, node)
    # No "new feature" tour, no "Kedro-Viz x is here" banner (it cannot check PyPI offline).
    browser.js(
        "(() => { const s = JSON.parse(localStorage.getItem('KedroViz') || '{}');"
        " s.showFeatureHints = false; localStorage.setItem('KedroViz', JSON.stringify(s)); })()"
    )
    browser.open(url, node)
    browser.js(
        "[...document.querySelectorAll('button')].filter(b => b.textContent.trim() === 'Dismiss')"
        ".forEach(b => b.click())"
    )
    browser.pump(2)
    browser.screenshot(out / "kedro_viz_lineage.png")


def shoot_mlflow(browser: Chromium, ui: str, ids: dict[str, str], out: Path) -> None:
    exp = ids["exp"]
    browser.open(f"{ui}/#/experiments/{exp}/runs", browser.has_text("__default__"))
    # The classic-ML view of the UI, without the assistant side panel, as a user would set it.
    browser.js(
        "(() => { const s = (k, v) => localStorage.setItem(k, JSON.stringify(v));"
        " s('mlflow.workflowType_v1', 'machine_learning'); s('mlflow.assistant.panelOpen_v1', false);"
        " s('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', true); })()"
    )
    browser.open(f"{ui}/#/experiments/{exp}/runs", browser.has_text("__default__"))
    browser.js(  # expand the parent run to show its nested training run
        "document.querySelector('button[data-component-id*=\"runnamecellrenderer\"]').click()"
    )
    browser.pump(3)
    browser.screenshot(out / "mlflow_runs_nested.png")

    browser.open(f"{ui}/#/experiments/{exp}/runs/{ids['parent']}", browser.has_text("Child runs"))
    browser.js("document.querySelector('input[placeholder=\"Search metrics\"]').focus()")
    browser.call("Input.insertText", text=".duration_s")
    browser.pump(3)
    browser.screenshot(out / "mlflow_run_node_metrics.png")

    browser.open(f"{ui}/#/experiments/{exp}/runs/{ids['child']}", browser.has_text("Parent run"))
    browser.screenshot(out / "mlflow_training_child_run.png")

    browser.open(f"{ui}/#/models", browser.has_text(ids["model"]))
    browser.js(  # a one-time "new Model Registry UI" announcement
        "[...document.querySelectorAll('[role=dialog] button')]"
        ".filter(b => b.getAttribute('aria-label') === 'Close').forEach(b => b.click())"
    )
    browser.pump(2)
    browser.screenshot(out / "mlflow_registered_models.png")

    version_url = f"{ui}/#/models/{ids['model']}/versions/{ids['version']}"
    browser.open(version_url, browser.has_text("Aliases"))
    browser.screenshot(out / "mlflow_model_version_staging.png")


def shoot_data_docs(browser: Chromium, base: str, docs: Path, out: Path) -> None:
    # The raw-data tier-1 result with the most expectations (the biggest page), else any result.
    pages = list(docs.glob("validations/raw_tier1*/**/*.html")) or list(
        docs.glob("validations/**/*.html")
    )
    if not pages:
        raise RuntimeError(f"no validation results under {docs}/validations")
    page = max(pages, key=lambda p: p.stat().st_size).relative_to(docs).as_posix()
    browser.open(f"{base}/{page}", browser.has_text("Statistics"))
    browser.screenshot(out / "ge_data_docs_validation.png")


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", type=Path, help="project directory after a finished kedro run")
    parser.add_argument("--out", type=Path, default=here / "images", help="folder for the PNGs")
    parser.add_argument("--chromium", default="chromium", help="Chromium binary")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    project = args.project.resolve()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    db = project / "mlflow.db"
    docs = project / "data/08_reporting/data_docs"
    for path, how in (
        (db, "kedro run"),
        (docs / "index.html", "kedro run --pipelines=data_quality"),
    ):
        if not path.is_file():
            parser.error(f"{path} does not exist; run `{how}` in {project} first")
    tracking_uri = f"sqlite:///{db}"
    ids = latest_run(project, tracking_uri)
    logger.info(
        "run %s (child %s), %s v%s", ids["parent"], ids["child"], ids["model"], ids["version"]
    )
    bin_dir = Path(sys.executable).parent
    base_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}

    with (
        tempfile.TemporaryDirectory(prefix="sensorops-shots-") as tmp_name,
        contextlib.ExitStack() as stack,
    ):
        tmp = Path(tmp_name)
        viz_port, ui_port, docs_port = free_port(), free_port(), free_port()
        viz_env = {
            **base_env,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "KEDRO_DISABLE_TELEMETRY": "true",
        }
        viz_cmd = [str(bin_dir / "kedro"), "viz", "run", "--host", "127.0.0.1",
                   "--port", str(viz_port), "--no-browser"]  # fmt: skip
        viz = stack.enter_context(serve(viz_cmd, project, tmp / "viz.log", viz_env))
        ui_env = {**base_env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                  "MLFLOW_DISABLE_TELEMETRY": "true"}  # fmt: skip
        ui_cmd = [str(bin_dir / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(ui_port),
                  "--workers", "1", "--backend-store-uri", tracking_uri,
                  "--artifacts-destination", str(tmp / "artifacts")]  # fmt: skip
        ui = stack.enter_context(serve(ui_cmd, tmp, tmp / "mlflow.log", ui_env))
        docs_cmd = [sys.executable, "-m", "http.server", str(docs_port), "--bind", "127.0.0.1",
                    "--directory", str(docs)]  # fmt: skip
        docs_srv = stack.enter_context(serve(docs_cmd, tmp, tmp / "docs.log"))

        browser = Chromium(tmp / "chromium", args.chromium)
        stack.callback(browser.close)
        wait_http(f"http://127.0.0.1:{viz_port}/api/main", viz, tmp / "viz.log")
        shoot_kedro_viz(browser, f"http://127.0.0.1:{viz_port}/?pipeline_id=__default__", out)
        wait_http(f"http://127.0.0.1:{ui_port}/health", ui, tmp / "mlflow.log")
        shoot_mlflow(browser, f"http://127.0.0.1:{ui_port}", ids, out)
        wait_http(f"http://127.0.0.1:{docs_port}/index.html", docs_srv, tmp / "docs.log")
        shoot_data_docs(browser, f"http://127.0.0.1:{docs_port}", docs, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
