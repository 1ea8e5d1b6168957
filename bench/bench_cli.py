"""CPU of everyday ``cf`` commands, whole process (interpreter start, imports, config, plugins,
catalog, login, the command), against two baselines of the same run: ``python -c pass`` (the
interpreter) and ``python -c "import sqlalchemy"`` (the least a command that reads the catalog
imports). Target (issue 14 item 6): an everyday command at most 0.5 s CPU.

A fresh SQLite deployment (``cf init``) with an administrator, a DPO and one ingested recording.
The commands log in with an API token (``CF_TOKEN`` of the DPO): a password login adds one Argon2id
hash by design (default parameters, ~0.3-0.45 s), shown once for comparison. CPU is user + system
time of the child process (``os.wait4``), the median of ``--runs`` runs after one warm-up run.
``PYTHONDONTWRITEBYTECODE`` is removed from the children's environment (an installed CallFort has
its ``.pyc`` files; without them every run compiles the sources again). Wall time is printed too
but depends on the load of the (shared) machine.

    .venv/bin/python bench/bench_cli.py [--runs 7] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CF = str(VENV_BIN / "cf")
PASSWORD = "correct horse battery staple"
TARGET = 0.5


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return usage.ru_utime + usage.ru_stime, wall


def cf(args: list[str], env: dict[str, str]) -> str:
    return subprocess.run([CF, *args], env=env, check=True, capture_output=True, text=True).stdout


def setup(tmp: Path) -> tuple[dict[str, str], dict[str, str], dict[str, str], str]:
    """(no login, password login, token login) environments and the id of one recording."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CF_") and k != "PYTHONDONTWRITEBYTECODE"}
    cf(["init", str(tmp / "d")], base)
    env = {**base, "CF_CONFIG": str(tmp / "d" / "callfort.toml")}
    for user, role in (("ada", "administrator"), ("dora", "dpo")):  # the first holder of each role
        cf(["users", "add", user, "--role", role, "--bootstrap"], {**env, "CF_NEW_PASSWORD": PASSWORD})
    admin = {**env, "CF_USER": "ada", "CF_PASSWORD": PASSWORD}
    wav = tmp / "call.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x00\xff\xff" * 8000 * 3)
    rec = json.loads(cf(["ingest", str(wav), "--agent", "A100", "--customer-number", "+4930123456",
                         "--consent-at", "0", "--json"], admin))
    rec_id = rec.get("id") or rec.get("recording_id")
    login = {**env, "CF_USER": "dora", "CF_PASSWORD": PASSWORD}
    token = re.search(r'"(cft_[^"]+)"', cf(["users", "token", "--json"], login)).group(1)  # type: ignore[union-attr]
    return env, login, {**env, "CF_TOKEN": token}, str(rec_id)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cf-bench-cli-"))
    env, login, by_token, rec_id = setup(tmp)
    py = sys.executable
    cases = [
        ("`python -c pass` (baseline)", [py, "-c", "pass"], env),
        ("`python -c \"import sqlalchemy\"` (baseline)", [py, "-c", "import sqlalchemy"], env),
        ("`cf --help`", [CF, "--help"], env),
        ("`cf recordings list`", [CF, "recordings", "list"], by_token),
        ("`cf recordings show ID`", [CF, "recordings", "show", rec_id], by_token),
        ("`cf audit list --limit 20`", [CF, "audit", "list", "--limit", "20"], by_token),
        ("`cf approvals list`", [CF, "approvals", "list"], by_token),
        ("`cf users show`", [CF, "users", "show"], by_token),
        ("`cf calls list`", [CF, "calls", "list"], by_token),
        ("`cf plugins` (no login)", [CF, "plugins"], env),
        ("`cf recordings list` (password login, Argon2id)", [CF, "recordings", "list"], login),
        ("`cf audit verify`", [CF, "audit", "verify"], by_token),
        ("`cf doctor` (no login; real checks)", [CF, "doctor"], env),
    ]
    rows = []
    base_pass = base_sa = 0.0
    for label, argv, e in cases:
        measure(argv, e)  # warm-up: .pyc files, page cache
        got = [measure(argv, e) for _ in range(args.runs)]
        cpu = statistics.median(c for c, _ in got)
        wall = statistics.median(w for _, w in got)
        if "python -c pass" in label:
            base_pass = cpu
        elif "import sqlalchemy" in label:
            base_sa = cpu
        rows.append((label, cpu, wall))
        ratio = f"{cpu / base_sa:4.1f}x sqlalchemy" if base_sa else ""
        print(f"{label:<52} cpu {cpu * 1000:6.0f} ms   wall {wall * 1000:6.0f} ms   {ratio}", flush=True)
    if args.write:
        table = ["| command | CPU (median) | × `import sqlalchemy` | wall (median) |", "| --- | --- | --- | --- |"]
        table += [f"| {label} | {cpu * 1000:.0f} ms | {cpu / base_sa:.1f} | {wall * 1000:.0f} ms |"
                  for label, cpu, wall in rows]
        load = os.getloadavg()[0]
        section = "\n".join([
            "## CLI", "",
            f"`bench/bench_cli.py --runs {args.runs}` ({datetime.now(UTC):%Y-%m-%d}): whole-process CPU (user + "
            f"system) of everyday commands on a fresh SQLite deployment with one recording, median after a "
            f"warm-up run; the commands log in with an API token (`CF_TOKEN`) unless the row says otherwise. "
            f"Target: {TARGET:.1f} s CPU. Baselines of the same run: the interpreter alone "
            f"({base_pass * 1000:.0f} ms) and `import sqlalchemy` ({base_sa * 1000:.0f} ms), which every command "
            f"that reads the catalog pays. Machine: {cpu_model()}, {os.cpu_count()} cores shared with other jobs "
            f"(load average {load:.1f} at the end), Python {platform.python_version()}. CPU time rises with the "
            f"machine's load too (shared caches): compare with the baselines of the same run. Wall time depends "
            f"on the load.",
            "", *table, "",
        ])
        path = ROOT / "BENCHMARKS.md"
        text = path.read_text()
        if re.search(r"(?m)^## CLI\n", text):  # in place, so that the sections keep their order
            text = re.sub(r"(?ms)^## CLI\n.*?(?=^## |\Z)", lambda _: section + "\n", text)
        else:
            text = text.rstrip() + "\n\n" + section
        path.write_text(text)


if __name__ == "__main__":
    main()
