"""``cf sync``: a site hands its recordings to the archive; the archive imports them.

``cf sync [--wait S]`` (site), ``cf sync receive`` (archive), ``cf sync status``, ``cf sync keys
[--create]``. Sending and receiving need the ``sync.run`` permission (administrators); ``cf serve``
runs both as jobs (see docs/sites.md). Progress goes to stderr; the report of what moved to stdout.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from ..authority import system_context
from .output import emit

if TYPE_CHECKING:
    from ..app import App


def _authorize(app: App, function: str) -> Any:
    from hookspecs.types import AccessTarget

    from ..access.guard import authorize
    from .context import cli_context

    ctx = cli_context(app, function)
    authorize(app, ctx, "sync.run", AccessTarget(kind="sync"))
    return ctx


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    last = {"pct": -1}

    def show(name: str, done: int, total: int) -> None:
        pct = int(100 * done / total) if total else 100
        if pct != last["pct"]:
            last["pct"] = pct
            click.echo(f"\rcf sync: {pct:3d}% {done / 1e6:9.1f} / {total / 1e6:.1f} MB  {name[:40]:<40}", err=True,
                       nl=False)

    return show


def register(cli: click.Group) -> None:
    @cli.group("sync", invoke_without_command=True)
    @click.option("--wait", type=float, default=0.0, show_default=True,
                  help="Seconds to wait for the archive's receipt after sending.")
    @click.option("--progress/--no-progress", "show_progress", default=None,
                  help="Progress on stderr (default: when stderr is a terminal).")
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    @click.pass_context
    def sync(cctx: click.Context, wait: float, show_progress: bool | None, as_json: bool) -> None:
        """Send this site's recordings and audit trail to the archive (site role)."""
        if cctx.invoked_subcommand is not None:
            return
        import asyncio

        from ..sync.send import run_sync
        from ..sync.settings import require_role

        app = cctx.obj.app
        require_role(app.config, "site", "cf sync")
        ctx = _authorize(app, "cli.sync")
        enabled = sys.stderr.isatty() if show_progress is None else show_progress
        report = asyncio.run(run_sync(app, ctx, wait=wait, progress=_progress(enabled)))
        if enabled:
            click.echo("", err=True)
        lines = [f"site {report.site} -> {report.target}: batch {report.batch or '-'} {report.state}; "
                 f"{report.recordings} recordings, {report.audit_entries} audit entries, "
                 f"{report.objects_sent} objects sent ({report.bytes_sent} bytes), {report.objects_skipped} already there"]
        for h in report.handed_over:
            lines.append(f"  handed over batch {h['batch']}: {h['recordings']} recordings, "
                         f"{h['objects_deleted']} local objects deleted (receipt {h['receipt_sha256'][:16]})")
        for r in report.rejected:
            lines.append(f"  REJECTED batch {r['batch']}: {'; '.join(r['problems'])}")
        emit(report.as_dict(), as_json, "\n".join(lines))
        if report.rejected:
            cctx.exit(1)

    @sync.command("receive")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def receive(state: Any, as_json: bool) -> None:
        """Import the complete batches in the inbox and write receipts (archive role)."""
        from ..sync.overdue import check_overdue
        from ..sync.receive import process_inbox
        from ..sync.settings import require_role

        app = state.app
        require_role(app.config, "archive", "cf sync receive")
        ctx = _authorize(app, "cli.sync.receive")
        report = process_inbox(app, ctx)
        overdue = check_overdue(app)
        lines = [f"imported {len(report.imported)} batches, {len(report.repeated)} repeated receipts, "
                 f"{len(report.rejected)} rejected, {len(report.failed)} failed"]
        lines += [f"  {i['site']}/{i['batch']}: {i['recordings']} recordings, {i['audit_entries']} audit entries, "
                  f"{i['bytes']} bytes" for i in report.imported]
        lines += [f"  REJECTED {r['site']}/{r['batch']}: {r['problem']}" for r in report.rejected]
        lines += [f"  FAILED {f['site']}/{f['batch']}: {f['error']} (kept for the next run)" for f in report.failed]
        lines += [f"  OVERDUE site {o['site']}: last hand-over {o['last_import'] or 'never'}" for o in overdue]
        emit({**report.as_dict(), "overdue": overdue}, as_json, "\n".join(lines))
        if report.rejected or report.failed:
            click.get_current_context().exit(1)

    @sync.command("status")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def status(state: Any, as_json: bool) -> None:
        """Site: batches and stubs. Archive: last hand-over per site and each site's audit chain."""
        from ..sync.status import sync_status

        app = state.app
        ctx = _authorize(app, "cli.sync.status")
        data = sync_status(app, ctx)
        emit(data, as_json, data["text"])
        if not data.get("ok", True):
            click.get_current_context().exit(1)

    @sync.command("keys")
    @click.option("--create", is_flag=True, help="Create the missing sync keys (once, at set-up).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def keys(state: Any, create: bool, as_json: bool) -> None:
        """Print the public keys the other side needs (and create them with --create)."""
        from ..crypto import archive_seal
        from ..sync.settings import role

        app = state.app
        r = role(app.config)
        if r == "standalone":
            from ..errors import ConfigError

            raise ConfigError("a standalone deployment has no sync keys", hint='set [deployment] role = "site" or "archive"')
        created: list[str] = []
        if create:
            created = [str(p) for p in archive_seal.create_key_files(app.keys_dir, seal_key=r == "archive")]
            if created:
                app.audit.record(system_context("cli.sync.keys"), "sync.keys", "keys", r, "ok", {"created": [p.rsplit("/", 1)[-1] for p in created]})
        out = {"role": r, "site": app.config.site, "created": created,
               "signing_key": archive_seal.public_hex(archive_seal.signing_key(app.keys_dir))}
        if r == "archive":
            out["seal_key"] = archive_seal.public_hex(archive_seal.seal_private_key(app.keys_dir))
        lines = [f"{r} {app.config.site}"]
        if r == "archive":
            lines += [f"  on each site: [sync] archive_public_key = \"{out['seal_key']}\"",
                      f"               [sync] archive_signing_key = \"{out['signing_key']}\""]
        else:
            lines += [f"  on the archive: [sync.sites.{app.config.site}] signing_key = \"{out['signing_key']}\""]
        emit(out, as_json, "\n".join(lines))
