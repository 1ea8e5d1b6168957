"""Archive benchmark: hours of audio archived per second on one core, audit appends and verifies.

Each figure stands beside a raw baseline measured in the same run on the same bytes:

- ingest (WAV parse, consent silence, AES-256-GCM in 64 KiB segments, SHA-256s, atomic fsynced
  store writes, catalog transaction, audit entry) vs. raw AES-256-GCM (one stream, ``update_into``
  a reused buffer) plus a write and fsync of the same bytes;
- audit appends per second (each in its own transaction, and 500 per transaction) and verified
  entries per second vs. raw HMAC-SHA256 (the chain's keyed hash) of the same canonical bytes.

Usage: ``.venv/bin/python bench/bench_archive.py [--catalog URL] [--minutes N] [--calls N] [--no-write]``
Writes the section "Archive" of BENCHMARKS.md unless ``--no-write``. Runs in well under a minute.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cfcore.app import App  # noqa: E402
from cfcore.audit import canonical  # noqa: E402
from cfcore.authority import SYSTEM  # noqa: E402
from cfcore.clock import FrozenClock  # noqa: E402
from cfcore.db.models import AuditEntry  # noqa: E402
from cfcore.ingest import ingest_wav  # noqa: E402
from cfcore.testing import write_deployment  # noqa: E402
from cfcore.wav import write_wav  # noqa: E402

RATE = 8000


def timed(fn):  # type: ignore[no-untyped-def]
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def raw_encrypt_and_write(data: list[bytes], directory: Path) -> None:
    """Baseline: AES-256-GCM over the same bytes with a reused buffer, then write + fsync."""
    key, nonce = os.urandom(32), os.urandom(12)
    chunk = 1 << 20
    buf = bytearray(chunk + 16)
    for i, plain in enumerate(data):
        enc = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
        fd = os.open(directory / f"raw-{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        mv = memoryview(plain)
        for off in range(0, len(mv), chunk):
            n = enc.update_into(mv[off:off + chunk], buf)
            os.write(fd, memoryview(buf)[:n])
        enc.finalize()
        os.write(fd, enc.tag)
        os.fsync(fd)
        os.close(fd)


def bench_ingest(app: App, work: Path, minutes: float, calls: int) -> dict[str, float]:
    frames = int(minutes * 60 * RATE)
    adv = os.urandom(frames * 2)
    cus = os.urandom(frames * 2)
    wav = work / "call.wav"
    write_wav(wav, [adv, cus], RATE)
    ingest_wav(app, wav, advisor_id="warm", customer_ids=["K0"], consent_at=1.0)  # warm-up (key ring, tables)

    def run() -> None:
        for i in range(calls):
            ingest_wav(app, wav, advisor_id=f"A{i % 50}", customer_ids=[f"K{i}"], consent_at=1.0)

    _, wall, cpu = timed(run)
    audio_hours = calls * minutes / 60
    raw_dir = work / "raw"
    raw_dir.mkdir()
    _, raw_wall, raw_cpu = timed(lambda: raw_encrypt_and_write([adv, cus] * calls, raw_dir))
    mb = calls * 2 * len(adv) / 1e6
    return {
        "calls": calls, "minutes_per_call": minutes, "audio_hours": audio_hours, "payload_mb": mb,
        "wall_s": wall, "cpu_s": cpu, "hours_per_s_wall": audio_hours / wall, "hours_per_cpu_s": audio_hours / cpu,
        "mb_per_s": mb / wall, "raw_wall_s": raw_wall, "raw_cpu_s": raw_cpu,
        "raw_hours_per_s": audio_hours / raw_wall, "raw_hours_per_cpu_s": audio_hours / raw_cpu,
        "raw_mb_per_s": mb / raw_wall,
    }


def bench_audit(app: App, singles: int, batched: int) -> dict[str, float]:
    def one_by_one() -> None:
        for i in range(singles):
            app.audit.record(SYSTEM, "bench.single", "thing", str(i), "ok", {"i": i})

    def in_batches() -> None:
        per = 500
        for b in range(0, batched, per):
            with app.catalog.session() as s:
                for i in range(b, min(batched, b + per)):
                    app.audit.append(s, SYSTEM, "bench.batch", "thing", str(i), "ok", {"i": i})

    _, single_wall, _ = timed(one_by_one)
    _, batch_wall, _ = timed(in_batches)
    res, verify_wall, _ = timed(app.audit.verify)
    assert res.ok, res.problem
    with app.catalog.session() as s:
        rows = s.query(AuditEntry).order_by(AuditEntry.seq).all()
        blobs = [(e.prev_hash.encode(), canonical(e)) for e in rows]

    key = app.audit.mac_key()

    def raw() -> None:
        for prev, body in blobs:
            hmac.new(key, prev + body, hashlib.sha256).hexdigest()

    _, raw_wall, _ = timed(raw)
    nbytes = sum(len(p) + len(b) for p, b in blobs)
    return {
        "single_appends_per_s": singles / single_wall, "batched_appends_per_s": batched / batch_wall,
        "entries": res.checked, "verified_per_s": res.checked / verify_wall,
        "raw_sha256_entries_per_s": len(blobs) / raw_wall, "avg_entry_bytes": nbytes / len(blobs),
    }


def write_section(text: str) -> Path:
    path = ROOT / "BENCHMARKS.md"
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = "## Archive\n\n" + text.rstrip() + "\n"
    pattern = re.compile(r"^## Archive\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda m: section + "\n", old, count=1) if pattern.search(old) else old.rstrip() + "\n\n" + section
    path.write_text(new.rstrip() + "\n", encoding="utf-8")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog", default=None, help="catalog URL (default: SQLite in a temporary directory)")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of each benchmark call")
    ap.add_argument("--calls", type=int, default=12)
    ap.add_argument("--audit-singles", type=int, default=1000)
    ap.add_argument("--audit-batched", type=int, default=10000)
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = ap.parse_args()

    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    with tempfile.TemporaryDirectory(prefix="cf-bench-") as tmp:
        work = Path(tmp)
        url = args.catalog or f"sqlite:///{work / 'catalog.db'}"
        cfg = write_deployment(work / "deploy", url)
        app = App.open(cfg, clock=FrozenClock(datetime(2026, 11, 28, 9, 0, tzinfo=UTC)))
        try:
            ing = bench_ingest(app, work, args.minutes, args.calls)
            aud = bench_audit(app, args.audit_singles, args.audit_batched)
        finally:
            app.close()

    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite (WAL, synchronous=FULL)"
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d} with `bench/bench_archive.py` (one process, one core busy).",
        f"Machine: `{uname}`; CPU: {cpu_model()}; {os.cpu_count()} CPUs; load average before the run "
        f"{load_before} (other work on the machine inflates wall times; per-CPU-second figures are steadier).",
        f"Catalog: {backend}; store: local file system.",
        "",
        f"Ingest: {ing['calls']} calls of {ing['minutes_per_call']:g} min, stereo PCM16 8 kHz "
        f"({ing['audio_hours']:.1f} h of audio, {ing['payload_mb']:.0f} MB of samples), consent after 1 s:",
        "",
        "| what | wall time | hours of audio per second | MB/s |",
        "| --- | ---: | ---: | ---: |",
        f"| `ingest_wav` (parse, silence, encrypt, SHA-256, fsynced store, catalog, audit) | {ing['wall_s']:.2f} s "
        f"| {ing['hours_per_s_wall']:.1f} ({ing['hours_per_cpu_s']:.1f} per CPU-second) | {ing['mb_per_s']:.0f} |",
        f"| raw AES-256-GCM + write + fsync of the same bytes | {ing['raw_wall_s']:.2f} s "
        f"| {ing['raw_hours_per_s']:.1f} ({ing['raw_hours_per_cpu_s']:.1f} per CPU-second) | {ing['raw_mb_per_s']:.0f} |",
        "",
        f"Audit trail ({aud['entries']} entries, {aud['avg_entry_bytes']:.0f} bytes each on average):",
        "",
        "| what | per second |",
        "| --- | ---: |",
        f"| appends, one transaction each (`audit.record`) | {aud['single_appends_per_s']:,.0f} |",
        f"| appends, 500 per transaction (`audit.append`) | {aud['batched_appends_per_s']:,.0f} |",
        f"| verified entries (`cf audit verify`: read, recompute, compare) | {aud['verified_per_s']:,.0f} |",
        f"| raw HMAC-SHA256 (the chain's keyed hash) of the same canonical bytes | {aud['raw_sha256_entries_per_s']:,.0f} |",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        print(f"\nwritten to {write_section(text)}")


if __name__ == "__main__":
    main()
