"""The scan itself: cursor and look-back, dedupe, rule configuration, plugin rules through the
``cf_fis_rules`` hook, the scrubs beyond the four tamper cases, and the job inside ``cf serve``."""

from __future__ import annotations

import json

import pytest
from fis_helpers import alerts_of, ingest, media_rows, object_path, scan_rules, weekday_clock
from sqlalchemy import select, text

from cfcore.authority import SYSTEM
from cfcore.db.models import AuditEntry
from cfcore.db.models_fis import FisCursor
from cfcore.errors import ConfigError
from cfcore.fis.rules import active_rules
from cfcore.fis.scan import scan
from cfcore.fis.scrub import run_scrubs
from hookspecs import hookimpl
from hookspecs.types import FisRule, Severity


@pytest.fixture
def frozen_clock():
    return weekday_clock()


def play(app, user, n, clock=None, step=0):
    from hookspecs.types import Actor, RequestContext

    ctx = RequestContext(actor=Actor(user_id=f"u-{user}", username=user), host="pc", ip="10.0.0.1", function="web")
    seqs = []
    for i in range(n):
        seqs.append(app.audit.record(ctx, "recording.play", "recording", f"{i:032x}", "ok"))
        if clock is not None:
            clock.advance(step)
    return seqs


# --------------------------------------------------------------------------- cursor, batches, dedupe


def test_cursor_moves_and_each_scan_is_audited(app):
    play(app, "carol", 3)
    first = scan_rules(app)
    assert (first.from_seq, first.entries) == (0, 3)
    second = scan_rules(app)
    assert second.from_seq == first.to_seq and second.entries == 1  # the first scan's own fis.scan entry
    with app.catalog.session() as s:
        assert s.get(FisCursor, 1).last_seq == second.to_seq
        scans = s.scalars(select(AuditEntry).where(AuditEntry.action == "fis.scan")).all()
    assert [json.loads(e.detail)["entries"] for e in scans] == [3, 1]


def test_small_batches_give_the_same_single_alert(app, frozen_clock):
    play(app, "carol", 30, frozen_clock, 10)
    report = scan(app, SYSTEM, scrub=False, deliver=False, batch=4)
    assert report.entries == 31  # the 30 plays and the fis.alert entry the scan wrote meanwhile
    (alert,) = alerts_of(app, "mass-access")
    assert len(alert.evidence) == 25


def test_old_findings_are_not_raised_again(app, frozen_clock):
    play(app, "carol", 25)
    scan_rules(app)
    assert len(alerts_of(app, "mass-access")) == 1
    with app.catalog.session() as s:  # a fresh alert store: only the cursor remembers
        s.execute(text("DELETE FROM fis_alerts"))
    frozen_clock.advance(60)
    play(app, "dan", 1)  # new entries within the look-back of the old burst
    scan_rules(app)
    assert alerts_of(app, "mass-access") == []


# --------------------------------------------------------------------------- configuration


def _config(deployment, make_app, toml):
    with deployment.open("a") as f:
        f.write("\n" + toml + "\n")
    return make_app(deployment)


def test_rule_can_be_disabled(deployment, make_app):
    app = _config(deployment, make_app, "[fis.rules.mass-access]\nenabled = false")
    play(app, "carol", 30)
    report = scan_rules(app)
    assert "mass-access" not in report.rules and alerts_of(app, "mass-access") == []


@pytest.mark.parametrize("toml, message", [
    ("[fis.rules.mass-acess]\nthreshold = 3", "names no FIS rule"),
    ("[fis.rules.mass-access]\nthreshhold = 3", "is not an option of rule mass-access"),
    ("[fis.rules.mass-access]\nthreshold = \"many\"", "must be int"),
    ("[fis.rules.mass-access]\nseverity = \"panic\"", "is not a severity"),
    ("[fis.rules.mass-access]\nenabled = \"no\"", "must be true or false"),
])
def test_bad_rule_config_is_a_clear_error(deployment, make_app, toml, message):
    app = _config(deployment, make_app, toml)
    with pytest.raises(ConfigError, match=message) as err:
        active_rules(app)
    if "names no" in message:
        assert "choose one of:" in str(err.value) and "mass-access" in str(err.value)


