"""Issue 18's done-when, end to end on real servers: the transcript of an espeak-ng call appears
through GetTranscriptLink for its advisor, is refused to another advisor until four-eyes approves,
and is gone after the purge — and the CRM hears of the recording and of its purge, once each,
even when it was down and CallFort restarted in between."""

from __future__ import annotations

from datetime import timedelta

import pytest
import zeep
from access_helpers import ctx_for
from crm_helpers import crm_world

from cfcore import outbox
from cfcore.access import approvals
from cfcore.app import App
from cfcore.retention import run_purge


@pytest.fixture
def world(tmp_path):
    with crm_world(tmp_path) as w:
        yield w


def _code(e):
    return e.value.code.split(":")[-1]


def test_transcript_through_the_crm_four_eyes_and_purge(world):
    rec = world.rec_adam
    # 1. its advisor gets the transcript through a link, opened with their own session
    link = world.call("adam", "GetTranscriptLink", CallId=rec)
    with world.session("adam") as c:
        words = c.get(link.Url).json()["segments"]
    assert any(w["text"] == "help" and w["role"] == "advisor" for w in words), words
    assert any(w["text"] == "money" and w["role"] == "customer" for w in words)

    # 2. another advisor is refused until four-eyes approves
    with pytest.raises(zeep.exceptions.Fault) as e:
        world.call("berta", "GetTranscriptLink", CallId=rec)
    assert _code(e) == "Client.ApprovalRequired"
    with world.session("berta") as c:
        assert c.get(link.Url).status_code == 403  # adam's link is no use to berta
    req = world.call("berta", "RequestAccess", CallId=rec, Purpose="Transcript", Reason="customer called berta")
    approvals.approve(world.app, ctx_for(world.app, "sue"), req.RequestId)
    granted = world.call("berta", "GetTranscriptLink", CallId=rec, RequestId=req.RequestId)
    with world.session("berta") as c:
        assert any(w["text"] == "money" for w in c.get(granted.Url).json()["segments"])

    # 3. gone after the purge (retention over), and the CRM is told
    world.clock.advance(timedelta(days=366 * 8))
    report = run_purge(world.app)
    assert rec in [p["id"] for p in report.purged]
    with pytest.raises(zeep.exceptions.Fault) as e:
        world.call("adam", "GetTranscriptLink", CallId=rec)
    assert _code(e) == "Client.NotFoundOrForbidden"
    with pytest.raises(zeep.exceptions.Fault) as e:
        world.call("adam", "GetCallMetadata", CallId=rec)
    assert _code(e) == "Client.NotFoundOrForbidden"
    world.tokens.pop("adam")  # the old session has timed out in eight years: log in again
    with world.session("adam") as c:
        assert c.get(link.Url).status_code == 403  # the old link finds nothing
    from cfcore import transcripts

    assert transcripts.status(world.app, rec) is None
    purged = [f for op, f in world.sim.received if op == "NotifyRecordingPurged"]
    assert [f["CallId"] for f in purged if f["CallId"] == rec] == [rec]
    assert next(f for f in purged if f["CallId"] == rec)["Reason"] == "retention-expired"


def test_notifications_survive_a_crm_outage_and_a_restart_once_each(world, tmp_path):
    from speech_helpers import ADVISOR_HELLO, call_wav

    from cfcore.ingest import ingest_wav

    world.sim.stop()  # the CRM is down
    wav = call_wav(tmp_path / "late.wav", 3.0, advisor=[(0.5, ADVISOR_HELLO)])
    rec = ingest_wav(world.app, wav, advisor_id="A1", customer_ids=["K-5"], consent_at=0.5,
                     started="2026-11-25T10:00:00+00:00")  # archived although the CRM is down
    [row] = [r for r in outbox.pending(world.app) if r.subject_id == rec]
    assert row.attempts == 1 and row.plugin == "crm_soap" and "Connection" in (row.last_error or "")
    from sqlalchemy import select

    from cfcore.db.models import AuditEntry

    with world.app.catalog.session() as s:
        errors = s.scalars(select(AuditEntry).where(AuditEntry.action == "recording.archived_hook",
                                                    AuditEntry.target_id == rec)).all()
    assert [e.outcome for e in errors] == ["error"]

    # CallFort restarts (a new process would open the same deployment); the CRM comes back
    world.app.close()
    again = App.open(world.deployment, clock=world.clock)
    try:
        world.sim.start()
        assert outbox.deliver(again) == {"delivered": 0, "failed": 0, "dead": 0}  # back-off: not due yet
        world.clock.advance(timedelta(seconds=6))
        assert outbox.deliver(again)["delivered"] == 1
        got = [f for op, f in world.sim.received if op == "NotifyCallRecorded" and f["CallId"] == rec]
        assert len(got) == 1 and got[0]["IdempotencyKey"] == row.id
        # a repeat with the same key (e.g. the answer was lost) changes nothing at the CRM
        from cf_crm_soap.notify import notify_recorded

        from cfcore.archive import get_recording, recording_info
        from cfcore.gateway import plugin_context

        with again.catalog.session() as s:
            info = recording_info(get_recording(s, rec))
        notify_recorded(plugin_context(again, "crm_soap"), info, row.id)
        assert world.sim.duplicates == 1
        assert len([1 for op, f in world.sim.received if f["CallId"] == rec]) == 1
        assert not [r for r in outbox.pending(again) if r.subject_id == rec]
    finally:
        again.close()
