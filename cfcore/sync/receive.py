"""Archive side: import the batches sites left in the inbox (``cf sync receive``, or the
``sync.receive`` job of ``cf serve`` on the archive).

For each complete batch ``<inbox>/<site>/<batch>/`` of a configured site:

1. the manifest's Ed25519 signature by that site's key; the site and batch it names;
2. already imported (``sync_imports``)? Then only its receipt is written again: exactly-once;
3. every object: the name the manifest gives, its size, its SHA-256, and, with the data key
   unsealed by the archive's X25519 key, the GCM authentication of every segment and the SHA-256
   of the decrypted audio; the site's audit entries continue the chain the archive holds;
4. the objects into the archive's stores (an object already there with the same bytes counts);
5. one transaction: recordings with their ids, segments, consents, subjects, media rows, the data
   key wrapped under the archive's own key ring, retention decided by the archive's rules, an
   audit entry ``recording.import`` per recording (with its ``row_digest``), the site's audit
   entries, ``sync_imports`` with the signed receipt, and ``sync.import``;
6. the receipt ``<site>/receipts/<batch>.json`` (written atomically), then the batch directory
   is removed.

A problem with the data (signature, size, hash, authentication, a broken chain) writes a
``rejected`` receipt and moves the batch to ``<site>/rejected/``; a problem of the archive itself
(a store full or down) leaves the batch where it is for the next run. Both are audited
(``sync.import``, outcome ``rejected`` / ``error``) and raise FIS alerts.

Crash points (acted on only by a test-only plugin, e.g. the test kit's ``CF_TEST_CRASH_AT``):
``receive-after-store``, ``receive-before-receipt``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select

from hookspecs.types import RequestContext

from ..archive import object_key, row_digest
from ..authority import require_context
from ..crypto import archive_seal, envelope
from ..crypto.keyring import wrap_data_key
from ..db.models import ConsentRow, DataKey, MediaObject, ModeSegmentRow, Recording, RecordingSubject
from ..db.models_sync import SyncImport
from ..errors import CallFortError, InputError, IntegrityError, StoreError
from ..ingest import _crash_point
from ..retention import apply_retention
from ..states import LIVE_RECORDING_STATES, RecordingState
from ..storage import lock_recording_media
from . import manifest as mf
from .settings import ArchiveSettings, archive_settings
from .site_audit import check_continuation, store_entries

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)


class Rejected(CallFortError):
    """The batch's data is wrong; a rejected receipt tells the site."""


@attrs.define
class ReceiveReport:
    imported: list[dict[str, Any]] = attrs.field(factory=list)
    repeated: list[str] = attrs.field(factory=list)
    rejected: list[dict[str, Any]] = attrs.field(factory=list)
    failed: list[dict[str, Any]] = attrs.field(factory=list)

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _sign_receipt(app: App, body: dict[str, Any]) -> bytes:
    key = archive_seal.signing_key(app.keys_dir)
    body_s = mf.canonical_json(body).decode()
    sig = key.sign((mf.RECEIPT_CONTEXT + body_s).encode()).hex()
    return mf.canonical_json({"body": body_s, "signature": sig})


def _parse_ts(value: Any) -> datetime:
    try:
        dt = datetime.fromisoformat(str(value))
    except ValueError:
        raise Rejected(f"timestamp {value!r} is not ISO-8601") from None
    if dt.tzinfo is None:
        raise Rejected(f"timestamp {value!r} has no time zone")
    return dt


@attrs.frozen
class _Checked:
    rec: dict[str, Any]
    data_key: bytes
    blobs: dict[str, bytes]  # channel -> ciphertext


