"""Copies of a person's recordings for the person: only through four-eyes ``dsar.export``."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from retention_helpers import four_eyes, ingest, make_user
from sqlalchemy import select

from cfcore.access import approvals
from cfcore.archive import read_channel
from cfcore.db.models import AuditEntry
from cfcore.db.models_access import Approval
from cfcore.dsar import produce_report
from cfcore.dsar.export import build_copies, export_copies, request_export
from cfcore.errors import AccessDenied, ApprovalRequired, InputError
from cfcore.retention import run_purge
from cfcore.subjects import pseudonym
from cfcore.wav import read_wav


def test_export_zip_after_approval(app, tmp_path):
    carla, dora = make_user(app, "carla", "compliance"), make_user(app, "dora", "dpo")
    mine2 = ingest(app, tmp_path, "2025-05-05T10:00:00+00:00", customer="K-1", name="mine2")
    mine1 = ingest(app, tmp_path, "2026-11-26T10:00:00+00:00", two_sided=False, number="+49 40 777777", name="mine1")
    gone = ingest(app, tmp_path, "2019-05-05T10:00:00+00:00", customer="K-1", name="gone")
    other = ingest(app, tmp_path, "2025-06-06T10:00:00+00:00", customer="K-2", name="other")
    assert [p["id"] for p in run_purge(app).purged] == [gone]

    with pytest.raises(AccessDenied):
        request_export(app, carla, customer_ids=["K-1"], reason="client asks")
    approval_id = request_export(app, dora, customer_ids=["K-1"], numbers=["+49 40 777777"],
                                 reason="client letter 2026-11-27")
    with app.catalog.session() as s:
        a = s.get(Approval, approval_id)
        stored = json.dumps([a.target_id, a.params, a.reason])
    assert "K-1" not in stored and "777777" not in stored  # the request holds pseudonyms only
    with pytest.raises(ApprovalRequired):  # building the copies without approval
        build_copies(app, dora, a.target_id, a.params)
    approvals.approve(app, carla, approval_id)
    held = {}

    def executor(app_, actx, target_id, params):  # what the API route does: the zip stays in memory
        held["zip"], summary = build_copies(app_, actx, target_id, params)
        return summary

    result = approvals.execute(app, dora, approval_id, executor=executor)
    assert result["recordings"] == 2

    with zipfile.ZipFile(io.BytesIO(held["zip"])) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        ids = [m["recording_id"] for m in manifest["recordings"]]
        assert ids == [mine2, mine1]  # in call order; the deleted and the other person's are absent
        for m in manifest["recordings"]:
            (tmp_path / m["file"]).write_bytes(zf.read(m["file"]))
            audio = read_wav(tmp_path / m["file"])
            assert len(audio.channels) == (2 if m["recording_id"] == mine2 else 1)
            assert audio.channels[0] == read_channel(app, m["recording_id"], "advisor")
    assert other not in json.dumps(manifest)

    with app.catalog.session() as s:
        exports = s.scalars(select(AuditEntry).where(AuditEntry.action == "recording.export")).all()
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "dsar.export",
                                                   AuditEntry.outcome == "ok")).one()
    assert sorted(e.target_id for e in exports) == sorted([mine1, mine2])
    assert all(e.approval_id == approval_id for e in exports)
    assert entry.target_id == pseudonym(app, "customer_id", "K-1") and entry.user == "dora"

    # the next Art. 15 report shows the copy among the accesses
    _, report = produce_report(app, dora, customer_ids=["K-1"], numbers=["+49 40 777777"], fmt="json", lang="de")
    accesses = {r["id"]: [a["action_text"] for a in r["accesses"]] for r in report["recordings"]}
    assert "Kopie für Sie erstellt" in accesses[mine2] and "Kopie für Sie erstellt" in accesses[mine1]


def test_cli_requests_export_but_never_writes_it(app, run_cf, tmp_path):
    from retention_helpers import login_env

    make_user(app, "dora", "dpo")
    make_user(app, "carla", "compliance")
    ingest(app, tmp_path, "2025-05-05T10:00:00+00:00", customer="K-9")
    req = json.loads(run_cf("dsar-export", "--customer", "K-9", "--reason", "letter 12", "--json",
                            env=login_env("dora"), check=True).stdout)
    run_cf("approve", req["approval_id"], env=login_env("carla"), check=True)
    p = run_cf("execute", req["approval_id"], env=login_env("dora"))
    assert p.returncode == 2 and "never written to a file" in p.stderr and "Traceback" not in p.stderr
    with app.catalog.session() as s:
        assert s.get(Approval, req["approval_id"]).state == "approved"  # not used up: download it instead
    # the registered executor refuses too, whoever calls it
    with pytest.raises(InputError, match="never written to a file"):
        export_copies(app, make_user(app, "dora2", "dpo"), "x", {})


def test_four_eyes_helper_roundtrip(app, tmp_path):
    """``four_eyes`` (request → approve → execute) works for dsar.export like for the others."""
    carla, dora = make_user(app, "carla", "compliance"), make_user(app, "dora", "dpo")
    ingest(app, tmp_path, "2025-05-05T10:00:00+00:00", customer="K-5")
    p = pseudonym(app, "customer_id", "K-5")
    with pytest.raises(InputError, match="never written to a file"):
        four_eyes(app, dora, carla, "dsar.export", p, {"pseudonyms": p})
