"""The ASGI front of the SOAP service: limits, XML safety and authentication before spyne.

For ``POST`` (SOAP calls), in this order:

1. ``Content-Length`` above ``[plugins.crm_soap] max_body_bytes`` → **413** before reading; a body that grows
   past it while read (chunked) → 413 as well.
2. Any ``<!DOCTYPE`` or ``<!ENTITY`` → **400** (spyne would answer a DTD with a bare 500; no DTD
   is legitimate in SOAP 1.1: XXE and billion-laughs payloads end here).
3. Parsed with lxml with entity resolution, DTD loading and network access off; malformed XML →
   400 fault.
4. WS-Security UsernameToken (``wssec.py``) → 401 fault on any problem; the ``ActingUser`` header
   must name a user on that CRM's allow-list → 403 fault.
5. spyne (in a worker thread) validates the body against the schema (lengths, patterns) and runs
   the operation through the archive gateway. Client faults get ``[plugins.crm_soap] client_fault_status``
   (default 400), server faults 500 with a fixed text; a traceback never leaves the process.

``GET ?wsdl`` serves the WSDL without authentication (it holds no data). Everything else is 405.
Refusals are audited through the gateway (``crm.refused``) and logged without secrets.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from lxml import etree

from .options import CrmOptions
from .service import ENV_KEY, TNS
from .wssec import REFUSED, SOAP11, AuthError, NonceCache, verify

log = logging.getLogger(__name__)

_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_CLIENT_FAULT = re.compile(rb"<faultcode>[^<]*:Client[.<]")


def fault_body(code: str, text: str) -> bytes:
    from xml.sax.saxutils import escape

    return (f'<?xml version="1.0" encoding="UTF-8"?><soap11env:Envelope xmlns:soap11env="{SOAP11}">'
            f"<soap11env:Body><soap11env:Fault><faultcode>soap11env:{escape(code)}</faultcode>"
            f"<faultstring>{escape(text)}</faultstring></soap11env:Fault></soap11env:Body></soap11env:Envelope>"
            ).encode()


def safe_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=True, remove_pis=True)


class SoapGate:
    """ASGI app: the filter above, then the spyne WSGI application."""

    def __init__(self, wsgi: Callable[..., Any], options: CrmOptions, gateway: Any, clock: Callable[[], datetime]):
        self.wsgi = wsgi
        self.options = options
        self.gateway = gateway
        self.clock = clock
        self.nonces = NonceCache()

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        query = scope.get("query_string", b"").decode("latin-1")
        if method in ("GET", "HEAD") and query.lower() == "wsdl":
            await self._wsgi(scope, b"", None, send)
            return
        if method != "POST":
            await self._send(send, 405, fault_body("Client.Method", "use POST for SOAP, GET ?wsdl for the WSDL"),
                             extra=[(b"allow", b"POST, GET")])
            return
        limit = self.options.max_body_bytes
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, send, 413, "Client.TooLarge", f"request body above {limit} bytes", "too large")
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await self._refuse(scope, send, 413, "Client.TooLarge", f"request body above {limit} bytes",
                                   "too large")
                return
        data = bytes(body)
        if _DTD.search(data):
            await self._refuse(scope, send, 400, "Client.DTDForbidden", "DTDs and entity declarations are not allowed",
                               "DOCTYPE or ENTITY in request")
            return
        try:
            root = etree.fromstring(data, safe_parser())
        except etree.XMLSyntaxError:
            await self._refuse(scope, send, 400, "Client.MalformedXML", "the request is not well-formed XML",
                               "malformed XML")
            return
        if root.tag != f"{{{SOAP11}}}Envelope":
            await self._refuse(scope, send, 400, "Client.NotSoap11", "not a SOAP 1.1 envelope", "not SOAP 1.1")
            return
        try:
            crm = verify(root, self.options, self.clock, self.nonces)
        except AuthError as exc:
            await self._refuse(scope, send, 401, "Client.Authentication", REFUSED, exc.reason)
            return
        acting = root.findall(f"{{{SOAP11}}}Header/{{{TNS}}}ActingUser")
        user = (acting[0].findtext(f"{{{TNS}}}Username") or "").strip().lower() if len(acting) == 1 else ""
        client_host = (acting[0].findtext(f"{{{TNS}}}ClientHost") or "").strip() if len(acting) == 1 else ""
        if not user or user not in crm.allowed_users:
            await self._refuse(scope, send, 403, "Client.UnknownUser",
                               "the acting user is unknown, disabled or not allowed for this CRM",
                               f"acting user not on the allow-list of crm {crm.name}", crm=crm.name)
            return
        ip = scope["client"][0] if scope.get("client") else "0.0.0.0"
        env = {"user": user, "crm": crm.name, "ip": ip, "gateway": self.gateway,
               "host": client_host if _HOST.match(client_host) else f"crm-{crm.name}"}
        await self._wsgi(scope, data, env, send)

    # ------------------------------------------------------------------ helpers
    async def _send(self, send: Callable[..., Any], status: int, body: bytes,
                    extra: list[tuple[bytes, bytes]] | None = None, ctype: bytes = b"text/xml; charset=utf-8") -> None:
        headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")] + (extra or [])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _refuse(self, scope: dict[str, Any], send: Callable[..., Any], status: int, code: str, text: str,
                      reason: str, crm: str | None = None) -> None:
        ip = scope["client"][0] if scope.get("client") else "0.0.0.0"
        log.warning("CRM SOAP request from %s refused: %s", ip, reason)
        audit = getattr(self.gateway, "audit_refusal", None)
        if audit is not None:
            try:
                await asyncio.to_thread(audit, via=f"crm:{crm or '?'}", ip=ip, function="soap.crm", reason=reason)
            except Exception:  # noqa: BLE001 - the refusal stands even if the audit write fails
                log.exception("could not audit a refused CRM request")
        status = self.options.client_fault_status if status == 400 else status
        await self._send(send, status, fault_body(code, text))

    async def _wsgi(self, scope: dict[str, Any], body: bytes, env: dict[str, Any] | None,
                    send: Callable[..., Any]) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        server = scope.get("server") or ("127.0.0.1", 80)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope["method"], "SCRIPT_NAME": "", "PATH_INFO": scope["path"],
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "SERVER_NAME": str(server[0]), "SERVER_PORT": str(server[1]), "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_TYPE": headers.get("content-type", ""), "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0), "wsgi.url_scheme": scope.get("scheme", "http"), "wsgi.input": io.BytesIO(body),
            "wsgi.errors": io.StringIO(), "wsgi.multithread": True, "wsgi.multiprocess": False,
            "wsgi.run_once": False, "REMOTE_ADDR": scope["client"][0] if scope.get("client") else "",
        }
        for k, v in headers.items():
            if k not in ("content-type", "content-length"):
                environ["HTTP_" + k.upper().replace("-", "_")] = v
        if env is not None:
            environ[ENV_KEY] = env
        status, resp_headers, payload = await asyncio.to_thread(self._run_wsgi, environ)
        code = int(status.split(" ", 1)[0])
        if code == 500:
            code = self.options.client_fault_status if _CLIENT_FAULT.search(payload) else 500
        out = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in resp_headers
               if k.lower() not in ("content-length",)]
        out += [(b"content-length", str(len(payload)).encode()), (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": code, "headers": out})
        await send({"type": "http.response.body", "body": payload if scope["method"] != "HEAD" else b""})

    def _run_wsgi(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        try:
            result = self.wsgi(environ, start_response)
            try:
                payload = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:  # never a traceback to the CRM
            log.exception("the SOAP application failed")
            return "500 Internal Server Error", [("Content-Type", "text/xml; charset=utf-8")], fault_body(
                "Server.Unavailable", "the archive cannot answer now; try again later")
        return captured.get("status", "500 Internal Server Error"), captured.get("headers", []), payload
