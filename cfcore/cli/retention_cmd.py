"""``cf retention``: run the purge, show why a recording is kept, request changes (four-eyes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .output import emit

if TYPE_CHECKING:
    from ..app import App


def _purge_text(report: dict[str, Any]) -> str:
    verb = "would purge" if report["dry_run"] else "purged"
    lines = [f"{verb} {len(report['purged'])} recording(s) at {report['now']:%Y-%m-%d %H:%M} UTC"]
    for p in report["purged"]:
        lines.append(f"  {p['id']}  {p['rule']}  {p['reason']}")
    if report["pending"]:
        lines.append(f"pending {len(report['pending'])} (retried on the next run):")
        lines += [f"  {p['id']}  {p['error']}" for p in report["pending"]]
    if report["vetoed"]:
        lines.append(f"kept on a plugin's veto: {len(report['vetoed'])}")
        lines += [f"  {v['id']}  {v['reason']}" for v in report["vetoed"]]
    if report["locked"]:
        lines.append(f"kept while a store locks the media: {len(report['locked'])}")
        lines += [f"  {x['id']}  {'; '.join(x['locks'])}" for x in report["locked"]]
    if report["kept"]:
        lines.append(f"kept longer under changed rules: {len(report['kept'])}")
    if report["held"]:
        lines.append(f"expired but on legal hold: {len(report['held'])}")
    if report["assigned"]:
        lines.append(f"retention assigned to {report['assigned']} recording(s) that had none")
    if report["disposal_seq"]:
        lines.append(f"disposal log: audit entry {report['disposal_seq']}")
    return "\n".join(lines)


def _request(app: App, ctx: Any, action: str, target: str, reason: str, params: dict[str, Any]) -> dict[str, Any]:
    """File a four-eyes request: a second person approves it (``cf approve``), then the
    requester runs it (``cf execute``)."""
    from ..access import approvals

    approval_id = approvals.request(app, ctx, action, target, reason, params)
    return {"approval_id": approval_id, "action": action, "target": target, "status": "requested"}


def _requested_text(r: dict[str, Any]) -> str:
    return (f"requested {r['action']} for {r['target']}: approval {r['approval_id']}\n"
            f"a second person runs cf approve {r['approval_id']}; then you run cf execute {r['approval_id']}")


def register(cli: click.Group) -> None:
    @cli.group("retention", short_help="Retention periods, the purge (crypto-shredding) and Art. 17 erasure.")
    def retention() -> None:
        """Retention periods, the purge (crypto-shredding) and Art. 17 erasure."""

    @retention.command("run")
    @click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
    @click.option("--limit", type=click.IntRange(min=1), help="Purge at most this many recordings.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: on a terminal).")
    @click.pass_obj
    def run(state: Any, dry_run: bool, limit: int | None, as_json: bool, progress: bool | None) -> None:
        """Delete every expired recording that is not on legal hold; finish interrupted purges."""
        from hookspecs.types import AccessTarget

        from ..access.guard import authorize
        from ..retention import count_due, run_purge
        from .context import cli_context
        from .progress import progress as progress_bar

        app = state.app
        ctx = cli_context(app, "cli:retention.run")
        # the count is shown only to someone who may run the purge
        authorize(app, ctx, "retention.run", AccessTarget(kind="retention", attributes={"dry_run": dry_run}))
        total = count_due(app) if limit is None else min(limit, count_due(app))
        with progress_bar(total, "purging expired recordings", progress) as update:
            report = run_purge(app, ctx, dry_run=dry_run, limit=limit, progress=update).as_dict()
        emit(report, as_json, _purge_text(report))

    @retention.command("show")
    @click.argument("recording_id")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def show(state: Any, recording_id: str, as_json: bool) -> None:
        """Why a recording is kept until when: rules, overrides, holds, purge state."""
        from ..retention import retention_status
        from .context import cli_context

        app = state.app
        st = retention_status(app, cli_context(app, "cli:retention.show"), recording_id)
        lines = [f"{st['recording_id']}: {st['state']}, class {st['retention_class']}, kept until "
                 f"{st['retention_until']:%Y-%m-%d} ({st['retention_rule']})" if st["retention_until"]
                 else f"{st['recording_id']}: {st['state']}, no retention date"]
        for r in st.get("decision", {}).get("rules", []):
            lines.append(f"  rule {r['name']}: until {r['keep_until']:%Y-%m-%d}, {r['legal_basis']}"
                         + (" (statutory)" if r["statutory"] else ""))
        if st["legal_hold"]:
            lines.append("  on legal hold")
        emit(st, as_json, "\n".join(lines))

    def _change(state: Any, kind: str, recording_id: str, until: str | None, years: int | None, reason: str,
                as_json: bool) -> None:
        from ..retention import request_change
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, f"cli:retention.{kind}")
        approval_id = request_change(app, ctx, recording_id, kind, reason, until=until, years=years)
        r = {"approval_id": approval_id, "action": f"retention.{kind}", "target": recording_id, "status": "requested"}
        emit(r, as_json, _requested_text(r))

    @retention.command("extend")
    @click.argument("recording_id")
    @click.option("--until", help="New keep-until date (YYYY-MM-DD).")
    @click.option("--years", type=int, help="Keep this many years after the end of the call (e.g. 7).")
    @click.option("--reason", required=True, help="Why (e.g. the authority's request), at least 3 characters.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def extend(state: Any, recording_id: str, until: str | None, years: int | None, reason: str,
               as_json: bool) -> None:
        """Request a longer retention (four-eyes: retention.extend)."""
        _change(state, "extend", recording_id, until, years, reason, as_json)

    @retention.command("shorten")
    @click.argument("recording_id")
    @click.option("--until", help="New keep-until date (YYYY-MM-DD).")
    @click.option("--years", type=int, help="Keep this many years after the end of the call.")
    @click.option("--reason", required=True, help="Why, at least 3 characters (shown to the approver).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def shorten(state: Any, recording_id: str, until: str | None, years: int | None, reason: str,
                as_json: bool) -> None:
        """Request a shorter retention (four-eyes: retention.shorten); never below a legal duty."""
        _change(state, "shorten", recording_id, until, years, reason, as_json)

    @retention.command("erase", short_help="Request Art. 17 erasure of a recording no law requires us to keep (four-eyes).")
    @click.argument("recording_id")
    @click.option("--reason", required=True, help="The data subject's request (reference, not the name), at least 3 characters.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def erase(state: Any, recording_id: str, reason: str, as_json: bool) -> None:
        """Request Art. 17 erasure of a recording no law requires us to keep (four-eyes)."""
        from ..retention import request_erasure
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli:recording.erase")
        approval_id = request_erasure(app, ctx, recording_id, reason)
        r = {"approval_id": approval_id, "action": "recording.erase", "target": recording_id, "status": "requested"}
        emit(r, as_json, _requested_text(r))
