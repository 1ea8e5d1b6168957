"""Integrity scrubs: is everything still what was written?

- ``audit-chain``: the keyed hash chain, the signed checkpoints and the newest anchor outside the
  database (``app.audit.verify``); a missing audit key is a finding too.
- ``objects``: every media object of a live recording, in the store its catalog row names:
  present, same size, same ciphertext SHA-256, and every segment authenticates under the
  recording's data key (the envelope's GCM tags also bind recording, channel and position).
- ``orphans``: objects in a store that no catalog row names.
- ``data-keys``: every live recording has its wrapped data key, and it unwraps.
- ``catalog-rows``: each recording row (any state: archive, retention and purge all audit the
  digest) equals what the audit trail says it should be: the latest audit entry targeting the
  recording that carries ``row_digest`` must equal ``cfcore.archive.row_digest(rec)`` now; a
  recording the trail archived must still exist (or have a tombstone). A row edited or deleted
  directly in the database is found.
- ``platform``: no test-only plugin is loaded (``hookspecs/testing.py``: one could pin the clock
  or crash the process from the environment); one that is raises ``platform.test-plugin``.

Scrubs only read. Each problem becomes a ``Finding`` whose evidence holds ids only.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select

from hookspecs.types import Severity, StoreFailure

from ..audit import is_anchor_key
from ..db.models import AuditEntry, DataKey, MediaObject, Recording, TombstoneRow
from ..errors import CallFortError
from ..states import LIVE_RECORDING_STATES

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger(__name__)

#: Recording states whose media and data keys must exist.
LIVE_STATES = LIVE_RECORDING_STATES
_BATCH = 500


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


@attrs.frozen(kw_only=True)
class Finding:
    """A problem found by a scrub or a rule; ``evidence`` holds ids only."""

    rule: str
    severity: Severity
    summary: str
    evidence: tuple[str, ...] = attrs.field(converter=_strings)


@attrs.frozen(kw_only=True)
class ScrubReport:
    #: per scrub: how many things were checked, how many problems found, or why it was skipped
    checks: dict[str, dict[str, Any]]
    findings: list[Finding]

    def as_dict(self) -> dict[str, Any]:
        return {"checks": self.checks,
                "findings": [{"rule": f.rule, "severity": f.severity.value, "summary": f.summary,
                              "evidence": list(f.evidence)} for f in self.findings]}


def _live_recordings(app: App) -> Iterator[list[Recording]]:
    """Live recordings in batches (id order), with their media rows loaded."""
    from sqlalchemy.orm import selectinload

    last = ""
    while True:
        with app.catalog.session() as s:
            rows = s.scalars(select(Recording).where(Recording.id > last, Recording.state.in_(LIVE_STATES))
                             .options(selectinload(Recording.media)).order_by(Recording.id).limit(_BATCH)).all()
        if not rows:
            return
        yield list(rows)
        last = rows[-1].id


# --------------------------------------------------------------------------- audit chain


def scrub_audit(app: App) -> tuple[dict[str, Any], list[Finding]]:
    from ..errors import ConfigError

    try:
        res = app.audit.verify()
    except ConfigError as exc:  # a key missing or damaged: nothing can be vouched for
        return {"checked": 0, "problems": 1, "first_bad_seq": 0}, [Finding(
            rule="scrub.audit-chain", severity=Severity.CRITICAL,
            summary=f"audit trail cannot be verified: {exc.message}", evidence=("audit:keys",))]
    info: dict[str, Any] = {"checked": res.checked, "checkpoints": res.checkpoints, "anchor_seq": res.anchor_seq,
            "problems": 0 if res.ok else 1}
    if not res.ok:
        # entries from here on are not vouched for by the keyed chain (catalog-rows ignores them)
        info["first_bad_seq"] = res.first_bad_seq
    if res.ok:
        return info, []
    ev = (f"audit:{res.first_bad_seq}",) if res.first_bad_seq is not None else ("audit:chain",)
    return info, [Finding(rule="scrub.audit-chain", severity=Severity.CRITICAL,
                          summary=f"audit trail verification failed: {res.problem}", evidence=ev)]


# --------------------------------------------------------------------------- media objects


def _object_ev(rec_id: str, m: MediaObject) -> tuple[str, ...]:
    return (f"recording:{rec_id}", f"object:{m.store}/{m.key}")


def _sealed_only(app: App, rec_id: str) -> bool:
    """A site with ``[sync] local_key = "none"``: the data key exists only sealed to the archive."""
    from ..db.models_sync import ArchiveWrap

    with app.catalog.session() as s:
        return s.get(DataKey, rec_id) is None and s.get(ArchiveWrap, rec_id) is not None


def _data_key_for(app: App, rec_id: str) -> bytes | None:
    from ..crypto.keyring import unwrap_data_key

    with app.catalog.session() as s:
        dk = s.get(DataKey, rec_id)
    if dk is None or dk.wrapped is None or dk.kek_id is None:
        return None
    return unwrap_data_key(app, rec_id, dk.kek_id, dk.wrapped)


def check_object(app: App, rec_id: str, m: MediaObject, *, content: bool,
                 data_key: Callable[[], bytes | None]) -> Finding | None:
    """One media row against its store. ``content``: read it whole, hash it and authenticate
    every segment; else only presence and size."""
    stores = app.stores.stores
    store = stores.get(m.store)
    if store is None:
        return Finding(rule="scrub.object-missing", severity=Severity.HIGH,
                       summary=f"media object of recording {rec_id} ({m.channel}) is catalogued in store "
                               f"'{m.store}', which is not configured",
                       evidence=_object_ev(rec_id, m))
    try:
        if not content:
            size = store.stat(m.key).size
            if size != m.size:
                return Finding(rule="scrub.object-changed", severity=Severity.CRITICAL,
                               summary=f"media object of recording {rec_id} ({m.channel}) in store '{m.store}' has "
                                       f"{size} bytes, the catalog says {m.size}",
                               evidence=_object_ev(rec_id, m))
            return None
        blob = store.get(m.key)
    except KeyError:
        return Finding(rule="scrub.object-missing", severity=Severity.CRITICAL,
                       summary=f"media object of recording {rec_id} ({m.channel}) is missing from store '{m.store}'",
                       evidence=_object_ev(rec_id, m))
    problems = []
    if len(blob) != m.size:
        problems.append(f"size {len(blob)} instead of {m.size}")
    if hashlib.sha256(blob).hexdigest() != m.sha256:
        problems.append("ciphertext SHA-256 differs from the catalog")
    try:
        key = data_key()
        if key is None:
            if not _sealed_only(app, rec_id):  # a site without a key of its own checks the hash only
                problems.append("no data key to authenticate it")
        else:
            from ..crypto.envelope import decrypt

            plain = decrypt(key, rec_id, m.channel, blob)
            if m.plain_sha256 and hashlib.sha256(plain).hexdigest() != m.plain_sha256:
                problems.append("decrypted audio differs from the catalog")
    except CallFortError as exc:
        problems.append(exc.message)
    if not problems:
        return None
    return Finding(rule="scrub.object-changed", severity=Severity.CRITICAL,
                   summary=f"media object of recording {rec_id} ({m.channel}) in store '{m.store}' was changed: "
                           + "; ".join(problems),
                   evidence=_object_ev(rec_id, m))


def _store_down(name: str, exc: Exception) -> Finding:
    return Finding(rule="scrub.store-unavailable", severity=Severity.HIGH,
                   summary=f"store '{name}' could not be checked: {type(exc).__name__}: {exc}"[:400],
                   evidence=(f"store:{name}",))


def scrub_objects(app: App, *, content: bool = True) -> tuple[dict[str, Any], list[Finding]]:
    findings: list[Finding] = []
    checked = 0
    down: set[str] = set()  # a store that failed is reported once and not asked again this scrub
    for batch in _live_recordings(app):
        for rec in batch:
            cache: dict[str, bytes | None] = {}

            def data_key(rec_id: str = rec.id, cache: dict[str, bytes | None] = cache) -> bytes | None:
                if rec_id not in cache:
                    cache[rec_id] = _data_key_for(app, rec_id)
                return cache[rec_id]

            for m in rec.media:
                if m.store in down:
                    continue
                checked += 1
                try:
                    f = check_object(app, rec.id, m, content=content, data_key=data_key)
                except StoreFailure as exc:
                    down.add(m.store)
                    f = _store_down(m.store, exc)
                except CallFortError as exc:
                    f = Finding(rule="scrub.object-changed", severity=Severity.CRITICAL,
                                summary=f"media object of recording {rec.id} ({m.channel}) cannot be verified: "
                                        f"{exc.message}",
                                evidence=_object_ev(rec.id, m))
                if f is not None:
                    findings.append(f)
    return {"checked": checked, "content": content, "problems": len(findings), "stores_down": sorted(down)}, findings


def _in_flight(key: str, now: Any) -> bool:
    """True for an object of CallFort's own layout younger than an ingest can take: its catalog
    row may not be committed yet (``sweep_orphans`` uses the same age)."""
    try:
        from ..archive import parse_object_key, recording_id_time
        from ..ingest import ORPHAN_AGE
    except ImportError:
        return False
    parsed = parse_object_key(key)
    return parsed is not None and recording_id_time(parsed[0]) > now - ORPHAN_AGE


def scrub_orphans(app: App) -> tuple[dict[str, Any], list[Finding]]:
    """Objects in a store that no media row names. Candidates are re-checked against the catalog
    after listing, and objects of an ingest still in flight are left alone."""
    findings: list[Finding] = []
    listed = 0
    now = app.clock.now()
    for name, store in app.stores.stores.items():
        with app.catalog.session() as s:
            known = set(s.scalars(select(MediaObject.key).where(MediaObject.store == name)))
        candidates = []
        try:
            for key in store.keys():
                if is_anchor_key(key):
                    continue  # the audit trail's anchors (cfcore.audit), not media
                listed += 1
                if key not in known and not _in_flight(key, now):
                    candidates.append(key)
        except StoreFailure as exc:
            findings.append(_store_down(name, exc))
            continue
        for i in range(0, len(candidates), _BATCH):
            chunk = candidates[i:i + _BATCH]
            with app.catalog.session() as s:
                now_known = set(s.scalars(select(MediaObject.key).where(MediaObject.store == name,
                                                                        MediaObject.key.in_(chunk))))
            for key in chunk:
                if key not in now_known:
                    findings.append(Finding(rule="scrub.object-orphaned", severity=Severity.WARNING,
                                            summary=f"store '{name}' holds an object that no catalog row names",
                                            evidence=(f"object:{name}/{key}",)))
    return {"checked": listed, "problems": len(findings)}, findings


# --------------------------------------------------------------------------- data keys


def scrub_data_keys(app: App) -> tuple[dict[str, Any], list[Finding]]:
    from ..crypto.keyring import unwrap_data_key

    findings: list[Finding] = []
    checked = 0
    for batch in _live_recordings(app):
        ids = [r.id for r in batch]
        with app.catalog.session() as s:
            keys = {k.recording_id: k for k in s.scalars(select(DataKey).where(DataKey.recording_id.in_(ids)))}
            from ..db.models_sync import ArchiveWrap

            # a site with [sync] local_key = "none" keeps only the key sealed to the archive
            sealed = set(s.scalars(select(ArchiveWrap.recording_id).where(ArchiveWrap.recording_id.in_(ids))))
        for rid in ids:
            checked += 1
            dk = keys.get(rid)
            problem = None
            if dk is None and rid in sealed:
                continue
            if dk is None:
                problem = "has no data key"
            elif dk.wrapped is None or dk.destroyed_at is not None or dk.kek_id is None:
                problem = "has a destroyed data key although it is not purged"
            else:
                try:
                    unwrap_data_key(app, rid, dk.kek_id, dk.wrapped)
                except CallFortError as exc:
                    problem = f"has a data key that cannot be unwrapped: {exc.message}"
                except Exception as exc:  # a provider's own error type: unwrapping failed all the same
                    problem = f"has a data key that cannot be unwrapped ({type(exc).__name__})"
            if problem:
                findings.append(Finding(rule="scrub.data-key", severity=Severity.CRITICAL,
                                        summary=f"live recording {rid} {problem}", evidence=(f"recording:{rid}",)))
    return {"checked": checked, "problems": len(findings)}, findings


# --------------------------------------------------------------------------- catalog rows vs audit


def _row_digest() -> Callable[[Recording], str] | None:
    try:
        from ..archive import row_digest
    except ImportError:
        return None
    return row_digest  # type: ignore[no-any-return]


#: Entries that carry a ``row_digest`` because they read the row (e.g. ``recording.show``): they
#: report what was there, they do not vouch for it, else a read after a manipulation would bless it.
READ_ACTIONS = ("recording.show", "recording.list", "recording.play", "recording.export", "recording.download")


def _vouchers(s: Any, ids: list[str], trusted_below: int | None = None,
              ) -> tuple[dict[str, tuple[int, str]], dict[str, list[tuple[int, str]]], dict[str, int]]:
    """recording id -> (seq, row_digest) of the latest change entry that carries a row_digest,
    recording id -> the reads after it with the digest they saw, and recording id -> the
    seq of an untrusted voucher (at or after ``trusted_below``, where the keyed chain breaks)."""
    out: dict[str, tuple[int, str]] = {}
    reads: dict[str, list[tuple[int, str]]] = {}
    untrusted: dict[str, int] = {}
    rows = s.execute(select(AuditEntry.seq, AuditEntry.target_id, AuditEntry.action, AuditEntry.detail)
                     .where(AuditEntry.target_id.in_(ids), AuditEntry.target_kind == "recording",
                            AuditEntry.detail.like('%"row_digest":%'))
                     .order_by(AuditEntry.seq)).all()
    for seq, tid, action, detail in rows:
        if trusted_below is not None and seq >= trusted_below:
            # an entry the keyed chain does not vouch for (forged or after a break) vouches for nothing
            if action not in READ_ACTIONS:
                untrusted[tid] = seq
            continue
        try:
            digest = json.loads(detail).get("row_digest")
        except (ValueError, AttributeError):
            continue
        if not isinstance(digest, str):
            continue
        if action in READ_ACTIONS:
            reads.setdefault(tid, []).append((seq, digest))
        else:
            out[tid] = (seq, digest)
            reads.pop(tid, None)
    return out, reads, untrusted


def scrub_catalog_rows(app: App, trusted_below: int | None = None, *,
                       verified: bool = False) -> tuple[dict[str, Any], list[Finding]]:
    """``trusted_below``: the first audit seq the keyed chain does not vouch for (from the
    ``audit-chain`` scrub of the same run, ``verified``); verified here when not given."""
    from sqlalchemy.orm import selectinload

    from ..errors import ConfigError

    if not verified:
        try:
            res = app.audit.verify()
            trusted_below = None if res.ok else res.first_bad_seq
        except ConfigError:
            trusted_below = 0  # no audit key: no entry vouches for anything
    row_digest = _row_digest()
    if row_digest is None:
        return {"skipped": "cfcore.archive is not available"}, []
    findings: list[Finding] = []
    checked = 0
    last = ""
    existing: set[str] = set()
    while True:
        with app.catalog.session() as s:
            rows = s.scalars(select(Recording).where(Recording.id > last).order_by(Recording.id).limit(_BATCH)
                             .options(selectinload(Recording.segments), selectinload(Recording.consents),
                                      selectinload(Recording.subjects), selectinload(Recording.media))).all()
            if not rows:
                break
            vouch, reads, untrusted = _vouchers(s, [r.id for r in rows], trusted_below)
            for rec in rows:
                existing.add(rec.id)
                checked += 1
                now = row_digest(rec)
                v = vouch.get(rec.id)
                if rec.id in untrusted and (v is None or v[1] != now):
                    findings.append(Finding(
                        rule="scrub.catalog-row", severity=Severity.CRITICAL,
                        summary=f"catalog row of recording {rec.id} is vouched for only by audit entry "
                                f"{untrusted[rec.id]}, which the keyed audit chain does not confirm (forged?)",
                        evidence=(f"recording:{rec.id}", f"audit:{untrusted[rec.id]}", f"row_digest:{now[:16]}")))
                elif v is None:
                    findings.append(Finding(
                        rule="scrub.catalog-row", severity=Severity.CRITICAL,
                        summary=f"catalog row of recording {rec.id} is not vouched for by any audit entry "
                                "(inserted or changed outside CallFort?)",
                        evidence=(f"recording:{rec.id}", f"row_digest:{now[:16]}")))
                elif v[1] != now:
                    findings.append(Finding(
                        rule="scrub.catalog-row", severity=Severity.CRITICAL,
                        summary=f"catalog row of recording {rec.id} differs from what audit entry {v[0]} "
                                "recorded (changed directly in the database?)",
                        evidence=(f"recording:{rec.id}", f"audit:{v[0]}", f"row_digest:{now[:16]}")))
                if v is not None:
                    for seq, seen in reads.get(rec.id, []):
                        if seen != v[1]:
                            findings.append(Finding(
                                rule="scrub.catalog-row", severity=Severity.CRITICAL,
                                summary=f"catalog row of recording {rec.id} read by audit entry {seq} differed "
                                        f"from what audit entry {v[0]} recorded (changed and perhaps changed back)",
                                evidence=(f"recording:{rec.id}", f"audit:{v[0]}", f"audit:{seq}")))
        last = rows[-1].id
    # recordings the trail archived that are gone without a tombstone
    with app.catalog.session() as s:
        archived = s.execute(select(AuditEntry.target_id, AuditEntry.seq)
                             .where(AuditEntry.action == "recording.archive", AuditEntry.target_kind == "recording",
                                    AuditEntry.outcome == "ok")).all()
        gone = {tid: seq for tid, seq in archived if tid and tid not in existing}
        if gone:
            tomb = set(s.scalars(select(TombstoneRow.recording_id).where(TombstoneRow.recording_id.in_(list(gone)))))
            for tid, seq in sorted(gone.items()):
                if tid not in tomb:
                    findings.append(Finding(
                        rule="scrub.catalog-row", severity=Severity.CRITICAL,
                        summary=f"recording {tid} archived by audit entry {seq} is missing from the catalog "
                                "and has no tombstone (deleted outside CallFort?)",
                        evidence=(f"recording:{tid}", f"audit:{seq}")))
    return {"checked": checked, "problems": len(findings)}, findings


# --------------------------------------------------------------------------- platform


def scrub_platform(app: App) -> tuple[dict[str, Any], list[Finding]]:
    """A test-only plugin in a running deployment is an alert: it lets the environment pin the
    clock (purge early, mint long-lived links) and crash the process."""
    names = app.pm.test_only_plugins()
    findings = [Finding(rule="platform.test-plugin", severity=Severity.HIGH,
                        summary=f"test-only plugin '{name}' is loaded (clock and crash points can be set "
                                "from the environment; uninstall it)",
                        evidence=(f"plugin:{name}",)) for name in names]
    return {"checked": 1, "test_only_plugins": names, "problems": len(findings)}, findings


# --------------------------------------------------------------------------- all


SCRUBS: dict[str, Callable[..., tuple[dict[str, Any], list[Finding]]]] = {
    "audit-chain": scrub_audit,
    "objects": scrub_objects,
    "orphans": scrub_orphans,
    "data-keys": scrub_data_keys,
    "catalog-rows": scrub_catalog_rows,
    "platform": scrub_platform,
}


def run_scrubs(app: App, *, content: bool = True, only: tuple[str, ...] = ()) -> ScrubReport:
    """Run every scrub (or ``only`` these); a scrub that cannot run (a store down, no catalog
    module yet) is reported in ``checks`` and as a warning finding, and does not stop the others."""
    checks: dict[str, dict[str, Any]] = {}
    findings: list[Finding] = []
    day = app.clock.now().date().isoformat()
    for name, fn in SCRUBS.items():
        if only and name not in only:
            continue
        kwargs: dict[str, Any] = {"content": content} if name == "objects" else {}
        if name == "catalog-rows" and "audit-chain" in checks and "error" not in checks["audit-chain"]:
            kwargs = {"trusted_below": checks["audit-chain"].get("first_bad_seq"), "verified": True}
        try:
            info, found = fn(app, **kwargs)
        except Exception as exc:  # report and go on: one broken scrub must not blind the others
            log.error("FIS scrub %s failed: %s: %s", name, type(exc).__name__, exc)
            checks[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            findings.append(Finding(rule="scrub.failed", severity=Severity.HIGH,
                                    summary=f"integrity scrub '{name}' could not run ({type(exc).__name__})",
                                    evidence=(f"scrub:{name}", f"day:{day}")))
            continue
        checks[name] = info
        findings.extend(found)
    return ScrubReport(checks=checks, findings=findings)
