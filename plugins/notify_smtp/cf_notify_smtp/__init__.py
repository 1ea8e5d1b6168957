"""CallFort plugin notify_smtp: FIS alerts by e-mail over SMTP (``smtplib``).

Config::

    [notify.dpo-mail]
    type = "smtp"
    host = "mail.example"
    port = 587                      # default 587 with starttls, 465 with tls, else 25
    starttls = true                 # upgrade the connection (optional)
    tls = false                     # implicit TLS from the first byte (SMTPS, optional)
    username = "callfort"           # authentication (optional; needs starttls or tls)
    password = { env = "SMTP_PASSWORD" }
    sender = "callfort@bank.example"
    recipients = ["dpo@bank.example"]
    timeout = 30
    cafile = "/etc/ssl/mail-ca.pem" # trust this CA instead of the system store (optional)

Each alert is one message with a German and English text part and the alert as a JSON attachment.
The ``Message-ID`` is derived from the alert id, so a message resent after a lost reply can be
recognised as the same. A failure raises; the core retries until the message is accepted.

This plugin imports only ``hookspecs`` and the standard library.
"""

from __future__ import annotations

import json
import ssl
from typing import TYPE_CHECKING, Any

import attrs

from hookspecs import Secret, hookimpl
from hookspecs.types import Alert, NotifierType, PluginContext

if TYPE_CHECKING:  # smtplib and email are imported where used: every cf command imports this plugin
    from email.message import EmailMessage


@attrs.frozen(kw_only=True)
class SmtpOptions:
    """``[notify.<name>] type = "smtp"``; the core builds it with ``hookspecs.parse_options``
    (unknown keys, wrong types, a password in clear refused with the key named) and these checks
    run as the object is built, so a wrong section stops ``cf doctor`` and start-up, not a send."""

    host: str = attrs.field(validator=lambda _i, _a, v: _required("host", v))
    sender: str = attrs.field(validator=lambda _i, _a, v: _required("sender", v))
    recipients: list[str] | str = attrs.field(
        validator=lambda _i, _a, v: _required("recipients (a list of addresses)", v))
    port: int | None = None
    starttls: bool = False
    tls: bool = False
    username: str | None = None
    password: Secret | None = attrs.field(default=None, repr=False)
    timeout: float = 30.0
    cafile: str | None = None
    verify: bool = True
    subject_prefix: str = "[CallFort]"
    allow_plaintext_auth: bool = False
    local_hostname: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.starttls and self.tls:
            raise ValueError("choose either starttls or tls, not both")
        if bool(self.username) != bool(self.password):
            raise ValueError("username and password go together")
        if self.username and not (self.starttls or self.tls) and not self.allow_plaintext_auth:
            raise ValueError("authentication without starttls or tls would send the password in clear "
                             "(set starttls = true, or allow_plaintext_auth = true on a trusted network)")

    @property
    def effective_port(self) -> int:
        return self.port or (465 if self.tls else 587 if self.starttls else 25)

    @property
    def recipient_list(self) -> list[str]:
        return [self.recipients] if isinstance(self.recipients, str) else list(self.recipients)


def _required(what: str, value: object) -> None:
    if not value:
        raise ValueError(f"{what} is required")


def alert_payload(alert: Alert) -> dict[str, Any]:
    return {"id": alert.id, "rule": alert.rule, "severity": alert.severity.value, "summary": alert.summary,
            "raised_at": alert.raised_at.isoformat(), "evidence": list(alert.evidence)}


def render_text(alert: Alert) -> str:
    evidence = "\n".join(f"  - {e}" for e in alert.evidence) or "  -"
    return (
        "CallFort FIS - Alarm / alert\n"
        "============================\n\n"
        f"Alarm-ID / alert id:   {alert.id}\n"
        f"Regel / rule:          {alert.rule}\n"
        f"Schwere / severity:    {alert.severity.value}\n"
        f"Erkannt / raised at:   {alert.raised_at.isoformat()}\n\n"
        f"Zusammenfassung / summary:\n  {alert.summary}\n\n"
        f"Belege (IDs) / evidence (ids):\n{evidence}\n\n"
        "DE: Bitte pruefen Sie den Alarm (cf fis alerts). Liegt eine Verletzung des Schutzes\n"
        f"personenbezogener Daten vor, eroeffnen Sie einen Fall: cf breach open --alert {alert.id}\n"
        "Meldefrist nach Art. 33 DSGVO: 72 Stunden ab Kenntnis.\n\n"
        "EN: Please review the alert (cf fis alerts). If personal data was breached, open a case:\n"
        f"cf breach open --alert {alert.id}\n"
        "Art. 33 GDPR: notify the supervisory authority within 72 hours of becoming aware.\n"
    )


class SmtpNotifier:
    def __init__(self, name: str, options: SmtpOptions, ctx: PluginContext) -> None:
        self.name = name
        self._clock = ctx.clock
        self.host = options.host
        self.starttls, self.tls = options.starttls, options.tls
        self.port = options.effective_port
        self.username, self.password = options.username, options.password
        self.sender = options.sender
        self.recipients = options.recipient_list
        self.timeout = options.timeout
        self.subject_prefix = options.subject_prefix
        self.local_hostname = options.local_hostname
        self._ssl = ssl.create_default_context(cafile=options.cafile or None)
        if not options.verify:
            self._ssl.check_hostname = False
            self._ssl.verify_mode = ssl.CERT_NONE

    def message(self, alert: Alert) -> EmailMessage:
        from email.message import EmailMessage
        from email.utils import format_datetime

        msg = EmailMessage()
        msg["Subject"] = (f"{self.subject_prefix} {alert.severity.value.upper()}: {alert.rule} "
                          f"(Alarm/alert {alert.id})")
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = format_datetime(self._clock())
        msg["Message-ID"] = f"<callfort-alert-{alert.id}@{self.sender.rpartition('@')[2] or 'callfort'}>"
        msg["X-CallFort-Alert-Id"] = alert.id
        msg["X-CallFort-Severity"] = alert.severity.value
        msg.set_content(render_text(alert))
        msg.add_attachment(json.dumps(alert_payload(alert), indent=2, sort_keys=True).encode(),
                           maintype="application", subtype="json", filename=f"alert-{alert.id}.json")
        return msg

    def send(self, alert: Alert) -> None:
        import smtplib

        msg = self.message(alert)
        if self.tls:
            conn: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._ssl,
                                                  local_hostname=self.local_hostname)
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout, local_hostname=self.local_hostname)
        with conn:
            conn.ehlo()
            if self.starttls:
                conn.starttls(context=self._ssl)
                conn.ehlo()
            if self.username:
                conn.login(str(self.username), str(self.password))
            refused = conn.send_message(msg, from_addr=self.sender, to_addrs=self.recipients)
        if refused:
            raise RuntimeError(f"SMTP server refused {len(refused)} of {len(self.recipients)} recipients")


def create(options: SmtpOptions, ctx: PluginContext) -> SmtpNotifier:
    return SmtpNotifier(ctx.name, options, ctx)


@hookimpl
def cf_notifiers() -> list[NotifierType]:
    return [NotifierType(name="smtp", create=create, options=SmtpOptions,
                         description="FIS alerts by e-mail over SMTP")]
