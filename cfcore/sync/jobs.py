"""The jobs ``cf serve`` runs for sites and the archive (returned by ``cfcore.defaults.jobs``)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..authority import system_context

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)


def in_window(now: datetime, window: tuple[Any, Any], tz: str) -> bool:
    local = now.astimezone(ZoneInfo(tz)).time()
    start, end = window
    return start <= local < end if start <= end else (local >= start or local < end)


async def site_job(app: App) -> None:
    """On a site: one ``cf sync`` run per job interval inside the nightly window."""
    from .send import run_sync
    from .settings import role, site_settings

    if role(app.config) != "site":
        return
    settings = site_settings(app.config)
    if not in_window(app.clock.now(), settings.window, settings.timezone):
        return
    await run_sync(app, system_context("sync.send"), wait=app.config.get("sync.receipt_wait_seconds", int, 60))


def archive_job(app: App) -> None:
    """On the archive: import the inbox, then check for overdue sites."""
    from .overdue import check_overdue
    from .receive import process_inbox
    from .settings import role

    if role(app.config) != "archive":
        return
    process_inbox(app, system_context("sync.receive"))
    check_overdue(app)
