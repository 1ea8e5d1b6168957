"""A failing plugin never silences the others: every hook is called implementation by
implementation, failures are logged and audited by plugin name, and fail-closed hooks stay closed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from archive_helpers import make_wav

from cfcore.errors import PluginError
from cfcore.ingest import ingest_wav
from cfcore.plugins import get_plugin_manager
from hookspecs import hookimpl
from hookspecs.types import (
    AccessTarget,
    Actor,
    AudioClip,
    BrokenCopy,
    ChannelRole,
    Decision,
    Direction,
    RecordingInfo,
    RequestContext,
    StoreType,
    Tombstone,
    Transcript,
)

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


class Listener:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def cf_recording_archived(self, recording):
        self.seen.append(f"archived:{recording.id}")

    @hookimpl
    def cf_store_copy_broken(self, event):
        self.seen.append(f"broken:{event.key}")

    @hookimpl
    def cf_after_purge(self, tombstone):
        self.seen.append(f"purged:{tombstone.recording_id}")


class Raising:
    @hookimpl(tryfirst=True)
    def cf_recording_archived(self, recording):
        raise RuntimeError("CRM down")

    @hookimpl(tryfirst=True)
    def cf_store_copy_broken(self, event):
        raise ConnectionError("pager unreachable")

    @hookimpl(tryfirst=True)
    def cf_after_purge(self, tombstone):
        raise ValueError("bad tombstone handler")


def failures(app):
    return [(e.target_id, e.detail["hook"], e.detail["error"]) for e in app.audit.entries(action="plugin.hook_failed")]


def test_a_raising_listener_does_not_silence_the_later_ones(app, tmp_path):
    listener, raising = Listener(), Raising()
    app.pm.register(listener, "listener")
    app.pm.register(raising, "raiser")  # registered last and tryfirst: called first
    wav, _ = make_wav(tmp_path / "in.wav", 0.5, channels=1)
    rid = ingest_wav(app, wav, advisor_id="A1")
    app.pm.store_copy_broken(BrokenCopy(store="s1", key="ab/cd.cfe", problem="missing", detected_at=NOW))
    app.pm.after_purge(Tombstone(recording_id=rid, started_at=NOW, ended_at=NOW, deleted_at=NOW,
                                 reason="expired", rule="r"))
    assert listener.seen == [f"archived:{rid}", "broken:ab/cd.cfe", f"purged:{rid}"]
    assert failures(app) == [("raiser", "cf_recording_archived", "RuntimeError: CRM down"),
                             ("raiser", "cf_store_copy_broken", "ConnectionError: pager unreachable"),
                             ("raiser", "cf_after_purge", "ValueError: bad tombstone handler")]
    (entry,) = list(app.audit.entries(action="recording.archived_hook"))
    assert entry.target_id == rid and entry.detail["plugin"] == "raiser"


def test_a_failing_discovery_hook_leaves_the_other_registrations(app):
    class BadStores:
        @hookimpl
        def cf_media_stores(self):
            raise ImportError("boto3 missing")

    class GoodStores:
        @hookimpl
        def cf_media_stores(self):
            return [StoreType(name="memory-x", create=lambda o, c: None)]

    app.pm.register(GoodStores(), "good-stores")
    app.pm.register(BadStores(), "bad-stores")
    types = app.pm.store_types()
    assert {"memory-x", "local"} <= set(types)
    assert app.pm.registered_by("cf_media_stores", "memory-x") == "good-stores"
    assert ("bad-stores", "cf_media_stores", "ImportError: boto3 missing") in failures(app)


def test_a_registration_of_the_wrong_type_is_reported_not_used():
    class Wrong:
        @hookimpl
        def cf_media_stores(self):
            return ["not a StoreType"]

    seen = []
    mgr = get_plugin_manager(None, entry_points=[], extra=[("wrong", Wrong())])
    mgr.on_failure = seen.append
    assert mgr.store_types() == {}
    assert seen[0].plugin == "wrong" and "not StoreType" in seen[0].error


def _ctx():
    actor = Actor(user_id="u1", username="ann", roles={"administrator"})
    return RequestContext(actor=actor, host="pc", ip="10.0.0.1", function="test")


def test_a_failing_access_policy_denies_in_its_own_name():
    class Broken:
        @hookimpl
        def cf_access_decision(self, actor, action, target, context):
            raise KeyError("rules file")

    mgr = get_plugin_manager(None, entry_points=[], extra=[("works-council", Broken())])
    ctx = _ctx()
    answers = mgr.access_decisions(ctx.actor, "audit.read", AccessTarget(kind="audit"), ctx)
    deny = [a for a in answers if a.decision is Decision.DENY]
    assert deny and deny[0].by == "works-council" and "failed" in deny[0].reason


def _info():
    return RecordingInfo(id="r1", site="a", source="s", advisor_id="A1", direction=Direction.INBOUND,
                         started_at=NOW, ended_at=NOW, two_sided=True, retention_class="mifid")


def test_a_failing_retention_rule_stops_the_decision_and_a_failing_veto_keeps():
    class Rules:
        @hookimpl
        def cf_retention_rules(self, recording):
            raise RuntimeError("HR system down")

        @hookimpl
        def cf_before_purge(self, recording):
            raise RuntimeError("case system down")

    mgr = get_plugin_manager(None, entry_points=[], extra=[("hr", Rules())])
    with pytest.raises(PluginError, match="retention rules of plugin hr failed"):
        mgr.retention_rules(_info(), {})
    assert mgr.purge_veto(_info()) == "veto plugin hr failed: RuntimeError"


def test_a_failing_transcriber_passes_to_the_next():
    class Broken:
        @hookimpl(tryfirst=True)
        def cf_transcribe(self, audio, language):
            raise RuntimeError("model missing")

    class Works:
        @hookimpl
        def cf_transcribe(self, audio, language):
            return Transcript(recording_id=audio.recording_id, language=language, text="hallo", engine="w")

    mgr = get_plugin_manager(None, entry_points=[], extra=[("works", Works()), ("broken", Broken())])
    clip = AudioClip(recording_id="r1", role=ChannelRole.ADVISOR, pcm_s16le=b"\0\0")
    assert mgr.transcribe(clip, "de").text == "hallo"


def test_wrapper_implementations_are_refused():
    class Wrapper:
        @hookimpl(wrapper=True)
        def cf_recording_archived(self, recording):
            yield

    mgr = get_plugin_manager(None, entry_points=[], extra=[("wrapper", Wrapper())])
    st = mgr.status("wrapper")
    assert st.status == "failed" and "wrapper" in st.error
    assert mgr.pm.get_plugin("wrapper") is None
