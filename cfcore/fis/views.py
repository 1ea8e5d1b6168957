"""The hookspecs view of a catalogued alert (what notifiers receive)."""

from __future__ import annotations

from hookspecs.types import Alert, Severity

from ..db.models_fis import FisAlert


def to_alert(row: FisAlert) -> Alert:
    return Alert(id=row.id, rule=row.rule, severity=Severity(row.severity), summary=row.summary,
                 raised_at=row.raised_at, evidence=tuple(row.evidence))  # type: ignore[arg-type]
