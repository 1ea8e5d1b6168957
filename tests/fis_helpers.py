"""Shared helpers of the FIS tests: users, recordings, a real SMTP server (aiosmtpd) and a real
HTTP server on loopback that checks the webhook's HMAC signature."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import secrets
import ssl
import struct
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from cfcore.authority import SYSTEM
from cfcore.clock import FrozenClock

#: A Wednesday, inside working hours in Berlin: the off-hours rule stays quiet unless a test wants it.
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
CF_NOW = NOW.isoformat()
PASSWORD = "correct horse battery staple"
WEBHOOK_SECRET = "fis-test-webhook-secret-0123456789"


def weekday_clock() -> FrozenClock:
    return FrozenClock(NOW)


# --------------------------------------------------------------------------- users, recordings


def make_user(app: Any, username: str, *roles: str, advisor_id: str | None = None) -> Any:
    """A user with roles written straight into the catalog (test set-up: in production roles come
    through four-eyes ``roles.change``). Returns the user's RequestContext."""
    from access_helpers import ctx_for
    from access_helpers import make_user as seed_user

    seed_user(app, username, roles, advisor_id=advisor_id, password=PASSWORD)
    return ctx_for(app, username, host="pc-test", ip="10.0.0.7", function=f"test:{username}")


def login_env(username: str, **extra: str) -> dict[str, str]:
    return {"CF_USER": username, "CF_PASSWORD": PASSWORD, "CF_NOW": CF_NOW, **extra}


def tone(seconds: float, freq: float, rate: int = 8000) -> bytes:
    n = int(seconds * rate)
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / rate))) for i in range(n))


def ingest(app: Any, tmp_path: Path, *, two_sided: bool = True, advisor: str = "A100", seconds: float = 1.5,
           started: str | None = None) -> str:
    from cfcore.ingest import ingest_wav
    from cfcore.wav import write_wav

    wav = tmp_path / f"call-{secrets.token_hex(4)}.wav"
    write_wav(wav, [tone(seconds, 440)] + ([tone(seconds, 660)] if two_sided else []), 8000)
    return ingest_wav(app, wav, advisor_id=advisor, customer_numbers=["+4930123456"],
                      consent_at=0.5 if two_sided else None, started=started)


def media_rows(app: Any, rec_id: str) -> list[Any]:
    from cfcore.db.models import MediaObject

    with app.catalog.session() as s:
        return list(s.scalars(select(MediaObject).where(MediaObject.recording_id == rec_id)))


def object_path(deployment: Path, key: str, root: str = "media") -> Path:
    return deployment.parent / root / key


def alerts_of(app: Any, rule: str | None = None) -> list[Any]:
    from cfcore.fis.alerts import list_alerts

    return list_alerts(app, rule=rule, limit=10000)


def scan_rules(app: Any) -> Any:
    """Rules only, no scrub, no delivery: what the rule tests need."""
    from cfcore.fis.scan import scan

    return scan(app, SYSTEM, scrub=False, deliver=False)


# --------------------------------------------------------------------------- SMTP


class MailBox:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "message": message_from_bytes(envelope.original_content or envelope.content,
                                                            policy=policy.default),
                              "tls": session.ssl is not None,
                              "authenticated": bool(session.authenticated)})
        return "250 OK"

    def alert_ids(self) -> list[str]:
        return [m["message"]["X-CallFort-Alert-Id"] for m in self.messages]

    def by_alert(self, alert_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["message"]["X-CallFort-Alert-Id"] == alert_id]


class SmtpServer:
    """A real SMTP server on loopback; optionally STARTTLS (required) and AUTH (required)."""

    def __init__(self, port: int, *, tls_context: ssl.SSLContext | None = None,
                 credentials: tuple[str, str] | None = None) -> None:
        self.port = port
        self.box = MailBox()
        kwargs: dict[str, Any] = {}
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        if credentials is not None:
            user, password = credentials

            def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
                ok = isinstance(data, LoginPassword) and data.login.decode() == user and data.password.decode() == password
                if ok:
                    self.box.logins.append((data.login.decode(), mechanism))
                return AuthResult(success=ok, handled=False)

            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=tls_context is not None)
        self.controller = Controller(self.box, hostname="127.0.0.1", port=port, **kwargs)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.box.messages


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost made with cryptography."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "callfort-test-smtp")])
    now = datetime.now(UTC)  # the certificate must be valid for the real TLS stack, not the frozen clock
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


# --------------------------------------------------------------------------- webhook receiver


class WebhookServer:
    """A real HTTP server on loopback that verifies ``X-CallFort-Signature`` itself (HMAC-SHA256
    over ``timestamp + "." + body``), refuses stale timestamps against ``now()`` and keeps every
    request. Answers 204 to a good request, 401 to a bad signature."""

    def __init__(self, port: int, secret: str, now: Callable[[], datetime], tolerance: float = 300) -> None:
        self.port = port
        self.secret = secret.encode()
        self.now = now
        self.tolerance = tolerance
        self.requests: list[dict[str, Any]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def check(self, headers: Any, body: bytes) -> bool:
        ts = headers.get("X-CallFort-Timestamp", "")
        sig = headers.get("X-CallFort-Signature", "")
        try:
            ts_i = int(ts)
        except ValueError:
            return False
        if abs(self.now().timestamp() - ts_i) > self.tolerance:
            return False
        expected = "sha256=" + hmac.new(self.secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, sig)

    def start(self) -> WebhookServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                valid = outer.check(self.headers, body)
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                       "valid": valid, "json": json.loads(body) if valid else None})
                self.send_response(204 if valid else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def valid(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["valid"]]

    def alert_ids(self) -> list[str]:
        return [r["json"]["alert"]["id"] for r in self.valid]

    def by_alert(self, alert_id: str) -> list[dict[str, Any]]:
        return [r for r in self.valid if r["json"]["alert"]["id"] == alert_id]


def notify_config(smtp_port: int, webhook_port: int, *, extra_smtp: str = "") -> str:
    return f"""
[notify.dpo-mail]
type = "smtp"
host = "127.0.0.1"
port = {smtp_port}
sender = "callfort@bank.example"
recipients = ["dpo@bank.example"]
timeout = 10
{extra_smtp}

[notify.soc-hook]
type = "webhook"
url = "http://127.0.0.1:{webhook_port}/hooks/callfort"
secret = {{ env = "CF_TEST_WEBHOOK_SECRET" }}
timeout = 5

[fis.delivery]
base_seconds = 30
max_seconds = 600
"""
