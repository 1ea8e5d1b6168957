"""Users, passwords (Argon2), API tokens, web sessions and the lock-out after failed logins.

Settings (``[access]`` in callfort.toml, all optional)::

    max_failed_logins = 5        # consecutive failures before the account locks
    lockout_minutes = 15         # how long it stays locked (cf users unlock ends it early)
    min_password_length = 12
    session_minutes = 480        # web sessions
    token_days = 90              # default lifetime of an API token (at most 365)
    argon2_time_cost, argon2_memory_kib, argon2_parallelism   # default: argon2-cffi's defaults

A failed login is audited (``auth.login``, outcome ``failed`` / ``refused``) with the PC host
name, IP and function; a lock-out is audited as ``auth.lockout``. The error shown to the person is
the same whatever the cause (unknown user, wrong password, locked, disabled), so that it does not
tell an attacker which accounts exist.

Role changes are four-eyes: ``request_role_change`` files a ``roles.change`` request; the
executor registered here applies it once a second person approved.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

import attrs
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from hookspecs.types import AccessTarget, Actor, RequestContext

from ..db.models_access import ApiToken, User, UserRole
from ..errors import AccessDenied, AuthenticationFailed, ConflictError, InputError, NotFound
from . import approvals
from .authflood import aggregator
from .guard import authorize
from .roles import check_roles

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
LOGIN_FAILED = "login failed: wrong user name or password, or the account is locked or disabled"
LOGIN_HINT = "check CF_USER/--user and CF_PASSWORD or CF_TOKEN; after repeated failures ask an administrator"
TOKEN_PREFIX = "cft_"  # noqa: S105 - a prefix, not a secret
SESSION_PREFIX = "cfs_"
UNSET: Any = object()


# --------------------------------------------------------------------------- settings


def _setting(app: Any, key: str, default: int) -> int:
    value = app.config.get(f"access.{key}", int, default)
    if value < 0:
        raise InputError(f"{app.config.path}: access.{key} must not be negative")
    return value


def _hasher(app: Any) -> PasswordHasher:
    """Argon2id with the library's defaults (RFC 9106 low-memory profile), unless
    ``[access] argon2_time_cost`` / ``argon2_memory_kib`` / ``argon2_parallelism`` say otherwise
    (cheaper settings are for test deployments only)."""
    ph = app.__dict__.get("_cf_password_hasher")
    if ph is None:
        default = PasswordHasher()
        time_cost = _setting(app, "argon2_time_cost", default.time_cost)
        memory = _setting(app, "argon2_memory_kib", default.memory_cost)
        lanes = _setting(app, "argon2_parallelism", default.parallelism)
        if time_cost < 1 or lanes < 1 or memory < 8 * lanes:
            raise InputError(f"{app.config.path}: [access] argon2 settings are too small "
                             "(time_cost >= 1, parallelism >= 1, memory_kib >= 8 x parallelism)")
        ph = PasswordHasher(time_cost=time_cost, memory_cost=memory, parallelism=lanes)
        app.__dict__["_cf_password_hasher"] = ph
    return ph


def _dummy_hash(app: Any) -> str:
    h = app.__dict__.get("_cf_dummy_hash")
    if h is None:
        h = _hasher(app).hash(secrets.token_hex(16))
        app.__dict__["_cf_dummy_hash"] = h
    return h


def normalise_username(name: str) -> str:
    value = (name or "").strip().lower()
    if not USERNAME_RE.match(value):
        raise InputError(f"user name {name!r} is not valid",
                         hint="use 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def check_password(app: Any, password: str) -> None:
    minimum = _setting(app, "min_password_length", 12)
    if not isinstance(password, str) or len(password) < minimum:
        raise InputError(f"password is too short (at least {minimum} characters)",
                         hint="choose a longer passphrase")


def hash_password(app: Any, password: str) -> str:
    check_password(app, password)
    return _hasher(app).hash(password)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_id() -> str:
    return secrets.token_hex(16)


# --------------------------------------------------------------------------- views


@attrs.frozen(kw_only=True)
class UserView:
    id: str
    username: str
    display_name: str | None
    roles: tuple[str, ...]
    advisor_id: str | None
    disabled: bool
    locked_until: datetime | None
    failed_logins: int
    last_login_at: datetime | None
    created_at: datetime
    created_by: str

    def as_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        for k in ("locked_until", "last_login_at", "created_at"):
            d[k] = d[k].isoformat() if d[k] else None
        d["roles"] = list(self.roles)
        return d


def _view(u: User) -> UserView:
    return UserView(id=u.id, username=u.username, display_name=u.display_name, roles=tuple(sorted(u.role_names)),
                    advisor_id=u.advisor_id, disabled=u.disabled, locked_until=u.locked_until,
                    failed_logins=u.failed_logins, last_login_at=u.last_login_at, created_at=u.created_at,
                    created_by=u.created_by)


def actor_for(user: User) -> Actor:
    return Actor(user_id=user.id, username=user.username, roles=frozenset(user.role_names),  # type: ignore[arg-type]
                 advisor_id=user.advisor_id)


def _user(s: Session, username: str, *, lock: bool = False) -> User:
    q = select(User).where(User.username == normalise_username(username))
    if lock:
        q = q.with_for_update()
    user = s.scalars(q).one_or_none()
    if user is None:
        raise NotFound(f"no user '{username}'", hint="cf users list shows the users")
    return user


def get_user(app: Any, username: str) -> UserView:
    with app.catalog.session() as s:
        return _view(_user(s, username))


def user_target(username: str) -> AccessTarget:
    return AccessTarget(kind="user", id=username)


# --------------------------------------------------------------------------- authentication


def _auth_ctx(user: User | None, host: str, ip: str, function: str) -> RequestContext:
    actor = actor_for(user) if user else Actor(user_id="unknown", username="unknown")
    return RequestContext(actor=actor, host=host, ip=ip, function=function)


def _is_locked(user: User, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


def authenticate_password(app: Any, username: str, password: str, *, host: str, ip: str, function: str,
                          audit_success: bool = False) -> Actor:
    """Check a user name and password; return the actor or raise ``AuthenticationFailed``.

    Consecutive failures lock the account (``[access] max_failed_logins``, ``lockout_minutes``).
    Every failure is audited; success only when ``audit_success`` (web logins)."""
    now = app.clock.now()
    max_failed = _setting(app, "max_failed_logins", 5)
    lock_minutes = _setting(app, "lockout_minutes", 15)
    try:
        name = normalise_username(username)
    except InputError:
        name = None
    actor: Actor | None = None
    with app.catalog.session() as s:
        user = None
        if name:
            user = s.scalars(select(User).where(User.username == name).with_for_update()).one_or_none()
        ctx = _auth_ctx(user, host, ip, function)
        if user is None:
            _verify(app, _dummy_hash(app), password)  # same time as a real check
            app.audit.append(s, ctx, "auth.login", "user", None, "failed",
                             {"method": "password", "reason": "unknown user"})
        elif user.disabled or _is_locked(user, now) or not user.password_hash:
            reason = "disabled" if user.disabled else "locked" if _is_locked(user, now) else "no password set"
            app.audit.append(s, ctx, "auth.login", "user", user.username, "refused",
                             {"method": "password", "reason": reason})
        elif _verify(app, user.password_hash, password):
            user.failed_logins = 0
            user.locked_until = None
            user.last_login_at = now
            if _hasher(app).check_needs_rehash(user.password_hash):
                user.password_hash = _hasher(app).hash(password)
            actor = actor_for(user)
            if audit_success:
                app.audit.append(s, ctx, "auth.login", "user", user.username, "ok", {"method": "password"})
        else:
            user.failed_logins += 1
            user.last_failed_at = now
            app.audit.append(s, ctx, "auth.login", "user", user.username, "failed",
                             {"method": "password", "reason": "wrong password", "failed_logins": user.failed_logins})
            if max_failed and user.failed_logins >= max_failed:
                user.locked_until = now + timedelta(minutes=lock_minutes)
                app.audit.append(s, ctx, "auth.lockout", "user", user.username, "locked",
                                 {"failed_logins": user.failed_logins, "locked_until": user.locked_until.isoformat()})
                user.failed_logins = 0
    if actor is None:
        raise AuthenticationFailed(LOGIN_FAILED, hint=LOGIN_HINT)
    return actor


def _verify(app: Any, stored: str, password: str) -> bool:
    try:
        return _hasher(app).verify(stored, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def authenticate_token(app: Any, token: str, *, host: str, ip: str, function: str) -> Actor:
    """Check an API token or web session token; return the actor or raise ``AuthenticationFailed``.

    Tokens keep working while a password lock-out is in force (the lock-out stops password
    guessing; a token is not guessable); a disabled user's tokens stop at once."""
    now = app.clock.now()
    actor: Actor | None = None
    with app.catalog.session() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.token_hash == _token_hash(token or ""))).one_or_none()
        user = s.get(User, row.user_id) if row else None
        ctx = _auth_ctx(user, host, ip, function)
        reason = None
        if row is None or user is None:
            reason = "unknown token"
        elif row.revoked_at is not None:
            reason = "revoked"
        elif row.expires_at is not None and row.expires_at <= now:
            reason = "expired"
        elif user.disabled:
            reason = "disabled"
        if reason:  # audited, a flood of bad tokens as counts (cfcore.access.authflood)
            aggregator(app).note(app, s, ctx, user.username if user else None, row.kind if row else "token",
                                 reason)
        else:
            assert row is not None and user is not None
            if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
                row.last_used_at = now
            actor = actor_for(user)
    if actor is None:
        raise AuthenticationFailed("token is not valid (unknown, expired, revoked or its user is disabled)",
                                   hint="log in again or create a new token")
    return actor


