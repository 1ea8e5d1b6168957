"""The web UI in a real browser: headless Chromium (Debian) driven by Playwright against
``cf serve`` (a real process) whose capture job runs the pbx_asterisk plugin against the
simulated Asterisk. axe-core checks every main screen (no serious or critical violations)."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from access_helpers import FAST_ARGON2, catalog_url_for, ctx_for, ingest
from access_helpers import make_user as seed_user
from webui_helpers import SimThread, axe, chromium, login, need_browser, shot, start_serve, stop_serve, wait

from cfcore.authority import SYSTEM
from cfcore.clock import Clock
from cfcore.testing import free_tcp_port, write_deployment
from tests.asterisk_sim import leg_id, plugin_toml

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PW = "correct horse battery staple"


class Web:
    app: object
    base: str
    sim: SimThread
    rec_bert: str
    rec_anna: str


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    from cfcore.app import App

    need_browser()
    tmp = tmp_path_factory.mktemp("webui")
    spool = tmp / "pbx-spool"
    sim = SimThread(spool)
    port = free_tcp_port()
    with catalog_url_for(tmp) as url:
        extra = (f"\n[access]\n{FAST_ARGON2}\n[server]\nhost = \"127.0.0.1\"\nport = {port}\n"
                 "[webui]\ntime_zone = \"Europe/Berlin\"\n"
                 # the tests transcribe when they need a transcript (no job racing them)
                 "[transcription]\nenabled = false\n" + plugin_toml(sim.sim, spool, tmp / "ami.secret"))
        dep = write_deployment(tmp / "deploy", url, extra)
        app = App.open(dep, clock=Clock())
        seed_user(app, "anna", ["advisor"], advisor_id="A100")
        seed_user(app, "bert", ["advisor"], advisor_id="A101")
        seed_user(app, "cora", ["compliance"])
        seed_user(app, "dora", ["dpo"])
        seed_user(app, "adam", ["administrator"])
        w = Web()
        w.app, w.sim, w.base = app, sim, f"http://127.0.0.1:{port}"
        w.rec_bert = ingest(app, tmp, "A101", customer="K-4711", number="+49 40 5557777", seconds=4.0)
        w.rec_anna = ingest(app, tmp, "A100", customer="K-1", seconds=3.0)
        proc = start_serve(dep, port)
        try:
            yield w
        finally:
            err = stop_serve(proc)
            sim.stop()
            app.close()
            assert "Traceback" not in err, err[-3000:]


@pytest.fixture(scope="module")
def browser(web):
    with chromium() as b:
        yield b


def new_page(browser, lang="de-DE"):
    ctx = browser.new_context(locale=lang, extra_http_headers={"Accept-Language": lang}, viewport={"width": 1280, "height": 900})
    return ctx.new_page()


def no_violations(page, name):
    bad = axe(page, name)
    assert bad == [], f"axe on {name}: {bad}"


def audit(app, action, **kw):
    return [e for e in app.audit.entries(0, action=action) if all(getattr(e, k) == v for k, v in kw.items())]


# --------------------------------------------------------------------------- safety rules


def test_login_page_headers_cookie_and_csrf(web):
    r = httpx.get(f"{web.base}/")
    assert r.status_code == 200 and "<form" in r.text
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert 'style="' not in r.text and "onclick" not in r.text and "<script>" not in r.text
    # no CSRF cookie/field match: refused
    r = httpx.post(f"{web.base}/login", data={"username": "anna", "password": PW, "csrf": "forged"})
    assert r.status_code == 400
    with httpx.Client(base_url=web.base) as c:
        page = c.get("/")
        nonce = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        bad = c.post("/login", data={"username": "anna", "password": "wrong", "csrf": nonce})
        assert bad.status_code == 401 and "falsch" in bad.text  # German by default
        page = c.get("/")
        nonce = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        ok = c.post("/login", data={"username": "anna", "password": PW, "csrf": nonce})
        assert ok.status_code == 303 and ok.headers["location"] == "/ui/"
        cookie = ok.headers["set-cookie"]
        assert "cf_session=cfs_" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        # a form without the session-bound CSRF token is refused and audited
        r = c.post("/ui/search", data={"customer_id": "K-1"})
        assert r.status_code == 422
        r = c.post("/ui/search", data={"customer_id": "K-1", "csrf": "0" * 64})
        assert r.status_code == 403
        assert audit(web.app, "webui.csrf", user="anna", outcome="denied")
        # the UI takes only the cookie: a bearer token is not a UI session
        token = ok.headers["set-cookie"].split("cf_session=")[1].split(";")[0]
        r = httpx.get(f"{web.base}/ui/calls", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 303 and r.headers["location"] == "/"


def test_idle_session_is_ended_and_audited(web):
    from sqlalchemy import update

    from cfcore.db.models_access import ApiToken

    with httpx.Client(base_url=web.base) as c:
        nonce = re.search(r'name="csrf" value="([^"]+)"', c.get("/").text).group(1)
        assert c.post("/login", data={"username": "bert", "password": PW, "csrf": nonce}).status_code == 303
        assert c.get("/ui/calls").status_code == 200
        # the user left the desk 16 minutes ago (the default idle timeout is 15)
        with web.app.catalog.session() as s:
            s.execute(update(ApiToken).where(ApiToken.kind == "session", ApiToken.revoked_at.is_(None))
                      .values(last_used_at=web.app.clock.now() - timedelta(minutes=16)))
        r = c.get("/ui/calls")
        assert r.status_code == 303 and r.headers["location"] == "/"
    ended = [e for e in audit(web.app, "session.end") if e.detail.get("reason") == "idle"]
    assert ended and {e.target_id for e in ended} >= {"bert"}


# --------------------------------------------------------------------------- advisor


def test_advisor_records_both_sides_live_and_plays_back(web, browser):
    sim = web.sim
    page = new_page(browser)
    login(page, web.base, "anna", PW)
    assert page.url.endswith("/ui/calls")
    assert page.locator("#live").inner_text().strip() == "Kein laufendes Gespräch."
    call = sim.call(sim.sim.inbound_call, "+49301234567", "PJSIP/100")
    sim.call(sim.sim.answer, call)
    sim.run(sim.sim.wait_recording(call))
    cid = leg_id(call)
    # pushed by the server (SSE): no reload
    page.wait_for_selector(f'#live .call[data-call="{cid}"] .record-both', timeout=20000)
    assert re.fullmatch(r"\+49\*+67", page.locator(".v-customer").inner_text())  # masked by the controller
    button = page.locator(".record-both")
    assert button.is_disabled()  # the customer must be informed first
    page.locator('#live input[type=checkbox]').check()
    no_violations(page, "advisor-live")
    shot(page, "advisor-live")
    button.click()
    page.wait_for_selector("text=Von der Telefonanlage bestätigt.", timeout=20000)
    page.wait_for_selector(f'#live .call[data-call="{cid}"][data-mode="both"]', timeout=10000)
    page.locator("button.pause").click()
    page.wait_for_selector(f'#live .call[data-call="{cid}"][data-mode="paused"]', timeout=20000)
    page.locator("button.resume").click()
    page.wait_for_selector(f'#live .call[data-call="{cid}"][data-mode="both"]', timeout=20000)
    page.wait_for_timeout(600)
    sim.call(sim.sim.hangup, call)
    page.wait_for_selector("#live >> text=Kein laufendes Gespräch.", timeout=20000)

    from sqlalchemy import select

    from cfcore.db.models_capture import LiveCall

    def archived():
        with web.app.catalog.session() as s:
            row = s.get(LiveCall, cid)
            return row.recording_id if row is not None and row.state == "archived" else None

    rec_id = wait(archived, 30, "the call archived")
    from cfcore.archive import get_recording

    with web.app.catalog.session() as s:
        rec = get_recording(s, rec_id)
        consents = [(c.method, c.by_user) for c in rec.consents]
        assert rec.two_sided and consents == [("web", "anna")]
        assert select  # imported for the query above
    requests = audit(web.app, "call.record_both", target_id=cid, user="anna")
    assert requests and requests[0].function == "ui.calls.control"

    page.goto(f"{web.base}/ui/calls")
    page.click(f'a[href="/ui/recordings/{rec_id}"]')
    page.click("#play-button")
    audio = page.locator("#audio")
    assert "nodownload" in audio.get_attribute("controlslist")
    assert "/api/stream/" in audio.get_attribute("src")
    assert page.locator("canvas.wave").count() == 2  # both channels
    page.wait_for_function("() => document.getElementById('audio').readyState >= 1", timeout=20000)
    duration = page.evaluate("document.getElementById('audio').duration")
    assert abs(duration - rec.duration) < 0.2
    # seek by clicking the middle of the advisor's waveform
    page.locator("canvas.wave").first.click(position={"x": 300, "y": 30})
    page.wait_for_function("() => document.getElementById('audio').currentTime > 0", timeout=10000)
    waves = audit(web.app, "recording.play", target_id=rec_id, user="anna")
    assert any(e.detail.get("waveform") for e in waves) and any(e.function == "api.stream" for e in waves)
    # the waveform shows the customer's side silent before the consent and audible after it
    peaks = page.evaluate("JSON.parse(document.getElementById('player').dataset.wave)")
    names = [c["name"] for c in peaks["channels"]]
    cus = peaks["channels"][names.index("customer")]["peaks"]
    adv = peaks["channels"][names.index("advisor")]["peaks"]
    assert max(adv) > 0.05 and cus[0] == 0 and max(cus) > 0.05
    no_violations(page, "advisor-player")
    shot(page, "advisor", docs=True)
    page.context.close()


def test_advisor_cannot_control_or_play_a_colleagues_call(web):
    with httpx.Client(base_url=web.base) as c:
        nonce = re.search(r'name="csrf" value="([^"]+)"', c.get("/").text).group(1)
        c.post("/login", data={"username": "anna", "password": PW, "csrf": nonce})
        page = c.get(f"/ui/recordings/{web.rec_bert}")
        assert page.status_code == 403
        csrf = re.search(r'data-csrf="([^"]+)"', c.get("/ui/calls").text).group(1)
        r = c.post(f"/ui/recordings/{web.rec_bert}/play", data={"csrf": csrf})
        assert r.status_code == 403
    assert audit(web.app, "recording.show", target_id=web.rec_bert, user="anna", outcome="denied")


def test_advisor_reads_the_transcript_beside_the_audio_a_colleague_gets_none(web, browser, tmp_path):
    from speech_helpers import ADVISOR_HELLO, CUSTOMER_MONEY, call_wav

    from cfcore import transcripts
    from cfcore.access import approvals
    from cfcore.ingest import ingest_wav

    # espeak-ng speech on both channels, transcribed by the PocketSphinx plugin (as tests/test_transcripts.py)
    wav = call_wav(tmp_path / "speech.wav", 9.0, advisor=[(0.5, ADVISOR_HELLO)], customer=[(5.0, CUSTOMER_MONEY)])
    rec = ingest_wav(web.app, wav, advisor_id="A100", customer_ids=["K-77"], consent_at=4.0,
                     started="2026-11-21T10:00:00+00:00")
    [done] = transcripts.run(web.app, recording_ids=[rec])
    assert done["state"] == "done", done

    anna = new_page(browser, "en-GB")
    login(anna, web.base, "anna", PW)
    anna.goto(f"{web.base}/ui/recordings/{rec}")
    assert anna.locator("#transcript").count() == 0  # shown with the player, after the access decision
    anna.click("#play-button")
    anna.wait_for_selector("#transcript")
    text = anna.locator("#transcript").inner_text()
    assert "help" in text and "money" in text, text
    # both voices, each turn named by its channel
    adv, cus = anna.locator(".turn.role-advisor"), anna.locator(".turn.role-customer")
    assert "help" in adv.first.locator(".said").inner_text() and adv.first.locator(".who").inner_text() == "Advisor"
    money = cus.locator(".w", has_text="money").first
    assert cus.first.locator(".who").inner_text() == "Customer"
    # never in the address or the title; no download or copy control; no inline script or style
    assert "money" not in anna.url and "money" not in anna.title() and "/api/transcripts/" not in anna.content()
    assert anna.locator("#transcript a, #transcript [download]").count() == 0
    assert 'style="' not in anna.content() and "onclick" not in anna.content()
    # a word seeks the audio to its time
    start = float(money.get_attribute("data-start"))
    assert start >= 5.0
    anna.wait_for_function("() => document.getElementById('audio').readyState >= 1", timeout=20000)
    money.click()
    anna.wait_for_function(f"() => document.getElementById('audio').currentTime >= {start - 0.05}", timeout=10000)
    assert anna.evaluate("document.getElementById('audio').currentTime") < start + 3
    anna.locator(".turn.role-advisor button.seek").first.click()
    anna.wait_for_function("() => document.getElementById('audio').currentTime < 3", timeout=10000)
    no_violations(anna, "advisor-transcript")
    shot(anna, "advisor-transcript")
    reads = audit(web.app, "transcript.read", target_id=rec, user="anna", outcome="ok")
    assert len(reads) == 1 and reads[0].detail["segments"] > 0 and "money" not in str(reads[0].detail)
    anna.goto(f"{web.base}/ui/")
    anna.context.close()

    # another advisor: neither the page nor the player nor the transcript (refused, audited)
    bert = new_page(browser, "de-DE")
    login(bert, web.base, "bert", PW)
    resp = bert.goto(f"{web.base}/ui/recordings/{rec}")
    assert resp.status == 403 and "money" not in bert.content()
    assert audit(web.app, "recording.show", target_id=rec, user="bert", outcome="denied")
    # even holding anna's transcript link, bert's session opens nothing
    link = transcripts.create_link(web.app, ctx_for(web.app, "anna"), rec)
    r = bert.request.get(f"{web.base}/api/transcripts/{rec}?t={link['token']}")
    assert r.status == 403 and "money" not in r.text()
    assert audit(web.app, "transcript.read", target_id=rec, user="bert", outcome="denied")
    bert.context.close()

    # compliance with an approved playback only: the audio, no transcript (needs its own four-eyes)
    cora_ctx, dora_ctx = ctx_for(web.app, "cora"), ctx_for(web.app, "dora")
    approvals.approve(web.app, dora_ctx, approvals.request(web.app, cora_ctx, "recording.play", rec, "complaint 77"))
    cora = new_page(browser, "en-GB")
    login(cora, web.base, "cora", PW)
    cora.goto(f"{web.base}/ui/approvals")
    cora.click("text=Listen now")
    cora.wait_for_selector("#audio")
    assert cora.locator("#transcript").count() == 0 and cora.locator("#transcript-refused").count() == 1
    assert "money" not in cora.content()
    assert audit(web.app, "transcript.read", target_id=rec, user="cora", outcome="needs-approval")
    # ... asked for in the page, approved by the DPO, then read
    cora.select_option("#req-action", "transcript.read")
    cora.fill("#req-reason", "complaint 77, what was said")
    cora.click("form[action$='/request'] button")
    cora.wait_for_selector("text=Your request was filed")
    [pending] = [a for a in approvals.list_requests(web.app, dora_ctx, None, 200)
                 if a.action == "transcript.read" and a.target_id == rec and a.state == "requested"]
    approvals.approve(web.app, dora_ctx, pending.id)
    cora.goto(f"{web.base}/ui/approvals")
    cora.click("text=Read now")
    cora.wait_for_selector("#transcript")
    assert "money" in cora.locator("#transcript").inner_text()
    reads = audit(web.app, "transcript.read", target_id=rec, user="cora", outcome="ok")
    assert len(reads) == 1
    assert approvals.get_request(web.app, dora_ctx, pending.id).state == "executed"  # the approval was used
    cora.context.close()


# --------------------------------------------------------------------------- compliance and DPO


def test_compliance_requests_dpo_approves_compliance_plays(web, browser):
    cora = new_page(browser, "en-GB")
    login(cora, web.base, "cora", PW)
    assert cora.url.endswith("/ui/search")
    cora.fill("#s-cid", "K-4711")
    cora.click("form.filters button[type=submit]")
    cora.wait_for_selector(f'a[href="/ui/recordings/{web.rec_bert}"]')
    assert "K-4711" not in cora.url and "K-4711" not in cora.title()
    assert cora.locator("table.list tbody tr").count() == 1
    no_violations(cora, "compliance-search")
    shot(cora, "compliance", docs=True)
    search = audit(web.app, "recording.search", user="cora")[-1]
    assert "K-4711" not in str(search.detail) and search.detail["customer_pseudonyms"]
    cora.click(f'a[href="/ui/recordings/{web.rec_bert}"]')
    cora.click("#play-button")
    assert cora.locator(".error").count() == 1  # four-eyes needed
    cora.select_option("#req-action", "recording.play")
    cora.fill("#req-reason", "complaint 4711")
    cora.click("form[action$='/request'] button")
    cora.wait_for_selector("text=Your request was filed")
    assert "waiting for approval" in cora.goto(f"{web.base}/ui/approvals").text()

    dora = new_page(browser, "de-DE")
    login(dora, web.base, "dora", PW)
    dora.goto(f"{web.base}/ui/approvals")
    row = dora.locator("tr[data-approval]", has_text="recording.play")
    assert row.count() == 1 and "cora" in row.inner_text()
    no_violations(dora, "dpo-approvals")
    row.locator("button.primary").click()
    dora.wait_for_selector("text=Genehmigt.")
    dora.context.close()

    cora.goto(f"{web.base}/ui/approvals")
    cora.click("text=Listen now")
    cora.wait_for_selector("#audio")
    cora.wait_for_function("() => document.getElementById('audio').readyState >= 1", timeout=20000)
    assert cora.evaluate("document.getElementById('audio').duration") == pytest.approx(4.0, abs=0.1)
    played = audit(web.app, "recording.play", target_id=web.rec_bert, user="cora", outcome="ok")
    assert any(e.function == "api.stream" for e in played)
    cora.context.close()


def test_compliance_hold_retention_erasure_and_export_through_four_eyes(web, browser):
    from cfcore.access import approvals

    cora = new_page(browser, "en-GB")
    login(cora, web.base, "cora", PW)
    cora.goto(f"{web.base}/ui/recordings/{web.rec_anna}")
    cora.fill("#hold-reason", "litigation 2026-17")
    cora.click("form[action$='/hold'] button")
    cora.wait_for_selector("text=The legal hold is set.")
    assert "legal hold" in cora.locator("dl.facts").inner_text()
    # compliance may not ask for an Art. 17 erasure at all: refused at once, naming the role (the
    # access decision comes before the recording's state, so the hold is not disclosed to her;
    # a DPO's request on a held recording is refused for the hold: tests/test_retention_*.py)
    cora.select_option("#ret-kind", "erase")
    cora.fill("#ret-reason", "customer asked")
    cora.click("form[action$='/retention'] button")
    assert cora.locator("p.error").count() == 1 and "dpo" in cora.locator("p.error").inner_text()
    cora.go_back()
    cora.select_option("#ret-kind", "extend")
    cora.fill("#ret-until", "2033-01-31")
    cora.fill("#ret-reason", "litigation 2026-17")
    cora.click("form[action$='/retention'] button")
    cora.wait_for_selector("text=Your request was filed")
    # an export goes through four-eyes too, and only its approved link downloads
    cora.select_option("#req-action", "recording.export")
    cora.fill("#req-reason", "court order 17")
    cora.click("form[action$='/request'] button")
    cora.wait_for_selector("text=Your request was filed")
    dora = ctx_for(web.app, "dora")
    mine = {a.action: a for a in approvals.list_requests(web.app, dora, "requested", 100)
            if a.requester == "cora" and a.target_id == web.rec_anna}
    assert set(mine) == {"retention.extend", "recording.export"}
    approvals.approve(web.app, dora, mine["recording.export"].id)
    cora.goto(f"{web.base}/ui/approvals")
    cora.locator("tr[data-approval]", has_text="recording.export").locator("button.primary").click()
    link = cora.locator("a.button.primary")
    href = link.get_attribute("href")
    assert "/api/stream/" in href
    with cora.expect_download() as dl:
        link.click()
    assert dl.value.suggested_filename == f"{web.rec_anna}.wav"
    assert open(dl.value.path(), "rb").read(4) == b"RIFF"
    exported = audit(web.app, "recording.export", target_id=web.rec_anna, user="cora", outcome="ok")
    assert exported and exported[-1].detail["purpose"] == "export"
    cora.context.close()


def test_dpo_opens_an_alert_and_a_breach_case_and_the_art15_report(web, browser):
    # five failed log-ins for one account: the login-failures rule raises an alert
    import time

    from cfcore.fis.scan import scan

    def failures():
        return [e for e in audit(web.app, "auth.login", outcome="failed") if e.target_id == "adam"]

    deadline = time.monotonic() + 60
    while len(failures()) < 5:
        assert time.monotonic() < deadline, "failed log-ins were not audited"
        with httpx.Client(base_url=web.base) as c:
            nonce = re.search(r'name="csrf" value="([^"]+)"', c.get("/").text).group(1)
            r = c.post("/login", data={"username": "adam", "password": "guess", "csrf": nonce})
            assert r.status_code in (401, 429)
            if r.status_code == 429:
                time.sleep(min(5.0, float(r.headers.get("retry-after", "1"))))
    scan(web.app, SYSTEM, scrub=False, deliver=False)
    page = new_page(browser)
    login(page, web.base, "dora", PW)
    assert page.url.endswith("/ui/dpo")
    page.locator("tr", has_text="login-failures").locator("a[href^='/ui/dpo/alerts/']").first.click()
    assert "login-failures" in page.locator("h1").inner_text()
    no_violations(page, "dpo-alert")
    page.click("form[action='/ui/dpo/breach'] button")
    page.wait_for_url(re.compile(r".*/ui/dpo/breach/[0-9a-f]+"))
    hours = page.locator("#remaining strong").inner_text()
    assert 71.0 <= float(hours.replace(",", ".")) <= 72.0  # German decimal comma
    assert "Art. 33" in page.locator("pre.draft").inner_text() or "Meldung" in page.locator("pre.draft").inner_text()
    page.fill("#f-nature", "Passwort-Rateversuche")
    page.click("form.card button.primary")
    page.wait_for_selector("text=Der Fall ist gespeichert.")
    assert "Passwort-Rateversuche" in page.locator("pre.draft").inner_text()
    no_violations(page, "dpo-case")
    shot(page, "dpo", docs=True)
    # Art. 15 in a few clicks: HTML preview (German), PDF download (English)
    page.goto(f"{web.base}/ui/dpo/art15")
    page.fill("#a-cid", "K-4711")
    page.click("#a-preview")
    page.wait_for_load_state()
    assert "K-4711" not in page.url and "Art. 15" in page.content()
    page.go_back()
    page.fill("#a-cid", "K-4711")
    page.check("#a-en")
    with page.expect_download() as dl:
        page.click("#a-pdf")
    path = dl.value.path()
    assert open(path, "rb").read(5) == b"%PDF-" and dl.value.suggested_filename == "art15-report-en.pdf"
    page.goto(f"{web.base}/ui/dpo/audit")
    page.fill("#q-action", "dsar.report")
    page.click("form.filters button")
    assert page.locator("table.audit tbody tr").count() >= 2
    page.goto(f"{web.base}/ui/dpo")
    page.click("form[action='/ui/dpo/verify'] button")
    page.wait_for_selector("text=Geprüft: die Kette ist unversehrt.")
    assert "Neuester Anker außerhalb der Datenbank: #" in page.locator("#anchor").inner_text()
    page.context.close()


# --------------------------------------------------------------------------- admin, language, keyboard


def test_admin_requests_a_role_change_and_sees_the_system(web, browser):
    page = new_page(browser, "en-US")
    login(page, web.base, "adam", PW)
    assert page.url.endswith("/ui/admin")
    row = page.locator("tr", has_text="bert")
    row.locator("select[name=add]").select_option("supervisor")
    row.locator("input[name=reason]").fill("team lead from January")
    row.locator("button").click()
    page.wait_for_selector("text=The role change was requested")
    from cfcore.access import approvals

    reqs = [a for a in approvals.list_requests(web.app, ctx_for(web.app, "dora"), "requested", 100)
            if a.action == "roles.change" and a.target_id == "bert"]
    assert len(reqs) == 1 and reqs[0].requester == "adam"
    assert "supervisor" not in [r for r in row.locator("td").nth(1).inner_text().split(", ")]
    text = page.content()
    assert "pbx_asterisk" in text and "reachable" in text and "connected" in text
    no_violations(page, "admin")
    shot(page, "admin", docs=True)
    page.context.close()


def test_language_is_stored_with_the_user(web, browser):
    page = new_page(browser, "de-DE")
    login(page, web.base, "bert", PW)
    assert page.locator("nav").inner_text().startswith("Meine Gespräche")
    page.select_option("#lang-select", "en")
    page.wait_for_selector("text=Language changed.")
    assert "My calls" in page.locator("nav").inner_text()
    page.context.close()
    again = new_page(browser, "de-DE")  # a German browser: the stored choice wins
    login(again, web.base, "bert", PW)
    assert "My calls" in again.locator("nav").inner_text() and again.locator("html").get_attribute("lang") == "en"
    again.context.close()


def tab_to(page, check: str, limit: int = 80) -> None:
    """Press Tab until ``check`` (a JS function body on the active element ``el``) is true."""
    for _ in range(limit):
        if page.evaluate(f"() => {{ const el = document.activeElement; return !!(el && ({check})); }}"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"not reachable by Tab: {check}")


def test_keyboard_only_login_and_playback(web, browser):
    page = new_page(browser, "de-DE")
    page.goto(f"{web.base}/")
    tab_to(page, "el.id === 'username'")
    page.keyboard.type("anna")
    page.keyboard.press("Tab")
    page.keyboard.type(PW)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{web.base}/ui/calls")
    tab_to(page, f"el.matches('a[href=\\'/ui/recordings/{web.rec_anna}\\']')")
    page.keyboard.press("Enter")
    page.wait_for_selector("#play-button")
    tab_to(page, "el.id === 'play-button'")
    page.keyboard.press("Enter")
    page.wait_for_selector("canvas.wave")
    page.wait_for_function("() => document.getElementById('audio').readyState >= 1", timeout=20000)
    tab_to(page, "el.matches('canvas.wave')")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("() => document.getElementById('audio').currentTime") > 0
    page.context.close()
