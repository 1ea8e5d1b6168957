"""The tamper-evident audit trail.

Each entry is chained and keyed: ``hash = HMAC-SHA256(audit MAC key, prev_hash + canonical JSON
of the entry)``. The MAC key lives in the key directory (``audit-mac.key``, 0600), never in the
database, so someone with write access to the database can neither re-hash an edited chain nor
forge an entry. Appends lock the single ``audit_head`` row, which serialises concurrent writers
(PostgreSQL ``FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE``).

*Anchors* pin the chain outside the database: a signed (Ed25519, ``audit-signing.key``) JSON
``{seq, hash, at, mac_key_id, signing_key_id}`` written to the anchor stores (``[audit]
anchor_stores``, default every archive store; with Object Lock on S3, ``anchor_retain_days``)
under ``audit-anchors/<seq>.json`` — automatically every ``anchor_every`` entries (after the
commit that reaches the multiple) and by ``cf serve`` every ``anchor_interval_seconds``.
``verify`` checks the database against the newest anchor: a removed tail (also with ``audit_head``
moved back and the in-database checkpoints deleted), a re-hashed chain, a swapped MAC or signing
key are all reported. What an attacker can still do without the keys and the anchor store is
bounded: remove entries written after the newest anchor (at most ``anchor_every`` entries or
``anchor_interval_seconds`` of them). In-database checkpoints (``cf audit checkpoint``) are kept
and also written as anchors.

``verify`` never creates a key: a missing key is a ``ConfigError``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from hookspecs.types import AuditView, RequestContext

from .audit_verify import canonical_bytes, utc_text
from .authority import require_context
from .clock import Clock, utc
from .crypto.keyfiles import load_secret
from .db.catalog import Catalog
from .db.models import AuditCheckpoint, AuditEntry, AuditHead

log = logging.getLogger(__name__)

GENESIS = "0" * 64
ANCHOR_PREFIX = "audit-anchors/"
ANCHOR_FORMAT = 1
_ANCHOR_KEY = re.compile(r"^audit-anchors/(\d{12})\.json$")
#: defaults of ``[audit]``
ANCHOR_EVERY = 1000
ANCHOR_INTERVAL_SECONDS = 300
ANCHOR_RETAIN_DAYS = 3650


def canonical(entry: Any) -> bytes:
    """The canonical bytes of an entry (an ``AuditEntry`` or a row with the same columns): the
    JSON of its fields with sorted keys, built without a dict or a sort (``audit_verify``)."""
    # ``at`` in UTC: the catalog returns UTC, so a clock in another zone must hash the same way.
    return canonical_bytes(entry.seq, utc_text(entry.at), entry.user, entry.host, entry.ip, entry.function,
                           entry.action, entry.target_kind, entry.target_id, entry.outcome, entry.approval_id,
                           entry.detail)


def canonical_json(entry: Any) -> bytes:
    """The definition of ``canonical`` (``json.dumps`` of the fields with sorted keys), kept to
    test that the fast form gives the very same bytes."""
    body = {
        "seq": entry.seq,
        "at": entry.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "user": entry.user,
        "host": entry.host,
        "ip": entry.ip,
        "function": entry.function,
        "action": entry.action,
        "target_kind": entry.target_kind,
        "target_id": entry.target_id,
        "outcome": entry.outcome,
        "approval_id": entry.approval_id,
        "detail": entry.detail,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def chain_hash(mac_key: bytes, prev_hash: str, entry: Any) -> str:
    """The keyed hash of ``entry`` after ``prev_hash``."""
    return hmac.new(mac_key, prev_hash.encode() + canonical(entry), hashlib.sha256).hexdigest()


class _Row:
    """The attributes ``canonical`` reads, from a dict of column values."""

    __slots__ = ("seq", "at", "user", "host", "ip", "function", "action", "target_kind", "target_id", "outcome",
                 "approval_id", "detail")

    def __init__(self, values: Mapping[str, Any]) -> None:
        for name in self.__slots__:
            setattr(self, name, values[name])


def key_id(kind: str, material: bytes) -> str:
    """A public fingerprint of a key (never the key): 16 hex characters."""
    return hashlib.sha256(f"callfort-{kind}-id:".encode() + material).hexdigest()[:16]


def anchor_key(seq: int) -> str:
    return f"{ANCHOR_PREFIX}{seq:012d}.json"


def is_anchor_key(key: str) -> bool:
    return key.startswith(ANCHOR_PREFIX)


def _anchor_body(a: Mapping[str, Any]) -> bytes:
    body = {k: a[k] for k in ("format", "seq", "hash", "at", "mac_key_id", "signing_key_id")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def canonical_detail(detail: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(detail or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      default=str)


@attrs.frozen(kw_only=True)
class VerifyResult:
    ok: bool
    checked: int
    checkpoints: int
    first_bad_seq: int | None = None
    problem: str | None = None
    #: the newest anchor found outside the database (None: none yet)
    anchor_seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


#: The actor recorded for the system's own work (purge job, scans, capture).
SYSTEM_USER = "system"


class AuditTrail:
    def __init__(self, catalog: Catalog, clock: Clock, signing_key_path: Path, *, mac_key_path: Path,
                 config: Any = None) -> None:
        self.catalog = catalog
        self.clock = clock
        self.signing_key_path = signing_key_path
        self.mac_key_path = mac_key_path
        self.config = config
        self._mac_key: bytes | None = None
        #: returns ``{name: MediaStore}`` of the anchor stores; set by ``App``
        self.anchor_stores: Callable[[], Mapping[str, Any]] | None = None
        #: when the ``audit.anchor`` job of this process last anchored
        self.last_periodic_anchor: datetime | None = None

    def _cfg(self, key: str, default: int) -> int:
        return int(self.config.get(f"audit.{key}", int, default)) if self.config is not None else default

    @property
    def anchor_every(self) -> int:
        return max(1, self._cfg("anchor_every", ANCHOR_EVERY))

    # ------------------------------------------------------------------ keys (never created here)
    def mac_key(self) -> bytes:
        if self._mac_key is None:
            self._mac_key = load_secret(self.mac_key_path, 32)
        return self._mac_key

    def _signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        seed = load_secret(self.signing_key_path, 32)
        key = Ed25519PrivateKey.from_private_bytes(seed)
        pub = key.public_key().public_bytes_raw()
        return hashlib.sha256(pub).hexdigest()[:16], key

    # ------------------------------------------------------------------ writing
    def append(self, session: Session, ctx: RequestContext, action: str, target_kind: str,
               target_id: str | None, outcome: str = "ok", detail: Mapping[str, Any] | None = None,
               ) -> int:
        """Append one entry in ``session``'s transaction (so the entry and the change it records
        commit together). ``ctx`` names who acts; the system's own work passes
        ``cfcore.authority.system_context(function)``, and a missing context is a ``TypeError``,
        never an anonymous entry. Returns the entry's seq."""
        [row] = self._chain(session, ctx, [(action, target_kind, target_id, outcome, detail)])
        # no flush here: the entry and the head are written with the transaction's next flush or
        # its commit, so many appends in one transaction become one batched insert
        session.add(AuditEntry(**row))
        return int(row["seq"])

    def append_many(self, session: Session, ctx: RequestContext,
                    items: Sequence[tuple[str, str, str | None, str, Mapping[str, Any] | None]]) -> list[int]:
        """Append ``(action, target_kind, target_id, outcome, detail)`` entries of one actor in
        ``session``'s transaction, as ``append`` does one by one (the same chain, times and anchors),
        with one insert statement for all of them: a purge batch audits hundreds of recordings.
        Returns their seqs in order."""
        require_context(ctx, "an audit entry")
        if not items:
            return []
        from sqlalchemy import insert

        rows = self._chain(session, ctx, items)
        session.execute(insert(AuditEntry), rows)
        return [int(r["seq"]) for r in rows]

    def _chain(self, session: Session, ctx: RequestContext,
               items: Sequence[tuple[str, str, str | None, str, Mapping[str, Any] | None]]) -> list[dict[str, Any]]:
        """The column values of the entries ``items`` after the locked head, chained and keyed; the
        head moves past them and an anchor is due after the commit when they cross ``anchor_every``."""
        require_context(ctx, "an audit entry")
        mac_key = self.mac_key()
        head = self._lock_head(session)
        # audit time never runs backwards: a process whose clock lags (or was set back) dates its
        # entry at the previous entry's time, never before it
        at = max(self.clock.now().astimezone(UTC), self._last_at(session, head))
        who = {"user": ctx.actor.username, "host": ctx.host, "ip": ctx.ip, "function": ctx.function,
               "approval_id": ctx.approval_id}
        first, prev = head.seq + 1, head.hash
        rows = []
        for seq, (action, target_kind, target_id, outcome, detail) in enumerate(items, first):
            row = {"seq": seq, "at": at, **who, "action": action, "target_kind": target_kind, "target_id": target_id,
                   "outcome": outcome, "detail": canonical_detail(detail), "prev_hash": prev}
            row["hash"] = prev = chain_hash(mac_key, prev, _Row(row))
            rows.append(row)
        last = first + len(rows) - 1
        head.seq, head.hash = last, prev
        session.info["cf_audit_last_at"] = (session.get_transaction(), at)
        every = self.anchor_every
        if last // every > (first - 1) // every and not session.info.get("cf_audit_anchor_due"):
            # anchored after the commit (the anchor must name a committed entry)
            session.info["cf_audit_anchor_due"] = True
            event.listen(session, "after_commit", self._anchor_after_commit, once=True)
        return rows

    def _anchor_after_commit(self, session: Session) -> None:
        session.info.pop("cf_audit_anchor_due", None)
        try:
            self.catalog.sync()  # an entry committed unsynced (playback) must be durable before an anchor names it
            self.anchor()
        except Exception as exc:  # the change is committed; the periodic job anchors later
            log.warning("audit anchor not written: %s: %s", type(exc).__name__, exc)

    def record(self, ctx: RequestContext, action: str, target_kind: str, target_id: str | None,
               outcome: str = "ok", detail: Mapping[str, Any] | None = None) -> int:
        """Append in a transaction of its own (for reads, denials and failures)."""
        with self.catalog.session() as s:
            return self.append(s, ctx, action, target_kind, target_id, outcome, detail)

    def _last_at(self, session: Session, head: AuditHead) -> datetime:
        """The time of the entry ``head`` points at (under the head lock), or the epoch."""
        cached = session.info.get("cf_audit_last_at")
        if cached is not None and cached[0] is session.get_transaction():
            return cached[1]  # type: ignore[no-any-return]
        if head.seq == 0:
            return datetime.min.replace(tzinfo=UTC)
        with session.no_autoflush:
            last = session.execute(select(AuditEntry.at).where(AuditEntry.seq == head.seq)).scalar_one_or_none()
        return utc(last) if last is not None else datetime.min.replace(tzinfo=UTC)

    def _lock_head(self, session: Session) -> AuditHead:
        """Lock the head row, creating it on first use. The insert ignores a conflict, so two
        first writers at once both end up waiting on the one row instead of one failing; the
        select refreshes the row, so an earlier unlocked read in the same session is not reused.

        The lock lasts until the transaction ends, so later appends in the same transaction reuse
        the locked row without asking the database again."""
        tx = session.get_transaction()
        cached = session.info.get("cf_audit_head")
        if cached is not None and tx is not None and cached[0] is tx:
            return cached[1]  # type: ignore[no-any-return]
        q = select(AuditHead).where(AuditHead.id == 1).with_for_update().execution_options(populate_existing=True)
        head = session.execute(q).scalar_one_or_none()
        if head is None:
            from sqlalchemy.dialects import postgresql, sqlite  # here: each costs every cf command

            dialect = session.get_bind().dialect.name
            ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(AuditHead)
            session.execute(ins.values(id=1, seq=0, hash=GENESIS).on_conflict_do_nothing())
            head = session.execute(q).scalar_one()
        session.info["cf_audit_head"] = (tx, head)
        return head

    # ------------------------------------------------------------------ checkpoints and anchors
    def checkpoint(self) -> AuditCheckpoint | None:
        """Sign the current head into the database and anchor it outside. None when empty."""
        kid, key = self._signing_key()
        with self.catalog.session() as s:
            head = self._lock_head(s)
            if head.seq == 0:
                return None
            sig = key.sign(f"{head.seq}:{head.hash}".encode()).hex()
            cp = AuditCheckpoint(seq=head.seq, hash=head.hash, at=self.clock.now(), key_id=kid, signature=sig)
            s.add(cp)
        self.anchor()
        return cp

    def _stores(self) -> Mapping[str, Any]:
        if self.anchor_stores is None:
            return {}
        return self.anchor_stores()

    def anchor(self) -> dict[str, Any] | None:
        """Write a signed anchor of the current head to every anchor store (skipped where one
        exists for that entry). Returns the anchor, None when the trail is empty. A store that
        fails raises after the others were written."""
        kid, key = self._signing_key()
        mac_key = self.mac_key()
        with self.catalog.session() as s:
            head = s.get(AuditHead, 1)
            if head is None or head.seq == 0:
                return None
            seq, hash_ = head.seq, head.hash
        now = self.clock.now().astimezone(UTC)
        a: dict[str, Any] = {"format": ANCHOR_FORMAT, "seq": seq, "hash": hash_,
                             "at": now.isoformat(timespec="microseconds"),
                             "mac_key_id": key_id("audit-mac", mac_key), "signing_key_id": kid}
        a["signature"] = key.sign(_anchor_body(a)).hex()
        data = json.dumps(a, sort_keys=True, indent=1).encode() + b"\n"
        until = now + timedelta(days=self._cfg("anchor_retain_days", ANCHOR_RETAIN_DAYS))
        errors: list[str] = []
        for name, store in self._stores().items():
            k = anchor_key(seq)
            try:
                if store.exists(k):
                    continue
                store.put(k, data, retain_until=until)
            except FileExistsError:
                continue
            except Exception as exc:  # noqa: BLE001 - one store down must not stop the others
                errors.append(f"{name}: {type(exc).__name__}")
        if errors:
            from .errors import StoreError

            raise StoreError("audit anchor not written to " + ", ".join(errors))
        return a

    def newest_anchor(self) -> tuple[dict[str, Any] | None, str | None]:
        """The newest anchor over all anchor stores, or a problem (unreadable, malformed)."""
        best: tuple[int, str, Any] | None = None
        try:
            stores = self._stores()
        except Exception as exc:  # noqa: BLE001 - reported as a problem of verify
            return None, f"anchor stores cannot be opened ({type(exc).__name__}: {exc})"
        for name, store in stores.items():
            try:
                for k in store.keys(ANCHOR_PREFIX):
                    m = _ANCHOR_KEY.match(k)
                    if m is None:
                        continue
                    seq = int(m.group(1))
                    if best is None or seq > best[0]:
                        best = (seq, k, store)
            except Exception as exc:  # noqa: BLE001 - reported as a problem of verify
                return None, f"anchor store '{name}' cannot be listed ({type(exc).__name__})"
        if best is None:
            return None, None
        seq, k, store = best
        try:
            a = json.loads(store.get(k))
            if not isinstance(a, dict) or a.get("format") != ANCHOR_FORMAT or a.get("seq") != seq:
                raise ValueError("not an anchor")
            _anchor_body(a)
            bytes.fromhex(str(a["signature"]))
        except Exception as exc:  # noqa: BLE001
            return None, f"anchor {k} is unreadable or malformed ({type(exc).__name__})"
        return a, None

    # ------------------------------------------------------------------ verifying
    def verify(self, batch: int = 5000, progress: Callable[[int], None] | None = None, *,
               workers: int | None = None, incremental: bool = False) -> VerifyResult:
        """Walk the whole chain; report the first entry that was changed, removed, inserted or
        reordered, a removed tail, a checkpoint or anchor that does not match, or a swapped key.
        Raises ``ConfigError`` when a key is missing (never creates one).

        Long chains are checked in ranges by ``workers`` processes (default: one per core; see
        ``cfcore.audit_verify``). ``incremental``: start at the newest anchor instead of the first
        entry (the anchored entry must still match the signed anchor and its keyed hash): a quick
        check of what was written since, for a frequent job. Only a full walk finds an entry before
        the anchor that was changed or removed. ``batch`` is kept for callers of 1.0."""
        from .audit_verify import default_workers, walk

        kid, key = self._signing_key()
        mac_key = self.mac_key()
        pub = key.public_key()
        anchor, anchor_problem = self.newest_anchor()
        anchor_seq = anchor["seq"] if anchor else None

        def bad(checked: int, ncp: int, seq: int | None, problem: str) -> VerifyResult:
            return VerifyResult(ok=False, checked=checked, checkpoints=ncp, first_bad_seq=seq, problem=problem,
                                anchor_seq=anchor_seq)

        if anchor_problem:
            return bad(0, 0, None, anchor_problem)
        if anchor is not None:
            if anchor.get("signing_key_id") != kid:
                return bad(0, 0, anchor_seq, f"anchor at entry {anchor_seq} was signed by key {anchor.get('signing_key_id')}, "
                                             f"not by this deployment's key {kid} (signing key swapped?)")
            try:
                pub.verify(bytes.fromhex(anchor["signature"]), _anchor_body(anchor))
            except (InvalidSignature, ValueError):
                return bad(0, 0, anchor_seq, f"anchor at entry {anchor_seq} has a bad signature")
            if anchor.get("mac_key_id") != key_id("audit-mac", mac_key):
                return bad(0, 0, anchor_seq, f"the audit MAC key is not the one anchored at entry {anchor_seq} "
                                             "(key swapped?)")
        with self.catalog.session() as s:
            if not self.catalog.is_sqlite:
                # one snapshot: entries appended meanwhile (after ``highest``) are not "inserted"
                s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            cp_list = list(s.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq, AuditCheckpoint.id)))
            ncp = len(cp_list)
            head = s.get(AuditHead, 1)
            highest = s.scalar(select(func.max(AuditEntry.seq)))
            marks: dict[int, tuple[tuple[str, str], ...]] = {}
            for c in cp_list:
                marks[c.seq] = (*marks.get(c.seq, ()), (c.hash, f"checkpoint at entry {c.seq} does not match the chain"))
            if anchor is not None:
                aseq = int(anchor["seq"])
                marks[aseq] = (*marks.get(aseq, ()), (anchor["hash"], f"entry {aseq} differs from the anchor written "
                                                      "outside the database (chain rewritten)"))
            start_seq, start_hash, bounded = 1, GENESIS, False
            if incremental and anchor_seq is not None and highest is not None and anchor_seq <= highest:
                pinned = s.scalar(select(AuditEntry.prev_hash).where(AuditEntry.seq == anchor_seq))
                if pinned is not None:
                    # the anchored entry is checked against the anchor and its keyed hash below
                    start_seq, start_hash, bounded = anchor_seq, pinned, True
            if highest is None:
                w_checked, last, prev_hash, w_bad, w_problem = 0, 0, GENESIS, None, None
            else:
                w = walk(self.catalog.url, s.connection(), mac_key, start_seq=start_seq, start_hash=start_hash,
                         bounded=bounded, highest=highest, marks=marks,
                         workers=default_workers() if workers is None else workers, progress=progress)
                w_checked, last, prev_hash, w_bad, w_problem = w.checked, w.last, w.last_hash, w.bad_seq, w.problem
        if w_problem is not None:
            return bad(w_checked, ncp, w_bad, w_problem)
        checked = w_checked
        for cp in cp_list:
            if cp.key_id != kid:
                return bad(checked, ncp, cp.seq, f"checkpoint at {cp.seq} signed by unknown key {cp.key_id}")
            try:
                pub.verify(bytes.fromhex(cp.signature), f"{cp.seq}:{cp.hash}".encode())
            except (InvalidSignature, ValueError):
                return bad(checked, ncp, cp.seq, f"checkpoint at entry {cp.seq} has a bad signature")
            if cp.seq > last:
                return bad(checked, ncp, last + 1, f"entries after {last} were removed (checkpoint at {cp.seq})")
        if anchor_seq is not None and anchor_seq > last:
            return bad(checked, ncp, last + 1, f"entries after {last} were removed: the anchor outside the database "
                                               f"names entry {anchor_seq}")
        if anchor is None and last >= self.anchor_every and self._stores():
            return bad(checked, ncp, None, f"no anchor outside the database although the trail has {last} entries "
                                           f"(anchors are written every {self.anchor_every}; removed?)")
        if head is None and last:
            return bad(checked, ncp, last, "the chain head row was removed")
        if head is not None and (head.seq != last or head.hash != prev_hash):
            return bad(checked, ncp, last + 1 if head.seq > last else head.seq,
                       f"the chain ends at entry {last} but its head says {head.seq}")
        return VerifyResult(ok=True, checked=checked, checkpoints=ncp, anchor_seq=anchor_seq)

    # ------------------------------------------------------------------ reading
    def entries(self, since_seq: int = 0, *, limit: int | None = None, action: str | None = None,
                target_id: str | None = None, user: str | None = None,
                since: datetime | None = None) -> Iterator[AuditView]:
        with self.catalog.session() as s:
            q = select(AuditEntry).where(AuditEntry.seq > since_seq).order_by(AuditEntry.seq)
            if action:
                q = q.where(AuditEntry.action == action)
            if target_id:
                q = q.where(AuditEntry.target_id == target_id)
            if user:
                q = q.where(AuditEntry.user == user)
            if since:
                q = q.where(AuditEntry.at >= since)
            if limit:
                q = q.limit(limit)
            rows = s.scalars(q).all()
        for e in rows:
            yield AuditView(seq=e.seq, at=e.at, user=e.user, host=e.host, ip=e.ip, function=e.function,
                            action=e.action, target_kind=e.target_kind, target_id=e.target_id,
                            outcome=e.outcome, detail=json.loads(e.detail))