@attrs.frozen(kw_only=True)
class IssuedToken:
    id: str
    token: str
    kind: str
    expires_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "token": self.token, "kind": self.kind,
                "expires_at": self.expires_at.isoformat() if self.expires_at else None}


def _issue(s: Session, app: Any, user: User, kind: str, name: str, ttl: timedelta) -> IssuedToken:
    token = (SESSION_PREFIX if kind == "session" else TOKEN_PREFIX) + secrets.token_urlsafe(32)
    now = app.clock.now()
    row = ApiToken(id=_new_id(), user_id=user.id, token_hash=_token_hash(token), kind=kind, name=name[:64],
                   created_at=now, expires_at=now + ttl)
    s.add(row)
    return IssuedToken(id=row.id, token=token, kind=kind, expires_at=row.expires_at)


def start_session(app: Any, ctx: RequestContext) -> IssuedToken:
    """A web session for the (just authenticated) actor; audited ``session.start``."""
    ttl = timedelta(minutes=_setting(app, "session_minutes", 480))
    with app.catalog.session() as s:
        user = s.get(User, ctx.actor.user_id)
        if user is None:
            raise NotFound("user vanished")
        issued = _issue(s, app, user, "session", "web", ttl)
        app.audit.append(s, ctx, "session.start", "user", user.username, "ok",
                         {"token_id": issued.id, "expires_at": issued.expires_at})
    return issued


