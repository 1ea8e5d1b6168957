"""Issue 11 item 4: an audit trail that survives write access to the database.

Each attack is done as an attacker with database access would, by direct SQL (SQLite, or
PostgreSQL with ``CF_TEST_DB=postgres``), and must be found by ``verify``, by ``cf audit verify``
and by the FIS, which alerts the DPO. The chain is keyed with a MAC key the database does not
hold, and anchored (signed) outside the database, in the media stores.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import UTC, datetime

import pytest
from archive_helpers import login_env, make_user
from fis_helpers import ingest
from s3_helpers import s3_toml
from sqlalchemy import func, select, text

from cfcore.archive import row_digest
from cfcore.audit import ANCHOR_PREFIX, anchor_key, canonical, chain_hash
from cfcore.authority import SYSTEM
from cfcore.db.models import AuditCheckpoint, AuditEntry, AuditHead, Recording
from cfcore.errors import ConfigError
from cfcore.fis.scan import scan
from cfcore.fis.scrub import run_scrubs

EVERY = 5


@pytest.fixture
def deployment(deployment):
    with deployment.open("a") as f:
        f.write(f"\n[audit]\nanchor_every = {EVERY}\n")
    return deployment


def _fill(app, n):
    for i in range(n):
        app.audit.record(SYSTEM, "test.action", "thing", str(i), "ok", {"i": i})


def _anchors(deployment):
    d = deployment.parent / "media" / ANCHOR_PREFIX
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def _sql(app, stmt, **params):
    with app.catalog.session() as s:
        s.execute(text(stmt), params)


def _truncate(app, keep):
    """Delete the entries after ``keep``, move the head back, delete every checkpoint."""
    with app.catalog.session() as s:
        s.execute(text("DELETE FROM audit_log WHERE seq > :k"), {"k": keep})
        h = s.execute(text("SELECT hash FROM audit_log WHERE seq = :k"), {"k": keep}).scalar_one()
        s.execute(text("UPDATE audit_head SET seq = :k, hash = :h WHERE id = 1"), {"k": keep, "h": h})
        s.execute(text("DELETE FROM audit_checkpoints"))


def _rehash(app, key, edit_seq=None, plain=False):
    """Re-hash the whole chain (with ``key``, or plain SHA-256 as a forger without the key
    would), optionally after editing one entry; the head follows."""
    with app.catalog.session() as s:
        prev = "0" * 64
        for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq)):
            if e.seq == edit_seq:
                e.outcome = "denied"
            e.prev_hash = prev
            e.hash = (hashlib.sha256(prev.encode() + canonical(e)).hexdigest() if plain
                      else chain_hash(key, prev, e))
            prev = e.hash
        s.flush()
        s.execute(text("UPDATE audit_head SET hash = :h WHERE id = 1"), {"h": prev})


# --------------------------------------------------------------------------- keyed entries


def test_entries_are_keyed_with_a_key_outside_the_database(app):
    _fill(app, 3)
    path = app.keys_dir / "audit-mac.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = bytes.fromhex(path.read_text().strip())
    with app.catalog.session() as s:
        e = s.get(AuditEntry, 2)
        assert e.hash == chain_hash(key, e.prev_hash, e)
        assert e.hash != hashlib.sha256(e.prev_hash.encode() + canonical(e)).hexdigest()
        # the key is in no table of the catalog
        dump = " ".join(str(r) for r in s.execute(text("SELECT * FROM audit_head")).all())
    assert key.hex() not in dump


def test_rehash_after_an_edit_without_the_key_is_found(app):
    _fill(app, 8)
    _rehash(app, None, edit_seq=3, plain=True)
    res = app.audit.verify()
    assert not res.ok and res.first_bad_seq == 1 and "keyed hash" in res.problem


# --------------------------------------------------------------------------- anchors


def test_anchors_are_written_every_n_entries_outside_the_database(app, deployment):
    _fill(app, EVERY * 2 + 2)
    assert _anchors(deployment) == [f"{EVERY:012d}.json", f"{2 * EVERY:012d}.json"]
    a = json.loads((deployment.parent / "media" / anchor_key(2 * EVERY)).read_text())
    with app.catalog.session() as s:
        assert a["hash"] == s.get(AuditEntry, 2 * EVERY).hash
    assert a["mac_key_id"] and a["signing_key_id"] and a["signature"]
    assert app.audit.verify().anchor_seq == 2 * EVERY


def test_tail_truncation_with_head_moved_back_and_checkpoints_deleted_is_found(app, deployment):
    _fill(app, EVERY * 2)
    app.audit.checkpoint()
    assert app.audit.verify().ok
    _truncate(app, EVERY * 2 - 3)
    with app.catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditCheckpoint)) == 0
    res = app.audit.verify()
    assert not res.ok and res.first_bad_seq == EVERY * 2 - 2
    assert "removed" in res.problem and f"names entry {EVERY * 2}" in res.problem


def test_rehash_with_the_stolen_key_is_found_by_the_anchor(app):
    _fill(app, EVERY + 2)
    _rehash(app, app.audit.mac_key(), edit_seq=2)
    res = app.audit.verify()
    assert not res.ok and res.first_bad_seq == EVERY and "anchor" in res.problem


def test_swapped_mac_key_with_rehashed_chain_is_found(app, make_app, deployment):
    _fill(app, EVERY + 1)
    path = app.keys_dir / "audit-mac.key"
    path.unlink()
    new = os.urandom(32)
    path.write_text(new.hex() + "\n")
    path.chmod(0o600)
    fresh = make_app(deployment)
    _rehash(fresh, new)
    res = fresh.audit.verify()
    assert not res.ok and "MAC key" in res.problem and "swapped" in res.problem


def test_swapped_signing_key_is_found(app, make_app, deployment):
    _fill(app, EVERY)
    path = app.keys_dir / "audit-signing.key"
    path.write_text(os.urandom(32).hex() + "\n")
    res = make_app(deployment).audit.verify()
    assert not res.ok and "signing key swapped" in res.problem


def test_forged_anchor_signature_is_found(app, deployment):
    _fill(app, EVERY)
    p = deployment.parent / "media" / anchor_key(EVERY)
    a = json.loads(p.read_text())
    a["hash"] = "f" * 64
    p.chmod(0o600)
    p.write_text(json.dumps(a))
    res = app.audit.verify()
    assert not res.ok and "bad signature" in res.problem


def test_removed_anchors_are_found(app, deployment):
    """Someone with file access to a local store deletes the anchors (S3 Object Lock refuses that:
    see the S3 test below)."""
    _fill(app, EVERY * 2)
    for name in _anchors(deployment):
        (deployment.parent / "media" / ANCHOR_PREFIX / name).unlink()
    res = app.audit.verify()
    assert not res.ok and "no anchor" in res.problem


def test_anchors_on_s3_are_under_object_lock(deployment, make_app, moto_s3, s3_bucket, s3_env):
    text_ = deployment.read_text().replace('stores = ["primary"]\nrequired_copies = 1',
                                           'stores = ["primary", "cloud"]\nrequired_copies = 2')
    deployment.write_text(text_ + "\n" + s3_toml("cloud", moto_s3.endpoint, s3_bucket))
    app = make_app(deployment)
    _fill(app, EVERY * 2)
    cloud = app.stores.stores["cloud"]
    key = anchor_key(EVERY * 2)
    assert cloud.stat(key).retain_until is not None
    with pytest.raises(PermissionError):
        cloud.delete(key)
    # with the local copies gone and the tail truncated, the locked S3 anchor still tells
    for name in _anchors(deployment):
        (deployment.parent / "media" / ANCHOR_PREFIX / name).unlink()
    _truncate(app, EVERY)
    res = app.audit.verify()
    assert not res.ok and f"names entry {EVERY * 2}" in res.problem


def test_cf_serve_job_anchors_periodically(app, deployment, frozen_clock):
    from datetime import timedelta

    from cfcore.fis.jobs import ANCHOR_JOB, run_anchor
    from cfcore.jobs import registered_jobs

    assert ANCHOR_JOB in registered_jobs(app)
    _fill(app, 2)  # below anchor_every: only the job anchors it
    assert run_anchor(app) == {"anchored": True, "seq": 2}
    _fill(app, 1)
    assert run_anchor(app) == {"anchored": False}  # the interval has not passed
    frozen_clock.advance(timedelta(seconds=301))
    assert run_anchor(app)["seq"] == 3
    assert _anchors(deployment) == [f"{2:012d}.json", f"{3:012d}.json"]


# --------------------------------------------------------------------------- keys are never created


def test_verify_never_creates_a_missing_key(app, run_cf):
    make_user(app, "auditor1", ["auditor"])
    _fill(app, 3)
    for name in ("audit-signing.key", "audit-mac.key"):
        path = app.keys_dir / name
        backup = path.read_bytes()
        path.unlink()
        app.audit._mac_key = None
        with pytest.raises(ConfigError, match=f"{name} is missing"):
            app.audit.verify()
        cli = run_cf("audit", "verify", env=login_env("auditor1"))
        assert cli.returncode == 3 and f"{name} is missing" in cli.stderr and "Traceback" not in cli.stderr
        assert not path.exists()
        path.write_bytes(backup)
        path.chmod(0o600)
    assert app.audit.verify().ok


# --------------------------------------------------------------------------- FIS and the DPO


def test_truncation_is_alerted_by_the_fis(app, tmp_path):
    ingest(app, tmp_path)
    _fill(app, EVERY)
    assert scan(app, SYSTEM).new_alerts == []
    anchored = app.audit.anchor()["seq"]  # what the cf serve job does every few minutes
    _truncate(app, anchored - 2)
    report = scan(app, SYSTEM)
    hits = [a for a in report.new_alerts if a["rule"] == "scrub.audit-chain"]
    assert len(hits) == 1 and hits[0]["severity"] == "critical" and "removed" in hits[0]["summary"]


def test_advisor_moved_with_a_forged_vouching_entry_is_found(app, tmp_path):
    """The attacker moves a recording to another advisor and appends an audit entry whose
    row_digest vouches for the new row, chained and with the head moved, as the code would —
    but without the MAC key."""
    rec_id = ingest(app, tmp_path, advisor="A100")
    assert not run_scrubs(app, content=False).findings
    with app.catalog.session() as s:
        s.execute(text("UPDATE recordings SET advisor_id = 'A999' WHERE id = :id"), {"id": rec_id})
    with app.catalog.session() as s:
        rec = s.get(Recording, rec_id)
        digest = row_digest(rec)
        head = s.get(AuditHead, 1)
        last = s.get(AuditEntry, head.seq)
        forged = AuditEntry(seq=head.seq + 1, at=last.at, user="sup1", host="h", ip="10.0.0.1",
                            function="api.recordings", action="recording.reassign", target_kind="recording",
                            target_id=rec_id, outcome="ok", approval_id=None,
                            detail=json.dumps({"row_digest": digest}, separators=(",", ":")),
                            prev_hash=last.hash, hash="")
        forged.hash = hashlib.sha256(last.hash.encode() + canonical(forged)).hexdigest()
        s.add(forged)
        head.seq, head.hash = forged.seq, forged.hash
    report = run_scrubs(app, content=False)
    rules = {f.rule: f for f in report.findings}
    assert "scrub.audit-chain" in rules and rules["scrub.audit-chain"].severity.value == "critical"
    row = rules["scrub.catalog-row"]
    assert f"recording:{rec_id}" in row.evidence and "does not confirm" in row.summary
    # run alone, the catalog-row scrub verifies the chain itself
    from cfcore.fis.scrub import scrub_catalog_rows

    _, alone = scrub_catalog_rows(app)
    assert [f.summary for f in alone if "does not confirm" in f.summary]


def test_append_many_continues_the_chain_and_anchors_like_single_appends(app, deployment):
    """A purge batch audits its recordings with one insert (``append_many``): the same chain,
    actor and anchoring as one ``append`` per entry."""
    from hookspecs.types import Actor, RequestContext

    ctx = RequestContext(actor=Actor(user_id="u-dora", username="dora", roles=("dpo",)), host="pc-7",
                         ip="10.0.0.7", function="retention.run")
    now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    _fill(app, 2)
    with app.catalog.session() as s:
        app.audit.append(s, ctx, "single", "thing", "a", "ok", {"n": 1})  # a pending ORM entry first
        seqs = app.audit.append_many(s, ctx, [("many", "thing", str(i), "ok", {"i": i, "at": now}) for i in range(7)])
    assert seqs == list(range(4, 11))
    assert app.audit.append_many(None, ctx, []) == []  # nothing: no session needed
    assert app.audit.verify().ok
    rows = list(app.audit.entries(action="many"))
    assert [r.seq for r in rows] == seqs and {(r.user, r.host, r.ip, r.function) for r in rows} == {
        ("dora", "pc-7", "10.0.0.7", "retention.run")}
    assert rows[0].detail == {"at": str(now), "i": 0}
    # the batch crossed seq 5 (and 10): anchored after its commit, naming the transaction's last entry
    assert _anchors(deployment) == [anchor_key(2 * EVERY).rsplit("/", 1)[1]]
    _fill(app, 1)  # an append after the batch chains on its last entry
    assert app.audit.verify().ok and app.audit.verify().checked == 11


def test_cli_incremental_verify_checks_from_the_newest_anchor(app, run_cf):
    """``cf audit verify --incremental`` (the daily check) walks from the newest anchor; the full
    walk still finds an older entry that was changed."""
    import json as _json

    make_user(app, "auditor1", ["auditor"])
    _fill(app, 2 * EVERY + 2)  # anchors at 5 and 10
    quick = run_cf("audit", "verify", "--incremental", "--workers", "1", "--json", env=login_env("auditor1"))
    assert quick.returncode == 0, quick.stderr
    got = _json.loads(quick.stdout)
    assert got["ok"] and got["incremental"] and got["anchor_seq"] == 2 * EVERY and got["checked"] <= 4
    full = _json.loads(run_cf("audit", "verify", "--json", env=login_env("auditor1")).stdout)
    assert full["ok"] and not full["incremental"] and full["checked"] >= 2 * EVERY + 2
    _sql(app, "UPDATE audit_log SET detail = :d WHERE seq = 3", d='{"i":99}')
    assert run_cf("audit", "verify", "--incremental", env=login_env("auditor1")).returncode == 0  # before the anchor
    bad = run_cf("audit", "verify", env=login_env("auditor1"))
    assert bad.returncode == 7 and "entry 3" in bad.stderr
