"""Group sync of commits made with ``Catalog.unsynced_session``.

A commit that does not wait for the disk is committed and visible at once and survives a crash
of the process; only an operating-system crash or power cut before the next sync can lose it.
``SyncQueue`` closes that window cheaply: ``request()`` after such a commit returns a ticket;
``wait(ticket)`` returns once a ``Catalog.sync`` (one fsync of the SQLite log, or one synchronous
PostgreSQL commit) that began after the ticket has succeeded, running it itself when none is under
way, so one sync serves every ticket handed out before it (group commit); it raises when the sync
failed. ``sync_soon(ticket)`` does the same in a background thread, right away.

The playback endpoint uses it so that the audit entry of a playback, committed before the first
byte, is synced right after (see ``cfcore.web.routes_stream``).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)


class SyncFailed(Exception):
    """The sync that covers a ticket failed (the commit may not be durable)."""


class SyncQueue:
    """Group sync without a thread of its own: the first waiter whose ticket is not yet durable
    syncs for everyone who got a ticket before it started; waiters that arrive meanwhile wait for
    that sync or, if it began before their ticket, run the next one."""

    def __init__(self, catalog: Any) -> None:
        self._catalog = catalog
        self._cond = threading.Condition()
        self._requested = 0
        self._done = 0
        self._syncing = False
        self._worker: ThreadPoolExecutor | None = None

    def request(self) -> int:
        """A ticket for everything committed before this call."""
        with self._cond:
            self._requested += 1
            return self._requested

    def wait(self, ticket: int, timeout: float = 30.0) -> None:
        """Return once ``ticket`` is durable; ``SyncFailed`` when the sync failed or timed out."""
        with self._cond:
            while self._done < ticket:
                if not self._syncing:
                    self._syncing, target = True, self._requested
                    break
                if not self._cond.wait(timeout):
                    raise SyncFailed(f"the catalog was not synced within {timeout:g} s")
            else:
                return
        try:
            self._catalog.sync()
        except Exception as exc:
            log.error("syncing the catalog failed: %s: %s", type(exc).__name__, exc)
            with self._cond:
                self._syncing = False
                self._cond.notify_all()
            raise SyncFailed(f"syncing the catalog failed: {type(exc).__name__}: {exc}") from exc
        with self._cond:
            self._done, self._syncing = max(self._done, target), False
            self._cond.notify_all()

    def sync_soon(self, ticket: int) -> None:
        """Make ``ticket`` durable in the background, right away (one worker thread: a sync
        already under way or queued covers it)."""
        with self._cond:
            if self._worker is None:
                self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cf-catalog-sync")
            worker = self._worker
        worker.submit(self._quiet_wait, ticket)

    def _quiet_wait(self, ticket: int) -> None:
        try:
            self.wait(ticket)
        except SyncFailed:
            pass  # logged; the next sync (or ordinary commit) covers the entry

    def close(self) -> None:
        """Sync whatever is pending (server shutdown)."""
        with self._cond:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(wait=True)
        with self._cond:
            pending = self._requested
        if pending:
            try:
                self.wait(pending)
            except SyncFailed:
                pass  # logged


def sync_queue(app: App) -> SyncQueue:
    """The deployment's queue (one per ``App``), created on first use."""
    queue = app.__dict__.get("_cf_sync_queue")
    if queue is None:
        queue = app.__dict__.setdefault("_cf_sync_queue", SyncQueue(app.catalog))
    return queue  # type: ignore[no-any-return]
