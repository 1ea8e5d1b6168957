"""User management: list, add, disable/enable/unlock, password reset halves, request role changes (four-eyes)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from hookspecs.types import RequestContext

from ..access import users
from .deps import get_app, request_context

router = APIRouter(prefix="/api/users", tags=["users"])


class UserIn(BaseModel):
    username: str = Field(max_length=64)
    password: str | None = Field(default=None, max_length=1024)
    display_name: str | None = Field(default=None, max_length=128)
    roles: list[str] = Field(default_factory=list, description="requested through a roles.change four-eyes request")
    advisor_id: str | None = Field(default=None, max_length=64)
    reason: str = Field(default="new user", max_length=2000)


class RolesIn(BaseModel):
    add: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)
    advisor_id: str | None = Field(default=None, max_length=64, description="\"\" removes it; omit to keep")
    reason: str = Field(max_length=2000)


@router.get("", summary="List users (users.manage)")
def list_users(request: Request, ctx: RequestContext = Depends(request_context("api.users.list"))) -> list[dict[str, Any]]:
    return [u.as_dict() for u in users.list_users(get_app(request), ctx)]


@router.post("", status_code=201, summary="Add a user; roles are requested four-eyes")
def add_user(body: UserIn, request: Request,
             ctx: RequestContext = Depends(request_context("api.users.add"))) -> dict[str, Any]:
    app = get_app(request)
    view = users.add_user(app, ctx, body.username, password=body.password, display_name=body.display_name)
    out: dict[str, Any] = {"user": view.as_dict(), "approval_id": None}
    if body.roles or body.advisor_id:
        out["approval_id"] = users.request_role_change(
            app, ctx, body.username, add=body.roles,
            advisor_id=body.advisor_id if body.advisor_id is not None else users.UNSET, reason=body.reason)
    return out


@router.post("/{username}/disable", summary="Disable a user (users.manage)")
def disable(username: str, request: Request,
            ctx: RequestContext = Depends(request_context("api.users.disable"))) -> dict[str, Any]:
    return users.set_disabled(get_app(request), ctx, username, True).as_dict()


@router.post("/{username}/enable", summary="Enable a user again (users.manage)")
def enable(username: str, request: Request,
           ctx: RequestContext = Depends(request_context("api.users.enable"))) -> dict[str, Any]:
    return users.set_disabled(get_app(request), ctx, username, False).as_dict()


@router.post("/{username}/unlock", summary="End a lock-out after failed logins (users.manage)")
def unlock(username: str, request: Request,
           ctx: RequestContext = Depends(request_context("api.users.unlock"))) -> dict[str, Any]:
    return users.unlock(get_app(request), ctx, username).as_dict()


@router.post("/{username}/reset", summary="Issue one half of a password reset (administrator, then DPO/compliance)")
def reset(username: str, request: Request,
          ctx: RequestContext = Depends(request_context("api.users.reset"))) -> dict[str, Any]:
    return users.reset_password(get_app(request), ctx, username).as_dict()


@router.post("/{username}/roles", status_code=202, summary="Request a role change (four-eyes roles.change)")
def change_roles(username: str, body: RolesIn, request: Request,
                 ctx: RequestContext = Depends(request_context("api.users.roles"))) -> dict[str, Any]:
    approval_id = users.request_role_change(
        get_app(request), ctx, username, add=body.add, remove=body.remove,
        advisor_id=body.advisor_id if body.advisor_id is not None else users.UNSET, reason=body.reason)
    return {"approval_id": approval_id, "state": "requested"}
