"""WS-Security 1.1 UsernameToken Profile with ``PasswordDigest`` for the CRM's technical account.

``Password_Digest = Base64(SHA-1(nonce + created + password))`` (OASIS UsernameToken Profile 1.1,
§3.1): the password never crosses the wire. A token is accepted when

- the username is a configured CRM and the digest matches (compared in constant time),
- ``wsu:Created`` lies within ``clock_skew_seconds`` of CallFort's clock (either direction),
- the nonce (16 to 64 bytes) was not seen for this account within the window (replay cache,
  kept for twice the skew, after which ``Created`` alone refuses the replay).

``PasswordText`` tokens are refused: a clear password in every request is what the digest avoids.
Every refusal has the same message; the reason goes to the log and the audit trail only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from lxml import etree

from .options import CrmClient, CrmOptions

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
BASE64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
#: The only answer a caller gets for any problem with the token.
REFUSED = "authentication failed"
NONCE_CACHE_MAX = 200_000


class AuthError(Exception):
    """The token is missing or invalid; ``reason`` is for the log and audit only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NonceCache:
    """Nonces seen per account, each kept until it expires. Thread-safe, bounded."""

    def __init__(self, max_entries: int = NONCE_CACHE_MAX) -> None:
        self._seen: dict[tuple[str, bytes], datetime] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def add(self, account: str, nonce: bytes, now: datetime, keep: timedelta) -> bool:
        """False when the nonce was seen and has not expired (a replay)."""
        key = (account, nonce)
        with self._lock:
            until = self._seen.get(key)
            if until is not None and until > now:
                return False
            if len(self._seen) >= self._max:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
                if len(self._seen) >= self._max:
                    raise AuthError("nonce cache full: too many requests within the window")
            self._seen[key] = now + keep
            return True

    def __len__(self) -> int:
        return len(self._seen)


def digest(nonce: bytes, created: str, password: str) -> str:
    return base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()  # noqa: S324 - the profile's algorithm


def _parse_created(text: str) -> datetime:
    value = text.strip()
    if len(value) > 40:
        raise AuthError("Created too long")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AuthError("Created is not an xs:dateTime") from None
    if dt.tzinfo is None:
        raise AuthError("Created has no time zone")
    return dt


def verify(envelope: etree._Element, options: CrmOptions, now: Callable[[], datetime], cache: NonceCache) -> CrmClient:
    """The CRM whose UsernameToken is in the envelope's header; raises ``AuthError``."""
    tokens = envelope.findall(f"{{{SOAP11}}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
    if len(tokens) != 1:
        raise AuthError("no or several UsernameTokens")
    tok = tokens[0]
    username = (tok.findtext(f"{{{WSSE}}}Username") or "").strip()
    pw = tok.find(f"{{{WSSE}}}Password")
    nonce_el = tok.find(f"{{{WSSE}}}Nonce")
    created = tok.findtext(f"{{{WSU}}}Created") or tok.findtext(f"{{{WSSE}}}Created")
    if not username or pw is None or nonce_el is None or not created:
        raise AuthError("UsernameToken lacks Username, Password, Nonce or Created")
    if pw.get("Type") != DIGEST:
        raise AuthError("only PasswordDigest is accepted")
    encoding = nonce_el.get("EncodingType")
    if encoding not in (None, BASE64):
        raise AuthError("Nonce must be Base64Binary")
    try:
        nonce = base64.b64decode((nonce_el.text or "").strip(), validate=True)
    except (binascii.Error, ValueError):
        raise AuthError("Nonce is not base64") from None
    if not 16 <= len(nonce) <= 64:
        raise AuthError("Nonce must be 16 to 64 bytes")
    client = options.client_by_username(username)
    expected = digest(nonce, created, client.password if client else "x" * 32)
    if not hmac.compare_digest(expected.encode(), (pw.text or "").strip().encode()) or client is None:
        raise AuthError(f"wrong password or unknown account {username[:64]!r}")
    at = _parse_created(created)
    skew = timedelta(seconds=options.clock_skew_seconds)
    current = now()
    if abs(current - at) > skew:
        raise AuthError("Created outside the clock-skew window")
    if not cache.add(client.username, nonce, current, 2 * skew):
        raise AuthError("replayed nonce")
    return client
