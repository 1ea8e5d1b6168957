"""``cf store check`` and ``cf store repair``: every copy of every media object in every store.

Both need the ``store.repair`` permission (administrators) and are audited. Exit status: 0 when
everything is in order (check) or every problem was repaired (repair), 1 otherwise.
"""

from __future__ import annotations

import click

from .output import emit


def _scope(recordings: tuple[str, ...]) -> tuple[str, ...]:
    from ..errors import InputError

    for rec_id in recordings:
        if len(rec_id) != 32 or any(c not in "0123456789abcdef" for c in rec_id):
            raise InputError(f"not a recording id: {rec_id!r}", hint="32 hex characters, see 'cf recordings list'")
    return recordings


def _authorize(app, function: str):  # type: ignore[no-untyped-def]
    from hookspecs.types import AccessTarget

    from ..access.guard import authorize
    from .context import cli_context

    ctx = cli_context(app, function)
    authorize(app, ctx, "store.repair", AccessTarget(kind="store"))
    return ctx


def register(cli: click.Group) -> None:
    @cli.group("store")
    def store() -> None:
        """Media stores: check and repair the redundant copies."""

    @store.command("check")
    @click.option("--quick", is_flag=True, help="Compare sizes only; do not read and hash every copy.")
    @click.option("--recording", "recordings", multiple=True, metavar="ID", help="Only this recording (repeatable).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def check(state, quick: bool, recordings: tuple[str, ...], as_json: bool) -> None:  # type: ignore[no-untyped-def]
        """Check that every store holds a good, locked copy of every media object."""
        from ..storage import check_copies

        app = state.app
        ctx = _authorize(app, "cli.store.check")
        report = check_copies(app, ctx, content=not quick, recording_ids=_scope(recordings))
        lines = [f"checked {report.objects} objects, {report.copies} copies in "
                 f"{len(app.stores.names)} stores ({', '.join(app.stores.names)}): "
                 + ("all good" if report.ok else f"{len(report.problems)} problems")]
        for p in report.problems:
            lines.append(f"  {p.store:<12} {p.key}  {p.status}" + (f" ({p.detail})" if p.detail else ""))
        if not report.ok:
            lines.append("run 'cf store repair' to re-create missing or damaged copies and extend short locks")
        emit(report.as_dict(), as_json, "\n".join(lines))
        if not report.ok:
            click.get_current_context().exit(1)

    @store.command("repair")
    @click.option("--quick", is_flag=True, help="Find problems by size only (a damaged copy of equal size is missed).")
    @click.option("--recording", "recordings", multiple=True, metavar="ID", help="Only this recording (repeatable).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def repair(state, quick: bool, recordings: tuple[str, ...], as_json: bool) -> None:  # type: ignore[no-untyped-def]
        """Re-create missing or damaged copies from a verified healthy one and extend short locks."""
        from ..storage import repair_copies

        app = state.app
        ctx = _authorize(app, "cli.store.repair")
        report = repair_copies(app, ctx, content=not quick, recording_ids=_scope(recordings))
        lines = [f"checked {report.objects} objects: {len(report.repaired)} copies repaired, "
                 f"{len(report.failed)} failed, {len(report.skipped)} skipped"]
        for r in report.repaired:
            src = f" from {r['from']}" if r.get("from") else ""
            lines.append(f"  {r['store']:<12} {r['key']}  {r['problem']} -> {r['how']}{src}")
        for f in report.failed:
            lines.append(f"  {f['store']:<12} {f['key']}  {f['problem']}: FAILED {f['error']}")
        for k in report.skipped:
            lines.append(f"  {k['store']:<12} {k['key']}  {k['status']}: skipped ({k['detail']})")
        emit(report.as_dict(), as_json, "\n".join(lines))
        if not report.ok:
            click.get_current_context().exit(1)
