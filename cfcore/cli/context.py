"""Who runs a CLI command, from which PC and IP: every command records it.

A person logs in for each command with ``--user NAME`` (or ``CF_USER``) and ``CF_PASSWORD``
(prompted for when unset and the terminal is interactive), or with an API token in ``CF_TOKEN``.
A failed login raises ``AuthenticationFailed`` and is audited; repeated failures delay the next
attempt, they never lock the account (``cfcore.access.throttle``).

The only way around the login is ``system_cli_context``: for the system and bootstrap paths
(``cf init``, ``cf users add --bootstrap``, ``cf serve``). It grants no role, so the access policy
allows it nothing; it only names the operating-system user, host and IP in the audit trail.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

import click

from hookspecs.types import Actor, RequestContext

from ..errors import AuthenticationFailed

if TYPE_CHECKING:
    from ..app import App


def local_host_and_ip() -> tuple[str, str]:
    host = socket.gethostname() or "localhost"
    try:
        # The address this PC would use to reach the network (no packet is sent for UDP connect).
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("127.0.0.1", 9))
            ip = s.getsockname()[0]
    except OSError:
        ip = "127.0.0.1"
    try:
        resolved = socket.gethostbyname(host)
        if not resolved.startswith("127."):
            ip = resolved
    except OSError:
        pass
    return host, ip


def _state() -> Any:
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().obj if ctx is not None else None


def cli_user() -> str | None:
    """The user name given with ``--user`` or ``CF_USER``."""
    state = _state()
    return getattr(state, "user", None) or os.environ.get("CF_USER") or None


def _password(user: str) -> str:
    password = os.environ.get("CF_PASSWORD")
    if password is not None:
        return password
    if sys.stdin is not None and sys.stdin.isatty():
        return str(click.prompt(f"password for {user}", hide_input=True, err=True))
    raise AuthenticationFailed(f"no password for {user}", hint="set CF_PASSWORD or run cf in a terminal")


def authenticate_cli(app: App, function: str) -> Actor:
    """Log in the person at the terminal (cached for the rest of the command)."""
    from ..access.users import authenticate_password, authenticate_token, fold_username

    state = _state()
    user = cli_user()
    token = os.environ.get("CF_TOKEN") or None
    key = (id(app), user, bool(token))
    cache = getattr(state, "_cf_actors", None) if state is not None else None
    if cache is not None and key in cache:
        return cache[key]
    host, ip = local_host_and_ip()
    if user and (os.environ.get("CF_PASSWORD") is not None or not token):
        actor = authenticate_password(app, user, _password(user), host=host, ip=ip, function=function)
    elif token:
        actor = authenticate_token(app, token, host=host, ip=ip, function=function)
        if user and actor.username != fold_username(user):
            raise AuthenticationFailed(f"CF_TOKEN belongs to another user than {user}")
    else:
        raise AuthenticationFailed("not logged in",
                                   hint="pass --user NAME (or set CF_USER) and CF_PASSWORD, or set CF_TOKEN")
    if state is not None:
        if cache is None:
            cache = {}
            try:
                state._cf_actors = cache
            except AttributeError:
                cache = None
        if cache is not None:
            cache[key] = actor
    return actor


def cli_origin_token() -> str | None:
    """The API token this command logged in with, or None when it logged in with a password
    (a token minted by the command then lives no longer than this one: see ``create_token``)."""
    user = cli_user()
    token = os.environ.get("CF_TOKEN") or None
    if user and (os.environ.get("CF_PASSWORD") is not None or not token):
        return None
    return token


def cli_context(app: App, function: str) -> RequestContext:
    """The request context of the logged-in person at the terminal (raises
    ``AuthenticationFailed`` when the login fails)."""
    actor = authenticate_cli(app, function)
    host, ip = local_host_and_ip()
    return RequestContext(actor=actor, host=host, ip=ip, function=function)


def system_cli_context(function: str) -> RequestContext:
    """The escape for system and bootstrap paths only (``cf init``, ``cf users add --bootstrap``,
    ``cf serve``): no login, no roles; records ``system:<os user>`` with this PC's host and IP."""
    host, ip = local_host_and_ip()
    try:
        os_user = getpass.getuser()
    except Exception:  # no user name in a bare container
        os_user = str(os.getuid())
    actor = Actor(user_id="system", username=f"system:{os_user}"[:64], roles=frozenset())
    return RequestContext(actor=actor, host=host, ip=ip, function=function)
