"""The scheduled purge of ``cf serve``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from ..authority import system_context
from .purge import PurgeReport, run_purge
from .settings import retention_settings

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)



#: How often the ``cf serve`` job looks whether a purge is due (``[retention] purge_interval_seconds``).
JOB_POLL_SECONDS = 900


def purge_job(app: App) -> PurgeReport | None:
    """The scheduled purge of ``cf serve``: runs as the system when ``purge_interval_seconds``
    passed since the last disposal entry (of any run, also ``cf retention run``)."""
    from ..db.models import AuditEntry

    interval = retention_settings(app)["purge_interval_seconds"]
    with app.catalog.session() as s:
        last = s.scalars(select(AuditEntry.at).where(AuditEntry.action == "retention.disposal")
                         .order_by(AuditEntry.seq.desc()).limit(1)).first()
    if last is not None and (app.clock.now() - last).total_seconds() < interval:
        return None
    return run_purge(app, system_context("retention.purge"))
