"""``cf hold``: legal holds. Setting one is immediate (compliance, DPO); releasing is four-eyes."""

from __future__ import annotations

from typing import Any

import click

from .output import emit


def register(cli: click.Group) -> None:
    @cli.group("hold")
    def hold() -> None:
        """Legal holds: a held recording is never deleted."""

    @hold.command("set")
    @click.argument("recording_id")
    @click.option("--reason", required=True, help="Why (case or matter reference), at least 1 character.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def set_(state: Any, recording_id: str, reason: str, as_json: bool) -> None:
        """Put a recording on legal hold."""
        from ..retention import set_hold
        from .context import cli_context

        app = state.app
        r = set_hold(app, cli_context(app, "cli:hold.set"), recording_id, reason)
        text = f"recording {recording_id} is on legal hold"
        if r["lock_problems"]:
            text += "\nwarning: a store could not set its legal hold: " + "; ".join(r["lock_problems"])
        emit(r, as_json, text)

    @hold.command("release")
    @click.argument("recording_id")
    @click.option("--reason", required=True, help="Why the hold ends, at least 3 characters (shown to the approver).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def release(state: Any, recording_id: str, reason: str, as_json: bool) -> None:
        """Request the release of a legal hold (four-eyes: hold.release)."""
        from ..archive import get_recording
        from ..errors import ConflictError
        from .context import cli_context
        from .retention_cmd import _request, _requested_text

        app = state.app
        ctx = cli_context(app, "cli:hold.release")
        with app.catalog.session() as s:
            if not get_recording(s, recording_id).legal_hold:
                raise ConflictError(f"recording {recording_id} is not on legal hold")
        r = _request(app, ctx, "hold.release", recording_id, reason, {"reason": reason})
        emit(r, as_json, _requested_text(r))

    @hold.command("list")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def list_(state: Any, as_json: bool) -> None:
        """Active legal holds."""
        from ..retention import list_holds
        from .context import cli_context

        app = state.app
        rows = list_holds(app, cli_context(app, "cli:hold.list"))
        emit(rows, as_json, "\n".join(f"{h['recording_id']}  since {h['set_at']:%Y-%m-%d}  by {h['set_by']}  {h['reason']}"
                                      for h in rows) or "no active legal holds")
