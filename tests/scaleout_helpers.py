"""Helpers of the scale-out tests and bench: pickup files and ``cf serve`` workers as processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from retention_helpers import make_wav


def drop_calls(directory: Path, n: int, *, seconds: float = 2.0, start: datetime, prefix: str = "call") -> list[str]:
    """``n`` calls into a pickup directory the way a producer must: the JSON marker last, renamed."""
    directory.mkdir(parents=True, exist_ok=True)
    stems = []
    for i in range(n):
        stem = f"{prefix}-{i:04d}"
        make_wav(directory / f"{stem}.wav", seconds, two_sided=False)
        meta = {"advisor_id": f"A{i % 7}", "started_at": (start + timedelta(minutes=i)).isoformat(),
                "direction": "in", "customer_ids": [f"K-{i}"]}
        tmp = directory / f".{stem}.json.tmp"
        tmp.write_text(json.dumps(meta), encoding="utf-8")
        tmp.replace(directory / f"{stem}.json")
        stems.append(stem)
    return stems


def start_worker(config: Path, port: int, *, now: str | None, log: Path,
                 crash_at: str | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CF_CONFIG": str(config)}
    if now:
        env["CF_NOW"] = now
    for k in ("CF_USER", "CF_PASSWORD", "CF_TOKEN", "CF_TEST_CRASH_AT"):
        env.pop(k, None)
    if crash_at:
        env["CF_TEST_CRASH_AT"] = crash_at  # the test kit ends the process there (os._exit, as if killed)
    out = open(log, "ab")  # noqa: SIM115 - the process owns it
    proc = subprocess.Popen([sys.executable, "-m", "cfcore", "serve", "--port", str(port), "--log-level", "warning"],
                            env=env, stdout=out, stderr=subprocess.STDOUT)
    proc.log_path = log  # type: ignore[attr-defined]  # for the failure message of a test
    return proc


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
