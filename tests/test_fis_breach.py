"""Art. 33 breach cases: opened by the DPO from alerts, the 72-hour clock from awareness, the
Art. 33(3) particulars, a German and English notification draft; and the CLI end to end."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta

import pytest
from fis_helpers import login_env, make_user, scan_rules, weekday_clock
from sqlalchemy import select

from cfcore.authority import SYSTEM
from cfcore.db.models import AuditEntry
from cfcore.errors import AccessDenied, ConflictError, InputError, NotFound
from cfcore.fis import breach

AWARE = "2026-11-25T08:00:00+00:00"


@pytest.fixture
def frozen_clock():
    return weekday_clock()


def two_alerts(app):
    for kek in ("kek-1", "kek-2"):
        app.audit.record(SYSTEM, "keys.rotate", "keys", kek, "ok", {"previous": "x", "current": kek})
    report = scan_rules(app)
    return [a["id"] for a in report.new_alerts]


PARTICULARS = {
    "nature": "Manipulation of call recording metadata in the archive database",
    "subject_categories": "customers of the advisory desk",
    "subjects_approx": 120,
    "record_categories": "call recordings, call metadata",
    "records_approx": "340",
    "dpo_name": "Dr. Dora Datenschutz",
    "dpo_contact": "dpo@bank.example, +49 30 1234",
    "consequences": "loss of evidential value of the recordings",
    "measures_taken": "database access revoked, rows restored from backup",
    "measures_proposed": "four-eyes database administration",
}


def test_case_lifecycle_with_the_72_hour_clock(app, frozen_clock):
    dpo = make_user(app, "dora", "dpo")
    alerts = two_alerts(app)
    case_id = breach.open_case(app, dpo, alerts, AWARE)
    case = breach.show_case(app, dpo, case_id)
    assert case["deadline"] == "2026-11-28T08:00:00+00:00"
    assert case["remaining_seconds"] == 70 * 3600 and not case["overdue"] and case["status"] == "open"
    assert [a["id"] for a in case["alerts"]] == alerts
    assert set(case["missing"]) == {f.key for f in breach.FIELDS if f.required}
    assert breach.format_remaining(case) == "in 70 h 0 min"
    assert breach.format_remaining(case, "de") == "noch 70 h 0 min"

    case = breach.update_case(app, dpo, case_id, PARTICULARS)
    assert case["missing"] == [] and case["fields"]["subjects_approx"] == 120 and case["fields"]["records_approx"] == 340

    frozen_clock.advance(timedelta(hours=71))  # one hour past the deadline
    case = breach.show_case(app, dpo, case_id)
    assert case["overdue"] and case["remaining_seconds"] == -3600
    assert breach.format_remaining(case) == "OVERDUE by 1 h 0 min"

    with pytest.raises(ConflictError, match="later than 72 hours"):
        breach.update_case(app, dpo, case_id, {}, status="notified")
    case = breach.update_case(app, dpo, case_id, {"delay_reason": "forensic analysis over the weekend"},
                              status="notified")
    assert case["status"] == "notified" and case["notified_at"] == frozen_clock.now().isoformat()
    assert case["overdue"]  # late, and the record says so

    with app.catalog.session() as s:
        actions = [e.action for e in s.scalars(select(AuditEntry).where(AuditEntry.target_kind == "breach_case")
                                               .order_by(AuditEntry.seq))]
        details = [json.loads(e.detail) for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "breach.update"))]
    assert actions[:2] == ["breach.open", "breach.show"] and actions.count("breach.update") == 2
    assert "Dora" not in json.dumps(details)  # field names are audited, not their contents


def test_in_time_notification_and_closing_without_notification(app, frozen_clock):
    dpo = make_user(app, "dora", "dpo")
    alerts = two_alerts(app)
    first = breach.open_case(app, dpo, alerts[:1])
    assert breach.show_case(app, dpo, first)["aware_at"] == frozen_clock.now().isoformat()  # default: now
    case = breach.update_case(app, dpo, first, {}, notified_at="2026-11-26T09:00:00+01:00")
    assert case["status"] == "notified" and not case["overdue"]

    second = breach.open_case(app, dpo, alerts[1:])
    with pytest.raises(ConflictError, match="decision-reason"):
        breach.update_case(app, dpo, second, {}, status="closed")
    case = breach.update_case(app, dpo, second, {"decision_reason": "key rotation was planned maintenance"},
                              status="closed")
    assert case["status"] == "closed" and not case["overdue"] and case["remaining_seconds"] is None


def test_bad_input_is_refused(app):
    dpo = make_user(app, "dora", "dpo")
    alerts = two_alerts(app)
    with pytest.raises(InputError, match="at least one alert"):
        breach.open_case(app, dpo, [])
    with pytest.raises(NotFound, match="no FIS alert nope"):
        breach.open_case(app, dpo, ["nope"])
    with pytest.raises(InputError, match="time zone"):
        breach.open_case(app, dpo, alerts, "2026-11-25T08:00")
    with pytest.raises(InputError, match="future"):
        breach.open_case(app, dpo, alerts, "2027-01-01T00:00:00+00:00")
    case_id = breach.open_case(app, dpo, alerts)
    with pytest.raises(InputError, match="choose one of"):
        breach.update_case(app, dpo, case_id, {"colour": "red"})
    with pytest.raises(InputError, match="whole number"):
        breach.update_case(app, dpo, case_id, {"subjects_approx": "about a hundred"})


def test_only_the_dpo_manages_cases_and_denials_are_audited(app):
    dpo = make_user(app, "dora", "dpo")
    comp = make_user(app, "cora", "compliance")
    alerts = two_alerts(app)
    with pytest.raises(AccessDenied):
        breach.open_case(app, comp, alerts)
    case_id = breach.open_case(app, dpo, alerts)
    with pytest.raises(AccessDenied):
        breach.show_case(app, comp, case_id)
    with app.catalog.session() as s:
        denied = s.scalars(select(AuditEntry).where(AuditEntry.action == "breach.manage",
                                                    AuditEntry.outcome == "denied")).all()
    assert [e.user for e in denied] == ["cora", "cora"]


@pytest.mark.parametrize("lang, heading, todo", [
    ("de", "Meldung einer Verletzung des Schutzes personenbezogener Daten", "[noch zu ergänzen]"),
    ("en", "Notification of a personal data breach", "[to be completed]"),
])
def test_draft_in_german_and_english(app, tmp_path, lang, heading, todo):
    dpo = make_user(app, "dora", "dpo")
    alerts = two_alerts(app)
    case_id = breach.open_case(app, dpo, alerts, AWARE)
    breach.update_case(app, dpo, case_id, {k: v for k, v in PARTICULARS.items() if k != "consequences"})
    md = breach.export_case(app, dpo, case_id, lang, tmp_path / f"draft-{lang}.md").read_text()
    assert md.startswith(f"# {heading}")
    assert PARTICULARS["nature"] in md and PARTICULARS["dpo_contact"] in md and "120" in md
    assert todo in md  # the consequences are still missing and the draft says so
    assert all(a in md for a in alerts) and "key-role-change" in md
    assert "2026-11-28T08:00:00+00:00" in md
    label = "c) Wahrscheinliche Folgen" if lang == "de" else "(c) Likely consequences"
    assert f"## {label}" in md

    html = breach.export_case(app, dpo, case_id, lang, tmp_path / f"draft-{lang}.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and f'<html lang="{lang}">' in html
    assert "Dr. Dora Datenschutz" in html and "<table>" in html
    assert stat.S_IMODE((tmp_path / f"draft-{lang}.html").stat().st_mode) == 0o600
    with pytest.raises(ConflictError, match="exists already"):
        breach.export_case(app, dpo, case_id, lang, tmp_path / f"draft-{lang}.html")


def test_html_draft_escapes_what_was_typed(app, tmp_path):
    dpo = make_user(app, "dora", "dpo")
    case_id = breach.open_case(app, dpo, two_alerts(app))
    breach.update_case(app, dpo, case_id, {"nature": "<script>alert(1)</script>"})
    html = breach.render_case(app, dpo, case_id, "en", "html")
    assert "<script>" not in html and "&lt;script&gt;" in html


# --------------------------------------------------------------------------- the CLI end to end


def test_cli_scan_alerts_and_breach_case(app, run_cf, tmp_path):
    make_user(app, "cora", "compliance")
    make_user(app, "dora", "dpo")
    make_user(app, "adam", "advisor", advisor_id="A1")
    app.audit.record(SYSTEM, "keys.rotate", "keys", "kek-9", "ok", {"previous": "a", "current": "b"})

    scan = run_cf("fis", "scan", "--json", env=login_env("cora"), check=True)
    report = json.loads(scan.stdout)
    # the cf process loads the test-only plugin (CF_NOW): the FIS says so, as it would in production
    test_kit = [a for a in report["new_alerts"] if a["rule"] == "platform.test-plugin"]
    assert len(test_kit) == 1
    (alert,) = [a for a in report["new_alerts"] if a["rule"] != "platform.test-plugin"]
    assert alert["rule"] == "key-role-change" and report["scrub"]["checks"]["audit-chain"]["problems"] == 0

    again = run_cf("fis", "scan", "--quick", env=login_env("cora"), check=True).stdout
    assert "scrubs: audit-chain ok" in again and "new alerts: 0" in again

    listed = json.loads(run_cf("fis", "alerts", "--json", env=login_env("dora"), check=True).stdout)
    assert sorted(a["id"] for a in listed) == sorted([alert["id"], test_kit[0]["id"]])
    human = run_cf("fis", "show", alert["id"], env=login_env("dora"), check=True).stdout
    assert "key-role-change" in human and "evidence:" in human

    denied = run_cf("fis", "alerts", env=login_env("adam"))
    assert denied.returncode == 5 and denied.stderr.startswith("cf: error:") and len(denied.stderr.splitlines()) == 1

    opened = json.loads(run_cf("breach", "open", "--alert", alert["id"], "--aware-at", AWARE, "--json",
                               env=login_env("dora"), check=True).stdout)
    case_id = opened["id"]
    assert opened["deadline"] == "2026-11-28T08:00:00+00:00"
    run_cf("breach", "update", case_id, "--nature", "unplanned key rotation", "--subjects-approx", "0",
           "--dpo-name", "Dora", "--dpo-contact", "dpo@bank.example", env=login_env("dora"), check=True)
    shown = json.loads(run_cf("breach", "show", case_id, "--json", env=login_env("dora"), check=True).stdout)
    assert shown["fields"]["nature"] == "unplanned key rotation" and shown["fields"]["subjects_approx"] == 0
    assert shown["remaining_seconds"] == 70 * 3600
    human = run_cf("breach", "show", case_id, env=login_env("dora"), check=True).stdout
    assert "deadline 2026-11-28T08:00:00+00:00 - in 70 h 0 min" in human

    out = tmp_path / "meldung.md"
    run_cf("breach", "export", case_id, "--lang", "de", "--out", str(out), env=login_env("dora"), check=True)
    text = out.read_text()
    assert "Art. 33 DSGVO" in text and "unplanned key rotation" in text and alert["id"] in text
    cases = json.loads(run_cf("breach", "list", "--json", env=login_env("dora"), check=True).stdout)
    assert [c["id"] for c in cases] == [case_id]

    bad = run_cf("breach", "export", case_id, "--lang", "fr", "--out", str(tmp_path / "x.md"), env=login_env("dora"))
    assert bad.returncode == 2


def test_web_api_for_alerts_and_cases(app, frozen_clock):
    import httpx
    from access_helpers import api_server

    from cfcore.access.users import create_token

    dpo = make_user(app, "dora", "dpo")
    adam = make_user(app, "adam", "advisor", advisor_id="A1")
    alerts = two_alerts(app)
    token = create_token(app, dpo, name="test", origin_token=None).token
    adam_token = create_token(app, adam, name="test", origin_token=None).token
    with api_server(app) as server, httpx.Client(base_url=server.base, timeout=30) as client:
        _alerts_and_cases_over_http(client, token, adam_token, alerts)


def _alerts_and_cases_over_http(client, token, adam_token, alerts):
    auth = {"Authorization": f"Bearer {token}"}
    listed = client.get("/api/fis/alerts", headers=auth)
    assert listed.status_code == 200 and sorted(a["id"] for a in listed.json()) == sorted(alerts)
    assert client.get("/api/fis/alerts", headers={"Authorization": f"Bearer {adam_token}"}).status_code == 403
    created = client.post("/api/breach", headers=auth, json={"alerts": alerts, "aware_at": AWARE})
    assert created.status_code == 201
    case_id = created.json()["id"]
    patched = client.patch(f"/api/breach/{case_id}", headers=auth, json={"fields": {"nature": "test"}})
    assert patched.status_code == 200 and patched.json()["fields"]["nature"] == "test"
    draft = client.get(f"/api/breach/{case_id}/draft", headers=auth, params={"lang": "en"})
    assert draft.status_code == 200 and draft.text.startswith("# Notification of a personal data breach")
    assert datetime.fromisoformat(client.get(f"/api/breach/{case_id}", headers=auth).json()["deadline"]) == \
        datetime(2026, 11, 28, 8, tzinfo=UTC)
