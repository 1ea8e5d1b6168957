"""Ingest benchmark: CallFort's ingest of a 60 s and a 1 h stereo call against a raw baseline.

Same run, same WAV file, same machine:

- CallFort: ``ingest_wav`` (header checks, channel split, consent silence, AES-256-GCM envelope,
  SHA-256 of payload and ciphertext, fsynced store writes, one catalog transaction, audit entry);
- raw baselines on the WAV's bytes: read in blocks, AES-256-GCM, write to one file, fsync it;
  (1) as one GCM stream (``update_into`` a reused buffer: the least work possible), (2) with the
  one-shot AEAD API per 64 KiB segment (what a seekable encrypted object needs: a tag per segment).

Wall and CPU time (best of ``--repeat``), and peak Python memory (tracemalloc, which sees numpy's
buffers too; a separate run, as tracing slows everything down).

Usage: ``.venv/bin/python bench/bench_ingest.py [--catalog URL] [--hours 1] [--repeat 3] [--codec pcm]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cfcore.app import App  # noqa: E402
from cfcore.clock import FrozenClock  # noqa: E402
from cfcore.crypto.envelope import StreamSealer  # noqa: E402
from cfcore.ingest import ingest_wav  # noqa: E402
from cfcore.ingest_stream import ChannelSource  # noqa: E402
from cfcore.testing import write_deployment  # noqa: E402
from cfcore.wav import wav_header, wav_info  # noqa: E402

RATE = 8000
BLOCK = 1 << 20


def make_call(path: Path, seconds: float) -> int:
    """A stereo PCM16 8 kHz WAV of noise-like samples, written block by block; returns data bytes."""
    frames = int(seconds * RATE)
    size = frames * 4
    with open(path, "wb") as f:
        f.write(wav_header(size, 2, RATE))
        left = size
        while left:
            n = min(BLOCK, left)
            f.write(os.urandom(n))
            left -= n
    return size


def raw_stream(wav: Path, out: Path) -> None:
    """Baseline 1: one AES-256-GCM stream (``update_into`` a reused buffer): the least work there is."""
    key, nonce = os.urandom(32), os.urandom(12)
    enc = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
    buf = bytearray(BLOCK)
    ct = bytearray(BLOCK + 16)
    with open(wav, "rb") as src:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            while n := src.readinto(buf):
                m = enc.update_into(memoryview(buf)[:n], ct)
                os.write(fd, memoryview(ct)[:m])
            enc.finalize()
            os.write(fd, enc.tag)
            os.fsync(fd)
        finally:
            os.close(fd)
    out.unlink()


def raw_segments(wav: Path, out: Path, segment: int = 64 * 1024) -> None:
    """Baseline 2: AES-256-GCM with the one-shot AEAD API per 64 KiB segment (a tag per segment, as
    any seekable encrypted format needs), write, fsync."""
    aead = AESGCM(os.urandom(32))
    prefix = os.urandom(8)
    buf = bytearray(segment)
    with open(wav, "rb") as src:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            i = 0
            while n := src.readinto(buf):
                os.write(fd, aead.encrypt(prefix + i.to_bytes(4, "big"), memoryview(buf)[:n], None))
                i += 1
            os.fsync(fd)
        finally:
            os.close(fd)
    out.unlink()


def measure(fn, repeat: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    best: tuple[float, float] | None = None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        res = (time.perf_counter() - w0, time.process_time() - c0)
        best = res if best is None or res[0] + res[1] < best[0] + best[1] else best
    assert best is not None
    return best


def peak(fn) -> float:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def breakdown(wav: Path, repeat: int) -> list[str]:
    """CPU of the parts of the media work, one after another on the same file (no store, no catalog)."""
    info = wav_info(wav)
    sources = [ChannelSource(info=info, index=i, frames=info.frames) for i in range(info.channels)]
    key = os.urandom(32)

    def read_split() -> None:
        for src in sources:
            for _ in src.blocks():
                pass

    def hashes() -> None:
        for src in sources:
            h1, h2 = hashlib.sha256(), hashlib.sha256()
            for block in src.blocks():
                h1.update(block)
                h2.update(block)

    def seal() -> None:
        for src in sources:
            sealer = StreamSealer(key, "0" * 32, "advisor")
            for block in src.blocks():
                sealer.feed(memoryview(block).cast("B"))
            sealer.finish()

    base = measure(read_split, repeat)[1]
    return [f"- read the WAV and split the channels (numpy): {base:.3f} CPU-s",
            f"- two SHA-256 over the channels' bytes (payload and ciphertext hashes): "
            f"{measure(hashes, repeat)[1] - base:.3f} CPU-s",
            f"- AES-256-GCM envelope (64 KiB segments, `StreamSealer`): {measure(seal, repeat)[1] - base:.3f} CPU-s"]


def run_call(app: App, work: Path, label: str, seconds: float, repeat: int) -> list[str]:
    wav = work / "call.wav"
    make_call(wav, seconds)
    hours = seconds / 3600
    n = [0]

    def ingest() -> None:
        n[0] += 1
        ingest_wav(app, wav, advisor_id=f"A{n[0]}", customer_ids=[f"K{n[0]}"], consent_at=1.0)

    ingest()  # warm-up: key ring, tables, page cache
    runs = {
        "CallFort ingest": ingest,
        "raw 1: read + AES-256-GCM stream + write + fsync": lambda: raw_stream(wav, work / "raw.bin"),
        "raw 2: read + AES-256-GCM per 64 KiB segment + write + fsync": lambda: raw_segments(wav, work / "raw.bin"),
    }
    res = {name: (*measure(fn, repeat), peak(fn)) for name, fn in runs.items()}
    parts = breakdown(wav, repeat) if seconds >= 600 else []
    wav.unlink()
    iw, ic, _ = res["CallFort ingest"]
    rows = []
    for name, (w, c, mem) in res.items():
        ratio = "" if name.startswith("CallFort") else f"{w / iw:.0%}, {c / ic:.0%}"
        rows.append(f"| {label} | {name} | {w:.3f} | {c:.3f} | {hours / w:.2f} | {hours / c:.2f} | {mem:.1f} | {ratio} |")
    if parts:
        rows += ["", f"Where the CPU of the {label} ingest's media work goes (measured apart):", *parts]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog", default=None, help="catalog URL (default: SQLite in a temporary directory)")
    ap.add_argument("--hours", type=float, default=1.0, help="length of the long call")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--codec", default="pcm", help="[archive] codec of the deployment")
    args = ap.parse_args()

    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    uname = " ".join(os.uname())
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {uname}; CPU {cpu_model()}, {os.cpu_count()} cores; "
          f"load before {load}; codec {args.codec}; catalog {'SQLite' if not args.catalog else args.catalog.split(':')[0]}")
    print()
    print("| call | what | wall s | CPU s | h audio/s | h per CPU-s | peak MiB | ingest is (wall, CPU) of this |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    with tempfile.TemporaryDirectory(prefix="cf-bench-ingest-") as tmp:
        work = Path(tmp)
        url = args.catalog or f"sqlite:///{work / 'catalog.db'}"
        cfg = write_deployment(work / "deploy", url)
        cfg.write_text(cfg.read_text().replace('codec = "pcm"', f'codec = "{args.codec}"', 1))
        app = App.open(cfg, clock=FrozenClock(datetime(2026, 11, 28, 9, 0, tzinfo=UTC)))
        try:
            for label, seconds in (("60 s", 60.0), (f"{args.hours:g} h", args.hours * 3600)):
                for row in run_call(app, work, label, seconds, args.repeat):
                    print(row, flush=True)
        finally:
            app.close()
    print(f"\nload after: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main()
