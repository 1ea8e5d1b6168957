"""Users, passwords (Argon2), API tokens, web sessions, password resets and bootstrap.

Settings (``[access]`` in callfort.toml, all optional)::

    min_password_length = 12
    session_minutes = 480        # web sessions
    token_days = 90              # default lifetime of an API token
    token_max_days = 365         # longest API token; only with a fresh password (see create_token)
    reset_hours = 24             # how long a password reset stays usable
    login_*                      # throttling of wrong passwords (cfcore.access.throttle)
    argon2_time_cost, argon2_memory_kib, argon2_parallelism   # default: argon2-cffi's defaults

A failed login is audited (``auth.login``, outcome ``failed`` / ``refused``) with the PC host
name, IP and function. Wrong passwords never lock an account (that would let anyone lock out
anyone); they delay the next attempt from that IP / for that account (HTTP 429). The error and
the time taken are the same whatever the cause (unknown user, wrong password, disabled), so that
they do not tell an attacker which accounts exist.

Nobody obtains another user's credentials: tokens are minted only by their owner, nobody sets
another user's password. A forgotten password is reset in two halves (``reset_password``): an
administrator issues one, a second person with an approving role the other; the user sets their
own password with both (``complete_reset``). A reset, a password change and disabling a user
revoke all of that user's sessions and tokens; enabling again brings none of them back.

Role changes are four-eyes: ``request_role_change`` files a ``roles.change`` request; the
executor registered here applies it once a second person approved.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session

from hookspecs.types import AccessTarget, Actor, Decision, RequestContext

from ..db.models_access import ApiToken, DeploymentFlag, PasswordReset, User, UserRole
from ..errors import AccessDenied, AuthenticationFailed, ConflictError, InputError, NotFound
from . import approvals
from .authflood import aggregator
from .guard import authorize, decide
from .names import fold_username
from .roles import check_roles
from .throttle import throttle_for

if TYPE_CHECKING:
    from ..app import App

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
LOGIN_FAILED = "login failed: wrong user name or password, or the account is locked or disabled"
LOGIN_HINT = "check CF_USER/--user and CF_PASSWORD or CF_TOKEN; after repeated failures ask an administrator"
TOKEN_PREFIX = "cft_"  # noqa: S105 - a prefix, not a secret
SESSION_PREFIX = "cfs_"
UNSET: Any = object()


# --------------------------------------------------------------------------- settings


def _setting(app: App, key: str, default: int) -> int:
    value = app.config.get(f"access.{key}", int, default)
    if value < 0:
        raise InputError(f"{app.config.path}: access.{key} must not be negative")
    return value


def _hasher(app: App) -> PasswordHasher:
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


def _dummy_hash(app: App) -> str:
    h = app.__dict__.get("_cf_dummy_hash")
    if h is None:
        h = _hasher(app).hash(secrets.token_hex(16))
        app.__dict__["_cf_dummy_hash"] = h
    return h


def normalise_username(name: str) -> str:
    value = fold_username(name)
    if not USERNAME_RE.match(value):
        raise InputError(f"user name {name!r} is not valid",
                         hint="use 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def check_password(app: App, password: str) -> None:
    minimum = _setting(app, "min_password_length", 12)
    if not isinstance(password, str) or len(password) < minimum:
        raise InputError(f"password is too short (at least {minimum} characters)",
                         hint="choose a longer passphrase")


def hash_password(app: App, password: str) -> str:
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


def get_user(app: App, username: str) -> UserView:
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


def authenticate_password(app: App, username: str, password: str, *, host: str, ip: str, function: str,
                          audit_success: bool = False) -> Actor:
    """Check a user name and password; return the actor or raise ``AuthenticationFailed``
    (or ``TooManyRequests`` while this IP or account must wait, see ``cfcore.access.throttle``).

    Every path costs one Argon2 verification (unknown, disabled or password-less users are checked
    against a dummy hash) and one short write, so the answer time tells nothing about the account.
    Argon2 runs outside any catalog transaction, on at most one thread per core. Wrong passwords
    never lock the account; they delay the next attempt. Every failure is audited; success only
    when ``audit_success`` (web logins)."""
    throttle = throttle_for(app)
    try:
        name: str | None = normalise_username(username)
    except InputError:
        name = None
    throttle.check(ip, name)
    # 1. read what the check needs, without a lock and without holding the transaction open
    user_id = stored = None
    disabled = False
    if name:
        with app.catalog.session() as s:
            row = s.execute(select(User.id, User.password_hash, User.disabled).where(User.username == name)).first()
        if row is not None:
            user_id, stored, disabled = row
    # 2. Argon2, outside any transaction, on a bounded number of threads
    with throttle.slots:
        ok = _verify(app, stored or _dummy_hash(app), password)
        rehash = (_hasher(app).hash(password) if ok and user_id and not disabled and stored
                  and _hasher(app).check_needs_rehash(stored) else None)
    ok = ok and user_id is not None and not disabled and bool(stored)
    # 3. one short write: the outcome and its audit entry
    now = app.clock.now()
    actor: Actor | None = None
    with app.catalog.session() as s:
        user = s.scalars(select(User).where(User.id == user_id).with_for_update()).one_or_none() if user_id else None
        ctx = _auth_ctx(user, host, ip, function)
        if user is None:
            app.audit.append(s, ctx, "auth.login", "user", None, "failed",
                             {"method": "password", "reason": "unknown user"})
        elif user.disabled or not user.password_hash:
            reason = "disabled" if user.disabled else "no password set"
            app.audit.append(s, ctx, "auth.login", "user", user.username, "refused",
                             {"method": "password", "reason": reason})
        elif ok and user.password_hash == stored:
            user.failed_logins = 0
            user.locked_until = None
            user.last_login_at = now
            if rehash:
                user.password_hash = rehash
            actor = actor_for(user)
            if audit_success:
                app.audit.append(s, ctx, "auth.login", "user", user.username, "ok", {"method": "password"})
        else:
            user.failed_logins += 1
            user.last_failed_at = now
            app.audit.append(s, ctx, "auth.login", "user", user.username, "failed",
                             {"method": "password", "reason": "wrong password", "failed_logins": user.failed_logins})
    if actor is None:
        throttle.failed(ip, name)
        raise AuthenticationFailed(LOGIN_FAILED, hint=LOGIN_HINT)
    throttle.succeeded(ip, actor.username)
    return actor


def _verify(app: App, stored: str, password: str) -> bool:
    try:
        return _hasher(app).verify(stored, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def authenticate_token(app: App, token: str, *, host: str, ip: str, function: str, touch: bool = True,
                       idle_minutes: int | None = None) -> Actor:
    """Check an API token or web session token; return the actor or raise ``AuthenticationFailed``.

    A disabled user's tokens stop at once (and were revoked when the user was disabled).
    ``touch=False`` leaves the last-use time alone (background requests of the web UI, which are
    no user activity). ``idle_minutes``: a session unused for longer is ended (revoked, audited
    ``session.end`` with reason ``idle``), the web UI's idle timeout."""
    now = app.clock.now()
    actor: Actor | None = None
    # the common case writes nothing (valid, used in the last 20 s, not idle): a read-only
    # transaction, which on SQLite takes no write lock (a player's range requests come in bursts)
    with app.catalog.read_session() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.token_hash == _token_hash(token or ""))).one_or_none()
        user = s.get(User, row.user_id) if row else None
        if (row is not None and user is not None and row.revoked_at is None and not user.disabled
                and (row.expires_at is None or row.expires_at > now)
                and not (idle_minutes and row.kind == "session"
                         and now - (row.last_used_at or row.created_at) > timedelta(minutes=idle_minutes))
                and not (touch and (row.last_used_at is None or now - row.last_used_at > timedelta(seconds=20)))):
            return actor_for(user)
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
        elif (idle_minutes and row.kind == "session"
              and now - (row.last_used_at or row.created_at) > timedelta(minutes=idle_minutes)):
            reason = "idle"
            row.revoked_at = now
            app.audit.append(s, ctx, "session.end", "user", user.username, "ok",
                             {"token_id": row.id, "reason": "idle", "idle_minutes": idle_minutes})
        if reason:  # audited, a flood of bad tokens as counts (cfcore.access.authflood)
            aggregator(app).note(app, s, ctx, user.username if user else None, row.kind if row else "token",
                                 reason)
        else:
            assert row is not None and user is not None
            if touch and (row.last_used_at is None or now - row.last_used_at > timedelta(seconds=20)):
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


