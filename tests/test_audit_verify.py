"""The fast audit verification (issue 20 item 4): the canonical bytes are unchanged, chunks checked
in parallel worker processes find every tampering a sequential walk finds (inside a chunk and at a
chunk boundary), and the incremental check from the newest anchor finds what was written since.

Tampering is done by direct SQL, as an attacker with database access would (SQLite, or PostgreSQL
with ``CF_TEST_DB=postgres``).
"""

from __future__ import annotations

import json
import random
import string
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import select, text

from cfcore import audit_verify
from cfcore.audit import canonical, canonical_json
from cfcore.authority import SYSTEM
from cfcore.db.models import AuditEntry

EVERY = 1000  # anchors only where a test asks for one
N = 40  # entries; with two workers the chain is cut into 8 ranges of 5: 1-5, 6-10, ..., 36-40


@pytest.fixture
def deployment(deployment):
    with deployment.open("a") as f:
        f.write(f"\n[audit]\nanchor_every = {EVERY}\n")
    return deployment


@pytest.fixture
def parallel(monkeypatch):
    """Worker processes even for a short chain."""
    monkeypatch.setattr(audit_verify, "PARALLEL_MIN", 0)


def _fill(app, n, start=0):
    for i in range(start, start + n):
        app.audit.record(SYSTEM, "test.action", "thing", str(i), "ok", {"i": i, "name": "Zoë \"x\" \u2028"})


def _sql(app, stmt, **params):
    with app.catalog.session() as s:
        s.execute(text(stmt), params)


def _both(app):
    """Verify with two worker processes and sequentially; both must say the same."""
    par = app.audit.verify(workers=2)
    seq = app.audit.verify(workers=1)
    assert par == seq
    return par


def test_canonical_bytes_are_the_json_definition(app):
    chars = string.printable + "äöü€\u2028\x00\x7f\U0001F600\"\\/"
    rnd = random.Random(7)

    def s(opt=False):
        if opt and rnd.random() < 0.3:
            return None
        return "".join(rnd.choice(chars) for _ in range(rnd.randint(0, 12)))

    for _ in range(3000):
        zone = timezone(timedelta(minutes=rnd.randint(-720, 720)))
        e = SimpleNamespace(seq=rnd.randint(-3, 10**12), user=s(), host=s(), ip=s(), function=s(), action=s(),
                            at=datetime(2020, 1, 1, tzinfo=zone) + timedelta(microseconds=rnd.randint(0, 10**14)),
                            target_kind=s(), target_id=s(True), outcome=s(), approval_id=s(True), detail=s())
        assert canonical(e) == canonical_json(e)
    _fill(app, 5)
    with app.catalog.session() as ses:
        for e in ses.scalars(select(AuditEntry)):
            assert canonical(e) == canonical_json(e)
            json.loads(canonical(e))


def test_a_clean_chain_verifies_in_parallel(app, parallel):
    _fill(app, N)
    res = _both(app)
    assert res.ok and res.checked == N


@pytest.mark.parametrize("seq", [13, 15, 16])  # inside a range, the last of one, the first of the next
def test_a_changed_entry_is_found_in_parallel(app, parallel, seq):
    _fill(app, N)
    _sql(app, "UPDATE audit_log SET outcome = 'denied' WHERE seq = :s", s=seq)
    res = _both(app)
    assert not res.ok and res.first_bad_seq == seq and "keyed hash" in res.problem and res.checked == seq - 1


@pytest.mark.parametrize("seq", [13, 16])
def test_a_removed_entry_is_found_in_parallel(app, parallel, seq):
    _fill(app, N)
    _sql(app, "DELETE FROM audit_log WHERE seq = :s", s=seq)
    res = _both(app)
    assert not res.ok and res.first_bad_seq == seq and f"entry {seq} is missing" in res.problem


def test_a_removed_range_across_a_chunk_boundary_is_found(app, parallel):
    _fill(app, N)
    _sql(app, "DELETE FROM audit_log WHERE seq BETWEEN 14 AND 22")
    res = _both(app)
    assert not res.ok and res.first_bad_seq == 14 and "entry 14 is missing (next present is 23)" in res.problem


def test_a_relinked_entry_at_a_chunk_boundary_is_found(app, parallel):
    """The first entry of a range pointed at another predecessor: the join of the ranges sees it."""
    _fill(app, N)
    with app.catalog.session() as s:
        other = s.scalar(select(AuditEntry.hash).where(AuditEntry.seq == 3))
    _sql(app, "UPDATE audit_log SET prev_hash = :h WHERE seq = 21", h=other)
    res = _both(app)
    assert not res.ok and res.first_bad_seq == 21 and "does not follow entry 20" in res.problem


def test_swapped_entries_across_a_boundary_are_found(app, parallel):
    _fill(app, N)
    _sql(app, "UPDATE audit_log SET seq = -1 WHERE seq = 10")
    _sql(app, "UPDATE audit_log SET seq = 10 WHERE seq = 11")
    _sql(app, "UPDATE audit_log SET seq = 11 WHERE seq = -1")
    res = _both(app)
    assert not res.ok and res.first_bad_seq == 10 and "does not follow" in res.problem


def test_an_entry_inserted_before_the_start_is_found_in_parallel(app, parallel):
    _fill(app, N)
    _sql(app, "INSERT INTO audit_log (seq, at, \"user\", host, ip, function, action, target_kind, target_id, outcome, "
              "approval_id, detail, prev_hash, hash) SELECT 0, at, \"user\", host, ip, function, action, target_kind, "
              "target_id, outcome, approval_id, detail, prev_hash, hash FROM audit_log WHERE seq = 1")
    res = _both(app)
    assert not res.ok and res.first_bad_seq == 0 and "before the start" in res.problem


def test_incremental_check_starts_at_the_anchor(app, parallel):
    _fill(app, N)
    anchor = app.audit.anchor()
    assert anchor["seq"] == N
    _fill(app, 3, start=N)
    inc = app.audit.verify(incremental=True)
    assert inc.ok and inc.checked == 4 and inc.anchor_seq == N  # the anchored entry and the three after it

    # a change after the anchor: found by both
    _sql(app, "UPDATE audit_log SET outcome = 'denied' WHERE seq = :s", s=N + 2)
    inc = app.audit.verify(incremental=True)
    assert not inc.ok and inc.first_bad_seq == N + 2
    _sql(app, "UPDATE audit_log SET outcome = 'ok' WHERE seq = :s", s=N + 2)
    assert app.audit.verify(incremental=True).ok


def test_tampering_before_the_anchor_needs_the_full_walk(app, parallel):
    _fill(app, N)
    app.audit.anchor()
    _fill(app, 2, start=N)
    _sql(app, "UPDATE audit_log SET outcome = 'denied' WHERE seq = 7")
    assert app.audit.verify(incremental=True).ok  # the quick check covers what came after the anchor
    res = _both(app)
    assert not res.ok and res.first_bad_seq == 7


def test_incremental_check_sees_a_changed_anchored_entry_and_a_removed_tail(app, parallel):
    _fill(app, N)
    app.audit.anchor()
    _sql(app, "UPDATE audit_log SET outcome = 'denied' WHERE seq = :s", s=N)
    res = app.audit.verify(incremental=True)
    assert not res.ok and res.first_bad_seq == N
    _sql(app, "DELETE FROM audit_log WHERE seq >= :s", s=N)
    res = app.audit.verify(incremental=True)
    assert not res.ok and "removed" in res.problem
