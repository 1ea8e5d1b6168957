"""Leases and the shared work queue: several ``cf serve`` workers on one catalog (issue 20).

Two kinds of exclusivity, both in the catalog, so that they hold across machines on PostgreSQL
and across processes on one host on SQLite (its write lock, ``BEGIN IMMEDIATE``, serialises the
same statements):

* **A lease** (``leases`` row) for what exactly one worker may run at a time: a cluster-scoped
  background job, a capture source. The holder renews it every ``[server] heartbeat_seconds``;
  a worker that dies stops renewing, and after ``[server] lease_seconds`` another worker takes
  it over. ``token`` grows with every change of holder (a fencing token a plugin may pass on).
* **A work item** (``work_items`` row) for work that many workers share: each worker claims a
  few items with ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL; on SQLite the write lock), and
  each claim is itself a lease that expires: an item held by a dead worker is claimed again.
  An item is therefore done *at least* once; the work behind it must be idempotent (the pickup's
  ingest is: the same call is archived once), and its completion is fenced (only the holder of
  the current claim can mark it done).

Lease times come from the database server on PostgreSQL (one clock for every machine, no skew
between workers) and from the host's wall clock on SQLite (one machine). Never from
``app.clock``: that is the deployment's business clock, which tests freeze, and a frozen clock
would never let a dead worker's lease run out.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .db.models_leases import LeaseRow, WorkItemRow

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 30.0


@attrs.frozen
class Lease:
    name: str
    holder: str
    token: int
    expires_at: datetime


@attrs.frozen
class WorkItem:
    id: int
    queue: str
    key: str
    payload: dict[str, Any]
    attempts: int
    holder: str


def worker_id(app: App) -> str:
    """This process's identity in leases: ``[server] worker_name`` (default the host name), the
    pid and a random suffix, so that two processes (or a restarted one) never share it."""
    cached = app.__dict__.get("_cf_worker_id")
    if cached is None:
        name = app.config.get("server.worker_name", str, "") or socket.gethostname() or "localhost"
        cached = f"{name[:80]}:{os.getpid()}:{secrets.token_hex(3)}"
        app.__dict__["_cf_worker_id"] = cached
    return str(cached)


def lease_seconds(app: App) -> float:
    value = app.config.get("server.lease_seconds", float, DEFAULT_LEASE_SECONDS)
    if value < 2:
        from .errors import ConfigError

        raise ConfigError(f"{app.config.path}: server.lease_seconds must be at least 2, not {value}")
    return value


def heartbeat_seconds(app: App) -> float:
    """How often a holder renews; at most a third of the lease, so two renewals may fail."""
    ttl = lease_seconds(app)
    beat = app.config.get("server.heartbeat_seconds", float, ttl / 3)
    return max(0.2, min(beat, ttl / 3))


def db_now(s: Session) -> datetime:
    """The lease clock: the database server's on PostgreSQL, this host's on SQLite."""
    bind = s.get_bind()
    if bind.dialect.name == "postgresql":
        value = s.execute(text("SELECT clock_timestamp()")).scalar_one()
        return value.astimezone(UTC)  # type: ignore[no-any-return]
    return datetime.now(UTC)


# --------------------------------------------------------------------------- leases


def acquire(app: App, name: str, holder: str | None = None, seconds: float | None = None) -> Lease | None:
    """Take (or renew, when held by ``holder``) the lease ``name``; None while another holds it."""
    holder = holder or worker_id(app)
    ttl = timedelta(seconds=seconds if seconds is not None else lease_seconds(app))
    try:
        with app.catalog.session() as s:
            now = db_now(s)
            row = s.scalars(select(LeaseRow).where(LeaseRow.name == name).with_for_update()).first()
            if row is None:
                row = LeaseRow(name=name, holder=holder, token=1, acquired_at=now, renewed_at=now,
                               expires_at=now + ttl)
                s.add(row)
                s.flush()
            elif row.holder == holder or row.expires_at <= now:
                if row.holder != holder:
                    if row.expires_at > row.renewed_at:  # not released: it lapsed, the holder likely died
                        log.warning("lease %s of %s lapsed; %s takes over", name, row.holder, holder)
                    row.holder, row.token, row.acquired_at = holder, row.token + 1, now
                row.renewed_at, row.expires_at = now, now + ttl
            else:
                return None
            return Lease(name=name, holder=holder, token=row.token, expires_at=row.expires_at)
    except IntegrityError:  # another worker inserted the row first (PostgreSQL)
        return None


def renew(app: App, lease: Lease, seconds: float | None = None) -> Lease | None:
    """Extend a held lease; None when it was lost (it lapsed and another worker took it)."""
    ttl = timedelta(seconds=seconds if seconds is not None else lease_seconds(app))
    with app.catalog.session() as s:
        now = db_now(s)
        done = s.execute(update(LeaseRow).where(LeaseRow.name == lease.name, LeaseRow.holder == lease.holder,
                                                LeaseRow.token == lease.token)
                         .values(renewed_at=now, expires_at=now + ttl))
        if not done.rowcount:  # type: ignore[attr-defined]
            return None
        return attrs.evolve(lease, expires_at=now + ttl)


def release(app: App, lease: Lease) -> None:
    """Give a lease up at once (a clean stop): the next worker need not wait for it to lapse."""
    with app.catalog.session() as s:
        now = db_now(s)
        s.execute(update(LeaseRow).where(LeaseRow.name == lease.name, LeaseRow.holder == lease.holder,
                                         LeaseRow.token == lease.token).values(expires_at=now, renewed_at=now))


def holders(app: App, prefix: str = "") -> list[dict[str, Any]]:
    """The live leases (for status pages and tests): name, holder, token, expiry."""
    with app.catalog.session() as s:
        now = db_now(s)
        rows = s.scalars(select(LeaseRow).where(LeaseRow.name.startswith(prefix, autoescape=True),
                                                LeaseRow.expires_at > now).order_by(LeaseRow.name))
        return [{"name": r.name, "holder": r.holder, "token": r.token, "expires_at": r.expires_at.isoformat()}
                for r in rows]


# --------------------------------------------------------------------------- work queue


def enqueue(app: App, queue: str, key: str, payload: dict[str, Any], *, rearm_done: bool = False) -> bool:
    """Add an item once (the same ``key`` twice is one item). ``rearm_done`` puts a finished item
    with that key back to pending (its source reappeared). True when something was queued."""
    try:
        with app.catalog.session() as s:
            row = s.scalars(select(WorkItemRow).where(WorkItemRow.queue == queue, WorkItemRow.key == key)).first()
            now = db_now(s)
            if row is None:
                s.add(WorkItemRow(queue=queue, key=key, payload=payload, state="pending", attempts=0,
                                  available_at=now, created_at=now))
                return True
            if rearm_done and row.state == "done":
                row.state, row.payload, row.available_at, row.attempts = "pending", payload, now, 0
                row.leased_by = row.lease_expires_at = row.done_at = None
                return True
            return False
    except IntegrityError:  # enqueued by another worker at the same moment
        return False


def enqueue_many(app: App, queue: str, payloads: dict[str, dict[str, Any]]) -> int:
    """Add many new items in one transaction (keys already queued are left alone); how many added."""
    if not payloads:
        return 0
    try:
        with app.catalog.session() as s:
            now = db_now(s)
            known = set(s.scalars(select(WorkItemRow.key).where(WorkItemRow.queue == queue,
                                                                WorkItemRow.key.in_(list(payloads)))))
            new = [k for k in payloads if k not in known]
            s.add_all([WorkItemRow(queue=queue, key=k, payload=payloads[k], state="pending", attempts=0,
                                   available_at=now, created_at=now) for k in new])
            return len(new)
    except IntegrityError:  # another worker queued some of them meanwhile: one by one then
        return sum(enqueue(app, queue, k, p) for k, p in payloads.items())


def states(app: App, queue: str, keys: list[str]) -> dict[str, str]:
    """The state of each of ``keys`` that is queued (in one query per 500 keys)."""
    out: dict[str, str] = {}
    with app.catalog.session() as s:
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            out.update({k: st for k, st in s.execute(select(WorkItemRow.key, WorkItemRow.state).where(
                WorkItemRow.queue == queue, WorkItemRow.key.in_(chunk)))})
    return out


def claim(app: App, queue: str, *, holder: str | None = None, limit: int = 1, seconds: float | None = None,
          max_attempts: int = 5) -> list[WorkItem]:
    """Claim up to ``limit`` due items: pending ones, and running ones whose claim lapsed (their
    worker died). Rows another worker is claiming right now are skipped, not waited for. An item
    claimed ``max_attempts`` times without being finished is set ``failed`` (it kills workers)."""
    holder = holder or worker_id(app)
    ttl = timedelta(seconds=seconds if seconds is not None else lease_seconds(app))
    out: list[WorkItem] = []
    with app.catalog.session() as s:
        now = db_now(s)
        due = or_(and_(WorkItemRow.state == "pending", WorkItemRow.available_at <= now),
                  and_(WorkItemRow.state == "running", WorkItemRow.lease_expires_at <= now))
        rows = list(s.scalars(select(WorkItemRow).where(WorkItemRow.queue == queue, due)
                              .order_by(WorkItemRow.id).limit(limit).with_for_update(skip_locked=True)))
        for row in rows:
            if row.state == "running":
                log.warning("work item %s/%s: the claim of %s lapsed; claimed again", queue, row.id, row.leased_by)
                if row.attempts >= max_attempts:
                    row.state, row.leased_by, row.lease_expires_at = "failed", None, None
                    row.last_error = f"claimed {row.attempts} times without being finished"
                    continue
            row.state, row.leased_by, row.lease_expires_at = "running", holder, now + ttl
            row.attempts += 1
            out.append(WorkItem(id=row.id, queue=queue, key=row.key, payload=dict(row.payload),
                                attempts=row.attempts, holder=holder))
    return out


def _held(item: WorkItem) -> Any:
    return and_(WorkItemRow.id == item.id, WorkItemRow.state == "running", WorkItemRow.leased_by == item.holder)


def extend(app: App, items: list[WorkItem], seconds: float | None = None) -> int:
    """Renew the claims on items still being worked on; returns how many are still held."""
    if not items:
        return 0
    ttl = timedelta(seconds=seconds if seconds is not None else lease_seconds(app))
    held = 0
    with app.catalog.session() as s:
        now = db_now(s)
        for item in items:
            held += s.execute(update(WorkItemRow).where(_held(item))
                              .values(lease_expires_at=now + ttl)).rowcount or 0  # type: ignore[attr-defined]
    return held


def complete(app: App, item: WorkItem, result: str | None = None) -> bool:
    """Mark an item done; False when the claim was lost (another worker has it now)."""
    with app.catalog.session() as s:
        now = db_now(s)
        done = s.execute(update(WorkItemRow).where(_held(item)).values(
            state="done", result=result, done_at=now, leased_by=None, lease_expires_at=None, last_error=None))
        return bool(done.rowcount)  # type: ignore[attr-defined]


def fail(app: App, item: WorkItem, error: str, *, retry_in: float | None = None) -> bool:
    """An attempt failed: retry after ``retry_in`` seconds, or (None) give the item up."""
    with app.catalog.session() as s:
        now = db_now(s)
        values: dict[str, Any] = {"last_error": error[:500], "leased_by": None, "lease_expires_at": None}
        if retry_in is None:
            values.update(state="failed", done_at=now)
        else:
            values.update(state="pending", available_at=now + timedelta(seconds=retry_in))
        done = s.execute(update(WorkItemRow).where(_held(item)).values(**values))
        return bool(done.rowcount)  # type: ignore[attr-defined]


def counts(app: App, queue: str) -> dict[str, int]:
    with app.catalog.session() as s:
        rows = s.execute(select(WorkItemRow.state, func.count()).where(WorkItemRow.queue == queue)
                         .group_by(WorkItemRow.state))
        return {str(state): int(n) for state, n in rows}