def _issue(s: Session, app: App, user: User, kind: str, name: str, ttl: timedelta) -> IssuedToken:
    token = (SESSION_PREFIX if kind == "session" else TOKEN_PREFIX) + secrets.token_urlsafe(32)
    now = app.clock.now()
    row = ApiToken(id=_new_id(), user_id=user.id, token_hash=_token_hash(token), kind=kind, name=name[:64],
                   created_at=now, expires_at=now + ttl)
    s.add(row)
    return IssuedToken(id=row.id, token=token, kind=kind, expires_at=row.expires_at)


def start_session(app: App, ctx: RequestContext) -> IssuedToken:
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


def end_session(app: App, ctx: RequestContext, token: str) -> bool:
    """Revoke the session or token ``token`` belongs to (log-out); audited ``session.end``."""
    with app.catalog.session() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.token_hash == _token_hash(token))).one_or_none()
        if row is None or row.user_id != ctx.actor.user_id or row.revoked_at is not None:
            return False
        row.revoked_at = app.clock.now()
        app.audit.append(s, ctx, "session.end", "user", ctx.actor.username, "ok", {"token_id": row.id})
    return True


def _may_manage(app: App, ctx: RequestContext, username: str, action: str) -> None:
    """Acting on oneself needs no role; acting on someone else needs ``users.manage``."""
    if normalise_username(username) != fold_username(ctx.actor.username):
        authorize(app, ctx, "users.manage", user_target(username), detail={"function": action})


