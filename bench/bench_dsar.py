"""Art. 15 report on a 1-million-recording catalogue on PostgreSQL.

Creates a dedicated database (``cf_bench_dsar_<pid>``), lets CallFort create its schema, bulk-loads
a catalogue with COPY (not through ingest: no audio, no stores), then times the report on one
person with stored and deleted recordings: the collection alone (the catalog queries), and the
whole ``produce_report`` per format (access check, collection, rendering, audit entry). The
database is dropped at the end (``--keep`` keeps it).

    .venv/bin/python bench/bench_dsar.py [--recordings 1000000] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Shape of the catalogue (defaults): 10 % of the recordings purged (tombstones), 60 % two-sided
(consent, two segments, two media objects), 150 000 customers (about 6 calls each), 60 % of the
calls also carry the phone number's pseudonym, one archive audit entry per recording plus purge
entries and 300 000 reads. The person asked about has 20 stored and 8 deleted recordings with
accesses.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from typing import Any

from machine import cpu_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from cfcore.app import App  # noqa: E402
from cfcore.clock import FrozenClock  # noqa: E402
from cfcore.config import load_config  # noqa: E402
from cfcore.defaults.retention_rules import add_years  # noqa: E402
from cfcore.testing import write_deployment  # noqa: E402
from hookspecs.types import Actor, RequestContext  # noqa: E402

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
EPOCH = datetime(2019, 1, 1, tzinfo=UTC)
SPAN = (NOW - timedelta(days=1) - EPOCH).total_seconds()
TARGET_CUSTOMER = "K-BENCH-4711"
TARGET_NUMBER = "+49 30 4711000"
USERS = [(f"user{i:02d}", role) for i, role in enumerate(
    ["supervisor"] * 10 + ["qa_reviewer"] * 10 + ["compliance"] * 5 + ["dpo"] * 2 + ["auditor"] * 3)]


def ts(at: datetime) -> str:
    return at.isoformat()


class Copier:
    """Streams tab-separated rows into ``COPY table (cols) FROM STDIN`` in chunks, on a connection
    of its own (one COPY at a time per connection); committed at ``close``."""

    def __init__(self, conninfo: str, table: str, cols: str) -> None:
        self.conn = psycopg.connect(conninfo)
        self.cm = self.conn.cursor().copy(f"COPY {table} ({cols}) FROM STDIN")
        self.copy = self.cm.__enter__()
        self.buf = io.StringIO()
        self.n = 0
        self.rows = 0

    def row(self, *values: Any) -> None:
        self.buf.write("\t".join("\\N" if v is None else ("t" if v is True else "f" if v is False else str(v))
                                 for v in values))
        self.buf.write("\n")
        self.n += 1
        self.rows += 1
        if self.n >= 50000:
            self.flush()

    def flush(self) -> None:
        if self.n:
            self.copy.write(self.buf.getvalue().encode())
            self.buf = io.StringIO()
            self.n = 0

    def close(self) -> int:
        self.flush()
        self.cm.__exit__(None, None, None)
        self.conn.commit()
        self.conn.close()
        return self.rows


def fake_pseudonym(kind: str, n: int) -> str:
    return hashlib.sha256(f"bench:{kind}:{n}".encode()).hexdigest()


def load(conninfo: str, app: App, n_recordings: int, n_customers: int, rng: random.Random) -> dict[str, Any]:
    from cfcore.subjects import pseudonym

    target_c = pseudonym(app, "customer_id", TARGET_CUSTOMER)
    target_n = pseudonym(app, "number", TARGET_NUMBER)
    t0 = time.perf_counter()
    rec = Copier(conninfo, "recordings", "id, site, source, pbx_call_id, advisor_id, direction, started_at, ended_at, "
                 "duration, channels, sample_rate, codec, two_sided, state, retention_class, retention_until, "
                 "retention_rule, legal_hold, created_at")
    subj = Copier(conninfo, "recording_subjects", "recording_id, pseudonym, kind")
    cons = Copier(conninfo, "consents", "recording_id, given_at, \"offset\", by_user, method")
    segs = Copier(conninfo, "mode_segments", "recording_id, idx, start, \"end\", mode")
    media = Copier(conninfo, "media_objects", "recording_id, channel, store, key, size, sha256, plain_size, plain_sha256, codec")
    keys = Copier(conninfo, "data_keys", "recording_id, kek_id, wrapped, created_at, destroyed_at")
    tomb = Copier(conninfo, "tombstones", "recording_id, site, source, direction, two_sided, started_at, ended_at, "
                  "retention_class, rule, reason, deleted_at, subject_pseudonyms, ciphertext_sha256, approval_id")
    tsub = Copier(conninfo, "tombstone_subjects", "recording_id, pseudonym")
    audit = Copier(conninfo, "audit_log", "seq, at, \"user\", host, ip, function, action, target_kind, target_id, "
                   "outcome, approval_id, detail, prev_hash, hash")
    seq = 0
    h = "0" * 64

    def audit_row(at: datetime, user: str, action: str, rec_id: str, detail: str = "{}") -> None:
        nonlocal seq
        seq += 1
        audit.row(seq, ts(at), user, "pc-bench", "10.0.0.1", "bench", action, "recording", rec_id, "ok", None,
                  detail, h, h)

    target_live: list[str] = []
    target_dead: list[str] = []
    # the person asked about: 20 stored and 8 deleted recordings spread over the catalogue
    special = {int(i * n_recordings / 28) + 7: ("dead" if i % 7 == 3 or i >= 23 else "live") for i in range(28)}
    for i in range(n_recordings):
        rid = f"{0x0190000000 + i:012x}{rng.getrandbits(80):020x}"
        started = EPOCH + timedelta(seconds=rng.random() * SPAN)
        duration = round(30 + rng.random() * 900, 3)
        ended = started + timedelta(seconds=duration)
        two = rng.random() < 0.6
        role = special.get(i)
        if role == "live":
            started = NOW - timedelta(days=400 + 30 * len(target_live))
        elif role == "dead":
            started = datetime(2019, 1 + len(target_dead), 5, 10, tzinfo=UTC)
        ended = started + timedelta(seconds=duration)
        purged = role == "dead" or (role is None and rng.random() < 0.10)
        cls, rule = ("mifid", "mifid-5y") if two else ("advisor-only", "advisor-only-30d")
        until = add_years(ended, 5) if two else ended + timedelta(days=30)
        advisor = f"A{rng.randrange(100):03d}"
        rec.row(rid, "site-a" if i % 2 else "site-b", "asterisk", None if purged else f"{1700000000 + i}.{i % 97}",
                "-" if purged else advisor, "in" if rng.random() < 0.7 else "out", ts(started), ts(ended), duration,
                2 if two else 1, 8000, "pcm_s16le", two, "purged" if purged else "archived", cls, ts(until), rule,
                False, ts(started))
        if role:
            pseudos = [target_c, target_n] if role == "live" or len(target_dead) % 2 == 0 else [target_n]
        else:
            cust = rng.randrange(n_customers)
            pseudos = [fake_pseudonym("customer_id", cust)] + (
                [fake_pseudonym("number", cust)] if rng.random() < 0.6 else [])
        shas = [hashlib.sha256(f"{rid}:{c}".encode()).hexdigest() for c in (["advisor", "customer"] if two else ["advisor"])]
        deleted_at = until if until < NOW else NOW - timedelta(days=1)
        if purged:
            tomb.row(rid, "site-a", "asterisk", "in", two, ts(started), ts(ended), cls, rule, "retention-expired",
                     ts(deleted_at), json.dumps(pseudos), json.dumps(shas), None)
            for p in pseudos:
                tsub.row(rid, p)
            keys.row(rid, "kek-1", None, ts(started), ts(deleted_at))
        else:
            for p, kind in zip(pseudos, ("customer_id", "number"), strict=False):
                subj.row(rid, p, kind)
            if two:
                cons.row(rid, ts(started + timedelta(seconds=5)), 5.0, advisor.lower(), "web")
                segs.row(rid, 0, 0.0, 5.0, "advisor_only")
                segs.row(rid, 1, 5.0, duration, "both")
            else:
                segs.row(rid, 0, 0.0, duration, "advisor_only")
            for ch, sha in zip(["advisor", "customer"], shas, strict=False):
                media.row(rid, ch, "primary", f"{started:%Y/%m}/{rid}.{ch}.cfe", 16000 * int(duration),
                          sha, 16000 * int(duration), sha, "pcm_s16le")
            keys.row(rid, "kek-1", "\\\\x" + "ab" * 60, ts(started), None)
        audit_row(started + timedelta(seconds=duration + 1), "system", "recording.archive", rid)
        if purged:
            audit_row(deleted_at, "system", "recording.purge", rid)
        reads = 2 if role == "live" else (1 if rng.random() < 0.3 else 0)
        for _ in range(reads):
            user = USERS[rng.randrange(len(USERS))][0]
            audit_row(min(NOW, started + timedelta(days=rng.randrange(1, 300))), user,
                      rng.choice(["recording.show", "recording.play"]), rid)
        if role == "live":
            target_live.append(rid)
        elif role == "dead":
            target_dead.append(rid)
    counts = {name: c.close() for name, c in (("recordings", rec), ("recording_subjects", subj), ("consents", cons),
                                               ("mode_segments", segs), ("media_objects", media),
                                               ("data_keys", keys), ("tombstones", tomb),
                                               ("tombstone_subjects", tsub), ("audit_log", audit))}
    conn = psycopg.connect(conninfo)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, %s, %s)", (seq, h))
        for username, role in USERS:
            uid = hashlib.md5(username.encode()).hexdigest()  # noqa: S324 - an id, not security
            cur.execute("INSERT INTO users (id, username, disabled, failed_logins, created_at, created_by) "
                        "VALUES (%s, %s, false, 0, %s, 'bench')", (uid, username, NOW))
            cur.execute("INSERT INTO user_roles (user_id, role, granted_at) VALUES (%s, %s, %s)", (uid, role, NOW))
    conn.commit()
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("ANALYZE")
    conn.commit()
    conn.close()
    return {"counts": counts, "load_seconds": load_s, "analyze_seconds": time.perf_counter() - t1,
            "target_live": target_live, "target_dead": target_dead}


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    first_t = time.perf_counter()
    result = fn()
    first = time.perf_counter() - first_t
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return first, runs, result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recordings", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=150_000)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--pg", default=os.environ.get("CF_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    args = ap.parse_args(argv)

    dbname = f"cf_bench_dsar_{os.getpid()}"
    admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {dbname}"))
    base = args.pg.rsplit("/", 1)[0]
    url = f"{base}/{dbname}"
    print(f"database {dbname}; machine: {' '.join(platform.uname())}; CPU: {cpu_model()}, {os.cpu_count()} cores")
    try:
        with tempfile.TemporaryDirectory(prefix="cf-bench-dsar-") as tmp:
            cfg_path = write_deployment(Path(tmp) / "deploy", url)
            app = App(load_config(cfg_path), clock=FrozenClock(NOW))
            conninfo = url.replace("postgresql+psycopg://", "postgresql://")
            info = load(conninfo, app, args.recordings, args.customers, random.Random(4711))
            with psycopg.connect(conninfo) as conn:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
                    size = cur.fetchone()[0]  # type: ignore[index]
            rows = sum(info["counts"].values())
            print(f"loaded {rows:,} rows in {info['load_seconds']:.1f} s (+ ANALYZE {info['analyze_seconds']:.1f} s), "
                  f"database {size}")
            for name, n in info["counts"].items():
                print(f"  {name:<20} {n:>10,}")

            from cfcore.dsar import produce_report
            from cfcore.dsar.collect import build_report, subject_pseudonyms

            dpo = RequestContext(actor=Actor(user_id="bench-dpo", username="bench-dpo", roles=frozenset({"dpo"})),
                                 host="pc-bench", ip="127.0.0.1", function="bench")
            pseudos = subject_pseudonyms(app, [TARGET_CUSTOMER], [TARGET_NUMBER])
            first, runs, report = timed(lambda: build_report(app, pseudos, lang="de", customer_ids=[TARGET_CUSTOMER],
                                                             numbers=[TARGET_NUMBER]), args.repeat)
            ok = ({r["id"] for r in report["recordings"]} == set(info["target_live"])
                  and {r["id"] for r in report["deleted"]} == set(info["target_dead"]))
            print(f"person: {len(report['recordings'])} stored + {len(report['deleted'])} deleted recordings "
                  f"({'as loaded' if ok else 'MISMATCH'})")
            results: list[tuple[str, float, float, float]] = [
                ("collect (catalog queries, rules, texts)", first, statistics.median(runs), max(runs))]
            for fmt in ("json", "html", "pdf"):
                def run(fmt: str = fmt) -> Any:
                    return produce_report(app, dpo, customer_ids=[TARGET_CUSTOMER], numbers=[TARGET_NUMBER],
                                          fmt=fmt, lang="de")
                f1, rs, (data, _) = timed(run, args.repeat)
                results.append((f"produce_report {fmt} ({len(data) / 1024:.0f} KiB, audited)", f1,
                                statistics.median(rs), max(rs)))
            print("\n| what | first call | median | max |\n| --- | --- | --- | --- |")
            for what, f1, med, mx in results:
                print(f"| {what} | {f1 * 1000:.0f} ms | {med * 1000:.0f} ms | {mx * 1000:.0f} ms |")
            worst = max(mx for _, _, _, mx in results)
            print(f"\nslowest report: {worst * 1000:.0f} ms ({'under' if worst < 1 else 'OVER'} one second)")
            app.close()
            return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept database {dbname}")
        else:
            with admin.connect() as c:
                c.execute(text(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)"))
        admin.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
