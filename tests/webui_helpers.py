"""Helpers of the web UI tests: a deployment served by ``cf serve`` (a real process, real
uvicorn) with the simulated Asterisk as its capture source, and headless Chromium (Debian's
``/usr/bin/chromium``) driven by Playwright. axe-core comes from ``.cache/axe-core`` (npm pack,
done by ``WITH_TESTS=1 scripts/setup``); screenshots go to ``test-artifacts/webui/``."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CF_TEST_CHROMIUM", "/usr/bin/chromium")
AXE = ROOT / ".cache" / "axe-core" / "package" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts" / "webui"
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]


def need_browser() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/system-deps (Debian package chromium)")
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run WITH_TESTS=1 scripts/setup (npm pack axe-core)")


class SimThread:
    """The simulated Asterisk on an event loop of its own thread (the tests are synchronous)."""

    def __init__(self, spool: Path) -> None:
        from cfcore.sim.asterisk import AsteriskSim

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="asterisk-sim", daemon=True)
        self.thread.start()
        self.sim = self.run(self._make(AsteriskSim, spool))

    @staticmethod
    async def _make(cls: Any, spool: Path) -> Any:
        sim = cls(monitor_root=spool)
        await sim.start()
        return sim

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def go() -> Any:
            return fn(*args, **kwargs)

        return self.run(go())

    def stop(self) -> None:
        try:
            self.run(self.sim.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def start_serve(deployment: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "CF_CONFIG": str(deployment)}
    for k in ("CF_USER", "CF_PASSWORD", "CF_TOKEN"):
        env.pop(k, None)
    proc = subprocess.Popen([sys.executable, "-m", "cfcore", "serve", "--port", str(port), "--log-level", "warning"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"cf serve exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_serve(proc)
    raise AssertionError("cf serve did not come up")


def stop_serve(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err or ""


def wait(predicate: Any, timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def axe(page: Any, name: str) -> list[dict[str, Any]]:
    """Run axe-core in the page; the serious and critical violations (none expected)."""
    # evaluated by the test driver over CDP (the page's CSP forbids inline script, rightly)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Runtime.evaluate", {"expression": AXE.read_text()})
    cdp.detach()
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
           for v in result["violations"] if v["impact"] in ("serious", "critical")]
    return bad


def shot(page: Any, name: str, *, docs: bool = False) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs and os.environ.get("CF_UPDATE_SCREENSHOTS"):
        target = ROOT / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / f"{name}.png")
    return path


def login(page: Any, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/ui/**")
