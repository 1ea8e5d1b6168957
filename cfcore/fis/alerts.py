"""Alerts: stored once per finding (same rule + same evidence → one alert), audited as
``fis.alert``, queued for every notifier.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from hookspecs.types import Severity

from ..authority import system_context
from ..db.models_fis import FisAlert
from ..errors import NotFound
from .scrub import Finding

if TYPE_CHECKING:
    from ..app import App

SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}
_MAX_SUMMARY = 1000
_MAX_EVIDENCE = 200


def fingerprint(rule: str, evidence: Iterable[str]) -> str:
    body = rule + "\n" + "\n".join(sorted(set(evidence)))
    return hashlib.sha256(body.encode()).hexdigest()


def new_alert_id() -> str:
    return secrets.token_hex(6)




def alert_dict(row: FisAlert, *, deliveries: bool = True) -> dict[str, Any]:
    d: dict[str, Any] = {"id": row.id, "rule": row.rule, "severity": row.severity, "summary": row.summary,
                         "raised_at": row.raised_at.isoformat(), "evidence": list(row.evidence),
                         "audit_seq": row.audit_seq}
    if deliveries:
        d["deliveries"] = [{"notifier": x.notifier, "attempts": x.attempts,
                            "delivered_at": x.delivered_at.isoformat() if x.delivered_at else None,
                            "next_try": None if x.delivered_at else x.next_try.isoformat(),
                            "last_error": x.last_error} for x in row.deliveries]
    return d


def record_alerts(app: App, s: Session, findings: Iterable[Finding], now: datetime) -> list[FisAlert]:
    """Store the findings not stored before (by fingerprint) in ``s``'s transaction; each new
    alert is audited (``fis.alert``) and queued for every configured notifier."""
    from .deliver import queue_deliveries

    by_fp: dict[str, Finding] = {}
    for f in findings:
        by_fp.setdefault(fingerprint(f.rule, f.evidence), f)
    if not by_fp:
        return []
    known: set[str] = set()
    fps = list(by_fp)
    for i in range(0, len(fps), 500):
        known.update(s.scalars(select(FisAlert.fingerprint).where(FisAlert.fingerprint.in_(fps[i:i + 500]))))
    created = []
    for fp, f in by_fp.items():
        if fp in known:
            continue
        evidence = list(dict.fromkeys(f.evidence))
        if len(evidence) > _MAX_EVIDENCE:
            evidence = evidence[:_MAX_EVIDENCE] + [f"more:{len(evidence) - _MAX_EVIDENCE}"]
        row = FisAlert(id=new_alert_id(), fingerprint=fp, rule=f.rule, severity=f.severity.value,
                       summary=f.summary[:_MAX_SUMMARY], evidence=evidence, raised_at=now)
        s.add(row)
        s.flush()
        row.audit_seq = app.audit.append(s, system_context("fis.alert"), "fis.alert", "fis_alert", row.id, "ok",
                                         {"rule": row.rule, "severity": row.severity, "fingerprint": fp,
                                          "evidence": evidence})
        queue_deliveries(app, s, row, now)
        created.append(row)
    return created


def authorize_read(app: App, ctx: Any, what: str) -> None:
    """``fis.read`` for whoever looks at alerts or runs a scan (audited as allowed or denied)."""
    from hookspecs.types import AccessTarget

    from ..access.guard import authorize

    authorize(app, ctx, "fis.read", AccessTarget(kind="fis", id=None), audit_allowed=True, detail={"what": what})


def get_alert(s: Session, alert_id: str) -> FisAlert:
    row = s.scalars(select(FisAlert).where(FisAlert.id == alert_id)
                    .options(selectinload(FisAlert.deliveries))).one_or_none()
    if row is None:
        raise NotFound(f"no FIS alert {alert_id}", hint="list them with 'cf fis alerts'")
    return row


def list_alerts(app: App, *, rule: str | None = None, min_severity: Severity | None = None,
                since: datetime | None = None, undelivered: bool = False, limit: int = 200) -> list[FisAlert]:
    with app.catalog.session() as s:
        q = select(FisAlert).options(selectinload(FisAlert.deliveries)).order_by(FisAlert.raised_at.desc(),
                                                                                   FisAlert.id)
        if rule:
            q = q.where(FisAlert.rule == rule)
        if since:
            q = q.where(FisAlert.raised_at >= since)
        if min_severity:
            q = q.where(FisAlert.severity.in_([sv.value for sv, r in SEVERITY_RANK.items()
                                              if r >= SEVERITY_RANK[min_severity]]))
        rows = list(s.scalars(q.limit(limit if not undelivered else None)).all())
    if undelivered:
        rows = [r for r in rows if any(d.delivered_at is None for d in r.deliveries)][:limit]
    return rows
