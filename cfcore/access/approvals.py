"""Four-eyes approvals: a critical function runs only after a second, different person approved.

Life of a request::

    request ──> requested ──approve──> approved ──execute──> executed
                    │  └──reject──> rejected        │
                    └──(expires_at passed)──> expired <──┘

- ``request``: only a user for whom the access policy answers NEEDS_APPROVAL on that action and
  target may request it (a DENY refuses, an ALLOW needs no request).
- ``approve``: never the requester, never the user a ``roles.change`` is about; only a role the
  policy allows ``approval.approve`` for that action (see docs/access.md). The same person approving
  twice counts once (``approval_votes`` is unique per person); ``[access] approvals_required``
  (default 1) votes of different people make it APPROVED.
- ``reject``: an approving role, or the requester (withdrawal).
- ``execute``: only the requester, while APPROVED and unexpired; runs the executor registered for
  the action with ``ctx.approval_id`` set. The executor calls ``authorize`` as usual; the guard
  consumes the approval there (APPROVED → EXECUTED). An approval runs once.
- Expiry: ``expires_at = requested_at + [access] approval_hours`` (default 24), from the
  injectable clock; a due request is marked EXPIRED when touched and by the ``approvals.expire``
  job of ``cf serve``.

Every state change is audited (``approval.request|approve|reject|expire|execute|result``) with the
user, PC host name, IP and function of whoever caused it, and the audit entry's ``approval_id``.

Areas register their executors through the ``cf_approval_actions`` hook (the in-tree ones in
``cfcore.defaults.approval_actions``); a plugin adds its own four-eyes action the same way.
"""

from __future__ import annotations

import contextvars
import json
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select

from hookspecs.types import AccessTarget, ApprovalAction, Decision, RequestContext

from ..authority import is_system, system_context
from ..db.models import Recording
from ..db.models_access import Approval, ApprovalVote
from ..errors import AccessDenied, CallFortError, ConflictError, InputError, NotFound
from ..states import OPEN_APPROVAL_STATES, ApprovalState
from .policy import decide

if TYPE_CHECKING:
    from ..app import App

Executor = Callable[[Any, RequestContext, str, dict[str, Any]], dict[str, Any]]

#: What kind of target an action is about, when its registration does not say.
DEFAULT_TARGET_KINDS = {
    "recording": "recording", "retention": "recording", "hold": "recording",
    "roles": "user", "users": "user", "keys": "keys", "audit": "audit", "dsar": "subject",
}

STATES = tuple(ApprovalState)
OPEN_STATES = OPEN_APPROVAL_STATES

#: The approval whose executor runs in this thread/task (lets the executor authorize more than once).
_running: contextvars.ContextVar[tuple[ApprovalView, str] | None] = contextvars.ContextVar(
    "cf_running_approval", default=None)


def registered_actions(app: App) -> dict[str, ApprovalAction]:
    """Every four-eyes action with an executor, from ``cf_approval_actions`` (the areas' own
    registrations over the access module's fallbacks)."""
    return app.pm.approval_actions()  # type: ignore[no-any-return]


def target_kind(app: App, action: str) -> str:
    """The kind of target ``action`` is about (from its registration, else by its prefix)."""
    spec = registered_actions(app).get(action)
    if spec is not None and spec.target_kind:
        return spec.target_kind
    prefix = action.split(".", 1)[0]
    return DEFAULT_TARGET_KINDS.get(prefix, prefix)


def _spec(app: App, action: str) -> ApprovalAction:
    specs = registered_actions(app)
    if action not in specs:
        raise InputError(f"'{action}' has no executor here: run it with its own command and the approval id",
                         hint="e.g. cf export ID --out FILE --approval APPROVAL_ID")
    return specs[action]


# --------------------------------------------------------------------------- targets


def _fold_user(name: str) -> str:
    from .names import fold_username

    return fold_username(name)


