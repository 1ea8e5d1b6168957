"""FIS rules of mobile_ons over the audit stream (``capture.alert`` entries the core writes for a
capture source's alert): an advisory call that was not recorded, and dial-in abuse."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from hookspecs.types import AuditView, FisRule, Severity

Finding = tuple[Severity, str, tuple[str, ...]]


def _alerts(entries: tuple[AuditView, ...], codes: list[str]) -> Iterator[AuditView]:
    for e in entries:
        if e.action == "capture.alert" and str(e.detail.get("alert")) in codes:
            yield e


def unrecorded(entries: tuple[AuditView, ...], now: datetime, options: Mapping[str, Any]) -> Iterator[Finding]:
    for e in _alerts(entries, list(options["alerts"])):
        yield (Severity.HIGH, f"advisory call {e.target_id} of advisor {e.detail.get('advisor_id') or '?'} "
               f"was not recorded ({e.detail.get('alert')})", (f"audit:{e.seq}",))


def dialin_abuse(entries: tuple[AuditView, ...], now: datetime, options: Mapping[str, Any]) -> Iterator[Finding]:
    for e in _alerts(entries, list(options["alerts"])):
        yield (Severity.HIGH, f"mobile dial-in: {e.detail.get('alert')} for advisor {e.detail.get('advisor_id') or '?'} "
               f"on call {e.target_id}", (f"audit:{e.seq}",))


RULES = (
    FisRule(name="mobile-unrecorded", check=unrecorded,
            description="an advisory call (mobile dial-in or ONS) that was not recorded: declined, no answer, "
                        "recording failed, or a carrier call record without a recording",
            default_options={"alerts": ["declined", "no_optin", "recording_failed", "ons_unrecorded"]}),
    FisRule(name="mobile-dialin-abuse", check=dialin_abuse,
            description="mobile dial-in: wrong PINs, a locked-out advisor, refused numbers, the daily cap",
            default_options={"alerts": ["pin_failed", "pin_locked", "number_refused", "daily_cap"]}),
)
