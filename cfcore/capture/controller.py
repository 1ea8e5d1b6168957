"""The call controller: live calls from capture events, and the advisor's recording controls.

- A call (an advisor leg) opens in ``ADVISOR_ONLY``: only the advisor's voice is kept.
- "Record both sides" (``record_both``), ``pause`` and ``resume`` may be triggered only by the
  call's own advisor (``call.record_both`` in the access policy: owner only); a refusal is
  audited by the guard. The request is written to the catalog; the capture runner that owns the
  call asks the PBX (``set_mode``) and writes the outcome, audited in the requester's name. A
  consent (who, when, how) is recorded when two-sided recording actually started.
- At the end the source's files go to ``ingest_call`` together with the consents recorded here;
  ingest drops customer audio outside ``BOTH`` segments whatever the PBX wrote.

These functions are synchronous (catalog work); the runner calls them in a worker thread.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select, update

from hookspecs.types import (
    AccessTarget,
    Actor,
    CallEvent,
    CallEventKind,
    Consent,
    ConsentMethod,
    FinishedCall,
    RecordingMode,
    RequestContext,
)

from ..access.guard import authorize, list_scope
from ..authority import system_context
from ..clock import utc
from ..db.models_capture import CallConsent, CaptureRunnerRow, LiveCall, ModeRequest
from ..errors import CallFortError, ConflictError, InputError, NotFound
from ..states import ACTIVE_CALL_STATES, CONSENT_METHODS, CallState, RequestStatus
from .witness import is_consent_witness

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)

ACTIONS = ("record_both", "pause", "resume")
METHODS = CONSENT_METHODS
#: What an advisor's own client may name through the API (the CLI and the demo say so themselves).
API_METHODS = tuple(m.value for m in (ConsentMethod.WEB, ConsentMethod.API, ConsentMethod.CTI, ConsentMethod.DTMF))
ACTIVE = ACTIVE_CALL_STATES
#: ``request_id`` of a consent the customer gave at the PBX (a dial-in opt-in), not an advisor's request.
PBX_OPT_IN = "pbx-opt-in"
#: How long the hand-over of a finished call waits for a mode request of the call being applied.
CONSENT_WAIT_SECONDS = 20.0
#: A runner that has not written a heartbeat for this long is considered gone.
RUNNER_STALE_SECONDS = 15.0
#: How long before the request the advisor's action may lie (a command's start-up, a password
#: prompt, a CTI client's queue); an older or a future time is brought into this range.
MAX_ACTED_BEFORE = timedelta(seconds=120)


class CaptureUnavailable(CallFortError):
    """No capture runner applies the request (none running, or the PBX is unreachable)."""

    exit_code = 10
    http_status = 503


def mask_number(number: str | None) -> str | None:
    if not number:
        return None
    n = str(number)
    return "*" * len(n) if len(n) <= 4 else n[:3] + "*" * (len(n) - 5) + n[-2:]


# --------------------------------------------------------------------------- views


@attrs.frozen(kw_only=True)
class CallView:
    call_id: str
    source: str
    advisor_id: str
    direction: str
    state: str
    mode: str
    customer: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    recording_id: str | None
    pbx_call_id: str | None
    end_reason: str | None

    def as_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        for k in ("started_at", "answered_at", "ended_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


def _view(c: LiveCall) -> CallView:
    return CallView(call_id=c.call_id, source=c.source, advisor_id=c.advisor_id, direction=c.direction, state=c.state,
                    mode=c.mode, customer=c.customer_hint, started_at=c.started_at, answered_at=c.answered_at,
                    ended_at=c.ended_at, recording_id=c.recording_id, pbx_call_id=c.pbx_call_id,
                    end_reason=c.end_reason)


@attrs.frozen(kw_only=True)
class RequestView:
    id: str
    call_id: str
    action: str
    status: str
    mode: str | None
    message: str | None

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _rview(r: ModeRequest) -> RequestView:
    return RequestView(id=r.id, call_id=r.call_id, action=r.action, status=r.status, mode=r.mode, message=r.message)


# --------------------------------------------------------------------------- events from sources


def on_call_event(app: App, event: CallEvent) -> None:
    """Keep the live-call row of a leg up to date with what the PBX said."""
    now = app.clock.now()
    with app.catalog.session() as s:
        row = s.get(LiveCall, event.call_id, with_for_update=True)
        if row is None:
            row = LiveCall(call_id=event.call_id, source=event.source, pbx_call_id=event.pbx_call_id,
                           advisor_id=event.advisor_id or "?", direction=(event.direction.value if event.direction else "in"),
                           customer_hint=mask_number(event.customer_number), state=CallState.RINGING,
                           mode=RecordingMode.ADVISOR_ONLY.value, started_at=event.at, updated_at=now)
            s.add(row)
        elif row.source != event.source:
            log.error("source %s reported call %s owned by source %s; ignored", event.source, event.call_id, row.source)
            return
        if event.customer_number and not row.customer_hint:
            row.customer_hint = mask_number(event.customer_number)
        row.updated_at = now
        kind = event.kind
        if kind is CallEventKind.ANSWERED:
            row.state, row.answered_at = CallState.RECORDING, event.at
            row.mode = RecordingMode.ADVISOR_ONLY.value
            if event.detail.get("mode") == RecordingMode.BOTH.value and event.detail.get("consent"):
                # A dial-in whose customer opted in at the PBX (a digit after the announcement)
                # starts two-sided. The core records that consent itself, here, when the PBX
                # reports it live: only consents the core recorded back customer audio.
                _record_pbx_consent(app, s, row, event, now)
        elif kind is CallEventKind.HELD and row.state in ACTIVE:
            row.state = CallState.HELD
        elif kind is CallEventKind.RESUMED and row.state == CallState.HELD:
            row.state = CallState.RECORDING
        elif kind is CallEventKind.TRANSFERRED:
            row.transferred_to = (event.detail.get("to") or "")[:64] or None
        if event.detail.get("alert"):
            # A source's irregularity (a dial-in with wrong PINs, a declined or unrecorded
            # advisory call, a recording that failed): audited for the FIS (rules over capture.alert).
            app.audit.append(s, system_context(f"capture.{event.source}"[:64]), "capture.alert", "call", event.call_id,
                             "warning",
                             {"source": event.source, "alert": str(event.detail["alert"])[:40],
                              "summary": str(event.detail.get("summary") or "")[:200],
                              "advisor_id": event.advisor_id, "pbx_call_id": event.pbx_call_id})
        if kind is CallEventKind.ENDED:
            if row.state in ACTIVE:
                row.state = CallState.FAILED if event.detail.get("error") else CallState.ENDED
                row.ended_at = event.at
                row.end_reason = (event.detail.get("reason") or "")[:200] or None
            s.execute(update(ModeRequest).where(ModeRequest.call_id == row.call_id, ModeRequest.status == RequestStatus.PENDING)
                      .values(status=RequestStatus.FAILED, decided_at=now, message="the call has ended"))


def _record_pbx_consent(app: App, s: Any, row: LiveCall, event: CallEvent, now: datetime) -> None:
    """Record the customer's own opt-in, reported by the PBX with the call's ANSWERED event.

    Only from a source the deployment names as a consent witness (``cfcore.capture.witness``).

    The method must be a known ``ConsentMethod``; the time the PBX gives for the opt-in is kept
    only within what the core saw itself: not before the call opened here, not after the event
    reached the core. One such consent per call."""
    method = str(event.detail.get("consent") or "")
    if not is_consent_witness(app.config, event.source):
        # Only a source the deployment trusts may witness consent; anything else could make up
        # an opt-in for any call. Refused, audited (the FIS rule untrusted-consent alerts on it).
        log.warning("call %s: source %s reported a customer opt-in but is not a consent witness "
                    "([capture.sources.%s] consent_witness); kept advisor-only", event.call_id, event.source,
                    event.source)
        app.audit.append(s, system_context("capture.consent"), "call.consent", "call", row.call_id, "refused",
                         {"source": event.source, "method": method[:16], "by": "customer",
                          "advisor_id": row.advisor_id,
                          "reason": f"source is not a consent witness ([capture.sources.{event.source}] "
                                    "consent_witness = true)"})
        return
    if method not in METHODS:
        log.warning("call %s: source %s reported an opt-in by unknown method %r; kept advisor-only",
                    event.call_id, event.source, method[:16])
        return
    if s.scalars(select(CallConsent.id).where(CallConsent.call_id == row.call_id,
                                              CallConsent.request_id == PBX_OPT_IN).limit(1)).first():
        row.mode = RecordingMode.BOTH.value
        return
    latest = min(utc(event.at), utc(now))
    given = latest
    claimed = event.detail.get("consent_at")
    if isinstance(claimed, str) and claimed:
        try:
            at = datetime.fromisoformat(claimed)
        except ValueError:
            at = None
        if at is not None and at.tzinfo is not None:
            given = min(max(utc(at), utc(row.started_at)), latest)
    s.add(CallConsent(call_id=row.call_id, given_at=given, applied_at=latest, by_user="customer",
                      user_id="customer", method=method, request_id=PBX_OPT_IN))
    row.mode = RecordingMode.BOTH.value
    app.audit.append(s, system_context("capture.consent"), "call.consent", "call", row.call_id, "ok",
                     {"source": event.source, "method": method, "by": "customer", "advisor_id": row.advisor_id})


def archive_call(app: App, call: FinishedCall) -> str:
    """Hand a finished leg to ingest with the consents recorded here; returns the recording id.

    Safe to call again for the same leg (after a crash): ingest returns the existing recording.
    A source may hand the call over the moment ``set_mode(BOTH)`` returned, before the runner wrote
    the consent: requests of this call still being applied are waited for (up to
    ``CONSENT_WAIT_SECONDS``), so that the consent that backs the BOTH segment is seen.
    """
    from ..ingest import ingest_call
    from ..subjects import normalise_number

    deadline = time.monotonic() + CONSENT_WAIT_SECONDS
    while time.monotonic() < deadline:
        with app.catalog.session() as s:
            applying = s.scalars(select(ModeRequest.id).where(
                ModeRequest.call_id == call.call_id, ModeRequest.status == RequestStatus.APPLYING).limit(1)).first()
        if applying is None:
            break
        time.sleep(0.05)
    with app.catalog.session() as s:
        rows = list(s.scalars(select(CallConsent).where(CallConsent.call_id == call.call_id)
                              .order_by(CallConsent.applied_at, CallConsent.id)))
        live = s.get(LiveCall, call.call_id)
        ended = live.ended_at if live is not None and live.ended_at is not None else app.clock.now()
    # The consent's offset is where the PBX began keeping the customer's voice in the audio as
    # written (the start of the two-sided stretch it opened), never a clock difference: the files
    # can be shorter than the call (no frames while nobody sends audio). Ingest bounds it by the
    # wall clock (``wall_seconds``), so a source cannot place a consent before the advisor acted.
    starts = consent_positions(call)
    consents = []
    for i, cc_row in enumerate(rows):
        offset = starts[i] if i < len(starts) else max(0.0, (cc_row.applied_at - call.started_at).total_seconds())
        consents.append(Consent(given_at=cc_row.given_at, offset=offset, by_user=cc_row.by_user, method=cc_row.method,
                                applied_at=cc_row.applied_at))
    wall_seconds = max(0.0, (utc(ended) - call.started_at).total_seconds())
    cc = app.config.get("deployment.country_code", str, "49")
    numbers = []
    for n in call.customer_numbers:
        try:
            normalise_number(n, cc)
            numbers.append(n)
        except InputError:
            log.warning("call %s: caller number %s is not a phone number; not kept as a subject", call.call_id,
                        mask_number(n))
    # Only consents the core recorded (the advisor's request applied by the runner, or the customer's
    # opt-in the PBX reported live) count: a source cannot vouch for a consent itself. The evidence a
    # source attaches to a claimed consent (``Consent.proof``) is kept with the core's consent of the
    # same method, in order; it never makes a consent count.
    claimed = [c for c in call.consents if c.proof]
    unmatched = len(call.consents)
    for i, c in enumerate(consents):
        match = next((k for k, p in enumerate(claimed) if p.method is c.method), None)
        if match is not None:
            consents[i] = attrs.evolve(c, proof=claimed.pop(match).proof)
            unmatched -= 1
    if unmatched > 0:
        log.warning("call %s: %d consent(s) claimed by source %s ignored; only the core's own count",
                    call.call_id, unmatched, call.source)
    rec_id = ingest_call(app, attrs.evolve(call, consents=tuple(consents), customer_numbers=tuple(numbers)),  # type: ignore[arg-type]
                         ctx=system_context(f"capture.{call.source}"[:64]), wall_seconds=wall_seconds)
    now = app.clock.now()
    with app.catalog.session() as s:
        row = s.get(LiveCall, call.call_id, with_for_update=True)
        if row is not None:
            row.recording_id, row.archived_at, row.updated_at = rec_id, now, now
            if row.state in ACTIVE + (CallState.ENDED,):
                row.state = CallState.ARCHIVED
                row.ended_at = row.ended_at or now
    return rec_id


# --------------------------------------------------------------------------- advisor controls


def _target(row: LiveCall) -> AccessTarget:
    return AccessTarget(kind="call", id=row.call_id, owner_advisor_id=row.advisor_id)


def get_call(app: App, call_id: str) -> LiveCall:
    with app.catalog.session() as s:
        row = s.get(LiveCall, call_id)
        if row is None:
            raise NotFound(f"no call {call_id}", hint="see 'cf calls list' for the calls in progress")
        return row


def consent_positions(call: FinishedCall) -> list[float]:
    """Where each consent took effect: the start of every two-sided stretch that does not merely
    resume one a pause interrupted."""
    out: list[float] = []
    before = RecordingMode.ADVISOR_ONLY
    for seg in sorted(call.segments, key=lambda s: (s.start, s.end)):
        if seg.mode is RecordingMode.BOTH and before is not RecordingMode.BOTH:
            out.append(seg.start)
        if seg.mode is not RecordingMode.PAUSED:
            before = seg.mode
    return out


def request_mode(app: App, ctx: RequestContext, call_id: str, action: str, method: str = "api",
                 acted_at: datetime | None = None) -> RequestView:
    """File a record-both / pause / resume request for a call (the call's advisor only).

    ``acted_at`` is when the advisor acted (the click, the start of the command); it is kept
    with the consent next to the time the PBX applied it."""
    if action not in ACTIONS:
        raise InputError(f"unknown call action {action!r}", hint="choose one of: " + ", ".join(ACTIONS))
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}", hint="choose one of: " + ", ".join(METHODS))
    with app.catalog.session() as s:
        found = s.get(LiveCall, call_id)
    # an unknown call is checked like a call of nobody's: whoever may not act on another's call gets
    # the same refusal for an unknown id, so call ids cannot be probed
    target = _target(found) if found is not None else AccessTarget(kind="call", id=call_id, owner_advisor_id=None)
    authorize(app, ctx, "call.record_both", target, detail={"function": f"call.{action}"})
    get_call(app, call_id)  # NotFound for who may act on it
    now = app.clock.now()
    acted = now if acted_at is None or acted_at.tzinfo is None else min(max(acted_at, now - MAX_ACTED_BEFORE), now)
    with app.catalog.session() as s:
        row = s.get(LiveCall, call_id, with_for_update=True)
        assert row is not None
        problem = None
        if row.state not in ACTIVE:
            problem = f"call {call_id} has ended"
        elif row.state == CallState.RINGING:
            problem = f"call {call_id} is not answered yet"
        elif action == "resume" and row.mode != RecordingMode.PAUSED.value:
            problem = f"call {call_id} is not paused"
        if problem:
            app.audit.append(s, ctx, f"call.{action}", "call", call_id, "refused", {"reason": problem})
        else:
            req = ModeRequest(id=secrets.token_hex(16), call_id=call_id, source=row.source, action=action,
                              method=method, requested_at=now, acted_at=acted, user_id=ctx.actor.user_id,
                              username=ctx.actor.username, host=ctx.host, ip=ctx.ip, function=ctx.function,
                              status=RequestStatus.PENDING)
            if (action == "record_both" and row.mode == RecordingMode.BOTH.value) or (
                    action == "pause" and row.mode == RecordingMode.PAUSED.value):
                req.status, req.mode, req.decided_at, req.message = RequestStatus.APPLIED, row.mode, now, "already in this mode"
            s.add(req)
            s.flush()
            app.audit.append(s, ctx, f"call.{action}", "call", call_id, "requested" if req.status == RequestStatus.PENDING else "ok",
                             {"request": req.id, "method": method, "advisor_id": row.advisor_id,
                              **({"note": req.message} if req.message else {})})
            view = _rview(req)
    if problem:
        raise ConflictError(problem)
    return view


def wait_request(app: App, request_id: str, timeout: float = 15.0, poll: float = 0.1) -> RequestView:
    """Wait for the runner's outcome. A request no runner claimed in time is marked ``expired``."""
    deadline = time.monotonic() + timeout
    extended = False
    while True:
        with app.catalog.session() as s:
            req = s.get(ModeRequest, request_id)
            if req is None:
                raise NotFound(f"no request {request_id}")
            if req.status not in (RequestStatus.PENDING, RequestStatus.APPLYING):
                return _rview(req)
            if time.monotonic() >= deadline:
                if req.status == RequestStatus.PENDING:
                    res = s.execute(update(ModeRequest).where(ModeRequest.id == request_id,
                                                              ModeRequest.status == RequestStatus.PENDING)
                                    .values(status=RequestStatus.EXPIRED, decided_at=app.clock.now(),
                                            message="no capture runner picked the request up"))
                    if res.rowcount:  # type: ignore[attr-defined]
                        req.status, req.message = RequestStatus.EXPIRED, "no capture runner picked the request up"
                        return _rview(req)
                if extended:
                    return _rview(req)  # still applying: the caller reports it as not confirmed
                # A runner is applying it right now: give it a little longer than its PBX timeout.
                deadline, extended = time.monotonic() + 12.0, True
        time.sleep(poll)


def trigger(app: App, ctx: RequestContext, call_id: str, action: str, method: str = "api",
            timeout: float = 15.0, acted_at: datetime | None = None) -> RequestView:
    """Request and wait; raises ``CaptureUnavailable`` / ``ConflictError`` unless applied."""
    req = request_mode(app, ctx, call_id, action, method, acted_at)
    if req.status == RequestStatus.PENDING:
        req = wait_request(app, req.id, timeout)
    if req.status == RequestStatus.FAILED:
        raise ConflictError(f"{action.replace('_', '-')} for call {call_id} failed: {req.message}")
    if req.status != RequestStatus.APPLIED:
        raise CaptureUnavailable(
            f"{action.replace('_', '-')} for call {call_id} was not confirmed: {req.message or 'the capture runner did not answer in time'}",
            hint="is 'cf capture run' or 'cf serve' running for this PBX? see 'cf capture status'")
    return req


# --------------------------------------------------------------------------- listing


def list_calls(app: App, ctx: RequestContext, *, active_only: bool = True, limit: int = 200) -> list[CallView]:
    """Calls the actor may see: their own as an advisor; all for roles that list recordings."""
    own = list_scope(app, ctx, "recording.list", kind="call", detail={"function": "call.list"})
    with app.catalog.session() as s:
        rows = _calls(s, own, active_only, limit)
        app.audit.append(s, ctx, "call.list", "call", None, "ok",
                         {"count": len(rows), "scope": "own" if own else "all", "active_only": active_only})
    return rows


def _calls(s: Any, own: str | None, active_only: bool, limit: int) -> list[CallView]:
    q = select(LiveCall).order_by(LiveCall.started_at.desc()).limit(limit)
    if active_only:
        q = q.where(LiveCall.state.in_(ACTIVE))
    if own:
        q = q.where(LiveCall.advisor_id == own)
    return [_view(r) for r in s.scalars(q)]


def watch_scope(app: App, ctx: RequestContext) -> str | None:
    """The scope of a live-call feed (the web UI's pushed view), decided and audited once when the
    feed opens: an advisor id (own calls only) or None (all)."""
    own = list_scope(app, ctx, "recording.list", kind="call", detail={"function": "call.watch"})
    app.audit.record(ctx, "call.watch", "call", None, "ok", {"scope": "own" if own else "all"})
    return own


def calls_in_scope(app: App, own: str | None, *, limit: int = 50) -> list[CallView]:
    """Active calls in a scope already decided by ``watch_scope`` (polled by the feed, not audited per poll)."""
    with app.catalog.session() as s:
        return _calls(s, own, True, limit)


# --------------------------------------------------------------------------- the runner's side


def claim_requests(app: App, sources: list[str], runner_id: str) -> list[ModeRequest]:
    """Pending requests for these sources, claimed by this runner (``applying``)."""
    if not sources:
        return []
    with app.catalog.session() as s:
        ids = list(s.scalars(select(ModeRequest.id).where(ModeRequest.status == RequestStatus.PENDING,
                                                          ModeRequest.source.in_(sources))
                             .order_by(ModeRequest.requested_at).limit(50)))
        claimed = []
        for rid in ids:
            res = s.execute(update(ModeRequest).where(ModeRequest.id == rid, ModeRequest.status == RequestStatus.PENDING)
                            .values(status=RequestStatus.APPLYING, runner_id=runner_id))
            if res.rowcount:  # type: ignore[attr-defined]
                claimed.append(rid)
        return list(s.scalars(select(ModeRequest).where(ModeRequest.id.in_(claimed))
                              .order_by(ModeRequest.requested_at))) if claimed else []


def _requester(req: ModeRequest) -> RequestContext:
    return RequestContext(actor=Actor(user_id=req.user_id, username=req.username), host=req.host, ip=req.ip,
                          function=req.function)


def target_mode(app: App, req: ModeRequest) -> tuple[RecordingMode | None, str | None]:
    """The mode a claimed request asks for, or (None, reason) when it cannot apply any more."""
    with app.catalog.session() as s:
        row = s.get(LiveCall, req.call_id)
        if row is None or row.state not in ACTIVE:
            return None, "the call has ended"
        if req.action == "record_both":
            return RecordingMode.BOTH, None
        if req.action == "pause":
            return RecordingMode.PAUSED, None
        if row.mode != RecordingMode.PAUSED.value:
            return None, "the call is not paused"
        return RecordingMode(row.mode_before_pause or RecordingMode.ADVISOR_ONLY.value), None


def finish_request(app: App, req: ModeRequest, mode: RecordingMode | None, ok: bool, message: str | None,
                   unreachable: bool = False, applied_at: datetime | None = None) -> None:
    """Write the outcome of a claimed request, the new mode and (for record-both) the consent:
    the time the advisor acted and ``applied_at``, when the PBX confirmed."""
    now = app.clock.now()
    applied = applied_at or now
    ctx = _requester(req)
    status = RequestStatus.APPLIED if ok else RequestStatus.UNAVAILABLE if unreachable else RequestStatus.FAILED
    with app.catalog.session() as s:
        # Lock order everywhere: live call, then request, then (in the audit) the audit head.
        row = s.get(LiveCall, req.call_id, with_for_update=True)
        r = s.get(ModeRequest, req.id, with_for_update=True)
        assert r is not None
        r.status, r.decided_at, r.message = status, now, (message or None)
        r.mode = mode.value if mode else None
        detail: dict[str, Any] = {"request": req.id, "method": req.method, "mode": r.mode}
        if ok and row is not None and mode is not None:
            if mode is RecordingMode.PAUSED and row.mode != RecordingMode.PAUSED.value:
                row.mode_before_pause = row.mode
            row.mode, row.updated_at = mode.value, now
            if req.action == "record_both":
                acted = req.acted_at or req.requested_at
                s.add(CallConsent(call_id=row.call_id, given_at=acted, applied_at=applied, by_user=req.username,
                                  user_id=req.user_id, method=req.method, request_id=req.id))
                detail["consent_given_at"] = acted.isoformat()
                detail["consent_applied_at"] = applied.isoformat()
        if message:
            detail["message"] = message[:200]
        app.audit.append(s, ctx, f"call.{req.action}", "call", req.call_id, "ok" if ok else "failed", detail)


def runner_heartbeat(app: App, runner_id: str, *, host: str, pid: int, sources: list[dict[str, Any]],
                     stopped: bool = False) -> None:
    now = app.clock.now()
    with app.catalog.session() as s:
        row = s.get(CaptureRunnerRow, runner_id)
        if row is None:
            row = CaptureRunnerRow(id=runner_id, host=host, pid=pid, started_at=now, heartbeat_at=now, sources=sources)
            s.add(row)
        row.heartbeat_at, row.sources = now, sources
        if stopped:
            row.stopped_at = now


def source_holder(app: App, sources: list[str], runner_id: str) -> dict[str, Any] | None:
    """Another live runner (fresh heartbeat, not stopped) that runs one of these sources."""
    from datetime import timedelta

    fresh = app.clock.now() - timedelta(seconds=RUNNER_STALE_SECONDS)
    with app.catalog.session() as s:
        for r in s.scalars(select(CaptureRunnerRow).where(CaptureRunnerRow.stopped_at.is_(None),
                                                          CaptureRunnerRow.heartbeat_at >= fresh,
                                                          CaptureRunnerRow.id != runner_id)):
            names = {str(x.get("name")) for x in (r.sources or []) if isinstance(x, dict)}
            both = sorted(names & set(sources))
            if both:
                return {"id": r.id, "host": r.host, "pid": r.pid, "source": both[0]}
    return None


def reap(app: App, sources: list[str]) -> dict[str, int]:
    """At runner start: what a previous runner of these sources left half-done.

    Requests it was applying are failed (their outcome at the PBX is unknown; the plugin's
    journal keeps the true mode), and calls still ringing are closed: their outcome was missed.
    Calls that were recording are left to the source, which finds them again in its journal.
    """
    now = app.clock.now()
    with app.catalog.session() as s:
        req = s.execute(update(ModeRequest).where(ModeRequest.source.in_(sources), ModeRequest.status == RequestStatus.APPLYING)
                        .values(status=RequestStatus.FAILED, decided_at=now,
                                message="the capture runner stopped while applying the request"))
        calls = s.execute(update(LiveCall).where(LiveCall.source.in_(sources), LiveCall.state == CallState.RINGING)
                          .values(state=CallState.ENDED, ended_at=now, updated_at=now,
                                  end_reason="capture restarted while ringing; outcome unknown"))
        return {"requests": req.rowcount or 0, "calls": calls.rowcount or 0}  # type: ignore[attr-defined]


def runners(app: App) -> list[dict[str, Any]]:
    with app.catalog.session() as s:
        rows = list(s.scalars(select(CaptureRunnerRow).where(CaptureRunnerRow.stopped_at.is_(None))
                              .order_by(CaptureRunnerRow.started_at.desc())))
        return [{"id": r.id, "host": r.host, "pid": r.pid, "started_at": r.started_at.isoformat(),
                 "heartbeat_at": r.heartbeat_at.isoformat(), "sources": r.sources} for r in rows]
