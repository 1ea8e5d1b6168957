"""Verifying the audit chain fast: canonical bytes without a JSON round trip, plain rows, and
chunks of the chain checked in parallel.

Every entry stores ``prev_hash``, so a range of entries can be checked on its own (each entry's
keyed hash over its stored ``prev_hash``, and the links inside the range); the ranges are then
joined in order, checking at each boundary that the first entry of a range follows the last one
of the range before it. The first problem in chain order is reported exactly as a sequential walk
would report it. Ranges run in worker processes when the chain is long and the machine has more
than one core.

``canonical_bytes`` builds the very bytes ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=True)`` gives for an entry (the keys are fixed, so their order is too; strings go
through the same C encoder): the hash definition does not change and every existing chain still
verifies.
"""

from __future__ import annotations

import hmac
import json
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

import attrs
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine

from .db.models import AuditEntry

_encode = json.encoder.encode_basestring_ascii  # the C encoder json.dumps(ensure_ascii=True) uses
_json = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), sort_keys=True).encode

#: Below this many entries the chain is walked in this process (starting workers costs more).
PARALLEL_MIN = 20_000
#: Entries read per round trip.
FETCH = 5000


def _j(value: Any) -> str:
    if value.__class__ is str:
        return _encode(value)  # type: ignore[no-any-return]
    if value is None:
        return "null"
    return _json(value)


def utc_text(at: datetime) -> str:
    """``at`` as the chain hashes it (UTC, microseconds)."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_bytes(seq: Any, at: str, user: Any, host: Any, ip: Any, function: Any, action: Any,
                    target_kind: Any, target_id: Any, outcome: Any, approval_id: Any, detail: Any) -> bytes:
    """The canonical bytes of an entry whose time is already ``utc_text``: byte for byte what
    ``json.dumps`` of the entry's fields with sorted keys gives."""
    return (f'{{"action":{_j(action)},"approval_id":{_j(approval_id)},"at":{_j(at)},"detail":{_j(detail)},'
            f'"function":{_j(function)},"host":{_j(host)},"ip":{_j(ip)},"outcome":{_j(outcome)},'
            f'"seq":{_j(seq)},"target_id":{_j(target_id)},"target_kind":{_j(target_kind)},"user":{_j(user)}}}'
            ).encode("ascii")


# --------------------------------------------------------------------------- reading rows

_COLUMNS = ('seq, {at}, "user", host, ip, function, action, target_kind, target_id, outcome, approval_id, '
            'detail, prev_hash, hash')
#: The entry time as text, without building a datetime per row: PostgreSQL formats it in UTC;
#: SQLite returns what it stores (UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``).
_AT = {"postgresql": """to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')""", "sqlite": "at"}


def _at_text(raw: str, dialect: str) -> str:
    if dialect == "postgresql":
        return raw + "+00:00"
    if len(raw) == 26 and raw[10] == " ":
        return f"{raw[:10]}T{raw[11:]}+00:00"
    at = datetime.fromisoformat(raw)  # another stored form: parse it the slow way
    return utc_text(at if at.tzinfo else at.replace(tzinfo=UTC))


def _rows(conn: Connection, lo: int | None, hi: int) -> Iterator[tuple[Any, ...]]:
    """Entries ``lo..hi`` in seq order (``lo=None``: no lower bound, so that an entry inserted
    with seq 0 or below is seen), straight from the DB-API cursor in rounds of ``FETCH`` (a
    server-side cursor on PostgreSQL: the range is never held in memory at once)."""
    dialect = conn.dialect.name
    table = AuditEntry.__tablename__
    cols = _COLUMNS.format(at=_AT.get(dialect, "at"))
    raw = conn.connection.dbapi_connection
    assert raw is not None
    if dialect == "postgresql":
        cur = raw.cursor(name=f"cf_audit_verify_{os.getpid()}_{lo}")  # type: ignore[call-arg]
        mark = "%s"
    else:
        cur = raw.cursor()
        mark = "?"
    where = f"seq <= {mark}" if lo is None else f"seq >= {mark} AND seq <= {mark}"
    params = (hi,) if lo is None else (lo, hi)
    try:
        cur.execute(f"SELECT {cols} FROM {table} WHERE {where} ORDER BY seq", params)  # noqa: S608 - fixed names
        while True:
            batch = cur.fetchmany(FETCH)
            if not batch:
                return
            yield from batch
    finally:
        cur.close()


