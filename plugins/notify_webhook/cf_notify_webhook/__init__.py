"""CallFort plugin notify_webhook: FIS alerts as HMAC-signed HTTP POSTs.

Config::

    [notify.soc]
    type = "webhook"
    url = "https://soc.bank.example/hooks/callfort"
    secret = { env = "CALLFORT_WEBHOOK_SECRET" }   # or { file = "keys/webhook.secret" }; >= 16 chars
    timeout = 10
    cafile = "/etc/ssl/soc-ca.pem"                # trust this CA (optional)

The body is compact JSON ``{"event": "callfort.alert", "alert": {...}}``. Headers:

- ``X-CallFort-Timestamp``: Unix seconds when the request was signed;
- ``X-CallFort-Signature``: ``sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`` over the
  exact body bytes as sent, prefixed with the timestamp, so a captured request cannot be replayed
  later with a fresh timestamp;
- ``X-CallFort-Alert-Id``: the alert id (the same on every retry: receivers dedupe on it).

A receiver recomputes the HMAC over ``timestamp + "." + raw body``, compares in constant time, and
refuses timestamps older than a few minutes (see ``verify_signature``). Any non-2xx answer or
network error raises; the core retries until delivered. Redirects are not followed.

This plugin imports only ``hookspecs``, the standard library and ``httpx``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from hookspecs import Secret, hookimpl
from hookspecs.types import Alert, NotifierType, PluginContext

SIGNATURE_HEADER = "X-CallFort-Signature"
TIMESTAMP_HEADER = "X-CallFort-Timestamp"
ALERT_HEADER = "X-CallFort-Alert-Id"
MIN_SECRET = 16


@attrs.frozen(kw_only=True)
class WebhookOptions:
    """``[notify.<name>] type = "webhook"``; the core builds it and refuses unknown keys."""

    url: str
    secret: Secret = attrs.field(repr=False)
    timeout: float = 10.0
    cafile: str | None = None
    verify: bool = True


_KNOWN = {f.name for f in attrs.fields(WebhookOptions)}


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    return "sha256=" + hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, timestamp: str, body: bytes, signature: str, now: float,
                     tolerance: float = 300) -> bool:
    """What a receiver does: recompute, compare in constant time, refuse stale timestamps."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - ts) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature or "")


def body_for(alert: Alert) -> bytes:
    payload = {"event": "callfort.alert",
               "alert": {"id": alert.id, "rule": alert.rule, "severity": alert.severity.value,
                         "summary": alert.summary, "raised_at": alert.raised_at.isoformat(),
                         "evidence": list(alert.evidence)}}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class WebhookNotifier:
    def __init__(self, name: str, options: Mapping[str, Any], ctx: PluginContext) -> None:
        unknown = sorted(set(options) - _KNOWN)
        if unknown:
            raise ValueError(f"unknown option '{unknown[0]}' (choose one of: {', '.join(sorted(_KNOWN))})")
        self.name = name
        self._clock = ctx.clock
        self.url = str(options.get("url") or "")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http:// or https:// URL")
        self._where = f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"
        secret = options.get("secret")
        if not isinstance(secret, str) or len(secret) < MIN_SECRET:
            raise ValueError(f"secret is required and must have at least {MIN_SECRET} characters "
                             "(write it as { env = \"NAME\" } or { file = \"path\" })")
        self._secret = secret.encode()
        self.timeout = float(options.get("timeout", 10))
        verify: bool | ssl.SSLContext = True
        if options.get("cafile"):
            verify = ssl.create_default_context(cafile=str(options["cafile"]))
        elif options.get("verify", True) is False:
            verify = False
        self._verify = verify

    def __repr__(self) -> str:  # never show the secret
        return f"WebhookNotifier(name={self.name!r}, url={self._where!r})"

    def request(self, alert: Alert) -> tuple[bytes, dict[str, str]]:
        body = body_for(alert)
        ts = int(self._clock().timestamp())
        headers = {"Content-Type": "application/json", "User-Agent": "CallFort-FIS/1",
                   TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(self._secret, ts, body),
                   ALERT_HEADER: alert.id}
        return body, headers

    def send(self, alert: Alert) -> None:
        import httpx  # here, not at the top: every cf command imports this plugin

        body, headers = self.request(alert)
        try:
            with httpx.Client(timeout=self.timeout, verify=self._verify, follow_redirects=False) as client:
                resp = client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            # the URL may carry a token: name only scheme, host and port
            raise RuntimeError(f"webhook {self._where} unreachable ({type(exc).__name__})") from None
        if not 200 <= resp.status_code < 300:
            raise RuntimeError(f"webhook {self._where} answered HTTP {resp.status_code}")


def create(options: WebhookOptions, ctx: PluginContext) -> WebhookNotifier:
    return WebhookNotifier(ctx.name, {k: v for k, v in attrs.asdict(options, recurse=False).items() if v is not None},
                           ctx)


@hookimpl
def cf_notifiers() -> list[NotifierType]:
    return [NotifierType(name="webhook", create=create, options=WebhookOptions,
                         description="FIS alerts as HMAC-signed HTTP POSTs")]
