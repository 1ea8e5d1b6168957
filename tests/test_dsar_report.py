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
    # times in the deployment's zone (default Europe/Berlin), English formats
    assert "3 Jun 2024, 12:00 GMT+02:00" in two["consents"][0]["text"] and "3 Jun 2029" in two["retention"]["text"]
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


# ------------------------------------------------------------ issue 14 item 8: a report a DPO signs

SIGNED_TOML = """
[dsar]
controller_name = "Beispielbank AG"
controller_address = "Musterstraße 1, 60311 Frankfurt am Main"
dpo_contact = "datenschutz@beispielbank.example, +49 69 1234-0"
"""


def _pdf_text(data: bytes, tmp_path: Path) -> tuple[str, list[str]]:
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(data)
    pages = [page.extract_text() for page in PdfReader(pdf).pages]
    return "\n".join(pages), pages


def _signed_app(deployment, make_app, extra: str = ""):
    deployment.write_text(deployment.read_text() + SIGNED_TOML + extra)
    return make_app(deployment)


@pytest.mark.parametrize("lang", ["de", "en"])
def test_controller_address_and_dpo_come_from_config(deployment, make_app, tmp_path, frozen_clock, lang):
    app = _signed_app(deployment, make_app)
    ingest(app, tmp_path, "2026-11-25T10:00:00+00:00", customer="K-100", name="c")
    dpo = make_user(app, "dora", "dpo")
    for fmt in ("html", "pdf"):
        data, report = produce_report(app, dpo, customer_ids=["K-100"], fmt=fmt, lang=lang)
        text = data.decode() if fmt == "html" else _pdf_text(data, tmp_path)[0]
        assert "Beispielbank AG" in text and "Musterstraße 1, 60311 Frankfurt am Main" in text
        assert "datenschutz@beispielbank.example, +49 69 1234-0" in text
        assert ("Anschrift" if lang == "de" else "Address") in text
        assert ("nicht angegeben" not in text) and ("not stated" not in text)
    assert report["controller"]["address"] == "Musterstraße 1, 60311 Frankfurt am Main"


@pytest.mark.parametrize("lang", ["de", "en"])
def test_missing_controller_is_stated_not_left_out(deployment, make_app, tmp_path, frozen_clock, lang):
    app = make_app(deployment)
    dpo = make_user(app, "dora", "dpo")
    for fmt in ("html", "pdf"):
        data, _ = produce_report(app, dpo, customer_ids=["K-100"], fmt=fmt, lang=lang)
        text = data.decode() if fmt == "html" else _pdf_text(data, tmp_path)[0]
        missing = "nicht angegeben" if lang == "de" else "not stated"
        label = "Datenschutzbeauftragte/r" if lang == "de" else "Data protection officer"
        assert text.count(missing) == 3, text  # name, address, DPO contact
        assert f"{label}: {missing}" in text


def test_unknown_dsar_key_is_refused(deployment, make_app):
    from cfcore.errors import ConfigError

    deployment.write_text(deployment.read_text() + '[dsar]\ncontroler_address = "x"\n')
    with pytest.raises(ConfigError, match="controller_address"):
        make_app(deployment)


@pytest.mark.parametrize("lang", ["de", "en"])
def test_times_in_the_deployment_time_zone_with_local_formats(deployment, make_app, tmp_path, frozen_clock, lang):
    app = _signed_app(deployment, make_app)
    rec = ingest(app, tmp_path, "2026-01-15T10:00:00+00:00", customer="K-100", name="winter")
    dpo = make_user(app, "dora", "dpo")
    data, report = produce_report(app, dpo, customer_ids=["K-100"], fmt="html", lang=lang)
    html = data.decode()
    assert report["time_zone"] == "Europe/Berlin"
    (r,) = report["recordings"]
    assert r["id"] == rec
    if lang == "de":  # 10:00 UTC is 11:00 in Berlin in January; German date, German zone name
        assert "15.01.2026, 11:00 MEZ" in html and "Alle Zeitangaben in der Zeitzone Europe/Berlin." in html
        assert r["duration_text"] == f"{r['duration_seconds']}".replace(".", ",").removesuffix(",0")
    else:
        assert "15 Jan 2026, 11:00 GMT+01:00" in html and "All times are in the Europe/Berlin time zone." in html
        assert r["duration_text"] == f"{r['duration_seconds']}".removesuffix(".0")
    assert "UTC" not in html.replace("UTC+", "")


