"""Ingest and read back: bit-exact audio, consent, tamper detection, catalog and audit."""

import hashlib
import json
import random
import struct
import warnings
from datetime import UTC, datetime, timedelta

import pytest
from archive_helpers import make_wav, media_files, media_rows, noise, raw_wav
from sqlalchemy import select

from cfcore.archive import WavView, export_wav, get_recording, read_channel, row_digest
from cfcore.crypto.envelope import Header
from cfcore.db.models import AuditEntry, Recording
from cfcore.errors import InputError, IntegrityError, NotFound
from cfcore.ingest import ingest_call, ingest_wav
from cfcore.subjects import normalise_customer_id, normalise_number, pseudonym
from cfcore.wav import read_wav
from hookspecs import hookimpl
from hookspecs.types import ChannelFile, ChannelRole, Consent, Direction, FinishedCall, ModeSegment, RecordingMode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


@pytest.mark.parametrize("channels", [1, 2])
def test_pcm16_round_trip_is_bit_exact(app, tmp_path, channels):
    wav, chans = make_wav(tmp_path / "in.wav", 3.3, channels=channels)
    rid = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=0 if channels == 2 else None)
    assert len(rid) == 32 and int(rid, 16) >= 0
    assert read_channel(app, rid, "advisor") == chans[0]
    if channels == 2:
        assert read_channel(app, rid, "customer") == chans[1]
    out = tmp_path / "out.wav"
    export_wav(app, rid, out)
    assert out.read_bytes() == wav.read_bytes()


@pytest.mark.parametrize("fmt", [6, 7])
def test_g711_input_is_stored_decoded(app, tmp_path, fmt):
    rnd = random.Random(fmt)
    adv = bytes(rnd.randrange(256) for _ in range(8000))
    cus = bytes(rnd.randrange(256) for _ in range(8000))
    inter = bytes(b for pair in zip(adv, cus, strict=True) for b in pair)
    p = tmp_path / "g711.wav"
    p.write_bytes(raw_wav(fmt, 2, 8000, 8, inter))
    rid = ingest_wav(app, p, advisor_id="A1", customer_numbers=["+49 30 1234567"], consent_at=0.0)
    dec = audioop.alaw2lin if fmt == 6 else audioop.ulaw2lin
    assert read_channel(app, rid, "advisor") == dec(adv, 2)
    assert read_channel(app, rid, "customer") == dec(cus, 2)
    entry = [e for e in app.audit.entries(action="recording.archive")][-1]
    assert entry.detail["source_codec"] == ("pcma" if fmt == 6 else "pcmu")


def test_customer_is_silent_before_consent(app, tmp_path):
    wav, (adv, cus) = make_wav(tmp_path / "in.wav", 4.0)
    rid = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=1.5)
    got = read_channel(app, rid, "customer")
    cut = int(1.5 * 8000) * 2
    assert got[:cut] == bytes(cut)
    assert got[cut:] == cus[cut:]
    assert read_channel(app, rid, "advisor") == adv
    with app.catalog.session() as s:
        rec = get_recording(s, rid)
        assert rec.two_sided and rec.channels == 2
        assert [(x.start, x.end, x.mode) for x in rec.segments] == [(0.0, 1.5, "advisor_only"), (1.5, 4.0, "both")]
        (c,) = rec.consents
        assert c.offset == 1.5 and c.method == "cli"


def test_no_consent_means_no_customer_object_at_all(app, deployment, tmp_path):
    wav, (adv, cus) = make_wav(tmp_path / "in.wav", 2.0)
    rid = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"])
    files = media_files(deployment)
    assert [f.name for f in files] == [f"{rid}.advisor.cfe"]
    assert set(media_rows(app, rid)) == {"advisor"}
    with pytest.raises(NotFound, match="no customer channel"):
        read_channel(app, rid, "customer")
    # the customer's audio is nowhere in the store, not even encrypted under another name
    out = tmp_path / "out.wav"
    export_wav(app, rid, out)
    assert read_wav(out).channels == (adv,)
    with app.catalog.session() as s:
        rec = get_recording(s, rid)
        assert not rec.two_sided and rec.channels == 1 and rec.retention_class


def test_paused_segments_silence_both_voices(app, tmp_path):
    wav, (adv, cus) = make_wav(tmp_path / "in.wav", 3.0)
    segs = [ModeSegment(start=0, end=1, mode=RecordingMode.BOTH),
            ModeSegment(start=1, end=2, mode=RecordingMode.PAUSED),
            ModeSegment(start=2, end=3, mode=RecordingMode.BOTH)]
    started = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    consent = Consent(given_at=started, offset=0, by_user="adv1", method="web")
    rid = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], segments=segs, consents=[consent],
                     started=started)
    a, c = read_channel(app, rid, "advisor"), read_channel(app, rid, "customer")
    assert a[16000:32000] == bytes(16000) and c[16000:32000] == bytes(16000)
    assert a[:16000] == adv[:16000] and c[32000:] == cus[32000:]


