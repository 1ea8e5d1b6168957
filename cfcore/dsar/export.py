"""Copies of a person's recordings for the person (four-eyes ``dsar.export``).

The request names the person by pseudonyms only (the approvals table never sees a customer id or
number in clear). Once a second person approved, the requester executes it over the API
(``POST /api/dsar/exports/{id}`` or ``POST /api/approvals/{id}/execute``): every stored recording
of the person is decrypted, verified and written as a WAV straight into one zip built in memory,
with a ``manifest.json``, and the zip is the HTTP response to that requester. No clear copy is
ever written to a file on the server (no temporary file either); ``cf execute`` refuses, before the
approval is used up. Each recording's export is audited (``recording.export`` via ``dsar.export``)
so that it appears among the accesses of the next Art. 15 report.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hookspecs.types import RequestContext

from ..access import approvals
from ..db.models import Recording, RecordingSubject
from ..errors import InputError, NotFound
from ..states import LIVE_RECORDING_STATES
from .collect import subject_pseudonyms, subject_target

if TYPE_CHECKING:
    from ..app import App

LIVE_STATES = LIVE_RECORDING_STATES


#: how the requester gets the copies (the only way)
DOWNLOAD_HINT = "download it as the requester: POST /api/dsar/exports/{id} (or /api/approvals/{id}/execute)"


def request_export(app: App, ctx: RequestContext, *, customer_ids: Iterable[str] = (), numbers: Iterable[str] = (),
                   reason: str) -> str:
    """File the four-eyes request; returns the approval id."""
    pseudonyms = subject_pseudonyms(app, customer_ids, numbers)
    params: dict[str, Any] = {"pseudonyms": ",".join(pseudonyms)}
    return approvals.request(app, ctx, "dsar.export", pseudonyms[0], reason, params)


def _recordings(app: App, pseudonyms: list[str]) -> list[Recording]:
    with app.catalog.session() as s:
        ids = set(s.scalars(select(RecordingSubject.recording_id).where(RecordingSubject.pseudonym.in_(pseudonyms))))
        if not ids:
            return []
        return list(s.scalars(select(Recording).where(Recording.id.in_(ids), Recording.state.in_(LIVE_STATES))
                              .order_by(Recording.started_at)))


def build_copies(app: App, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """Check the approval (``dsar.export``), build the zip in memory and audit every copy.
    Returns the zip and a summary (no file is written)."""
    from ..access.guard import authorize
    from ..archive import WavView

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
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rec in recs:
            name = f"{rec.started_at:%Y%m%d-%H%M%S}-{rec.id}.wav"
            view = WavView(app, rec.id)
            wav_hash = hashlib.sha256()
            # decrypted and verified chunk by chunk straight into the in-memory zip: no file
            with zf.open(name, "w", force_zip64=True) as member:
                for chunk in view.iter_verified():
                    member.write(chunk)
                    wav_hash.update(chunk)
            manifest.append({"file": name, "recording_id": rec.id, "started_at": rec.started_at.isoformat(),
                             "ended_at": rec.ended_at.isoformat(), "two_sided": bool(rec.two_sided),
                             "channels": view.channels, "sha256": wav_hash.hexdigest()})
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


def export_copies(app: App, ctx: RequestContext, target_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """The registered executor of ``dsar.export`` outside the API: refuses, before any audio is
    decrypted. A copy for a person never becomes a clear file at rest (on the server or wherever
    ``cf`` runs); it leaves only as the HTTP response to the requester (``cfcore.web.routes_dsar``)."""
    raise InputError("copies of a person's recordings are never written to a file",
                     hint=DOWNLOAD_HINT.replace("{id}", ctx.approval_id or "ID"))


