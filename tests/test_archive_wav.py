"""The strict WAV reader: G.711 decoding, and clear errors for malformed and truncated input."""

import struct
import warnings

import pytest
from archive_helpers import login_env, make_user, media_files, noise, raw_wav

from cfcore.errors import InputError
from cfcore.wav import g711_decode, read_wav, write_wav

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # reference G.711 implementation of CPython 3.11, for cross-checking only


def test_g711_tables_match_the_reference():
    every = bytes(range(256))
    assert g711_decode(every, "ulaw") == audioop.ulaw2lin(every, 2)
    assert g711_decode(every, "alaw") == audioop.alaw2lin(every, 2)


@pytest.mark.parametrize("fmt,law", [(7, "ulaw"), (6, "alaw")])
def test_g711_stereo_decodes_per_channel(tmp_path, fmt, law):
    adv, cus = bytes(range(0, 256, 2)) * 10, bytes(range(1, 256, 2)) * 10
    inter = bytes(b for pair in zip(adv, cus, strict=True) for b in pair)
    p = tmp_path / "g711.wav"
    p.write_bytes(raw_wav(fmt, 2, 8000, 8, inter))
    audio = read_wav(p)
    ref = audioop.ulaw2lin if law == "ulaw" else audioop.alaw2lin
    assert audio.channels == (ref(adv, 2), ref(cus, 2))
    assert audio.source_codec == ("pcmu" if law == "ulaw" else "pcma") and audio.sample_rate == 8000


def test_pcm_round_trip_and_extra_chunks_are_skipped(tmp_path):
    pcm = noise(0.5)
    odd_chunk = struct.pack("<4sI", b"LIST", 3) + b"abc" + b"\0"  # odd size with its pad byte
    p = tmp_path / "x.wav"
    p.write_bytes(raw_wav(1, 1, 16000, 16, pcm, extra_chunks=odd_chunk))
    audio = read_wav(p)
    assert audio.channels == (pcm,) and audio.sample_rate == 16000
    write_wav(tmp_path / "y.wav", [pcm, pcm], 8000)
    assert read_wav(tmp_path / "y.wav").channels == (pcm, pcm)


def test_extensible_pcm(tmp_path):
    pcm = noise(0.1)
    guid = struct.pack("<H", 1) + bytes.fromhex("000000001000800000aa00389b71")
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 8000, 16000, 2, 16, 22, 16, 4) + guid
    body = b"WAVE" + struct.pack("<4sI", b"fmt ", len(fmt)) + fmt + struct.pack("<4sI", b"data", len(pcm)) + pcm
    p = tmp_path / "ext.wav"
    p.write_bytes(struct.pack("<4sI", b"RIFF", len(body)) + body)
    assert read_wav(p).channels == (pcm,)


def _good(n=800):
    return raw_wav(1, 2, 8000, 16, noise(n / 8000 / 2 * 2)[: n * 4])


MALFORMED = {
    "empty": b"",
    "not riff": b"RIFX" + bytes(100),
    "not wave": b"RIFF" + struct.pack("<I", 100) + b"AVI " + bytes(96),
    "riff header only": b"RIFF\x04\x00\x00\x00WAVE",
    "float format": raw_wav(3, 1, 8000, 32, bytes(64)),
    "24 bit": raw_wav(1, 1, 8000, 24, bytes(60)),
    "8 bit pcm": raw_wav(1, 1, 8000, 8, bytes(60)),
    "three channels": raw_wav(1, 3, 8000, 16, bytes(60)),
    "zero channels": raw_wav(1, 0, 8000, 16, bytes(60)),
    "rate 4 Hz": raw_wav(1, 1, 4, 16, bytes(60)),
    "gsm": raw_wav(0x31, 1, 8000, 0, bytes(65)),
    "ulaw 16 bit": raw_wav(7, 1, 8000, 16, bytes(60)),
    "data ends inside a frame": raw_wav(1, 2, 8000, 16, bytes(62)),
}


def _variants():
    good = _good()
    cases = dict(MALFORMED)
    cases["truncated in the data"] = good[:-100]
    cases["truncated in the fmt chunk"] = good[:30]
    cases["truncated after the data header"] = good[:44]
    cases["no data chunk"] = good[:36].replace(good[4:8], struct.pack("<I", 28))
    lying = bytearray(good)
    lying[40:44] = struct.pack("<I", 0xFFFFFFF0)  # data size larger than the file
    cases["data size lies"] = bytes(lying)
    riff_lies = bytearray(good)
    riff_lies[4:8] = struct.pack("<I", 0xFFFFFFF0)
    cases["riff size lies"] = bytes(riff_lies)
    huge = struct.pack("<4sI", b"JUNK", 50_000_000)
    cases["huge metadata chunk"] = raw_wav(1, 1, 8000, 16, bytes(4), extra_chunks=huge)
    bad_align = bytearray(raw_wav(1, 2, 8000, 16, bytes(64)))
    bad_align[32:34] = struct.pack("<H", 3)
    cases["inconsistent block align"] = bytes(bad_align)
    data_first = b"WAVE" + struct.pack("<4sI", b"data", 4) + bytes(4)
    cases["data before fmt"] = struct.pack("<4sI", b"RIFF", len(data_first)) + data_first
    two_fmt = bytearray(raw_wav(1, 1, 8000, 16, bytes(4), extra_chunks=_good()[12:36]))
    cases["two fmt chunks"] = bytes(two_fmt)
    return cases


@pytest.mark.parametrize("name", sorted(_variants()))
def test_malformed_input_is_a_clear_input_error(tmp_path, name):
    p = tmp_path / "bad.wav"
    p.write_bytes(_variants()[name])
    with pytest.raises(InputError) as exc:
        read_wav(p)
    assert str(exc.value) and "Traceback" not in str(exc.value)


def test_missing_and_directory_inputs(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_wav(tmp_path / "nope.wav")
    with pytest.raises(InputError, match="directory"):
        read_wav(tmp_path)


def test_cli_refuses_truncated_input_and_archives_nothing(app, deployment, run_cf, tmp_path):
    make_user(app, "admin", ["administrator"])
    p = tmp_path / "cut.wav"
    p.write_bytes(_good()[:-101])
    proc = run_cf("ingest", str(p), "--agent", "A1", "--customer", "K1", env=login_env("admin"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("cf: error:") and "truncated" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert media_files(deployment) == []
    assert not [e for e in app.audit.entries() if e.action == "recording.archive"]
