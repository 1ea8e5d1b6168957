"""``cf transcribe``: run the transcription worker by hand (``cf serve`` runs it as a job)."""

from __future__ import annotations

from typing import Any

import click

from .output import emit


def _text(results: list[dict[str, Any]]) -> str:
    if not results:
        return "nothing to transcribe"
    lines = []
    for r in results:
        line = f"{r['id']}: {r['state']} ({r.get('language')}"
        if r.get("engine"):
            line += f", {r['engine']}, {r['audio_seconds']} s audio in {r['cpu_seconds']} s CPU"
        line += ")"
        if r.get("error"):
            line += f": {r['error']}"
        lines.append(line)
    return "\n".join(lines)


def register(cli: click.Group) -> None:
    @cli.group("transcribe")
    def transcribe() -> None:
        """Transcripts of consented recordings (speech to text through the engine plugins)."""

    @transcribe.command("run")
    @click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many recordings.")
    @click.option("--recording", "recordings", multiple=True, help="Only this recording (repeatable; redoes it).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def run(state: Any, limit: int | None, recordings: tuple[str, ...], as_json: bool) -> None:
        """Transcribe pending recordings now (the operator role of the archive: recording.ingest)."""
        from hookspecs.types import AccessTarget

        from .. import transcripts
        from ..access.guard import authorize
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli:transcribe.run")
        authorize(app, ctx, "recording.ingest", AccessTarget(kind="recording", attributes={"transcribe": True}),
                  audit_allowed=True)
        results = transcripts.run(app, limit=limit, recording_ids=list(recordings) or None)
        emit(results, as_json, _text(results))