def _only_own(app: App, ctx: RequestContext, username: str, action: str, what: str, hint: str) -> None:
    """Credentials are obtained only by their owner: refuse (audited) acting on anyone else."""
    if normalise_username(username) != fold_username(ctx.actor.username):
        app.audit.record(ctx, action, "user", normalise_username(username), "denied",
                         {"reason": f"nobody {what} for another user"})
        raise AccessDenied(f"{ctx.actor.username} may not {what} for {username}: only the user themself", hint=hint)


def _revoke_all(s: Session, app: App, user: User) -> int:
    """Revoke every live session and token of ``user``; returns how many."""
    now = app.clock.now()
    rows = s.scalars(select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))).all()
    for row in rows:
        row.revoked_at = now
    return len(rows)


def _origin(s: Session, token: str) -> ApiToken | None:
    return s.scalars(select(ApiToken).where(ApiToken.token_hash == _token_hash(token))).one_or_none()


def create_token(app: App, ctx: RequestContext, *, username: str | None = None, name: str = "api",
                 days: int | None = None, origin_token: str | None, password: str | None = None) -> IssuedToken:
    """An API token (shown once, stored hashed), for oneself only.

    Its life is capped by how the person proved who they are: ``origin_token`` is the session or
    token the request was authenticated with (None: authenticated by password in this very
    request, as the CLI does); a token minted from it lives no longer than it, unless
    ``password`` is given again (fresh re-authentication), which allows up to ``[access]
    token_max_days``."""
    username = normalise_username(username or ctx.actor.username)
    _only_own(app, ctx, username, "token.create", "creates a token",
              "each person creates their own token (cf users token / POST /api/auth/tokens)")
    max_days = _setting(app, "token_max_days", 365)
    days = min(_setting(app, "token_days", 90), max_days) if days is None else days
    if not 1 <= days <= max_days:
        raise InputError(f"token lifetime must be 1 to {max_days} days")
    if origin_token is not None and password is not None:
        actor = authenticate_password(app, username, password, host=ctx.host, ip=ctx.ip, function=ctx.function)
        if actor.user_id != ctx.actor.user_id:
            raise AuthenticationFailed(LOGIN_FAILED, hint=LOGIN_HINT)
        origin_token = None
    now = app.clock.now()
    with app.catalog.session() as s:
        user = _user(s, username)
        if user.disabled:
            raise ConflictError(f"user '{username}' is disabled")
        ttl = timedelta(days=days)
        capped_by = None
        if origin_token is not None:
            origin = _origin(s, origin_token)
            if origin is None or origin.user_id != user.id or origin.revoked_at is not None:
                raise AuthenticationFailed("the session this request came with is not valid", hint="log in again")
            if origin.expires_at is not None and now + ttl > origin.expires_at:
                ttl = origin.expires_at - now
                capped_by = origin.id
                if ttl <= timedelta(0):
                    raise AuthenticationFailed("the session this request came with has expired", hint="log in again")
        issued = _issue(s, app, user, "token", name or "api", ttl)
        app.audit.append(s, ctx, "token.create", "user", username, "ok",
                         {"token_id": issued.id, "name": name, "expires_at": issued.expires_at,
                          "capped_by": capped_by, "fresh_password": origin_token is None})
    return issued


