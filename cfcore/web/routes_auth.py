"""Log-in, log-out, who am I, API tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from hookspecs.types import RequestContext

from ..access import users
from .deps import SESSION_COOKIE, client_host, client_ip, get_app, is_https, request_context

router = APIRouter(prefix="/api/auth", tags=["auth"])


class LoginIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class TokenIn(BaseModel):
    name: str = Field(default="api", max_length=64)
    days: int | None = Field(default=None, ge=1, le=365, description="lifetime (default [access] token_days)")
    username: str | None = Field(default=None, description="another user's token (needs users.manage)")


def _me(ctx: RequestContext) -> dict[str, Any]:
    a = ctx.actor
    return {"user_id": a.user_id, "username": a.username, "roles": sorted(a.roles), "advisor_id": a.advisor_id,
            "host": ctx.host, "ip": ctx.ip}


@router.post("/login", summary="Log in with user name and password; starts a web session")
def login(body: LoginIn, request: Request, response: Response) -> dict[str, Any]:
    app = get_app(request)
    host, ip = client_host(request), client_ip(request)
    actor = users.authenticate_password(app, body.username, body.password, host=host, ip=ip,
                                        function="api.auth.login", audit_success=True)
    ctx = RequestContext(actor=actor, host=host, ip=ip, function="api.auth.login")
    issued = users.start_session(app, ctx)
    max_age = int((issued.expires_at - app.clock.now()).total_seconds()) if issued.expires_at else None
    response.set_cookie(SESSION_COOKIE, issued.token, max_age=max_age, httponly=True, samesite="strict",
                        secure=is_https(request), path="/")
    return {"token": issued.token, "expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
            "user": _me(ctx)}


@router.post("/logout", summary="End the session (or revoke the bearer token used)")
def logout(request: Request, response: Response,
           ctx: RequestContext = Depends(request_context("api.auth.logout"))) -> dict[str, Any]:
    ended = users.end_session(get_app(request), ctx, request.state.cf_token)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"ended": ended}


@router.get("/me", summary="The logged-in user, roles and the host/IP recorded for this request")
def me(ctx: RequestContext = Depends(request_context("api.auth.me"))) -> dict[str, Any]:
    return _me(ctx)


@router.post("/tokens", status_code=201, summary="Create an API token (shown once)")
def create_token(body: TokenIn, request: Request,
                 ctx: RequestContext = Depends(request_context("api.auth.tokens.create"))) -> dict[str, Any]:
    issued = users.create_token(get_app(request), ctx, username=body.username, name=body.name, days=body.days)
    return issued.as_dict()


@router.get("/tokens", summary="List tokens and sessions (no secrets)")
def list_tokens(request: Request, username: str | None = None,
                ctx: RequestContext = Depends(request_context("api.auth.tokens.list"))) -> list[dict[str, Any]]:
    return users.list_tokens(get_app(request), ctx, username)


@router.delete("/tokens/{token_id}", summary="Revoke a token or session")
def revoke_token(token_id: str, request: Request,
                 ctx: RequestContext = Depends(request_context("api.auth.tokens.revoke"))) -> dict[str, Any]:
    users.revoke_token(get_app(request), ctx, token_id)
    return {"revoked": token_id}
