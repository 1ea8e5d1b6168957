"""Smaller gaps an attacker's review found (issue 11, item 11), each reproduced and now refused.
(Range headers with thousands of digits: tests/test_access_links.py.)"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from access_helpers import api_server
from archive_helpers import approve, make_user, make_wav
from sqlalchemy import func, select

from cfcore.access import approvals, users
from cfcore.config import load_config
from cfcore.db.models import Recording
from cfcore.errors import AccessDenied, AuthenticationFailed, ConfigError, InputError
from cfcore.ingest import ingest_wav
from cfcore.wav import write_wav


def _recordings(app) -> int:
    with app.catalog.session() as s:
        return s.scalar(select(func.count()).select_from(Recording))


# --------------------------------------------------------------------------- --param rewrap=false


def test_rewrap_false_does_not_rewrap_and_a_typo_is_refused(app, tmp_path):
    """Attack: ``--param rewrap=false`` re-wrapped every data key (``bool("false")`` is True)."""
    admin = make_user(app, "admin", ["administrator"])
    dpo = make_user(app, "dpo1", ["dpo"])
    wav, _ = make_wav(tmp_path / "in.wav", 0.5)
    ingest_wav(app, wav, advisor_id="A1", customer_ids=["K-1"])
    aid = approve(app, admin, dpo, "keys.rotate", None, {"rewrap": "false"})
    result = approvals.execute(app, admin, aid)
    assert result["current"] != result["previous"] and "rewrap" not in result
    aid = approve(app, admin, dpo, "keys.rotate", None, {"rewrap": "TRUE"})
    assert approvals.execute(app, admin, aid)["rewrap"]["rewrapped"] == 1
    for bad in ("flase", "nein", "2"):
        with pytest.raises(InputError, match="not true or false"):
            approvals.request(app, admin, "keys.rotate", None, "typo", {"rewrap": bad})


# --------------------------------------------------------------------------- Secure session cookie


def _login_cookie(app, headers):
    if not app.__dict__.get("_test_sup"):
        make_user(app, "sup", ["supervisor"])
        app.__dict__["_test_sup"] = True
    with api_server(app) as server, httpx.Client(base_url=server.base, timeout=30) as c:
        r = c.post("/api/auth/login", json={"username": "sup", "password": "correct horse battery staple"},
                   headers=headers)
    assert r.status_code == 200, r.text
    return r.headers["set-cookie"]


def test_session_cookie_is_secure_behind_a_trusted_tls_proxy(deployment, make_app):
    """Attack: behind the recommended TLS proxy the cookie lacked ``Secure`` (sent in clear on http)."""
    deployment.write_text(deployment.read_text() + '\n[server]\ntrusted_proxies = ["127.0.0.1"]\n')
    app = make_app(deployment)
    assert "secure" in _login_cookie(app, {"X-Forwarded-Proto": "https"}).lower()
    cookie = _login_cookie(app, {})
    assert "cf_session=" in cookie and "secure" not in cookie.lower() and "httponly" in cookie.lower()


def test_forwarded_proto_from_an_untrusted_peer_is_ignored(app):
    assert "secure" not in _login_cookie(app, {"X-Forwarded-Proto": "https"}).lower()


def test_secure_cookies_can_be_forced(deployment, make_app):
    deployment.write_text(deployment.read_text() + "\n[server]\nsecure_cookies = true\n")
    assert "secure" in _login_cookie(make_app(deployment), {}).lower()


# --------------------------------------------------------------------------- bad-token flood


def test_a_bad_token_flood_is_counted_not_written_row_by_row(app, frozen_clock):
    """Attack: every request with a bad token wrote an audit row (an audit-trail flood)."""
    def failures():
        return [e for e in app.audit.entries(0, action="auth.login") if e.outcome == "failed"]

    def bad(ip="203.0.113.7"):
        with pytest.raises(AuthenticationFailed):
            users.authenticate_token(app, "cft_forged", host="pc", ip=ip, function="api.me")

    for _ in range(1500):
        bad()
    rows = failures()
    # the first one at once; after FLUSH_EVERY (1000) counted ones their count, and the next one
    # opens a new window
    assert len(rows) == 3 and rows[0].detail["reason"] == "unknown token" and rows[0].ip == "203.0.113.7"
    assert rows[1].detail["aggregated"] == 1000 and "aggregated" not in rows[2].detail
    bad(ip="198.51.100.9")  # another client is not hidden behind the first one's window
    assert failures()[-1].ip == "198.51.100.9" and "aggregated" not in failures()[-1].detail
    frozen_clock.advance(timedelta(seconds=61))
    bad()  # the window has passed: its count is written, and this failure opens a new one
    rows = failures()
    assert rows[-2].detail["aggregated"] == 498 and "aggregated" not in rows[-1].detail
    for _ in range(5):
        bad()
    app.close()  # closing the app writes what is still counted
    rows = failures()
    assert rows[-1].detail["aggregated"] == 5
    # nothing lost: every failed request is in the trail, as an entry or in a count
    assert sum(e.detail.get("aggregated", 0) or 1 for e in rows) == 1500 + 1 + 1 + 5
    assert len(rows) == 7 and app.audit.verify().ok


# --------------------------------------------------------------------------- ingest input


@pytest.mark.parametrize("started", ["9999-12-31T00:00:00+00:00", "1970-01-01T00:00:00+00:00",
                                     "2026-11-28T11:00:00+00:00"])
def test_ingest_start_outside_a_sane_window_is_refused(app, tmp_path, started):
    """Attack: ``--started 9999-…`` was a traceback, ``--started 1970-…`` purgeable at once.
    (The frozen clock is 2026-11-28 09:00; a call cannot end more than an hour from now.)"""
    wav, _ = make_wav(tmp_path / "in.wav", 0.5)
    with pytest.raises(InputError, match="lies outside"):
        ingest_wav(app, wav, advisor_id="A1", customer_ids=["K-1"], started=started)
    assert _recordings(app) == 0
    ingest_wav(app, wav, advisor_id="A1", customer_ids=["K-1"], started="2019-11-28T09:00:00+00:00")
    assert _recordings(app) == 1


def test_ingest_start_window_on_the_cli(app, run_cf, tmp_path):
    make_user(app, "admin", ["administrator"])
    wav, _ = make_wav(tmp_path / "in.wav", 0.5)
    env = {"CF_USER": "admin", "CF_PASSWORD": "correct horse battery staple"}
    for started in ("9999-12-31T23:59:59+00:00", "1970-01-01T00:00:00Z"):
        p = run_cf("ingest", str(wav), "--agent", "A1", "--customer", "K-1", "--started", started, env=env)
        assert p.returncode == 2 and p.stderr.startswith("cf: error: start time") and "Traceback" not in p.stderr
    assert _recordings(app) == 0


@pytest.mark.parametrize("channels", [1, 2])
def test_zero_length_wav_is_refused(app, tmp_path, channels):
    """Attack: a WAV without samples was archived as a recording."""
    path = tmp_path / "empty.wav"
    write_wav(path, [b""] * channels, 8000)
    with pytest.raises(InputError, match="no audio"):
        ingest_wav(app, path, advisor_id="A1", customer_ids=["K-1"])
    assert _recordings(app) == 0


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("value", ["[" * 3000 + "1" + "]" * 3000,
                                   "{ a = " * 300 + "1" + " }" * 300,
                                   "[" * 20 + "1" + "]" * 20])
def test_deeply_nested_config_is_a_clear_error(deployment, run_cf, value):
    """Attack: a deeply nested TOML value was a RecursionError (a traceback)."""
    deployment.write_text(deployment.read_text() + f"\n[fis]\nx = {value}\n")
    with pytest.raises(ConfigError, match="nested more than 16 levels"):
        load_config(deployment)
    p = run_cf("plugins")
    assert p.returncode == 3 and p.stderr.startswith("cf: error:") and "Traceback" not in p.stderr


# --------------------------------------------------------------------------- call id probing


def test_unknown_and_forbidden_calls_get_the_same_answer(app):
    """Attack: an advisor probed call ids: unknown ids said 'no call', others' 'may not'."""
    from cfcore.capture.controller import request_mode
    from cfcore.db.models_capture import LiveCall

    now = app.clock.now()
    with app.catalog.session() as s:
        s.add(LiveCall(call_id="c-other", source="test", advisor_id="A2", direction="in", state="recording",
                       mode="advisor_only", started_at=now, updated_at=now))
    adv = make_user(app, "adv1", ["advisor"], advisor_id="A1")
    answers = []
    for call_id in ("c-other", "c-unknown"):
        with pytest.raises(AccessDenied) as exc:
            request_mode(app, adv, call_id, "record_both")
        answers.append(str(exc.value).replace(call_id, "ID"))
    assert answers[0] == answers[1] == "adv1 may not call.record_both call ID"
    denied = [e for e in app.audit.entries(0, action="call.record_both") if e.outcome == "denied"]
    assert [e.target_id for e in denied] == ["c-other", "c-unknown"]
