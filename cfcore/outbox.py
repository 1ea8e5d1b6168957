"""The integration outbox: events for plugins that must arrive, even across a crash or restart.

``cf_recording_archived`` and ``cf_after_purge`` are delivered through it. The event is written in
the same catalog transaction as the change it announces (the archive commit, the purge's shred),
one row per implementing plugin, with an id that is the event's **idempotency key** (the same on
every retry). Right after the commit the core tries each row once; a plugin that raises (its CRM is
down) is retried by the ``integration.outbox`` job of ``cf serve`` with growing back-off (5 s,
10 s, … up to 1 h) for ``[server] outbox_max_attempts`` (default 200) attempts, then the row is
``dead`` (audited, so the FIS sees it). Each plugin is called alone, with its own context, so one
failing CRM never repeats another plugin's delivery. Every failed attempt is audited
(``recording.archived_hook`` / ``recording.purged_hook``, outcome ``error``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hookspecs.types import Direction, RecordingInfo, Tombstone

from .authority import system_context
from .clock import utc
from .db.base import among
from .db.models_integration import OutboxRow

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger(__name__)

HOOKS = {"cf_recording_archived": ("recording", "recording.archived_hook"),
         "cf_after_purge": ("tombstone", "recording.purged_hook")}
BACKOFF_FIRST, BACKOFF_MAX = 5.0, 3600.0


def _iso(dt: datetime) -> str:
    return utc(dt).isoformat()


def encode(value: RecordingInfo | Tombstone) -> dict[str, Any]:
    if isinstance(value, RecordingInfo):
        return {"id": value.id, "site": value.site, "source": value.source, "advisor_id": value.advisor_id,
                "direction": value.direction.value, "started_at": _iso(value.started_at),
                "ended_at": _iso(value.ended_at), "two_sided": value.two_sided,
                "retention_class": value.retention_class, "legal_hold": value.legal_hold,
                "subject_pseudonyms": list(value.subject_pseudonyms), "state": value.state}
    return {"recording_id": value.recording_id, "started_at": _iso(value.started_at),
            "ended_at": _iso(value.ended_at), "deleted_at": _iso(value.deleted_at), "reason": value.reason,
            "rule": value.rule, "subject_pseudonyms": list(value.subject_pseudonyms),
            "ciphertext_sha256": list(value.ciphertext_sha256)}


def decode(hook: str, payload: dict[str, Any]) -> RecordingInfo | Tombstone:
    p = dict(payload)
    for key in ("started_at", "ended_at", "deleted_at"):
        if key in p:
            p[key] = datetime.fromisoformat(p[key])
    if hook == "cf_recording_archived":
        p["direction"] = Direction(p["direction"])
        return RecordingInfo(**p)
    return Tombstone(**p)


def _plugins(app: App, hook: str) -> list[str]:
    return app.pm.implementers(hook)  # type: ignore[no-any-return]


def enqueue(app: App, s: Session, hook: str, value: RecordingInfo | Tombstone) -> list[str]:
    """Add the event for every plugin implementing ``hook`` to the session (commit with the change)."""
    return enqueue_many(app, s, hook, [value])


def enqueue_many(app: App, s: Session, hook: str, values: Sequence[RecordingInfo | Tombstone]) -> list[str]:
    """``enqueue`` for many values, with one insert statement (a purge batch's events)."""
    from sqlalchemy import insert

    plugins = _plugins(app, hook)
    if not plugins or not values:
        return []
    now = app.clock.now()
    rows: list[dict[str, Any]] = [{"id": secrets.token_hex(16), "hook": hook, "plugin": plugin,
             "subject_id": value.id if isinstance(value, RecordingInfo) else value.recording_id,
             "payload": encode(value), "state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
            for value in values for plugin in plugins]
    s.execute(insert(OutboxRow), rows)
    return [r["id"] for r in rows]


def _call(app: App, row_hook: str, plugin: str, event_id: str, value: Any, ctx: Any) -> None:
    app.pm.call_one(row_hook, plugin, **{HOOKS[row_hook][0]: value, "event_id": event_id, "ctx": ctx})


def _max_attempts(app: App) -> int:
    return max(1, app.config.get("server.outbox_max_attempts", int, 200))


def deliver(app: App, ids: list[str] | None = None, *, limit: int = 100) -> dict[str, int]:
    """Try the given rows (or every due row); returns counts of delivered / failed / dead.

    The rows are read in one transaction and their outcomes written in another (a batch of
    events, e.g. a purge batch's ``cf_after_purge``, costs two commits, not two per event); a row
    another worker settled meanwhile is left as that worker wrote it."""
    now = app.clock.now()
    with app.catalog.session() as s:
        q = select(OutboxRow.id, OutboxRow.hook, OutboxRow.plugin, OutboxRow.payload).where(OutboxRow.state == "pending")
        q = q.where(among(s, OutboxRow.id, ids)) if ids is not None else q.where(OutboxRow.next_attempt_at <= now)
        due = list(s.execute(q.order_by(OutboxRow.created_at, OutboxRow.id).limit(limit)))
    from .gateway import plugin_context

    counts = {"delivered": 0, "failed": 0, "dead": 0}
    outcomes: dict[str, str | None] = {}
    contexts: dict[str, Any] = {}  # one per plugin and delivery (its section is parsed once)
    for row_id, hook, plugin, payload in due:
        error: str | None = None
        try:
            if plugin not in contexts:
                contexts[plugin] = plugin_context(app, plugin)
            _call(app, hook, plugin, row_id, decode(hook, dict(payload)), contexts[plugin])
        except Exception as exc:  # noqa: BLE001 - a plugin's failure is retried, never fatal
            error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("delivery of %s to %s failed: %s", hook, plugin, type(exc).__name__)
        outcomes[row_id] = error
    if not outcomes:
        return counts
    with app.catalog.session() as s:
        now = app.clock.now()
        locked = list(s.scalars(select(OutboxRow.id).where(among(s, OutboxRow.id, list(outcomes)), OutboxRow.state == "pending")
                                .order_by(OutboxRow.created_at, OutboxRow.id).with_for_update()))
        ok = [row_id for row_id in locked if outcomes[row_id] is None]
        if ok:  # the usual case, set-based
            s.execute(update(OutboxRow).where(among(s, OutboxRow.id, ok)).values(
                state="delivered", delivered_at=now, last_error=None, attempts=OutboxRow.attempts + 1))
            counts["delivered"] += len(ok)
        bad = [row_id for row_id in locked if outcomes[row_id] is not None]
        rows = s.scalars(select(OutboxRow).where(among(s, OutboxRow.id, bad)).order_by(OutboxRow.created_at,
                                                                               OutboxRow.id)).all() if bad else []
        for row in rows:
            if row.state != "pending":
                continue
            error = outcomes[row.id]
            row.attempts += 1
            row.last_error = error
            dead = row.attempts >= _max_attempts(app)
            if dead:
                row.state = "dead"
                counts["dead"] += 1
            else:
                delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (row.attempts - 1))
                row.next_attempt_at = now + timedelta(seconds=delay)
                counts["failed"] += 1
            app.audit.append(s, system_context("integration.outbox"), HOOKS[row.hook][1], "recording", row.subject_id, "dead" if dead else "error",
                             {"plugin": row.plugin, "event": row.id, "attempt": row.attempts, "error": error})
    return counts


def pending(app: App) -> list[OutboxRow]:
    with app.catalog.session() as s:
        rows = list(s.scalars(select(OutboxRow).where(OutboxRow.state == "pending").order_by(OutboxRow.created_at)))
        for r in rows:
            s.expunge(r)
        return rows


def job(app: App) -> dict[str, int]:
    return deliver(app)
