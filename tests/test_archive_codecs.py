"""Storage codecs (FLAC lossless, Opus lossy) and the streaming ingest: bit-exact FLAC exports,
seeks, per-class codecs, old PCM recordings after a codec change, constant ingest memory."""

import hashlib
import random
import tracemalloc

import pytest
from archive_helpers import make_wav, media_files, media_rows, tone
from sqlalchemy import select

from cfcore.archive import WavView, export_wav, get_recording, read_channel
from cfcore.db.models import Recording
from cfcore.errors import ConfigError
from cfcore.fis.scrub import scrub_objects
from cfcore.ingest import ingest_wav
from cfcore.wav import read_wav, write_wav


def _with_codec(deployment, codec=None, class_codecs=None):
    text = deployment.read_text()
    if codec is not None:
        text = text.replace('codec = "pcm"', f'codec = "{codec}"', 1)
    if class_codecs:
        body = ", ".join(f'"{k}" = "{v}"' for k, v in class_codecs.items())
        text = text.replace('codec = ', f"class_codecs = {{ {body} }}\ncodec = ", 1)
    deployment.write_text(text)


def _expected_wav(tmp_path, chans, consent_frames):
    """What a PCM ingest stores: the customer silent before the consent."""
    cus = bytes(2 * consent_frames) + chans[1][2 * consent_frames:]
    path = tmp_path / "expected.wav"
    write_wav(path, [chans[0], cus], 8000)
    return path.read_bytes()


def test_flac_export_is_bit_exact_to_a_pcm_ingest(deployment, make_app, tmp_path):
    _with_codec(deployment, "flac")
    app = make_app(deployment)
    wav, chans = make_wav(tmp_path / "in.wav", 7.3)  # full-range noise, -32768 and 32767 included
    rid = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=1.5)
    expected = _expected_wav(tmp_path, chans, 12000)
    out = tmp_path / "out.wav"
    result = export_wav(app, rid, out)
    assert out.read_bytes() == expected
    assert result["sha256"] == hashlib.sha256(expected).hexdigest()
    assert read_channel(app, rid, "advisor") == chans[0]
    with app.catalog.session() as s:
        rec = get_recording(s, rid)
        assert rec.codec == "flac" and {m.codec for m in rec.media} == {"flac"}
    rows = media_rows(app, rid)
    for name, f in {f.name.split(".")[1]: f for f in media_files(deployment)}.items():
        assert f.stat().st_size == rows[name].size
    # Art. 15 / DSAR and the player read through the same view; every range is decoded exactly
    view = WavView(app, rid)
    assert view.size == len(expected)
    assert b"".join(view.iter_verified()) == expected
    rnd = random.Random(3)
    for _ in range(40):
        a = rnd.randrange(0, len(expected))
        b = min(len(expected), a + rnd.randrange(1, 20000))
        assert view.read(a, b) == expected[a:b]
    # the scrub verifies payload hashes of coded objects like PCM ones
    summary, findings = scrub_objects(app)
    assert not findings, findings


def test_flac_stores_fewer_bytes_for_speech_like_audio(deployment, make_app, tmp_path):
    _with_codec(deployment, "flac")
    app = make_app(deployment)
    adv = tone(20.0, 300.0, level=3000) + bytes(2 * 8000 * 10)  # a tone, then silence
    wav = tmp_path / "tone.wav"
    write_wav(wav, [adv], 8000)
    rid = ingest_wav(app, wav, advisor_id="A1")
    row = media_rows(app, rid)["advisor"]
    assert row.plain_size < len(adv) / 2
    assert read_channel(app, rid, "advisor") == adv


