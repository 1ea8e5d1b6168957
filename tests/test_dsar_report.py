"""The Art. 15 report: stored and deleted recordings of the person (and nobody else's), in German
and English, as JSON, HTML and PDF (rendered with pdftoppm, text read back with pypdf)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader
from retention_helpers import ingest, login_env, make_user
from sqlalchemy import select

from cfcore.db.models import AuditEntry
from cfcore.dsar import produce_report
from cfcore.errors import AccessDenied, InputError
from cfcore.retention import retention_status, run_purge, set_hold
from cfcore.subjects import pseudonym

DSAR_TOML = """
[dsar]
controller = "Beispielbank <script>alert(1)</script> & Co. AG"
dpo_contact = "datenschutz@beispielbank.example"
authority = { de = "Der Hessische Beauftragte für Datenschutz", en = "the Hessian Commissioner for Data Protection" }
"""


@pytest.fixture
def world(deployment, make_app, tmp_path, frozen_clock):
    """Person P (customer K-100, +49 30 5550100) and person Q (K-200), stored and deleted calls."""
    deployment.write_text(deployment.read_text() + DSAR_TOML)
    app = make_app(deployment)
    w = {"app": app, "deployment": deployment}
    w["p_old"] = ingest(app, tmp_path, "2019-02-01T10:00:00+00:00", customer="K-100", name="p_old")
    w["p_adv_old"] = ingest(app, tmp_path, "2026-08-03T10:00:00+00:00", two_sided=False, number="+49 30 5550100",
                            name="p_adv_old")
    w["p_live"] = ingest(app, tmp_path, "2024-06-03T10:00:00+00:00", customer="K-100", number="+49 30 5550100",
                         name="p_live")
    w["p_adv"] = ingest(app, tmp_path, "2026-11-25T10:00:00+00:00", two_sided=False, number="030 5550100",
                        name="p_adv")
    w["q_old"] = ingest(app, tmp_path, "2019-03-01T10:00:00+00:00", customer="K-200", name="q_old")
    w["q_live"] = ingest(app, tmp_path, "2025-01-10T10:00:00+00:00", customer="K-200", name="q_live")
    w["compliance"] = make_user(app, "carla", "compliance")
    w["dpo"] = make_user(app, "dora", "dpo")
    w["advisor"] = make_user(app, "adam", "advisor", advisor_id="A100")
    retention_status(app, w["compliance"], w["p_live"])  # an access by compliance (recording.show)
    set_hold(app, w["compliance"], w["p_live"], "complaint 2026/31")
    report = run_purge(app)
    assert sorted(p["id"] for p in report.purged) == sorted([w["p_old"], w["p_adv_old"], w["q_old"]])
    return w


def _ids(w, *names):
    return {w[n] for n in names}


def test_json_report_names_the_persons_records_only(world):
    app, dpo = world["app"], world["dpo"]
    data, report = produce_report(app, dpo, customer_ids=["K-100"], numbers=["+49 30 5550100"], fmt="json", lang="en")
    doc = json.loads(data)
    assert doc == json.loads(json.dumps(report, default=str))
    assert {r["id"] for r in doc["recordings"]} == _ids(world, "p_live", "p_adv")
    assert {r["id"] for r in doc["deleted"]} == _ids(world, "p_old", "p_adv_old")
    text = data.decode()
    for other in ("q_old", "q_live"):
        assert world[other] not in text
    assert doc["summary"]["stored"] == 2 and doc["summary"]["deleted"] == 2
    assert doc["subject"] == {"customer_ids": ["K-100"], "numbers": ["+49305550100"]}

    live = {r["id"]: r for r in doc["recordings"]}
    two = live[world["p_live"]]
    assert two["retention"]["legal_hold"] is True and "legal claims" in two["retention"]["text"]
    assert two["retention"]["until"].startswith("2029-06-03")
    assert any("MiFID II" in p["legal_basis"] and p["statutory"] for p in two["purposes"])
    assert two["consents"] and two["consents"][0]["given_at"].startswith("2024-06-03T10:00")
    assert "2024-06-03 10:00 UTC" in two["consents"][0]["text"] and "2029-06-03" in two["retention"]["text"]
    roles = [a for a in two["accesses"] if a["action"] == "recording.show"]
    assert roles and roles[0]["roles"] == ["Compliance officer"] and roles[0]["at"].startswith("2026-11-28")
    assert "carla" not in text  # roles and dates, not the employees' names
    adv = live[world["p_adv"]]
    assert adv["two_sided"] is False and "your voice was not recorded" in adv["content_text"]
    assert any("works agreement" in p["legal_basis"] for p in adv["purposes"])
    assert adv["consents"] == []

    dead = {r["id"]: r for r in doc["deleted"]}
    old = dead[world["p_old"]]
    assert old["reason"] == "retention-expired" and old["deleted_at"].startswith("2026-11-28")
    assert old["retention"]["rule"] == "mifid-5y" and old["started_at"].startswith("2019-02-01")
    assert any(a["action"] == "recording.purge" for a in old["accesses"])
    assert any("supervisory authority" in r for r in doc["recipients"])
    assert any("Art. 77" in r and "Hessian Commissioner" in r for r in doc["rights"])
    assert any("Art. 17" in r for r in doc["rights"]) and any("Art. 21" in r for r in doc["rights"])


def test_report_is_audited_by_pseudonym_and_needs_the_role(world):
    app = world["app"]
    produce_report(app, world["dpo"], customer_ids=["K-100"], fmt="json", lang="de")
    with pytest.raises(AccessDenied):
        produce_report(app, world["advisor"], customer_ids=["K-100"], fmt="json", lang="de")
    with pytest.raises(AccessDenied):
        produce_report(app, world["compliance"], customer_ids=["K-100"], fmt="json", lang="de")
    with pytest.raises(InputError):
        produce_report(app, world["dpo"], fmt="json", lang="de")
    with app.catalog.session() as s:
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "dsar.report")).all()
        everything = " ".join(f"{e.target_id} {e.detail}" for e in s.scalars(select(AuditEntry)))
    outcomes = sorted(e.outcome for e in entries)
    assert outcomes == ["denied", "denied", "ok"]
    ok = next(e for e in entries if e.outcome == "ok")
    assert ok.target_kind == "subject" and ok.target_id == pseudonym(app, "customer_id", "K-100")
    assert sorted(json.loads(ok.detail)["recordings"]) == sorted(_ids(world, "p_live", "p_old"))
    assert "K-100" not in everything and "5550100" not in everything  # never an identifier in clear
    # the second report mentions the first
    _, again = produce_report(app, world["dpo"], customer_ids=["K-100"], fmt="json", lang="de")
    assert len(again["previous_reports"]) == 1


@pytest.mark.parametrize("lang", ["de", "en"])
def test_html_report_is_escaped_and_complete(world, lang):
    data, _ = produce_report(world["app"], world["dpo"], customer_ids=["K-100"], numbers=["+49 30 5550100"],
                             fmt="html", lang=lang)
    html = data.decode("utf-8")
    assert html.startswith("<!DOCTYPE html>") and f'<html lang="{lang}">' in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co. AG" in html
    for name in ("p_live", "p_adv", "p_old", "p_adv_old"):
        assert world[name] in html
    for name in ("q_old", "q_live"):
        assert world[name] not in html
    if lang == "de":
        assert "Auskunft nach Art. 15 DSGVO" in html and "Gelöschte Aufzeichnungen" in html
        assert "Ablauf der Speicherfrist" in html and "Compliance-Beauftragte/r" in html
        assert "Beschwerde bei einer Datenschutz-Aufsichtsbehörde" in html
    else:
        assert "Access report under Art. 15 GDPR" in html and "Deleted recordings" in html
        assert "retention period ended" in html and "Compliance officer" in html


@pytest.mark.parametrize("lang", ["de", "en"])
def test_pdf_report_renders_and_names_the_records(world, lang, tmp_path):
    data, _ = produce_report(world["app"], world["dpo"], customer_ids=["K-100"], numbers=["+49 30 5550100"],
                             fmt="pdf", lang=lang)
    pdf = tmp_path / f"report-{lang}.pdf"
    pdf.write_bytes(data)
    assert data.startswith(b"%PDF-")
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
                   check=True, capture_output=True)
    (png,) = list(tmp_path.glob("page*.png"))
    from PIL import Image

    with Image.open(png) as img:
        assert img.size[0] > 300 and img.size[1] > 400
        dark = sum(img.convert("L").histogram()[:128])
    assert dark > 500  # text was drawn on page 1
    text = "\n".join(page.extract_text() for page in PdfReader(pdf).pages)
    flat = text.replace("\n", "")
    for name in ("p_live", "p_adv", "p_old", "p_adv_old"):
        assert world[name] in flat
    for name in ("q_old", "q_live"):
        assert world[name] not in flat
    assert "<script>alert(1)</script>" in text  # shown as text, not parsed as markup
    if lang == "de":
        assert "Auskunft nach Art. 15 DSGVO" in text and "K-100" in text and "+49305550100" in text
        assert "gelöscht" in text
    else:
        assert "Access report under Art. 15 GDPR" in text and "retention period ended" in text


def test_cli_writes_each_format_once(world, run_cf, tmp_path):
    env = login_env("dora")
    for fmt in ("json", "html", "pdf"):
        out = tmp_path / f"p.{fmt}"
        proc = run_cf("dsar", "--customer", "K-100", "--number", "+49 30 5550100", "--format", fmt, "--lang", "en",
                      "--out", str(out), "--json", env=env, check=True)
        summary = json.loads(proc.stdout)
        assert summary["stored"] == 2 and summary["deleted"] == 2 and out.stat().st_mode & 0o777 == 0o600
        assert set(summary["recordings"]) == _ids(world, "p_live", "p_adv", "p_old", "p_adv_old")
    again = run_cf("dsar", "--customer", "K-100", "--out", str(tmp_path / "p.pdf"), env=env)
    assert again.returncode != 0 and "exists already" in again.stderr
    denied = run_cf("dsar", "--customer", "K-100", "--out", str(tmp_path / "x.pdf"), env=login_env("adam"))
    assert denied.returncode == 5 and "may not" in denied.stderr
    assert not Path(tmp_path / "x.pdf").exists()


def test_unknown_person_gets_an_empty_report(world):
    _, report = produce_report(world["app"], world["dpo"], customer_ids=["K-999"], fmt="json", lang="de")
    assert report["recordings"] == [] and report["deleted"] == []
    assert "keine Aufzeichnungen" in report["summary"]["text"]