def end_session(app: Any, ctx: RequestContext, token: str) -> bool:
    """Revoke the session or token ``token`` belongs to (log-out); audited ``session.end``."""
    with app.catalog.session() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.token_hash == _token_hash(token))).one_or_none()
        if row is None or row.user_id != ctx.actor.user_id or row.revoked_at is not None:
            return False
        row.revoked_at = app.clock.now()
        app.audit.append(s, ctx, "session.end", "user", ctx.actor.username, "ok", {"token_id": row.id})
    return True


def _may_manage(app: Any, ctx: RequestContext, username: str, action: str) -> None:
    """Acting on oneself needs no role; acting on someone else needs ``users.manage``."""
    if normalise_username(username) != ctx.actor.username:
        authorize(app, ctx, "users.manage", user_target(username), detail={"function": action})


def create_token(app: Any, ctx: RequestContext, *, username: str | None = None, name: str = "api",
                 days: int | None = None) -> IssuedToken:
    """An API token (shown once, stored hashed). For oneself, or for another user with
    ``users.manage``."""
    username = normalise_username(username or ctx.actor.username)
    days = _setting(app, "token_days", 90) if days is None else days
    if not 1 <= days <= 365:
        raise InputError("token lifetime must be 1 to 365 days")
    _may_manage(app, ctx, username, "token.create")
    with app.catalog.session() as s:
        user = _user(s, username)
        if user.disabled:
            raise ConflictError(f"user '{username}' is disabled")
        issued = _issue(s, app, user, "token", name or "api", timedelta(days=days))
        app.audit.append(s, ctx, "token.create", "user", username, "ok",
                         {"token_id": issued.id, "name": name, "expires_at": issued.expires_at})
    return issued


def list_tokens(app: Any, ctx: RequestContext, username: str | None = None) -> list[dict[str, Any]]:
    username = normalise_username(username or ctx.actor.username)
    _may_manage(app, ctx, username, "token.list")
    with app.catalog.session() as s:
        user = _user(s, username)
        rows = s.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at)).all()
        return [{"id": r.id, "kind": r.kind, "name": r.name, "created_at": r.created_at.isoformat(),
                 "expires_at": r.expires_at.isoformat() if r.expires_at else None,
                 "revoked": r.revoked_at is not None} for r in rows]