def list_tokens(app: App, ctx: RequestContext, username: str | None = None) -> list[dict[str, Any]]:
    username = normalise_username(username or ctx.actor.username)
    _may_manage(app, ctx, username, "token.list")
    with app.catalog.session() as s:
        user = _user(s, username)
        rows = s.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at)).all()
        return [{"id": r.id, "kind": r.kind, "name": r.name, "created_at": r.created_at.isoformat(),
                 "expires_at": r.expires_at.isoformat() if r.expires_at else None,
                 "revoked": r.revoked_at is not None} for r in rows]


def revoke_token(app: App, ctx: RequestContext, token_id: str) -> None:
    with app.catalog.session() as s:
        row = s.get(ApiToken, token_id)
        owner = s.get(User, row.user_id) if row else None
    if row is None or owner is None:
        # no probing of token ids: who may not manage others is refused alike (audited)
        authorize(app, ctx, "users.manage", AccessTarget(kind="user", id=None), detail={"function": "token.revoke"})
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


def add_user(app: App, ctx: RequestContext, username: str, *, password: str | None = None,
             display_name: str | None = None) -> UserView:
    """Create a user without roles (``users.manage``). Roles follow through ``request_role_change``
    (four-eyes). A name that reads like an existing one (``Dora`` / ``dora`` / full-width
    ``ｄｏｒａ``) is refused: names are stored in their folded form (``fold_username``)."""
    username = normalise_username(username)
    authorize(app, ctx, "users.manage", user_target(username), detail={"function": "user.add"})
    pw_hash = hash_password(app, password) if password is not None else None
    with app.catalog.session() as s:
        if s.scalars(select(User.id).where(User.username == username)).first():
            raise ConflictError(f"user '{username}' exists already (names are compared ignoring case and width)")
        user = User(id=_new_id(), username=username, display_name=display_name, password_hash=pw_hash,
                    disabled=False, failed_logins=0, created_at=app.clock.now(), created_by=ctx.actor.username)
        s.add(user)
        s.flush()
        app.audit.append(s, ctx, "user.add", "user", username, "ok", {"user_id": user.id})
        return _view(user)


def bootstrap_user(app: App, ctx: RequestContext, username: str, password: str, role: str = "administrator",
                   display_name: str | None = None) -> UserView:
    """Create the first holder of ``role`` (administrator, dpo or compliance) on a new deployment:
    only while no user holds that role. Without it nobody could approve the first role change.

    ``ctx`` is the system context of the person at the server (``system_cli_context``); the audit
    entry ``user.bootstrap`` records who, from which PC and IP."""
    if role not in BOOTSTRAP_ROLES:
        raise InputError(f"--bootstrap creates the first {', '.join(BOOTSTRAP_ROLES)} only, not {role}")
    username = normalise_username(username)
    pw_hash = hash_password(app, password)
    why = f"a {role} exists"
    try:
        with app.catalog.session() as s:
            # The audit append locks the audit head: two bootstraps at once run one after the other
            # (a refusal rolls the entry back and records the refusal instead).
            app.audit.append(s, ctx, "user.bootstrap", "user", username, "ok", {"role": role})
            if bootstrap_closed(s) or _set_up(s):
                why = "bootstrap is closed"
                raise _Refused
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
            close_bootstrap_if_ready(s, app, ctx.actor.username)
            return _view(user)
    except _Refused:
        with app.catalog.session() as s:  # e.g. an older deployment, set up before the flag existed
            close_bootstrap_if_ready(s, app, ctx.actor.username)
        app.audit.record(ctx, "user.bootstrap", "user", username, "refused", {"role": role, "reason": why})
        if why == "bootstrap is closed":
            raise ConflictError("bootstrap is closed for good: this deployment has had an administrator and an "
                                "approver", hint="add users with 'cf users add' as an administrator; roles need "
                                "four-eyes") from None
        raise ConflictError(f"a user with role {role} exists already; --bootstrap works only for the first one",
                            hint="add users with 'cf users add' as an administrator; roles need four-eyes") from None


