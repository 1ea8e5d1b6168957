"""``cf ingest``, ``cf recordings list|show``, ``cf export`` and ``cf archive sweep``.

Every read calls ``authorize`` (``recording.list`` / ``recording.show`` / ``recording.export``)
and writes an audit entry naming who read what from which PC.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import attrs
import click

from .output import emit


def _summary(rec: Any) -> dict[str, Any]:
    return {
        "id": rec.id, "started_at": rec.started_at.isoformat(), "duration": round(rec.duration, 3),
        "advisor_id": rec.advisor_id, "direction": rec.direction, "site": rec.site, "source": rec.source,
        "two_sided": bool(rec.two_sided), "state": rec.state, "legal_hold": bool(rec.legal_hold),
        "retention_until": rec.retention_until.isoformat() if rec.retention_until else None,
    }


def _detail(rec: Any) -> dict[str, Any]:
    from ..archive import row_digest

    d = _summary(rec)
    d.update({
        "ended_at": rec.ended_at.isoformat(), "pbx_call_id": rec.pbx_call_id, "channels": rec.channels,
        "sample_rate": rec.sample_rate, "codec": rec.codec, "retention_class": rec.retention_class,
        "retention_rule": rec.retention_rule, "created_at": rec.created_at.isoformat(),
        "segments": [{"start": s.start, "end": s.end, "mode": s.mode,
                      "start_window": [s.start_lo, s.start_hi] if s.start_lo is not None else None}
                     for s in rec.segments],
        "consents": [{"given_at": c.given_at.isoformat(), "offset": c.offset, "by_user": c.by_user,
                      "method": c.method, "applied_at": c.applied_at.isoformat() if c.applied_at else None}
                     for c in rec.consents],
        "media": [{"channel": m.channel, "store": m.store, "key": m.key, "size": m.size, "sha256": m.sha256,
                   "plain_size": m.plain_size, "codec": m.codec} for m in sorted(rec.media, key=lambda m: (m.channel, m.store))],
        "row_digest": row_digest(rec),
    })
    d["subjects"] = sorted(({"kind": s.kind, "pseudonym": s.pseudonym} for s in rec.subjects),
                           key=lambda x: (x["kind"], x["pseudonym"]))
    return d


def _parse_since(value: str | None) -> datetime | None:
    from ..errors import InputError

    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"--since {value!r} is not an ISO-8601 date or time", hint="e.g. 2026-11-01") from None
    if dt.tzinfo is None:
        from datetime import UTC

        dt = dt.replace(tzinfo=UTC)
    return dt


def register(cli: click.Group) -> None:
    @cli.command("ingest")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--agent", "agent", required=True, help="The advisor's (agent's) id at the PBX.")
    @click.option("--customer", "customers", multiple=True, help="Customer id (CRM); repeatable.")
    @click.option("--customer-number", "numbers", multiple=True, help="Customer phone number (+49…); repeatable.")
    @click.option("--consent-at", type=float, default=None,
                  help="Seconds from the start at which the customer consented to two-sided recording. "
                       "Without it only the advisor's channel is kept.")
    @click.option("--started", default=None, help="Start of the call, ISO-8601 with time zone (default: now minus its length).")
    @click.option("--site", default=None, help="Site name (default: deployment.site).")
    @click.option("--direction", type=click.Choice(["in", "out", "internal"]), default="in", show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def ingest(state: Any, file: str, agent: str, customers: tuple[str, ...], numbers: tuple[str, ...],
               consent_at: float | None, started: str | None, site: str | None, direction: str, as_json: bool) -> None:
        """Archive a WAV file (PCM16, G.711 µ-law or A-law; mono = advisor, stereo = advisor + customer)."""
        from hookspecs.types import AccessTarget

        from ..access.guard import authorize
        from ..errors import InputError
        from ..ingest import ingest_wav
        from .context import cli_context

        if not customers and not numbers:
            raise InputError("give the customer: --customer ID and/or --customer-number +49…")
        app = state.app
        ctx = cli_context(app, "cli.ingest")
        authorize(app, ctx, "recording.ingest", AccessTarget(kind="recording", owner_advisor_id=agent))
        rec_id = ingest_wav(app, file, advisor_id=agent, customer_ids=customers, customer_numbers=numbers,
                            consent_at=consent_at, started=started, site=site, direction=direction, source="cli",
                            ctx=ctx)
        emit({"id": rec_id}, as_json, rec_id)

    @cli.group("recordings")
    def recordings() -> None:
        """List and show archived recordings."""

    @recordings.command("list")
    @click.option("--agent", default=None, help="Only this advisor's recordings.")
    @click.option("--since", default=None, help="Only recordings started at or after this ISO-8601 date/time.")
    @click.option("--limit", type=int, default=1000, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def list_(state: Any, agent: str | None, since: str | None, limit: int, as_json: bool) -> None:
        """List recordings, newest first."""
        from sqlalchemy import select
        from sqlalchemy.orm import selectinload

        from ..access.guard import list_scope
        from ..db.models import Recording
        from ..states import LIVE_RECORDING_STATES
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli.recordings.list")
        since_dt = _parse_since(since)
        filters = {"agent": agent, "since": since}
        scope = list_scope(app, ctx, "recording.list", detail=filters)
        with app.catalog.session() as s:
            q = select(Recording).where(Recording.state.in_(LIVE_RECORDING_STATES)).options(
                selectinload(Recording.subjects)).order_by(Recording.started_at.desc(), Recording.id).limit(limit)
            if agent:
                q = q.where(Recording.advisor_id == agent)
            if scope is not None:
                q = q.where(Recording.advisor_id == scope)
            if since_dt:
                q = q.where(Recording.started_at >= since_dt)
            rows = [_summary(r) for r in s.scalars(q)]
            app.audit.append(s, ctx, "recording.list", "recording", None, "ok",
                             {**filters, "scope": scope or "all", "count": len(rows), "ids": [r["id"] for r in rows][:200]})
        lines = [f"{r['id']}  {r['started_at'][:19]}  {r['duration']:>9.1f}s  agent {r['advisor_id']:<10} "
                 f"{r['direction']:<3} {'both' if r['two_sided'] else 'advisor'}" for r in rows]
        emit(rows, as_json, "\n".join(lines) or "no recordings")

    @recordings.command("show")
    @click.argument("rec_id", metavar="ID")
    @click.option("--consent-proof", "proof", is_flag=True,
                  help="Also decrypt and show the consents' proofs (e.g. a dial-in opt-in); audited.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.option("--metadata", "with_evidence", is_flag=True,
                  help="Also the source's signalling evidence (SIPREC metadata XML and timeline; names and "
                       "numbers in clear: decided and audited like playback).")
    @click.pass_obj
    def show(state: Any, rec_id: str, proof: bool, as_json: bool, with_evidence: bool = False) -> None:
        """Show one recording's metadata (customers by pseudonym only)."""
        from ..archive import authorized_target, get_recording
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli.recordings.show")
        target = authorized_target(app, ctx, "recording.show", rec_id)
        with app.catalog.session() as s:
            rec = get_recording(s, rec_id)
            data = _detail(rec)
            app.audit.append(s, ctx, "recording.show", "recording", rec_id, "ok", {"row_digest": data["row_digest"]})
        lines = [f"{k}: {v}" for k, v in data.items() if k not in ("segments", "consents", "subjects", "media")]
        lines += [f"segment: {x['start']:.3f}-{x['end']:.3f} s {x['mode']}"
                  + (f" (switch within {x['start_window'][0]:.3f}-{x['start_window'][1]:.3f} s)" if x["start_window"] else "")
                  for x in data["segments"]]
        lines += [f"consent: at {x['offset']:.3f} s ({x['given_at']}) by {x['by_user']} via {x['method']}"
                  + (f", applied by the PBX {x['applied_at']}" if x["applied_at"] else "") for x in data["consents"]]
        if proof:
            from ..archive import consent_proofs

            data["consent_proofs"] = [c["proof"] for c in consent_proofs(app, ctx, rec_id)]
            lines += [f"consent proof: {', '.join(f'{k}={v}' for k, v in sorted(p.items()))}"
                      for p in data["consent_proofs"] if p]
        lines += [f"subject: {x['kind']} {x['pseudonym'][:16]}…" for x in data["subjects"]]
        lines += [f"media: {x['channel']} in {x['store']}: {x['key']} ({x['size']} bytes, sha256 {x['sha256'][:16]}…)"
                  for x in data["media"]]
        if with_evidence:
            from ..access.guard import authorize
            from ..capture.live import evidence_of

            # raw metadata names the customer in clear: the same decision as listening to the call
            authorize(app, ctx, "recording.play", target, detail={"function": "recording.metadata"})
            evidence = evidence_of(app, rec_id)
            with app.catalog.session() as s:
                app.audit.append(s, ctx, "recording.metadata", "recording", rec_id, "ok", {"items": len(evidence)})
            data["evidence"] = evidence
            lines.append("evidence: " + (json.dumps(evidence, indent=1, ensure_ascii=False) if evidence else "none"))
        emit(data, as_json, "\n".join(lines))

    @cli.command("export")
    @click.argument("rec_id", metavar="ID")
    @click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="WAV file to write (must not exist).")
    @click.option("--approval", "approval", default=None, help="Four-eyes approval id this export runs under.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def export(state: Any, rec_id: str, out: str, approval: str | None, as_json: bool) -> None:
        """Export a recording as a PCM16 WAV file, verified against what was stored.

        Export is four-eyes: request it (cf request recording.export ID), have it approved, then
        run this with --approval AID."""
        from ..archive import export_recording
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli.export")
        if approval:
            ctx = attrs.evolve(ctx, approval_id=approval)
        result = export_recording(app, ctx, rec_id, out)
        emit(result, as_json, f"exported {rec_id} to {out} ({result['bytes']} bytes, sha256 {result['sha256']})")

    @cli.group("archive")
    def archive() -> None:
        """Archive maintenance."""

    @archive.command("sweep")
    @click.option("--older-than", type=float, default=3600.0, show_default=True,
                  help="Only objects older than this many seconds (an ingest in progress is younger).")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_obj
    def sweep(state: Any, older_than: float, as_json: bool) -> None:
        """Delete store objects no catalog row names (left by an ingest that crashed before its commit)."""
        from hookspecs.types import AccessTarget

        from ..access.guard import authorize
        from ..ingest import sweep_orphans
        from .context import cli_context

        app = state.app
        ctx = cli_context(app, "cli.archive.sweep")
        authorize(app, ctx, "store.repair", AccessTarget(kind="store"))
        deleted = sweep_orphans(app, timedelta(seconds=older_than), ctx=ctx)
        emit({"deleted": deleted}, as_json, "\n".join(f"deleted {k}" for k in deleted) or "no orphans")
