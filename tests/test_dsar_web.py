"""The Art. 15 report, the four-eyes export and retention over HTTP (a real uvicorn server)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from access_helpers import api_server, client, login
from pypdf import PdfReader
from retention_helpers import ingest, make_user, state

from cfcore.retention import run_purge


@pytest.fixture
def served(app, tmp_path):
    for name, role in (("dora", "dpo"), ("carla", "compliance"), ("adam", "advisor"), ("root", "administrator")):
        make_user(app, name, role, advisor_id="A100" if role == "advisor" else None)
    recs = {"live": ingest(app, tmp_path, "2025-04-04T10:00:00+00:00", customer="K-1", name="live"),
            "gone": ingest(app, tmp_path, "2019-04-04T10:00:00+00:00", customer="K-1", name="gone"),
            "other": ingest(app, tmp_path, "2025-04-05T10:00:00+00:00", customer="K-2", name="other"),
            "adv": ingest(app, tmp_path, "2026-11-26T10:00:00+00:00", two_sided=False, customer="K-1", name="adv")}
    run_purge(app)
    with api_server(app) as server:
        yield app, server, recs


def test_report_over_http(served):
    app, server, recs = served
    with client(server, login(server, "dora")) as c:
        r = c.post("/api/dsar/report", json={"customer_ids": ["K-1"], "format": "pdf", "lang": "en"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
        text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages).replace("\n", "")
        assert recs["live"] in text and recs["gone"] in text and recs["adv"] in text and recs["other"] not in text
        r = c.post("/api/dsar/report", json={"customer_ids": ["K-1"], "format": "html", "lang": "de"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "Gelöschte Aufzeichnungen" in r.text
        r = c.post("/api/dsar/report", json={"customer_ids": ["K-1"], "format": "json", "lang": "de"})
        assert {x["id"] for x in r.json()["deleted"]} == {recs["gone"]}
        assert c.post("/api/dsar/report", json={"format": "json"}).status_code == 400
    with client(server, login(server, "adam")) as c:
        assert c.post("/api/dsar/report", json={"customer_ids": ["K-1"], "format": "json"}).status_code == 403


def test_export_over_http_is_four_eyes(served):
    app, server, recs = served
    dora, carla = login(server, "dora"), login(server, "carla")
    with client(server, dora) as c:
        r = c.post("/api/dsar/exports", json={"customer_ids": ["K-1"], "reason": "client letter 7"})
        assert r.status_code == 201, r.text
        approval_id = r.json()["id"]
        assert c.post(f"/api/dsar/exports/{approval_id}").status_code == 409  # not approved yet
    with client(server, carla) as c:
        assert c.post(f"/api/approvals/{approval_id}/approve").status_code == 200
        assert c.post(f"/api/dsar/exports/{approval_id}").status_code == 403  # only the requester runs it
    with client(server, dora) as c:
        r = c.post(f"/api/dsar/exports/{approval_id}")
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
            manifest = json.loads(zf.read("manifest.json"))
        assert sorted(m["recording_id"] for m in manifest["recordings"]) == sorted([recs["live"], recs["adv"]])
        assert c.post(f"/api/dsar/exports/{approval_id}").status_code == 409  # runs once


def test_retention_over_http(served):
    app, server, recs = served
    with client(server, login(server, "carla")) as c:
        r = c.post(f"/api/retention/holds/{recs['live']}", json={"reason": "complaint 12"})
        assert r.status_code == 201 and state(app, recs["live"])["state"] == "archived"
        assert [h["recording_id"] for h in c.get("/api/retention/holds").json()] == [recs["live"]]
        r = c.post(f"/api/retention/holds/{recs['live']}/release", json={"reason": "settled"})
        assert r.status_code == 201 and r.json()["action"] == "hold.release"
        r = c.post(f"/api/retention/recordings/{recs['live']}/extend", json={"reason": "BaFin", "years": 7})
        assert r.status_code == 201 and r.json()["params"]["until"].startswith("2032-04-04")
        r = c.post(f"/api/retention/recordings/{recs['live']}/extend", json={"reason": "BaFin", "years": 9})
        assert r.status_code == 400 and "at most 7 years" in r.json()["error"]
        shown = c.get(f"/api/retention/recordings/{recs['live']}").json()
        assert shown["legal_hold"] is True and shown["decision"]["rules"][0]["statutory"] is True
    with client(server, login(server, "dora")) as c:
        r = c.post(f"/api/retention/recordings/{recs['live']}/erase", json={"reason": "Art. 17 request"})
        assert r.status_code == 409 and "legal hold" in r.json()["error"]
        r = c.post(f"/api/retention/recordings/{recs['adv']}/erase", json={"reason": "Art. 17 request"})
        assert r.status_code == 201
    with client(server, login(server, "root")) as c:
        r = c.post("/api/retention/run", params={"dry_run": "true"})
        assert r.status_code == 200 and r.json()["dry_run"] is True
    with client(server, login(server, "adam")) as c:
        assert c.post("/api/retention/run").status_code == 403


def _files_with_audio(root):
    """Every file under ``root`` that is a zip or a WAV (by name or by magic bytes)."""
    found = []
    for p in root.rglob("*"):
        if p.is_file():
            head = p.read_bytes()[:4]
            if p.suffix in (".zip", ".wav") or head in (b"PK\x03\x04", b"RIFF"):
                found.append(p)
    return found


def test_dsar_export_via_approvals_execute_is_a_download_never_a_file(served, deployment, tmp_path, run_cf):
    """Issue 11 item 7: the generic execute route used to write a zip of clear WAVs into the
    deployment folder. Now it answers with the zip, to the requester only, and nothing with audio
    in clear is left on the server; ``cf execute`` refuses without using the approval up."""
    from retention_helpers import login_env

    app, server, recs = served
    before = set(_files_with_audio(deployment.parent))
    assert run_cf("dsar-export", "--customer", "K-1", "--reason", "x", "--out", str(tmp_path / "x.zip"),
                  env=login_env("dora")).returncode == 2  # the option is gone
    dora, carla = login(server, "dora"), login(server, "carla")
    with client(server, dora) as c:
        approval_id = c.post("/api/dsar/exports", json={"customer_ids": ["K-1"], "reason": "letter 9"}).json()["id"]
    with client(server, carla) as c:
        assert c.post(f"/api/approvals/{approval_id}/approve").status_code == 200
        assert c.post(f"/api/approvals/{approval_id}/execute").status_code == 403  # not the requester
    cli = run_cf("execute", approval_id, env=login_env("dora"))
    assert cli.returncode == 2 and "never written to a file" in cli.stderr and f"/api/dsar/exports/{approval_id}" in cli.stderr
    with client(server, dora) as c:
        r = c.post(f"/api/approvals/{approval_id}/execute")
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip", r.text
        assert r.headers["cache-control"] == "no-store"
        with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            wavs = [n for n in zf.namelist() if n.endswith(".wav")]
            assert all(zf.read(n)[:4] == b"RIFF" for n in wavs)
        assert sorted(m["recording_id"] for m in manifest["recordings"]) == sorted([recs["live"], recs["adv"]])
        assert len(wavs) == 2
        assert c.post(f"/api/approvals/{approval_id}/execute").status_code == 409  # runs once
    assert set(_files_with_audio(deployment.parent)) == before == set()
    assert not (deployment.parent / "exports").exists()