def test_opus_is_small_plays_and_seeks(deployment, make_app, tmp_path):
    _with_codec(deployment, "opus")
    app = make_app(deployment)
    seconds = 30.0
    chans = [tone(seconds, 400.0), tone(seconds, 600.0)]
    wav = tmp_path / "in.wav"
    write_wav(wav, chans, 8000)
    rid = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=0.0)
    rows = media_rows(app, rid)
    assert {r.codec for r in rows.values()} == {"opus"}
    payload = sum(r.plain_size for r in rows.values())
    assert payload * 3600 / seconds <= 8_000_000  # at most 8 MB per stereo call-hour
    out = tmp_path / "out.wav"
    export_wav(app, rid, out)
    audio = read_wav(out)
    assert [len(c) for c in audio.channels] == [len(c) for c in chans]  # the same length, sample for sample
    # lossy, but the same sound: the decoded tone correlates with the original
    import numpy as np

    for got, want in zip(audio.channels, chans, strict=True):
        g = np.frombuffer(got, dtype="<i2").astype(float)[4000:-4000]
        w = np.frombuffer(want, dtype="<i2").astype(float)[4000:-4000]
        lag = max(range(0, 400), key=lambda k: float(np.dot(g[k:k + 8000], w[:8000])))
        corr = np.corrcoef(g[lag:lag + 100000], w[:len(g[lag:lag + 100000])])[0, 1]
        assert corr > 0.8
    view = WavView(app, rid)
    assert len(view.read(44 + 4 * 8000 * 20, 44 + 4 * 8000 * 21)) == 4 * 8000  # a seek into the middle


def test_codec_per_retention_class(deployment, make_app, tmp_path):
    _with_codec(deployment, class_codecs={"advisor-only": "opus", "mifid": "flac"})
    app = make_app(deployment)
    wav, chans = make_wav(tmp_path / "in.wav", 2.0)
    one_sided = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"])
    two_sided = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=0.0)
    with app.catalog.session() as s:
        codecs = {r.id: (r.retention_class, r.codec) for r in s.scalars(select(Recording))}
    assert codecs == {one_sided: ("advisor-only", "opus"), two_sided: ("mifid", "flac")}
    assert read_channel(app, two_sided, "customer") == chans[1]


def test_old_pcm_recordings_still_play_after_a_codec_change(deployment, make_app, tmp_path):
    app = make_app(deployment)
    wav, chans = make_wav(tmp_path / "in.wav", 3.0)
    old = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=0.0)
    app.close()
    _with_codec(deployment, "flac")
    app = make_app(deployment)
    new = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=0.0)
    for rid in (old, new):
        out = tmp_path / f"{rid}.wav"
        export_wav(app, rid, out)
        assert out.read_bytes() == wav.read_bytes()
    assert media_rows(app, old)["advisor"].codec == "pcm_s16le"


def test_unknown_codec_is_a_config_error(deployment, make_app, tmp_path):
    _with_codec(deployment, "mp3")
    app = make_app(deployment)
    wav, _ = make_wav(tmp_path / "in.wav", 1.0)
    with pytest.raises(ConfigError, match="choose one of: pcm, flac, opus"):
        ingest_wav(app, wav, advisor_id="A1")
    assert media_files(deployment) == []


@pytest.mark.parametrize("codec", ["pcm", "flac"])
def test_ingest_memory_does_not_grow_with_the_call(deployment, make_app, tmp_path, codec):
    """Streaming: a 10-minute stereo call (9.6 MB of samples) never sits in memory whole."""
    _with_codec(deployment, codec)
    app = make_app(deployment)
    wav = tmp_path / "long.wav"
    write_wav(wav, [tone(600.0, 440.0), tone(600.0, 550.0)], 8000)
    ingest_wav(app, wav, advisor_id="warm")  # imports, tables, key ring
    tracemalloc.start()
    try:
        rid = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=1.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * 2**20, f"{peak / 2**20:.1f} MiB"
    assert media_rows(app, rid)["customer"].plain_sha256


