"""``cf dsar``: the Art. 15 report on one person; ``cf dsar-export``: copies of their recordings
(four-eyes)."""

from __future__ import annotations

import hashlib
from typing import Any

import click

from .output import emit


def register(cli: click.Group) -> None:
    @cli.command("dsar", short_help="Write the Art. 15 access report of a person (JSON, HTML, PDF; de/en).")
    @click.option("--customer", "customers", multiple=True, help="The person's customer id (repeatable).")
    @click.option("--number", "numbers", multiple=True, help="The person's phone number, e.g. +49 30 1234567 (repeatable).")
    @click.option("--format", "fmt", type=click.Choice(["json", "html", "pdf"]), default="pdf", show_default=True)
    @click.option("--lang", type=click.Choice(["de", "en"]), default="de", show_default=True)
    @click.option("--out", required=True, type=click.Path(dir_okay=False), help="File to write (never overwritten).")
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
    @click.pass_obj
    def dsar(state: Any, customers: tuple[str, ...], numbers: tuple[str, ...], fmt: str, lang: str, out: str,
             as_json: bool) -> None:
        """Write the Art. 15 GDPR report on a person: stored and deleted recordings, purposes, legal
        bases, retention, consents, accesses, recipients and rights."""
        from ..dsar import produce_report, write_private
        from ..dsar.collect import report_ids
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli:dsar.report")
        data, report = produce_report(app, ctx, customer_ids=customers, numbers=numbers, fmt=fmt, lang=lang)
        path = write_private(out, data)
        summary = {"out": str(path), "format": fmt, "lang": lang, "stored": report["summary"]["stored"],
                   "deleted": report["summary"]["deleted"], "recordings": report_ids(report),
                   "sha256": hashlib.sha256(data).hexdigest()}
        emit(summary, as_json, f"wrote {path}: {summary['stored']} stored and {summary['deleted']} deleted recording(s)")

    @cli.command("dsar-export")
    @click.option("--customer", "customers", multiple=True, help="The person's customer id (repeatable).")
    @click.option("--number", "numbers", multiple=True, help="The person's phone number (repeatable).")
    @click.option("--reason", required=True, help="The request's reference, at least 3 characters (not the person's name).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def dsar_export(state: Any, customers: tuple[str, ...], numbers: tuple[str, ...], reason: str,
                    as_json: bool) -> None:
        """Request copies of a person's recordings for the person (four-eyes: dsar.export). Once
        approved, the requester downloads the zip over the API (POST /api/dsar/exports/ID); it is
        never written to a file on the server."""
        from ..dsar.export import request_export
        from .context import cli_context
        from .retention_cmd import _requested_text

        app = state.app
        ctx = cli_context(app, "cli:dsar.export")
        approval_id = request_export(app, ctx, customer_ids=customers, numbers=numbers, reason=reason)
        r = {"approval_id": approval_id, "action": "dsar.export", "target": "the person", "status": "requested"}
        emit(r, as_json, _requested_text(r))
