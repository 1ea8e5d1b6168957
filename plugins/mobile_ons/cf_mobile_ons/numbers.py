"""The customer's number as the advisor keys it: normalised to E.164 and checked against the
allow-list, the blocked (premium, short, service) prefixes and the daily cap.

Pure functions, no I/O. The allow-list and block-list are E.164 prefixes (``+49``, ``+4319``);
a matching block prefix always wins over the allow-list.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

_DIGITS = re.compile(r"^[0-9]{1,20}$")

#: Blocked by default: German premium-rate (0900), mass-traffic (0137), personal numbers (0700),
#: service numbers (0180), 0190 (old premium), 118xx directory services; Austrian and Swiss
#: premium ranges. Short numbers are refused by length.
DEFAULT_BLOCKED = ("+49900", "+49137", "+49700", "+49180", "+49190", "+49118",
                   "+43900", "+43901", "+43930", "+43939", "+41900", "+41901", "+41906")
DEFAULT_ALLOWED = ("+49",)


class NumberRefused(ValueError):
    """The keyed number may not be dialled; ``reason`` is a short code for the alert."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@attrs.frozen(kw_only=True)
class NumberPolicy:
    country_code: str = "49"
    allowed: tuple[str, ...] = attrs.field(default=DEFAULT_ALLOWED, converter=tuple)
    blocked: tuple[str, ...] = attrs.field(default=DEFAULT_BLOCKED, converter=tuple)
    min_digits: int = 8  # E.164 digits after the '+', country code included
    max_digits: int = 15

    def __attrs_post_init__(self) -> None:
        for p in (*self.allowed, *self.blocked):
            if not re.fullmatch(r"\+[0-9]{1,14}", p):
                raise ValueError(f"number prefix {p!r} must be '+' and digits (E.164)")
        if not re.fullmatch(r"[1-9][0-9]{0,2}", self.country_code):
            raise ValueError(f"country code {self.country_code!r} must be 1-3 digits")


def to_e164(keyed: str, country_code: str) -> str:
    """DTMF digits as keyed (``00`` international, ``0`` national) → ``+<digits>``."""
    if not _DIGITS.match(keyed):
        raise NumberRefused("malformed", "only the digits 0-9 may be keyed")
    if keyed.startswith("00"):
        return "+" + keyed[2:]
    if keyed.startswith("0"):
        return "+" + country_code + keyed[1:]
    raise NumberRefused("malformed", "key the number with 0 (national) or 00 (international)")


def check_number(keyed: str, policy: NumberPolicy) -> str:
    """The E.164 number to dial, or ``NumberRefused``."""
    e164 = to_e164(keyed, policy.country_code)
    digits = e164[1:]
    if not digits or digits[0] == "0":
        raise NumberRefused("malformed", "no country code after 00")
    if len(digits) < policy.min_digits:
        raise NumberRefused("short", "short numbers cannot be dialled")
    if len(digits) > policy.max_digits:
        raise NumberRefused("malformed", "too many digits for a phone number")
    if _longest(e164, policy.blocked):
        raise NumberRefused("blocked", "premium-rate and service numbers cannot be dialled")
    if _longest(e164, policy.allowed) == 0:
        raise NumberRefused("not_allowed", "this destination is not on the allow-list")
    return e164


def _longest(number: str, prefixes: Sequence[str]) -> int:
    return max((len(p) for p in prefixes if number.startswith(p)), default=0)


def spoken_digits(e164: str) -> str:
    """What is read back to the advisor: the digits (``+`` as a spoken 'plus' is left out)."""
    return e164.lstrip("+")
