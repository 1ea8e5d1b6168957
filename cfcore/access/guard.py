"""The one door to personal data: ask the access-policy hook, audit the outcome.

Every read or change of a recording, a subject or the audit trail calls ``authorize`` first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hookspecs.types import AccessDecision, AccessTarget, Decision, RequestContext

from ..authority import SYSTEM_RIGHTS, is_system
from ..errors import AccessDenied, ApprovalRequired
from .policy import decide

if TYPE_CHECKING:
    from ..app import App

__all__ = ["authorize", "decide", "list_scope"]


def authorize(app: App, ctx: RequestContext, action: str, target: AccessTarget, *,
              audit_allowed: bool = False, detail: dict[str, Any] | None = None) -> AccessDecision:
    """Raise ``AccessDenied`` / ``ApprovalRequired`` (both audited) unless the access is allowed.

    ``ctx`` is always given: the system's own work passes ``cfcore.authority.SYSTEM`` (or a
    ``system_context``), which is allowed exactly the actions in ``SYSTEM_RIGHTS``; any other
    action of the system is denied and audited. ``None`` is refused (``TypeError``).

    Four-eyes: when the policies answer NEEDS_APPROVAL (and none DENY) and the request runs under
    an approval (``ctx.approval_id``, set by ``cfcore.access.approvals.execute``), the approval is
    checked — APPROVED, unexpired, unexecuted, same requester, action and target — and consumed
    (it becomes EXECUTED, audited); the access is then allowed. This holds for a NEEDS_APPROVAL
    from any policy plugin, so a plugin that adds a four-eyes rule is satisfied the same way.
    Allowed accesses are audited by the caller together with what they did (``audit_allowed=True``
    audits here instead).
    """
    if ctx is None:
        raise TypeError("authorize needs a request context; the system's own work passes cfcore.authority.SYSTEM")
    if is_system(ctx):
        if action in SYSTEM_RIGHTS:
            return AccessDecision(decision=Decision.ALLOW, reason=SYSTEM_RIGHTS[action], by="system")
        app.audit.record(ctx, action, target.kind, target.id, "denied",
                         {**(detail or {}), "reason": "not a right of the system (cfcore.authority.SYSTEM_RIGHTS)"})
        raise AccessDenied(f"the system may not {action} on its own; a person must do it")
    decision = decide(app, ctx, action, target)
    if decision.decision is Decision.NEEDS_APPROVAL and ctx.approval_id:
        from .approvals import consume

        approval = consume(app, ctx, action, target)
        if approval is not None:
            decision = AccessDecision(decision=Decision.ALLOW, by="four-eyes",
                                      reason=f"approval {approval.id} by {approval.approver}")
    if decision.decision is Decision.ALLOW:
        if audit_allowed:
            app.audit.record(ctx, action, target.kind, target.id, "allowed", detail)
        return decision
    outcome = "denied" if decision.decision is Decision.DENY else "needs-approval"
    app.audit.record(ctx, action, target.kind, target.id, outcome, {**(detail or {}), "reason": decision.reason})
    if decision.decision is Decision.DENY:
        from .approvals import _roles_hint

        raise AccessDenied(f"{ctx.actor.username} may not {action} {target.kind} {target.id or ''}".rstrip()
                           + _roles_hint(action, ctx.actor.roles))
    raise ApprovalRequired(f"{action} on {target.kind} {target.id or ''}".rstrip() + " needs four-eyes approval",
                           hint=f"cf request {action} {target.id or '-'} --reason TEXT, then a second person "
                                "approves it and you run cf execute ID")


def list_scope(app: App, ctx: RequestContext, action: str = "recording.list", kind: str = "recording",
               *, detail: dict[str, Any] | None = None) -> str | None:
    """For listings and searches: ``None`` when the actor may see every ``kind``, else the advisor id
    to restrict the listing to (own-only); raises (audited) when neither is allowed.

    The caller audits the listing itself (with what it returned)."""
    if ctx is None:
        raise TypeError("list_scope needs a request context; the system's own work passes cfcore.authority.SYSTEM")
    if is_system(ctx):
        authorize(app, ctx, action, AccessTarget(kind=kind, attributes={"scope": "all"}), detail=detail)
        return None
    everything = AccessTarget(kind=kind, attributes={"scope": "all"})
    if decide(app, ctx, action, everything).decision is Decision.ALLOW:
        return None
    if ctx.actor.advisor_id:
        own = AccessTarget(kind=kind, owner_advisor_id=ctx.actor.advisor_id, attributes={"scope": "own"})
        if decide(app, ctx, action, own).decision is Decision.ALLOW:
            return ctx.actor.advisor_id
    authorize(app, ctx, action, everything, detail=detail)  # raises and audits
    raise AccessDenied(f"{ctx.actor.username} may not {action}")  # pragma: no cover - authorize raised