#: The roles that approve four-eyes requests in a new deployment (with an administrator, they end bootstrap).
APPROVER_ROLES = ("dpo", "compliance")
BOOTSTRAP_CLOSED = "bootstrap_closed"


def bootstrap_closed(s: Session) -> bool:
    """True once the deployment has had an administrator and an approver at the same time (a
    persisted flag: removing the roles later does not reopen bootstrap)."""
    return s.get(DeploymentFlag, BOOTSTRAP_CLOSED) is not None


def _set_up(s: Session) -> bool:
    return any_administrator(s) and any(any_with_role(s, r) for r in APPROVER_ROLES)


def close_bootstrap_if_ready(s: Session, app: App, by: str) -> bool:
    """Set the ``bootstrap_closed`` flag when an administrator and an approver exist; True when set."""
    if bootstrap_closed(s):
        return True
    if _set_up(s):
        s.add(DeploymentFlag(name=BOOTSTRAP_CLOSED, set_at=app.clock.now(), set_by=by[:64]))
        s.flush()
        return True
    return False


class _Refused(Exception):
    pass


def bootstrap_administrator(app: App, ctx: RequestContext, username: str, password: str,
                            display_name: str | None = None) -> UserView:
    return bootstrap_user(app, ctx, username, password, "administrator", display_name)


def show_user(app: App, ctx: RequestContext, username: str) -> UserView:
    """One user: oneself, or anyone with ``users.manage``."""
    _may_manage(app, ctx, username, "user.show")
    return get_user(app, username)


def list_users(app: App, ctx: RequestContext) -> list[UserView]:
    authorize(app, ctx, "users.manage", AccessTarget(kind="user"), detail={"function": "user.list"})
    with app.catalog.session() as s:
        users = [_view(u) for u in s.scalars(select(User).order_by(User.username))]
        app.audit.append(s, ctx, "user.list", "user", None, "ok", {"count": len(users)})
    return users


def set_disabled(app: App, ctx: RequestContext, username: str, disabled: bool = True) -> UserView:
    """Disable (or enable) a user; a disabled user cannot log in and their tokens stop working."""
    username = normalise_username(username)
    authorize(app, ctx, "users.manage", user_target(username),
              detail={"function": "user.disable" if disabled else "user.enable"})
    if disabled and username == ctx.actor.username:
        raise InputError("you cannot disable yourself", hint="ask another administrator")
    with app.catalog.session() as s:
        user = _user(s, username, lock=True)
        user.disabled = disabled
        revoked = 0
        if disabled:
            revoked = _revoke_all(s, app, user)  # enabling again brings none of them back
        else:
            user.failed_logins, user.locked_until = 0, None
        app.audit.append(s, ctx, "user.disable" if disabled else "user.enable", "user", username, "ok",
                         {"revoked_tokens": revoked} if disabled else None)
        return _view(user)


def unlock(app: App, ctx: RequestContext, username: str) -> UserView:
    username = normalise_username(username)
    authorize(app, ctx, "users.manage", user_target(username), detail={"function": "user.unlock"})
    with app.catalog.session() as s:
        user = _user(s, username, lock=True)
        user.failed_logins, user.locked_until = 0, None
        app.audit.append(s, ctx, "user.unlock", "user", username, "ok")
    throttle_for(app).forget_account(username)
    return get_user(app, username)


def set_password(app: App, ctx: RequestContext, username: str, password: str) -> None:
    """Set one's own password (nobody sets another user's: see ``reset_password``). Revokes all
    of the user's sessions and tokens."""
    username = normalise_username(username)
    _only_own(app, ctx, username, "user.password", "sets a password",
              "a forgotten password is reset in two halves: cf users reset NAME")
    pw_hash = hash_password(app, password)
    with app.catalog.session() as s:
        user = _user(s, username, lock=True)
        user.password_hash = pw_hash
        user.failed_logins, user.locked_until = 0, None
        revoked = _revoke_all(s, app, user)
        app.audit.append(s, ctx, "user.password", "user", username, "ok", {"revoked_tokens": revoked})