# --------------------------------------------------------------------------- one range


@attrs.frozen(kw_only=True)
class Chunk:
    """What the check of one range of entries found."""

    count: int = 0
    first_seq: int | None = None
    first_prev: str | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    #: the first problem inside the range: (entries checked before it, seq, message)
    problem: tuple[int, int, str] | None = None


def check_range(conn: Connection, mac_key: bytes, lo: int | None, hi: int,
                marks: Mapping[int, tuple[tuple[str, str], ...]]) -> Chunk:
    """Check entries ``lo..hi``: each keyed hash over the entry's stored ``prev_hash``, the links
    inside the range, and the hashes pinned by checkpoints and the anchor (``marks``: seq ->
    ((hash, message if it differs), ...)). The link of the first entry to the range before is
    checked by the caller."""
    dialect = conn.dialect.name
    pg = dialect == "postgresql"
    digest = hmac.digest
    compare = hmac.compare_digest
    enc = _encode
    count = 0
    first_seq = first_prev = None
    prev_seq: int | None = None
    prev_hash: str | None = None
    for row in _rows(conn, lo, hi):
        (seq, at, user, host, ip, function, action, target_kind, target_id, outcome, approval_id, detail,
         stored_prev, stored_hash) = row
        if first_seq is None:
            first_seq, first_prev = seq, stored_prev
        else:
            assert prev_seq is not None
            problem = None
            if seq != prev_seq + 1:
                problem = f"entry {prev_seq + 1} is missing (next present is {seq})"
                bad = prev_seq + 1
            elif stored_prev != prev_hash:
                problem = f"entry {seq} does not follow entry {seq - 1} (removed, inserted or reordered)"
                bad = seq
            if problem is not None:
                return Chunk(count=count, first_seq=first_seq, first_prev=first_prev, last_seq=prev_seq,
                             last_hash=prev_hash, problem=(count, bad, problem))
        if pg:
            at = at + "+00:00"
        elif len(at) == 26 and at[10] == " ":
            at = f"{at[:10]}T{at[11:]}+00:00"
        else:
            at = _at_text(at, dialect)
        try:  # the columns are text (the two nullable ones aside): the C encoder straight away
            body = (f'{{"action":{enc(action)},"approval_id":{"null" if approval_id is None else enc(approval_id)},'
                    f'"at":"{at}","detail":{enc(detail)},"function":{enc(function)},"host":{enc(host)},'
                    f'"ip":{enc(ip)},"outcome":{enc(outcome)},"seq":{seq},'
                    f'"target_id":{"null" if target_id is None else enc(target_id)},'
                    f'"target_kind":{enc(target_kind)},"user":{enc(user)}}}').encode("ascii")
        except TypeError:  # a value of another type: the general form
            body = canonical_bytes(seq, at, user, host, ip, function, action, target_kind, target_id, outcome,
                                   approval_id, detail)
        if not compare(digest(mac_key, stored_prev.encode() + body, "sha256").hex(), stored_hash):
            return Chunk(count=count, first_seq=first_seq, first_prev=first_prev, last_seq=prev_seq,
                         last_hash=prev_hash, problem=(count, seq, f"entry {seq} was changed, forged or re-hashed "
                                                                   "after it was written (its keyed hash does not match)"))
        if seq in marks:
            for pinned, message in marks[seq]:
                if pinned != stored_hash:
                    return Chunk(count=count, first_seq=first_seq, first_prev=first_prev, last_seq=prev_seq,
                                 last_hash=prev_hash, problem=(count, seq, message))
        prev_seq, prev_hash = seq, stored_hash
        count += 1
    return Chunk(count=count, first_seq=first_seq, first_prev=first_prev, last_seq=prev_seq, last_hash=prev_hash)


