"""The one door to personal data: ask the access-policy hook, audit the outcome.

Every read or change of a recording, a subject or the audit trail calls ``authorize`` first.
"""

from __future__ import annotations

from typing import Any

from hookspecs.types import AccessDecision, AccessTarget, Decision, RequestContext

from ..errors import AccessDenied, ApprovalRequired


def decide(app: Any, ctx: RequestContext, action: str, target: AccessTarget) -> AccessDecision:
    """Combine all policy answers: any DENY wins, then NEEDS_APPROVAL, then ALLOW; no ALLOW = DENY."""
    answers: list[AccessDecision] = [
        a for a in app.pm.hook.cf_access_decision(actor=ctx.actor, action=action, target=target, context=ctx)
        if a is not None
    ]
    for wanted in (Decision.DENY, Decision.NEEDS_APPROVAL, Decision.ALLOW):
        hit = next((a for a in answers if a.decision is wanted), None)
        if hit is not None:
            return hit
    return AccessDecision(decision=Decision.DENY, reason="no policy allows this", by="default")


def authorize(app: Any, ctx: RequestContext, action: str, target: AccessTarget, *,
              audit_allowed: bool = False, detail: dict[str, Any] | None = None) -> AccessDecision:
    """Raise ``AccessDenied`` / ``ApprovalRequired`` (both audited) unless the access is allowed.

    A request running under an approved four-eyes request (``ctx.approval_id``) turns
    NEEDS_APPROVAL into ALLOW only when the approval matches actor, action and target; that check
    lives in ``cfcore.access.approvals`` and is applied by the default policy.
    Allowed accesses are audited by the caller together with what they did (``audit_allowed=True``
    audits here instead).
    """
    decision = decide(app, ctx, action, target)
    if decision.decision is Decision.ALLOW:
        if audit_allowed:
            app.audit.record(ctx, action, target.kind, target.id, "allowed", detail)
        return decision
    outcome = "denied" if decision.decision is Decision.DENY else "needs-approval"
    app.audit.record(ctx, action, target.kind, target.id, outcome, {**(detail or {}), "reason": decision.reason})
    if decision.decision is Decision.DENY:
        raise AccessDenied(f"{ctx.actor.username} may not {action} {target.kind} {target.id or ''}".rstrip())
    raise ApprovalRequired(f"{action} on {target.kind} {target.id or ''} needs four-eyes approval".replace("  ", " "),
                           hint=f"cf request {action} {target.id or ''} --reason TEXT".rstrip())
