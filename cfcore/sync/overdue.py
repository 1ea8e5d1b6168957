"""Archive side: a site that has not handed over for ``[sync] overdue_nights`` nights.

``check_overdue`` (run by the archive's ``sync.receive`` job and by ``cf sync status``) appends
``sync.overdue`` (outcome ``warning``) at most once per site and day; the FIS rule ``sync-problem``
turns it into an alert.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from ..authority import system_context
from ..db.models import AuditEntry
from ..db.models_sync import SyncImport
from .settings import archive_settings

if TYPE_CHECKING:
    from ..app import App


def last_imports(app: App) -> dict[str, Any]:
    settings = archive_settings(app.config)
    with app.catalog.session() as s:
        rows = dict(s.execute(select(SyncImport.site, func.max(SyncImport.imported_at)).group_by(SyncImport.site)).all())
    return {site: rows.get(site) for site in settings.site_keys}


def check_overdue(app: App) -> list[dict[str, Any]]:
    settings = archive_settings(app.config)
    now = app.clock.now()
    limit = timedelta(days=settings.overdue_nights)
    overdue = []
    for site, last in last_imports(app).items():
        if last is not None and now - last <= limit:
            continue
        with app.catalog.session() as s:
            first_seen = s.scalar(select(func.min(AuditEntry.at)))
            if last is None and (first_seen is None or now - first_seen <= limit):
                continue  # a new archive: the site has not had the chance yet
            already = s.scalar(select(func.count()).select_from(AuditEntry).where(
                AuditEntry.action == "sync.overdue", AuditEntry.target_id == site,
                AuditEntry.at >= now - timedelta(days=1)))
            info = {"site": site, "last_import": last.isoformat() if last else None,
                    "nights": settings.overdue_nights}
            overdue.append(info)
            if not already:
                app.audit.append(s, system_context("sync.overdue"), "sync.overdue", "site", site, "warning", info)
    return overdue