def test_streamed_silence_is_exactly_the_old_whole_buffer_rule():
    """The streaming ingest silences exactly the samples ``apply_modes`` silences (the consent
    enforcement stays as strict): random plans, random rates, block edges anywhere."""
    import numpy as np

    from cfcore.ingest import apply_modes
    from cfcore.ingest_stream import silenced_ranges
    from cfcore.wav import Audio
    from hookspecs.types import ModeSegment, RecordingMode

    rnd = random.Random(11)
    for _ in range(300):
        rate = rnd.choice([8000, 16000, 11025])
        frames = rnd.randrange(1, 3000)
        duration = frames / rate
        cuts = sorted(rnd.uniform(0, duration) for _ in range(rnd.randrange(0, 6)))
        edges = [0.0, *cuts, duration]
        plan = [ModeSegment(start=a, end=b, mode=rnd.choice([RecordingMode.BOTH, RecordingMode.ADVISOR_ONLY,
                                                             RecordingMode.PAUSED]))
                for a, b in zip(edges, edges[1:], strict=False) if b > a]
        adv = np.arange(1, frames + 1, dtype="<i2")
        cus = -np.arange(1, frames + 1, dtype="<i2")
        want_adv, want_cus = apply_modes(Audio(sample_rate=rate, channels=(adv.tobytes(), cus.tobytes()),
                                               source_codec="pcm_s16le"), plan)
        a_sil, c_sil = silenced_ranges(plan, rate, frames)
        got_adv, got_cus = adv.copy(), cus.copy()
        for a, b in a_sil:
            got_adv[a:b] = 0
        for a, b in c_sil:
            got_cus[a:b] = 0
        assert got_adv.tobytes() == want_adv
        if want_cus is None:
            assert c_sil == [(0, frames)]
        else:
            assert got_cus.tobytes() == want_cus



@pytest.mark.parametrize("codec", ["pcm", "flac"])
def test_small_blocks_g711_padding_and_pauses_stream_exactly(deployment, make_app, tmp_path, monkeypatch, codec):
    """Block edges fall inside mode segments; G.711 is decoded per block; a shorter customer file
    is padded with silence: the stored audio is what the whole-buffer rule gives."""
    from datetime import UTC, datetime, timedelta

    from archive_helpers import noise, raw_wav

    import cfcore.ingest_stream
    from cfcore.ingest import apply_modes, ingest_call
    from cfcore.wav import Audio, g711_decode
    from hookspecs.types import (
        ChannelFile,
        ChannelRole,
        Consent,
        Direction,
        FinishedCall,
        ModeSegment,
        RecordingMode,
    )

    monkeypatch.setattr(cfcore.ingest_stream, "BLOCK_FRAMES", 997)
    _with_codec(deployment, codec)
    app = make_app(deployment)
    rnd = random.Random(5)
    ulaw = bytes(rnd.randrange(256) for _ in range(24000))  # 3 s advisor, G.711 µ-law
    (tmp_path / "a.wav").write_bytes(raw_wav(7, 1, 8000, 8, ulaw))
    cus = noise(2.5, seed=9)  # the customer file is half a second shorter
    write_wav(tmp_path / "c.wav", [cus], 8000)
    started = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    plan = [ModeSegment(start=0, end=0.7, mode=RecordingMode.ADVISOR_ONLY),
            ModeSegment(start=0.7, end=1.9, mode=RecordingMode.BOTH),
            ModeSegment(start=1.9, end=2.2, mode=RecordingMode.PAUSED),
            ModeSegment(start=2.2, end=3.0, mode=RecordingMode.BOTH)]
    call = FinishedCall(
        call_id="c1", source="asterisk", advisor_id="100", started_at=started, direction=Direction.INBOUND,
        files=[ChannelFile(role=ChannelRole.ADVISOR, path=tmp_path / "a.wav"),
               ChannelFile(role=ChannelRole.CUSTOMER, path=tmp_path / "c.wav")],
        segments=plan,
        consents=[Consent(given_at=started + timedelta(seconds=0.7), offset=0.7, by_user="adv100", method="web")])
    rid = ingest_call(app, call)
    adv = g711_decode(ulaw, "ulaw")
    want_adv, want_cus = apply_modes(Audio(sample_rate=8000, channels=(adv, cus.ljust(len(adv), b"\0")),
                                           source_codec="pcmu"), plan)
    assert read_channel(app, rid, "advisor") == want_adv
    assert read_channel(app, rid, "customer") == want_cus
    assert want_cus[:2 * 5600] == bytes(2 * 5600) and want_adv[2 * 15200:2 * 17600] == bytes(2 * 2400)
