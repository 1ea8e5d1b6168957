"""Advisor PINs for the dial-in: argon2id hashes only (``cf mobile hash-pin`` makes one)."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# Fewer rounds than for passwords: a PIN check runs in the call path; the PIN is protected by the
# three tries per call and the lock-out across calls, not by the hash's cost alone.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
PIN_RE = re.compile(r"^[0-9]{4,12}$")
#: a hash to check against when the advisor id is unknown, so that the answer takes as long; made
#: once with ``_HASHER``'s parameters (hashing at import would cost every ``cf`` command)
_DUMMY = "$argon2id$v=19$m=19456,t=2,p=1$850X+OPZrmSRoKZ21kTO2g$oH9smcPSY0DDZcwAtPL7MIxwFl94phUruB/xXvDL6PI"


def hash_pin(pin: str) -> str:
    if not PIN_RE.match(pin):
        raise ValueError("a PIN is 4 to 12 digits")
    return _HASHER.hash(pin)


def verify_pin(stored: str | None, pin: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY, pin) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def is_pin_hash(value: str) -> bool:
    return value.startswith("$argon2id$")
