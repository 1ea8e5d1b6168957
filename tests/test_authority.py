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