def _check_recording(directory: Path, site: str, rec: dict[str, Any], seal_key: Any) -> _Checked:
    rec_id = rec.get("id")
    if not isinstance(rec_id, str) or not mf.BATCH_RE.match(rec_id):
        raise Rejected(f"recording id {rec_id!r} is malformed")
    if rec.get("site") != site:
        raise Rejected(f"recording {rec_id} names site {rec.get('site')!r}, not {site}")
    try:
        data_key = archive_seal.unseal(seal_key, rec_id, base64.b64decode(str(rec.get("sealed_key", "")), validate=True))
    except (ValueError, IntegrityError) as exc:
        raise Rejected(f"recording {rec_id}: {exc}") from None
    blobs: dict[str, bytes] = {}
    objects = rec.get("objects")
    if not isinstance(objects, list) or not objects or objects[0].get("channel") != "advisor":
        raise Rejected(f"recording {rec_id} has no advisor object")
    for obj in objects:
        channel, name = obj.get("channel"), obj.get("name")
        if channel not in ("advisor", "customer") or name != mf.object_name(rec_id, channel) or channel in blobs:
            raise Rejected(f"recording {rec_id}: object {name!r} is not a valid object name")
        path = directory / "objects" / name
        if path.is_symlink():  # the site writes files, never links: a link points at someone else's data
            raise Rejected(f"object {name} is a symbolic link")
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise Rejected(f"object {name} is missing from the batch") from None
        if size != obj.get("size"):
            raise Rejected(f"object {name} has {size} bytes, the manifest says {obj.get('size')}")
        blob = path.read_bytes()
        if hashlib.sha256(blob).hexdigest() != obj.get("sha256"):
            raise Rejected(f"object {name} does not match its SHA-256")
        try:
            plain = envelope.decrypt(data_key, rec_id, channel, blob)
        except IntegrityError as exc:
            raise Rejected(f"object {name} does not authenticate: {exc}") from None
        if len(plain) != obj.get("plain_size") or hashlib.sha256(plain).hexdigest() != obj.get("plain_sha256"):
            raise Rejected(f"object {name}: the decrypted audio does not match its SHA-256")
        del plain
        blobs[channel] = blob
    return _Checked(rec=rec, data_key=data_key, blobs=blobs)


def _put_idempotent(app: App, key: str, blob: bytes) -> list[str]:
    """Put to every store; a copy already there with the same bytes (an earlier, interrupted
    import) counts as written."""
    sha = hashlib.sha256(blob).hexdigest()
    confirmed: list[str] = []
    missing: dict[str, Any] = {}
    for name, store in app.stores.stores.items():
        try:
            have = store.get(key, 0, None)
        except KeyError:
            missing[name] = store
            continue
        except Exception as exc:
            raise StoreError(f"store {name} cannot be read: {type(exc).__name__}: {exc}") from None
        if hashlib.sha256(have).hexdigest() != sha:
            raise StoreError(f"store {name} holds another object under {key}", hint="possible manipulation")
        confirmed.append(name)
    if missing:
        from ..storage import StoreSet

        part = StoreSet(missing, required_copies=max(0, app.stores.required_copies - len(confirmed)) or 1)
        confirmed.extend(part.put(key, blob))
    if len(confirmed) < app.stores.required_copies:
        raise StoreError(f"only {len(confirmed)} of {app.stores.required_copies} copies of {key} were written")
    return confirmed


