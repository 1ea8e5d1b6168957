"""Purge benchmark: expired recordings purged per second, beside a raw delete of the same data.

The script archives one two-sided call (``ingest_wav``: two encrypted channel objects, segments,
consent, a customer subject, a data key) and clones its catalog rows and object files into N
recordings whose retention ended (bulk inserts; the clones are like the template in every table a
purge touches). Then, in the same run on the same machine:

- CallFort: ``run_purge`` (the ``cf retention run`` / ``retention.purge`` job path): re-check of
  hold, date, rules, vetoes and store locks; state ``purging`` and a purge task; media deleted from
  the store; data key destroyed (crypto-shredding); tombstone with the pseudonymised subjects;
  catalog rows dropped; audit entries; the disposal log;
- raw baseline: the same number of clones deleted the plain way: unlink the object files (one
  directory fsync per batch) and ``DELETE`` their rows set-based, 500 recordings per transaction.

Usage: ``.venv/bin/python bench/bench_purge.py [--catalog sqlite|URL ...] [--recordings N] [--no-write]``
(``--catalog postgresql+psycopg://postgres@127.0.0.1:5432/postgres`` creates and drops a database of
its own). Writes the section "Purge" of BENCHMARKS.md unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402
from pgdb import own_database  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, insert, select  # noqa: E402

from cfcore.app import App  # noqa: E402
from cfcore.archive import object_key  # noqa: E402
from cfcore.clock import FrozenClock  # noqa: E402
from cfcore.db.models import ConsentRow, DataKey, MediaObject, ModeSegmentRow, Recording, RecordingSubject  # noqa: E402
from cfcore.ingest import ingest_wav  # noqa: E402
from cfcore.retention import run_purge  # noqa: E402
from cfcore.testing import write_deployment  # noqa: E402
from cfcore.wav import write_wav  # noqa: E402

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
STARTED = datetime(2019, 5, 1, 10, 0, tzinfo=UTC)  # MiFID 5 years: expired in 2024
CHILDREN = (ModeSegmentRow, ConsentRow, RecordingSubject, MediaObject)


def _rows(s: Any, model: Any, rec_id: str) -> list[dict[str, Any]]:
    cols = model.__table__.columns
    col = cols.recording_id if "recording_id" in cols else cols.id
    return [dict(r._mapping) for r in s.execute(select(*cols).where(col == rec_id))]


def snapshot(app: App, template: str, root: Path) -> dict[str, Any]:
    """The template's catalog rows and object files."""
    with app.catalog.session() as s:
        rec = _rows(s, Recording, template)[0]
        kids = {m: _rows(s, m, template) for m in CHILDREN}
        key = _rows(s, DataKey, template)[0]
    files = {m["key"]: (root / m["key"]).read_bytes() for m in kids[MediaObject]}
    return {"rec": rec, "kids": kids, "key": key, "files": files}


def clone(app: App, snap: dict[str, Any], n: int, root: Path) -> list[str]:
    """``n`` copies of the template (catalog rows and object files), ids in creation order."""
    rec, kids, key, files = snap["rec"], snap["kids"], snap["key"], snap["files"]
    ids = []
    base_ms = int(NOW.timestamp() * 1000) - 10 * n
    for i in range(n):
        ids.append(f"{base_ms + i:012x}{secrets.token_hex(10)}")
    for start in range(0, n, 500):
        part = ids[start:start + 500]
        with app.catalog.session() as s:
            s.execute(insert(Recording), [{**rec, "id": rid} for rid in part])
            for model, rows in kids.items():
                out = []
                for rid in part:
                    for r in rows:
                        row = {k: v for k, v in r.items() if k != "id"}
                        row["recording_id"] = rid
                        if model is MediaObject:
                            row["key"] = object_key(rid, r["channel"], STARTED)
                        out.append(row)
                if out:
                    s.execute(insert(model), out)
            s.execute(insert(DataKey), [{**key, "recording_id": rid} for rid in part])
    for rid in ids:
        for m in kids[MediaObject]:
            path = root / object_key(rid, m["channel"], STARTED)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(files[m["key"]])
    return ids


def raw_delete(app: App, ids: list[str], root: Path) -> None:
    """Baseline: unlink the files (one directory fsync per batch) and delete the rows set-based."""
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        with app.catalog.session() as s:
            keys = list(s.scalars(select(MediaObject.key).where(MediaObject.recording_id.in_(part))))
            dirs = set()
            for k in keys:
                os.unlink(root / k)
                dirs.add((root / k).parent)
            for d in dirs:
                fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
                os.fsync(fd)
                os.close(fd)
            for model in CHILDREN:
                s.execute(delete(model).where(model.recording_id.in_(part)))
            s.execute(delete(DataKey).where(DataKey.recording_id.in_(part)))
            s.execute(delete(Recording).where(Recording.id.in_(part)))