def resolve_target(app: App, kind: str, target_id: str | None) -> AccessTarget:
    """The access target for a request: a recording with its owner advisor, or a plain target."""
    if kind == "recording" and target_id:
        with app.catalog.session() as s:
            rec = s.get(Recording, target_id) if len(target_id) <= 32 else None
            owner = rec.advisor_id if rec is not None else None
        return AccessTarget(kind="recording", id=target_id, owner_advisor_id=owner,
                            attributes={"exists": rec is not None})
    if kind == "user" and target_id:
        from ..db.models_access import User

        with app.catalog.session() as s:
            found = s.scalars(select(User.id).where(User.username == _fold_user(target_id))).first()
        return AccessTarget(kind="user", id=target_id, attributes={"exists": found is not None})
    return AccessTarget(kind=kind, id=target_id)


# --------------------------------------------------------------------------- views


@attrs.frozen(kw_only=True)
class ApprovalView:
    id: str
    action: str
    target_kind: str
    target_id: str | None
    params: dict[str, Any]
    reason: str
    state: str
    requester: str
    requested_at: datetime
    requested_host: str
    requested_ip: str
    expires_at: datetime
    approvals_required: int
    votes: tuple[str, ...]
    approver: str | None
    approved_at: datetime | None
    reviewer: str | None
    reviewed_at: datetime | None
    review_note: str | None
    executed_at: datetime | None
    executed_by: str | None

    def as_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        for k, v in d.items():
            if isinstance(v, datetime):
                d[k] = v.isoformat()
        d["votes"] = list(self.votes)
        return d


def _view(a: Approval) -> ApprovalView:
    return ApprovalView(
        id=a.id, action=a.action, target_kind=a.target_kind, target_id=a.target_id, params=dict(a.params or {}),
        reason=a.reason, state=a.state, requester=a.requester, requested_at=a.requested_at,
        requested_host=a.requested_host, requested_ip=a.requested_ip, expires_at=a.expires_at,
        approvals_required=a.approvals_required, votes=tuple(v.username for v in a.votes), approver=a.approver,
        approved_at=a.approved_at, reviewer=a.reviewer, reviewed_at=a.reviewed_at, review_note=a.review_note,
        executed_at=a.executed_at, executed_by=a.executed_by)


def _detail(a: Approval, **extra: Any) -> dict[str, Any]:
    return {"action": a.action, "target_kind": a.target_kind, "target_id": a.target_id, "state": a.state,
            "requester": a.requester, "approver": a.approver, "reviewer": a.reviewer, **extra}


def _actx(ctx: RequestContext, approval_id: str) -> RequestContext:
    return attrs.evolve(ctx, approval_id=approval_id)


def _load(app: App, approval_id: str) -> ApprovalView:
    if not isinstance(approval_id, str) or not 1 <= len(approval_id) <= 32:
        raise NotFound(f"no four-eyes request {approval_id!r}")
    with app.catalog.session() as s:
        a = s.get(Approval, approval_id)
        if a is None:
            raise NotFound(f"no four-eyes request {approval_id}", hint="cf requests list shows them")
        return _view(a)


def _hours(app: App) -> int:
    hours = app.config.get("access.approval_hours", int, 24)
    if hours < 1:
        raise InputError(f"{app.config.path}: access.approval_hours must be at least 1")
    return hours


def _required(app: App) -> int:
    n = app.config.get("access.approvals_required", int, 1)
    if n < 1:
        raise InputError(f"{app.config.path}: access.approvals_required must be at least 1")
    return n


# --------------------------------------------------------------------------- request


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def param_flag(params: dict[str, Any], key: str, default: bool | None = False) -> bool | None:
    """A yes/no parameter of a request, parsed strictly: ``true``/``false`` (``yes``/``no``,
    ``on``/``off``, ``1``/``0``) or a JSON boolean; missing or empty gives ``default``; anything
    else is an error (``bool("false")`` is ``True``, so never ``bool()`` a parameter)."""
    value = params.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text_ = str(value).strip().lower()
    if text_ in _TRUE:
        return True
    if text_ in _FALSE:
        return False
    raise InputError(f"parameter {key}={str(value)[:40]!r} is not true or false")


def _check_params(params: dict[str, Any] | None) -> dict[str, Any]:
    params = dict(params or {})
    for k, v in params.items():
        if not isinstance(k, str) or not k or len(k) > 64:
            raise InputError(f"parameter name {k!r} is not valid")
        if not isinstance(v, str | int | float | bool) and v is not None:
            raise InputError(f"parameter {k} must be text, a number or a flag")
    if len(json.dumps(params)) > 4000:
        raise InputError("parameters are too long (at most 4000 characters as JSON)")
    return params


