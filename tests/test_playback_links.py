"""Playback through a link opened once (issue 20): what is kept per link, what is checked on every
request, the audit entry committed before the bytes and synced after, read-only sessions."""

from __future__ import annotations

import threading

import pytest
from access_helpers import NOW, last_audit, world_for
from sqlalchemy import func, select, update

from cfcore.access import links
from cfcore.archive import export_wav
from cfcore.authority import SYSTEM
from cfcore.db.durability import SyncFailed, SyncQueue, sync_queue
from cfcore.db.models import AuditEntry, Recording
from cfcore.playback import link_views


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with world_for(tmp_path_factory.mktemp("playback")) as w:
        yield w


@pytest.fixture(autouse=True)
def _reset_clock(world):
    world.clock.set(NOW)
    yield
    world.clock.set(NOW)


def new_link(world, user="u-advisor"):
    with world.http(user) as c:
        r = c.post(f"/api/recordings/{world.rec_own}/link", json={})
    assert r.status_code == 201, r.text
    return r.json()


def get(world, url, headers=None, user="u-advisor"):
    with world.http(user) as c:
        return c.get(url, headers=headers or {})


def plays(world, nonce):
    return [e for e in world.app.audit.entries(0, action="recording.play", target_id=world.rec_own)
            if e.detail.get("link") == nonce]


def _state(world, state):
    with world.app.catalog.session() as s:
        s.execute(update(Recording).where(Recording.id == world.rec_own).values(state=state))


def test_every_range_through_one_link_is_audited_and_served_from_the_opened_view(world):
    out = world.tmp / "ref.wav"
    export_wav(world.app, world.rec_own, out)
    ref = out.read_bytes()
    link = new_link(world)
    nonce = links.parse(world.app, link["token"]).nonce
    ranges = [(0, 99), (44, 5000), (len(ref) // 2, len(ref) - 1), (len(ref) - 7, len(ref) - 1)]
    for first, last in ranges:
        r = get(world, link["url"], {"Range": f"bytes={first}-{last}"})
        assert r.status_code == 206 and r.content == ref[first:last + 1]
    whole = get(world, link["url"])
    assert whole.status_code == 200 and whole.content == ref  # several pieces: the last waits for the sync
    entries = plays(world, nonce)
    assert [(e.detail["first"], e.detail["last"]) for e in entries] == [*ranges, (0, len(ref) - 1)]
    assert all(e.user == "u-advisor" and e.outcome == "ok" for e in entries)
    # opened once for the link: the cache holds it
    assert any(k[0] == nonce and k[1] == world.rec_own for k in link_views(world.app)._open)


def test_a_recording_being_deleted_stops_an_opened_link_at_the_next_request(world):
    link = new_link(world)
    assert get(world, link["url"], {"Range": "bytes=0-9"}).status_code == 206
    _state(world, "purging")
    try:
        r = get(world, link["url"], {"Range": "bytes=10-19"})
        assert r.status_code == 403 and r.json() == {"error": links.LINK_REFUSED}
        e = last_audit(world.app, action="recording.play", target_id=world.rec_own)
        assert e.outcome == "denied" and e.detail["reason"].startswith("recording not readable")
    finally:
        _state(world, "archived")
    assert get(world, link["url"], {"Range": "bytes=10-19"}).status_code == 206


def test_a_shredded_key_stops_an_opened_link(world):
    from cfcore.db.models import DataKey

    link = new_link(world)
    assert get(world, link["url"], {"Range": "bytes=0-9"}).status_code == 206
    with world.app.catalog.session() as s:
        saved = s.get(DataKey, world.rec_own)
        wrapped, kek = saved.wrapped, saved.kek_id
        saved.wrapped = None
    try:
        r = get(world, link["url"], {"Range": "bytes=0-9"})
        assert r.status_code == 403
        assert last_audit(world.app, action="recording.play", target_id=world.rec_own).outcome == "denied"
    finally:
        with world.app.catalog.session() as s:
            dk = s.get(DataKey, world.rec_own)
            dk.wrapped, dk.kek_id = wrapped, kek


def test_an_expired_link_is_refused_although_its_view_is_open(world):
    link = new_link(world)
    assert get(world, link["url"], {"Range": "bytes=0-9"}).status_code == 206
    world.clock.set(NOW.replace(minute=6))
    r = get(world, link["url"], {"Range": "bytes=0-9"})
    assert r.status_code == 403 and r.json() == {"error": links.LINK_REFUSED}
    assert last_audit(world.app, action="recording.play", target_id=world.rec_own).detail["reason"] == "expired"


def test_another_users_request_with_an_opened_link_is_refused(world):
    link = new_link(world)
    assert get(world, link["url"], {"Range": "bytes=0-9"}).status_code == 206
    r = get(world, link["url"], {"Range": "bytes=0-9"}, user="u-supervisor")
    assert r.status_code == 403


def test_read_session_does_not_queue_behind_a_writer(world):
    """A writer holds its transaction open; a read-only session still answers (on SQLite an
    ordinary session would wait for the write lock)."""
    app = world.app
    inside, release, done = threading.Event(), threading.Event(), threading.Event()

    def writer():
        with app.catalog.session() as s:
            app.audit.append(s, SYSTEM, "test.hold", "test", None)
            s.flush()
            inside.set()
            release.wait(60)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert inside.wait(60)
        with app.catalog.read_session() as s:
            count = s.scalar(select(func.count()).select_from(Recording))
        done.set()
        assert count >= 2 and t.is_alive()  # answered while the writer still held its transaction
    finally:
        release.set()
        t.join(60)


def test_sync_queue_syncs_unsynced_commits_and_reports_failure(world):
    app = world.app
    with app.catalog.unsynced_session() as s:
        seq = app.audit.append(s, SYSTEM, "test.unsynced", "test", None)
    queue = sync_queue(app)
    ticket = queue.request()
    queue.wait(ticket)  # a real fsync of the SQLite log / a synchronous PostgreSQL commit
    queue.sync_soon(queue.request())
    with app.catalog.read_session() as s:
        assert s.get(AuditEntry, seq).action == "test.unsynced"

    class FailingDisk:
        def sync(self):
            raise OSError("EIO")

    broken = SyncQueue(FailingDisk())
    with pytest.raises(SyncFailed):
        broken.wait(broken.request())
    broken.close()
