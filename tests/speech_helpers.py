"""Speech for the transcription tests: espeak-ng voices rendered to 8 kHz PCM16 (sox), placed on
the advisor's and the customer's channel of a stereo WAV at given times.

PocketSphinx's open-vocabulary accuracy on synthetic 8 kHz speech is poor; the phrases below were
chosen because their keywords come out reliably. sox runs with ``-R``: its dither is otherwise
seeded randomly, the samples differ from run to run and so does what PocketSphinx hears.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import Sequence
from pathlib import Path

import pytest

ADVISOR_HELLO = "good afternoon how can i help you"  # keyword: help
CUSTOMER_MONEY = "i want to talk about my money"  # keywords: talk, money
CUSTOMER_TOMORROW = "can you call me tomorrow morning"  # keywords: tomorrow, morning
RATE = 8000


def need_espeak() -> None:
    missing = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run scripts/system-deps")


def speech(text: str, tmp: Path, *, voice: str = "en-us+m3", speed: int = 150) -> bytes:
    """PCM16 mono 8 kHz of ``text`` spoken by espeak-ng."""
    need_espeak()
    raw, out = tmp / "espeak.wav", tmp / "espeak-8k.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-g", "2", "-w", str(raw), text], check=True,
                   capture_output=True)
    # -R: the same dither on every run, so the same text always gives the same samples (sox seeds randomly)
    subprocess.run(["sox", "-R", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)], check=True, capture_output=True)
    with wave.open(str(out)) as w:
        return w.readframes(w.getnframes())


def place(seconds: float, parts: Sequence[tuple[float, bytes]]) -> bytearray:
    buf = bytearray(int(seconds * RATE) * 2)
    for at, pcm in parts:
        a = int(at * RATE) * 2
        chunk = pcm[: max(0, len(buf) - a)]
        buf[a:a + len(chunk)] = chunk
    return buf


def call_wav(path: Path, seconds: float, advisor: Sequence[tuple[float, str]],
             customer: Sequence[tuple[float, str]] = (), *, voice: str = "en-us+m3") -> Path:
    """A stereo WAV (advisor left, customer right) with the phrases spoken at their times."""
    tmp = path.parent
    adv = place(seconds, [(at, speech(t, tmp, voice=voice)) for at, t in advisor])
    cus = place(seconds, [(at, speech(t, tmp, voice=voice)) for at, t in customer])
    frames = bytearray()
    for i in range(0, len(adv), 2):
        frames += adv[i:i + 2] + cus[i:i + 2]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(frames))
    return path
