"""The tamper-evident audit trail.

Each entry is chained: ``hash = SHA-256(prev_hash + canonical JSON of the entry)``. Appends lock the
single ``audit_head`` row, which serialises concurrent writers (PostgreSQL ``FOR UPDATE``; SQLite's
``BEGIN IMMEDIATE``) and lets ``verify`` notice a removed tail. Signed checkpoints (Ed25519) pin the
chain so that a rewrite of the whole chain by someone with database access is still detected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hookspecs.types import AuditView, RequestContext

from .clock import Clock, utc
from .crypto.keyfiles import load_or_create_secret
from .db.catalog import Catalog
from .db.models import AuditCheckpoint, AuditEntry, AuditHead

GENESIS = "0" * 64


def canonical(entry: Any) -> bytes:
    """The canonical bytes of an entry (an ``AuditEntry`` or a row with the same columns)."""
    # ``at`` in UTC: the catalog returns UTC, so a clock in another zone must hash the same way.
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


def chain_hash(prev_hash: str, entry: Any) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(entry)).hexdigest()


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

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


#: The actor recorded for the system's own work (purge job, scans, capture).
SYSTEM_USER = "system"


class AuditTrail:
    def __init__(self, catalog: Catalog, clock: Clock, signing_key_path: Path) -> None:
        self.catalog = catalog
        self.clock = clock
        self.signing_key_path = signing_key_path

    # ------------------------------------------------------------------ writing
    def append(self, session: Session, ctx: RequestContext | None, action: str, target_kind: str,
               target_id: str | None, outcome: str = "ok", detail: Mapping[str, Any] | None = None,
               ) -> int:
        """Append one entry in ``session``'s transaction (so the entry and the change it records
        commit together). ``ctx=None`` records the system itself. Returns the entry's seq."""
        head = self._lock_head(session)
        # audit time never runs backwards: a process whose clock lags (or was set back) dates its
        # entry at the previous entry's time, never before it
        at = max(self.clock.now().astimezone(UTC), self._last_at(session, head))
        entry = AuditEntry(
            seq=head.seq + 1,
            at=at,
            user=ctx.actor.username if ctx else SYSTEM_USER,
            host=ctx.host if ctx else "localhost",
            ip=ctx.ip if ctx else "127.0.0.1",
            function=ctx.function if ctx else "system",
            action=action,
            target_kind=target_kind,
            target_id=target_id,
            outcome=outcome,
            approval_id=ctx.approval_id if ctx else None,
            detail=canonical_detail(detail),
            prev_hash=head.hash,
            hash="",
        )
        entry.hash = chain_hash(head.hash, entry)
        session.add(entry)
        head.seq, head.hash = entry.seq, entry.hash
        session.info["cf_audit_last_at"] = (session.get_transaction(), at)
        # no flush here: the entry and the head are written with the transaction's next flush or
        # its commit, so many appends in one transaction become one batched insert
        return entry.seq

    def record(self, ctx: RequestContext | None, action: str, target_kind: str, target_id: str | None,
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
            dialect = session.get_bind().dialect.name
            ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(AuditHead)
            session.execute(ins.values(id=1, seq=0, hash=GENESIS).on_conflict_do_nothing())
            head = session.execute(q).scalar_one()
        session.info["cf_audit_head"] = (tx, head)
        return head

    # ------------------------------------------------------------------ checkpoints
    def _signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        seed = load_or_create_secret(self.signing_key_path, 32)
        key = Ed25519PrivateKey.from_private_bytes(seed)
        pub = key.public_key().public_bytes_raw()
        return hashlib.sha256(pub).hexdigest()[:16], key

    def checkpoint(self) -> AuditCheckpoint | None:
        """Sign the current head. Returns None when the trail is empty."""
        key_id, key = self._signing_key()
        with self.catalog.session() as s:
            head = self._lock_head(s)
            if head.seq == 0:
                return None
            sig = key.sign(f"{head.seq}:{head.hash}".encode()).hex()
            cp = AuditCheckpoint(seq=head.seq, hash=head.hash, at=self.clock.now(), key_id=key_id, signature=sig)
            s.add(cp)
            return cp

    # ------------------------------------------------------------------ verifying
    def verify(self, batch: int = 5000, progress: Callable[[int], None] | None = None) -> VerifyResult:
        """Walk the whole chain; report the first entry that was changed, removed, inserted or
        reordered, a removed tail, or a checkpoint that does not match."""
        key_id, key = self._signing_key()
        pub = key.public_key()
        with self.catalog.session() as s:
            if not self.catalog.is_sqlite:
                # one snapshot for the whole walk: entries appended meanwhile are not "inserted"
                s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            cp_list = list(s.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq, AuditCheckpoint.id)))
            checkpoints: dict[int, list[AuditCheckpoint]] = {}
            for c in cp_list:
                checkpoints.setdefault(c.seq, []).append(c)
            head = s.get(AuditHead, 1)
            prev_hash, expected_seq, checked = GENESIS, 1, 0
            last = 0
            first_batch = True
            while True:
                q = select(*AuditEntry.__table__.columns).order_by(AuditEntry.seq).limit(batch)
                # the first batch has no lower bound: a row inserted with seq 0 or below is noticed;
                # plain rows (not ORM objects) carry the same attributes and read several times faster
                rows = s.execute(q if first_batch else q.where(AuditEntry.seq > last)).all()
                first_batch = False
                if not rows:
                    break
                if progress is not None:
                    progress(len(rows))
                for e in rows:
                    if e.seq < expected_seq:
                        return VerifyResult(ok=False, checked=checked, checkpoints=len(cp_list),
                                            first_bad_seq=e.seq,
                                            problem=f"entry {e.seq} was inserted before the start of the chain")
                    if e.seq != expected_seq:
                        return VerifyResult(ok=False, checked=checked, checkpoints=len(cp_list),
                                            first_bad_seq=expected_seq,
                                            problem=f"entry {expected_seq} is missing (next present is {e.seq})")
                    if e.prev_hash != prev_hash:
                        return VerifyResult(ok=False, checked=checked, checkpoints=len(cp_list),
                                            first_bad_seq=e.seq, problem=f"entry {e.seq} does not follow entry {e.seq - 1} (removed, inserted or reordered)")
                    if chain_hash(prev_hash, e) != e.hash:
                        return VerifyResult(ok=False, checked=checked, checkpoints=len(cp_list),
                                            first_bad_seq=e.seq, problem=f"entry {e.seq} was changed after it was written")
                    if any(cp.hash != e.hash for cp in checkpoints.get(e.seq, ())):
                        return VerifyResult(ok=False, checked=checked, checkpoints=len(cp_list),
                                            first_bad_seq=e.seq, problem=f"checkpoint at entry {e.seq} does not match the chain")
                    prev_hash, expected_seq, last = e.hash, e.seq + 1, e.seq
                    checked += 1
            for cp in cp_list:
                if cp.key_id != key_id:
                    return VerifyResult(ok=False, checked=checked, checkpoints=len(cp_list),
                                        first_bad_seq=cp.seq, problem=f"checkpoint at {cp.seq} signed by unknown key {cp.key_id}")
                try:
                    pub.verify(bytes.fromhex(cp.signature), f"{cp.seq}:{cp.hash}".encode())
                except (InvalidSignature, ValueError):
                    return VerifyResult(ok=False, checked=checked, checkpoints=len(cp_list),
                                        first_bad_seq=cp.seq, problem=f"checkpoint at entry {cp.seq} has a bad signature")
                if cp.seq > last:
                    return VerifyResult(ok=False, checked=checked, checkpoints=len(cp_list),
                                        first_bad_seq=last + 1, problem=f"entries after {last} were removed (checkpoint at {cp.seq})")
            if head is None and last:
                return VerifyResult(ok=False, checked=checked, checkpoints=len(cp_list), first_bad_seq=last,
                                    problem="the chain head row was removed")
            if head is not None and (head.seq != last or head.hash != prev_hash):
                return VerifyResult(ok=False, checked=checked, checkpoints=len(cp_list),
                                    first_bad_seq=last + 1 if head.seq > last else head.seq,
                                    problem=f"the chain ends at entry {last} but its head says {head.seq}")
            return VerifyResult(ok=True, checked=checked, checkpoints=len(cp_list))

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
