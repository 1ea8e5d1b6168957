"""Failed token log-ins are audited without letting a flood of bad tokens flood the audit trail.

The first failure per (client IP, reason, user) in a window (``[access] auth_failure_window_seconds``,
default 60) is audited at once (``auth.login`` *failed*, as before). Further failures of the same
kind inside the window are counted, not written one by one; the count is written as one
``auth.login`` *failed* entry with ``detail.aggregated = N`` (and the window's first and last time)
when the window has passed and the next failure arrives, every ``FLUSH_EVERY`` failures, and when
the process closes its ``App``. So every failure is still in the trail — as a number — while a
flood of 100 000 bad tokens writes a handful of entries. Per process (the counts live in memory).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import attrs
from sqlalchemy.orm import Session

from hookspecs.types import RequestContext

if TYPE_CHECKING:
    from ..app import App

#: A window's count is written at the latest after this many suppressed failures.
FLUSH_EVERY = 1000
#: Distinct (ip, reason, user) keys tracked at once; beyond that every failure is written.
MAX_KEYS = 4096


@attrs.define
class _Window:
    ctx: RequestContext
    target: str | None
    method: str
    reason: str
    first: datetime
    last: datetime
    suppressed: int = 0


class FailureAggregator:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str, str | None], _Window] = {}

    def note(self, app: App, s: Session, ctx: RequestContext, target: str | None, method: str,
             reason: str) -> None:
        """Audit one failed token log-in in ``s``'s transaction (or count it)."""
        now = app.clock.now()
        span = timedelta(seconds=app.config.get("access.auth_failure_window_seconds", int, 60))
        key = (ctx.ip, reason, target)
        with self._lock:
            win = self._windows.get(key)
            if win is not None and now - win.first < span and win.suppressed < FLUSH_EVERY:
                win.suppressed += 1
                win.last = now
                return
            if win is not None:
                self._write_summary(app, s, win)
                del self._windows[key]
            if len(self._windows) < MAX_KEYS:
                self._windows[key] = _Window(ctx=ctx, target=target, method=method, reason=reason,
                                             first=now, last=now)
        app.audit.append(s, ctx, "auth.login", "user", target, "failed", {"method": method, "reason": reason})

    @staticmethod
    def _write_summary(app: App, s: Session, win: _Window) -> None:
        if win.suppressed:
            app.audit.append(s, win.ctx, "auth.login", "user", win.target, "failed",
                             {"method": win.method, "reason": win.reason, "aggregated": win.suppressed,
                              "first_at": win.first.isoformat(), "last_at": win.last.isoformat()})

    def flush(self, app: App, *, only_due: bool = False) -> None:
        """Write the pending counts: every one (at close), or those whose window has passed (the
        ``auth.failures`` job of ``cf serve``, so a count never waits for the next failure)."""
        now = app.clock.now()
        span = timedelta(seconds=app.config.get("access.auth_failure_window_seconds", int, 60))
        with self._lock:
            keys = [k for k, w in self._windows.items() if not only_due or now - w.first >= span]
            pending = [w for k in keys if (w := self._windows.pop(k)).suppressed]
        if pending:
            with app.catalog.session() as s:
                for win in pending:
                    self._write_summary(app, s, win)


def aggregator(app: App) -> FailureAggregator:
    agg = app.__dict__.get("_cf_auth_failures")
    if agg is None:
        agg = app.__dict__.setdefault("_cf_auth_failures", FailureAggregator())
    return agg  # type: ignore[no-any-return]


def flush_job(app: App) -> None:
    agg = app.__dict__.get("_cf_auth_failures")
    if agg is not None:
        agg.flush(app, only_due=True)