def test_time_zone_is_configurable(deployment, make_app, tmp_path, frozen_clock):
    text = deployment.read_text()
    assert "[deployment]" in text
    deployment.write_text(text.replace("[deployment]", '[deployment]\ntime_zone = "America/New_York"', 1))
    app = make_app(deployment)
    ingest(app, tmp_path, "2026-07-15T10:00:00+00:00", customer="K-100", name="summer")
    dpo = make_user(app, "dora", "dpo")
    for lang, expected in (("de", "15.07.2026, 06:00 "), ("en", "15 Jul 2026, 06:00 GMT-04:00")):
        data, report = produce_report(app, dpo, customer_ids=["K-100"], fmt="html", lang=lang)
        assert report["time_zone"] == "America/New_York" and expected in data.decode()


def test_german_number_formats():
    from cfcore.dsar.texts import number

    assert number("de", 1234.5) == "1.234,5" and number("en", 1234.5) == "1,234.5"


@pytest.mark.parametrize("lang", ["de", "en"])
def test_no_internal_jargon(world, lang, tmp_path):
    data, report = produce_report(world["app"], world["dpo"], customer_ids=["K-100"], numbers=["+49 30 5550100"],
                                  fmt="html", lang=lang)
    pdf, _ = produce_report(world["app"], world["dpo"], customer_ids=["K-100"], numbers=["+49 30 5550100"],
                            fmt="pdf", lang=lang)
    import re

    for text in (data.decode(), _pdf_text(pdf, tmp_path)[0]):
        for jargon in (r"\bcli\b", r"\bapi\.", r"mifid-\d", r"advisor-only-\d", r"consent-\w", r"\bingest\b"):
            assert not re.search(jargon, text), (jargon, re.search(jargon, text))
        if lang == "de":
            assert "gesetzliche Aufbewahrung nach MiFID II, 5 Jahre" in text
            assert "Erfassung durch unsere Mitarbeitenden" in text or "manuelle Übernahme" in text
        else:
            assert "statutory keeping under MiFID II, 5 years" in text
            assert "entry by our staff" in text or "manual import" in text
    # the machine-readable rule id stays in the JSON data for the DPO's records
    assert report["deleted"][0]["retention"]["rule"].startswith(("mifid-", "advisor-only-"))


@pytest.mark.parametrize("lang", ["de", "en"])
def test_range_reads_of_one_playback_are_one_access(world, lang):
    from access_helpers import api_server, client, login

    app, rec = world["app"], world["p_live"]
    with api_server(app) as server, client(server, login(server, "adam")) as c:  # the call's own advisor
        links = []
        for _ in range(2):
            r = c.post(f"/api/recordings/{rec}/link", json={})
            assert r.status_code == 201, r.text
            links.append(r.json()["url"])
        for header in ("bytes=0-99", "bytes=100-199", "bytes=200-"):  # one playback, three range reads
            assert c.get(links[0], headers={"Range": header}).status_code == 206
        assert c.get(links[1]).status_code == 200  # a second playback through a new link
    _, report = produce_report(app, world["dpo"], customer_ids=["K-100"], fmt="json", lang=lang)
    (two,) = [r for r in report["recordings"] if r["id"] == rec]
    plays = [a for a in two["accesses"] if a["action"] == "recording.play"]
    assert sorted(a["reads"] for a in plays) == [1, 3]
    data, _ = produce_report(app, world["dpo"], customer_ids=["K-100"], fmt="html", lang=lang)
    html = data.decode()
    listened = "angehört" if lang == "de" else "listened to"
    assert html.count(listened) == 2 and ("3 Lesezugriffe" if lang == "de" else "3 reads") in html
    with app.catalog.session() as s:  # the audit trail itself keeps every read
        n = len(s.scalars(select(AuditEntry).where(AuditEntry.action == "recording.play",
                                                    AuditEntry.target_id == rec)).all())
    assert n == 4


@pytest.mark.parametrize("lang", ["de", "en"])
def test_pdf_pages_say_page_n_of_m(world, lang, tmp_path):
    data, _ = produce_report(world["app"], world["dpo"], customer_ids=["K-100"], numbers=["+49 30 5550100"],
                             fmt="pdf", lang=lang)
    _, pages = _pdf_text(data, tmp_path)
    assert len(pages) >= 2
    word = "Seite" if lang == "de" else "Page"
    other = "Page" if lang == "de" else "Seite"
    for i, page in enumerate(pages, 1):
        assert f"{word} {i} von {len(pages)}" in page if lang == "de" else f"{word} {i} of {len(pages)}" in page
        assert f"{other} {i}" not in page
