"""In-tree default plugin: the retention duties of a German contact centre.

- Two-sided advisory recordings: MiFID II Art. 16(7) (WpHG § 83(3)): five years from the end of
  the call, extendable to seven per class (``[retention.classes.<name>] years = 7``) or per
  recording (four-eyes ``retention.extend``). A statutory duty: never shortened below it, no
  Art. 17 erasure while it runs.
- Two-sided recordings of a class with ``kind = "consent"`` (calls outside investment advice):
  kept on the customer's consent for the class's days/years; no statutory duty.
- Advisor-only recordings (internal quality assurance under the works agreement):
  ``advisor_only_days`` (default 30) from the end of the call; no statutory duty.

``settings`` is the deployment's ``[retention]`` section; ``cfcore.retention.retention_settings``
validates it (this module only reads it, leniently, and imports nothing from the core).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from hookspecs import hookimpl
from hookspecs.types import RecordingInfo, RetentionRule

MIFID_BASIS = "MiFID II Art. 16(7); WpHG § 83(3)"
MIFID_PURPOSE = "evidence of investment advice and client orders (investor protection)"
WORKS_BASIS = "works agreement (BetrVG § 87(1) no. 6); GDPR Art. 6(1)(f), Art. 88; BDSG § 26"
WORKS_PURPOSE = "internal quality assurance"
CONSENT_BASIS = "GDPR Art. 6(1)(a) (consent)"
CONSENT_PURPOSE = "documentation of the conversation on the customer's consent"

#: Names of the built-in classes: every recording has one of these unless a configured class fits.
MIFID_CLASS = "mifid"
ADVISOR_ONLY_CLASS = "advisor-only"


def add_years(at: datetime, years: int) -> datetime:
    """``at`` plus whole calendar years (29 February becomes 28 February)."""
    try:
        return at.replace(year=at.year + years)
    except ValueError:
        return at.replace(year=at.year + years, day=28)


def class_options(settings: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    classes = settings.get("classes", {})
    opts = classes.get(name) if isinstance(classes, Mapping) else None
    return opts if isinstance(opts, Mapping) else None


def class_kind(settings: Mapping[str, Any], name: str) -> str | None:
    """``mifid``, ``consent`` or ``advisor-only`` for a known class, else None."""
    if name == MIFID_CLASS:
        return "mifid"
    if name == ADVISOR_ONLY_CLASS:
        return "advisor-only"
    opts = class_options(settings, name)
    if opts is None:
        return None
    return str(opts.get("kind", "mifid"))


def _mifid_rule(recording: RecordingInfo, settings: Mapping[str, Any]) -> RetentionRule:
    years = int(settings.get("mifid_years", 5))
    opts = class_options(settings, recording.retention_class)
    if opts is not None and class_kind(settings, recording.retention_class) == "mifid":
        years = int(opts.get("years", years))
    return RetentionRule(name=f"mifid-{years}y", keep_until=add_years(recording.ended_at, years),
                         legal_basis=MIFID_BASIS, purpose=MIFID_PURPOSE, statutory=True)


def _period(opts: Mapping[str, Any], default_days: int) -> tuple[str, timedelta | int]:
    if "years" in opts:
        return f"{int(opts['years'])}y", int(opts["years"])
    days = int(opts.get("days", default_days))
    return f"{days}d", timedelta(days=days)


@hookimpl
def cf_retention_rules(recording: RecordingInfo, settings: Mapping[str, Any]) -> list[RetentionRule]:
    kind = class_kind(settings, recording.retention_class)
    opts = class_options(settings, recording.retention_class) or {}
    advisor_days = int(settings.get("advisor_only_days", 30))
    if recording.two_sided:
        if kind == "consent":
            label, period = _period(opts, advisor_days)
            until = (add_years(recording.ended_at, period) if isinstance(period, int)
                     else recording.ended_at + period)
            return [RetentionRule(name=f"consent-{label}", keep_until=until, legal_basis=CONSENT_BASIS,
                                  purpose=CONSENT_PURPOSE)]
        # Two-sided and not explicitly a consent class: the MiFID duty applies (safe default).
        return [_mifid_rule(recording, settings)]
    label, period = _period(opts if kind == "advisor-only" else {}, advisor_days)
    until = add_years(recording.ended_at, period) if isinstance(period, int) else recording.ended_at + period
    return [RetentionRule(name=f"advisor-only-{label}", keep_until=until, legal_basis=WORKS_BASIS,
                          purpose=WORKS_PURPOSE)]
