"""Log-in, log-out, who am I, API tokens, completing a password reset.

Log-ins are throttled (``cfcore.access.throttle``): an attempt that comes too early, or while
the server already has a full queue of log-ins, is answered 429 with ``Retry-After`` at once.
The Argon2 check runs on a small pool of its own (one thread per core), never on the pool that
serves the other requests, so a flood of log-ins leaves ``/api/me`` and ingest responsive."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from hookspecs.types import RequestContext

from ..access import users
from ..access.throttle import throttle_for
from ..errors import InputError
from .deps import SESSION_COOKIE, client_host, client_ip, get_app, is_https, request_context

if TYPE_CHECKING:
    from ..app import App

router = APIRouter(prefix="/api/auth", tags=["auth"])


class LoginIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class TokenIn(BaseModel):
    name: str = Field(default="api", max_length=64)
    days: int | None = Field(default=None, ge=1, le=3650,
                             description="lifetime (default [access] token_days); without password at most "
                                         "until the session used for this request ends")
    username: str | None = Field(default=None, description="must be yourself: nobody mints another user's token")
    password: str | None = Field(default=None, max_length=1024,
                                 description="your password again: allows a life up to [access] token_max_days")


class ResetIn(BaseModel):
    username: str = Field(max_length=64)
    code_1: str = Field(max_length=64, description="the half from the administrator")
    code_2: str = Field(max_length=64, description="the half from the DPO or compliance officer")
    new_password: str = Field(max_length=1024)


def _login_pool(app: App) -> ThreadPoolExecutor:
    pool = app.__dict__.get("_cf_login_pool")
    if pool is None:
        pool = ThreadPoolExecutor(max_workers=throttle_for(app).slots_total, thread_name_prefix="cf-login")
        app.__dict__["_cf_login_pool"] = pool
    return pool


async def _throttled(app: App, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` on the log-in pool, unless this attempt must wait or the queue is full (429)."""
    throttle = throttle_for(app)
    throttle.enter()
    try:
        return await asyncio.get_running_loop().run_in_executor(_login_pool(app), lambda: fn(*args, **kwargs))
    finally:
        throttle.leave()


def _me(ctx: RequestContext) -> dict[str, Any]:
    a = ctx.actor
    return {"user_id": a.user_id, "username": a.username, "roles": sorted(a.roles), "advisor_id": a.advisor_id,
            "host": ctx.host, "ip": ctx.ip}


@router.post("/login", summary="Log in with user name and password; starts a web session",
             responses={429: {"description": "too many attempts: wait Retry-After seconds"}})
async def login(body: LoginIn, request: Request, response: Response) -> dict[str, Any]:
    app = get_app(request)
    host, ip = client_host(request), client_ip(request)
    try:
        name: str | None = users.normalise_username(body.username)
    except InputError:
        name = None
    throttle_for(app).check(ip, name)  # before queueing: a throttled attempt costs nothing

    def run() -> tuple[RequestContext, users.IssuedToken]:
        actor = users.authenticate_password(app, body.username, body.password, host=host, ip=ip,
                                            function="api.auth.login", audit_success=True)
        ctx = RequestContext(actor=actor, host=host, ip=ip, function="api.auth.login")
        return ctx, users.start_session(app, ctx)

    ctx, issued = await _throttled(app, run)
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
    issued = users.create_token(get_app(request), ctx, username=body.username, name=body.name, days=body.days,
                                origin_token=request.state.cf_token, password=body.password)
    return issued.as_dict()


@router.post("/reset", summary="Set your own password with both halves of a password reset (no login)",
             responses={429: {"description": "too many attempts: wait Retry-After seconds"}})
async def complete_reset(body: ResetIn, request: Request) -> dict[str, Any]:
    app = get_app(request)
    host, ip = client_host(request), client_ip(request)
    await _throttled(app, users.complete_reset, app, body.username, body.code_1, body.code_2,
                     body.new_password, host=host, ip=ip, function="api.auth.reset")
    return {"password_set": True, "username": users.normalise_username(body.username)}


@router.get("/tokens", summary="List tokens and sessions (no secrets)")
def list_tokens(request: Request, username: str | None = None,
                ctx: RequestContext = Depends(request_context("api.auth.tokens.list"))) -> list[dict[str, Any]]:
    return users.list_tokens(get_app(request), ctx, username)


@router.delete("/tokens/{token_id}", summary="Revoke a token or session")
def revoke_token(token_id: str, request: Request,
                 ctx: RequestContext = Depends(request_context("api.auth.tokens.revoke"))) -> dict[str, Any]:
    users.revoke_token(get_app(request), ctx, token_id)
    return {"revoked": token_id}
