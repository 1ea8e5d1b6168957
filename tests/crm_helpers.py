"""The CRM tests' world: CallFort's API with the SOAP service on a real uvicorn server, zeep as the
CRM's client (WSDL loaded from the running server), and a CRM simulator — the notification
service of ``cf_crm_soap.contract`` built with spyne, served by a real HTTP server (wsgiref) on
loopback — that checks CallFort's WS-Security token itself and keeps what it received.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import attrs
import httpx
from access_helpers import FAST_ARGON2, NOW, ApiServer, catalog_url_for, login, make_user
from speech_helpers import ADVISOR_HELLO, CUSTOMER_MONEY, call_wav

from cfcore.clock import FrozenClock
from cfcore.testing import free_tcp_port, write_deployment

CRM_USER, CRM_PASSWORD = "crm-main", "s3cret-crm-password-0123456789"
NOTIFY_USER, NOTIFY_PASSWORD = "callfort", "crm-side-password-9876543210"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class CrmSimulator:
    """The CRM's notification endpoint: checks the UsernameToken digest, nonce and Created like a
    CRM would, de-duplicates by idempotency key, and can be taken down and brought back."""

    def __init__(self, clock: FrozenClock, port: int | None = None) -> None:
        self.clock = clock
        self.port = port or free_tcp_port()
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.keys: set[str] = set()
        self.duplicates = 0
        self.refused = 0
        self.nonces: set[str] = set()
        self.server: WSGIServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def wsdl(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify?wsdl"

    def _handler(self, operation: str, fields: dict[str, Any], ctx: Any) -> bool:
        from spyne import Fault

        if not self._token_ok(ctx.in_document):
            self.refused += 1
            raise Fault(faultcode="Client.Authentication", faultstring="authentication failed")
        key = fields["IdempotencyKey"]
        if key in self.keys:
            self.duplicates += 1
            return True
        self.keys.add(key)
        self.received.append((operation, fields))
        return True

    def _token_ok(self, envelope: Any) -> bool:
        tok = envelope.find(f".//{{{WSSE}}}UsernameToken")
        if tok is None:
            return False
        user = tok.findtext(f"{{{WSSE}}}Username")
        nonce = tok.findtext(f"{{{WSSE}}}Nonce") or ""
        created = tok.findtext(f"{{{WSU}}}Created") or ""
        password = tok.findtext(f"{{{WSSE}}}Password") or ""
        expected = base64.b64encode(hashlib.sha1(base64.b64decode(nonce) + created.encode()  # noqa: S324
                                                 + NOTIFY_PASSWORD.encode()).digest()).decode()
        at = datetime.fromisoformat(created.replace("Z", "+00:00"))
        if user != NOTIFY_USER or password != expected or nonce in self.nonces:
            return False
        if abs(at - self.clock.now()) > timedelta(minutes=5):
            return False
        self.nonces.add(nonce)
        return True

    def start(self) -> CrmSimulator:
        from cf_crm_soap.contract import reference_application
        from spyne.server.wsgi import WsgiApplication

        wsgi = WsgiApplication(reference_application(self._handler))
        self.server = make_server("127.0.0.1", self.port, wsgi, handler_class=_QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="crm-sim", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@attrs.define
class CrmWorld:
    app: Any
    clock: FrozenClock
    deployment: Path
    tmp: Path
    server: ApiServer
    sim: CrmSimulator
    rec_adam: str  # advisor A1's two-sided espeak call, transcribed
    rec_berta: str  # advisor A2's call
    tokens: dict[str, str] = attrs.Factory(dict)

    @property
    def wsdl(self) -> str:
        return f"{self.server.base}/soap/crm?wsdl"

    def zeep(self, *, password: str = CRM_PASSWORD, username: str = CRM_USER, history: Any = None) -> Any:
        """The CRM's client: WSDL from the running server, a fresh digest token per request."""
        import zeep
        from zeep.wsse.username import UsernameToken

        settings = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        plugins = [history] if history is not None else []
        return zeep.Client(self.wsdl, settings=settings, plugins=plugins,
                           wsse=UsernameToken(username, password, use_digest=True, created=self.clock.now()))

    def call(self, user: str, operation: str, client: Any = None, **kwargs: Any) -> Any:
        client = client or self.zeep()
        return getattr(client.service, operation)(**kwargs, _soapheaders={"ActingUser": {"Username": user}})

    def session(self, user: str) -> httpx.Client:
        if user not in self.tokens:
            self.tokens[user] = login(self.server, user)
        return httpx.Client(base_url=self.server.base, timeout=60,
                            headers={"Authorization": f"Bearer {self.tokens[user]}", "X-Client-Host": f"pc-{user}"})