# --------------------------------------------------------------------------- password reset (split knowledge)


@attrs.frozen(kw_only=True)
class ResetHalf:
    """One half of a password reset code, shown once to the person who issued it."""

    username: str
    half: int  # 1: from the administrator, 2: from the approver
    code: str
    expires_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"username": self.username, "half": self.half, "code": self.code,
                "expires_at": self.expires_at.isoformat()}


def _may_confirm_reset(app: App, ctx: RequestContext, username: str) -> bool:
    target = AccessTarget(kind="approval", attributes={"action": "users.reset", "target_kind": "user",
                                                        "target_id": username})
    return decide(app, ctx, "approval.approve", target).decision is Decision.ALLOW


def reset_password(app: App, ctx: RequestContext, username: str) -> ResetHalf:
    """Issue one half of a password reset for ``username`` (never oneself).

    Half 1 comes from a person with ``users.manage`` (an administrator): it clears the password
    and revokes every session and token of the user at once. Half 2 comes from a second, different
    person whom the policy lets approve four-eyes requests (``approval.approve`` for
    ``users.reset``: DPO or compliance by default). The user needs both halves to set their own
    password (``complete_reset``), once, within ``[access] reset_hours``; neither person alone can.
    Each half is audited ``user.reset``."""
    username = normalise_username(username)
    if username == fold_username(ctx.actor.username):
        raise InputError("nobody resets their own password", hint="cf users password changes your own")
    hours = _setting(app, "reset_hours", 24)
    now = app.clock.now()
    with app.catalog.session() as s:
        user = _user(s, username)
        open_reset = s.scalars(select(PasswordReset).where(
            PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None), PasswordReset.expires_at > now,
            PasswordReset.half_b_hash.is_(None)).order_by(PasswordReset.created_at.desc())).first()
        reset_id = open_reset.id if open_reset else None
        first_by = open_reset.half_a_by_id if open_reset else None
    if reset_id is None:
        authorize(app, ctx, "users.manage", user_target(username), detail={"function": "user.reset"})
    elif first_by == ctx.actor.user_id:
        app.audit.record(ctx, "user.reset", "user", username, "denied",
                         {"reason": "the second half must come from a second person", "reset_id": reset_id})
        raise AccessDenied(f"{ctx.actor.username} issued the first half of this reset; the second half "
                           "must come from a second person", hint="a DPO or compliance officer runs cf users reset NAME")
    elif not _may_confirm_reset(app, ctx, username):
        app.audit.record(ctx, "user.reset", "user", username, "denied",
                         {"reason": "no approving role", "reset_id": reset_id})
        raise AccessDenied(f"{ctx.actor.username} may not issue the second half of a password reset",
                           hint="a DPO or compliance officer issues it")
    code = secrets.token_urlsafe(12)
    with app.catalog.session() as s:
        user = _user(s, username, lock=True)
        if reset_id is None:
            for old in s.scalars(select(PasswordReset).where(PasswordReset.user_id == user.id,
                                                              PasswordReset.used_at.is_(None))):
                old.used_at = now  # only the newest reset counts
            row = PasswordReset(id=_new_id(), user_id=user.id, half_a_hash=_token_hash(code),
                                half_a_by_id=ctx.actor.user_id, half_a_by=ctx.actor.username[:64], created_at=now,
                                expires_at=now + timedelta(hours=hours), used_at=None, failed_attempts=0)
            s.add(row)
            user.password_hash = None
            user.failed_logins, user.locked_until = 0, None
            half = 1
        else:
            found = s.get(PasswordReset, reset_id)
            if found is None or found.half_b_hash is not None or found.used_at is not None:
                raise ConflictError("the password reset changed meanwhile; try again")
            row = found
            row.half_b_hash = _token_hash(code)
            row.half_b_by_id, row.half_b_by = ctx.actor.user_id, ctx.actor.username[:64]
            half = 2
        revoked = _revoke_all(s, app, user)
        s.flush()
        app.audit.append(s, ctx, "user.reset", "user", username, "issued",
                         {"reset_id": row.id, "half": half, "expires_at": row.expires_at,
                          "revoked_tokens": revoked})
        return ResetHalf(username=username, half=half, code=code, expires_at=row.expires_at)


