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
from urllib.parse import urlsplit

import attrs

from hookspecs import Secret, hookimpl
from hookspecs.types import Alert, NotifierType, PluginContext

SIGNATURE_HEADER = "X-CallFort-Signature"
TIMESTAMP_HEADER = "X-CallFort-Timestamp"
ALERT_HEADER = "X-CallFort-Alert-Id"
MIN_SECRET = 16


def _http_url(_inst: object, _attr: object, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be an http:// or https:// URL")


def _long_secret(_inst: object, _attr: object, value: str) -> None:
    if len(value) < MIN_SECRET:
        raise ValueError(f"secret must have at least {MIN_SECRET} characters")


@attrs.frozen(kw_only=True)
class WebhookOptions:
    """``[notify.<name>] type = "webhook"``; the core builds it with ``hookspecs.parse_options``
    (unknown keys, wrong types, a secret in clear refused with the key named)."""

    url: str = attrs.field(validator=_http_url)
    secret: Secret = attrs.field(repr=False, validator=_long_secret)
    timeout: float = 10.0
    cafile: str | None = None
    verify: bool = True


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
    def __init__(self, name: str, options: WebhookOptions, ctx: PluginContext) -> None:
        self.name = name
        self._clock = ctx.clock
        self.url = options.url
        parts = urlsplit(self.url)
        self._where = f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"
        self._secret = options.secret.encode()
        self.timeout = options.timeout
        verify: bool | ssl.SSLContext = options.verify
        if options.cafile:
            verify = ssl.create_default_context(cafile=options.cafile)
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
    return WebhookNotifier(ctx.name, options, ctx)


@hookimpl
def cf_notifiers() -> list[NotifierType]:
    return [NotifierType(name="webhook", create=create, options=WebhookOptions,
                         description="FIS alerts as HMAC-signed HTTP POSTs")]
