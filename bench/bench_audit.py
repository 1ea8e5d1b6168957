"""Audit verification benchmark: entries verified per second, beside a raw read-and-hash baseline.

For each catalog (SQLite in a temporary directory; PostgreSQL in a database the script creates and
drops) the script appends N entries (500 per transaction, details like the purge's), then in the
same run:

- CallFort: ``AuditTrail.verify()`` (``cf audit verify``): anchor and checkpoint checks, every
  entry's keyed hash over its canonical bytes, the links, the head; with the default workers (one
  process per core) and with one worker;
- CallFort incremental: ``verify(incremental=True)``, from the newest anchor;
- raw baseline: one ``SELECT`` of every column of every entry through the DB-API cursor, and
  HMAC-SHA256 (``hmac.digest``, one C call) of ``prev_hash`` + the same canonical bytes, computed
  beforehand (so the baseline
  pays no serialisation at all), compared with the stored hash.

Usage: ``.venv/bin/python bench/bench_audit.py [--entries N] [--postgres URL | --no-postgres] [--no-write]``
(default PostgreSQL: ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``). Writes the section
"Audit verification" of BENCHMARKS.md unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import hmac
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402
from pgdb import own_database  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from cfcore.app import App  # noqa: E402
from cfcore.audit import canonical  # noqa: E402
from cfcore.authority import SYSTEM  # noqa: E402
from cfcore.clock import FrozenClock  # noqa: E402
from cfcore.db.models import AuditEntry  # noqa: E402
from cfcore.testing import write_deployment  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def fill(app: App, n: int, clock: FrozenClock) -> None:
    per = 500
    for b in range(0, n, per):
        with app.catalog.session() as s:
            for _ in range(b, min(n, b + per)):
                app.audit.append(s, SYSTEM, "recording.purge", "recording", secrets.token_hex(16), "ok", {
                    "reason": "retention-expired", "rule": "mifid-5y", "deleted_at": NOW, "key_destroyed": True,
                    "ciphertext_sha256": [secrets.token_hex(32)], "subjects": 1, "approval_id": None,
                    "row_digest": secrets.token_hex(32)})
        clock.advance(1)


def raw_baseline(app: App) -> tuple[float, int]:
    """SELECT every column through the DB-API cursor + HMAC of the precomputed canonical bytes."""
    key = app.audit.mac_key()
    with app.catalog.session() as s:
        blobs = {e.seq: canonical(e) for e in s.scalars(select(AuditEntry))}
    cols = ", ".join(f'"{c.name}"' for c in AuditEntry.__table__.columns)
    raw = app.catalog.engine.raw_connection()
    try:
        t0 = time.perf_counter()
        cur = raw.cursor()
        cur.execute(f"SELECT {cols} FROM audit_log ORDER BY seq")  # noqa: S608 - fixed column names
        names = [d[0] for d in cur.description]
        iseq, iprev, ihash = names.index("seq"), names.index("prev_hash"), names.index("hash")
        n = 0
        while True:
            rows = cur.fetchmany(5000)
            if not rows:
                break
            for r in rows:
                body = blobs[r[iseq]]
                if not hmac.compare_digest(hmac.digest(key, r[iprev].encode() + body, "sha256").hex(), r[ihash]):
                    raise SystemExit(f"baseline: entry {r[iseq]} does not verify")
                n += 1
        wall = time.perf_counter() - t0
        cur.close()
    finally:
        raw.close()
    return wall, n




def best(fn: Any, repeat: int) -> tuple[Any, float]:
    """The fastest of ``repeat`` runs (the machine is shared: the minimum is the least disturbed)."""
    out, wall = None, float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        wall = min(wall, time.perf_counter() - t0)
    return out, wall


def run(url: str | None, n: int, work: Path, repeat: int) -> dict[str, Any]:
    drop = None
    if url:
        url, drop = own_database(url, "cf_bench_audit")
    url = url or f"sqlite:///{work / 'catalog.db'}"
    cfg = write_deployment(work / "deploy", url)
    clock = FrozenClock(NOW - timedelta(days=1))
    app = App.open(cfg, clock=clock)
    try:
        fill(app, n, clock)
        app.audit.anchor()
        app.audit.record(SYSTEM, "bench.tail", "thing", None, "ok", {})  # one entry after the anchor
        res, wall = best(lambda: app.audit.verify(), repeat)
        assert res.ok and res.checked == n + 1, res
        res1, wall1 = best(lambda: app.audit.verify(workers=1), repeat)
        assert res1.ok, res1
        inc, wall_inc = best(lambda: app.audit.verify(incremental=True), repeat)
        assert inc.ok and inc.checked == 2, inc
        (raw_wall, raw_n), _ = best(lambda: raw_baseline(app), 1)
        raw_runs = [raw_baseline(app)[0] for _ in range(repeat - 1)]
        raw_wall = min([raw_wall, *raw_runs])
    finally:
        app.close()
        if drop is not None:
            drop()
    return {"backend": "PostgreSQL" if url.startswith("postgresql") else "SQLite (WAL)", "n": n + 1,
            "rate": (n + 1) / wall, "rate1": (n + 1) / wall1, "inc_ms": wall_inc * 1e3, "raw": raw_n / raw_wall}


def write_section(text_: str) -> Path:
    path = ROOT / "BENCHMARKS.md"
    old = path.read_text(encoding="utf-8")
    section = "## Audit verification\n\n" + text_.rstrip() + "\n"
    pattern = re.compile(r"^## Audit verification\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda m: section + "\n", old, count=1) if pattern.search(old) else old.rstrip() + "\n\n" + section
    path.write_text(new.rstrip() + "\n", encoding="utf-8")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--postgres", default=PG, help="PostgreSQL server URL (a database of its own is created)")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each verification; the fastest counts")
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = ap.parse_args()

    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results = []
    for url in [None] + ([] if args.no_postgres else [args.postgres]):
        work = Path(tempfile.mkdtemp(prefix="cf-bench-audit-"))
        try:
            results.append(run(url, args.entries, work, args.repeat))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    uname = subprocess.run(["uname", "-srvm"], capture_output=True, text=True).stdout.strip()
    lines = [
        f"`bench/bench_audit.py` ({datetime.now(UTC):%Y-%m-%d}). {args.entries:,} audit entries (purge-like "
        "details, ~420 bytes of canonical JSON each) plus one after the newest anchor, verified by "
        "`AuditTrail.verify` (`cf audit verify`), beside a raw baseline in the same run: one `SELECT` of every "
        "column through the DB-API cursor and HMAC-SHA256 of `prev_hash` + the canonical bytes, computed "
        f"beforehand. Fastest of {args.repeat} runs each.",
        "",
        f"Machine: `{uname}`, CPU `{cpu_model()}`, {os.cpu_count()} cores, load average before the run {load}; "
        "the machine was shared with other work, so the ratios are steadier than the absolute figures.",
        "",
        "| catalog | CallFort verify (workers: one per core) | CallFort verify, one worker | raw SELECT + HMAC "
        "| ratio (per core) | incremental from the anchor |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(f"| {r['backend']} | {r['rate']:,.0f} entries/s | {r['rate1']:,.0f} entries/s "
                     f"| {r['raw']:,.0f} entries/s | {r['rate'] / r['raw']:.2f} ({r['rate1'] / r['raw']:.2f}) "
                     f"| {r['inc_ms']:.0f} ms |")
    lines += [
        "",
        "Reading the figures:",
        "",
        "- Before (issue 20): 15.4 k entries/s on SQLite and 15.2 k/s on PostgreSQL against 241 k/s raw (6 %): "
        "`json.dumps(sort_keys=True)` of a dict per entry and ORM rows.",
        "- Now the canonical bytes are built field by field with `json`'s own C string encoder (byte for byte "
        "the old definition: existing chains verify unchanged), the rows come straight from the DB-API cursor "
        "(a server-side cursor on PostgreSQL, the time formatted as text by the database), and the keyed hash is "
        "one `hmac.digest` call. Chains from 20,000 entries are cut into ranges checked by worker processes; "
        "the ranges are joined in order, checking each boundary link.",
        "- On a machine this loaded the extra processes gain little or lose (they share two cores with a dozen "
        "other processes); the one-worker column is the per-core cost. The incremental check (from the newest "
        "anchor) is what a frequent job runs; only the full walk finds a change before the anchor.",
    ]
    text_ = "\n".join(lines)
    print(text_)
    if not args.no_write:
        print(f"\nwritten to {write_section(text_)}")


if __name__ == "__main__":
    main()