def complete_reset(app: App, username: str, code_1: str, code_2: str, new_password: str, *, host: str, ip: str,
                   function: str) -> None:
    """The user sets their own password with both halves of a reset (no login). Throttled like a
    log-in; the reset is used up; every session and token of the user is revoked again."""
    throttle = throttle_for(app)
    try:
        name: str | None = normalise_username(username)
    except InputError:
        name = None
    throttle.check(ip, name)
    check_password(app, new_password)
    with throttle.slots:
        pw_hash = _hasher(app).hash(new_password)
    now = app.clock.now()
    a, b = _token_hash((code_1 or "").strip()), _token_hash((code_2 or "").strip())
    done = False
    with app.catalog.session() as s:
        user = s.scalars(select(User).where(User.username == name).with_for_update()).one_or_none() if name else None
        ctx = _auth_ctx(user, host, ip, function)
        row = None
        if user is not None:
            row = s.scalars(select(PasswordReset).where(
                PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None),
                PasswordReset.expires_at > now).order_by(PasswordReset.created_at.desc())).first()
        reason: str | None
        if user is None or row is None or row.half_b_hash is None:
            reason = "no complete reset" if user is not None else "unknown user"
        elif not (secrets.compare_digest(row.half_a_hash, a) and secrets.compare_digest(row.half_b_hash, b)):
            row.failed_attempts += 1
            reason = "wrong code"
        elif user.disabled:
            reason = "disabled"
        else:
            reason = None
        if reason is None and user is not None and row is not None:
            row.used_at = now
            user.password_hash = pw_hash
            user.failed_logins, user.locked_until = 0, None
            revoked = _revoke_all(s, app, user)
            app.audit.append(s, ctx, "user.password", "user", user.username, "ok",
                             {"method": "reset", "reset_id": row.id, "revoked_tokens": revoked})
            done = True
        else:
            app.audit.append(s, ctx, "user.password", "user", user.username if user else None, "failed",
                             {"method": "reset", "reason": reason})
    if not done:
        throttle.failed(ip, name)
        raise AuthenticationFailed("password reset failed: wrong user name or codes, or the reset expired",
                                   hint="ask for a new reset (an administrator and a DPO or compliance officer)")


# --------------------------------------------------------------------------- roles (four-eyes)


def request_role_change(app: App, ctx: RequestContext, username: str, *, add: list[str] | tuple[str, ...] = (),
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


def _execute_role_change(app: App, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
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
        close_bootstrap_if_ready(s, app, ctx.actor.username)
        app.audit.append(s, ctx, "roles.change", "user", user.username, "ok",
                         {"before": before, "after": after, "advisor_id_before": before_advisor,
                          "advisor_id_after": user.advisor_id})
    return {"user": target_id, "roles": after, "advisor_id": user.advisor_id}



__all__ = [
    "AccessDenied", "IssuedToken", "ResetHalf", "UserView", "actor_for", "add_user", "authenticate_password",
    "authenticate_token", "bootstrap_administrator", "bootstrap_closed", "bootstrap_user", "complete_reset",
    "create_token", "end_session", "fold_username", "get_user", "list_tokens", "list_users", "normalise_username",
    "reset_password", "show_user", "request_role_change", "revoke_token", "set_disabled", "set_password",
    "start_session", "unlock",
]


LANGUAGES = ("de", "en")


def get_language(app: App, user_id: str) -> str | None:
    """The user's chosen web UI language, or None (then the browser's is used)."""
    with app.catalog.session() as s:
        user = s.get(User, user_id)
        return user.language if user is not None else None


def set_language(app: App, ctx: RequestContext, language: str) -> None:
    """Store the web UI language with the (own) user; audited ``user.language``."""
    if language not in LANGUAGES:
        raise InputError(f"language {language!r} is not available", hint="choose one of: " + ", ".join(LANGUAGES))
    with app.catalog.session() as s:
        user = s.get(User, ctx.actor.user_id)
        if user is None:
            raise NotFound("user vanished")
        user.language = language
        app.audit.append(s, ctx, "user.language", "user", user.username, "ok", {"language": language})