def _check_action_name(app: App, action: str) -> None:
    """An unknown function name is a typo, not a denial: say so, with the closest name."""
    import difflib

    from ..defaults.access_policy import MATRIX

    known = set(MATRIX) | set(registered_actions(app))
    if action in known:
        return
    near = difflib.get_close_matches(action, sorted(known), n=1, cutoff=0.6)
    raise InputError(f"unknown action {action!r}" + (f", did you mean {near[0]}?" if near else ""),
                     hint="four-eyes functions: " + ", ".join(sorted(a for a in known if "." in a))[:600])


def _roles_hint(action: str, held: Iterable[str] = ()) -> str:
    """``" (needs the role compliance or dpo)"``: the roles the default policy gives ``action``
    to; nothing when the person holds one of them already (then it was their own-data limit)."""
    from ..defaults.access_policy import MATRIX, ROLE_ORDER

    row = MATRIX.get(action, {})
    roles = [r for r in ROLE_ORDER if row.get(r, "deny") != "deny"]
    if not roles or set(roles) & set(held):
        return ""
    return f" (needs the role {' or '.join(roles)})"


def request(app: App, ctx: RequestContext, action: str, target_id: str | None, reason: str,
            params: dict[str, Any] | None = None) -> str:
    """File a four-eyes request; returns its id (32 hex characters). Audited ``approval.request``."""
    if not isinstance(action, str) or not action.strip() or len(action) > 64:
        raise InputError("name the four-eyes function, e.g. recording.export")
    target_id = None if target_id is None or str(target_id).strip() in ("", "-") else str(target_id).strip()
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise InputError("a reason is required for a four-eyes request", hint="--reason TEXT")
    if target_id is not None and (not str(target_id).strip() or len(str(target_id)) > 128):
        raise InputError("target must be 1 to 128 characters")
    params = _check_params(params)
    _check_action_name(app, action)
    spec = registered_actions(app).get(action)
    for flag in spec.flags if spec else ():
        param_flag(params, flag)  # "rewrap=flase" is refused now, not after two people approved it
    if target_id is not None and target_kind(app, action) == "user":
        target_id = _fold_user(target_id)  # stored as people read it: DORA, Dora, ｄｏｒａ are dora
    target = resolve_target(app, target_kind(app, action), target_id)
    decision = decide(app, ctx, action, target)
    if decision.decision is Decision.DENY:
        app.audit.record(ctx, "approval.request", "approval", None, "denied",
                         {"action": action, "target_kind": target.kind, "target_id": target_id,
                          "reason": decision.reason})
        raise AccessDenied(f"{ctx.actor.username} may not request {action} on {target.kind} {target_id or ''}".rstrip()
                           + _roles_hint(action, ctx.actor.roles))
    if decision.decision is Decision.ALLOW:
        raise InputError(f"{action} on {target.kind} {target_id or ''} needs no approval for you".replace("  ", " "),
                         hint="run the function directly")
    if target.kind in ("recording", "user") and not target.attributes.get("exists"):
        raise NotFound(f"no {target.kind} {target_id}")
    now = app.clock.now()
    approval_id = secrets.token_hex(16)
    with app.catalog.session() as s:
        a = Approval(id=approval_id, action=action, target_kind=target.kind, target_id=target_id, params=params,
                     reason=reason, state=ApprovalState.REQUESTED, approvals_required=_required(app),
                     requester_id=ctx.actor.user_id, requester=ctx.actor.username, requested_at=now,
                     requested_host=ctx.host, requested_ip=ctx.ip, expires_at=now + timedelta(hours=_hours(app)))
        s.add(a)
        s.flush()
        app.audit.append(s, _actx(ctx, approval_id), "approval.request", "approval", approval_id, "requested",
                         _detail(a, params=params, expires_at=a.expires_at, policy=decision.reason))
    return approval_id


# --------------------------------------------------------------------------- expiry