_ENGINES: dict[str, Engine] = {}


def _engine(url: str) -> Engine:
    """One engine per worker process and catalog (never one inherited from the parent)."""
    engine = _ENGINES.get(url)
    if engine is None:
        engine = _ENGINES[url] = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    return engine


def _check_in_worker(url: str, mac_key: bytes, lo: int | None, hi: int,
                     marks: Mapping[int, tuple[tuple[str, str], ...]]) -> Chunk:
    engine = _engine(url)
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            return check_range(conn, mac_key, lo, hi, marks)


# --------------------------------------------------------------------------- the whole chain


@attrs.frozen(kw_only=True)
class Walk:
    """The chain walked from ``start``: entries checked, the last seq and hash, and the first
    problem (seq, message) in chain order."""

    checked: int
    last: int
    last_hash: str
    bad_seq: int | None = None
    problem: str | None = None


def join(chunks: list[Chunk], start_seq: int, start_hash: str, checked: int = 0) -> Walk:
    """Join range results in chain order: the boundary of each range, then its own problem."""
    expected, prev_hash, last = start_seq, start_hash, start_seq - 1
    for c in chunks:
        if c.first_seq is not None:
            if c.first_seq < expected:
                return Walk(checked=checked, last=last, last_hash=prev_hash, bad_seq=c.first_seq,
                            problem=f"entry {c.first_seq} was inserted before the start of the chain")
            if c.first_seq != expected:
                return Walk(checked=checked, last=last, last_hash=prev_hash, bad_seq=expected,
                            problem=f"entry {expected} is missing (next present is {c.first_seq})")
            if c.first_prev != prev_hash:
                return Walk(checked=checked, last=last, last_hash=prev_hash, bad_seq=c.first_seq,
                            problem=f"entry {c.first_seq} does not follow entry {c.first_seq - 1} "
                                    "(removed, inserted or reordered)")
        if c.problem is not None:
            n, seq, message = c.problem
            return Walk(checked=checked + n, last=last, last_hash=prev_hash, bad_seq=seq, problem=message)
        if c.count:
            assert c.last_seq is not None and c.last_hash is not None
            checked += c.count
            expected, prev_hash, last = c.last_seq + 1, c.last_hash, c.last_seq
    return Walk(checked=checked, last=last, last_hash=prev_hash)


def ranges(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    """``lo..hi`` cut into ``parts`` consecutive ranges of about equal length."""
    n = hi - lo + 1
    if n <= 0:
        return []
    parts = max(1, min(parts, n))
    step = -(-n // parts)
    return [(a, min(hi, a + step - 1)) for a in range(lo, hi + 1, step)]


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def walk(url: str, conn: Connection, mac_key: bytes, *, start_seq: int, start_hash: str, bounded: bool,
         highest: int, marks: Mapping[int, tuple[tuple[str, str], ...]], workers: int,
         progress: Callable[[int], None] | None = None) -> Walk:
    """Check entries ``start_seq..highest`` (``bounded=False``: the first range has no lower bound,
    so that entries inserted below the start are seen); in ``workers`` processes when the chain is
    long, else on ``conn``."""
    lo = start_seq
    total = highest - lo + 1
    if workers <= 1 or total < PARALLEL_MIN or url.endswith(":memory:"):
        chunk = check_range(conn, mac_key, lo if bounded else None, highest, marks)
        if progress is not None:
            progress(chunk.count)
        return join([chunk], start_seq, start_hash)
    bounds: list[tuple[int | None, int]] = list(ranges(lo, highest, workers * 4))
    if not bounded:
        bounds[0] = (None, bounds[0][1])
    # fork is cheap, but only safe in a process without other threads (cf serve has some)
    method = "fork" if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods() \
        else "spawn"
    results: list[Chunk] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method)) as pool:
        futures = [pool.submit(_check_in_worker, url, mac_key, a, b, marks) for a, b in bounds]
        for f in futures:
            results.append(f.result())
            if progress is not None:
                progress(results[-1].count)
    return join(results, start_seq, start_hash)