def revoke_token(app: Any, ctx: RequestContext, token_id: str) -> None:
    with app.catalog.session() as s:
        row = s.get(ApiToken, token_id)
        owner = s.get(User, row.user_id) if row else None
    if row is None or owner is None:
        raise NotFound(f"no token {token_id}")
    _may_manage(app, ctx, owner.username, "token.revoke")
    with app.catalog.session() as s:
        row = s.get(ApiToken, token_id)
        if row is not None and row.revoked_at is None:
            row.revoked_at = app.clock.now()
            app.audit.append(s, ctx, "token.revoke", "user", owner.username, "ok", {"token_id": token_id})


# --------------------------------------------------------------------------- user management


#: Roles whose first holder may be created with ``--bootstrap`` (no approver exists before them).
BOOTSTRAP_ROLES = ("administrator", "dpo", "compliance")


def any_with_role(s: Session, role: str) -> bool:
    return s.scalars(select(UserRole.id).where(UserRole.role == role).limit(1)).first() is not None


def any_administrator(s: Session) -> bool:
    return any_with_role(s, "administrator")


def add_user(app: Any, ctx: RequestContext, username: str, *, password: str | None = None,
             display_name: str | None = None) -> UserView:
    """Create a user without roles (``users.manage``). Roles follow through ``request_role_change``
    (four-eyes)."""
    username = normalise_username(username)
    authorize(app, ctx, "users.manage", user_target(username), detail={"function": "user.add"})
    pw_hash = hash_password(app, password) if password is not None else None
    with app.catalog.session() as s:
        if s.scalars(select(User.id).where(User.username == username)).first():
            raise ConflictError(f"user '{username}' exists already")
        user = User(id=_new_id(), username=username, display_name=display_name, password_hash=pw_hash,
                    disabled=False, failed_logins=0, created_at=app.clock.now(), created_by=ctx.actor.username)
        s.add(user)
        s.flush()
        app.audit.append(s, ctx, "user.add", "user", username, "ok", {"user_id": user.id})
        return _view(user)


def bootstrap_user(app: Any, ctx: RequestContext, username: str, password: str, role: str = "administrator",
                   display_name: str | None = None) -> UserView:
    """Create the first holder of ``role`` (administrator, dpo or compliance) on a new deployment:
    only while no user holds that role. Without it nobody could approve the first role change.

    ``ctx`` is the system context of the person at the server (``system_cli_context``); the audit
    entry ``user.bootstrap`` records who, from which PC and IP."""
    if role not in BOOTSTRAP_ROLES:
        raise InputError(f"--bootstrap creates the first {', '.join(BOOTSTRAP_ROLES)} only, not {role}")
    username = normalise_username(username)
    pw_hash = hash_password(app, password)
    try:
        with app.catalog.session() as s:
            # The audit append locks the audit head: two bootstraps at once run one after the other
            # (a refusal rolls the entry back and records the refusal instead).
            app.audit.append(s, ctx, "user.bootstrap", "user", username, "ok", {"role": role})
            if any_with_role(s, role):
                raise _Refused
            if s.scalars(select(User.id).where(User.username == username)).first():
                raise ConflictError(f"user '{username}' exists already", hint="bootstrap a new user name")
            now = app.clock.now()
            user = User(id=_new_id(), username=username, display_name=display_name, password_hash=pw_hash,
                        disabled=False, failed_logins=0, created_at=now, created_by=ctx.actor.username)
            user.roles.append(UserRole(role=role, granted_at=now))
            s.add(user)
            s.flush()
            return _view(user)
    except _Refused:
        app.audit.record(ctx, "user.bootstrap", "user", username, "refused", {"role": role, "reason": f"a {role} exists"})
        raise ConflictError(f"a user with role {role} exists already; --bootstrap works only for the first one",
                            hint="add users with 'cf users add' as an administrator; roles need four-eyes") from None


class _Refused(Exception):
    pass


def bootstrap_administrator(app: Any, ctx: RequestContext, username: str, password: str,
                            display_name: str | None = None) -> UserView:
    return bootstrap_user(app, ctx, username, password, "administrator", display_name)


def show_user(app: Any, ctx: RequestContext, username: str) -> UserView:
    """One user: oneself, or anyone with ``users.manage``."""
    _may_manage(app, ctx, username, "user.show")
    return get_user(app, username)


def list_users(app: Any, ctx: RequestContext) -> list[UserView]:
    authorize(app, ctx, "users.manage", AccessTarget(kind="user"), detail={"function": "user.list"})
    with app.catalog.session() as s:
        users = [_view(u) for u in s.scalars(select(User).order_by(User.username))]
        app.audit.append(s, ctx, "user.list", "user", None, "ok", {"count": len(users)})
    return users


