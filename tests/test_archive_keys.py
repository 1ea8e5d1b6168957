"""Key ring: 0600 file, rotation, re-wrap without touching media, reading old recordings."""

import json
import os
import stat
import threading

import pytest
from archive_helpers import make_wav
from sqlalchemy import select

from cfcore.archive import read_channel
from cfcore.authority import SYSTEM
from cfcore.crypto.keyring import KeyRing, open_key_provider, rewrap_all, wrap_aad
from cfcore.crypto.rotation import rotate_keys
from cfcore.db.models import DataKey
from cfcore.errors import ConfigError, IntegrityError
from cfcore.ingest import ingest_wav
from cfcore.subjects import pseudonym


def test_keyring_file_is_created_0600_and_a_0644_one_is_refused(app):
    kid = app.keys.current_kek_id()
    path = app.keys_dir / "keyring.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["current"] == kid and len(bytes.fromhex(data["keys"][0]["key"])) == 32
    os.chmod(path, 0o644)
    fresh = KeyRing(app.keys_dir, app.clock.now)
    with pytest.raises(ConfigError, match="readable by others"):
        fresh.current_kek_id()


def test_pseudonym_secret_is_0600_and_refused_when_open(app):
    p = pseudonym(app, "number", "030 1234567")
    assert p == pseudonym(app, "number", "+49 30 1234567") == pseudonym(app, "number", "0049301234567")
    path = app.keys_dir / "subject-pseudonym.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError):
        pseudonym(app, "number", "030 1234567")


def test_wrapped_key_is_bound_to_its_recording(app):
    ring = app.keys
    kid = ring.current_kek_id()
    dk = os.urandom(32)
    wrapped = ring.wrap(kid, dk, wrap_aad("a" * 32))
    assert ring.unwrap(kid, wrapped, wrap_aad("a" * 32)) == dk
    with pytest.raises(IntegrityError):
        ring.unwrap(kid, wrapped, wrap_aad("b" * 32))
    with pytest.raises(KeyError):
        ring.unwrap("kek-unknown", wrapped, wrap_aad("a" * 32))


def test_unknown_provider_names_the_choices(deployment, make_app):
    text = deployment.read_text().replace('provider = "keyring"', 'provider = "vault"')
    deployment.write_text(text)
    app = make_app(deployment)
    with pytest.raises(ConfigError, match="choose one of: keyring"):
        open_key_provider(app)


def test_rotation_then_old_recordings_read_and_rewrap(app, tmp_path):
    wav, chans = make_wav(tmp_path / "a.wav", 1.0)
    old_ids = [ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=0) for _ in range(3)]
    first = app.keys.current_kek_id()
    media_before = {p: p.read_bytes() for p in (app.config.base_dir / "media").rglob("*.cfe")}

    result = rotate_keys(app, SYSTEM)
    assert result["previous"] == first and result["current"] != first
    # old recordings still read (their data keys are wrapped under the old KEK)
    for rid in old_ids:
        assert read_channel(app, rid, "advisor") == chans[0]
        assert read_channel(app, rid, "customer") == chans[1]
    new_id = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=0)
    with app.catalog.session() as s:
        keks = dict(s.execute(select(DataKey.recording_id, DataKey.kek_id)).all())
    assert {keks[r] for r in old_ids} == {first} and keks[new_id] == result["current"]

    out = rewrap_all(app, SYSTEM, batch=2)
    assert out["rewrapped"] == 3 and out["from"] == {first: 3}
    with app.catalog.session() as s:
        assert set(s.scalars(select(DataKey.kek_id))) == {result["current"]}
    for rid in old_ids + [new_id]:
        assert read_channel(app, rid, "advisor") == chans[0]
    # media untouched
    assert {p: p.read_bytes() for p in media_before} == media_before
    actions = [e.action for e in app.audit.entries()]
    assert actions.count("keys.rewrap") == 2 and "keys.rotate" in actions
    assert rewrap_all(app, SYSTEM)["rewrapped"] == 0
    assert app.audit.verify().ok


def test_rotation_from_another_process_is_seen(app):
    first = app.keys.current_kek_id()
    other = KeyRing(app.keys_dir, app.clock.now)
    dk = os.urandom(32)
    new = other.rotate()
    # the first provider has the old file cached; it picks up the rotation
    assert app.keys.current_kek_id() == new
    wrapped = other.wrap(new, dk, b"x")
    assert app.keys.unwrap(new, wrapped, b"x") == dk
    assert set(app.keys.key_ids()) == {first, new}


def test_concurrent_creation_agrees_on_one_ring(tmp_path, frozen_clock):
    d = tmp_path / "keys"
    rings = [KeyRing(d, frozen_clock.now) for _ in range(8)]
    created = []
    threads = [threading.Thread(target=lambda r=r: created.append(r.create())) for r in rings]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert created.count(True) == 1  # one creates, the others find it and never replace it
    assert len({r.current_kek_id() for r in rings}) == 1
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]
