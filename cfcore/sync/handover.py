"""Site side: the archive's receipt, checked, ends the site's custody.

``collect_receipt`` reads ``<site>/receipts/<batch>.json``, verifies the archive's Ed25519
signature (``[sync] archive_signing_key``), that it names this site, this batch and this manifest,
and that every recording of the batch is listed with the SHA-256 of every object the site sent.
Only then, in one transaction: a stub per recording (what went where, the receipt's hash), the
recording's rows, its own data key and its sealed key are deleted, the batch is ``done`` and the
receipt kept, audited ``sync.handover``. The media objects are deleted after the commit; a crash
there leaves objects no catalog row names, which ``cf archive sweep`` removes.

A receipt with ``status = rejected`` marks the batch rejected (audited, an FIS alert): nothing is
deleted and its recordings go into the next batch.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import selectinload

from hookspecs.types import RequestContext, SyncConnection

from ..crypto import archive_seal
from ..db.models import DataKey, Recording
from ..db.models_sync import ArchiveWrap, SyncBatch, SyncStub
from ..errors import ConflictError, IntegrityError
from . import manifest as mf
from .settings import SiteSettings

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)


def no_local_key_error(app: App, rec_id: str) -> Exception:
    """The error for reading a recording whose data key row is absent."""
    with app.catalog.session() as s:
        sealed = s.get(ArchiveWrap, rec_id) is not None
    if sealed:
        return ConflictError(f"this site keeps no key of its own for recording {rec_id} ([sync] local_key = none)",
                             hint="play it at the archive after the nightly hand-over")
    return ConflictError(f"the data key of recording {rec_id} was destroyed (crypto-shredded); its audio is gone")


def verify_receipt(settings: SiteSettings, raw: bytes, batch: SyncBatch) -> tuple[dict[str, Any], str]:
    """The receipt's body after all checks, and the SHA-256 of the receipt file."""
    outer = mf.parse_json(raw, f"receipt of batch {batch.id}")
    body_s, sig = outer.get("body"), outer.get("signature")
    if not isinstance(body_s, str) or not isinstance(sig, str):
        raise IntegrityError(f"the receipt of batch {batch.id} has no body or signature")
    archive_seal.verify_signature(settings.archive_signing_key, sig, (mf.RECEIPT_CONTEXT + body_s).encode(),
                                  f"the receipt of batch {batch.id}")
    body = mf.parse_json(body_s.encode(), f"receipt of batch {batch.id}")
    if body.get("site") != settings.site or body.get("batch") != batch.id:
        raise IntegrityError(f"the receipt of batch {batch.id} names another site or batch")
    if body.get("manifest_sha256") != batch.manifest_sha256:
        raise IntegrityError(f"the receipt of batch {batch.id} is for another manifest")
    return body, hashlib.sha256(raw).hexdigest()


async def collect_receipt(app: App, conn: SyncConnection, settings: SiteSettings, batch: SyncBatch,
                          ctx: RequestContext, report: Any) -> bool:
    """True when a receipt for ``batch`` was found and acted on."""
    path = mf.receipt_path(settings.site, batch.id)
    raw = await conn.read(path, mf.MAX_RECEIPT)
    if raw is None:
        return False
    try:
        body, receipt_sha = verify_receipt(settings, raw, batch)
    except IntegrityError as exc:
        app.audit.record(ctx, "sync.receipt", "sync_batch", batch.id, "refused", {"error": str(exc)[:500]})
        raise
    if body.get("status") == "rejected":
        with app.catalog.session() as s:
            row = s.get(SyncBatch, batch.id)
            assert row is not None
            row.state, row.updated_at, row.receipt = "rejected", app.clock.now(), raw.decode()
            row.error = "; ".join(str(p) for p in body.get("problems", []))[:2000]
            app.audit.append(s, ctx, "sync.handover", "sync_batch", batch.id, "rejected",
                             {"problems": body.get("problems", [])[:20], "receipt_sha256": receipt_sha})
        report.rejected.append({"batch": batch.id, "problems": body.get("problems", [])})
        await conn.remove(path)
        report.state = "rejected"
        return True
    if body.get("status") != "accepted":
        raise IntegrityError(f"the receipt of batch {batch.id} has an unknown status {body.get('status')!r}")
    keys = handover(app, settings, batch, body, raw, receipt_sha, ctx)
    for key in keys:  # after the commit: a failure leaves orphans for 'cf archive sweep'
        try:
            app.stores.delete(key)
        except Exception as exc:
            log.warning("could not delete %s after hand-over (cf archive sweep will): %s", key, exc)
    await conn.remove(path)
    report.handed_over.append({"batch": batch.id, "recordings": len(batch.recordings), "objects_deleted": len(keys),
                               "receipt_sha256": receipt_sha})
    report.batch, report.state = batch.id, "done"
    return True


def handover(app: App, settings: SiteSettings, batch: SyncBatch, body: dict[str, Any], raw: bytes,
             receipt_sha: str, ctx: RequestContext) -> list[str]:
    """The transaction that ends the site's custody. Returns the media keys to delete."""
    listed = body.get("recordings")
    if not isinstance(listed, dict):
        raise IntegrityError(f"the receipt of batch {batch.id} lists no recordings")
    now = app.clock.now()
    keys: list[str] = []
    with app.catalog.session() as s:
        row = s.get(SyncBatch, batch.id, with_for_update=True)
        assert row is not None
        if row.state == "done":
            return []
        recs = s.scalars(select(Recording).where(Recording.id.in_(row.recordings))
                         .options(selectinload(Recording.media))).all()
        for rec in recs:
            got = listed.get(rec.id)
            mine = sorted({m.sha256 for m in rec.media})
            if not isinstance(got, list) or sorted(set(got)) != mine:
                raise IntegrityError(f"the receipt of batch {batch.id} does not confirm every object of recording {rec.id}",
                                     hint="nothing was deleted; check the archive's import log")
        for rec in recs:
            keys.extend(sorted({m.key for m in rec.media}))
            s.add(SyncStub(recording_id=rec.id, batch_id=batch.id, target=settings.target,
                           archive=str(body.get("archive", "")), started_at=rec.started_at, handed_over_at=now,
                           ciphertext_sha256=sorted({m.sha256 for m in rec.media}), receipt_sha256=receipt_sha))
            s.delete(rec)
        s.execute(delete(DataKey).where(DataKey.recording_id.in_(row.recordings)))
        s.execute(delete(ArchiveWrap).where(ArchiveWrap.recording_id.in_(row.recordings)))
        row.state, row.updated_at, row.receipt = "done", now, raw.decode()
        app.audit.append(s, ctx, "sync.handover", "sync_batch", batch.id, "ok",
                         {"recordings": len(recs), "archive": body.get("archive"), "receipt_sha256": receipt_sha,
                          "audit_to": body.get("audit_to")})
    return keys
