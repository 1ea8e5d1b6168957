"""The FIS inside ``cf serve``: a job every minute that scans when due and retries deliveries,
and ``audit.anchor``, which anchors the audit trail outside the database (``cfcore.audit``).

``[fis] scan_interval_seconds`` (default 300): how often the rules run over new audit entries.
``[fis] scrub_interval_seconds`` (default 3600): how often the scan includes the integrity scrubs
(they read and decrypt every media object, so they run less often than the rules).
Between scans the job still retries due alert deliveries, so a notifier that comes back is served
within a minute.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)

JOB_NAME = "fis.scan"
TICK_SECONDS = 60


def run_scheduled(app: App) -> dict[str, Any]:
    """One tick of the job: a scan when due (with scrubs when those are due), else the retries."""
    from ..authority import system_context
    from ..db.models_fis import FisCursor
    from .deliver import deliver_pending
    from .scan import scan

    now = app.clock.now()
    every = timedelta(seconds=app.config.get("fis.scan_interval_seconds", int, 300))
    scrub_every = timedelta(seconds=app.config.get("fis.scrub_interval_seconds", int, 3600))
    with app.catalog.session() as s:
        cur = s.get(FisCursor, 1)
        last_scan = cur.last_scan_at if cur else None
        last_scrub = cur.last_scrub_at if cur else None
    if last_scan is not None and now - last_scan < every:
        sent = deliver_pending(app)
        return {"scanned": False, "deliveries": len(sent)}
    scrub = last_scrub is None or now - last_scrub >= scrub_every
    report = scan(app, system_context("fis.scan"), scrub=scrub)
    if report.new_alerts:
        log.warning("FIS scan raised %d new alert(s)", len(report.new_alerts))
    return {"scanned": True, "scrub": scrub, "new_alerts": len(report.new_alerts),
            "deliveries": len(report.deliveries)}


ANCHOR_JOB = "audit.anchor"


def run_anchor(app: App) -> dict[str, Any]:
    """One tick of ``audit.anchor``: anchor the audit trail outside the database when
    ``[audit] anchor_interval_seconds`` (default 300) passed since this process last did; an
    anchor that exists for the current head is not written again."""
    from ..audit import ANCHOR_INTERVAL_SECONDS

    now = app.clock.now()
    every = timedelta(seconds=app.config.get("audit.anchor_interval_seconds", int, ANCHOR_INTERVAL_SECONDS))
    last = getattr(app.audit, "last_periodic_anchor", None)
    if last is not None and now - last < every:
        return {"anchored": False}
    a = app.audit.anchor()
    app.audit.last_periodic_anchor = now
    return {"anchored": a is not None, "seq": a["seq"] if a else None}

