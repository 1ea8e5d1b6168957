"""Several ``cf serve`` workers on one catalog (issue 20): leases with expiry and take-over, work
items claimed once, cluster jobs on one worker at a time, the pickup directory shared by workers,
and real worker processes killed with SIGKILL losing nothing (a job's item nor a capture source)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from scaleout_helpers import drop_calls, start_worker, stop_worker
from sqlalchemy import func, select

from cfcore import leases, pickup
from cfcore.db.models import AuditEntry, Recording
from cfcore.jobs import JobRunner
from hookspecs.types import BackgroundJob

START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)  # before the tests' frozen clock


def test_a_lease_is_exclusive_renewed_and_taken_over_once_it_lapses(app):
    a = leases.acquire(app, "job:x", "worker-a", seconds=60)
    assert a is not None and a.token == 1
    assert leases.acquire(app, "job:x", "worker-b", seconds=60) is None
    a2 = leases.renew(app, a, seconds=60)
    assert a2 is not None and a2.expires_at >= a.expires_at
    assert leases.acquire(app, "job:x", "worker-b") is None
    a3 = leases.renew(app, a2, seconds=0.3)  # worker-a's last heartbeat; then it "dies"
    assert a3 is not None
    time.sleep(0.6)
    b = leases.acquire(app, "job:x", "worker-b", seconds=60)
    assert b is not None and b.token == 2
    assert leases.renew(app, a3) is None, "the old holder must learn that it lost the lease"
    leases.release(app, a3)  # a stale release changes nothing
    assert [h["holder"] for h in leases.holders(app, "job:")] == ["worker-b"]
    leases.release(app, b)
    assert leases.holders(app, "job:") == []
    c = leases.acquire(app, "job:x", "worker-a")
    assert c is not None and c.token == 3


def test_concurrent_workers_claim_every_item_exactly_once(app):
    for i in range(60):
        assert leases.enqueue(app, "q", f"k{i}", {"i": i})
    assert not leases.enqueue(app, "q", "k0", {"i": 0}), "the same key twice is one item"
    done: list[str] = []
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            while True:
                items = leases.claim(app, "q", holder=name, limit=3)
                if not items:
                    return
                for it in items:
                    assert leases.complete(app, it, name)
                    done.append(it.key)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(done) == sorted(f"k{i}" for i in range(60))
    assert leases.counts(app, "q") == {"done": 60}


def test_a_dead_workers_item_is_claimed_again_and_it_cannot_finish_it(app):
    leases.enqueue(app, "q", "only", {})
    first = leases.claim(app, "q", holder="dead", seconds=60)
    assert [i.key for i in first] == ["only"]
    assert leases.claim(app, "q", holder="live") == []
    assert leases.extend(app, first, seconds=0.3) == 1  # its last heartbeat; then the worker "dies"
    time.sleep(0.6)
    again = leases.claim(app, "q", holder="live")
    assert [(i.key, i.attempts) for i in again] == [("only", 2)]
    assert not leases.complete(app, first[0]), "a lapsed claim cannot complete the item"
    assert leases.complete(app, again[0], "r1")
    # an item whose workers keep dying is given up, not claimed for ever
    leases.enqueue(app, "q", "poison", {})
    for _ in range(2):
        assert leases.claim(app, "q", holder="x", seconds=0.2, max_attempts=2)
        time.sleep(0.4)
    assert leases.claim(app, "q", holder="x", max_attempts=2) == []
    assert leases.counts(app, "q") == {"done": 1, "failed": 1}


def test_a_cluster_job_runs_on_one_worker_at_a_time_a_worker_job_on_each(app):
    lock = threading.Lock()
    state = {"now": 0, "max": 0, "runs": 0}
    per_worker: Counter[str] = Counter()

    def cluster(a):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            state["runs"] += 1
        time.sleep(0.15)
        with lock:
            state["now"] -= 1

    jobs = {"t.cluster": BackgroundJob(name="t.cluster", interval_seconds=0.05, run=cluster)}

    async def main():
        runners = []
        for w in ("w1", "w2", "w3"):
            def each(a, w=w):
                per_worker[w] += 1
            js = dict(jobs, **{"t.each": BackgroundJob(name="t.each", interval_seconds=0.05, run=each, scope="worker")})
            r = JobRunner(app, js, worker=w)
            await r.start()
            runners.append(r)
        deadline = time.monotonic() + 30
        while (state["runs"] < 6 or len(per_worker) < 3) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for r in runners:
            await r.stop()
        return runners

    runners = asyncio.run(main())
    assert state["runs"] >= 6 and state["max"] == 1
    assert set(per_worker) == {"w1", "w2", "w3"}
    assert sum(r.status["t.cluster"].skipped for r in runners) > 0
    assert leases.holders(app, "job:") == [], "a stopped worker releases its leases"


def test_pickup_archives_each_call_once_even_when_the_files_come_again(app, deployment, tmp_path):
    drop = tmp_path / "pickup"
    with open(deployment, "a", encoding="utf-8") as f:
        f.write(f'\n[capture]\npickup_dir = "{drop}"\n')
    from cfcore.app import App

    app2 = App.open(deployment, clock=app.clock, pm=app.pm)
    try:
        stems = drop_calls(drop, 5, start=START)
        (drop / "bad.wav").write_bytes(b"not a wav")
        (drop / "bad.json").write_text('{"advisor_id": "A1", "started_at": "2026-11-27T08:00:00+00:00"}')
        (drop / "half.wav").write_bytes(b"RIFF")  # no marker yet: not picked up
        assert pickup.scan(app2) == 6
        assert pickup.scan(app2) == 0
        assert pickup.drain(app2) == 6
        with app2.catalog.session() as s:
            rows = s.execute(select(Recording.pbx_call_id, Recording.id).where(Recording.source == "pickup")).all()
        ids = dict(rows)
        assert sorted(ids) == stems
        assert sorted(p.name for p in drop.iterdir() if p.is_file()) == ["half.wav"]
        assert sorted(p.name for p in (drop / "failed").iterdir()) == ["bad.json", "bad.wav"]
        failed = [e for e in _audit(app2, "pickup.failed")]
        assert [(e.target_id, e.outcome) for e in failed] == [("bad", "error")]
        # the same call delivered again: queued again, but archived once
        drop_calls(drop, 1, start=START)
        assert pickup.scan(app2) == 1 and pickup.drain(app2) == 1
        with app2.catalog.session() as s:
            n = s.scalar(select(func.count()).select_from(Recording).where(Recording.source == "pickup"))
        assert n == 5 and not (drop / f"{stems[0]}.json").exists()
        assert app2.audit.verify().ok
    finally:
        app2.close()


def _audit(app, action):
    with app.catalog.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)))


def _wait(cond, timeout: float, what: str, procs=()):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        for p in procs:
            if p.poll() is not None and p.returncode != -signal.SIGKILL:
                log = getattr(p, "log_path", None)
                tail = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
                raise AssertionError(f"a worker exited: {p.returncode}\n{tail}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_worker_killed_mid_batch_loses_nothing(deployment, make_app, tmp_path, frozen_clock, free_port):
    """A ``cf serve`` worker dies abruptly in the middle of a pickup backlog, holding an item it has
    archived but not yet completed; a second worker takes the rest, and the held item once its
    lease lapsed: every call archived exactly once, audit trail complete.

    The death is placed by the test kit's crash point (``os._exit`` after the 3rd ingest, before the
    item is completed): watching for the moment to SIGKILL raced the worker on a loaded CI machine
    (CI 2026-12-02: worker A was never seen mid-batch within 180 s)."""
    from cfcore.db.models_leases import WorkItemRow
    from cfcore.testing import free_tcp_port

    drop = tmp_path / "pickup"
    with open(deployment, "a", encoding="utf-8") as f:
        f.write(f'\n[server]\nlease_seconds = 3\n\n[capture]\npickup_dir = "{drop}"\n')
    app = make_app(deployment)
    n = 30
    stems = drop_calls(drop, n, start=START, seconds=3.0)
    now = frozen_clock.now().isoformat()
    a = start_worker(deployment, free_port, now=now, log=tmp_path / "a.log", crash_at="pickup-after-ingest#3")
    b = None
    try:
        assert a.wait(180) == 97, (tmp_path / "a.log").read_text(errors="replace")[-4000:]
        with app.catalog.session() as s:
            held = s.scalars(select(WorkItemRow.leased_by).where(WorkItemRow.state == "running")).all()
            archived = s.scalar(select(func.count()).select_from(Recording).where(Recording.source == "pickup"))
        assert archived >= 3 and any(h and f":{a.pid}:" in h for h in held), "A died holding an archived item"
        # a port of its own (free_port + 1 could be another test's: CI 2026-12-02, B exited 3 = bind)
        b = start_worker(deployment, free_tcp_port(), now=now, log=tmp_path / "b.log")
        _wait(lambda: leases.counts(app, pickup.QUEUE).get("done", 0) == n, 240, "worker B to finish", (b,))
    finally:
        stop_worker(a)
        if b is not None:
            stop_worker(b)
    with app.catalog.session() as s:
        rows = s.execute(select(Recording.pbx_call_id, Recording.id).where(Recording.source == "pickup")).all()
    calls = Counter(r[0] for r in rows)
    assert sorted(calls) == stems and set(calls.values()) == {1}, "no loss, no duplicate"
    archive = _audit(app, "recording.archive")
    assert sorted(e.target_id for e in archive) == sorted(r[1] for r in rows), "one audit entry per recording"
    assert app.audit.verify().ok
    starts = _audit(app, "server.start")
    assert b is not None
    assert {json.loads(e.detail)["worker"].split(":")[1] for e in starts} == {str(a.pid), str(b.pid)}
    assert leases.counts(app, pickup.QUEUE) == {"done": n}
    assert not list(drop.glob("*.json")) and not list(drop.glob("*.wav"))


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.cf_plugins("store_local", "pbx_siprec")
def test_a_capture_source_fails_over_to_another_worker(deployment, make_app, tmp_path, frozen_clock, free_port):
    """The SIPREC listener runs on exactly one of two workers; SIGKILL that one and the other takes
    the source over within the lease time and listens on the SIP port."""
    from cfcore.testing import free_tcp_port

    sip_port = free_tcp_port()
    with open(deployment, "a", encoding="utf-8") as f:
        f.write(f"""
