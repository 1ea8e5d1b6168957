"""``cf fis scan``: scrubs, then the rules over the audit entries since the last scan.

The cursor (``fis_scan_cursor``) holds the last audit seq the rules have seen. New entries are
taken in batches; each rule sees the batch plus what it needs before it: entries from
``lookback`` before the first new entry (``2 × window_seconds`` for sliding windows) and the
last ``lookback_entries`` entries. A rule finding counts only when its evidence names at least one
new entry, so an old burst is not reported again; findings are then deduped by fingerprint.
Alerts and the cursor move commit together; deliveries go out after the commit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select

from hookspecs.types import AuditView, RequestContext, Severity

from ..authority import require_context
from ..db.models import AuditEntry
from ..db.models_fis import FisCursor
from .alerts import alert_dict, record_alerts
from .deliver import DeliveryResult, deliver_pending
from .rules import ActiveRule, active_rules
from .scrub import Finding, ScrubReport, run_scrubs

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)

BATCH = 20000


@attrs.frozen(kw_only=True)
class ScanReport:
    from_seq: int
    to_seq: int
    entries: int
    rules: list[str]
    scrub: ScrubReport | None
    new_alerts: list[dict[str, Any]]
    findings: int
    deliveries: list[DeliveryResult]
    rule_errors: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {"from_seq": self.from_seq, "to_seq": self.to_seq, "entries": self.entries, "rules": self.rules,
                "scrub": self.scrub.as_dict() if self.scrub else None, "new_alerts": self.new_alerts,
                "findings": self.findings, "deliveries": [d.as_dict() for d in self.deliveries],
                "rule_errors": self.rule_errors}


def _view(e: AuditEntry) -> AuditView:
    try:
        detail = json.loads(e.detail)
        if not isinstance(detail, dict):
            detail = {"_detail": detail}
    except ValueError:
        detail = {"_unparsable": True}
    return AuditView(seq=e.seq, at=e.at, user=e.user, host=e.host, ip=e.ip, function=e.function, action=e.action,
                     target_kind=e.target_kind, target_id=e.target_id, outcome=e.outcome, detail=detail)


def _cursor(app: App) -> FisCursor:
    """The cursor row, created on first use (two first scans at once: one insert wins)."""
    from sqlalchemy.exc import IntegrityError

    with app.catalog.session() as s:
        cur = s.get(FisCursor, 1)
        if cur is not None:
            return cur
    try:
        with app.catalog.session() as s:
            cur = FisCursor(id=1, last_seq=0)
            s.add(cur)
            return cur
    except IntegrityError:
        with app.catalog.session() as s:
            return s.get_one(FisCursor, 1)


def _audit_seqs(evidence: Iterable[str]) -> list[int]:
    out = []
    for ev in evidence:
        if ev.startswith("audit:"):
            try:
                out.append(int(ev[6:]))
            except ValueError:
                continue
    return out


def run_rules(rules: list[ActiveRule], context: list[AuditView], new: list[AuditView], now: datetime,
              errors: dict[str, str]) -> list[Finding]:
    """Run each enabled rule over its slice; keep findings that name a new entry."""
    if not new:
        return []
    first_new = new[0]
    findings = []
    for ar in rules:
        if not ar.enabled:
            continue
        cutoff = first_new.at - ar.lookback
        before = [e for e in context if e.at >= cutoff] if ar.lookback > timedelta(0) else []
        if ar.lookback_entries:
            extra = context[-ar.lookback_entries:]
            have = {e.seq for e in before}
            before = sorted(before + [e for e in extra if e.seq not in have], key=lambda e: e.seq)
        entries = tuple(before + new)
        try:
            for severity, summary, evidence in ar.rule.check(entries, now, ar.options):
                evidence = tuple(evidence)
                seqs = _audit_seqs(evidence)
                if seqs and max(seqs) < first_new.seq:
                    continue  # only old entries: reported by an earlier scan
                sev = ar.severity or (severity if isinstance(severity, Severity) else Severity(severity))
                findings.append(Finding(rule=ar.name, severity=sev, summary=str(summary), evidence=evidence))
        except Exception as exc:  # a broken rule must not stop the scan; the DPO learns of it
            log.error("FIS rule %s failed: %s: %s", ar.name, type(exc).__name__, exc)
            errors[ar.name] = f"{type(exc).__name__}: {exc}"[:300]
            findings.append(Finding(rule="fis.rule-failed", severity=Severity.WARNING,
                                    summary=f"FIS rule '{ar.name}' failed ({type(exc).__name__}); "
                                            "irregularities it detects are not being reported",
                                    evidence=(f"rule:{ar.name}", f"error:{type(exc).__name__}")))
    return findings


def _context(app: App, rules: list[ActiveRule], last_seq: int, first_new: AuditView) -> list[AuditView]:
    """Entries up to ``last_seq`` that some rule wants to look back on."""
    enabled = [r for r in rules if r.enabled]
    lookback = max((r.lookback for r in enabled), default=timedelta(0))
    n = max((r.lookback_entries for r in enabled), default=0)
    out: dict[int, AuditView] = {}
    with app.catalog.session() as s:
        if lookback > timedelta(0):
            for e in s.scalars(select(AuditEntry).where(AuditEntry.seq <= last_seq,
                                                        AuditEntry.at >= first_new.at - lookback)
                               .order_by(AuditEntry.seq)):
                out[e.seq] = _view(e)
        if n:
            for e in s.scalars(select(AuditEntry).where(AuditEntry.seq <= last_seq)
                               .order_by(AuditEntry.seq.desc()).limit(n)):
                out[e.seq] = _view(e)
    return [out[k] for k in sorted(out)]


def scan(app: App, ctx: RequestContext, *, scrub: bool = True, content: bool = True,
         deliver: bool = True, batch: int = BATCH) -> ScanReport:
    """One scan: scrubs (unless ``scrub=False``), rules over the new audit entries, alerts,
    deliveries. Access control is the caller's (``fis.read``); ``ctx`` is who runs it (the
    ``fis.scan`` job: ``system_context("fis.scan")``)."""
    require_context(ctx, "scan")
    rules = active_rules(app)
    now = app.clock.now()
    scrub_report = run_scrubs(app, content=content) if scrub else None
    pending: list[Finding] = list(scrub_report.findings) if scrub_report else []
    start = _cursor(app).last_seq
    last = start
    total = 0
    created = []
    errors: dict[str, str] = {}
    findings_count = len(pending)
    while True:
        with app.catalog.session() as s:
            new = [_view(e) for e in s.scalars(select(AuditEntry).where(AuditEntry.seq > last)
                                               .order_by(AuditEntry.seq).limit(batch))]
        if new:
            context = _context(app, rules, last, new[0])
            found = run_rules(rules, context, new, now, errors)
            findings_count += len(found)
            pending.extend(found)
        with app.catalog.session() as s:
            cur = s.get(FisCursor, 1, with_for_update=True)
            assert cur is not None
            created += [alert_dict(r, deliveries=False) for r in record_alerts(app, s, pending, now)]
            pending = []
            if new:
                cur.last_seq = max(cur.last_seq, new[-1].seq)
            cur.last_scan_at = now
            if scrub_report is not None:
                cur.last_scrub_at = now
        if not new:
            break
        total += len(new)
        last = new[-1].seq
        if len(new) < batch:
            break
    app.audit.record(ctx, "fis.scan", "fis", None, "ok",
                     {"from_seq": start, "to_seq": last, "entries": total, "new_alerts": len(created),
                      "scrub": scrub_report is not None})
    deliveries = deliver_pending(app) if deliver else []
    return ScanReport(from_seq=start, to_seq=last, entries=total, rules=[r.name for r in rules if r.enabled],
                      scrub=scrub_report, new_alerts=created, findings=findings_count, deliveries=deliveries,
                      rule_errors=errors)