def _expire_one(app: App, approval_id: str, ctx: RequestContext) -> bool:
    """Mark one due request EXPIRED, audited as ``ctx``: the ``approvals.expire`` job's system
    context, or the person whose action found it expired."""
    with app.catalog.session() as s:
        a = s.scalars(select(Approval).where(Approval.id == approval_id).with_for_update()).one_or_none()
        if a is None or a.state not in OPEN_STATES or a.expires_at > app.clock.now():
            return False
        before = a.state
        a.state = ApprovalState.EXPIRED
        if is_system(ctx):
            app.audit.append(s, ctx, "approval.expire", "approval", a.id, "expired",
                             _detail(a, was=before, approval_id=a.id))
        else:
            app.audit.append(s, _actx(ctx, a.id), "approval.expire", "approval", a.id, "expired",
                             _detail(a, was=before))
    return True


def expire(app: App) -> int:
    """Mark every due request EXPIRED; returns how many. Run by the ``approvals.expire`` job."""
    now = app.clock.now()
    with app.catalog.session() as s:
        due = s.scalars(select(Approval.id).where(Approval.state.in_(OPEN_STATES), Approval.expires_at <= now)).all()
    ctx = system_context("approvals.expire")
    return sum(1 for approval_id in due if _expire_one(app, approval_id, ctx))


def _refuse_if_expired(app: App, ctx: RequestContext, a: ApprovalView) -> None:
    if a.state in OPEN_STATES and a.expires_at <= app.clock.now():
        _expire_one(app, a.id, ctx)
        raise ConflictError(f"four-eyes request {a.id} expired at {a.expires_at.isoformat()}",
                            hint="file a new request")


# --------------------------------------------------------------------------- approve / reject


def _may_approve(app: App, ctx: RequestContext, a: ApprovalView) -> bool:
    target = AccessTarget(kind="approval", id=a.id,
                          attributes={"action": a.action, "target_kind": a.target_kind, "target_id": a.target_id})
    return decide(app, ctx, "approval.approve", target).decision is Decision.ALLOW


def _refuse(app: App, ctx: RequestContext, a: ApprovalView, step: str, why: str) -> None:
    app.audit.record(_actx(ctx, a.id), f"approval.{step}", "approval", a.id, "denied",
                     {"action": a.action, "target_kind": a.target_kind, "target_id": a.target_id, "reason": why})
    raise AccessDenied(f"{ctx.actor.username} may not {step} request {a.id}: {why}")


@attrs.frozen(kw_only=True)
class VoteResult:
    approval: ApprovalView
    counted: bool

    def as_dict(self) -> dict[str, Any]:
        return {**self.approval.as_dict(), "counted": self.counted}


def approve(app: App, ctx: RequestContext, approval_id: str) -> VoteResult:
    """Approve as a second person. A repeated approval by the same person counts once
    (``counted=False``, audited ``duplicate``)."""
    a = _load(app, approval_id)
    _refuse_if_expired(app, ctx, a)
    if ctx.actor.user_id == _requester_id(app, a.id):
        _refuse(app, ctx, a, "approve", "nobody approves their own request")
    if a.target_kind == "user" and _fold_user(a.target_id or "") == _fold_user(ctx.actor.username):
        _refuse(app, ctx, a, "approve", "nobody approves a change of their own roles")
    if not _may_approve(app, ctx, a):
        _refuse(app, ctx, a, "approve", f"no approving role for {a.action}")
    actx = _actx(ctx, a.id)
    with app.catalog.session() as s:
        row = s.scalars(select(Approval).where(Approval.id == a.id).with_for_update()).one()
        if any(v.user_id == ctx.actor.user_id for v in row.votes):
            app.audit.append(s, actx, "approval.approve", "approval", row.id, "duplicate",
                             _detail(row, votes=len(row.votes), note="already approved by this person; counted once"))
            return VoteResult(approval=_view(row), counted=False)
        if row.state != ApprovalState.REQUESTED:
            state = row.state
        else:
            state = None
            now = app.clock.now()
            row.votes.append(ApprovalVote(user_id=ctx.actor.user_id, username=ctx.actor.username, at=now,
                                          host=ctx.host, ip=ctx.ip))
            s.flush()
            if len(row.votes) >= row.approvals_required:
                row.state = ApprovalState.APPROVED
                row.approver_id, row.approver, row.approved_at = ctx.actor.user_id, ctx.actor.username, now
                row.reviewer_id, row.reviewer, row.reviewed_at = ctx.actor.user_id, ctx.actor.username, now
                outcome = "approved"
            else:
                outcome = "vote"
            app.audit.append(s, actx, "approval.approve", "approval", row.id, outcome,
                             _detail(row, votes=len(row.votes), required=row.approvals_required))
            view = _view(row)
    if state is not None:
        raise ConflictError(f"four-eyes request {a.id} is {state}, it cannot be approved")
    return VoteResult(approval=view, counted=True)