def run(url: str | None, n: int, work: Path) -> dict[str, Any]:
    drop = None
    if url and url.startswith("postgresql"):
        url, drop = own_database(url, "cf_bench_purge")
    url = url or f"sqlite:///{work / 'catalog.db'}"
    cfg = write_deployment(work / "deploy", url)
    root = work / "deploy" / "media"
    app = App.open(cfg, clock=FrozenClock(NOW))
    try:
        wav = work / "call.wav"
        write_wav(wav, [os.urandom(8000 * 2 * 5), os.urandom(8000 * 2 * 5)], 8000)
        template = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K-1"], consent_at=0.5,
                              started=STARTED)
        snap = snapshot(app, template, root)
        run_purge(app)  # purges the template itself: warms the plugin manager, stores and tables

        raw_ids = clone(app, snap, n, root)
        t0 = time.perf_counter()
        raw_delete(app, raw_ids, root)
        raw_wall = time.perf_counter() - t0

        ids = clone(app, snap, n, root)
        t0, c0 = time.perf_counter(), time.process_time()
        report = run_purge(app)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        purged = len(report.purged)
        assert purged == n, f"purged {purged} of {n}: pending {report.pending[:3]}"
        left = [p for p in root.rglob("*.cfe")]
        assert not left, f"{len(left)} object files left"
        with app.catalog.session() as s:
            states = set(s.scalars(select(Recording.state).where(Recording.id.in_(ids[:500]))))
        assert states == {"purged"}, states
        check = app.audit.verify()
        assert check.ok, check.problem
    finally:
        app.close()
        if drop is not None:
            drop()
    return {"n": n, "wall": wall, "cpu": cpu, "raw_wall": raw_wall,
            "backend": "PostgreSQL" if url.startswith("postgresql") else "SQLite (WAL, synchronous=FULL)"}


def write_section(text_: str) -> Path:
    path = ROOT / "BENCHMARKS.md"
    old = path.read_text(encoding="utf-8")
    section = "## Purge\n\n" + text_.rstrip() + "\n"
    pattern = re.compile(r"^## Purge\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda m: section + "\n", old, count=1) if pattern.search(old) else old.rstrip() + "\n\n" + section
    path.write_text(new.rstrip() + "\n", encoding="utf-8")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog", action="append", default=None,
                    help="catalog URL, or 'sqlite' for SQLite in a temporary directory (repeatable; default: sqlite)")
    ap.add_argument("--recordings", type=int, default=2000)
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = ap.parse_args()

    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results = []
    for url in args.catalog or ["sqlite"]:
        url = None if url == "sqlite" else url
        work = Path(tempfile.mkdtemp(prefix="cf-bench-purge-"))
        try:
            results.append(run(url, args.recordings, work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    uname = subprocess.run(["uname", "-srvm"], capture_output=True, text=True).stdout.strip()
    lines = [
        f"`bench/bench_purge.py` ({datetime.now(UTC):%Y-%m-%d}). {args.recordings} expired two-sided recordings "
        "(two encrypted channel objects in the local store, segments, consent, one subject, a data key), purged by "
        "`run_purge`, and the same number of clones deleted the raw way (unlink the files with one directory "
        "fsync per batch, set-based `DELETE` of the rows, 500 per transaction), in the same run.",
        "",
        f"Machine: `{uname}`, CPU `{cpu_model()}`, {os.cpu_count()} cores, load average before the run {load}; "
        "the machine was shared with other work, so the ratios are steadier than the absolute figures.",
        "",
        "| catalog | CallFort purge | raw delete (files + rows) | ratio | CallFort CPU |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        rate, raw = r["n"] / r["wall"], r["n"] / r["raw_wall"]
        lines.append(f"| {r['backend']} | {rate:,.0f} recordings/s | {raw:,.0f} recordings/s | {rate / raw:.2f} "
                     f"| {r['cpu'] / r['n'] * 1e3:.2f} ms per recording |")
    lines += [
        "",
        "Reading the figures:",
        "",
        "- Before the batched purge (issue 20): 32 recordings/s against a raw 9,189 recordings/s on SQLite (ratio "
        "0.003; 44 SQL statements and 4 commits per recording, about 30 ms of CPU each).",
        "- Now a batch (1, 2, 4, … up to 500 recordings) costs one transaction to mark it, one directory fsync per "
        "directory for its media, one transaction to shred it (set-based deletes and updates naming the batch), "
        "and one `cf_after_purge` delivery for the whole run (the `crm_soap` plugin is installed here). The two "
        "audit entries per recording (`started`, `ok` with the new `row_digest`), the tombstones and the outbox "
        "rows go in with one insert statement per batch each (`AuditTrail.append_many`, `outbox.enqueue_many`); "
        "on PostgreSQL a batch's ids are one array parameter (`= ANY(...)`), so every statement's text is the same "
        "for every batch. What stays per recording: the rule and veto hooks and the digests.",
        "- The raw baseline does none of that; the ratio is what the checks and the audit trail cost. Goal of "
        "issue 20: 1,000 recordings/s. On PostgreSQL the database server shares the machine's 2 cores with the "
        "purge.",
    ]
    text_ = "\n".join(lines)
    print(text_)
    if not args.no_write:
        print(f"\nwritten to {write_section(text_)}")


if __name__ == "__main__":
    main()
