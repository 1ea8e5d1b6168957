"""The media stores of a deployment, used as one: ``open_stores(app) -> StoreSet``.

``[archive] stores = [...]`` names the ``[stores.<name>]`` sections in use (default: all) and
``required_copies`` how many of them must confirm a ``put``. Each section's ``type`` picks a
``cf_media_stores`` registration. A relative ``root`` option is taken relative to the directory of
``callfort.toml``.

Redundancy: a failed ``put`` removes the copies it wrote; reads fall back to a healthy copy and
report the broken one (audit ``store.copy_broken``, hook ``cf_store_copy_broken``);
``check_copies`` / ``repair_copies`` back ``cf store check|repair``. See docs/storage.md.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from hookspecs.types import BrokenCopy, MediaStore, RequestContext, StoreFailure, StoreMisconfigured

from .authority import require_context, system_context
from .db.models import MediaObject, Recording
from .errors import CallFortError, ConfigError, IntegrityError, NotFound, StoreError
from .metrics_store import timed
from .states import LIVE_RECORDING_STATES

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger(__name__)

#: ``on_broken(store, key, problem, healthy_stores)``: problem is ``missing`` or ``damaged``.
BrokenReporter = Callable[[str, str, str, list[str]], object]


class StoreSet:
    """Several stores behind one interface. ``put`` writes every store and needs
    ``required_copies`` confirmations; ``get`` falls back to the next store on a missing or
    damaged copy."""

    def __init__(self, stores: Mapping[str, MediaStore], required_copies: int = 1, *,
                 on_broken: BrokenReporter | None = None) -> None:
        if not stores:
            raise ConfigError("no media store is configured", hint="add a [stores.<name>] section")
        self.stores = dict(stores)
        self.required_copies = required_copies
        #: Told about every copy a read found missing or damaged (``open_stores`` audits it).
        self.on_broken = on_broken
        #: key -> stores known to hold a broken copy: tried last, reported once.
        self._broken: dict[str, dict[str, str]] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.stores)

    def put(self, key: str, data: bytes, retain_until: datetime | None = None) -> list[str]:
        """Write ``data`` to every store; returns the names that confirmed.

        Needs ``required_copies`` confirmations, else every copy this call wrote is deleted again
        and StoreError is raised: nothing is left half there. Copies are written unlocked and
        locked until ``retain_until`` only once enough of them are confirmed, because a locked
        copy could not be removed again; a copy that cannot be locked does not count (and is
        removed)."""
        confirmed, errors = self._put_each(key, lambda _source_error: data)
        if len(confirmed) >= self.required_copies and retain_until is not None:
            for name in list(confirmed):
                try:
                    self.stores[name].lock_until(key, retain_until)
                except Exception as exc:
                    log.warning("store %s failed to lock %s: %s: %s", name, key, type(exc).__name__, exc)
                    errors.append(f"{name}: lock failed: {type(exc).__name__}: {exc}")
                    confirmed.remove(name)
                    self._remove_copies(key, [name])
        return self._enough(key, confirmed, errors)

    def put_stream(self, key: str, produce: Callable[[], Iterable[bytes | bytearray]]) -> list[str]:
        """Like ``put``, with the object made by ``produce()`` piece by piece (never whole in
        memory). Each store gets a stream of its own: ``produce`` must give the same bytes every
        time (ingest's are deterministic and compared). An exception raised by the stream itself
        (not by a store) removes the copies written and is raised as it is."""
        confirmed, errors = self._put_each(key, lambda source_error: _tracked(produce(), source_error))
        return self._enough(key, confirmed, errors)

    def _put_each(self, key: str, source: Callable[[list[BaseException]], Any]) -> tuple[list[str], list[str]]:
        """Write ``source(...)`` to every store: ``(names that confirmed, errors)``. An existing
        object or a failing store is an error of that store; a key a store refuses (a bug), a
        failing source (it notes its exception in the list it is given) or an interruption
        removes the copies written and raises."""
        confirmed: list[str] = []
        errors: list[str] = []
        for name, store in self.stores.items():
            source_error: list[BaseException] = []
            try:
                with timed(name, "put"):
                    store.put(key, source(source_error))
                confirmed.append(name)
            except BaseException as exc:
                if source_error or not isinstance(exc, Exception):
                    self._remove_copies(key, confirmed)  # interrupted, or the source failed: leave nothing
                    raise
                if isinstance(exc, FileExistsError):
                    errors.append(f"{name}: object exists already")
                elif isinstance(exc, ValueError):  # a key the store refuses: a bug, not an outage
                    self._remove_copies(key, confirmed)
                    raise StoreError(f"store {name} refused key {key!r}: {exc}") from None
                else:  # one failing store must not hide the others' result
                    log.warning("store %s failed to put %s: %s: %s", name, key, type(exc).__name__, exc)
                    errors.append(f"{name}: {type(exc).__name__}: {exc}")
        return confirmed, errors

    def _enough(self, key: str, confirmed: list[str], errors: list[str]) -> list[str]:
        """``confirmed`` when it has ``required_copies`` names; else the copies are removed again."""
        if len(confirmed) < self.required_copies:
            self._remove_copies(key, confirmed)
            raise StoreError(f"only {len(confirmed)} of {self.required_copies} required copies of {key} were written; "
                             "the copies written were removed again",
                             hint="; ".join(errors) or "check the stores")
        return confirmed

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Writes of one recording: a store that can (``batch()``, e.g. the local store) makes its
        directory entries durable once at the end instead of after every object. Leave the block
        before the catalog names the objects."""
        with contextlib.ExitStack() as stack:
            for store in self.stores.values():
                batch = getattr(store, "batch", None)
                if callable(batch):
                    stack.enter_context(batch())
            yield

    def _remove_copies(self, key: str, names: list[str]) -> None:
        """Undo a failed ``put``: delete the copies it wrote (best effort; what cannot be deleted
        is logged and left to ``sweep_orphans``, which no catalog row will ever name)."""
        for name in names:
            try:
                self.stores[name].delete(key)
            except KeyError:
                pass
            except Exception as exc:
                log.error("store %s: could not remove %s after a failed put: %s: %s", name, key,
                          type(exc).__name__, exc)

    def get(self, key: str, start: int = 0, end: int | None = None, expected_sha256: str | None = None) -> bytes:
        """Bytes ``[start, end)`` of ``key`` from the first store that has a good copy.

        ``expected_sha256`` (of the whole object) is checked when the whole object is read.
        IntegrityError when every copy found is damaged; NotFound when no store has it.
        """
        damaged: list[str] = []
        failed: list[str] = []
        missing: list[str] = []
        whole = start == 0 and end is None
        known_broken = self._broken.get(key, {})
        order = sorted(self.stores.items(), key=lambda item: item[0] in known_broken)
        for name, store in order:
            try:
                with timed(name, "get"):
                    data = store.get(key, start, end)
            except KeyError:
                failed.append(f"{name}: missing")
                missing.append(name)
                continue
            except Exception as exc:
                log.warning("store %s failed to get %s: %s: %s", name, key, type(exc).__name__, exc)
                failed.append(f"{name}: {type(exc).__name__}")
                continue
            if whole and expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256:
                log.error("store %s holds a damaged copy of %s (SHA-256 mismatch)", name, key)
                damaged.append(name)
                continue
            self._report_broken(key, missing, damaged, healthy=name, verified=whole and bool(expected_sha256))
            return data
        self._report_broken(key, [], damaged, healthy=None)
        if damaged:
            raise IntegrityError(f"stored object {key} does not match its SHA-256 in {', '.join(damaged)}",
                                 hint="possible manipulation: do not use this copy; restore it from another store or backup")
        if all(f.endswith("missing") for f in failed):
            raise NotFound(f"stored object {key} is missing from every store ({', '.join(self.names)})")
        raise StoreError(f"cannot read {key}: {'; '.join(failed)}")

    def stat_size(self, key: str) -> int:
        """Size of the object in the first store that has it."""
        for store in self.stores.values():
            try:
                return store.stat(key).size
            except KeyError:
                continue
        raise NotFound(f"stored object {key} is missing from every store")

    def delete(self, key: str, *, sync: bool = True) -> None:
        """Delete from every store; an absent copy is fine. StoreError naming the stores that failed.

        ``sync=False`` (a batch of deletes, e.g. the purge): a store that can defer making its
        deletes durable (``sync_deletes``, see ``hookspecs.types.MediaStore``) does so until
        ``sync_deletes()`` is called; the others delete durably at once."""
        failed: list[str] = []
        for name, store in self.stores.items():
            try:
                if not sync and hasattr(store, "sync_deletes"):
                    store.delete(key, sync=False)  # type: ignore[call-arg]
                else:
                    store.delete(key)
            except KeyError:
                pass
            except Exception as exc:
                failed.append(f"{name}: {type(exc).__name__}: {exc}")
        if failed:
            raise StoreError(f"could not delete {key} everywhere: {'; '.join(failed)}")

    def sync_deletes(self) -> None:
        """Make the deferred deletes of every store durable (one directory sync per directory)."""
        for store in self.stores.values():
            sync = getattr(store, "sync_deletes", None)
            if sync is not None:
                sync()

    def _report_broken(self, key: str, missing: list[str], damaged: list[str], healthy: str | None,
                       verified: bool = False) -> None:
        """Tell ``on_broken`` about copies a read found broken. A missing copy counts only when
        another store served the object (else the key itself is unknown). Never fails the read."""
        if healthy and healthy in self._broken.get(key, {}):
            # present again (repaired); a damaged one counts as repaired only after a verified read
            if self._broken[key][healthy] == "missing" or verified:
                del self._broken[key][healthy]
        found = [(n, "damaged") for n in damaged] + [(n, "missing") for n in (missing if healthy else [])]
        if not found:
            return
        if len(self._broken) > 10_000:  # a bound, not a cache policy: re-reporting is harmless
            self._broken.clear()
        known = self._broken.setdefault(key, {})
        healthy_stores = [healthy] if healthy else []
        for name, problem in found:
            if known.get(name) == problem:
                continue  # reported already (a stream of range reads must not flood the audit trail)
            known[name] = problem
            if self.on_broken is None:
                continue
            try:
                self.on_broken(name, key, problem, healthy_stores)
            except Exception:  # reporting must not turn a successful fallback read into a failure
                log.exception("reporting the %s copy of %s in store %s failed", problem, key, name)

    def read_order(self, key: str) -> list[str]:
        """Store names in the order reads try them: stores known to hold a broken copy last."""
        known_broken = self._broken.get(key, {})
        return sorted(self.stores, key=lambda name: name in known_broken)

    def get_from(self, name: str, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes of ``key`` from one named store (KeyError when it has none): for callers that
        verify what they read themselves, e.g. segment by segment while streaming."""
        return self.stores[name].get(key, start, end)

    def report_read(self, key: str, *, missing: list[str], damaged: list[str], healthy: str | None) -> None:
        """Report copies that a caller's own verification found missing or damaged."""
        self._report_broken(key, missing, damaged, healthy=healthy)

    def healed(self, key: str, store: str) -> None:
        """Forget that ``store`` held a broken copy of ``key`` (after a repair)."""
        self._broken.get(key, {}).pop(store, None)

    def lock(self, key: str, until: datetime | None, legal_hold: bool | None = None) -> None:
        """Extend the retention lock / set the legal hold in every store (a store without object
        locks ignores it). Every store is tried; StoreError names those that failed or refused
        (a retention is never shortened: asking for an earlier date than a copy's lock is refused)."""
        failed: list[str] = []
        for name, store in self.stores.items():
            try:
                store.lock_until(key, until, legal_hold=legal_hold)
            except KeyError:
                failed.append(f"{name}: no copy of {key}")
            except Exception as exc:
                log.warning("store %s failed to lock %s: %s: %s", name, key, type(exc).__name__, exc)
                failed.append(f"{name}: {type(exc).__name__}: {exc}")
        if failed:
            raise StoreError(f"could not lock {key} everywhere: {'; '.join(failed)}",
                             hint="'cf store check' shows the copies; 'cf store repair' re-creates missing ones")


def _tracked(pieces: Iterable[bytes | bytearray], errors: list[BaseException]) -> Iterator[bytes | bytearray]:
    """``pieces``, noting an exception they raise (to tell a failing source from a failing store)."""
    try:
        yield from pieces
    except BaseException as exc:
        errors.append(exc)
        raise


def open_stores(app: App) -> StoreSet:
    """Build the deployment's stores from ``[stores.<name>]`` through ``cf_media_stores``."""
    cfg = app.config
    sections = cfg.section("stores")
    names = list(cfg.section("archive").get("stores", list(sections)))
    types = app.pm.store_types()
    stores: dict[str, MediaStore] = {}
    for name in names:
        options = dict(sections[name])
        kind = options.pop("type")
        if kind not in types:
            raise ConfigError(f"{cfg.path}: stores.{name}.type '{kind}' is not available",
                              hint="choose one of: " + (", ".join(sorted(types)) or "(no store plugin installed)"))
        if isinstance(options.get("root"), str):
            options["root"] = str(cfg.resolve_path(options["root"]))
        try:
            reg = types[kind]
            ctx = app.plugin_context(name, plugin=app.pm.registered_by("cf_media_stores", kind))
            stores[name] = reg.create(app.plugin_options(reg, options, f"stores.{name}"), ctx)
        except (ValueError, TypeError, KeyError, OSError, StoreMisconfigured) as exc:
            raise ConfigError(f"{cfg.path}: [stores.{name}]: {exc}") from None
        except StoreFailure as exc:
            raise StoreError(f"store {name} cannot start: {exc}") from None
    return StoreSet(stores, cfg.get("archive.required_copies", int, 1),
                    on_broken=functools.partial(report_broken_copy, app))


# --------------------------------------------------------------------------- redundancy: reporting


def report_broken_copy(app: App, store: str, key: str, problem: str, healthy_stores: list[str]) -> BrokenCopy | None:
    """Record a broken copy: the audit entry ``store.copy_broken`` (which the FIS watches), then the
    ``cf_store_copy_broken`` hook. A "missing" copy in a store the catalog never put it in (the store
    was down at ingest, or added later) is not broken, only not yet replicated: logged, not audited."""
    from .archive import parse_object_key

    parsed = parse_object_key(key)
    rec_id = parsed[0] if parsed else None
    if problem == "missing":
        with app.catalog.session() as s:
            catalogued = s.scalar(select(MediaObject.id).where(MediaObject.store == store, MediaObject.key == key)
                                  .limit(1))
        if catalogued is None:
            log.info("store %s has no copy of %s yet ('cf store repair' adds it)", store, key)
            return None
    seq = app.audit.record(system_context("store.check"), "store.copy_broken", "store", store, "error", {
        "store": store, "key": key, "problem": problem, "recording_id": rec_id, "healthy": sorted(healthy_stores)})
    log.error("store %s: the copy of %s is %s (audit entry %s); 'cf store repair' re-creates it",
              store, key, problem, seq)
    event = BrokenCopy(store=store, key=key, problem=problem, detected_at=app.clock.now(), recording_id=rec_id,
                       healthy_stores=tuple(sorted(healthy_stores)),
                       audit_seq=seq)
    app.pm.store_copy_broken(event)  # every listener is called; a failing one is logged and audited by name
    return event


def lock_recording_media(app: App, rec: Any, ctx: RequestContext) -> list[str]:
    """Lock every media object of ``rec`` (a ``Recording`` with its media rows loaded) in every store
    until ``rec.retention_until``, and set the legal hold if it has one. Ingest calls this after its
    commit. Returns the problems, which are also audited (``store.lock``, outcome ``error``); the
    recording stays archived and ``cf store check`` / ``cf store repair`` find and fix the lock."""
    require_context(ctx, "lock_recording_media")
    hold = True if rec.legal_hold else None
    if rec.retention_until is None and hold is None:
        return []
    problems: list[str] = []
    for key in sorted({m.key for m in rec.media}):
        try:
            app.stores.lock(key, rec.retention_until, hold)
        except CallFortError as exc:
            problems.append(str(exc))
    if problems:
        app.audit.record(ctx, "store.lock", "recording", rec.id, "error",
                         {"until": rec.retention_until, "legal_hold": bool(hold), "problems": problems[:20]})
    return problems


# --------------------------------------------------------------------------- redundancy: check and repair

#: Copy states found by ``check_copies``. The first three need a repair of the data, the next two
#: only of the lock; ``unavailable`` is transient and is left alone.
COPY_STATES = ("missing", "damaged", "unknown_store", "lock_short", "hold_missing", "unavailable", "ok")
_DATA_PROBLEMS = ("missing", "damaged")
_LOCK_PROBLEMS = ("lock_short", "hold_missing")
_LIVE = LIVE_RECORDING_STATES


@attrs.frozen(kw_only=True)
class CopyState:
    """One copy of one media object in one store, as ``check_copies`` found it."""

    recording_id: str
    channel: str
    key: str
    store: str
    status: str
    #: Whether the catalog lists this copy (a store that did not confirm at ingest has no row).
    catalogued: bool
    detail: str = ""
    retain_until: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class ObjectCheck:
    """One media object (a channel of a recording) across all stores."""

    recording_id: str
    channel: str
    key: str
    size: int
    sha256: str
    retention_until: datetime | None
    legal_hold: bool
    copies: tuple[CopyState, ...]

    @property
    def problems(self) -> list[CopyState]:
        return [c for c in self.copies if c.status != "ok"]

    @property
    def healthy(self) -> list[CopyState]:
        return [c for c in self.copies if c.status in ("ok", *_LOCK_PROBLEMS)]


@attrs.frozen(kw_only=True)
class CheckReport:
    objects: int
    copies: int
    problems: list[CopyState]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for p in self.problems:
            counts[p.status] = counts.get(p.status, 0) + 1
        return {"ok": self.ok, "objects": self.objects, "copies": self.copies, "counts": counts,
                "problems": [p.as_dict() for p in self.problems]}


def _inspect(store: MediaStore, key: str, size: int, sha256: str, content: bool) -> tuple[str, str, datetime | None, bool]:
    """``(status, detail, retain_until, legal_hold)`` of one copy."""
    try:
        info = store.stat(key)
        if info.size != size:
            return "damaged", f"{info.size} bytes instead of {size}", info.retain_until, info.legal_hold
        if content and hashlib.sha256(store.get(key)).hexdigest() != sha256:
            return "damaged", "ciphertext SHA-256 differs from the catalog", info.retain_until, info.legal_hold
    except KeyError:
        return "missing", "", None, False
    except Exception as exc:  # a store that is down: transient, reported as such
        return "unavailable", f"{type(exc).__name__}: {exc}"[:300], None, False
    return "ok", "", info.retain_until, info.legal_hold


def _live_batches(app: App, recording_ids: tuple[str, ...] = (), batch: int = 200) -> Iterator[list[Recording]]:
    last = ""
    while True:
        with app.catalog.session() as s:
            q = (select(Recording).where(Recording.id > last, Recording.state.in_(_LIVE))
                 .options(selectinload(Recording.media)).order_by(Recording.id).limit(batch))
            if recording_ids:
                q = q.where(Recording.id.in_(recording_ids))
            rows = list(s.scalars(q))
        if not rows:
            return
        yield rows
        last = rows[-1].id


def check_recording(app: App, rec: Recording, *, content: bool = True) -> list[ObjectCheck]:
    """Every media object of ``rec`` in every configured store."""
    stores = app.stores
    now = app.clock.now()
    by_key: dict[str, list[MediaObject]] = {}
    for m in rec.media:
        by_key.setdefault(m.key, []).append(m)
    out: list[ObjectCheck] = []
    for key, rows in sorted(by_key.items()):
        first = rows[0]
        catalogued = {m.store for m in rows}
        copies: list[CopyState] = []
        for name in sorted(catalogued - set(stores.names)):
            copies.append(CopyState(recording_id=rec.id, channel=first.channel, key=key, store=name,
                                    status="unknown_store", catalogued=True,
                                    detail="the catalog names a store that is not configured"))
        for name in stores.names:
            status, detail, until, hold = _inspect(stores.stores[name], key, first.size, first.sha256, content)
            if status == "ok" and getattr(stores.stores[name], "object_lock", False):
                if rec.retention_until is not None and rec.retention_until > now and (
                        until is None or until < rec.retention_until):
                    status, detail = "lock_short", f"locked until {until.isoformat() if until else 'never'}, " \
                                                   f"the recording is kept until {rec.retention_until.isoformat()}"
                elif rec.legal_hold and not hold:
                    status, detail = "hold_missing", "the recording is under legal hold, the copy is not"
            copies.append(CopyState(recording_id=rec.id, channel=first.channel, key=key, store=name, status=status,
                                    catalogued=name in catalogued, detail=detail, retain_until=until))
        out.append(ObjectCheck(recording_id=rec.id, channel=first.channel, key=key, size=first.size,
                               sha256=first.sha256, retention_until=rec.retention_until,
                               legal_hold=bool(rec.legal_hold), copies=tuple(copies)))
    return out


def _report_found(app: App, obj: ObjectCheck) -> None:
    healthy = [c.store for c in obj.healthy]
    for c in obj.problems:
        if c.status in _DATA_PROBLEMS and c.catalogued:
            report_broken_copy(app, c.store, c.key, c.status, healthy)


def check_copies(app: App, ctx: RequestContext, *, content: bool = True,
                 recording_ids: tuple[str, ...] = ()) -> CheckReport:
    """Check every copy of every live recording's media objects in every store: present, same size,
    (``content``) same ciphertext SHA-256, and locked as long as the recording is kept. Broken
    catalogued copies are reported (``store.copy_broken``); the run is audited as ``store.check``."""
    require_context(ctx, "check_copies")
    objects = copies = 0
    problems: list[CopyState] = []
    for batch in _live_batches(app, recording_ids):
        for rec in batch:
            for obj in check_recording(app, rec, content=content):
                objects += 1
                copies += len(obj.copies)
                problems += obj.problems
                _report_found(app, obj)
    report = CheckReport(objects=objects, copies=copies, problems=problems)
    summary = report.as_dict()
    app.audit.record(ctx, "store.check", "store", None, "ok" if report.ok else "problems",
                     {"objects": objects, "copies": copies, "content": content, "counts": summary["counts"]})
    return report


@attrs.frozen(kw_only=True)
class RepairReport:
    objects: int
    repaired: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    skipped: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        """Every problem found was repaired (nothing failed, no store was unavailable)."""
        return not self.failed and not self.skipped

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "objects": self.objects, "repaired": self.repaired, "failed": self.failed,
                "skipped": self.skipped}


def _healthy_bytes(app: App, obj: ObjectCheck) -> tuple[bytes, str, datetime | None] | None:
    """The bytes of a verified healthy copy, its store, and the latest retain-until of the good copies."""
    until = max((c.retain_until for c in obj.healthy if c.retain_until is not None), default=None)
    for c in obj.healthy:
        try:
            data = app.stores.stores[c.store].get(obj.key)
        except Exception as exc:
            log.warning("repair: cannot read %s from %s: %s", obj.key, c.store, type(exc).__name__)
            continue
        if hashlib.sha256(data).hexdigest() == obj.sha256:
            return data, c.store, until
    return None


def _recreate(store: MediaStore, obj: ObjectCheck, data: bytes, until: datetime | None) -> str:
    """Put a good copy into ``store``; returns how (``recreated`` / ``restored``). Raises on failure."""
    # Remove what is wrong: a damaged object, or a store's leftovers (delete markers, a version put
    # over a locked one). Versions under a lock stay; if one of them is the good copy it reappears.
    try:
        store.delete(obj.key)
    except (KeyError, PermissionError):
        pass
    try:
        present = store.get(obj.key)
    except KeyError:
        present = None
    if present is not None:
        if hashlib.sha256(present).hexdigest() == obj.sha256:
            how = "restored"
        else:
            raise StoreError(f"a damaged copy of {obj.key} remains that the store refuses to delete (locked)",
                             hint="remove it with the storage provider's tools once its lock allows, then repair again")
    else:
        store.put(obj.key, data, retain_until=until)
        how = "recreated"
    if obj.legal_hold:
        store.lock_until(obj.key, legal_hold=True)
    if hashlib.sha256(store.get(obj.key)).hexdigest() != obj.sha256:
        raise StoreError(f"the new copy of {obj.key} does not verify")
    return how


def repair_copies(app: App, ctx: RequestContext, *, content: bool = True,
                  recording_ids: tuple[str, ...] = ()) -> RepairReport:
    """Re-create missing or damaged copies from a verified healthy one (keeping the latest
    retain-until of the good copies and at least the recording's retention end), extend locks that
    fall short, and add catalog rows for copies the catalog did not list. Audited per recording as
    ``store.repair`` with the new ``row_digest``."""
    require_context(ctx, "repair_copies")
    from .archive import row_digest

    stores = app.stores
    now = app.clock.now()
    objects = 0
    repaired: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for batch in _live_batches(app, recording_ids):
        for rec in batch:
            done: list[dict[str, Any]] = []
            new_rows: list[tuple[ObjectCheck, str]] = []
            for obj in check_recording(app, rec, content=content):
                objects += 1
                _report_found(app, obj)
                for c in obj.problems:
                    if c.status in ("unavailable", "unknown_store"):
                        skipped.append({"store": c.store, "key": c.key, "status": c.status, "detail": c.detail})
                if not any(c.status in _DATA_PROBLEMS + _LOCK_PROBLEMS for c in obj.copies):
                    continue
                keep = rec.retention_until if rec.retention_until and rec.retention_until > now else None
                source = _healthy_bytes(app, obj) if any(c.status in _DATA_PROBLEMS for c in obj.copies) else None
                for c in obj.problems:
                    entry = {"store": c.store, "key": c.key, "recording_id": rec.id, "problem": c.status}
                    try:
                        if c.status in _DATA_PROBLEMS:
                            if source is None:
                                raise StoreError(f"no healthy copy of {c.key} is left in any store",
                                                 hint="restore it from a backup")
                            data, entry["from"], until = source
                            until = max((u for u in (until, keep) if u is not None), default=None)
                            entry["how"] = _recreate(stores.stores[c.store], obj, data, until)
                            if not c.catalogued:
                                new_rows.append((obj, c.store))
                        elif c.status in _LOCK_PROBLEMS:
                            stores.stores[c.store].lock_until(c.key, keep, legal_hold=True if rec.legal_hold else None)
                            entry["how"] = "locked"
                        else:
                            continue
                    except Exception as exc:
                        entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
                        failed.append(entry)
                        log.error("repair of %s in store %s failed: %s", c.key, c.store, entry["error"])
                        continue
                    stores.healed(c.key, c.store)
                    done.append(entry)
            if done or any(f["recording_id"] == rec.id for f in failed):
                _record_repair(app, ctx, rec.id, done, [f for f in failed if f["recording_id"] == rec.id],
                               new_rows, row_digest)
                repaired += done
    return RepairReport(objects=objects, repaired=repaired, failed=failed, skipped=skipped)


def _record_repair(app: App, ctx: RequestContext, rec_id: str, done: list[dict[str, Any]],
                   failed: list[dict[str, Any]], new_rows: list[tuple[ObjectCheck, str]],
                   row_digest: Callable[[Recording], str]) -> None:
    """Catalog rows for the new copies and the audit entry, in one transaction."""
    with app.catalog.session() as s:
        rec = s.scalars(select(Recording).where(Recording.id == rec_id)
                        .options(selectinload(Recording.media))).one()
        for obj, store in new_rows:
            like = next(m for m in rec.media if m.key == obj.key)
            if any(m.key == obj.key and m.store == store for m in rec.media):
                continue
            rec.media.append(MediaObject(channel=like.channel, store=store, key=like.key, size=like.size,
                                         sha256=like.sha256, plain_size=like.plain_size,
                                         plain_sha256=like.plain_sha256, codec=like.codec))
        s.flush()
        app.audit.append(s, ctx, "store.repair", "recording", rec_id, "ok" if not failed else "partial",
                         {"repaired": done, "failed": failed, "row_digest": row_digest(rec)})