[server]
lease_seconds = 3

[plugins.pbx_siprec]
listen = "127.0.0.1"
sip_port = {sip_port}
transports = ["tcp"]
rtp_ports = [41000, 41059]

[[plugins.pbx_siprec.src]]
name = "sbc-test"
addresses = ["127.0.0.1/32"]
""")
    app = make_app(deployment)
    now = frozen_clock.now().isoformat()
    procs = [start_worker(deployment, free_port, now=now, log=tmp_path / "a.log"),
             start_worker(deployment, free_tcp_port(), now=now, log=tmp_path / "b.log")]
    try:
        first = _wait(lambda: leases.holders(app, "capture:"), 120, "a capture owner", procs)
        assert [h["name"] for h in first] == ["capture:siprec"]
        owner = next(p for p in procs if f":{p.pid}:" in first[0]["holder"])
        other = next(p for p in procs if p is not owner)
        _wait(lambda: _listening(sip_port), 60, "the owner's SIP listener", procs)
        time.sleep(2)  # several heartbeats: the other worker must not have taken it meanwhile
        assert leases.holders(app, "capture:")[0]["holder"] == first[0]["holder"]
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        second = _wait(lambda: [h for h in leases.holders(app, "capture:") if f":{other.pid}:" in h["holder"]],
                       60, "the take-over", (other,))
        assert second[0]["token"] == first[0]["token"] + 1
        _wait(lambda: _listening(sip_port), 60, "the new owner's SIP listener", (other,))
    finally:
        for p in procs:
            stop_worker(p)
    assert os.environ.get("CF_TEST_DB") in (None, "sqlite", "postgres")