def _requester_id(app: App, approval_id: str) -> str:
    with app.catalog.session() as s:
        return s.get(Approval, approval_id).requester_id  # type: ignore[union-attr]


def reject(app: App, ctx: RequestContext, approval_id: str, note: str | None = None) -> ApprovalView:
    """Reject (an approving role) or withdraw (the requester) an open request."""
    a = _load(app, approval_id)
    _refuse_if_expired(app, ctx, a)
    withdrawal = ctx.actor.user_id == _requester_id(app, a.id)
    if not withdrawal and not _may_approve(app, ctx, a):
        _refuse(app, ctx, a, "reject", f"no approving role for {a.action}")
    with app.catalog.session() as s:
        row = s.scalars(select(Approval).where(Approval.id == a.id).with_for_update()).one()
        state = row.state
        if state in OPEN_STATES:
            row.state = ApprovalState.REJECTED
            row.reviewer_id, row.reviewer, row.reviewed_at = ctx.actor.user_id, ctx.actor.username, app.clock.now()
            row.review_note = (note or "").strip()[:2000] or None
            app.audit.append(s, _actx(ctx, row.id), "approval.reject", "approval", row.id, "rejected",
                             _detail(row, withdrawn=withdrawal, was=state))
            view = _view(row)
    if state not in OPEN_STATES:
        raise ConflictError(f"four-eyes request {a.id} is {state}, it cannot be rejected")
    return view


# --------------------------------------------------------------------------- execute


def _matches(a: ApprovalView | Approval, requester_id: str, ctx: RequestContext, action: str,
             target: AccessTarget) -> bool:
    return (requester_id == ctx.actor.user_id and a.action == action
            and (a.target_id or None) == (target.id or None))


def consume(app: App, ctx: RequestContext, action: str, target: AccessTarget) -> ApprovalView | None:
    """Called by the guard: if ``ctx.approval_id`` names an APPROVED, unexpired approval of this
    requester for this action and target, mark it EXECUTED (audited) and return it; else None.

    Inside ``execute`` the approval was claimed already; the check then needs no database (so an
    executor may call ``authorize`` inside its own transaction, and more than once)."""
    if not ctx.approval_id:
        return None
    running = _running.get()
    if running is not None and running[0].id == ctx.approval_id:
        view, requester_id = running
        return view if _matches(view, requester_id, ctx, action, target) else None
    now = app.clock.now()
    with app.catalog.session() as s:
        a = s.scalars(select(Approval).where(Approval.id == ctx.approval_id).with_for_update()).one_or_none()
        if (a is None or a.state != ApprovalState.APPROVED or a.expires_at <= now
                or not _matches(a, a.requester_id, ctx, action, target)):
            return None
        a.state = ApprovalState.EXECUTED
        a.executed_at, a.executed_by = now, ctx.actor.username
        app.audit.append(s, ctx, "approval.execute", "approval", a.id, "executed", _detail(a))
        return _view(a)


def refuse_unless_requester(app: App, ctx: RequestContext, approval_id: str) -> None:
    """Refuse (audited, ``AccessDenied``) anyone but the requester, before any other check of an
    ``execute`` (so a stranger learns nothing from the questions the executor would ask)."""
    a = _load(app, approval_id)
    if ctx.actor.user_id != _requester_id(app, a.id):
        _refuse(app, ctx, a, "execute", "only the requester runs an approved request")


