"""Site side: ``cf sync`` sends the site's recordings and audit trail to the archive's inbox.

One batch is in flight at a time. A run first collects the receipt of a batch already sent (and
hands it over, ``cfcore.sync.handover``), then resumes or starts a batch:

1. *prepare* (one transaction): the recordings with a sealed key that are in no batch yet (up to
   ``sync.batch_recordings``) and the audit entries after the last batch; the signed manifest is
   written to ``<data dir>/sync/<batch>.manifest.json`` (0600) so that a resumed upload sends the
   very same bytes.
2. *upload* into ``<site>/<batch>.part/``: each object is resumed from the size already there (the
   archive checks every byte anyway); the manifest and its signature go last.
3. *rename* ``.part`` to the final name: the archive never sees half a batch.

Killed anywhere, the next run finds the batch in state ``sending`` and continues; a cut connection
raises ``SyncUnavailable`` and leaves the same state. Nothing is deleted on the site before the
archive's signed receipt is verified.

Crash points (acted on only by a test-only plugin, e.g. the test kit's ``CF_TEST_CRASH_AT``; see
``cfcore.ingest``): ``sync-mid-object``, ``sync-before-rename``, ``sync-after-rename``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from hookspecs.types import RequestContext, SyncConnection, SyncRefused, SyncTarget, SyncUnavailable

from ..archive import CHANNELS, new_recording_id
from ..authority import require_context
from ..clock import utc
from ..crypto import archive_seal
from ..crypto.keyfiles import write_private
from ..db.models import AuditEntry, AuditHead, Recording
from ..db.models_sync import ArchiveWrap, SyncBatch
from ..errors import CallFortError, ConfigError, IntegrityError, StoreError
from ..ingest import _crash_point
from ..states import LIVE_RECORDING_STATES
from . import manifest as mf
from .settings import SiteSettings, site_settings
from .site_audit import entry_dict, seal_batch

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (what, done bytes, total bytes)


class SyncError(StoreError):
    """The archive cannot be reached or refused the transfer (details in the message)."""

    exit_code = 10


class SyncRefusedError(IntegrityError):
    """A security refusal (changed host key, refused client key): an operator must look."""

    exit_code = 11


@attrs.define
class SyncReport:
    site: str
    target: str
    batch: str | None = None
    state: str = "idle"
    recordings: int = 0
    audit_entries: int = 0
    objects_sent: int = 0
    objects_skipped: int = 0
    bytes_sent: int = 0
    bytes_resumed: int = 0  # bytes already in the inbox from an interrupted run
    bytes_total: int = 0
    seconds: float = 0.0
    handed_over: list[dict[str, Any]] = attrs.field(factory=list)
    rejected: list[dict[str, Any]] = attrs.field(factory=list)

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


# ---------------------------------------------------------------------- targets


def open_target(app: App, settings: SiteSettings) -> SyncTarget:
    regs = app.pm.sync_target_types()
    options = dict(settings.target_options)
    kind = options.pop("type")
    if kind not in regs:
        raise ConfigError(f"{app.config.path}: sync.targets.{settings.target}.type '{kind}' is not available",
                          hint="choose one of: " + (", ".join(sorted(regs)) or "(none installed: pip install callfort-sync-ssh)"))
    # relative key paths are relative to the deployment, like store roots
    for k in ("client_key", "known_hosts"):
        if isinstance(options.get(k), str):
            options[k] = str(app.config.resolve_path(options[k]))
    reg = regs[kind]
    where = f"sync.targets.{settings.target}"
    ctx = app.plugin_context(settings.target, plugin=app.pm.registered_by("cf_sync_targets", kind))
    try:
        target: SyncTarget = reg.create(app.plugin_options(reg, options, where), ctx)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{app.config.path}: [{where}]: {exc}") from None
    return target


# ---------------------------------------------------------------------- prepare


def manifest_dir(app: App) -> Path:
    return app.data_dir / "sync"


def _iso(dt: Any) -> str | None:
    return None if dt is None else utc(dt).isoformat(timespec="microseconds")


def _recording_entry(rec: Recording, wrap: ArchiveWrap) -> dict[str, Any]:
    media: dict[str, Any] = {}
    for row in rec.media:
        media.setdefault(row.channel, row)
    objects = [{"channel": c, "name": mf.object_name(rec.id, c), "key": m.key, "size": m.size, "sha256": m.sha256,
                "plain_size": m.plain_size, "plain_sha256": m.plain_sha256, "codec": m.codec}
               for c in CHANNELS if (m := media.get(c)) is not None]
    return {
        "id": rec.id, "site": rec.site, "source": rec.source, "pbx_call_id": rec.pbx_call_id,
        "advisor_id": rec.advisor_id, "direction": rec.direction, "started_at": _iso(rec.started_at),
        "ended_at": _iso(rec.ended_at), "duration": float(rec.duration), "channels": rec.channels,
        "sample_rate": rec.sample_rate, "codec": rec.codec, "two_sided": bool(rec.two_sided), "state": rec.state,
        "created_at": _iso(rec.created_at),
        "segments": [[s.idx, float(s.start), float(s.end), s.mode] for s in sorted(rec.segments, key=lambda s: s.idx)],
        "consents": [[_iso(c.given_at), float(c.offset), c.by_user, c.method] for c in rec.consents],
        "subjects": sorted([s.kind, s.pseudonym] for s in rec.subjects),
        "sealed_key": base64.b64encode(wrap.sealed).decode(), "archive_key_id": wrap.archive_key_id,
        "objects": objects,
    }


def prepare_batch(app: App, settings: SiteSettings, ctx: RequestContext) -> SyncBatch | None:
    """Choose what goes into the next batch and write its signed manifest. None when nothing is due."""
    key = archive_seal.signing_key(app.keys_dir)
    now = app.clock.now()
    with app.catalog.session() as s:
        open_batches = s.scalars(select(SyncBatch).where(SyncBatch.state.in_(("sending", "sent")))).all()
        if open_batches:
            return None
        in_batches: set[str] = set()
        for rows in s.scalars(select(SyncBatch.recordings).where(SyncBatch.state == "done")):
            in_batches.update(rows)
        q = (select(Recording, ArchiveWrap).join(ArchiveWrap, ArchiveWrap.recording_id == Recording.id)
             .where(Recording.state.in_(LIVE_RECORDING_STATES))
             .options(selectinload(Recording.segments), selectinload(Recording.consents),
                      selectinload(Recording.subjects), selectinload(Recording.media))
             .order_by(Recording.id).limit(settings.batch_recordings))
        recs = [(r, w) for r, w in s.execute(q).all() if r.id not in in_batches]
        last_to = s.scalar(select(func.max(SyncBatch.audit_to)).where(SyncBatch.state == "done")) or 0
        head = s.get(AuditHead, 1)
        head_seq = head.seq if head else 0
        if not recs and head_seq <= last_to:
            return None
        entries = [entry_dict(e) for e in s.scalars(
            select(AuditEntry).where(AuditEntry.seq > last_to, AuditEntry.seq <= head_seq).order_by(AuditEntry.seq))]
        batch_id = new_recording_id(now)
        head_hash = entries[-1]["hash"] if entries else (head.hash if head else "0" * 64)
        body = {
            "format": mf.FORMAT, "site": settings.site, "batch": batch_id, "created_at": _iso(now),
            "chunk_size": settings.chunk_size,
            "recordings": [_recording_entry(r, w) for r, w in recs],
            "audit": {"from": last_to + 1, "to": head_seq, "head_hash": head_hash, "entries": entries,
                      "anchor_signature": key.sign(mf.anchor_message(settings.site, head_seq, head_hash)).hex(),
                      "seal_signature": seal_batch(key, settings.site, batch_id, entries)},
        }
        raw = mf.canonical_json(body)
        sig = key.sign(raw).hex()
        total = sum(o["size"] for r in body["recordings"] for o in r["objects"])  # type: ignore[attr-defined]
        mdir = manifest_dir(app)
        write_private(mdir / f"{batch_id}.manifest.json", raw)
        write_private(mdir / f"{batch_id}.manifest.sig", sig.encode())
        batch = SyncBatch(id=batch_id, target=settings.target, state="sending", created_at=now, updated_at=now,
                          recordings=[r.id for r, _ in recs], audit_from=last_to + 1, audit_to=head_seq,
                          bytes_total=total, manifest_sha256=hashlib.sha256(raw).hexdigest())
        s.add(batch)
        app.audit.append(s, ctx, "sync.prepare", "sync_batch", batch_id, "ok",
                         {"recordings": len(recs), "audit_from": last_to + 1, "audit_to": head_seq, "bytes": total,
                          "manifest_sha256": batch.manifest_sha256, "target": settings.target})
        return batch


def load_manifest(app: App, batch_id: str) -> tuple[bytes, bytes, dict[str, Any]]:
    mdir = manifest_dir(app)
    try:
        raw = (mdir / f"{batch_id}.manifest.json").read_bytes()
        sig = (mdir / f"{batch_id}.manifest.sig").read_bytes()
    except FileNotFoundError:
        raise IntegrityError(f"the manifest of batch {batch_id} is missing from {mdir}",
                             hint="restore it from the backup, or mark the batch rejected with 'cf sync reset'") from None
    return raw, sig, mf.parse_json(raw, f"manifest of batch {batch_id}")


# ---------------------------------------------------------------------- upload


class _Throttle:
    def __init__(self, bytes_per_s: int) -> None:
        self.rate = bytes_per_s
        self.start = time.monotonic()
        self.sent = 0

    async def __call__(self, n: int) -> None:
        if self.rate <= 0:
            return
        self.sent += n
        ahead = self.sent / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            await asyncio.sleep(ahead)


def resume_offset(have: int | None, size: int, chunk: int) -> int:
    """Where to resume an object of which ``have`` bytes are in its ``.part`` file.

    Each chunk is written with pipelined requests and awaited before the next one starts, so only
    the last chunk can have holes after a cut: resume at the start of the chunk that holds the
    file's last byte (chunks are aligned to multiples of ``chunk``)."""
    if not have or have <= 0 or have > size:
        return 0
    return ((have - 1) // chunk) * chunk


async def _upload_object(app: App, conn: SyncConnection, path: str, obj: dict[str, Any], chunk: int,
                         throttle: _Throttle, report: SyncReport, progress: Progress | None) -> None:
    """Upload one object to ``path.part`` and rename it to ``path`` once every write is
    acknowledged: a file under its final name is always complete."""
    size = int(obj["size"])
    final_size = await conn.size(path)
    if final_size == size:
        report.objects_skipped += 1
        return
    if final_size is not None:  # not ours to trust: upload again
        await conn.remove(path)
    part = f"{path}.part"
    offset = resume_offset(await conn.size(part), size, chunk)
    report.bytes_resumed += offset
    def read(pos: int) -> bytes:
        end = min(size, pos + chunk)
        data = app.stores.get(obj["key"], pos, end)
        if len(data) != end - pos:
            raise StoreError(f"store returned {len(data)} bytes for {obj['key']} [{pos}:{end}]")
        return data

    f = await conn.open_write(part, offset)
    ahead = asyncio.ensure_future(asyncio.to_thread(read, offset))
    try:
        pos = offset
        while pos < size:
            data = await ahead
            end = pos + len(data)
            if end < size:  # read the next chunk from the store while this one travels
                ahead = asyncio.ensure_future(asyncio.to_thread(read, end))
            await f.write(data)
            await throttle(len(data))
            pos = end
            report.bytes_sent += len(data)
            if 2 * chunk <= pos < size:
                _crash_point(app, "sync-mid-object")  # test hook: killed with part of an object uploaded
            if progress:
                progress(obj["name"], report.bytes_sent + report.bytes_resumed, report.bytes_total)
    finally:
        if not ahead.done():
            ahead.cancel()
        await f.close()
    stored = await conn.size(part)
    if stored != size:  # e.g. a server that loses a failed flush on a full disk
        await conn.remove(part)
        raise SyncUnavailable(f"the archive stored {stored} of {size} bytes of {obj['name']} (inbox disk full?)")
    await conn.rename(part, path)
    report.objects_sent += 1


async def upload_batch(app: App, conn: SyncConnection, settings: SiteSettings, batch: SyncBatch,
                       report: SyncReport, progress: Progress | None) -> None:
    raw, sig, body = load_manifest(app, batch.id)
    site = settings.site
    final, part = mf.batch_dir(site, batch.id), mf.batch_dir(site, batch.id, part=True)
    report.batch, report.state = batch.id, "sending"
    report.recordings = len(body["recordings"])
    report.audit_entries = len(body["audit"]["entries"])
    report.bytes_total = int(batch.bytes_total)
    if await conn.size(f"{final}/manifest.sig") is None:
        await conn.makedirs(f"{part}/objects")
        throttle = _Throttle(settings.bandwidth_bytes_per_s)
        # a few objects travel at once, so that the per-object round trips (stat, open, close,
        # rename) overlap with the bytes of the others
        gate = asyncio.Semaphore(settings.parallel_objects)

        async def one(obj: dict[str, Any]) -> None:
            async with gate:
                await _upload_object(app, conn, f"{part}/objects/{obj['name']}", obj, int(body["chunk_size"]),
                                     throttle, report, progress)

        tasks = [asyncio.ensure_future(one(obj)) for rec in body["recordings"] for obj in rec["objects"]]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for name, data in (("manifest.json", raw), ("manifest.sig", sig)):
            f = await conn.open_write(f"{part}/{name}", 0)
            try:
                await f.write(data)
            finally:
                await f.close()
        _crash_point(app, "sync-before-rename")
        await conn.rename(part, final)
        _crash_point(app, "sync-after-rename")
    with app.catalog.session() as s:
        row = s.get(SyncBatch, batch.id)
        assert row is not None
        row.state, row.updated_at = "sent", app.clock.now()
    report.state = "sent"


# ---------------------------------------------------------------------- a run


def _audit_failure(app: App, ctx: RequestContext, action: str, outcome: str, settings: SiteSettings,
                   batch: str | None, error: str) -> None:
    try:
        app.audit.record(ctx, action, "sync_target", settings.target, outcome,
                         {"site": settings.site, "batch": batch, "error": error[:500]})
    except Exception:  # the catalog being down must not hide the original error
        log.exception("could not audit %s", action)


async def run_sync(app: App, ctx: RequestContext, *, wait: float = 0.0, poll: float = 0.5,
                   progress: Progress | None = None) -> SyncReport:
    """Collect a pending receipt, then send (or resume) one batch; with ``wait`` > 0 wait that many
    seconds for its receipt and hand it over. Returns what moved. ``ctx``: who runs it (the
    ``sync.send`` job: its system context)."""
    from .handover import collect_receipt

    require_context(ctx, "run_sync")
    settings = site_settings(app.config)
    target = open_target(app, settings)
    report = SyncReport(site=settings.site, target=settings.target)
    started = time.monotonic()
    batch_id: str | None = None
    try:
        conn = await target.connect()
        try:
            with app.catalog.session() as s:
                pending = s.scalars(select(SyncBatch).where(SyncBatch.state.in_(("sending", "sent")))).all()
            for b in pending:
                batch_id = b.id
                if await collect_receipt(app, conn, settings, b, ctx, report):
                    continue
                if b.state == "sending":
                    await upload_batch(app, conn, settings, b, report, progress)
                else:
                    report.batch, report.state = b.id, "sent"
            if not pending:
                batch = await asyncio.to_thread(prepare_batch, app, settings, ctx)
                if batch is not None:
                    batch_id = batch.id
                    await upload_batch(app, conn, settings, batch, report, progress)
            deadline = time.monotonic() + wait
            while report.state == "sent" and report.batch and time.monotonic() < deadline:
                await asyncio.sleep(poll)
                with app.catalog.session() as s:
                    b2 = s.get(SyncBatch, report.batch)
                assert b2 is not None
                await collect_receipt(app, conn, settings, b2, ctx, report)
        finally:
            try:
                await conn.close()
            except Exception:  # noqa: S110 - closing a cut connection may fail; nothing is lost
                pass
    except SyncRefused as exc:
        _audit_failure(app, ctx, "sync.refused", "refused", settings, batch_id, str(exc))
        raise SyncRefusedError(f"sync to {settings.target} refused: {exc}",
                               hint="check the archive's host key and this site's client key; see docs/sites.md") from None
    except (TimeoutError, SyncUnavailable, OSError) as exc:
        _audit_failure(app, ctx, "sync.send", "error", settings, batch_id, f"{type(exc).__name__}: {exc}")
        raise SyncError(f"sync to {settings.target} interrupted: {exc}",
                        hint="nothing was lost; the next 'cf sync' resumes the batch") from None
    except CallFortError as exc:
        _audit_failure(app, ctx, "sync.send", "error", settings, batch_id, str(exc))
        raise
    report.seconds = round(time.monotonic() - started, 3)
    app.audit.record(ctx, "sync.send", "sync_target", settings.target, "ok",
                     {"batch": report.batch, "state": report.state, "objects_sent": report.objects_sent,
                      "objects_skipped": report.objects_skipped, "bytes_sent": report.bytes_sent,
                      "handed_over": sum(h["recordings"] for h in report.handed_over)})
    return report