def test_core_refuses_both_segments_before_the_first_consent(app, tmp_path):
    """A source claims BOTH from the first second, but the consent came at 1.5 s: the customer's
    first 1.5 s are silenced by the core and the refusal is audited; a call without any consent
    keeps no customer channel at all."""
    wav, (adv, cus) = make_wav(tmp_path / "in.wav", 3.0)
    started = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    segs = [ModeSegment(start=0, end=3, mode=RecordingMode.BOTH)]
    consent = Consent(given_at=started + timedelta(seconds=1.5), offset=1.5, by_user="adv1", method="cti")
    rid = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], segments=segs, consents=[consent],
                     started=started, source="acme")
    c = read_channel(app, rid, "customer")
    assert c[:24000] == bytes(24000) and c[24000:] == cus[24000:]
    assert read_channel(app, rid, "advisor") == adv
    with app.catalog.session() as s:
        rec = get_recording(s, rid)
        assert [(x.start, x.end, x.mode) for x in rec.segments] == [(0, 1.5, "advisor_only"), (1.5, 3, "both")]
        assert [x.method for x in rec.consents] == ["cti"]
    (entry,) = list(app.audit.entries(action="recording.consent_refused"))
    assert entry.target_id == rid and entry.outcome == "refused"
    assert entry.detail["stretches"] == [[0, 1.5]] and entry.detail["source"] == "acme"

    none = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], segments=segs, started=started)
    with pytest.raises(NotFound, match="no customer channel"):
        read_channel(app, none, "customer")
    assert len(list(app.audit.entries(action="recording.consent_refused"))) == 2


def test_ingest_call_from_a_capture_source(app, tmp_path):
    from cfcore.wav import write_wav

    adv, cus = noise(2.0, seed=5), noise(1.9, seed=6)  # customer file a little shorter
    write_wav(tmp_path / "r.wav", [adv], 8000)
    write_wav(tmp_path / "t.wav", [cus], 8000)
    started = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    call = FinishedCall(
        call_id="1795906488.0-PJSIP/100", source="asterisk", advisor_id="100", started_at=started,
        direction=Direction.INBOUND,
        files=[ChannelFile(role=ChannelRole.ADVISOR, path=tmp_path / "r.wav"),
               ChannelFile(role=ChannelRole.CUSTOMER, path=tmp_path / "t.wav")],
        segments=[ModeSegment(start=0, end=0.5, mode=RecordingMode.ADVISOR_ONLY),
                  ModeSegment(start=0.5, end=2.0, mode=RecordingMode.BOTH)],
        consents=[Consent(given_at=started + timedelta(seconds=0.5), offset=0.5, by_user="adv100", method="web")],
        customer_numbers=["004930999"], pbx_call_id="1795906488.0", site="site-b")
    rid = ingest_call(app, call)
    assert ingest_call(app, call) == rid  # a retry does not duplicate
    c = read_channel(app, rid, "customer")
    assert len(c) == len(adv) and c[:8000] == bytes(8000) and c[8000:len(cus)] == cus[8000:] and c[len(cus):] == bytes(len(adv) - len(cus))
    with app.catalog.session() as s:
        rec = get_recording(s, rid)
        assert rec.site == "site-b" and rec.pbx_call_id == "1795906488.0" and rec.source == "asterisk"
        assert [x.pseudonym for x in rec.subjects] == [pseudonym(app, "number", "+4930999")]
        assert rec.media[0].key.startswith("2026/11/")


def test_flipped_byte_in_a_media_object_is_an_integrity_error(app, deployment, tmp_path):
    wav, _ = make_wav(tmp_path / "in.wav", 2.0)
    rid = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=0)
    path = next(f for f in media_files(deployment) if f.name.endswith(".customer.cfe"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        read_channel(app, rid, "customer")
    with pytest.raises(IntegrityError):
        export_wav(app, rid, tmp_path / "out.wav")
    assert not (tmp_path / "out.wav").exists() and not list(tmp_path.glob(".out.wav*"))
    view = WavView(app, rid)
    with pytest.raises(IntegrityError):
        view.read(0, view.size)
    assert read_channel(app, rid, "advisor")  # the other channel is intact


def test_truncated_or_swapped_objects_are_integrity_errors(app, deployment, tmp_path):
    wav, _ = make_wav(tmp_path / "in.wav", 10.0)  # 160 kB a channel: three segments
    rid = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=0)
    adv = next(f for f in media_files(deployment) if f.name.endswith(".advisor.cfe"))
    cus = next(f for f in media_files(deployment) if f.name.endswith(".customer.cfe"))
    a, c = adv.read_bytes(), cus.read_bytes()
    adv.write_bytes(c)
    cus.write_bytes(a)
    for ch in ("advisor", "customer"):
        with pytest.raises(IntegrityError):
            read_channel(app, rid, ch)
    adv.write_bytes(a[: Header.parse(a).size + 65552])  # cut at a segment boundary
    with pytest.raises(IntegrityError):
        read_channel(app, rid, "advisor")
    with pytest.raises(IntegrityError):
        WavView(app, rid).read(0, 100)
    adv.unlink()
    with pytest.raises(NotFound):
        read_channel(app, rid, "advisor")


def test_wav_view_random_access(app, tmp_path):
    wav, _ = make_wav(tmp_path / "in.wav", 20.0)
    rid = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=0)
    full = wav.read_bytes()
    view = WavView(app, rid)
    assert view.size == len(full) and view.channels == 2
    rnd = random.Random(3)
    for _ in range(100):
        a = rnd.randrange(view.size)
        b = rnd.randrange(a, view.size + 50)
        assert view.read(a, b) == full[a:b]
    assert view.read(0, 44) == full[:44] and view.read(view.size, view.size + 10) == b""


