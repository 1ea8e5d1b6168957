"""Streaming links: short-lived, signed, bound to a user and a recording (optionally a client IP).

A link is ``/api/stream/<recording id>?t=<token>``; the token is
``v1.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>`` with a 32-byte secret in the keys
directory (``stream-link.key``, mode 0600). The claims name the user, the recording, the expiry
(``[access] link_ttl_seconds``, default 300), the purpose (``play``, or ``export`` for an approved
download) and, when bound, the client IP. The signature is compared in constant time.

Whatever is wrong with a link — expired, forged, altered, another user's, another recording's, a
recording that does not exist (any more) — the stream endpoint answers with the same 403 body
(``LINK_REFUSED``), so a link reveals nothing. The reason is audited.

Creating a link is the access decision (``recording.play``; four-eyes for another advisor's call,
then made by the approval's executor); each request to the stream endpoint is audited as a
playback (``recording.play``, or ``recording.export`` for download links).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from hookspecs.types import RequestContext

from ..crypto.keyfiles import load_secret
from ..errors import ConflictError, InputError, NotFound
from ..states import LIVE_RECORDING_STATES
from . import approvals
from .guard import authorize

if TYPE_CHECKING:
    from ..app import App

SECRET_FILE = "stream-link.key"  # noqa: S105 - a file name
VERSION = "v1"
#: ``transcript`` opens the transcript view (``/api/transcripts/<id>``), never audio.
PURPOSES = ("play", "export", "transcript")
#: The one answer to every unusable link (and to a link for a recording that does not exist).
LINK_REFUSED = "link invalid or expired, or no such recording"


@attrs.frozen(kw_only=True)
class LinkClaims:
    user_id: str
    recording_id: str
    expires_at: datetime
    purpose: str = "play"
    ip: str | None = None
    nonce: str = ""
    approval_id: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _secret(app: App) -> bytes:
    """The link key, read once per process and again only when the file changed (a stat per
    use instead of a read: every range request of a playback checks its link)."""
    path = app.keys_dir / SECRET_FILE
    try:
        st = path.stat()
        stamp: tuple[int, ...] | None = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode)
    except OSError:
        stamp = None  # load_secret says what is wrong
    cached = app.__dict__.get("_cf_link_secret")
    if stamp is not None and cached is not None and cached[0] == stamp:
        return cached[1]  # type: ignore[no-any-return]
    secret = load_secret(path, 32)
    app.__dict__["_cf_link_secret"] = (stamp, secret)
    return secret


def _mac(app: App, payload: str) -> bytes:
    return hmac.new(_secret(app), f"cf-stream-{VERSION}.{payload}".encode(), hashlib.sha256).digest()


def sign(app: App, claims: LinkClaims) -> str:
    body = {"u": claims.user_id, "r": claims.recording_id, "e": int(claims.expires_at.timestamp()),
            "p": claims.purpose, "i": claims.ip, "n": claims.nonce, "a": claims.approval_id}
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    return f"{VERSION}.{payload}.{_b64(_mac(app, payload))}"


def parse(app: App, token: str) -> LinkClaims | None:
    """The claims of a well-formed token with a valid signature, else None (expiry not checked)."""
    if not isinstance(token, str) or len(token) > 2048:
        return None
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        return None
    try:
        mac = _unb64(parts[2])
    except (ValueError, TypeError):
        return None
    if not hmac.compare_digest(mac, _mac(app, parts[1])):
        return None
    try:
        body = json.loads(_unb64(parts[1]))
        return LinkClaims(user_id=str(body["u"]), recording_id=str(body["r"]),
                          expires_at=datetime.fromtimestamp(int(body["e"]), UTC), purpose=str(body["p"]),
                          ip=body.get("i"), nonce=str(body.get("n", "")), approval_id=body.get("a"))
    except (ValueError, KeyError, TypeError):
        return None


def check(app: App, token: str, *, recording_id: str, user_id: str | None, client_ip: str,
          require_user: bool = True) -> tuple[LinkClaims | None, str]:
    """``(claims, "ok")`` when the link may be used by ``user_id`` from ``client_ip`` for
    ``recording_id`` now; else ``(None, reason)`` (the reason is for the audit trail only)."""
    claims = parse(app, token)
    if claims is None:
        return None, "bad signature or malformed"
    now = app.clock.now()
    if claims.expires_at <= now:
        return None, "expired"
    if (claims.expires_at - now).total_seconds() > _ttl(app, None):
        # minted for longer than a link may live (a clock set ahead when it was signed)
        return None, "lifetime beyond link_ttl_seconds"
    if not hmac.compare_digest(claims.recording_id, recording_id):
        return None, "another recording's link"
    if require_user and (user_id is None or not hmac.compare_digest(claims.user_id, user_id)):
        return None, "another user's link"
    if claims.ip is not None and claims.ip != client_ip:
        return None, "another client IP"
    if claims.purpose not in PURPOSES:
        return None, "unknown purpose"
    return claims, "ok"


def _ttl(app: App, ttl_seconds: int | None) -> int:
    """The configured lifetime, or a shorter one asked for; a link never lives longer than
    ``[access] link_ttl_seconds`` (checked again when it is used)."""
    configured = app.config.get("access.link_ttl_seconds", int, 300)
    ttl = configured if ttl_seconds is None else ttl_seconds
    if not 1 <= ttl <= 3600 or not 1 <= configured <= 3600:
        raise InputError("a streaming link lives 1 to 3600 seconds")
    if ttl > configured:
        raise InputError(f"a streaming link lives at most link_ttl_seconds ({configured} s)")
    return ttl


def link_url(app: App, recording_id: str, token: str, purpose: str = "play") -> str:
    base = app.config.get("server.public_url", str, "").rstrip("/")
    where = "transcripts" if purpose == "transcript" else "stream"
    return f"{base}/api/{where}/{recording_id}?t={token}"


def issue(app: App, ctx: RequestContext, recording_id: str, *, purpose: str = "play", bind_ip: bool | None = None,
          ttl_seconds: int | None = None) -> dict[str, Any]:
    """Make a link for ``ctx.actor`` (no access check: callers authorize first). Audited
    ``link.create``; the token itself is never stored or audited."""
    if purpose not in PURPOSES:
        raise InputError(f"unknown link purpose {purpose!r}")
    if bind_ip is None:
        bind_ip = bool(app.config.get("access.link_bind_ip", bool, False))
    expires = (app.clock.now() + timedelta(seconds=_ttl(app, ttl_seconds))).replace(microsecond=0)
    claims = LinkClaims(user_id=ctx.actor.user_id, recording_id=recording_id, expires_at=expires, purpose=purpose,
                        ip=ctx.ip if bind_ip else None, nonce=secrets.token_hex(8), approval_id=ctx.approval_id)
    token = sign(app, claims)
    expires_at = claims.expires_at
    app.audit.record(ctx, "link.create", "recording", recording_id, "ok",
                     {"purpose": purpose, "expires_at": expires_at.isoformat(), "ip_bound": bool(bind_ip),
                      "link": claims.nonce})
    return {"recording_id": recording_id, "purpose": purpose, "url": link_url(app, recording_id, token, purpose),
            "token": token, "expires_at": expires_at.isoformat(), "ip_bound": bool(bind_ip)}


def _recording_target(app: App, recording_id: str) -> Any:
    target = approvals.resolve_target(app, "recording", recording_id)
    return target


def _check_live(app: App, recording_id: str) -> None:
    from ..db.models import Recording

    with app.catalog.session() as s:
        rec = s.get(Recording, recording_id) if len(recording_id) <= 32 else None
        state = rec.state if rec is not None else None
    if state is None:
        raise NotFound(f"no recording {recording_id}")
    if state not in LIVE_RECORDING_STATES:
        raise ConflictError(f"recording {recording_id} is {state}; it cannot be played")


def create_link(app: App, ctx: RequestContext, recording_id: str, *, bind_ip: bool | None = None) -> dict[str, Any]:
    """A playback link for the actor: ``recording.play`` decides (own call, or four-eyes)."""
    target = _recording_target(app, recording_id)
    authorize(app, ctx, "recording.play", target, detail={"function": "link.create"})
    _check_live(app, recording_id)
    return issue(app, ctx, recording_id, purpose="play", bind_ip=bind_ip)


def _exec_play(app: App, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """Approved playback of another advisor's call: a link for the requester."""
    return create_link(app, ctx, target_id, bind_ip=approvals.param_flag(params, "bind_ip", None))


def _exec_export(app: App, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """Approved export: a short-lived download link for the requester (the server writes no file;
    on the command line ``cf export ID --out FILE --approval ID`` writes one on the operator's PC)."""
    target = _recording_target(app, target_id)
    authorize(app, ctx, "recording.export", target, detail={"function": "link.create"})
    _check_live(app, target_id)
    return issue(app, ctx, target_id, purpose="export", bind_ip=approvals.param_flag(params, "bind_ip", None))



#: Executors the API uses instead of the registered ones: over HTTP an approved export is a
#: short-lived download link, never a file written on the server.
API_EXECUTORS = {"recording.export": _exec_export}
