"""Customers (data subjects) by pseudonym: no customer identifier is stored in clear.

A pseudonym is ``hex(HMAC-SHA256(secret, "<kind>:<normalised value>"))``; the secret is a random
32-byte file in the keys directory (mode 0600, ``subject-pseudonym.key``). Whoever knows a
customer's id or number computes the same pseudonym and finds the customer's calls; the catalog
alone does not reveal them. Losing the secret makes every pseudonym unfindable: back it up with
the key ring.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .crypto.keyfiles import load_secret
from .errors import InputError

if TYPE_CHECKING:
    from .app import App

KINDS = ("customer_id", "number")
PSEUDONYM_KEY_FILE = "subject-pseudonym.key"

_NUMBER_SEPARATORS = re.compile(r"[\s\-./()\u00a0]")
_MAX_ID_LEN = 128


def normalise_number(value: str, default_cc: str = "49") -> str:
    """A phone number in E.164 (``+4930123456``).

    ``+49 30 123456``, ``0049 30 123456`` and (with ``default_cc="49"``) ``030 123456`` all give
    ``+4930123456``. Bare digits without a leading ``0`` or ``+`` are taken to include the country
    code already (what trunks deliver). ``tel:`` prefixes and separators are ignored.
    """
    if not isinstance(value, str):
        raise InputError(f"phone number must be text, got {type(value).__name__}")
    if not default_cc.isdigit() or not 1 <= len(default_cc) <= 3 or default_cc.startswith("0"):
        raise InputError(f"default country code {default_cc!r} is not a country code (e.g. 49)")
    raw = unicodedata.normalize("NFKC", value).strip()
    if raw.lower().startswith("tel:"):
        raw = raw[4:]
    raw = raw.split(";", 1)[0]  # tel: URI parameters
    s = _NUMBER_SEPARATORS.sub("", raw)
    if s.startswith("+"):
        digits = s[1:]
    elif s.startswith("00"):
        digits = s[2:]
    elif s.startswith("0"):
        digits = default_cc + s[1:]
    else:
        digits = s
    if not digits.isascii() or not digits.isdigit():
        raise InputError("phone number contains characters other than digits",
                         hint="give it as +49 30 1234567, 0049…, or 030…")
    if digits.startswith("0") or not 7 <= len(digits) <= 15:
        raise InputError("phone number is not a valid international number (7 to 15 digits)",
                         hint="give it as +49 30 1234567, 0049…, or 030…")
    return "+" + digits


def normalise_customer_id(value: Any) -> str:
    """A customer id as the CRM knows it: NFKC, no whitespace, upper case."""
    s = unicodedata.normalize("NFKC", str(value))
    s = "".join(s.split()).upper()
    if not s:
        raise InputError("customer id is empty")
    if len(s) > _MAX_ID_LEN or not s.isprintable():
        raise InputError(f"customer id must be printable and at most {_MAX_ID_LEN} characters")
    return s


def _secret(app: App) -> bytes:
    return load_secret(app.keys_dir / PSEUDONYM_KEY_FILE, 32)


def _normalise(app: App, kind: str, value: Any) -> str:
    if kind == "customer_id":
        return normalise_customer_id(value)
    if kind == "number":
        cc = app.config.get("deployment.country_code", str, "49") if app is not None else "49"
        return normalise_number(str(value), cc)
    raise InputError(f"unknown subject kind {kind!r}", hint="choose one of: " + ", ".join(KINDS))


def pseudonym(app: App, kind: str, value: Any) -> str:
    """The pseudonym of a customer id or phone number (64 hex characters)."""
    norm = _normalise(app, kind, value)
    return hmac.new(_secret(app), f"{kind}:{norm}".encode(), hashlib.sha256).hexdigest()


def pseudonyms_for(app: App, customer_ids: Iterable[Any] = (), numbers: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``(kind, pseudonym)`` pairs for all identifiers, duplicates removed, order kept."""
    secret = _secret(app)
    out: list[tuple[str, str]] = []
    for kind, values in (("customer_id", customer_ids), ("number", numbers)):
        for value in values:
            norm = _normalise(app, kind, value)
            pair = (kind, hmac.new(secret, f"{kind}:{norm}".encode(), hashlib.sha256).hexdigest())
            if pair not in out:
                out.append(pair)
    return out
