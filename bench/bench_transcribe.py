"""Transcription throughput: audio seconds per CPU-second, per engine.

Builds two-sided calls from espeak-ng speech (English; the advisor and the customer alternate),
archives them, then times ``cfcore.transcripts.run`` (decrypt each channel, cut the consented
stretches, the engine through ``cf_transcribe``, merge, encrypt, catalog, audit) and, as the raw
baseline from the same run, the engine alone on the same PCM (PocketSphinx's decoder on the
interpolated 16 kHz samples). Only engines installed here are measured (PocketSphinx; a
faster-whisper or Vosk plugin needs an operator's model and is not part of this repository yet).

    .venv/bin/python bench/bench_transcribe.py [--calls 4] [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from speech_helpers import call_wav  # noqa: E402

from cfcore import transcripts  # noqa: E402
from cfcore.app import App  # noqa: E402
from cfcore.archive import read_channel  # noqa: E402
from cfcore.clock import FrozenClock  # noqa: E402
from cfcore.ingest import ingest_wav  # noqa: E402
from cfcore.testing import write_deployment  # noqa: E402
from hookspecs.types import AudioClip, ChannelRole  # noqa: E402

LINES = ["good afternoon how can i help you", "i want to talk about my money",
         "can you call me tomorrow morning", "i would like to buy some shares today",
         "thank you and goodbye", "we will send you a letter"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=60)
    args = ap.parse_args()
    from datetime import UTC, datetime

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        dep = write_deployment(tmp / "deploy", f"sqlite:///{tmp / 'catalog.db'}")
        app = App.open(dep, clock=FrozenClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC)))
        ids = []
        for n in range(args.calls):
            adv, cus = [], []
            t, i = 0.5, n
            while t < args.seconds - 4:
                (adv if i % 2 == 0 else cus).append((t, LINES[i % len(LINES)]))
                t, i = t + 3.5, i + 1
            wav = call_wav(tmp / f"call{n}.wav", args.seconds, adv, cus)
            ids.append(ingest_wav(app, wav, advisor_id="A1", customer_ids=[f"K-{n}"], consent_at=0.2,
                                  started="2026-11-30T10:00:00+00:00"))
        c0, w0 = time.process_time(), time.perf_counter()
        results = transcripts.run(app, recording_ids=ids)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        assert all(r["state"] == "done" for r in results), results
        audio = sum(r["audio_seconds"] for r in results)

        from cf_transcribe_sphinx import transcribe

        pcms = [(rid, ch, read_channel(app, rid, ch)) for rid in ids for ch in ("advisor", "customer")]
        c1 = time.process_time()
        raw_audio = 0.0
        for rid, ch, pcm in pcms:
            transcribe(AudioClip(recording_id=rid, role=ChannelRole(ch), pcm_s16le=pcm, sample_rate=8000), "en", {})
            raw_audio += len(pcm) / 2 / 8000
        raw_cpu = time.process_time() - c1
        app.close()

    print(f"## Transcription\n\nMeasured {datetime.now(UTC):%Y-%m-%d} with `bench/bench_transcribe.py` "
          f"(one process). Machine: `{' '.join(x for x in platform.uname() if x)}`; CPU: {cpu_model()}; {os.cpu_count()} CPUs; "
          f"load average before the run {load_before} (other helpers' work inflates wall times).\n")
    print(f"{args.calls} two-sided calls of {args.seconds} s (espeak-ng English, both voices, consent at 0.2 s), "
          f"{audio:.0f} s of voice in all:\n")
    print("| engine | what | audio seconds | CPU seconds | audio seconds per CPU-second |")
    print("| --- | --- | ---: | ---: | ---: |")
    print(f"| pocketsphinx 5.1.1 (en-us) | `transcripts.run` (decrypt, cut, engine, merge, encrypt, catalog, audit) "
          f"| {audio:.0f} | {cpu:.1f} | {audio / cpu:.1f} |")
    print(f"| pocketsphinx 5.1.1 (en-us) | raw: the engine alone on the same channels | {raw_audio:.0f} | "
          f"{raw_cpu:.1f} | {raw_audio / raw_cpu:.1f} |")
    print(f"\nWall time of `transcripts.run`: {wall:.1f} s.")


if __name__ == "__main__":
    main()