def _recording_row(app: App, c: _Checked, stores: dict[str, list[str]], now: datetime) -> Recording:
    r = c.rec
    try:
        started = _parse_ts(r["started_at"])
        media = []
        for obj in r["objects"]:
            key = object_key(r["id"], obj["channel"], started)
            for store in stores[obj["channel"]]:
                media.append(MediaObject(channel=obj["channel"], store=store, key=key, size=int(obj["size"]),
                                         sha256=obj["sha256"], plain_size=int(obj["plain_size"]),
                                         plain_sha256=obj["plain_sha256"], codec=str(obj["codec"])))
        rec = Recording(
            id=r["id"], site=r["site"], source=str(r["source"])[:64], pbx_call_id=r.get("pbx_call_id"),
            advisor_id=str(r["advisor_id"])[:64], direction=str(r["direction"]), started_at=started,
            ended_at=_parse_ts(r["ended_at"]), duration=float(r["duration"]), channels=int(r["channels"]),
            sample_rate=int(r["sample_rate"]), codec=str(r["codec"]), two_sided=bool(r["two_sided"]),
            state=r["state"] if r["state"] in LIVE_RECORDING_STATES else RecordingState.ARCHIVED,
            retention_class="", legal_hold=False, created_at=_parse_ts(r["created_at"]),
            segments=[ModeSegmentRow(idx=int(i), start=float(a), end=float(b), mode=str(m)) for i, a, b, m in r["segments"]],
            consents=[ConsentRow(given_at=_parse_ts(g), offset=float(o), by_user=str(u), method=str(m))
                      for g, o, u, m in r["consents"]],
            subjects=[RecordingSubject(kind=str(k), pseudonym=str(p)) for k, p in r["subjects"]],
            media=media,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise Rejected(f"recording {r.get('id')}: malformed catalog data: {type(exc).__name__}: {exc}") from None
    return rec


def process_batch(app: App, settings: ArchiveSettings, site: str, directory: Path, ctx: RequestContext,
                  report: ReceiveReport) -> None:
    batch = directory.name
    inbox = Path(settings.inbox)
    receipt_file = inbox / mf.receipt_path(site, batch)
    now = app.clock.now()
    with app.catalog.session() as s:
        done = s.scalars(select(SyncImport).where(SyncImport.site == site, SyncImport.batch_id == batch)).first()
        stored_receipt = done.receipt if done else None
    if stored_receipt is not None:  # imported before (the receipt or the clean-up was interrupted)
        _write_atomic(receipt_file, stored_receipt.encode())
        shutil.rmtree(directory, ignore_errors=True)
        report.repeated.append(f"{site}/{batch}")
        return
    try:
        if any(p.is_symlink() for p in (directory / "manifest.json", directory / "manifest.sig", directory / "objects")):
            raise Rejected("the batch contains a symbolic link")
        raw = (directory / "manifest.json").read_bytes()
        sig = (directory / "manifest.sig").read_text().strip()
        if len(raw) > mf.MAX_MANIFEST:
            raise Rejected("the manifest is too large")
        archive_seal.verify_signature(settings.site_keys[site], sig, raw, f"the manifest of batch {site}/{batch}")
        body = mf.parse_json(raw, f"manifest of batch {site}/{batch}")
        if body.get("format") != mf.FORMAT or body.get("site") != site or body.get("batch") != batch:
            raise Rejected("the manifest names another site, batch or format")
        manifest_sha = hashlib.sha256(raw).hexdigest()
        seal_key = archive_seal.seal_private_key(app.keys_dir)
        checked = [_check_recording(directory, site, r, seal_key) for r in body.get("recordings", [])]
        with app.catalog.session() as s:
            entries = check_continuation(s, site, batch, body.get("audit", {}), settings.site_keys[site])
            ids = [c.rec["id"] for c in checked]
            existing = set(s.scalars(select(Recording.id).where(Recording.id.in_(ids))))
    except (Rejected, IntegrityError, InputError, FileNotFoundError) as exc:
        _reject(app, settings, site, directory, str(exc), ctx, report)
        return

    # the objects into the archive's stores (a full or failing store leaves the batch for later)
    try:
        stores: dict[str, dict[str, list[str]]] = {}
        for c in checked:
            if c.rec["id"] in existing:
                continue
            started = _parse_ts(c.rec["started_at"])
            stores[c.rec["id"]] = {ch: _put_idempotent(app, object_key(c.rec["id"], ch, started), blob)
                                   for ch, blob in c.blobs.items()}
        receipt = _sign_receipt(app, {
            "format": mf.FORMAT, "status": "accepted", "site": site, "batch": batch, "manifest_sha256": manifest_sha,
            "archive": app.config.site, "received_at": now.isoformat(),
            "recordings": {c.rec["id"]: sorted(o["sha256"] for o in c.rec["objects"]) for c in checked},
            "audit_to": body["audit"].get("to"), "audit_head_hash": body["audit"].get("head_hash"),
        })
        _crash_point(app, "receive-after-store")
        imported: list[Recording] = []
        with app.catalog.session() as s:
            for c in checked:
                if c.rec["id"] in existing:
                    continue  # sent again after an earlier batch: the id is the identity
                rec = _recording_row(app, c, stores[c.rec["id"]], now)
                apply_retention(app, s, rec)
                s.add(rec)
                kek_id, wrapped = wrap_data_key(app, rec.id, c.data_key)
                s.add(DataKey(recording_id=rec.id, kek_id=kek_id, wrapped=wrapped, created_at=now))
                s.flush()
                app.audit.append(s, ctx, "recording.import", "recording", rec.id, "ok", {
                    "row_digest": row_digest(rec), "site": site, "batch": batch,
                    "media_sha256": {o["channel"]: o["sha256"] for o in c.rec["objects"]},
                    "stores": sorted({m.store for m in rec.media})})
                imported.append(rec)
            store_entries(s, site, batch, body["audit"], entries, now)
            nbytes = sum(len(b) for c in checked for b in c.blobs.values())
            s.add(SyncImport(site=site, batch_id=batch, imported_at=now, manifest_sha256=manifest_sha,
                             recordings=len(checked), audit_entries=len(entries), bytes_total=nbytes,
                             receipt=receipt.decode()))
            app.audit.append(s, ctx, "sync.import", "site", site, "ok", {
                "batch": batch, "recordings": len(imported), "already_present": sorted(existing),
                "audit_entries": len(entries), "bytes": nbytes, "manifest_sha256": manifest_sha})
    except StoreError as exc:
        app.audit.record(ctx, "sync.import", "site", site, "error", {"batch": batch, "error": str(exc)[:500]})
        report.failed.append({"site": site, "batch": batch, "error": str(exc)})
        return
    _crash_point(app, "receive-before-receipt")
    for rec in imported:
        lock_recording_media(app, rec, ctx)
    _write_atomic(receipt_file, receipt)
    shutil.rmtree(directory, ignore_errors=True)
    report.imported.append({"site": site, "batch": batch, "recordings": len(imported), "audit_entries": len(entries),
                            "bytes": sum(len(b) for c in checked for b in c.blobs.values())})


def _reject(app: App, settings: ArchiveSettings, site: str, directory: Path, problem: str,
            ctx: RequestContext, report: ReceiveReport) -> None:
    batch = directory.name
    inbox = Path(settings.inbox)
    receipt = _sign_receipt(app, {"format": mf.FORMAT, "status": "rejected", "site": site, "batch": batch,
                                  "manifest_sha256": _manifest_sha(directory), "archive": app.config.site,
                                  "received_at": app.clock.now().isoformat(), "problems": [problem]})
    app.audit.record(ctx, "sync.import", "site", site, "rejected", {"batch": batch, "problem": problem[:500]})
    dest = inbox / site / "rejected" / batch
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(directory, dest)
    _write_atomic(inbox / mf.receipt_path(site, batch), receipt)
    report.rejected.append({"site": site, "batch": batch, "problem": problem})


def _manifest_sha(directory: Path) -> str | None:
    try:
        return hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest()
    except OSError:
        return None


def process_inbox(app: App, ctx: RequestContext) -> ReceiveReport:
    """Import every complete batch in the inbox. Batches of unknown sites are left alone and
    audited once per run. ``ctx``: who runs it (the ``sync.receive`` job: its system context)."""
    require_context(ctx, "process_inbox")
    settings = archive_settings(app.config)
    inbox = Path(settings.inbox)
    report = ReceiveReport()
    if not inbox.is_dir():
        raise StoreError(f"the sync inbox {inbox} does not exist", hint="create it and give the sites' SSH user write access")
    for site_dir in sorted(p for p in inbox.iterdir() if p.is_dir() and not p.is_symlink()):
        site = site_dir.name
        if site not in settings.site_keys:
            app.audit.record(ctx, "sync.import", "site", site[:128], "refused",
                             {"error": "no [sync.sites] section for this site"})
            report.failed.append({"site": site, "batch": None, "error": "unknown site"})
            continue
        for d in sorted(site_dir.iterdir()):
            if d.is_symlink():
                app.audit.record(ctx, "sync.import", "site", site, "rejected",
                                 {"batch": d.name[:64], "problem": "a symbolic link in the inbox"})
                report.rejected.append({"site": site, "batch": d.name, "problem": "a symbolic link in the inbox"})
                d.unlink()
                continue
            if d.is_dir() and mf.BATCH_RE.match(d.name):
                process_batch(app, settings, site, d, ctx, report)
    return report
