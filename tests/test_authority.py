"""Authority is explicit: the system's own work runs under SYSTEM with listed rights; ``None`` is
not a context; the CLI closes the App it opened."""

from __future__ import annotations

import pytest
from access_helpers import PASSWORD, make_user
from click.testing import CliRunner

from cfcore.access.guard import authorize, list_scope
from cfcore.app import App
from cfcore.authority import SYSTEM, SYSTEM_RIGHTS, system_context
from cfcore.errors import AccessDenied
from cfcore.retention import run_purge, set_hold
from hookspecs.types import AccessTarget, ConsentMethod, Decision


def test_none_is_not_a_context(app):
    with pytest.raises(TypeError, match="SYSTEM"):
        authorize(app, None, "recording.play", AccessTarget(kind="recording", id="x"))
    with pytest.raises(TypeError, match="SYSTEM"):
        list_scope(app, None)


def _service_calls():
    """Every service function that once took ``ctx=None`` as "the system, allowed"."""
    import asyncio

    from cfcore.crypto.keyring import rewrap_all
    from cfcore.fis.scan import scan
    from cfcore.storage import check_copies, lock_recording_media, repair_copies
    from cfcore.sync.receive import process_inbox
    from cfcore.sync.send import run_sync

    return {
        "scan": lambda app, ctx: scan(app, ctx, scrub=False, deliver=False),
        "check_copies": lambda app, ctx: check_copies(app, ctx),
        "repair_copies": lambda app, ctx: repair_copies(app, ctx),
        "lock_recording_media": lambda app, ctx: lock_recording_media(app, None, ctx),
        "rewrap_all": lambda app, ctx: rewrap_all(app, ctx),
        "process_inbox": lambda app, ctx: process_inbox(app, ctx),
        "run_sync": lambda app, ctx: asyncio.run(run_sync(app, ctx)),
    }


@pytest.mark.parametrize("name", sorted(_service_calls()))
def test_a_service_function_without_a_context_is_an_error(app, name):
    call = _service_calls()[name]
    with pytest.raises(TypeError, match=rf"{name} needs a request context .*system_context"):
        call(app, None)
    with pytest.raises(TypeError):
        call(app)  # no default: forgetting the context does not even reach the body


def test_the_approvals_job_expires_in_its_own_name(app, frozen_clock, tmp_path):
    from access_helpers import ctx_for
    from archive_helpers import make_wav

    from cfcore.access.approvals import expire, request
    from cfcore.ingest import ingest_wav

    wav, _ = make_wav(tmp_path / "a.wav", 1.0, channels=1)
    rec_id = ingest_wav(app, wav, advisor_id="A100")
    make_user(app, "dana", ["dpo"])
    approval_id = request(app, ctx_for(app, "dana"), "recording.erase", rec_id, reason="test")
    frozen_clock.advance(48 * 3600)
    assert expire(app) == 1
    (entry,) = list(app.audit.entries(action="approval.expire"))
    assert entry.user == "system" and entry.function == "approvals.expire" and entry.target_id == approval_id


def test_the_system_may_do_what_is_listed_and_nothing_else(app):
    assert set(SYSTEM_RIGHTS) == {"retention.run", "keys.rotate"}
    ok = authorize(app, system_context("retention.purge"), "retention.run", AccessTarget(kind="retention"))
    assert ok.decision is Decision.ALLOW and ok.by == "system"
    with pytest.raises(AccessDenied, match="the system may not recording.play"):
        authorize(app, SYSTEM, "recording.play", AccessTarget(kind="recording", id="r1"))
    (entry,) = list(app.audit.entries(action="recording.play"))
    assert entry.user == "system" and entry.outcome == "denied" and "SYSTEM_RIGHTS" in entry.detail["reason"]
    with pytest.raises(AccessDenied):
        list_scope(app, SYSTEM, "recording.list")


def test_retention_without_a_person_runs_as_the_system_within_its_rights(app, tmp_path):
    from archive_helpers import make_wav

    from cfcore.ingest import ingest_wav

    assert run_purge(app, None).purged == []  # the purge job: retention.run is a right of the system
    wav, _ = make_wav(tmp_path / "in.wav", 0.5, channels=1)
    rid = ingest_wav(app, wav, advisor_id="A1")
    with pytest.raises(AccessDenied):  # a legal hold needs a person
        set_hold(app, None, rid, "litigation")


def test_consent_methods_are_one_enum():
    from cfcore.capture.controller import METHODS

    assert METHODS == tuple(m.value for m in ConsentMethod)


def test_the_cli_closes_the_app_it_opened(deployment, monkeypatch, frozen_clock):
    from cfcore.cli.main import cli

    closed = []
    real_close = App.close

    def close(self):
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(App, "close", close)
    app = App.open(deployment, clock=frozen_clock)
    make_user(app, "ann", ["administrator"])
    app.close()
    closed.clear()
    env = {"CF_CONFIG": str(deployment), "CF_USER": "ann", "CF_PASSWORD": PASSWORD, "CF_TOKEN": None}
    result = CliRunner().invoke(cli, ["users", "list", "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(closed) == 1


def test_an_audit_entry_needs_a_context_the_system_names_its_function(app):
    """``audit.append``/``record``/``append_many`` used to take ``ctx=None`` as "the system": an
    entry written in nobody's explicit name. Now that is a TypeError, and the system's own work
    names what runs (``system_context``)."""
    for call in (lambda s: app.audit.append(s, None, "test.action", "thing", "1"),
                 lambda s: app.audit.append_many(s, None, [("test.action", "thing", "1", "ok", None)])):
        with pytest.raises(TypeError), app.catalog.session() as s:
            call(s)
    with pytest.raises(TypeError):
        app.audit.record(None, "test.action", "thing", "1")
    assert not list(app.audit.entries(action="test.action"))
    app.audit.record(system_context("fis.scan"), "test.action", "thing", "2")
    [entry] = app.audit.entries(action="test.action")
    assert (entry.user, entry.function, entry.host) == ("system", "fis.scan", "localhost")
