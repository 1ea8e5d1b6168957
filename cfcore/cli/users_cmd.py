"""``cf users add|list|show|disable|enable|unlock|roles|password|reset|reset-password|token|tokens|revoke``.

Roles are never granted directly: ``cf users add NAME --role R`` and ``cf users roles NAME --add R``
file a four-eyes ``roles.change`` request that a second person (DPO or compliance) approves and the
requester then runs with ``cf execute ID``. The one exception is setting up a new deployment:
``cf users add NAME --role administrator --bootstrap`` creates the first administrator (and
``--role dpo`` / ``--role compliance`` the first approver), each refused once a user holds that role,
and all refused for good once the deployment has had an administrator and an approver.

Nobody obtains another user's credentials: ``cf users token`` and ``cf users password`` act on
yourself only. A forgotten password: an administrator runs ``cf users reset NAME`` (half 1 of the
code; the user's password, sessions and tokens end at once), a DPO or compliance officer runs the
same command (half 2); each hands their half to the user, who runs ``cf users reset-password NAME``.

New passwords come from ``--password-stdin`` (one line), ``$CF_NEW_PASSWORD``, or a prompt.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ..access.roles import ROLES
from .output import emit


def _new_password(from_stdin: bool, required: bool) -> str | None:
    from ..errors import InputError

    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InputError("no password on standard input")
        return line
    if os.environ.get("CF_NEW_PASSWORD"):
        return os.environ["CF_NEW_PASSWORD"]
    if sys.stdin is not None and sys.stdin.isatty():
        return str(click.prompt("new password", hide_input=True, confirmation_prompt=True, err=True))
    if required:
        raise InputError("a password is required", hint="--password-stdin, $CF_NEW_PASSWORD or a terminal")
    return None


def _user_line(u: dict[str, Any]) -> str:
    flags = []
    if u["disabled"]:
        flags.append("disabled")
    if u["locked_until"]:
        flags.append(f"locked until {u['locked_until'][:19]}")
    return (f"{u['username']:<20} {','.join(u['roles']) or '-':<36} advisor {u['advisor_id'] or '-':<10} "
            f"{' '.join(flags)}").rstrip()




def register(cli: click.Group) -> None:
    @cli.group("users")
    def users_group() -> None:
        """Users, roles (four-eyes), passwords and API tokens."""

    @users_group.command("add")
    @click.argument("username")
    @click.option("--role", "roles", multiple=True, type=click.Choice(list(ROLES)), help="Role to request (repeatable); granted after four-eyes.")
    @click.option("--advisor-id", default=None, help="The user's agent id at the PBX (advisors).")
    @click.option("--display-name", default=None)
    @click.option("--reason", default=None, help="Reason for the role request, at least 3 characters (default: new user).")
    @click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
    @click.option("--bootstrap", is_flag=True,
                  help="Create the first administrator (or dpo, compliance) of a new deployment; no login; "
                       "refused once a user holds that role.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def add(state: Any, username: str, roles: tuple[str, ...], advisor_id: str | None, display_name: str | None,
            reason: str | None, password_stdin: bool, bootstrap: bool, as_json: bool) -> None:
        """Add a user. Roles are requested (four-eyes), except for --bootstrap."""
        from ..access import users
        from ..errors import InputError
        from .context import cli_context, system_cli_context

        app = state.app
        if bootstrap:
            if len(roles) != 1 or roles[0] not in users.BOOTSTRAP_ROLES or advisor_id:
                raise InputError("--bootstrap creates the first holder of one role: "
                                 + ", ".join(users.BOOTSTRAP_ROLES),
                                 hint="cf users add NAME --role administrator --bootstrap")
            password = _new_password(password_stdin, required=True)
            view = users.bootstrap_user(app, system_cli_context("cli.users.bootstrap"), username,
                                        password or "", roles[0], display_name)
            emit(view.as_dict(), as_json, f"created {roles[0]} {view.username}")
            return
        ctx = cli_context(app, "cli.users.add")
        password = _new_password(password_stdin, required=False)
        view = users.add_user(app, ctx, username, password=password, display_name=display_name)
        data: dict[str, Any] = {"user": view.as_dict(), "approval_id": None}
        text = f"added user {view.username}" + ("" if password else " (no password yet: cf users password)")
        if roles or advisor_id:
            data["approval_id"] = users.request_role_change(
                app, ctx, username, add=roles, advisor_id=advisor_id if advisor_id is not None else users.UNSET,
                reason=reason or f"new user {view.username}")
            text += (f"\nroles requested: approval {data['approval_id']}; a second person runs "
                     f"cf approve {data['approval_id']}, then you run cf execute {data['approval_id']}")
        emit(data, as_json, text)

    @users_group.command("list")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def list_(state: Any, as_json: bool) -> None:
        """List users with roles, advisor id and lock state (users.manage)."""
        from ..access import users
        from .context import cli_context

        app = state.app
        rows = [u.as_dict() for u in users.list_users(app, cli_context(app, "cli.users.list"))]
        emit(rows, as_json, "\n".join(_user_line(u) for u in rows) or "no users")

    @users_group.command("show")
    @click.argument("username", required=False)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def show(state: Any, username: str | None, as_json: bool) -> None:
        """Show yourself, or another user (users.manage)."""
        from ..access import users
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli.users.show")
        u = users.show_user(app, ctx, username or ctx.actor.username).as_dict()
        emit(u, as_json, _user_line(u))

    def _simple(name: str, fn_name: str, doc: str, **kwargs: Any) -> None:
        @users_group.command(name, help=doc)
        @click.argument("username")
        @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
        @click.pass_obj
        def cmd(state: Any, username: str, as_json: bool) -> None:
            from ..access import users
            from .context import cli_context

            app = state.app
            u = getattr(users, fn_name)(app, cli_context(app, f"cli.users.{name}"), username, **kwargs).as_dict()
            emit(u, as_json, _user_line(u))

    _simple("disable", "set_disabled", "Disable a user: no login, tokens stop (users.manage).", disabled=True)
    _simple("enable", "set_disabled", "Enable a disabled user again (users.manage).", disabled=False)
    _simple("unlock", "unlock", "End a lock-out after failed logins (users.manage).")

    @users_group.command("roles")
    @click.argument("username")
    @click.option("--add", "add", multiple=True, type=click.Choice(list(ROLES)), help="Role to add (repeatable).")
    @click.option("--remove", "remove", multiple=True, type=click.Choice(list(ROLES)), help="Role to remove (repeatable).")
    @click.option("--advisor-id", default=None, help="Set the agent id ('' removes it).")
    @click.option("--reason", default=None, help="Why, at least 3 characters (required for a change).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def roles(state: Any, username: str, add: tuple[str, ...], remove: tuple[str, ...], advisor_id: str | None,
              reason: str | None, as_json: bool) -> None:
        """Show a user's roles, or request a change (four-eyes roles.change)."""
        from ..access import users
        from ..errors import InputError
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli.users.roles")
        if not add and not remove and advisor_id is None:
            u = users.show_user(app, ctx, username).as_dict()
            emit({"username": u["username"], "roles": u["roles"], "advisor_id": u["advisor_id"]}, as_json,
                 f"{u['username']}: {', '.join(u['roles']) or 'no roles'}; advisor id {u['advisor_id'] or '-'}")
            return
        if not reason:
            raise InputError("a role change needs --reason TEXT")
        approval_id = users.request_role_change(app, ctx, username, add=add, remove=remove,
                                                advisor_id=advisor_id if advisor_id is not None else users.UNSET,
                                                reason=reason)
        emit({"approval_id": approval_id, "state": "requested"}, as_json,
             f"requested roles.change for {username}: approval {approval_id}\n"
             f"a second person (dpo or compliance) runs cf approve {approval_id}; then you run cf execute {approval_id}")

    @users_group.command("password")
    @click.argument("username", required=False)
    @click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
    @click.pass_obj
    def password(state: Any, username: str | None, password_stdin: bool) -> None:
        """Set your own password (ends all your sessions and tokens). Another user's: cf users reset."""
        from ..access import users
        from ..errors import AuthenticationFailed
        from .context import cli_context, cli_origin_token

        app = state.app
        ctx = cli_context(app, "cli.users.password")
        if cli_origin_token() is not None:  # a copied token must not be enough to take the account over
            raise AuthenticationFailed("changing your password needs your current password, not a token",
                                       hint="log in with CF_USER and CF_PASSWORD")
        new = _new_password(password_stdin, required=True)
        users.set_password(app, ctx, username or ctx.actor.username, new or "")
        click.echo(f"password set for {username or ctx.actor.username}")

    @users_group.command("reset")
    @click.argument("username")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def reset(state: Any, username: str, as_json: bool) -> None:
        """Issue one half of a password reset: first an administrator, then a DPO or compliance officer.

        The code is printed once; hand it to the user yourself (not through the other person)."""
        from ..access import users
        from .context import cli_context

        app = state.app
        half = users.reset_password(app, cli_context(app, "cli.users.reset"), username)
        nxt = ("a DPO or compliance officer now runs cf users reset " + half.username if half.half == 1
               else f"{half.username} runs cf users reset-password {half.username} with both halves")
        emit(half.as_dict(), as_json, f"half {half.half} of the reset code for {half.username}: {half.code}\n"
                                      f"valid until {half.expires_at.isoformat()[:19]}; {nxt}")

    @users_group.command("reset-password")
    @click.argument("username")
    @click.option("--stdin", "from_stdin", is_flag=True,
                  help="Read three lines from standard input: half 1, half 2, the new password.")
    @click.pass_obj
    def reset_password(state: Any, username: str, from_stdin: bool) -> None:
        """Set your own password with both halves of a reset (no login needed)."""
        from ..access import users
        from ..errors import InputError
        from .context import local_host_and_ip

        app = state.app
        if from_stdin:
            lines = [sys.stdin.readline().rstrip("\r\n") for _ in range(3)]
        elif sys.stdin is not None and sys.stdin.isatty():
            lines = [str(click.prompt("half 1 (from the administrator)", hide_input=True, err=True)),
                     str(click.prompt("half 2 (from the DPO or compliance)", hide_input=True, err=True)),
                     str(click.prompt("new password", hide_input=True, confirmation_prompt=True, err=True))]
        else:
            raise InputError("the codes and the new password are needed", hint="--stdin or a terminal")
        if not all(lines):
            raise InputError("give half 1, half 2 and the new password, one a line")
        host, ip = local_host_and_ip()
        users.complete_reset(app, username, lines[0], lines[1], lines[2], host=host, ip=ip,
                             function="cli.users.reset-password")
        click.echo(f"password set for {users.normalise_username(username)}; log in with it")

    @users_group.command("token")
    @click.argument("username", required=False)
    @click.option("--name", default="cli", show_default=True, help="A label for the token.")
    @click.option("--days", type=int, default=None, help="Lifetime in days (default [access] token_days).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def token(state: Any, username: str | None, name: str, days: int | None, as_json: bool) -> None:
        """Create your own API token (printed once; use it as CF_TOKEN or Authorization: Bearer).

        Logged in with CF_TOKEN, the new token lives no longer than that one."""
        from ..access import users
        from .context import cli_context, cli_origin_token

        app = state.app
        issued = users.create_token(app, cli_context(app, "cli.users.token"), username=username, name=name, days=days,
                                    origin_token=cli_origin_token())
        emit(issued.as_dict(), as_json, issued.token)

    @users_group.command("tokens")
    @click.argument("username", required=False)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def tokens(state: Any, username: str | None, as_json: bool) -> None:
        """List tokens and sessions (no secrets)."""
        from ..access import users
        from .context import cli_context

        app = state.app
        rows = users.list_tokens(app, cli_context(app, "cli.users.tokens"), username)
        emit(rows, as_json, "\n".join(f"{r['id']}  {r['kind']:<7} {r['name']:<12} expires {r['expires_at'] or '-'}"
                                      f"{'  revoked' if r['revoked'] else ''}" for r in rows) or "no tokens")

    @users_group.command("revoke")
    @click.argument("token_id")
    @click.pass_obj
    def revoke(state: Any, token_id: str) -> None:
        """Revoke a token or session by its id."""
        from ..access import users
        from .context import cli_context

        app = state.app
        users.revoke_token(app, cli_context(app, "cli.users.revoke"), token_id)
        click.echo(f"revoked {token_id}")
