"""Pickup of MixMonitor's files: over SFTP from a real asyncssh server on loopback, from a shared
directory; the PBX's files go only after the archive confirmed them; an interrupted pickup
resumes without loss or duplicates."""

from __future__ import annotations

import asyncio

import pytest
from cf_pbx_asterisk.journal import Journal
from sqlalchemy import func, select

from cfcore.capture import runner as runner_mod
from cfcore.db.models import Recording
from tests.asterisk_sim import (
    SftpServer,
    assert_segments,
    channel,
    has_tone,
    is_silent,
    make_user,
    recording,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]




def recordings_count(app) -> int:
    with app.catalog.session() as s:
        return s.scalar(select(func.count()).select_from(Recording))


async def test_sftp_pickup_from_the_asterisk_host(harness, tmp_path, frozen_clock):
    spool = tmp_path / "pbx-spool"
    spool.mkdir()
    sftp = await SftpServer(spool, tmp_path / "ssh").start()
    try:
        plugin = {"sftp_host": "127.0.0.1", "sftp_port": sftp.port, "sftp_username": "asterisk",
                  "sftp_key": str(sftp.client_key_path), "sftp_known_hosts": str(sftp.known_hosts), "sftp_dir": "/"}
        async with harness(plugin=plugin) as h:
            anna = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
            sftp.fail_gets = 1  # the first download breaks off half-way: retried from the start
            call = h.sim.inbound_call("+4930123456", "PJSIP/100")
            cid = await h.answered(call)
            frozen_clock.advance(3)
            await h.trigger(anna, cid, "record_both")
            frozen_clock.advance(57)  # a minute: larger than one SFTP read
            h.sim.hangup(call)
            rec_id = await h.archived(cid)
            await h.sim.wait_for(lambda: not h.source._pickups, what="pickup finished")
            assert sorted(sftp.removed) == sorted([f"{cid}-adv.wav", f"{cid}-cus.wav"])
            assert not list(spool.glob("*.wav"))  # removed on the PBX, over SFTP
            journal = h.source.journal
            assert not list(journal.spool_dir.rglob("*")) and not list(journal.legs_dir.glob("*.json"))
            assert sftp.fail_gets == 0
        assert_segments(h.app, rec_id, [(0.0, 3.0, "advisor_only"), (3.0, 60.0, "both")])
        cus = channel(h.app, rec_id, "customer")
        assert len(cus) == 60 * 8000 * 2
        assert is_silent(cus, 0, 3) and has_tone(cus, 3, 60)
        assert recordings_count(h.app) == 1
    finally:
        await sftp.stop()


async def test_pbx_files_stay_until_the_archive_confirms(harness, frozen_clock, monkeypatch):
    """The archive fails (e.g. the store is down): the PBX keeps the files and the plugin retries."""
    real = runner_mod.controller.archive_call
    failures = []

    def flaky(app, call):
        if len(failures) < 2:
            failures.append(call.call_id)
            raise OSError("store unreachable")
        return real(app, call)

    monkeypatch.setattr(runner_mod.controller, "archive_call", flaky)
    async with harness() as h:
        call = h.sim.outbound_call("PJSIP/101", "+4940555777")
        cid = await h.answered(call)
        frozen_clock.advance(5)
        h.sim.hangup(call)
        await h.sim.wait_for(lambda: len(failures) >= 1, what="first hand-over attempt")
        files = sorted(p.name for p in h.spool.glob("*.wav"))
        assert files == sorted([f"{cid}-adv.wav", f"{cid}-cus.wav"])  # still on the PBX
        rec_id = await h.archived(cid)
        await h.sim.wait_for(lambda: not h.source._pickups, what="pickup finished")
        assert not list(h.spool.glob("*.wav"))
    assert len(failures) == 2 and recordings_count(h.app) == 1
    assert_segments(h.app, rec_id, [(0.0, 5.0, "advisor_only")])


async def test_interrupted_pickup_resumes_without_loss_or_duplicate(harness, frozen_clock, monkeypatch):
    """The runner dies after the archive committed but before the plugin noted the recording id
    (the worst moment). After the restart the leg is handed over again: the archive recognises
    it, no second recording appears, and only then are the PBX's files removed."""
    real_finished = runner_mod.CoreSink.call_finished
    committed: list[str] = []
    never = asyncio.Event()

    async def dies_after_commit(self, call):
        rec_id = await real_finished(self, call)
        committed.append(rec_id)
        await never.wait()  # the process "dies" here: the plugin never hears the id

    monkeypatch.setattr(runner_mod.CoreSink, "call_finished", dies_after_commit)
    async with harness() as h:
        anna = make_user(h.app, "anna", ["advisor"], advisor_id="A100")
        call = h.sim.inbound_call("+4930123456", "PJSIP/100")
        cid = await h.answered(call)
        frozen_clock.advance(2)
        await h.trigger(anna, cid, "record_both")
        frozen_clock.advance(2)
        h.sim.hangup(call)
        await h.sim.wait_for(lambda: committed, what="archive commit")
        data_dir = h.source.journal.root
        await h.stop_runner()
        journal = Journal(data_dir)
        assert journal.handed_over(cid) is None and journal.load_leg(cid)["state"] == "finished"
        assert len(list(h.spool.glob("*.wav"))) == 2  # nothing removed yet
        monkeypatch.setattr(runner_mod.CoreSink, "call_finished", real_finished)
        await h.start_runner()
        rec_id = await h.archived(cid)
        await h.sim.wait_for(lambda: not h.source._pickups, what="pickup finished")
        assert not list(h.spool.glob("*.wav"))
        assert Journal(data_dir).load_leg(cid) is None
    assert rec_id == committed[0]
    assert recordings_count(h.app) == 1
    assert_segments(h.app, rec_id, [(0.0, 2.0, "advisor_only"), (2.0, 4.0, "both")])
    assert [c.by_user for c in recording(h.app, rec_id).consents] == ["anna"]


async def test_journal_survives_a_torn_line(tmp_path):
    j = Journal(tmp_path)
    for cid in ("1.0_1.1", "1.0_1.2", "1.0_1.3"):
        j.save_leg({"call_id": cid, "state": "finished"})
    j.mark_handed_over("1.0_1.1", "a" * 32)
    with open(j.handed_path, "a") as f:
        f.write('{"call_id": "1.0_1.2", "recor')  # a crash mid-write
    j2 = Journal(tmp_path)
    assert j2.handed_over("1.0_1.1") == "a" * 32 and j2.handed_over("1.0_1.2") is None
    j2.mark_handed_over("1.0_1.3", "b" * 32)
    assert Journal(tmp_path).handed_over("1.0_1.3") == "b" * 32
    j2.remove_leg("1.0_1.3")
    assert Journal(tmp_path).handed_over("1.0_1.3") is None
    assert sorted(r["call_id"] for r in Journal(tmp_path).legs()) == ["1.0_1.1", "1.0_1.2"]
    with pytest.raises(ValueError):
        j.save_leg({"call_id": "../escape"})
