"""Four-eyes on the command line.

``cf request ACTION TARGET --reason TEXT [--param k=v ...]`` files a request (TARGET ``-`` when
the function has none, e.g. ``keys.rotate``); ``cf requests list|show``; a second person runs
``cf approve ID`` or ``cf reject ID``; the requester runs ``cf execute ID``. The same commands are
available as ``cf approvals list|show|approve|reject|execute``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .output import emit

if TYPE_CHECKING:
    from ..app import App


def _line(a: dict[str, Any]) -> str:
    votes = f"{len(a['votes'])}/{a['approvals_required']}"
    return (f"{a['id']}  {a['state']:<9} {a['action']:<18} {a['target_kind']}:{a['target_id'] or '-'}  "
            f"by {a['requester']}  votes {votes}  expires {a['expires_at'][:19]}")


def _params(pairs: tuple[str, ...]) -> dict[str, str]:
    from ..errors import InputError

    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--param {pair!r} must be KEY=VALUE")
        out[key.strip()] = value
    return out


def _do_list(state: Any, request_state: str | None, as_json: bool) -> None:
    from ..access import approvals
    from .context import cli_context

    app = state.app
    rows = [a.as_dict() for a in approvals.list_requests(app, cli_context(app, "cli.requests.list"), request_state)]
    emit(rows, as_json, "\n".join(_line(a) for a in rows) or "no requests")


def _do_show(state: Any, approval_id: str, as_json: bool) -> None:
    from ..access import approvals
    from .context import cli_context

    app = state.app
    a = approvals.get_request(app, cli_context(app, "cli.requests.show"), approval_id).as_dict()
    text = _line(a) + f"\nreason: {a['reason']}\nparams: {json.dumps(a['params'], sort_keys=True)}"
    if a["reviewer"]:
        text += f"\nreviewed by {a['reviewer']} at {a['reviewed_at']}" + (f": {a['review_note']}" if a["review_note"] else "")
    emit(a, as_json, text)


def _do_approve(state: Any, approval_id: str, as_json: bool) -> None:
    from ..access import approvals
    from .context import cli_context

    app = state.app
    r = approvals.approve(app, cli_context(app, "cli.approve"), approval_id)
    a = r.approval
    if not r.counted:
        text = f"you approved {a.id} before; counted once ({len(a.votes)}/{a.approvals_required} votes, {a.state})"
    elif a.state == "approved":
        text = f"approved {a.id}; {a.requester} runs it with cf execute {a.id}"
    else:
        text = f"vote recorded for {a.id} ({len(a.votes)}/{a.approvals_required}); another person must approve"
    emit(r.as_dict(), as_json, text)


def _do_reject(state: Any, approval_id: str, note: str | None, as_json: bool) -> None:
    from ..access import approvals
    from .context import cli_context

    app = state.app
    a = approvals.reject(app, cli_context(app, "cli.reject"), approval_id, note)
    emit(a.as_dict(), as_json, f"rejected {a.id}")


def _do_execute(state: Any, approval_id: str, out: str | None, as_json: bool) -> None:
    from ..access import approvals
    from ..errors import ConflictError
    from .context import cli_context

    app = state.app
    ctx = cli_context(app, "cli.execute")
    if approvals.get_request(app, ctx, approval_id).action == "dsar.export":
        from ..dsar.export import DOWNLOAD_HINT
        from ..errors import InputError

        # refused before the approval is used up: a copy for a person is never a file at rest
        raise InputError("copies of a person's recordings are never written to a file",
                         hint=DOWNLOAD_HINT.replace("{id}", approval_id))
    request = approvals.get_request(app, ctx, approval_id)
    if request.action == "recording.export":
        _execute_export(app, ctx, request, out, as_json)
        return
    result = approvals.execute(app, ctx, approval_id)
    if out:
        path = Path(out)
        if path.exists():
            raise ConflictError(f"{path} exists already", hint="choose another --out file")
        path.write_text(json.dumps(result, indent=2, sort_keys=True, default=str), encoding="utf-8")
        emit({"approval_id": approval_id, "out": str(path)}, as_json, f"executed {approval_id}; result in {path}")
        return
    if "url" in result and not as_json:
        click.echo(f"executed {approval_id}; link (valid until {result.get('expires_at')}):\n{result['url']}")
        return
    emit({"approval_id": approval_id, "result": result}, as_json,
         f"executed {approval_id}: " + json.dumps(result, sort_keys=True, default=str)[:2000])


def _execute_export(app: App, ctx: Any, request: Any, out: str | None, as_json: bool) -> None:
    """An approved ``recording.export``: the WAV goes to ``--out`` (or the ``out=`` the request
    named). Checked before the approval is used: a missing or existing file costs nothing."""
    from ..access import approvals
    from ..archive import export_recording
    from ..errors import ConflictError, InputError

    approvals.refuse_unless_requester(app, ctx, request.id)
    target = out or request.params.get("out")
    if not target:
        raise InputError(f"say where the exported WAV goes: cf execute {request.id} --out FILE.wav",
                         hint="the approval is still unused")
    path = Path(target)
    if path.exists():
        raise ConflictError(f"{path} exists already", hint="choose another --out file; the approval is still unused")

    def run(app_: Any, actx: Any, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
        return export_recording(app_, actx, target_id, path)

    result = approvals.execute(app, ctx, request.id, executor=run)
    emit({"approval_id": request.id, "out": str(path), **result}, as_json,
         f"executed {request.id}; recording {request.target_id} exported to {path} (SHA-256 {result.get('sha256')})")


def register(cli: click.Group) -> None:
    @cli.command("request")
    @click.argument("action")
    @click.argument("target")
    @click.option("--reason", required=True, help="Why, at least 3 characters (shown to the approver; audited).")
    @click.option("--param", "params", multiple=True, help="KEY=VALUE for the function (repeatable).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def request_(state: Any, action: str, target: str, reason: str, params: tuple[str, ...], as_json: bool) -> None:
        """Request a four-eyes function ACTION on TARGET ('-' for none)."""
        from ..access import approvals
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli.request")
        approval_id = approvals.request(app, ctx, action, target, reason, _params(params))
        a = approvals.get_request(app, ctx, approval_id).as_dict()
        emit(a, as_json, f"requested {action} on {a['target_kind']} {a['target_id'] or '-'}: approval {approval_id}\n"
                         f"a second person runs cf approve {approval_id}; then you run cf execute {approval_id} "
                         f"(before {a['expires_at'][:19]})")

    @cli.group("requests")
    def requests_group() -> None:
        """Four-eyes requests you made or may approve."""

    @requests_group.command("list")
    @click.option("--state", "request_state", type=click.Choice(["requested", "approved", "rejected", "expired",
                                                                  "executed"]), default=None)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def requests_list(state: Any, request_state: str | None, as_json: bool) -> None:
        """List requests, newest first."""
        _do_list(state, request_state, as_json)

    @requests_group.command("show")
    @click.argument("approval_id", metavar="ID")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def requests_show(state: Any, approval_id: str, as_json: bool) -> None:
        """Show one request with its reason and parameters."""
        _do_show(state, approval_id, as_json)

    @cli.command("approve")
    @click.argument("approval_id", metavar="ID")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def approve_(state: Any, approval_id: str, as_json: bool) -> None:
        """Approve a request as the second person."""
        _do_approve(state, approval_id, as_json)

    @cli.command("reject")
    @click.argument("approval_id", metavar="ID")
    @click.option("--note", default=None, help="Why (shown to the requester).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def reject_(state: Any, approval_id: str, note: str | None, as_json: bool) -> None:
        """Reject a request (or withdraw your own)."""
        _do_reject(state, approval_id, note, as_json)

    @cli.command("execute")
    @click.argument("approval_id", metavar="ID")
    @click.option("--out", default=None, type=click.Path(dir_okay=False),
                  help="recording.export: the WAV file to write (unless the request named out=). "
                       "Other functions: write the result (e.g. an audit export) as JSON to this new file.")
    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    @click.pass_obj
    def execute_(state: Any, approval_id: str, out: str | None, as_json: bool) -> None:
        """Run your approved request (only its requester). A run that fails (a file that exists, a
        store outage) leaves the request approved: fix the cause and run it again.

        \b
        Example:
          cf request recording.export REC_ID --reason "complaint 2026-117, customer asked for it"
          cf approve AID        (a second person)
          cf execute AID --out call.wav
        """
        _do_execute(state, approval_id, out, as_json)

    @cli.group("approvals")
    def approvals_group() -> None:
        """The same as cf requests / approve / reject / execute."""

    approvals_group.add_command(requests_list, "list")
    approvals_group.add_command(requests_show, "show")
    approvals_group.add_command(approve_, "approve")
    approvals_group.add_command(reject_, "reject")
    approvals_group.add_command(execute_, "execute")
