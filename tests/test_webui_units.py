"""The web UI's parts without a browser: the German catalogue is complete, language negotiation,
Babel formats in the deployment's zone, the waveform of a known recording, the idle timeout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from access_helpers import ctx_for, ingest, make_user

from cfcore.errors import AccessDenied, AuthenticationFailed
from cfcore.webui.i18n import LOCALE_DIR, Formats, negotiate, translations


def test_the_german_catalogue_covers_every_template_string():
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    root = LOCALE_DIR.parent / "templates"
    found = {msg for _, _, msg, _, _ in extract_from_dir(
        str(root), method_map=[("**.html", "jinja2")], options_map={"**.html": {"extensions": "jinja2.ext.i18n"}})}
    with (LOCALE_DIR / "de" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f)
    translated = {m.id: m.string for m in catalog if m.id}
    missing = sorted(m for m in found if not translated.get(m))
    assert found and missing == [], f"untranslated (run scripts/webui-messages): {missing}"
    assert translations("de").gettext("Log in") == "Anmelden"
    assert translations("en").gettext("Log in") == "Log in"


@pytest.mark.parametrize("header,expected", [
    ("en-GB,en;q=0.9", "en"), ("de-CH, en;q=0.5", "de"), ("fr-FR, en;q=0.3", "en"), ("fr", "de"), ("", "de"),
    ("en;q=0.2, de;q=0.8", "de"), ("garbage;q=x", "de"),
])
def test_accept_language(header, expected):
    assert negotiate(header, "de") == expected


def test_dates_and_numbers_in_the_deployments_zone():
    when = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)
    de, en = Formats("de", ZoneInfo("Europe/Berlin")), Formats("en", ZoneInfo("Europe/Berlin"))
    assert de.when(when) == "02.07.2026, 00:30:00"  # already the next day in Berlin (summer time)
    assert "Jul 2, 2026" in en.when(when.isoformat())
    assert de.number(1234567) == "1.234.567" and en.number(1234567) == "1,234,567"
    assert de.hours(71.5 * 3600) == "71,5" and en.hours(71.5 * 3600) == "71.5"
    assert de.duration(3725) == "1:02:05" and de.duration(65) == "1:05"


def test_waveform_peaks_per_channel_through_the_callers_link(app, tmp_path):
    from cfcore.access import links
    from cfcore.webui.waveform import peaks

    make_user(app, "anna", ["advisor"], advisor_id="A1")
    make_user(app, "ben", ["advisor"], advisor_id="A2")
    rec = ingest(app, tmp_path, "A1", seconds=2.0)
    anna, ben = ctx_for(app, "anna"), ctx_for(app, "ben")
    link = links.create_link(app, anna, rec)
    wave = peaks(app, anna, rec, link["token"], buckets=100)
    assert [c["name"] for c in wave["channels"]] == ["advisor", "customer"]
    assert wave["duration"] == pytest.approx(2.0, abs=0.01)
    for ch in wave["channels"]:
        assert len(ch["peaks"]) == 100 and all(0 <= p <= 1 for p in ch["peaks"])
    adv = wave["channels"][0]["peaks"]
    assert max(adv) > 0.05
    # the customer's side is silent before the consent (0.5 s): the core dropped it at ingest
    assert wave["channels"][1]["peaks"][:20] == [0.0] * 20
    with pytest.raises(AccessDenied):
        peaks(app, ben, rec, link["token"])  # another user's link
    entries = [e for e in app.audit.entries(0, action="recording.play") if e.target_id == rec]
    assert [(e.user, e.outcome, e.detail.get("waveform")) for e in entries] == [("anna", "ok", True),
                                                                                   ("ben", "denied", True)]


def test_idle_sessions_end_and_background_requests_do_not_keep_them_alive(app, frozen_clock):
    from cfcore.access import users

    make_user(app, "anna", ["advisor"], advisor_id="A1")
    issued = users.start_session(app, ctx_for(app, "anna"))
    kw = {"host": "pc", "ip": "10.0.0.1", "function": "ui.test", "idle_minutes": 15}
    users.authenticate_token(app, issued.token, **kw)
    frozen_clock.advance(timedelta(minutes=10))
    users.authenticate_token(app, issued.token, touch=False, **kw)  # the live feed: no activity
    frozen_clock.advance(timedelta(minutes=6))
    with pytest.raises(AuthenticationFailed):
        users.authenticate_token(app, issued.token, **kw)
    ended = [e for e in app.audit.entries(0, action="session.end") if e.detail.get("reason") == "idle"]
    assert len(ended) == 1 and ended[0].target_id == "anna"
    with pytest.raises(AuthenticationFailed):  # revoked for good
        users.authenticate_token(app, issued.token, host="pc", ip="10.0.0.1", function="api.x")


def test_search_filters_site_source_and_mode(app, tmp_path):
    from cfcore.errors import InputError
    from cfcore.web.routes_recordings import find_recordings

    make_user(app, "cora", ["compliance"])
    rec = ingest(app, tmp_path, "A1", customer="K-9")
    cora = ctx_for(app, "cora")

    def ids(**kw):
        base = {"advisor_id": None, "since": None, "until": None, "customer_ids": [], "numbers": [], "limit": 50,
                "offset": 0}
        return [r["id"] for r in find_recordings(app, cora, **{**base, **kw})["recordings"]]

    with app.catalog.session() as s:
        from cfcore.archive import get_recording

        r = get_recording(s, rec)
        site, source = r.site, r.source
    assert ids(site=site, source=source, mode="both", customer_ids=["K-9"]) == [rec]
    assert ids(mode="advisor_only") == [] and ids(site="elsewhere") == [] and ids(source="avaya-1") == []
    with pytest.raises(InputError):
        ids(mode="everything")
    search = [e for e in app.audit.entries(0, action="recording.search")][-1]
    assert search.detail["site"] == site and "K-9" not in str(search.detail)