def test_catalog_rows_digest_and_audit_entry(app, tmp_path):
    wav, _ = make_wav(tmp_path / "in.wav", 1.0)
    started = "2026-11-27T10:15:00+01:00"
    rid = ingest_wav(app, wav, advisor_id="A7", customer_ids=["k-42 "], customer_numbers=["030 1234567"],
                     consent_at=0.25, started=started, site="site-b", direction="out")
    (entry,) = [e for e in app.audit.entries(action="recording.archive")]
    with app.catalog.session() as s:
        rec = get_recording(s, rid)
        assert entry.detail["row_digest"] == row_digest(rec)
        assert entry.target_id == rid and entry.detail["channels"] == ["advisor", "customer"]
        assert entry.detail["media_sha256"] == {m.channel: m.sha256 for m in rec.media}
        assert rec.started_at == datetime(2026, 11, 27, 9, 15, tzinfo=UTC)
        assert rec.direction == "out" and rec.site == "site-b" and rec.duration == 1.0
        assert sorted((x.kind, x.pseudonym) for x in rec.subjects) == sorted(
            [("customer_id", pseudonym(app, "customer_id", "K-42")), ("number", pseudonym(app, "number", "+49301234567"))])
        for m in rec.media:
            assert m.key == f"2026/11/{rid}.{m.channel}.cfe"
        rec.legal_hold = True
        assert row_digest(rec) != entry.detail["row_digest"]
    # no customer identifier in clear anywhere in the catalog or the audit trail
    with app.catalog.session() as s:
        dump = json.dumps([e.detail for e in s.scalars(select(AuditEntry))])
    assert "K-42" not in dump and "1234567" not in dump


def test_archived_hook_is_called_after_commit_and_failures_do_not_undo(app, tmp_path):
    seen = []

    class Listener:
        @hookimpl
        def cf_recording_archived(self, recording):
            with app.catalog.session() as s:
                seen.append((recording.id, s.get(Recording, recording.id) is not None))

    class Broken:
        @hookimpl
        def cf_recording_archived(self, recording):
            raise RuntimeError("CRM down")

    app.pm.register(Listener(), "listener")
    wav, _ = make_wav(tmp_path / "in.wav", 0.5, channels=1)
    rid = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"])
    assert seen == [(rid, True)]
    app.pm.register(Broken(), "broken")
    rid2 = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"])
    assert read_channel(app, rid2, "advisor")
    assert [e.outcome for e in app.audit.entries(action="recording.archived_hook")] == ["error"]


def test_input_validation(app, tmp_path):
    wav, _ = make_wav(tmp_path / "in.wav", 1.0)
    with pytest.raises(InputError, match="outside"):
        ingest_wav(app, wav, advisor_id="A1", consent_at=5.0)
    with pytest.raises(InputError, match="time zone"):
        ingest_wav(app, wav, advisor_id="A1", started="2026-11-28T10:00:00")
    with pytest.raises(InputError, match="direction"):
        ingest_wav(app, wav, advisor_id="A1", direction="sideways")
    with pytest.raises(InputError):
        ingest_wav(app, wav, advisor_id="A1", customer_numbers=["call me"])
    with pytest.raises(InputError, match="required"):
        ingest_wav(app, wav, advisor_id="")


def test_number_and_id_normalisation():
    assert normalise_number("+49 (30) 123-4567") == "+49301234567"
    assert normalise_number("0049 30 1234567") == "+49301234567"
    assert normalise_number("030/1234567") == "+49301234567"
    assert normalise_number("tel:+43-1-234567") == "+431234567"
    assert normalise_number("01 234 5678", default_cc="43") == "+4312345678"
    assert normalise_number("4930123456") == "+4930123456"
    for bad in ("", "+", "abc", "+0123456789", "12", "+1234567890123456", "0", "+49 30 12a"):
        with pytest.raises(InputError):
            normalise_number(bad)
    assert normalise_customer_id(" k-42 ") == "K-42" == normalise_customer_id("K -42")
    with pytest.raises(InputError):
        normalise_customer_id("   ")


def test_hashes_in_catalog_match_store(app, deployment, tmp_path):
    wav, chans = make_wav(tmp_path / "in.wav", 1.0)
    rid = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=0)
    rows = media_rows(app, rid)
    for f in media_files(deployment):
        ch = f.name.split(".")[1]
        assert hashlib.sha256(f.read_bytes()).hexdigest() == rows[ch].sha256
        assert rows[ch].plain_sha256 == hashlib.sha256(chans[0 if ch == "advisor" else 1]).hexdigest()
        assert chans[0][:64] not in f.read_bytes()
    assert struct.calcsize("<h") == 2