class NightWatch:
    """A plugin rule, and a broken one."""

    @hookimpl
    def cf_fis_rules(self):
        def exports(entries, now, options):
            for e in entries:
                if e.action == "recording.play" and e.user == options["user"]:
                    yield Severity.INFO, f"{e.user} played", (f"audit:{e.seq}",)

        def broken(entries, now, options):
            raise RuntimeError("bug in a plugin")
            yield  # pragma: no cover

        return [FisRule(name="watch-user", description="plays by one user", check=exports,
                        default_options={"user": "nobody"}),
                FisRule(name="broken", description="always fails", check=broken)]


def test_plugin_rules_run_with_their_options_and_a_broken_one_is_reported(deployment, make_app):
    from cfcore.plugins import get_plugin_manager

    with deployment.open("a") as f:
        f.write('\n[fis.rules.watch-user]\nuser = "carol"\n')
    from cfcore.config import load_config

    pm = get_plugin_manager(load_config(deployment), extra=[("nightwatch", NightWatch())])
    app = make_app(deployment, pm=pm)
    play(app, "carol", 2)
    play(app, "dan", 2)
    report = scan_rules(app)
    assert "broken" in report.rule_errors and "RuntimeError" in report.rule_errors["broken"]
    watch = alerts_of(app, "watch-user")
    assert len(watch) == 2 and all(a.severity == "info" and "carol" in a.summary for a in watch)
    (failed,) = alerts_of(app, "fis.rule-failed")
    assert "broken" in failed.summary and failed.severity == "warning"
    play(app, "erin", 1)
    scan_rules(app)  # still failing: the same alert, not a new one
    assert len(alerts_of(app, "fis.rule-failed")) == 1


def test_two_plugins_with_one_rule_name_are_refused(deployment, make_app):
    from cfcore.config import load_config
    from cfcore.errors import PluginError
    from cfcore.plugins import get_plugin_manager

    class Clash:
        @hookimpl
        def cf_fis_rules(self):
            return [FisRule(name="mass-access", description="again", check=lambda e, n, o: iter(()))]

    app = make_app(deployment, pm=get_plugin_manager(load_config(deployment), extra=[("clash", Clash())]))
    with pytest.raises(PluginError, match="two plugins register 'mass-access'"):
        active_rules(app)


# --------------------------------------------------------------------------- scrubs


def test_clean_archive_scrubs_clean(app, tmp_path):
    ingest(app, tmp_path)
    ingest(app, tmp_path, two_sided=False)
    rep = run_scrubs(app)
    assert rep.findings == []
    assert rep.checks["objects"]["checked"] == 3 and rep.checks["data-keys"]["checked"] == 2
    assert rep.checks["catalog-rows"]["checked"] == 2 and rep.checks["audit-chain"]["checked"] >= 2


def test_orphaned_object_is_reported_but_not_an_ingest_in_flight(app, deployment, tmp_path, frozen_clock):
    from cfcore.archive import new_recording_id, object_key

    ingest(app, tmp_path)
    old_key = object_key("0" * 32, "advisor", frozen_clock.now())
    fresh_key = object_key(new_recording_id(frozen_clock.now()), "advisor", frozen_clock.now())
    for key in (old_key, fresh_key, "stray/file.bin"):
        app.stores.stores["primary"].put(key, b"x" * 64)
    found = {f.evidence[0] for f in run_scrubs(app, only=("orphans",)).findings}
    assert found == {f"object:primary/{old_key}", "object:primary/stray/file.bin"}


def test_destroyed_data_key_of_a_live_recording_is_found(app, tmp_path):
    rec = ingest(app, tmp_path)
    with app.catalog.session() as s:
        s.execute(text("UPDATE data_keys SET wrapped = NULL WHERE recording_id = :id"), {"id": rec})
    found = run_scrubs(app, only=("data-keys", "objects")).findings
    keys = [f for f in found if f.rule == "scrub.data-key"]
    assert len(keys) == 1 and keys[0].evidence == (f"recording:{rec}",)
    assert all(f.rule == "scrub.object-changed" and "no data key" in f.summary for f in found if f not in keys)


