"""CPU of everyday ``cf`` commands, whole process (interpreter start, imports, config, catalog,
login, the command), against two baselines of the same run: ``python -c pass`` and ``cf --help``.

A fresh SQLite deployment (``cf init``) with one DPO. CPU is user + system time of the child
process (``os.wait4``), the median of ``--runs`` runs after one warm-up run (``.pyc`` written);
wall time is printed too but depends on the machine's load. A password login pays Argon2id by
design (the default parameters, ~0.3 s); ``CF_TOKEN`` logins show the command without it.

    .venv/bin/python bench/bench_cli.py [--runs 5] [--write]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CF = str(VENV_BIN / "cf")
PASSWORD = "correct horse battery staple"


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return usage.ru_utime + usage.ru_stime, wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cf-bench-cli-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("CF_")}
    subprocess.run([CF, "init", str(tmp / "d")], env=base, check=True, capture_output=True)
    env = {**base, "CF_CONFIG": str(tmp / "d" / "callfort.toml")}
    subprocess.run([CF, "users", "add", "dora", "--role", "dpo", "--bootstrap"], check=True, capture_output=True,
                   env={**env, "CF_NEW_PASSWORD": PASSWORD})
    login = {**env, "CF_USER": "dora", "CF_PASSWORD": PASSWORD}
    token = subprocess.run([CF, "users", "token", "--json"], env=login, check=True, capture_output=True,
                           text=True).stdout
    token = re.search(r'"(cft_[^"]+)"', token).group(1)  # type: ignore[union-attr]
    by_token = {**env, "CF_TOKEN": token}
    cases = [
        ("`python -c pass` (baseline)", [sys.executable, "-c", "pass"], env),
        ("`cf --help` (baseline)", [CF, "--help"], env),
        ("`cf recordings list` (password login)", [CF, "recordings", "list"], login),
        ("`cf recordings list` (CF_TOKEN)", [CF, "recordings", "list"], by_token),
        ("`cf calls list` (CF_TOKEN)", [CF, "calls", "list"], by_token),
        ("`cf audit verify` (CF_TOKEN)", [CF, "audit", "verify"], by_token),
        ("`cf doctor` (no login)", [CF, "doctor"], env),
    ]
    rows = []
    for label, argv, e in cases:
        measure(argv, e)  # warm-up: .pyc files
        got = [measure(argv, e) for _ in range(args.runs)]
        cpu = statistics.median(c for c, _ in got)
        wall = statistics.median(w for _, w in got)
        rows.append((label, cpu, wall))
        print(f"{label:<45} cpu {cpu * 1000:6.0f} ms   wall {wall * 1000:6.0f} ms", flush=True)
    if args.write:
        table = ["| command | CPU (median) | wall (median) |", "| --- | --- | --- |"]
        table += [f"| {label} | {cpu * 1000:.0f} ms | {wall * 1000:.0f} ms |" for label, cpu, wall in rows]
        section = "\n".join([
            "## CLI", "",
            f"`bench/bench_cli.py --runs {args.runs}`: whole-process CPU (user + system) of everyday commands on a "
            f"fresh SQLite deployment, median after a warm-up run. Machine: {cpu_model()}, {os.cpu_count()} cores "
            f"(shared), Python {platform.python_version()}. Wall time depends on the load of the shared machine.",
            "", *table, "",
        ])
        path = ROOT / "BENCHMARKS.md"
        text = path.read_text()
        text = re.sub(r"(?ms)^## CLI\n.*?(?=^## |\Z)", "", text).rstrip() + "\n\n" + section
        path.write_text(text)


if __name__ == "__main__":
    main()
