"""The audit chain: every edit, deletion, insertion and reordering is found and named."""

import json
import threading
from datetime import timedelta, timezone

import pytest
from archive_helpers import login_env, make_user
from sqlalchemy import select, text

from cfcore.audit import canonical, chain_hash
from cfcore.authority import SYSTEM
from cfcore.db.models import AuditCheckpoint, AuditEntry, AuditHead


def forger_hash(prev, e):
    """What a forger with database access but without the audit MAC key can compute: the
    documented canonical form, hashed without the key (or with any key they guess)."""
    import hashlib

    return hashlib.sha256(prev.encode() + canonical(e)).hexdigest()


def _fill(app, n=10):
    for i in range(n):
        app.audit.record(SYSTEM, "test.action", "thing", str(i), "ok", {"i": i})


def _bad(app):
    res = app.audit.verify()
    assert not res.ok
    return res


def test_intact_chain_verifies(app):
    _fill(app)
    app.audit.checkpoint()
    _fill(app, 3)
    res = app.audit.verify()
    assert res.ok and res.checked == 13 and res.checkpoints == 1


@pytest.mark.parametrize("column,value", [("outcome", "denied"), ("user", "mallory"),
                                          ("detail", '{"i":99}'), ("target_id", "7"), ("ip", "10.0.0.9")])
def test_edited_entry_is_named(app, column, value):
    _fill(app)
    with app.catalog.session() as s:
        s.execute(text(f"UPDATE audit_log SET \"{column}\" = :v WHERE seq = 4"), {"v": value})
    res = _bad(app)
    assert res.first_bad_seq == 4 and "changed" in res.problem


def test_edited_entry_with_recomputed_hash_is_named(app):
    _fill(app)
    with app.catalog.session() as s:
        e = s.get(AuditEntry, 4)
        e.outcome = "denied"
        e.hash = forger_hash(e.prev_hash, e)  # the forger recomputes this entry's hash...
    res = _bad(app)
    assert res.first_bad_seq == 4 and "keyed hash" in res.problem  # ...but cannot without the key


def test_deleted_entry_is_named(app):
    _fill(app)
    with app.catalog.session() as s:
        s.execute(text("DELETE FROM audit_log WHERE seq = 6"))
    res = _bad(app)
    assert res.first_bad_seq == 6 and "missing" in res.problem


def test_deleted_first_entry_is_named(app):
    _fill(app)
    with app.catalog.session() as s:
        s.execute(text("DELETE FROM audit_log WHERE seq = 1"))
    assert _bad(app).first_bad_seq == 1


def test_deleted_tail_is_found_by_the_head(app):
    _fill(app)
    with app.catalog.session() as s:
        s.execute(text("DELETE FROM audit_log WHERE seq >= 9"))
    res = _bad(app)
    assert res.first_bad_seq == 9


def test_deleted_tail_with_rewound_head_is_found_by_checkpoint(app):
    _fill(app)
    app.audit.checkpoint()
    with app.catalog.session() as s:
        s.execute(text("DELETE FROM audit_log WHERE seq >= 9"))
        last = s.get(AuditEntry, 8)
        head = s.get(AuditHead, 1)
        head.seq, head.hash = 8, last.hash
    res = _bad(app)
    assert res.first_bad_seq == 9 and "removed" in res.problem


def test_inserted_entry_is_named(app):
    _fill(app)
    with app.catalog.session() as s:
        # make room: shift 6.. up by one, insert a forged entry at 6 chained to 5
        for seq in range(10, 5, -1):
            s.execute(text("UPDATE audit_log SET seq = :n WHERE seq = :o"), {"n": seq + 1, "o": seq})
        prev = s.get(AuditEntry, 5)
        forged = AuditEntry(seq=6, at=prev.at, user="mallory", host="h", ip="1.2.3.4", function="f",
                            action="recording.export", target_kind="recording", target_id="x", outcome="ok",
                            approval_id=None, detail="{}", prev_hash=prev.hash, hash="")
        forged.hash = forger_hash(prev.hash, forged)
        s.add(forged)
    res = _bad(app)
    assert res.first_bad_seq == 6  # the forged entry's keyed hash does not match


def test_entry_inserted_before_the_start_is_named(app):
    _fill(app, 3)
    with app.catalog.session() as s:
        first = s.get(AuditEntry, 1)
        s.add(AuditEntry(seq=0, at=first.at, user="mallory", host="h", ip="1.2.3.4", function="f", action="x",
                         target_kind="x", target_id=None, outcome="ok", approval_id=None, detail="{}",
                         prev_hash="0" * 64, hash="0" * 64))
    assert _bad(app).first_bad_seq == 0


def test_reordered_entries_are_named(app):
    _fill(app)
    cols = ["at", "user", "host", "ip", "function", "action", "target_kind", "target_id", "outcome", "approval_id",
            "detail", "prev_hash", "hash"]
    with app.catalog.session() as s:
        a, b = s.get(AuditEntry, 3), s.get(AuditEntry, 7)
        va, vb = {c: getattr(a, c) for c in cols}, {c: getattr(b, c) for c in cols}
        for c in cols:
            setattr(a, c, vb[c])
            setattr(b, c, va[c])
    res = _bad(app)
    assert res.first_bad_seq == 3