def test_deleted_catalog_row_is_found(app, tmp_path):
    rec = ingest(app, tmp_path)
    with app.catalog.session() as s:
        for table in ("media_objects", "mode_segments", "consents", "recording_subjects"):
            s.execute(text(f"DELETE FROM {table} WHERE recording_id = :id"), {"id": rec})
        s.execute(text("DELETE FROM recordings WHERE id = :id"), {"id": rec})
    (f,) = run_scrubs(app, only=("catalog-rows",)).findings
    assert "missing from the catalog" in f.summary and f"recording:{rec}" in f.evidence


def test_a_read_after_a_manipulation_does_not_bless_the_row(app, tmp_path):
    from cfcore.archive import get_recording, row_digest

    rec = ingest(app, tmp_path)
    with app.catalog.session() as s:
        s.execute(text("UPDATE recordings SET legal_hold = :t WHERE id = :id"), {"t": True, "id": rec})
    with app.catalog.session() as s:  # what `cf recordings show` audits: the digest it saw
        app.audit.append(s, SYSTEM, "recording.show", "recording", rec, "ok",
                         {"row_digest": row_digest(get_recording(s, rec))})
    with app.catalog.session() as s:  # and the row is quietly put back
        s.execute(text("UPDATE recordings SET legal_hold = :f WHERE id = :id"), {"f": False, "id": rec})
    (f,) = run_scrubs(app, only=("catalog-rows",)).findings
    assert "changed and perhaps changed back" in f.summary


def test_legitimate_changes_keep_the_rows_vouched_for(app, tmp_path):
    from fis_helpers import make_user

    from cfcore.retention import run_purge, set_hold

    rec = ingest(app, tmp_path)
    gone = ingest(app, tmp_path, two_sided=False)
    comp = make_user(app, "cora", "compliance")
    set_hold(app, comp, rec, "litigation")
    app.clock.advance(40 * 86400)
    assert [p["id"] for p in run_purge(app).purged] == [gone]
    assert run_scrubs(app).findings == []


def test_quick_scrub_finds_a_missing_object_without_decrypting(app, deployment, tmp_path):
    rec = ingest(app, tmp_path)
    object_path(deployment, media_rows(app, rec)[0].key).unlink()
    rep = run_scrubs(app, content=False, only=("objects",))
    assert [f.rule for f in rep.findings] == ["scrub.object-missing"] and rep.checks["objects"]["content"] is False


# --------------------------------------------------------------------------- inside cf serve


def test_scan_job_is_registered_for_cf_serve_and_runs_when_due(app, frozen_clock):
    from cfcore.fis.jobs import JOB_NAME, run_scheduled
    from cfcore.jobs import registered_jobs

    job = registered_jobs(app)[JOB_NAME]
    assert job.run is run_scheduled and job.interval_seconds == 60
    play(app, "carol", 25)
    first = run_scheduled(app)
    assert first["scanned"] and first["scrub"] and first["new_alerts"] == 1
    frozen_clock.advance(60)
    assert run_scheduled(app) == {"scanned": False, "deliveries": 0}  # not due: only retries
    frozen_clock.advance(300)
    again = run_scheduled(app)
    assert again["scanned"] and not again["scrub"]  # the scrubs run hourly


def test_two_scans_at_once_raise_each_alert_once(deployment, make_app, tmp_path):
    import threading

    first, second = make_app(deployment), make_app(deployment)
    ingest(first, tmp_path)
    play(first, "carol", 25)
    with first.catalog.session() as s:
        s.execute(text("UPDATE recordings SET advisor_id = 'A999'"))
    errors = []

    def run(app):
        try:
            scan(app, SYSTEM, deliver=False)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(a,)) for a in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(alerts_of(first, "mass-access")) == 1 and len(alerts_of(first, "scrub.catalog-row")) == 1
