"""Alert delivery: e-mail through a real aiosmtpd server (plain, and STARTTLS + AUTH with a
self-signed certificate), signed webhooks to a real HTTP server, retries with back-off until a
server that was down comes up, every attempt audited."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from fis_helpers import (
    WEBHOOK_SECRET,
    SmtpServer,
    WebhookServer,
    notify_config,
    self_signed_cert,
    server_tls_context,
    weekday_clock,
)
from sqlalchemy import select

from cfcore.authority import SYSTEM
from cfcore.config import load_config
from cfcore.db.models import AuditEntry
from cfcore.db.models_fis import FisDelivery
from cfcore.errors import ConfigError
from cfcore.fis.deliver import check_notifiers, deliver_pending, pending_count
from cfcore.fis.scan import scan
from cfcore.testing import free_tcp_port


@pytest.fixture
def frozen_clock():
    return weekday_clock()


@pytest.fixture(autouse=True)
def webhook_secret(monkeypatch):
    monkeypatch.setenv("CF_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)


def raise_alert(app, n=1):
    """A real alert through a real rule: a key rotation is a key change (``key-role-change``)."""
    for _ in range(n):
        app.audit.record(SYSTEM, "keys.rotate", "keys", "kek-test", "ok", {"previous": "a", "current": "b"})
    report = scan(app, SYSTEM, scrub=False)
    assert len(report.new_alerts) == n
    return report


def deliveries(app):
    with app.catalog.session() as s:
        return {(d.alert_id, d.notifier): d for d in s.scalars(select(FisDelivery))}


def delivery_audit(app):
    with app.catalog.session() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == "fis.delivery").order_by(AuditEntry.seq))
        return [(json.loads(e.detail)["notifier"], e.outcome, json.loads(e.detail)["attempt"]) for e in rows]


def test_smtp_with_starttls_and_authentication(deployment, make_app, tmp_path, monkeypatch):
    cert, key = self_signed_cert(tmp_path)
    smtp = SmtpServer(free_tcp_port(), tls_context=server_tls_context(cert, key),
                      credentials=("callfort", "mail-pass-123")).start()
    try:
        monkeypatch.setenv("CF_TEST_SMTP_PASSWORD", "mail-pass-123")
        with deployment.open("a") as f:
            f.write(f"""
[notify.dpo-mail]
type = "smtp"
host = "127.0.0.1"
port = {smtp.port}
starttls = true
username = "callfort"
password = {{ env = "CF_TEST_SMTP_PASSWORD" }}
cafile = "{cert}"
sender = "callfort@bank.example"
recipients = ["dpo@bank.example", "ciso@bank.example"]
""")
        app = make_app(deployment)
        report = raise_alert(app)
        assert [d.ok for d in report.deliveries] == [True], [d.as_dict() for d in report.deliveries]
        (mail,) = smtp.messages
        assert mail["tls"] and mail["authenticated"]
        assert [login for login, _ in smtp.box.logins] == ["callfort"]
        assert mail["to"] == ["dpo@bank.example", "ciso@bank.example"]
        assert mail["message"]["X-CallFort-Alert-Id"] == report.new_alerts[0]["id"]
        assert "key-role-change" in mail["message"]["Subject"]
    finally:
        smtp.stop()


def test_smtp_wrong_password_fails_and_is_retried(deployment, make_app, tmp_path, frozen_clock, monkeypatch):
    monkeypatch.setenv("CF_TEST_WRONG_PW", "not-the-right-one")
    cert, key = self_signed_cert(tmp_path)
    smtp = SmtpServer(free_tcp_port(), tls_context=server_tls_context(cert, key),
                      credentials=("callfort", "the-right-one")).start()
    try:
        with deployment.open("a") as f:
            f.write(f"""
