"""``cf doctor``: passes on a working deployment and names each broken part in one line."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from datetime import timedelta

import pytest
from access_helpers import NOW
from asterisk_sim import CaptureHarness
from sqlalchemy import text

from cfcore import doctor
from cfcore.authority import SYSTEM

ENV = {"CF_NOW": NOW.isoformat()}
NAMES = ["config", "keys", "catalog", "store:primary", "capture", "clock", "audit-anchor"]


def checks(run_cf, *args: str, env: dict[str, str] | None = None) -> tuple[int, list[dict], str]:
    proc = run_cf("doctor", "--json", *args, env={**ENV, **(env or {})})
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def failing(result: list[dict]) -> dict[str, str]:
    return {c["name"]: c["detail"] for c in result if not c["ok"]}


def test_doctor_passes_on_a_fresh_deployment_one_line_per_check(app, run_cf):
    rc, result, err = checks(run_cf)
    assert rc == 0, (result, err)
    assert [c["name"] for c in result] == NAMES and all(c["ok"] for c in result)
    human = run_cf("doctor", env=ENV)
    lines = human.stdout.strip().splitlines()
    assert human.returncode == 0 and len(lines) == len(NAMES)
    assert all(line.startswith("ok   ") for line in lines)
    assert "newest revision" in lines[2]


def test_doctor_changes_nothing(app, run_cf):
    with app.catalog.session() as s:
        before = s.execute(text("SELECT count(*) FROM audit_log")).scalar()
    assert checks(run_cf)[0] == 0
    with app.catalog.session() as s:
        assert s.execute(text("SELECT count(*) FROM audit_log")).scalar() == before
    assert not list((app.data_dir / "media").rglob("doctor/*"))  # the probe object is gone again


def test_a_key_readable_by_others_fails(app, run_cf):
    (app.keys_dir / "audit-mac.key").chmod(0o644)
    rc, result, _ = checks(run_cf)
    assert rc == 1
    assert "audit-mac.key has mode 0644" in failing(result)["keys"]


def test_a_missing_key_ring_fails(app, run_cf):
    (app.keys_dir / "keyring.json").unlink()
    rc, result, _ = checks(run_cf)
    assert rc == 1 and "keyring.json is missing" in failing(result)["keys"]


def test_a_catalog_behind_the_code_fails_and_names_cf_db_upgrade(app, run_cf):
    with app.catalog.session() as s:
        s.execute(text("UPDATE alembic_version SET version_num = '0001_initial'"))
    rc, result, _ = checks(run_cf)
    assert rc == 1
    detail = failing(result)["catalog"]
    assert "0001_initial" in detail and "cf db upgrade" in detail


def test_an_unreachable_catalog_fails(deployment, run_cf):
    deployment.write_text(re.sub(r'(?m)^url = ".*"$', 'url = "postgresql+psycopg://nobody@127.0.0.1:1/none"',
                                 deployment.read_text()))
    rc, result, _ = checks(run_cf)
    assert rc == 1 and "connection" in failing(result)["catalog"].lower()


def test_a_store_that_cannot_be_written_fails(app, run_cf):
    media = app.data_dir / "media"
    shutil.rmtree(media, ignore_errors=True)
    media.write_text("not a directory")
    rc, result, _ = checks(run_cf)
    assert rc == 1 and "store:primary" in failing(result)


def test_a_config_mistake_fails_first(deployment, run_cf):
    deployment.write_text(deployment.read_text() + "\n[serverr]\nport = 1\n")
    rc, result, _ = checks(run_cf)
    assert rc == 1 and [c["name"] for c in result] == ["config"]
    assert "serverr" in result[0]["detail"]


def test_a_notifier_option_misspelt_fails_by_the_plugins_declared_options(app, deployment, run_cf):
    with deployment.open("a") as f:
        f.write('\n[notify.soc]\ntype = "webhook"\nurl = "https://example.invalid/h"\n'
                'secret = { env = "CF_TEST_DOCTOR_HOOK" }\ntimeuot = 3\n')
    rc, result, _ = checks(run_cf, env={"CF_TEST_DOCTOR_HOOK": "x" * 32})
    assert rc == 1 and "notify.soc.timeuot is not an option" in failing(result)["notify:soc"]
    deployment.write_text(deployment.read_text().replace("timeuot = 3", "timeout = 3"))
    rc, result, _ = checks(run_cf, env={"CF_TEST_DOCTOR_HOOK": "x" * 32})
    assert rc == 0 and {"name": "notify:soc", "ok": True, "detail": "options accepted"} in result


def test_a_clock_set_back_fails(app, run_cf):
    app.audit.record(SYSTEM, "test.entry", "test", "x", "ok")  # written at NOW
    rc, result, _ = checks(run_cf, env={"CF_NOW": (NOW - timedelta(hours=2)).isoformat()})
    assert rc == 1 and "clock set back" in failing(result)["clock"]


def test_a_stale_audit_anchor_fails(deployment, make_app, run_cf):
    deployment.write_text(deployment.read_text() + "\n[audit]\nanchor_every = 3\n")
    app = make_app(deployment)
    for i in range(7):
        app.audit.record(SYSTEM, "test.entry", "test", str(i), "ok")
    assert checks(run_cf)[0] == 0  # anchored at 3 and 6
    shutil.rmtree(app.data_dir / "media" / "audit-anchors")
    rc, result, _ = checks(run_cf)
    assert rc == 1
    assert "entries since the newest anchor" in failing(result)["audit-anchor"]


@pytest.mark.anyio
@pytest.mark.timeout(90)
async def test_capture_source_connected_then_not(tmp_path, deployment, make_app, frozen_clock):
    """A real capture runner with the Asterisk plugin against the AMI simulator: the doctor sees
    the heartbeat's status, connected, and not connected once the PBX is gone."""
    async with CaptureHarness(tmp_path=tmp_path, deployment=deployment, make_app=make_app,
                              clock=frozen_clock) as h:
        h.runner.heartbeat_interval = 0.1
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            result = await asyncio.to_thread(doctor.check_capture, h.app)
            if all(c.ok for c in result) and result[0].name.startswith("capture:"):
                break
            assert asyncio.get_running_loop().time() < deadline, result
            await asyncio.sleep(0.1)
        assert "connected (runner" in result[0].detail
        await h.sim.stop()
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            result = await asyncio.to_thread(doctor.check_capture, h.app)
            if not result[0].ok:
                break
            assert asyncio.get_running_loop().time() < deadline, result
            await asyncio.sleep(0.1)
        assert "not connected" in result[0].detail
    # the runner stopped: nobody runs the source any more
    result = doctor.check_capture(h.app)
    assert not result[0].ok and "no running capture runner" in result[0].detail

