"""G.729 decoding of pbx_siprec through Debian's libbcg729: frames from bcg729's own encoder,
decoded by the recorder and, independently, by FFmpeg's G.729 decoder."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import pytest
from cf_pbx_siprec import g729

from tests.siprec_helpers import dominant, level, tone

pytestmark = pytest.mark.skipif(not g729.available(), reason="libbcg729 is not installed")


def bcg729_encode(pcm: bytes, vad: bool = False) -> list[bytes]:
    """One payload per 10 ms frame (10 bytes; 2 for SID, 0 for untransmitted with VAD)."""
    lib = g729.library()
    lib.initBcg729EncoderChannel.restype = ctypes.c_void_p
    lib.initBcg729EncoderChannel.argtypes = [ctypes.c_uint8]
    lib.bcg729Encoder.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int16), ctypes.c_char_p,
                                  ctypes.POINTER(ctypes.c_uint8)]
    lib.closeBcg729EncoderChannel.argtypes = [ctypes.c_void_p]
    ctx = lib.initBcg729EncoderChannel(1 if vad else 0)
    out = []
    frame = (ctypes.c_int16 * 80)()
    bits = ctypes.create_string_buffer(10)
    n = ctypes.c_uint8(0)
    for i in range(0, len(pcm) - 159, 160):
        ctypes.memmove(frame, pcm[i:i + 160], 160)
        lib.bcg729Encoder(ctx, frame, bits, ctypes.byref(n))
        out.append(bits.raw[:n.value])
    lib.closeBcg729EncoderChannel(ctx)
    return out


def test_decoded_tones_match_and_ffmpeg_agrees(tmp_path):
    pcm = tone(440, 1.0) + tone(880, 1.0)
    frames = bcg729_encode(pcm)
    assert len(frames) == 200 and all(len(f) == 10 for f in frames)
    dec = g729.G729Decoder()
    # 20 ms RTP payloads of two frames each
    ours = b"".join(dec.decode(frames[i] + frames[i + 1]) for i in range(0, 200, 2))
    assert len(ours) == len(pcm)
    assert dominant(ours, 0.1, 0.95) == 440 and dominant(ours, 1.1, 1.95) == 880
    assert level(ours, 0.1, 1.9) > 3000
    if shutil.which("ffmpeg"):
        src, dst = tmp_path / "x.g729", tmp_path / "x.raw"
        src.write_bytes(b"".join(frames))
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "g729", "-i", str(src), "-f", "s16le", "-ac", "1",
                        "-ar", "8000", str(dst)], check=True, timeout=60)
        ref = dst.read_bytes()
        assert dominant(ref, 0.1, 0.95) == 440 and dominant(ref, 1.1, 1.95) == 880
        assert abs(level(ref, 0.1, 1.9) - level(ours, 0.1, 1.9)) < 0.2 * level(ref, 0.1, 1.9)


def test_sid_frame_gives_comfort_noise_of_one_frame():
    frames = bcg729_encode(bytes(1600) + tone(440, 0.2), vad=True)
    assert any(len(f) == 2 for f in frames) or any(len(f) == 0 for f in frames)
    dec = g729.G729Decoder()
    for f in frames:
        if len(f) == 2:
            assert len(dec.decode(f)) == 160
            break
