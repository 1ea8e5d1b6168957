"""``cf serve`` runs the capture runner as a long-running job (interval 0: started once; registered
by ``cfcore.defaults.jobs``)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)


async def run_capture(app: App) -> None:
    """Run the deployment's capture sources until the server stops (returns at once when none)."""
    from .runner import CaptureRunner, discover_sources

    sources = discover_sources(app)
    if not sources:
        log.info("no capture source configured; capture job idle")
        return
    runner = CaptureRunner(app, sources)
    try:
        await runner.run()
    except asyncio.CancelledError:
        await runner.stop()
        raise

