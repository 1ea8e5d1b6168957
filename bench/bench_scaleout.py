"""Scale-out: the same pickup backlog archived by one ``cf serve`` worker and by two, same run.

    .venv/bin/python bench/bench_scaleout.py [CALLS] [SECONDS_PER_CALL] [ROUNDS]

Each round builds a fresh deployment on PostgreSQL (a new schema on 127.0.0.1:5432) with a local
store, starts the workers (``cf serve`` processes, all jobs on) with an empty pickup directory,
waits until each answers ``/health``, then moves CALLS prepared calls into the directory
(``<name>.wav`` then ``<name>.json``, each renamed into place) and times until the work queue
reports every call done. What is timed is the real path: the scan job (on one worker, leased)
queues the files; every worker claims calls (``SELECT … FOR UPDATE SKIP LOCKED``), reads the WAV,
encrypts it, writes the store, commits catalog row + audit entry, removes the files.
Rounds alternate 1 worker / 2 workers; medians are printed. The ratio is the speed-up of two
workers over one on the same machine (ideal 2.0 on 2 free cores).
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import httpx  # noqa: E402
from machine import cpu_model  # noqa: E402
from scaleout_helpers import drop_calls, start_worker, stop_worker  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from cfcore.testing import PG_ADMIN_URL, free_tcp_port, write_deployment  # noqa: E402


def _schema_url(schema: str) -> str:
    return f"{PG_ADMIN_URL.split('?')[0]}?options=-csearch_path%3D{schema}"


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(workers: int, calls: int, seconds: float, staged: Path, tmp: Path) -> tuple[float, float]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    schema = f"bench_{secrets.token_hex(5)}"
    with admin.connect() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    root = tmp / schema
    drop = root / "pickup"
    drop.mkdir(parents=True)
    cfg = write_deployment(root / "deploy", _schema_url(schema),
                           f'\n[server]\nlease_seconds = 10\n\n[capture]\npickup_dir = "{drop}"\n')
    from cfcore.app import App

    App.open(cfg).close()  # the schema, before the workers race for it
    ports = [free_tcp_port() for _ in range(workers)]
    procs = [start_worker(cfg, p, now=None, log=root / f"w{i}.log") for i, p in enumerate(ports)]
    engine = create_engine(_schema_url(schema))
    try:
        for p, proc in zip(ports, procs, strict=True):
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, (root / "w0.log").read_text()[-2000:]
                try:
                    if httpx.get(f"http://127.0.0.1:{p}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "worker did not come up"
                time.sleep(0.2)
        cpu0 = sum(_cpu(p.pid) for p in procs)
        t0 = time.perf_counter()
        for f in sorted(staged.glob("*.wav")):
            shutil.copy(f, drop / f".{f.name}.tmp")
            (drop / f".{f.name}.tmp").replace(drop / f.name)
        for f in sorted(staged.glob("*.json")):
            shutil.copy(f, drop / f".{f.name}.tmp")
            (drop / f".{f.name}.tmp").replace(drop / f.name)
        while True:
            with engine.connect() as c:
                done = c.execute(text("SELECT count(*) FROM work_items WHERE state = 'done'")).scalar_one()
                recs = c.execute(text("SELECT count(*) FROM recordings")).scalar_one()
            if done == calls:
                break
            for proc in procs:
                assert proc.poll() is None, "a worker died"
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        cpu = sum(_cpu(p.pid) for p in procs) - cpu0
        assert recs == calls, (recs, calls)
        return elapsed, cpu
    finally:
        for proc in procs:
            stop_worker(proc)
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 120
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.1f}")
    print(f"backlog: {calls} mono calls of {seconds:.0f} s (8 kHz PCM), PostgreSQL catalog, local store")
    results: dict[int, list[float]] = {1: [], 2: []}
    cpus: dict[int, list[float]] = {1: [], 2: []}
    keep = os.environ.get("BENCH_KEEP")  # a directory: keep the workers' logs there
    with tempfile.TemporaryDirectory(prefix="cf-bench-scaleout-") as t:
        tmp = Path(keep) if keep else Path(t)
        staged = tmp / "staged"
        drop_calls(staged, calls, seconds=seconds, start=datetime.now(UTC) - timedelta(days=1))
        for r in range(rounds):
            for workers in (1, 2) if r % 2 == 0 else (2, 1):
                el, cpu = one_round(workers, calls, seconds, staged, tmp)
                results[workers].append(el)
                cpus[workers].append(cpu)
                print(f"round {r + 1}: {workers} worker(s): {el:.2f} s ({calls / el:.1f} calls/s; workers' CPU "
                      f"{1000 * cpu / calls:.0f} ms per call; load average {os.getloadavg()[0]:.1f})", flush=True)
    one, two = statistics.median(results[1]), statistics.median(results[2])
    print(f"median 1 worker: {one:.2f} s ({calls / one:.1f} calls/s)")
    print(f"median 2 workers: {two:.2f} s ({calls / two:.1f} calls/s)")
    print(f"median workers' CPU per call: 1 worker {1000 * statistics.median(cpus[1]) / calls:.0f} ms, "
          f"2 workers {1000 * statistics.median(cpus[2]) / calls:.0f} ms (the same: no work done twice, no spinning)")
    print(f"speed-up 2 vs 1: {one / two:.2f}x  (per-round ratios: "
          f"{', '.join(f'{a / b:.2f}' for a, b in zip(results[1], results[2], strict=True))})")


if __name__ == "__main__":
    main()
