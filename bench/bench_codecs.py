"""Storage codecs: MB per stereo call-hour, encode and decode speed, seek, end-to-end ingest and export.

Audio: speech from espeak-ng (8 kHz, two voices for the two channels, pauses as in a call) when
it is installed, else a synthetic speech-like signal (the file says which). For each codec of
``cfcore.codecs`` (pcm, flac, opus):

- payload bytes per stereo call-hour (extrapolated from ``--minutes`` of audio);
- encode and decode speed in hours of audio per CPU-second (one channel at a time, so per core);
- seek: 50 random 0.5 s reads through the decoding reader (the player's path), ms each, and
  whether FLAC gives back exactly the samples that went in;
- end to end: ``ingest_wav`` and ``export_wav`` of the same call with ``[archive] codec`` set.

Usage: ``.venv/bin/python bench/bench_codecs.py [--minutes 10]``
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cfcore import codecs  # noqa: E402
from cfcore.app import App  # noqa: E402
from cfcore.archive import export_wav  # noqa: E402
from cfcore.clock import FrozenClock  # noqa: E402
from cfcore.ingest import ingest_wav  # noqa: E402
from cfcore.testing import write_deployment  # noqa: E402
from cfcore.wav import read_wav, write_wav  # noqa: E402

RATE = 8000
TEXT = ("Good morning, this is your adviser calling about the savings plan we discussed last week. "
        "The fund has a yearly cost of one point two percent and the risk class is three out of seven. "
        "Would you like me to send you the key information document before we go on? ")


def speech(seconds: float, voice: str, work: Path) -> tuple[np.ndarray, str]:
    """``seconds`` of 8 kHz int16 speech with pauses, and where it came from."""
    n = int(seconds * RATE)
    if shutil.which("espeak-ng") and shutil.which("sox"):
        raw = work / f"{voice}.wav"
        sub = work / f"{voice}-8k.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), TEXT * 3], check=True,
                       capture_output=True)
        subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(sub)], check=True,
                       capture_output=True)
        talk = np.frombuffer(read_wav(sub).channels[0], dtype="<i2")
        pause = np.zeros(int(2.5 * RATE), dtype="<i2")  # the other side talks
        unit = np.concatenate([talk, pause])
        src = f"espeak-ng voice {voice} via sox"
    else:
        t = np.arange(20 * RATE) / RATE
        env = (np.sin(2 * np.pi * 0.3 * t) > 0) * np.abs(np.sin(2 * np.pi * 3 * t))
        unit = (env * (np.sin(2 * np.pi * 140 * t) + 0.4 * np.sin(2 * np.pi * 700 * t)) * 6000).astype("<i2")
        src = "synthetic speech-like signal (espeak-ng/sox not installed)"
    reps = -(-n // len(unit))
    return np.tile(unit, reps)[:n].copy(), src


def cpu(fn):  # type: ignore[no-untyped-def]
    c0 = time.process_time()
    out = fn()
    return out, time.process_time() - c0


def encode(codec: str, samples: np.ndarray) -> bytes:
    enc = codecs.encoder(codec, RATE, len(samples))
    parts = []
    for i in range(0, len(samples), 1 << 18):
        parts.append(bytes(enc.feed(samples[i:i + (1 << 18)].copy())))
    parts.append(enc.finish())
    return b"".join(parts)


class _Whole:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.plain_size = len(payload)

    def read(self, a: int, b: int) -> bytes:
        return self.payload[a:b]


def verdict(codec: str, ok: bool) -> str:
    if codec == "opus":
        return "no (lossy); every read has the right length" if ok else "LENGTH WRONG"
    return "yes" if ok else "NO"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    seconds = args.minutes * 60
    hours = seconds / 3600
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {' '.join(os.uname())}; CPU {cpu_model()}, "
          f"{os.cpu_count()} cores; load before {load}")
    with tempfile.TemporaryDirectory(prefix="cf-bench-codecs-") as tmp:
        work = Path(tmp)
        adv, src = speech(seconds, "en-us", work)
        cus, _ = speech(seconds, "en-gb", work)
        cus = np.roll(cus, int(2.7 * RATE))  # the customer talks in the advisor's pauses
        print(f"audio: {args.minutes:g} min stereo 8 kHz PCM16, {src}")
        print()
        print("| codec | MB per stereo call-hour | encode h audio per CPU-s | decode h audio per CPU-s "
              "| seek (0.5 s read at a random place) | bit-exact |")
        print("| --- | ---: | ---: | ---: | ---: | --- |")
        rnd = random.Random(7)
        for codec in ("pcm_s16le", "flac", "opus"):
            size = 0
            enc_cpu = dec_cpu = 0.0
            exact = True
            seek_ms: list[float] = []
            for ch in (adv, cus):
                payload, c = cpu(lambda ch=ch, codec=codec: encode(codec, ch))
                enc_cpu += c
                size += len(payload)
                view = codecs.pcm_access(codec, _Whole(payload), "bench")
                pcm, c = cpu(lambda view=view: view.read(0, view.plain_size))
                dec_cpu += c
                if codec != "opus":
                    exact = exact and pcm == ch.tobytes()
                view = codecs.pcm_access(codec, _Whole(payload), "bench")
                for _ in range(25):
                    f0 = rnd.randrange(0, len(ch) - RATE // 2)
                    w0 = time.perf_counter()
                    got = view.read(2 * f0, 2 * (f0 + RATE // 2))
                    seek_ms.append((time.perf_counter() - w0) * 1000)
                    if codec != "opus":
                        exact = exact and got == ch[f0:f0 + RATE // 2].tobytes()
                    elif len(got) != RATE:
                        exact = False
            seek_ms.sort()
            mb_hour = size / 1e6 / hours
            print(f"| {codec} | {mb_hour:.1f} | {2 * hours / max(enc_cpu, 1e-6):,.2f} "
                  f"| {2 * hours / max(dec_cpu, 1e-6):,.2f} "
                  f"| median {seek_ms[len(seek_ms) // 2]:.2f} ms, max {seek_ms[-1]:.2f} ms "
                  f"| {verdict(codec, exact)} |", flush=True)

        print()
        print("End to end (the same call, `ingest_wav` then `export_wav`; SQLite, local store):")
        print()
        print("| codec | ingest wall s | ingest CPU s | stored MB | export wall s | export CPU s | export bit-exact |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
        wav = work / "call.wav"
        write_wav(wav, [adv.tobytes(), cus.tobytes()], RATE)
        for name in ("pcm", "flac", "opus"):
            d = work / name
            cfg = write_deployment(d, f"sqlite:///{d / 'catalog.db'}")
            cfg.write_text(cfg.read_text().replace('codec = "pcm"', f'codec = "{name}"', 1))
            app = App.open(cfg, clock=FrozenClock(datetime(2026, 11, 28, 9, 0, tzinfo=UTC)))
            try:
                ingest_wav(app, wav, advisor_id="warm", customer_ids=["K0"], consent_at=0.0)
                w0, c0 = time.perf_counter(), time.process_time()
                rid = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=0.0)
                iw, ic = time.perf_counter() - w0, time.process_time() - c0
                stored = sum(p.stat().st_size for p in (d / "media").rglob(f"{rid}.*"))
                out = work / f"{name}-out.wav"
                w0, c0 = time.perf_counter(), time.process_time()
                export_wav(app, rid, out)
                ew, ec = time.perf_counter() - w0, time.process_time() - c0
                same = out.read_bytes() == wav.read_bytes()
            finally:
                app.close()
            print(f"| {name} | {iw:.2f} | {ic:.2f} | {stored / 1e6:.2f} | {ew:.2f} | {ec:.2f} "
                  f"| {'yes' if same else ('no (lossy)' if name == 'opus' else 'NO')} |", flush=True)
    print(f"\nload after: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main()