def set_disabled(app: Any, ctx: RequestContext, username: str, disabled: bool = True) -> UserView:
    """Disable (or enable) a user; a disabled user cannot log in and their tokens stop working."""
    username = normalise_username(username)
    authorize(app, ctx, "users.manage", user_target(username),
              detail={"function": "user.disable" if disabled else "user.enable"})
    if disabled and username == ctx.actor.username:
        raise InputError("you cannot disable yourself", hint="ask another administrator")
    with app.catalog.session() as s:
        user = _user(s, username, lock=True)
        user.disabled = disabled
        if not disabled:
            user.failed_logins, user.locked_until = 0, None
        app.audit.append(s, ctx, "user.disable" if disabled else "user.enable", "user", username, "ok")
        return _view(user)


def unlock(app: Any, ctx: RequestContext, username: str) -> UserView:
    username = normalise_username(username)
    authorize(app, ctx, "users.manage", user_target(username), detail={"function": "user.unlock"})
    with app.catalog.session() as s:
        user = _user(s, username, lock=True)
        user.failed_logins, user.locked_until = 0, None
        app.audit.append(s, ctx, "user.unlock", "user", username, "ok")
        return _view(user)


def set_password(app: Any, ctx: RequestContext, username: str, password: str) -> None:
    """Set a password: one's own, or another user's with ``users.manage``."""
    username = normalise_username(username)
    _may_manage(app, ctx, username, "user.password")
    pw_hash = hash_password(app, password)
    with app.catalog.session() as s:
        user = _user(s, username, lock=True)
        user.password_hash = pw_hash
        user.failed_logins, user.locked_until = 0, None
        app.audit.append(s, ctx, "user.password", "user", username, "ok")


# --------------------------------------------------------------------------- roles (four-eyes)


def request_role_change(app: Any, ctx: RequestContext, username: str, *, add: list[str] | tuple[str, ...] = (),
                        remove: list[str] | tuple[str, ...] = (), advisor_id: Any = UNSET,
                        reason: str) -> str:
    """File a ``roles.change`` four-eyes request; returns the approval id."""
    username = normalise_username(username)
    add_, remove_ = check_roles(add), check_roles(remove)
    if set(add_) & set(remove_):
        raise InputError("a role cannot be added and removed at once")
    if not add_ and not remove_ and advisor_id is UNSET:
        raise InputError("nothing to change", hint="give --add ROLE, --remove ROLE or --advisor-id ID")
    get_user(app, username)  # NotFound early
    params: dict[str, Any] = {"add": ",".join(add_), "remove": ",".join(remove_)}
    if advisor_id is not UNSET:
        params["advisor_id"] = advisor_id or ""
    return approvals.request(app, ctx, "roles.change", username, reason, params)


def _execute_role_change(app: Any, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    authorize(app, ctx, "roles.change", user_target(target_id))
    add_ = check_roles([r for r in str(params.get("add", "")).split(",") if r])
    remove_ = check_roles([r for r in str(params.get("remove", "")).split(",") if r])
    with app.catalog.session() as s:
        user = _user(s, target_id, lock=True)
        before = sorted(user.role_names)
        before_advisor = user.advisor_id
        now = app.clock.now()
        for held in list(user.roles):
            if held.role in remove_:
                user.roles.remove(held)
        for name in add_:
            if name not in user.role_names:
                user.roles.append(UserRole(role=name, granted_at=now, approval_id=ctx.approval_id))
        if "advisor_id" in params:
            user.advisor_id = str(params["advisor_id"]).strip() or None
        s.flush()
        after = sorted(user.role_names)
        if "administrator" in before and "administrator" not in after and not any_administrator(s):
            raise ConflictError("this would remove the last administrator")
        app.audit.append(s, ctx, "roles.change", "user", user.username, "ok",
                         {"before": before, "after": after, "advisor_id_before": before_advisor,
                          "advisor_id_after": user.advisor_id})
    return {"user": target_id, "roles": after, "advisor_id": user.advisor_id}


approvals.register_action("roles.change", _execute_role_change, target_kind="user",
                          description="change a user's roles or advisor id")

__all__ = [
    "AccessDenied", "IssuedToken", "UserView", "actor_for", "add_user", "authenticate_password",
    "authenticate_token", "bootstrap_administrator", "bootstrap_user", "create_token", "end_session", "get_user", "list_tokens",
    "list_users", "normalise_username", "show_user", "request_role_change", "revoke_token", "set_disabled", "set_password",
    "start_session", "unlock",
]