[notify.dpo-mail]
type = "smtp"
host = "127.0.0.1"
port = {smtp.port}
starttls = true
username = "callfort"
password = {{ env = "CF_TEST_WRONG_PW" }}
cafile = "{cert}"
sender = "callfort@bank.example"
recipients = ["dpo@bank.example"]
""")
        app = make_app(deployment)
        report = raise_alert(app)
        (res,) = report.deliveries
        assert not res.ok and "SMTPAuthenticationError" in res.error and "not-the-right-one" not in res.error
        assert smtp.messages == []
        assert res.next_try == frozen_clock.now() + timedelta(seconds=30)
        assert delivery_audit(app) == [("dpo-mail", "failed", 1)]
    finally:
        smtp.stop()


def test_smtp_refuses_to_send_a_password_in_clear(deployment, make_app, monkeypatch):
    monkeypatch.setenv("CF_TEST_PW", "p")
    with deployment.open("a") as f:
        f.write('\n[notify.m]\ntype = "smtp"\nhost = "127.0.0.1"\nsender = "a@b.example"\nrecipients = ["c@d.example"]\n'
                'username = "u"\npassword = { env = "CF_TEST_PW" }\n')
    app = make_app(deployment)
    checks = check_notifiers(app)
    assert "in clear" in checks["m"]  # over plaintext SMTP
    with deployment.open("a") as f:
        f.write('\n[notify.n]\ntype = "smtp"\nhost = "127.0.0.1"\nsender = "a@b.example"\nrecipients = ["c@d.example"]\n'
                'starttls = true\nusername = "u"\npassword = "in-the-file"\n')
    with pytest.raises(ConfigError, match=r"notify\.n\.password is a secret"):  # written into the config file
        load_config(deployment)


def test_unknown_notifier_type_names_the_choices(deployment, make_app):
    with deployment.open("a") as f:
        f.write('\n[notify.pager]\ntype = "sms"\n')
    app = make_app(deployment)
    assert "choose one of: smtp, webhook" in check_notifiers(app)["pager"]
    with deployment.open("a") as f:
        f.write('\n[notify.broken]\nurl = "http://x"\n')
    with pytest.raises(ConfigError, match="notify.broken.type is required"):
        check_notifiers(make_app(deployment))


def test_servers_down_first_then_up_the_retry_delivers(deployment, make_app, frozen_clock):
    smtp_port, hook_port = free_tcp_port(), free_tcp_port()
    with deployment.open("a") as f:
        f.write(notify_config(smtp_port, hook_port))
    app = make_app(deployment)

    report = raise_alert(app)  # both servers are down
    alert_id = report.new_alerts[0]["id"]
    assert sorted((d.notifier, d.ok) for d in report.deliveries) == [("dpo-mail", False), ("soc-hook", False)]
    assert all("127.0.0.1" not in (d.error or "") or "webhook" in d.error for d in report.deliveries)
    assert pending_count(app) == 2

    assert deliver_pending(app) == []  # not due yet: back-off
    frozen_clock.advance(31)
    second = deliver_pending(app)  # still down: second attempt, the wait doubles
    assert [d.attempts for d in second] == [2, 2] and not any(d.ok for d in second)
    assert all(d.next_try == frozen_clock.now() + timedelta(seconds=60) for d in second)

    smtp = SmtpServer(smtp_port).start()
    hook = WebhookServer(hook_port, WEBHOOK_SECRET, frozen_clock.now).start()
    try:
        frozen_clock.advance(61)
        third = deliver_pending(app)
        assert sorted((d.notifier, d.ok, d.attempts) for d in third) == [("dpo-mail", True, 3), ("soc-hook", True, 3)]
        assert smtp.box.alert_ids() == [alert_id]
        assert hook.alert_ids() == [alert_id] and all(r["valid"] for r in hook.requests)
        assert pending_count(app) == 0
        rows = deliveries(app)
        assert all(r.delivered_at == frozen_clock.now() and r.last_error is None for r in rows.values())
        audit = delivery_audit(app)
        assert sorted(audit) == sorted([("dpo-mail", "failed", 1), ("soc-hook", "failed", 1),
                                        ("dpo-mail", "failed", 2), ("soc-hook", "failed", 2),
                                        ("dpo-mail", "ok", 3), ("soc-hook", "ok", 3)])
        frozen_clock.advance(3600)
        assert deliver_pending(app) == []  # delivered is delivered: never sent twice
        assert len(smtp.messages) == 1 and len(hook.requests) == 1
    finally:
        smtp.stop()
        hook.stop()


def test_scan_retries_pending_deliveries(deployment, make_app, frozen_clock):
    smtp_port, hook_port = free_tcp_port(), free_tcp_port()
    smtp = SmtpServer(smtp_port).start()
    with deployment.open("a") as f:
        f.write(notify_config(smtp_port, hook_port))
    app = make_app(deployment)
    try:
        raise_alert(app)  # webhook down, mail up
        hook = WebhookServer(hook_port, WEBHOOK_SECRET, frozen_clock.now).start()
        frozen_clock.advance(45)
        report = scan(app, SYSTEM, scrub=False)  # nothing new, but the pending webhook goes out
        assert report.new_alerts == []
        assert [(d.notifier, d.ok) for d in report.deliveries] == [("soc-hook", True)]
        assert len(hook.valid) == 1 and len(smtp.messages) == 1
        hook.stop()
    finally:
        smtp.stop()


def test_webhook_signature_and_replay(deployment, make_app, frozen_clock):
    from cf_notify_webhook import verify_signature

    hook = WebhookServer(free_tcp_port(), WEBHOOK_SECRET, frozen_clock.now).start()
    try:
        with deployment.open("a") as f:
            f.write(f'\n[notify.soc]\ntype = "webhook"\nurl = "http://127.0.0.1:{hook.port}/in"\n'
                    'secret = { env = "CF_TEST_WEBHOOK_SECRET" }\n')
        app = make_app(deployment)
        raise_alert(app)
        (req,) = hook.requests
        assert req["valid"]
        ts, sig, body = req["headers"]["X-CallFort-Timestamp"], req["headers"]["X-CallFort-Signature"], req["body"]
        assert int(ts) == int(frozen_clock.now().timestamp()) and sig.startswith("sha256=")
        secret = WEBHOOK_SECRET.encode()
        now = frozen_clock.now().timestamp()
        assert verify_signature(secret, ts, body, sig, now)
        assert not verify_signature(secret, ts, body.replace(b"key-role-change", b"key-role-chang3"), sig, now)
        assert not verify_signature(b"another-secret-0123456789", ts, body, sig, now)
        assert not verify_signature(secret, str(int(ts) + 1), body, sig, now)  # timestamp is signed too

        # a captured request replayed ten minutes later is refused by the receiver
        frozen_clock.advance(600)
        resp = httpx.post(f"http://127.0.0.1:{hook.port}/in", content=body,
                          headers={k: v for k, v in req["headers"].items() if k.lower().startswith(("x-", "content-type"))})
        assert resp.status_code == 401 and not hook.requests[-1]["valid"]
    finally:
        hook.stop()


def test_webhook_with_the_wrong_secret_is_refused_and_retried(deployment, make_app, frozen_clock):
    hook = WebhookServer(free_tcp_port(), "the-receivers-other-secret-123", frozen_clock.now).start()
    try:
        with deployment.open("a") as f:
            f.write(f'\n[notify.soc]\ntype = "webhook"\nurl = "http://127.0.0.1:{hook.port}/in?token=t0ps3cret"\n'
                    'secret = { env = "CF_TEST_WEBHOOK_SECRET" }\n')
        app = make_app(deployment)
        report = raise_alert(app)
        (res,) = report.deliveries
        assert not res.ok and "HTTP 401" in res.error and "t0ps3cret" not in res.error
        assert len(hook.requests) == 1 and not hook.requests[0]["valid"]
        (row,) = deliveries(app).values()
        assert row.delivered_at is None and row.attempts == 1 and "401" in row.last_error
    finally:
        hook.stop()


def test_webhook_secret_must_be_long_enough(deployment, make_app, monkeypatch):
    monkeypatch.setenv("CF_TEST_SHORT", "short")
    with deployment.open("a") as f:
        f.write('\n[notify.soc]\ntype = "webhook"\nurl = "http://127.0.0.1:9/in"\nsecret = { env = "CF_TEST_SHORT" }\n')
    app = make_app(deployment)
    assert "at least 16 characters" in check_notifiers(app)["soc"]


def test_disabled_notifier_gets_nothing(deployment, make_app, frozen_clock):
    hook = WebhookServer(free_tcp_port(), WEBHOOK_SECRET, frozen_clock.now).start()
    try:
        with deployment.open("a") as f:
            f.write(f'\n[notify.soc]\ntype = "webhook"\nenabled = false\nurl = "http://127.0.0.1:{hook.port}/"\n'
                    'secret = { env = "CF_TEST_WEBHOOK_SECRET" }\n')
        app = make_app(deployment)
        report = raise_alert(app)
        assert report.deliveries == [] and hook.requests == [] and pending_count(app) == 0
    finally:
        hook.stop()


def test_cf_notifiers_hook_collects_both_plugins_and_a_third_party_one(deployment, make_app, frozen_clock):
    """The ``cf_notifiers`` hook: the two in-tree plugins register ``smtp`` and ``webhook``; a
    further plugin's notifier type is built from its ``[notify.<name>]`` section and gets alerts."""
    from cfcore.config import load_config
    from cfcore.plugins import get_plugin_manager
    from hookspecs import hookimpl
    from hookspecs.types import NotifierType

    got = []

    class Pager:
        def __init__(self, options, ctx):
            self.name, self.number = ctx.name, options["number"]

        def send(self, alert):
            got.append((self.name, self.number, alert.id, alert.rule))

    class PagerPlugin:
        @hookimpl
        def cf_notifiers(self):
            return [NotifierType(name="pager", create=Pager)]

    with deployment.open("a") as f:
        f.write('\n[notify.oncall]\ntype = "pager"\nnumber = "110"\n')
    app = make_app(deployment, pm=get_plugin_manager(load_config(deployment), extra=[("pager", PagerPlugin())]))
    assert {"smtp", "webhook", "pager"} <= set(app.pm.registrations("cf_notifiers"))
    report = raise_alert(app)
    assert got == [("oncall", "110", report.new_alerts[0]["id"], "key-role-change")]