def execute(app: App, ctx: RequestContext, approval_id: str, *, executor: Executor | None = None) -> dict[str, Any]:
    """Run an approved request (only its requester). Returns the executor's result.

    The approval is claimed (APPROVED → EXECUTED, audited) before the executor runs, so it runs
    once even when two people press the button at once; if the executor fails, the failure is
    audited (``approval.result`` / ``failed``) and the claim is released: the request is approved
    again and its requester may run it again until it expires. ``executor`` replaces
    the registered one (the API runs ``recording.export`` as a download link instead of a file
    written on the server)."""
    a = _load(app, approval_id)
    _refuse_if_expired(app, ctx, a)
    requester_id = _requester_id(app, a.id)
    if ctx.actor.user_id != requester_id:
        _refuse(app, ctx, a, "execute", "only the requester runs an approved request")
    run = executor or _spec(app, a.action).execute
    actx = _actx(ctx, a.id)
    with app.catalog.session() as s:
        row = s.scalars(select(Approval).where(Approval.id == a.id).with_for_update()).one()
        state = row.state
        if state == ApprovalState.APPROVED:
            row.state = ApprovalState.EXECUTED
            row.executed_at, row.executed_by = app.clock.now(), ctx.actor.username
            app.audit.append(s, actx, "approval.execute", "approval", row.id, "executed", _detail(row))
            claimed = _view(row)
    if state != ApprovalState.APPROVED:
        raise ConflictError(f"four-eyes request {a.id} is {state}, not approved",
                            hint="a second person approves it with cf approve ID" if state == ApprovalState.REQUESTED else None)
    token = _running.set((claimed, requester_id))
    try:
        result = run(app, actx, a.target_id or "", dict(a.params))
    except Exception as exc:
        message = exc.message if isinstance(exc, CallFortError) else "internal error"
        # the approval is released again (APPROVED): a failed run (a full disk, a store outage, a
        # wrong file name) must not use up the second person's decision; still only until expiry
        with app.catalog.session() as s:
            row = s.scalars(select(Approval).where(Approval.id == a.id).with_for_update()).one()
            if row.state == ApprovalState.EXECUTED and row.executed_by == ctx.actor.username:
                row.state, row.executed_at, row.executed_by = ApprovalState.APPROVED, None, None
            app.audit.append(s, actx, "approval.result", "approval", a.id, "failed",
                             {"action": a.action, "target_id": a.target_id, "error": type(exc).__name__,
                              "message": message, "approval": "still approved: run it again"})
        raise
    finally:
        _running.reset(token)
    result = dict(result or {})
    with app.catalog.session() as s:
        row = s.scalars(select(Approval).where(Approval.id == a.id).with_for_update()).one()
        # The result may carry secrets (a streaming link): only its keys are kept and audited.
        row.result = {"keys": sorted(result)}
        app.audit.append(s, actx, "approval.result", "approval", row.id, "ok",
                         {"action": row.action, "target_id": row.target_id, "result_keys": sorted(result)})
    return result


# --------------------------------------------------------------------------- listing


def _visible(app: App, ctx: RequestContext, a: ApprovalView, requester_id: str, see_all: bool) -> bool:
    return see_all or requester_id == ctx.actor.user_id or _may_approve(app, ctx, a)


def list_requests(app: App, ctx: RequestContext, state: str | None = None, limit: int = 200) -> list[ApprovalView]:
    """Requests the actor may see: their own, those they may approve, and all for ``approval.read``."""
    if state is not None and state not in STATES:
        raise InputError(f"unknown state '{state}'", hint="choose one of: " + ", ".join(STATES))
    expire(app)
    see_all = decide(app, ctx, "approval.read", AccessTarget(kind="approval")).decision is Decision.ALLOW
    with app.catalog.session() as s:
        q = select(Approval).order_by(Approval.requested_at.desc(), Approval.id)
        if state:
            q = q.where(Approval.state == state)
        rows = [(a.requester_id, _view(a)) for a in s.scalars(q.limit(max(1, min(limit, 1000)) * 5))]
    return [v for rid, v in rows if _visible(app, ctx, v, rid, see_all)][:limit]


def get_request(app: App, ctx: RequestContext, approval_id: str) -> ApprovalView:
    a = _load(app, approval_id)
    see_all = decide(app, ctx, "approval.read", AccessTarget(kind="approval")).decision is Decision.ALLOW
    if not _visible(app, ctx, a, _requester_id(app, a.id), see_all):
        raise NotFound(f"no four-eyes request {approval_id}")
    return a


def expire_job(app: App) -> int:
    """The ``approvals.expire`` job of ``cf serve`` (see ``cfcore.defaults.jobs``)."""
    return expire(app)
