"""G.722 decoding of pbx_siprec, checked against FFmpeg's G.722 codec (an implementation independent
of ours): bit-exact wide-band output, and the 8 kHz lower sub-band the archive keeps."""

from __future__ import annotations

import math
import shutil
import struct
import subprocess

import pytest
from cf_pbx_siprec.g722 import G722Decoder

from tests.siprec_helpers import dominant, level

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def tone16k(freqs: list[tuple[float, float]], amp: int = 9000) -> bytes:
    """PCM16 at 16 kHz: ``(frequency, seconds)`` pieces one after another (phase continuous)."""
    out, n0 = [], 0
    for f, sec in freqs:
        n = int(sec * 16000)
        out += [int(amp * math.sin(2 * math.pi * f * (n0 + i) / 16000)) for i in range(n)]
        n0 += n
    return struct.pack(f"<{len(out)}h", *out)


def ffmpeg_g722(pcm16k: bytes, tmp_path) -> bytes:
    """FFmpeg's G.722 encoder (64 kbit/s): one byte per two input samples."""
    src, dst = tmp_path / "in.raw", tmp_path / "out.g722"
    src.write_bytes(pcm16k)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "s16le", "-ar", "16000", "-ac", "1", "-i", str(src),
                    "-c:a", "g722", "-f", "g722", str(dst)], check=True, timeout=60)
    return dst.read_bytes()


def ffmpeg_decode(g722: bytes, tmp_path) -> bytes:
    src, dst = tmp_path / "ref.g722", tmp_path / "ref.raw"
    src.write_bytes(g722)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "g722", "-i", str(src), "-f", "s16le", "-ac", "1",
                    "-ar", "16000", str(dst)], check=True, timeout=60)
    return dst.read_bytes()


def test_wideband_decode_is_bit_exact_with_ffmpeg(tmp_path):
    # tones across both sub-bands, a loud stretch (saturation paths) and silence
    pcm = tone16k([(440, 0.5), (3000, 0.3), (5500, 0.3), (7000, 0.2), (0, 0.2)], amp=9000)
    pcm += tone16k([(1000, 0.3)], amp=32000)
    enc = ffmpeg_g722(pcm, tmp_path)
    assert len(enc) == len(pcm) // 4
    ours = G722Decoder().decode(enc)
    ref = ffmpeg_decode(enc, tmp_path)
    assert len(ours) == len(ref) and ours == ref


def test_lower_band_gives_the_8khz_signal_the_archive_keeps(tmp_path):
    pcm = tone16k([(440, 1.0), (880, 1.0)])
    enc = ffmpeg_g722(pcm, tmp_path)
    dec = G722Decoder()
    # decoded in 20 ms packets, as RTP brings it: the state runs on across calls
    low = b"".join(dec.decode_low(enc[i:i + 160]) for i in range(0, len(enc), 160))
    assert len(low) == 2 * len(enc)  # 8000 samples per second
    assert dominant(low, 0.1, 0.95) == 440 and dominant(low, 1.05, 1.95) == 880
    assert 5000 < level(low, 0.1, 1.9) < 8000  # 9000 peak: ~6364 RMS, passed at unity gain
