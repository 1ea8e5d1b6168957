"""The four-eyes export, both ways: ``cf approve`` then ``cf execute ID --out`` (or the ``out=``
the request named); a failed or refused execute leaves the approval usable."""

from __future__ import annotations

import hashlib
import json

from access_helpers import NOW, PASSWORD, ingest, last_audit, make_user

ENV = {"CF_NOW": NOW.isoformat(), "CF_PASSWORD": PASSWORD}


def as_(user: str) -> dict[str, str]:
    return {**ENV, "CF_USER": user}


def request_export(run_cf, rec: str, *params: str) -> str:
    proc = run_cf("request", "recording.export", rec, "--reason", "complaint 2026-117: the customer asked for it",
                  *params, "--json", env=as_("cora"))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["id"]


def test_approve_then_execute_with_out_exports_and_a_failed_try_costs_nothing(app, run_cf, tmp_path):
    make_user(app, "cora", ["compliance"])
    make_user(app, "dora", ["dpo"])
    rec = ingest(app, tmp_path, "A1")
    aid = request_export(run_cf, rec)
    approve = run_cf("approve", aid, env=as_("dora"))
    assert approve.returncode == 0 and f"cf execute {aid}" in approve.stdout

    no_out = run_cf("execute", aid, env=as_("cora"))
    assert no_out.returncode != 0 and f"cf execute {aid} --out FILE.wav" in no_out.stderr
    taken = tmp_path / "exists.wav"
    taken.write_bytes(b"keep me")
    clash = run_cf("execute", aid, "--out", str(taken), env=as_("cora"))
    assert clash.returncode != 0 and "exists already" in clash.stderr and taken.read_bytes() == b"keep me"

    out = tmp_path / "call.wav"
    done = run_cf("execute", aid, "--out", str(out), "--json", env=as_("cora"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert out.read_bytes()[:4] == b"RIFF" and result["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    e = last_audit(app, action="recording.export", target_id=rec)
    assert e.outcome == "ok" and e.user == "cora"
    twice = run_cf("execute", aid, "--out", str(tmp_path / "again.wav"), env=as_("cora"))
    assert twice.returncode != 0 and "executed, not approved" in twice.stderr  # used once it worked


def test_the_out_named_in_the_request_is_used(app, run_cf, tmp_path):
    make_user(app, "cora", ["compliance"])
    make_user(app, "dora", ["dpo"])
    rec = ingest(app, tmp_path, "A1")
    out = tmp_path / "named.wav"
    aid = request_export(run_cf, rec, "--param", f"out={out}")
    assert run_cf("approve", aid, env=as_("dora")).returncode == 0
    done = run_cf("execute", aid, env=as_("cora"))
    assert done.returncode == 0, done.stderr and out.exists()
    assert out.read_bytes()[:4] == b"RIFF"


def test_an_executor_failure_releases_the_approval(app, tmp_path):
    from access_helpers import ctx_for

    from cfcore.access import approvals
    from cfcore.errors import StoreError

    make_user(app, "cora", ["compliance"])
    make_user(app, "dora", ["dpo"])
    rec = ingest(app, tmp_path, "A1")
    aid = approvals.request(app, ctx_for(app, "cora"), "recording.export", rec, "complaint 2026-117 review",
                            {"out": str(tmp_path / "x.wav")})
    approvals.approve(app, ctx_for(app, "dora"), aid)

    def broken(app_, actx, target_id, params):
        raise StoreError("the store is down")

    try:
        approvals.execute(app, ctx_for(app, "cora"), aid, executor=broken)
    except StoreError:
        pass
    else:
        raise AssertionError("the executor's failure was swallowed")
    assert approvals.get_request(app, ctx_for(app, "cora"), aid).state == "approved"
    failed = last_audit(app, action="approval.result", target_id=aid)
    assert failed.outcome == "failed" and "still approved" in failed.detail["approval"]
    approvals.execute(app, ctx_for(app, "cora"), aid)
    assert (tmp_path / "x.wav").exists()
    assert approvals.get_request(app, ctx_for(app, "cora"), aid).state == "executed"


def test_an_unknown_action_says_did_you_mean_and_a_denial_names_the_role(app, run_cf, tmp_path):
    make_user(app, "cora", ["compliance"])
    make_user(app, "sam", ["supervisor"])
    rec = ingest(app, tmp_path, "A1")
    typo = run_cf("request", "recording.exprot", rec, "--reason", "complaint 2026-117", env=as_("cora"))
    assert typo.returncode != 0 and "unknown action 'recording.exprot', did you mean recording.export?" in typo.stderr
    denied = run_cf("audit", "verify", env=as_("sam"))
    assert denied.returncode != 0 and "sam may not audit.read" in denied.stderr
    assert "needs the role compliance or dpo or auditor or administrator" in denied.stderr
