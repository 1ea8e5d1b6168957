"""``scripts/demo``'s promise: after ``cf demo``, ``cf serve`` on the demo deployment lets the
advisor hear her calls in the browser (headless Chromium, Playwright)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from webui_helpers import chromium, login, need_browser, start_serve, stop_serve

from cfcore.testing import free_tcp_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_the_demos_calls_can_be_heard_in_the_browser(tmp_path):
    need_browser()
    env = {k: v for k, v in os.environ.items() if k not in ("CF_CONFIG", "CF_USER", "CF_PASSWORD", "CF_TOKEN")}
    run = subprocess.run([sys.executable, "-m", "cfcore", "demo", "--pace", "0.3"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    assert "serve" in run.stdout and "http://127.0.0.1:8750/" in run.stdout
    config = tmp_path / "demo" / "callfort.toml"
    password = (tmp_path / "demo" / "demo-password").read_text().strip()
    port = free_tcp_port()
    proc = start_serve(config, port)
    try:
        with chromium() as browser:
            page = browser.new_page(locale="en-GB", extra_http_headers={"Accept-Language": "en-GB"})
            base = f"http://127.0.0.1:{port}"
            login(page, base, "anna", password)
            links = page.locator("a[href^='/ui/recordings/']")
            assert links.count() == 1  # anna's one call (the others are her colleagues')
            links.first.click()
            assert "both sides" in page.locator("dl.facts").inner_text()
            page.click("#play-button")
            page.wait_for_function("() => document.getElementById('audio').readyState >= 1", timeout=20000)
            page.evaluate("() => { const a = document.getElementById('audio'); a.muted = true; return a.play(); }")
            page.wait_for_function("() => document.getElementById('audio').currentTime > 0.2", timeout=20000)
            assert page.locator("canvas.wave").count() == 2
            browser.close()
    finally:
        err = stop_serve(proc)
    assert "Traceback" not in err, err[-3000:]
