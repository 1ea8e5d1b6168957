"""Each manipulation — a catalog row edited in the database, a byte flipped in a media object, an
object deleted from the store, an audit row deleted — is found by the scan and the alert arrives
by e-mail at a real SMTP server and by a signed webhook at a real HTTP server."""

from __future__ import annotations

import json

import pytest
from fis_helpers import (
    WEBHOOK_SECRET,
    SmtpServer,
    WebhookServer,
    ingest,
    media_rows,
    notify_config,
    object_path,
    weekday_clock,
)
from sqlalchemy import select, text

from cfcore.authority import SYSTEM
from cfcore.db.models import AuditEntry
from cfcore.db.models_fis import FisDelivery
from cfcore.fis.scan import scan
from cfcore.testing import free_tcp_port


@pytest.fixture
def frozen_clock():
    return weekday_clock()


@pytest.fixture
def servers(frozen_clock):
    smtp = SmtpServer(free_tcp_port()).start()
    hook = WebhookServer(free_tcp_port(), WEBHOOK_SECRET, frozen_clock.now).start()
    yield smtp, hook
    smtp.stop()
    hook.stop()


@pytest.fixture
def fis_app(deployment, make_app, servers, monkeypatch):
    monkeypatch.setenv("CF_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
    smtp, hook = servers
    with deployment.open("a") as f:
        f.write(notify_config(smtp.port, hook.port))
    return make_app(deployment)


def _archive_seq(app, rec_id):
    with app.catalog.session() as s:
        return s.scalar(select(AuditEntry.seq).where(AuditEntry.action == "recording.archive",
                                                     AuditEntry.target_id == rec_id))


def _tamper(case, app, deployment, rec_id):
    """Do the manipulation; return (rule expected, evidence the alert must name)."""
    media = media_rows(app, rec_id)[0]
    if case == "row-edited":
        with app.catalog.session() as s:
            s.execute(text("UPDATE recordings SET advisor_id = 'A999' WHERE id = :id"), {"id": rec_id})
        return "scrub.catalog-row", {f"recording:{rec_id}", f"audit:{_archive_seq(app, rec_id)}"}
    if case == "byte-flipped":
        path = object_path(deployment, media.key)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.chmod(0o600)
        path.write_bytes(bytes(data))
        return "scrub.object-changed", {f"recording:{rec_id}", f"object:primary/{media.key}"}
    if case == "object-deleted":
        object_path(deployment, media.key).unlink()
        return "scrub.object-missing", {f"recording:{rec_id}", f"object:primary/{media.key}"}
    if case == "audit-row-deleted":
        seq = _archive_seq(app, rec_id)
        with app.catalog.session() as s:
            s.execute(text("DELETE FROM audit_log WHERE seq = :seq"), {"seq": seq})
        return "scrub.audit-chain", {f"audit:{seq}"}
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["row-edited", "byte-flipped", "object-deleted", "audit-row-deleted"])
def test_tamper_is_alerted_by_mail_and_webhook(case, fis_app, deployment, tmp_path, servers):
    app = fis_app
    smtp, hook = servers
    rec_id = ingest(app, tmp_path)
    ingest(app, tmp_path, two_sided=False)
    app.audit.checkpoint()

    clean = scan(app, SYSTEM)
    assert clean.new_alerts == [], clean.new_alerts  # an untouched archive raises nothing
    assert all(not info.get("problems") for info in clean.scrub.checks.values()), clean.scrub.checks

    rule, evidence = _tamper(case, app, deployment, rec_id)
    report = scan(app, SYSTEM)
    hits = [a for a in report.new_alerts if a["rule"] == rule]
    assert len(hits) == 1, report.as_dict()
    alert = hits[0]
    assert evidence <= set(alert["evidence"])
    assert alert["severity"] == "critical"
    assert all(d.ok for d in report.deliveries), [d.as_dict() for d in report.deliveries]

    # e-mail: one message per alert, naming rule, id and evidence; the JSON attachment is the alert
    mails = smtp.messages[-len(report.new_alerts):]
    assert {m["message"]["X-CallFort-Alert-Id"] for m in mails} == {a["id"] for a in report.new_alerts}
    (mail,) = [m for m in mails if m["message"]["X-CallFort-Alert-Id"] == alert["id"]]
    assert mail["to"] == ["dpo@bank.example"] and mail["from"] == "callfort@bank.example"
    assert rule in mail["message"]["Subject"] and "CRITICAL" in mail["message"]["Subject"]
    body = mail["message"].get_body(preferencelist=("plain",)).get_content()
    for ev in evidence:
        assert ev in body
    attachment = next(p for p in mail["message"].iter_attachments() if p.get_content_type() == "application/json")
    payload = json.loads(attachment.get_content())
    assert payload["id"] == alert["id"] and payload["rule"] == rule and set(payload["evidence"]) >= evidence
    assert "+4930123456" not in mail["message"].as_string()  # no customer data, only ids

    # webhook: a signed POST (the server verified the HMAC and the timestamp), same alert
    assert all(r["valid"] for r in hook.requests), "a webhook request failed the signature check"
    (post,) = hook.by_alert(alert["id"])
    assert post["path"] == "/hooks/callfort"
    assert post["json"]["event"] == "callfort.alert"
    assert post["json"]["alert"]["rule"] == rule and set(post["json"]["alert"]["evidence"]) >= evidence
    assert post["headers"]["X-CallFort-Alert-Id"] == alert["id"]

    # every delivery is recorded and audited
    with app.catalog.session() as s:
        rows = s.scalars(select(FisDelivery).where(FisDelivery.alert_id == alert["id"])).all()
        assert {r.notifier for r in rows} == {"dpo-mail", "soc-hook"}
        assert all(r.delivered_at is not None and r.attempts == 1 for r in rows)
        audited = s.scalars(select(AuditEntry).where(AuditEntry.action == "fis.delivery",
                                                     AuditEntry.target_id == alert["id"])).all()
        assert sorted(json.loads(e.detail)["notifier"] for e in audited) == ["dpo-mail", "soc-hook"]
        assert all(e.outcome == "ok" for e in audited)
        assert s.scalar(select(AuditEntry.seq).where(AuditEntry.action == "fis.alert",
                                                     AuditEntry.target_id == alert["id"])) is not None

    # the same manipulation found again is the same alert: nothing new is sent
    sent = (len(smtp.messages), len(hook.requests))
    again = scan(app, SYSTEM)
    assert [a for a in again.new_alerts if a["rule"] == rule] == []
    assert (len(smtp.messages), len(hook.requests)) == sent