# Secrets are never written in clear into a config (the strict config refuses it): the tests hand
# them over by environment, as a deployment would.
os.environ.setdefault("CF_TEST_CRM_PASSWORD", CRM_PASSWORD)
os.environ.setdefault("CF_TEST_CRM_NOTIFY_PASSWORD", NOTIFY_PASSWORD)


def crm_config(port: int, sim: CrmSimulator | None, allowed: tuple[str, ...] = ("adam", "berta", "sue"),
               section: str = "plugins.crm_soap") -> str:
    """The CRM's config; ``section = "crm"`` writes it under its deprecated 1.0 name."""
    notify = (f'notify_wsdl = "{sim.wsdl}"\nnotify_username = "{NOTIFY_USER}"\n'
              'notify_password = { env = "CF_TEST_CRM_NOTIFY_PASSWORD" }\nnotify_timeout_seconds = 5\n') if sim else ""
    users = ", ".join(f'"{u}"' for u in allowed)
    return (f'\n[server]\npublic_url = "http://127.0.0.1:{port}"\n'
            f"\n[{section}]\nmax_body_bytes = 32768\nclock_skew_seconds = 300\n"
            f'\n[{section}.clients.main]\nusername = "{CRM_USER}"\npassword = {{ env = "CF_TEST_CRM_PASSWORD" }}\n'
            f"allowed_users = [{users}]\n{notify}"
            f"\n[access]\n{FAST_ARGON2}")


def build_crm_world(tmp: Path, catalog_url: str) -> CrmWorld:
    from cfcore import transcripts
    from cfcore.app import App
    from cfcore.ingest import ingest_wav

    clock = FrozenClock(NOW)
    sim = CrmSimulator(clock).start()
    port = free_tcp_port()
    dep = write_deployment(tmp / "deploy", catalog_url, crm_config(port, sim))
    app = App.open(dep, clock=clock)
    make_user(app, "adam", ["advisor"], advisor_id="A1")
    make_user(app, "berta", ["advisor"], advisor_id="A2")
    make_user(app, "sue", ["supervisor"])
    make_user(app, "otto", ["advisor"], advisor_id="A3")  # not on the CRM's allow-list
    wav = call_wav(tmp / "adam.wav", 9.0, advisor=[(0.5, ADVISOR_HELLO)], customer=[(5.0, CUSTOMER_MONEY)])
    rec_adam = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K-1"], customer_numbers=["+49 30 1234567"],
                          consent_at=4.0, started="2026-11-20T10:00:00+00:00")
    wav2 = call_wav(tmp / "berta.wav", 4.0, advisor=[(0.5, ADVISOR_HELLO)])
    rec_berta = ingest_wav(app, wav2, advisor_id="A2", customer_ids=["K-1"], consent_at=1.0,
                           started="2026-11-21T10:00:00+00:00")
    assert [r["state"] for r in transcripts.run(app, recording_ids=[rec_adam])] == ["done"]
    server = ApiServer(app, port=port).start()
    return CrmWorld(app=app, clock=clock, deployment=dep, tmp=tmp, server=server, sim=sim, rec_adam=rec_adam,
                    rec_berta=rec_berta)


@contextmanager
def crm_world(tmp: Path) -> Iterator[CrmWorld]:
    with catalog_url_for(tmp) as url:
        world = build_crm_world(tmp, url)
        try:
            yield world
        finally:
            world.server.stop()
            world.sim.stop()
            world.app.close()


def envelope(body: str, *, user: str = "adam", username: str = CRM_USER, password: str = CRM_PASSWORD,
             created: str, nonce: bytes, password_type: str = "PasswordDigest", header_extra: str = "") -> str:
    """A hand-written SOAP 1.1 request (for replays, attacks and fuzzing)."""
    digest = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()  # noqa: S324
    pw = digest if password_type == "PasswordDigest" else password
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:crm="urn:callfort:crm:1">'
        f'<soapenv:Header><wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:UsernameToken>'
        f"<wsse:Username>{username}</wsse:Username>"
        f'<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#{password_type}">{pw}</wsse:Password>'
        f'<wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">{base64.b64encode(nonce).decode()}</wsse:Nonce>'
        f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"
        f"<crm:ActingUser><crm:Username>{user}</crm:Username></crm:ActingUser>{header_extra}</soapenv:Header>"
        f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>")