def test_forged_or_moved_checkpoint_is_found(app):
    _fill(app)
    app.audit.checkpoint()
    with app.catalog.session() as s:
        cp = s.scalars(select(AuditCheckpoint)).one()
        cp.seq = 5  # moved to another entry: hash does not match there
    assert _bad(app).first_bad_seq == 5
    with app.catalog.session() as s:
        cp = s.scalars(select(AuditCheckpoint)).one()
        e = s.get(AuditEntry, 5)
        cp.hash = e.hash  # matches the chain now, but the signature does not
    res = _bad(app)
    assert res.first_bad_seq == 5 and "signature" in res.problem


def test_whole_chain_rewrite_with_the_stolen_key_is_found_by_the_anchor(app):
    """Even a forger who also read the MAC key from the key directory is caught: the anchor
    outside the database names the old hash (the checkpoints in the database were deleted)."""
    _fill(app)
    app.audit.checkpoint()
    key = app.audit.mac_key()
    with app.catalog.session() as s:
        s.execute(text("DELETE FROM audit_checkpoints"))
        prev = "0" * 64
        for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq)):
            if e.seq == 2:
                e.outcome = "denied"
            e.prev_hash = prev
            e.hash = chain_hash(key, prev, e)
            prev = e.hash
        head = s.get(AuditHead, 1)
        head.hash = prev
    res = _bad(app)
    assert res.first_bad_seq == 10 and "anchor" in res.problem


def test_removed_head_row_is_found(app):
    _fill(app, 2)
    with app.catalog.session() as s:
        s.execute(text("DELETE FROM audit_head"))
    assert "head" in _bad(app).problem


def test_clock_in_another_zone_hashes_the_same(app, frozen_clock):
    frozen_clock.set(frozen_clock.now().astimezone(timezone(timedelta(hours=5, minutes=30))))
    _fill(app, 3)
    assert app.audit.verify().ok


def test_concurrent_writers_keep_one_chain(app, make_app, deployment):
    apps = [make_app(deployment) for _ in range(4)]
    errors = []

    def work(a, k):
        try:
            for i in range(15):
                a.audit.record(SYSTEM, "test.concurrent", "thing", f"{k}-{i}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(a, k)) for k, a in enumerate(apps)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    res = app.audit.verify()
    assert res.ok and res.checked == 60


def test_cli_verify_exit_codes_and_names_the_entry(app, run_cf):
    make_user(app, "auditor1", ["auditor"])
    _fill(app, 5)
    ok = run_cf("audit", "verify", "--json", "--progress", env=login_env("auditor1"))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    assert "verifying the audit trail" in ok.stderr  # the bar goes to stderr, never into the JSON
    cp = run_cf("audit", "checkpoint", env=login_env("auditor1"))
    assert cp.returncode == 0 and "checkpoint at entry" in cp.stdout
    with app.catalog.session() as s:
        s.execute(text("UPDATE audit_log SET \"user\" = 'mallory' WHERE seq = 3"))
    bad = run_cf("audit", "verify", "--json", env=login_env("auditor1"))
    assert bad.returncode == 7
    assert json.loads(bad.stdout)["first_bad_seq"] == 3
    assert "entry 3" in bad.stderr and "Traceback" not in bad.stderr
    human = run_cf("audit", "verify", env=login_env("auditor1"))
    assert human.returncode == 7 and "audit trail broken at entry 3" in human.stderr
    listing = run_cf("audit", "list", "--json", "--action", "audit.verify", env=login_env("auditor1"))
    assert listing.returncode == 0
    assert [e["outcome"] for e in json.loads(listing.stdout)] == ["ok", "failed", "failed"]
    assert all(e["user"] == "auditor1" and e["host"] for e in json.loads(listing.stdout))


def test_audit_time_never_runs_backwards(app, make_app, deployment, frozen_clock):
    """A process whose clock lags (or was set back) cannot date an entry before the previous one:
    in the same transaction, in a new one, and from another process's App with its own clock."""
    from datetime import UTC, datetime

    from cfcore.clock import FrozenClock, utc

    app.audit.record(SYSTEM, "test.action", "thing", "1")
    frozen_clock.advance(timedelta(hours=-1))
    app.audit.record(SYSTEM, "test.action", "thing", "2")  # a new transaction, clock an hour back
    with app.catalog.session() as s:
        app.audit.append(s, SYSTEM, "test.action", "thing", "3")
        frozen_clock.advance(timedelta(days=-400))
        app.audit.append(s, SYSTEM, "test.action", "thing", "4")  # same transaction
    lagging = make_app(deployment, clock=FrozenClock(datetime(2001, 1, 1, tzinfo=UTC)))
    lagging.audit.record(SYSTEM, "test.action", "thing", "5")
    frozen_clock.set(frozen_clock.now() + timedelta(days=401))
    app.audit.record(SYSTEM, "test.action", "thing", "6")  # a clock ahead is taken as it is
    ats = [utc(e.at) for e in app.audit.entries(0, action="test.action")]
    assert [e.target_id for e in app.audit.entries(0, action="test.action")] == list("123456")
    assert ats == sorted(ats) and ats[0] == ats[4] and ats[5] > ats[4]
    assert app.audit.verify().ok
