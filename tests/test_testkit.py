"""No clock override in production: only the test-only plugin (testkit/, distribution
``callfort-testkit``) pins a ``cf`` process's clock (``CF_NOW``) or crashes it
(``CF_TEST_CRASH_AT``); without it the environment changes nothing. While it is loaded it is loud:
a warning on every command, a warning line in ``cf plugins`` and a FIS alert. (Hooks
``cf_test_pinned_time`` and ``cf_test_crash_point``.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from archive_helpers import make_wav
from retention_helpers import ingest, login_env, make_user, state

from cfcore.authority import SYSTEM
from cfcore.clock import FrozenClock
from cfcore.config import load_config
from cfcore.fis.scan import scan
from cfcore.fis.scrub import run_scrubs
from cfcore.plugins import get_plugin_manager

WARNING = "TEST-ONLY plugin testkit loaded"


def real_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def set_testkit(deployment, loaded: bool) -> None:
    text = deployment.read_text()
    on, off = "[plugins]\ndisabled = []\n", '[plugins]\ndisabled = ["testkit"]\n'
    assert (on if loaded else off) in text or (off if loaded else on) in text
    deployment.write_text(text.replace(off, on) if loaded else text.replace(on, off))


def test_cf_now_does_not_move_a_production_clock(deployment, make_app, run_cf, tmp_path):
    """Attack: ``CF_NOW=2046-… cf retention run`` as an administrator purged the archive years
    early. Without the test plugin the purge runs on the real clock and purges nothing."""
    now = real_now()
    app = make_app(deployment, clock=FrozenClock(now))
    rec = ingest(app, tmp_path, (now - timedelta(days=1)).isoformat(), two_sided=False, customer="K-1")
    make_user(app, "ops", "administrator")
    years_ahead = (now + timedelta(days=20 * 365)).isoformat()

    set_testkit(deployment, loaded=False)
    r = run_cf("retention", "run", "--json", env=login_env("ops", CF_NOW=years_ahead), raw_stderr=True)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    ran_at = datetime.fromisoformat(report["now"])
    assert abs(ran_at - real_now()) < timedelta(hours=1)  # the real clock, not 2046
    assert report["purged"] == [] and state(app, rec)["state"] == "archived"
    assert WARNING not in r.stderr
    disposal = [e for e in app.audit.entries(0, action="retention.disposal")]
    assert disposal and abs(disposal[-1].at.replace(tzinfo=UTC) - real_now()) < timedelta(hours=1)

    # the same command with the test plugin installed does move the clock (so the check above can fail)
    set_testkit(deployment, loaded=True)
    r = run_cf("retention", "run", "--json", env=login_env("ops", CF_NOW=years_ahead), raw_stderr=True)
    assert r.returncode == 0, r.stderr
    assert [p["id"] for p in json.loads(r.stdout)["purged"]] == [rec] and WARNING in r.stderr


def test_crash_points_need_the_test_plugin(app, deployment, run_cf, tmp_path):
    make_user(app, "admin", "administrator")
    wav, _ = make_wav(tmp_path / "in.wav", 1.0)
    set_testkit(deployment, loaded=False)
    ok = run_cf("ingest", str(wav), "--agent", "A1", "--customer", "K-1", env=login_env("admin", CF_TEST_CRASH_AT="before-commit"))
    assert ok.returncode == 0, ok.stderr
    set_testkit(deployment, loaded=True)
    killed = run_cf("ingest", str(wav), "--agent", "A2", "--customer", "K-2", env=login_env("admin", CF_TEST_CRASH_AT="before-commit"))
    assert killed.returncode == 86 and "exiting as if killed" in killed.stderr


def test_the_test_plugin_is_listed_and_warned_loudly(app, deployment, run_cf):
    listing = run_cf("plugins", check=True, raw_stderr=True)
    assert f"WARNING: {WARNING}" in listing.stdout and WARNING in listing.stderr
    rows = json.loads(run_cf("plugins", "--json", check=True).stdout)
    assert {r["name"]: r["test_only"] for r in rows}["testkit"] is True
    assert not any(r["test_only"] for r in rows if r["name"] != "testkit")
    make_user(app, "aud", "auditor")
    verify = run_cf("audit", "verify", env=login_env("aud"), raw_stderr=True)
    assert WARNING in verify.stderr  # every command that opens the deployment
    set_testkit(deployment, loaded=False)
    quiet = run_cf("plugins", check=True, raw_stderr=True)
    assert "WARNING" not in quiet.stdout and WARNING not in quiet.stderr
    assert "testkit" in quiet.stdout and "disabled" in quiet.stdout


def test_fis_alerts_a_loaded_test_plugin(deployment, make_app):
    loud = make_app(deployment, pm=get_plugin_manager(load_config(deployment)))
    assert loud.pm.test_only_plugins() == ["testkit"]
    found = run_scrubs(loud, only=("platform",)).findings
    assert [(f.rule, f.severity.value, f.evidence) for f in found] == [("platform.test-plugin", "high", ("plugin:testkit",))]
    report = scan(loud, SYSTEM, deliver=False)
    assert [a["rule"] for a in report.new_alerts] == ["platform.test-plugin"]
    # the in-process test apps leave the test plugin out (their clock is passed in): no alert
    quiet = make_app(deployment)
    assert quiet.pm.test_only_plugins() == [] and run_scrubs(quiet, only=("platform",)).findings == []
