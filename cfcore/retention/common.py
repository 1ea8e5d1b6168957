"""Retention helpers shared by its modules: states, reasons, crash points, access checks, row loading."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from hookspecs.types import AccessTarget, RequestContext

from ..authority import system_context
from ..db.models import Recording
from ..errors import InputError, NotFound
from ..states import LIVE_RECORDING_STATES

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)


#: States a recording may be purged or erased from.
LIVE_STATES = LIVE_RECORDING_STATES
REASON_EXPIRED = "retention-expired"
REASON_ERASURE = "art17-erasure"

#: Crash points for tests (the test kit's ``CF_TEST_CRASH_AT=<name>``): the process exits at once.
CRASH_POINTS = ("purge-after-mark", "purge-after-store-delete", "purge-after-shred")




def recording_target(rec: Recording) -> AccessTarget:
    return AccessTarget(kind="recording", id=rec.id, owner_advisor_id=rec.advisor_id,
                        attributes={"two_sided": bool(rec.two_sided), "state": rec.state,
                                    "legal_hold": bool(rec.legal_hold)})


def as_context(ctx: RequestContext | None, function: str) -> RequestContext:
    """The caller's context, or the system's own (``SYSTEM`` doing ``function``) when no person
    started the work. The system is allowed only what ``SYSTEM_RIGHTS`` lists: ``None`` never
    means "allow", and every audit entry names who acted and in which function."""
    return ctx if ctx is not None else system_context(function)


def authorize_retention(app: App, ctx: RequestContext, action: str, target: AccessTarget) -> None:
    """Ask the access policy. Never call it inside an open catalog transaction: a denial is
    audited in a transaction of its own (SQLite would wait for our own write lock)."""
    from ..access.guard import authorize

    authorize(app, ctx, action, target)


def find_target(app: App, rec_id: str) -> AccessTarget | None:
    """The recording's access target, or None when there is no such recording."""
    with app.catalog.session() as s:
        rec = s.get(Recording, rec_id) if isinstance(rec_id, str) and len(rec_id) <= 64 else None
        return recording_target(rec) if rec is not None else None


def unknown_target(rec_id: str) -> AccessTarget:
    """What the access decision sees for an id that does not exist: a recording of no advisor, so
    that who may not act on colleagues' recordings is refused alike (no id probing)."""
    return AccessTarget(kind="recording", id=str(rec_id)[:64])


def authorize_recording(app: App, ctx: RequestContext, action: str, rec_id: str) -> None:
    """Decide first, then tell whether the recording exists (``NotFound`` only for who may act)."""
    target = find_target(app, rec_id)
    authorize_retention(app, ctx, action, target or unknown_target(rec_id))
    if target is None:
        raise NotFound(f"no recording {rec_id}", hint="check the id with 'cf recordings list'")


def load_recording(session: Session, rec_id: str, *, lock: bool = False) -> Recording:
    q = select(Recording).where(Recording.id == rec_id)
    if lock:
        q = q.with_for_update()
    rec = session.execute(q).scalar_one_or_none()
    if rec is None:
        raise NotFound(f"no recording {rec_id}", hint="check the id with 'cf recordings list'")
    return rec


def digest(rec: Recording) -> str:
    from ..archive import row_digest

    return row_digest(rec)


def username(ctx: RequestContext) -> str:
    return ctx.actor.username


def media_keys(rec: Recording) -> list[str]:
    return sorted({m.key for m in rec.media})


def lock_media(app: App, ctx: RequestContext, rec_id: str, keys: Iterable[str], *,
                until: datetime | None = None, legal_hold: bool | None = None) -> list[str]:
    """Extend object locks / set or release legal holds in the stores that support them. The
    catalog change stands; problems are returned and audited (``store.lock`` outcome ``error``),
    and ``cf store check`` / ``cf store repair`` find and fix the lock later."""
    problems = []
    for key in sorted(set(keys)):
        try:
            app.stores.lock(key, until, legal_hold)
        except Exception as exc:  # noqa: BLE001 - reported to the caller and audited
            log.warning("store lock of %s failed: %s", key, type(exc).__name__)
            problems.append(f"{key}: {exc}")
    if problems:
        app.audit.record(ctx, "store.lock", "recording", rec_id, "error",
                         {"until": until, "legal_hold": legal_hold, "problems": problems[:20]})
    return problems


def crash_point(app: App, name: str) -> None:
    """A crash point (``CRASH_POINTS``): only a test-only plugin acts on it (exit code 99)."""
    app.crash_point(name, 99)


def parse_date(value: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO timestamp with zone."""
    from datetime import UTC

    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"not a date: {value!r}", hint="use YYYY-MM-DD or an ISO timestamp") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)
