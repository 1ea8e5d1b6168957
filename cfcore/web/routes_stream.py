"""Streaming the decrypted audio of a recording through a signed, short-lived link.

``GET|HEAD /api/stream/{recording id}?t=<token>`` answers with the recording as a PCM16 WAV,
decrypted segment by segment in memory (nothing in clear touches the disk). ``Range: bytes=…``
gives 206 with ``Content-Range`` (single ranges; a multi-range request gets the whole file, as
RFC 9110 allows), an unsatisfiable range 416 with ``Content-Range: bytes */<size>``.

The caller must be logged in as the link's user (bearer token or session cookie), unless
``[access] link_require_login = false`` (then the link alone is the credential; bind it to the IP).
Every unusable link gets the same 403 body; every request is audited.

Speed without giving up the audit (issue 20):

- The recording, its data key and the checked envelope headers are loaded on a link's first
  request and kept until the link expires (``cfcore.playback``); later requests through it check
  the recording's state in one read-only query.
- The audit entry of a request that sends audio is appended (chained, committed) *before* the
  first byte, so a playback whose entry cannot be written sends nothing; but its commit does not
  wait for the disk (``Catalog.unsynced_session``): a sync of the catalog starts at once in the
  background (``cfcore.db.durability``: one fsync serves every request waiting). A response of
  several pieces (a playback from the start) sends its last piece only once that sync has
  succeeded and is cut before the end when it failed; a one-piece response (a seek, at most
  ``FIRST_CHUNK`` bytes) does not wait for it. The entry survives a crash of the server
  process in any case (it is committed); only an operating-system crash in the milliseconds
  before the sync could lose it, and then the response was cut too.
- Each range is decrypted segment by segment, every segment authenticated before any of its
  bytes is sent (``cfcore.crypto.envelope.Reader``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from hookspecs.types import Actor, RequestContext

from ..access import links
from ..crypto import envelope
from ..db.durability import SyncFailed, SyncQueue, sync_queue
from ..errors import CallFortError
from ..playback import check_playable, link_views
from .deps import authenticate, client_host, client_ip, get_app

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)
router = APIRouter(tags=["stream"])

#: The first piece of a response is small (its bytes come out soon), the others large.
FIRST_CHUNK = 64 * 1024
CHUNK = 1024 * 1024
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
_REC_ID = re.compile(r"^[0-9a-f]{32}$")
UNSATISFIABLE = "unsatisfiable"
#: A byte position with more digits lies beyond any recording (and ``int()`` of thousands of
#: digits is refused by Python): it counts as "past the end".
_MAX_DIGITS = 18


def _position(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_DIGITS else 10 ** _MAX_DIGITS


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """``(first, last)`` inclusive byte positions of a single ``bytes=`` range, ``None`` to send the
    whole file (no, malformed or multi-range header), or ``UNSATISFIABLE``."""
    if not header:
        return None
    m = _RANGE.match(header)
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        n = _position(last)
        if n == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - n), size - 1
    start = _position(first)
    end = _position(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return UNSATISFIABLE
    return start, min(end, size - 1)


def _refused(app: App, request: Request, ctx: RequestContext | None, rec_id: str, action: str, reason: str) -> JSONResponse:
    if ctx is None:
        ctx = RequestContext(actor=Actor(user_id="unknown", username="unknown"), host=client_host(request),
                             ip=client_ip(request), function="api.stream")
    target_id = rec_id if _REC_ID.match(rec_id) else None
    detail: dict[str, Any] = {"reason": reason, "method": request.method}
    if target_id is None:
        detail["malformed_id"] = True
    app.audit.record(ctx, action, "recording", target_id, "denied", detail)
    return JSONResponse({"error": links.LINK_REFUSED}, status_code=403)


def _link_actor(app: App, user_id: str) -> Actor | None:
    from ..access.users import actor_for
    from ..db.models_access import User

    with app.catalog.read_session() as s:
        user = s.get(User, user_id)
        return actor_for(user) if user is not None and not user.disabled else None


def _pieces(start: int, stop: int, header: int, channels: int) -> Iterator[tuple[int, int]]:
    """``[a, b)`` pieces of the byte range ``[start, stop)``: a small first piece (a quick first
    byte), then ``CHUNK``-sized ones that end on envelope segment boundaries (no segment is
    decrypted twice)."""
    step = envelope.DEFAULT_SEGMENT_SIZE * channels  # <= CHUNK, so every piece is non-empty
    pos = start
    nxt = min(stop, pos + FIRST_CHUNK)
    while pos < stop:
        yield pos, nxt
        pos = nxt
        nxt = min(stop, pos + CHUNK)
        if nxt < stop and nxt - header >= step:
            nxt = header + (nxt - header) // step * step


def _synced(queue: SyncQueue, ticket: int, rec_id: str) -> None:
    try:
        queue.wait(ticket)
    except SyncFailed:
        log.error("playback of %s cut before its end: its audit entry could not be synced", rec_id)
        raise


def stream(rec_id: str, request: Request, t: str = Query(max_length=2048, description="the link token")) -> Response:
    app = get_app(request)
    require_login = app.config.get("access.link_require_login", bool, True)
    ctx = authenticate(request, "api.stream", required=require_login)
    claims, reason = links.check(app, t, recording_id=rec_id, user_id=ctx.actor.user_id if ctx else None,
                                 client_ip=client_ip(request), require_user=require_login)
    if claims is None:
        return _refused(app, request, ctx, rec_id, "recording.play", reason)
    if claims.purpose not in ("play", "export"):  # a transcript link never opens the audio
        return _refused(app, request, ctx, rec_id, "recording.play", f"a {claims.purpose} link")
    action = "recording.export" if claims.purpose == "export" else "recording.play"
    if ctx is None:
        actor = _link_actor(app, claims.user_id)
        if actor is None:
            return _refused(app, request, None, rec_id, action, "the link's user is disabled or gone")
        ctx = RequestContext(actor=actor, host=client_host(request), ip=client_ip(request), function="api.stream")
    ctx = attrs.evolve(ctx, approval_id=claims.approval_id)
    try:
        view = link_views(app).view(app, rec_id, link=claims.nonce, user_id=claims.user_id,
                                    expires_at=claims.expires_at)
    except CallFortError as exc:  # deleted, crypto-shredded, unreadable: to the caller like no recording
        return _refused(app, request, ctx, rec_id, action, f"recording not readable: {type(exc).__name__}")
    size = view.size
    header = request.headers.get("range")
    rng = parse_range(header, size)
    base = {"Accept-Ranges": "bytes", "Content-Type": "audio/wav", "Cache-Control": "no-store",
            "Content-Disposition": (f'attachment; filename="{rec_id}.wav"' if claims.purpose == "export"
                                    else f'inline; filename="{rec_id}.wav"')}
    detail: dict[str, Any] = {"method": request.method, "range": header[:100] if header else None,
                              "link": claims.nonce, "purpose": claims.purpose}

    def refused_or_audited(outcome: str, entry: dict[str, Any], *, synced: bool = True) -> Response | None:
        """Check the recording is still playable and audit the request in one transaction
        (``synced=False``: the commit does not wait for the disk); the 403 when it is not
        playable any more (deleted or shredded since the link's view was opened), audited."""
        try:
            with (app.catalog.session() if synced else app.catalog.unsynced_session()) as s:
                check_playable(s, rec_id)
                app.audit.append(s, ctx, action, "recording", rec_id, outcome, entry)
        except CallFortError as exc:
            link_views(app).forget(rec_id)
            return _refused(app, request, ctx, rec_id, action, f"recording not readable: {type(exc).__name__}")
        return None

    if rng == UNSATISFIABLE:
        if (refusal := refused_or_audited("refused", {**detail, "status": 416, "size": size})) is not None:
            return refusal
        return Response(status_code=416, headers={**base, "Content-Range": f"bytes */{size}"})
    if rng is None:
        start, end, status = 0, size - 1, 200
        headers = dict(base)
    else:
        assert isinstance(rng, tuple)
        start, end = rng
        status = 206
        headers = {**base, "Content-Range": f"bytes {start}-{end}/{size}"}
    length = max(0, end - start + 1)
    headers["Content-Length"] = str(length)
    entry = {**detail, "status": status, "first": start, "last": end, "bytes": length}
    if request.method == "HEAD":
        if (refusal := refused_or_audited("ok", entry)) is not None:
            return refusal
        return Response(status_code=status, headers=headers)
    # committed before the first byte (no audio without its entry), synced right after
    if (refusal := refused_or_audited("ok", entry, synced=False)) is not None:
        return refusal
    queue = sync_queue(app)
    ticket = queue.request()
    queue.sync_soon(ticket)
    pieces = list(_pieces(start, end + 1, len(view.header), view.channels))
    if len(pieces) == 1:  # a seek: one piece, answered at once (its entry is being synced meanwhile)
        return Response(view.read(start, end + 1), status_code=status, headers=headers, media_type="audio/wav")

    def body() -> Iterator[bytes]:
        for a, b in pieces:
            data = view.read(a, b)
            if b == end + 1:
                _synced(queue, ticket, rec_id)
            yield data

    return StreamingResponse(body(), status_code=status, headers=headers, media_type="audio/wav")


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"audio/wav": {}}, "description": "the whole recording as WAV"},
    206: {"description": "partial content (Content-Range)"},
    403: {"description": "link invalid or expired, or no such recording"},
    416: {"description": "range not satisfiable"},
}
router.add_api_route("/api/stream/{rec_id}", stream, methods=["GET"], operation_id="stream_recording",
                     summary="Stream a recording through a signed link (HTTP Range supported)",
                     responses=_RESPONSES, response_class=StreamingResponse)
router.add_api_route("/api/stream/{rec_id}", stream, methods=["HEAD"], operation_id="stream_recording_head",
                     summary="Size and type of a recording behind a signed link", responses=_RESPONSES)
