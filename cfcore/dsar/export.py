"""Copies of a person's recordings for the person (four-eyes ``dsar.export``).

The request names the person by pseudonyms only (the approvals table never sees a customer id or
number in clear). Once a second person approved, the requester executes it: every stored
recording of the person is exported as a verified WAV into one zip (mode 0600) with a
``manifest.json``; each recording's export is audited (``recording.export`` via ``dsar.export``)
so that it appears among the accesses of the next Art. 15 report.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hookspecs.types import RequestContext

from ..access import approvals
from ..db.models import Recording, RecordingSubject
from ..errors import ConflictError, InputError, NotFound
from ..states import LIVE_RECORDING_STATES
from .collect import subject_pseudonyms, subject_target

LIVE_STATES = LIVE_RECORDING_STATES


def request_export(app: Any, ctx: RequestContext, *, customer_ids: Iterable[str] = (), numbers: Iterable[str] = (),
                   reason: str, out: str | None = None) -> str:
    """File the four-eyes request; returns the approval id."""
    pseudonyms = subject_pseudonyms(app, customer_ids, numbers)
    params: dict[str, Any] = {"pseudonyms": ",".join(pseudonyms)}
    if out:
        params["out"] = str(Path(out).resolve())
    return approvals.request(app, ctx, "dsar.export", pseudonyms[0], reason, params)


def _recordings(app: Any, pseudonyms: list[str]) -> list[Recording]:
    with app.catalog.session() as s:
        ids = set(s.scalars(select(RecordingSubject.recording_id).where(RecordingSubject.pseudonym.in_(pseudonyms))))
        if not ids:
            return []
        return list(s.scalars(select(Recording).where(Recording.id.in_(ids), Recording.state.in_(LIVE_STATES))
                              .order_by(Recording.started_at)))


def build_copies(app: Any, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """Check the approval (``dsar.export``), build the zip in memory and audit every copy.
    Returns the zip and a summary (no file is written)."""
    from ..access.guard import authorize
    from ..archive import export_wav

    pseudonyms = [p for p in str(params.get("pseudonyms", "")).split(",") if p]
    if not pseudonyms or pseudonyms[0] != target_id:
        raise InputError("the export request does not name its person consistently")
    authorize(app, ctx, "dsar.export", subject_target(pseudonyms))
    recs = _recordings(app, pseudonyms)
    if not recs:
        raise NotFound("no stored recording of this person: nothing to copy",
                       hint="deleted recordings have no audio any more; the Art. 15 report lists them")
    manifest: list[dict[str, Any]] = []
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="cf-dsar-") as tmp, \
            zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rec in recs:
            name = f"{rec.started_at:%Y%m%d-%H%M%S}-{rec.id}.wav"
            info = export_wav(app, rec.id, Path(tmp) / name)
            zf.write(info["path"], name)
            Path(info["path"]).unlink()
            manifest.append({"file": name, "recording_id": rec.id, "started_at": rec.started_at.isoformat(),
                             "ended_at": rec.ended_at.isoformat(), "two_sided": bool(rec.two_sided),
                             "channels": info["channels"], "sha256": info["sha256"]})
        zf.writestr("manifest.json", json.dumps({"recordings": manifest, "approval_id": ctx.approval_id,
                                                 "created_at": app.clock.now().isoformat()}, indent=2))
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    with app.catalog.session() as s:
        for m in manifest:
            app.audit.append(s, ctx, "recording.export", "recording", m["recording_id"], "ok",
                             {"via": "dsar.export", "sha256": m["sha256"]})
        app.audit.append(s, ctx, "dsar.export", "subject", target_id, "ok",
                         {"recordings": [m["recording_id"] for m in manifest], "zip_sha256": digest,
                          "pseudonyms": pseudonyms})
    return data, {"recordings": len(manifest), "sha256": digest, "ids": [m["recording_id"] for m in manifest]}


def export_copies(app: Any, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """The registered executor of ``dsar.export`` (CLI: ``cf execute``): writes the zip to the
    requested ``out`` file (mode 0600), default ``<data_dir>/exports/dsar-<approval>.zip``."""
    from .files import write_private

    out = Path(str(params.get("out") or app.data_dir / "exports" / f"dsar-{ctx.approval_id}.zip"))
    if out.exists():  # refuse before any audio is decrypted
        raise ConflictError(f"{out} exists already", hint="request the export again with another --out file")
    data, summary = build_copies(app, ctx, target_id, params)
    path = write_private(out, data)
    return {"out": str(path), "recordings": summary["recordings"], "sha256": summary["sha256"]}


