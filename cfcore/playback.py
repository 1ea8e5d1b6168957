"""The recordings behind streaming links, opened once per link.

A player asks for many ranges of one recording through the same link (a start, seeks, the rest in
pieces). Loading the recording for each of them (catalog rows, unwrapping the data key, reading
and checking each object's envelope header) cost more than decrypting the bytes asked for. So the
first request of a link opens the recording (``WavView``) and keeps what it loaded — the
catalogued media, the data key and the checked envelope readers — until the link expires; every
request (the first too) checks with one query in the transaction of its audit entry that the
recording is still playable (``check_playable``: not deleted, not being deleted, data key not
destroyed), so a purge, an erasure or a crypto-shred stops playback at the next request as before.

The cache is per process, bounded (``MAX_LINKS``) and keyed by the link's nonce together with the
recording and user it names: a link that fails its check never reaches it. Each request is still
audited; the access decision was made when the link was minted (``cfcore.access.links``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING

import attrs
from sqlalchemy import select
from sqlalchemy.orm import Session

from .archive import WavView, _Loaded
from .crypto import envelope
from .errors import ConflictError, NotFound

if TYPE_CHECKING:
    from .app import App

#: Links whose recording is kept open at once (the oldest is dropped first).
MAX_LINKS = 256


@attrs.define
class _Open:
    loaded: _Loaded
    opened: dict[str, dict[str, envelope.Reader]]
    expires_at: datetime


class LinkViews:
    def __init__(self, max_links: int = MAX_LINKS) -> None:
        self._lock = threading.Lock()
        self._open: OrderedDict[tuple[str, str, str], _Open] = OrderedDict()
        self._max = max_links

    def view(self, app: App, rec_id: str, *, link: str, user_id: str, expires_at: datetime) -> WavView:
        """A view of ``rec_id`` for a request through the link ``link`` (its nonce), valid until
        ``expires_at``. Raises like ``WavView`` when the recording cannot be played (any more)."""
        key = (link, rec_id, user_id)
        now = app.clock.now()
        with self._lock:
            entry = self._open.get(key)
            for k in [k for k, e in self._open.items() if e.expires_at <= now]:
                del self._open[k]
        if entry is not None and entry.expires_at > now:
            # the caller checks ``check_playable`` in the transaction of its audit entry
            return WavView(app, rec_id, loaded=entry.loaded, opened=entry.opened)
        view = WavView(app, rec_id)
        if link:
            with self._lock:
                self._open[key] = _Open(view.loaded, view.opened, expires_at)
                while len(self._open) > self._max:
                    self._open.popitem(last=False)
        return view

    def forget(self, rec_id: str) -> None:
        """Drop every open view of ``rec_id``."""
        with self._lock:
            for k in [k for k in self._open if k[1] == rec_id]:
                del self._open[k]


def check_playable(session: Session, rec_id: str) -> None:
    """NotFound / ConflictError, as ``WavView`` raises them, when ``rec_id`` was deleted, is
    being deleted or its data key was destroyed (since a view of it was opened): one query, in
    the caller's transaction (the one that audits the request)."""
    from .db.models import DataKey, Recording

    row = session.execute(select(Recording.state, DataKey.wrapped.is_not(None))
                          .outerjoin(DataKey, DataKey.recording_id == Recording.id)
                          .where(Recording.id == rec_id)).one_or_none()
    if row is None or row[0] == "purged":
        raise NotFound(f"recording {rec_id} was deleted", hint="see its tombstone")
    if not row[1]:
        raise ConflictError(f"the data key of recording {rec_id} was destroyed (crypto-shredded); its audio is gone")
    if row[0] == "purging":
        raise ConflictError(f"recording {rec_id} is being deleted (purge or erasure in progress)")


def link_views(app: App) -> LinkViews:
    """The deployment's cache (one per ``App``)."""
    views = app.__dict__.get("_cf_link_views")
    if views is None:
        views = app.__dict__.setdefault("_cf_link_views", LinkViews())
    return views  # type: ignore[no-any-return]
