"""``cf audit verify|checkpoint|list``: the tamper-evident audit trail.

Other areas may add subcommands with ``cli.commands["audit"].command(...)``.
"""

from __future__ import annotations

from typing import Any

import click

from .output import emit


def register(cli: click.Group) -> None:
    @cli.group("audit")
    def audit() -> None:
        """Verify, checkpoint and read the audit trail."""

    @audit.command("verify")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: on a terminal).")
    @click.option("--incremental", is_flag=True,
                  help="Start at the newest anchor instead of the first entry: a quick check of what was written "
                       "since (the anchored entry must still match the anchor). Only a full walk finds an older "
                       "entry that was changed or removed.")
    @click.option("--workers", type=click.IntRange(1, 64), default=None,
                  help="Processes that check ranges of a long chain at once (default: one per core).")
    @click.pass_obj
    def verify(state: Any, as_json: bool, progress: bool | None, incremental: bool, workers: int | None) -> None:
        """Check the keyed chain, the signed checkpoints and the newest anchor outside the database;
        exit 0 when intact, 7 naming the first bad entry, 3 when an audit key is missing.

        \b
        Examples:
          cf audit verify
          cf audit verify --incremental --json   # what was written since the newest anchor
          cf audit verify --workers 1 --no-progress"""
        from hookspecs.types import AccessTarget

        from ..access.guard import authorize
        from ..errors import IntegrityError
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli.audit.verify")
        authorize(app, ctx, "audit.read", AccessTarget(kind="audit"))
        from ..db.models import AuditHead
        from .progress import progress as progress_bar

        with app.catalog.session() as s:
            head = s.get(AuditHead, 1)
            total = head.seq if head else 0
        with progress_bar(total, "verifying the audit trail", progress) as update:
            result = app.audit.verify(progress=update, workers=workers, incremental=incremental)
        # recorded after the walk, so the verification itself is part of the trail
        outcome = {**result.as_dict(), "incremental": incremental}
        app.audit.record(ctx, "audit.verify", "audit", None, "ok" if result.ok else "failed", outcome)
        if result.ok:
            emit(outcome, as_json,
                 f"audit trail intact{' since the newest anchor' if incremental else ''}: {result.checked} entries, "
                 f"{result.checkpoints} checkpoints, "
                 + (f"newest anchor at entry {result.anchor_seq}" if result.anchor_seq else "no anchor yet"))
            return
        if as_json:
            emit(result.as_dict(), True)
        raise IntegrityError(f"audit trail broken at entry {result.first_bad_seq}: {result.problem}",
                             hint="possible manipulation: secure the database and inform the DPO")

    @audit.command("checkpoint")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def checkpoint(state: Any, as_json: bool) -> None:
        """Sign the current head of the chain (Ed25519)."""
        from hookspecs.types import AccessTarget

        from ..access.guard import authorize
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli.audit.checkpoint")
        authorize(app, ctx, "audit.read", AccessTarget(kind="audit"))
        app.audit.record(ctx, "audit.checkpoint", "audit", None, "ok")
        cp = app.audit.checkpoint()
        data = {"seq": cp.seq, "hash": cp.hash, "key_id": cp.key_id, "at": cp.at.isoformat()} if cp else None
        emit(data, as_json, f"checkpoint at entry {cp.seq} ({cp.hash[:16]}…)" if cp else "audit trail is empty")

    @audit.command("list")
    @click.option("--since-seq", type=int, default=0, help="Only entries after this sequence number.")
    @click.option("--action", default=None)
    @click.option("--target", "target_id", default=None)
    @click.option("--user", default=None)
    @click.option("--limit", type=int, default=1000, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def list_(state: Any, since_seq: int, action: str | None, target_id: str | None, user: str | None, limit: int,
              as_json: bool) -> None:
        """List audit entries (oldest first)."""
        from hookspecs.types import AccessTarget

        from ..access.guard import authorize
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli.audit.list")
        filters = {"since_seq": since_seq, "action": action, "target": target_id, "user": user, "limit": limit}
        authorize(app, ctx, "audit.read", AccessTarget(kind="audit"), detail=filters)
        rows = list(app.audit.entries(since_seq, limit=limit, action=action, target_id=target_id, user=user))
        app.audit.record(ctx, "audit.read", "audit", None, "ok", {**filters, "count": len(rows)})
        data = [{"seq": e.seq, "at": e.at.isoformat(), "user": e.user, "host": e.host, "ip": e.ip,
                 "function": e.function, "action": e.action, "target_kind": e.target_kind,
                 "target_id": e.target_id, "outcome": e.outcome, "detail": dict(e.detail)} for e in rows]
        lines = [f"{d['seq']:>7} {d['at'][:19]} {d['user']:<12} {d['host']:<16} {d['action']:<22} "
                 f"{d['target_kind']}:{d['target_id'] or '-'} {d['outcome']}" for d in data]
        emit(data, as_json, "\n".join(lines) or "no entries")
