"""``cf serve`` runs the capture sources as a long-running job (registered by
``cfcore.defaults.jobs``, scope ``worker``: every worker runs this loop).

Each source is owned by exactly one worker: the one holding the lease ``capture:<source>``
(``cfcore.leases``). The owner runs the source in its own ``CaptureRunner`` and renews the lease
every ``[server] heartbeat_seconds``; the other workers try to take each source they do not run at
the same pace. When the owner dies, its lease lapses after ``[server] lease_seconds`` and another
worker takes the source over: its runner reaps the requests the dead one left half-applied and
finalises its live recordings (``CaptureRunner.run``), then connects to the PBX. A worker that
loses a lease (the catalog was unreachable for a whole lease time) stops that source at once,
so that two workers never drive one PBX.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..app import App

import attrs

from .. import leases

log = logging.getLogger(__name__)


@attrs.define
class _Owned:
    runner: Any
    task: asyncio.Task[None]
    lease: leases.Lease


async def run_capture(app: App) -> None:
    """Run the capture sources this worker owns until the server stops (returns at once when none)."""
    from .runner import discover_sources

    names = [s.name for s in discover_sources(app)]
    if not names:
        log.info("no capture source configured; capture job idle")
        return
    worker = leases.worker_id(app)
    beat = leases.heartbeat_seconds(app)
    owned: dict[str, _Owned] = {}
    try:
        while True:
            for name in names:
                await _tend(app, name, worker, owned)
            await asyncio.sleep(beat)
    finally:
        for name in list(owned):
            await _drop(app, name, owned)


async def _tend(app: App, name: str, worker: str, owned: dict[str, _Owned]) -> None:
    """One heartbeat for one source: renew it if we run it, else try to take it."""
    from .runner import CaptureRunner, discover_sources

    mine = owned.get(name)
    try:
        if mine is not None:
            if mine.task.done():  # the runner ended (refused, or crashed): give the source up
                exc = None if mine.task.cancelled() else mine.task.exception()
                log.error("capture source %s stopped on this worker: %s", name, exc)
                await _drop(app, name, owned)
                return
            renewed = await asyncio.to_thread(leases.renew, app, mine.lease)
            if renewed is None:
                log.error("capture source %s: lease lost to another worker; stopping it here", name)
                await _drop(app, name, owned, release=False)
                return
            mine.lease = renewed
            return
        lease = await asyncio.to_thread(leases.acquire, app, f"capture:{name}", worker)
        if lease is None:
            return
        # a fresh source object each time: one that ran and stopped is not restarted
        src = next((s for s in discover_sources(app) if s.name == name), None)
        if src is None:
            await asyncio.to_thread(leases.release, app, lease)
            return
        runner = CaptureRunner(app, [src], leased=True)
        log.info("capture source %s: this worker (%s) runs it (lease token %d)", name, worker, lease.token)
        owned[name] = _Owned(runner=runner, task=asyncio.create_task(runner.run(), name=f"capture-run-{name}"),
                             lease=lease)
    except Exception:
        log.exception("capture source %s: lease heartbeat failed; retrying", name)


async def _drop(app: App, name: str, owned: dict[str, _Owned], *, release: bool = True) -> None:
    mine = owned.pop(name)
    with contextlib.suppress(Exception):
        await mine.runner.stop()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(mine.task), timeout=15)
    if not mine.task.done():
        mine.task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await mine.task
    if release:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(leases.release, app, mine.lease)
