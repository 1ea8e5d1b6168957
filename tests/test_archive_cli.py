"""The archive through the CLI, as a user would: ingest, list, show, four-eyes export, keys."""

import json

from archive_helpers import NOW, approve, login_env, make_user, make_wav, media_files

from cfcore.wav import read_wav


def _setup(app):
    return {
        "admin": make_user(app, "admin", ["administrator"]),
        "sup": make_user(app, "sup", ["supervisor"]),
        "comp1": make_user(app, "comp1", ["compliance"]),
        "comp2": make_user(app, "comp2", ["compliance"]),
        "adv": make_user(app, "adv1", ["advisor"], advisor_id="A1"),
    }


def test_ingest_list_show_export(app, deployment, run_cf, tmp_path):
    users = _setup(app)
    wav, chans = make_wav(tmp_path / "in.wav", 2.0)
    env = {**login_env("admin"), "CF_NOW": NOW.isoformat()}
    p = run_cf("ingest", str(wav), "--agent", "A1", "--customer", "K-1", "--customer-number", "+49 30 123456",
               "--consent-at", "0", "--started", "2026-11-28T08:00:00Z", "--site", "site-b", "--direction", "out",
               env=env)
    assert p.returncode == 0, p.stderr
    rid = p.stdout.strip()
    assert len(rid) == 32
    p2 = run_cf("ingest", str(wav), "--agent", "A2", "--customer", "K-2", "--json", env=env)
    rid2 = json.loads(p2.stdout)["id"]

    # the administrator may ingest but not read recordings
    denied = run_cf("recordings", "list", env=login_env("admin"))
    assert denied.returncode == 5 and "may not" in denied.stderr

    rows = json.loads(run_cf("recordings", "list", "--json", env=login_env("sup"), check=True).stdout)
    assert {r["id"] for r in rows} == {rid, rid2}
    rows = json.loads(run_cf("recordings", "list", "--json", "--agent", "A2", env=login_env("sup"), check=True).stdout)
    assert [r["id"] for r in rows] == [rid2]
    rows = json.loads(run_cf("recordings", "list", "--json", "--since", "2026-11-28T08:30:00+00:00",
                             env=login_env("sup"), check=True).stdout)
    assert [r["id"] for r in rows] == [rid2]
    # an advisor sees their own recordings only
    rows = json.loads(run_cf("recordings", "list", "--json", env=login_env("adv1"), check=True).stdout)
    assert [r["id"] for r in rows] == [rid]
    human = run_cf("recordings", "list", env=login_env("sup"), check=True).stdout
    assert rid in human and rid2 in human

    show = json.loads(run_cf("recordings", "show", rid, "--json", env=login_env("sup"), check=True).stdout)
    assert show["site"] == "site-b" and show["direction"] == "out" and show["two_sided"]
    assert show["started_at"].startswith("2026-11-28T08:00:00")
    assert {m["channel"] for m in show["media"]} == {"advisor", "customer"}
    assert len(show["subjects"]) == 2 and "K-1" not in json.dumps(show)
    assert run_cf("recordings", "show", rid2, env=login_env("adv1")).returncode == 5
    missing = run_cf("recordings", "show", "f" * 32, env=login_env("sup"))
    assert missing.returncode == 4 and "no recording" in missing.stderr

    # export is four-eyes for compliance
    out = tmp_path / "out.wav"
    need = run_cf("export", rid, "--out", str(out), env=login_env("comp1"))
    assert need.returncode == 6 and not out.exists()
    aid = approve(app, users["comp1"], users["comp2"], "recording.export", rid)
    ok = run_cf("export", rid, "--out", str(out), "--approval", aid, "--json", env=login_env("comp1"))
    assert ok.returncode == 0, ok.stderr
    assert out.read_bytes() == wav.read_bytes()
    assert json.loads(ok.stdout)["sha256"]
    again = run_cf("export", rid, "--out", str(tmp_path / "again.wav"), "--approval", aid, env=login_env("comp1"))
    assert again.returncode == 6  # the approval was used up

    entries = list(app.audit.entries())
    reads = [(e.action, e.user, e.outcome) for e in entries if e.action.startswith("recording.")]
    assert ("recording.archive", "admin", "ok") in reads
    assert ("recording.list", "sup", "ok") in reads and ("recording.show", "sup", "ok") in reads
    assert ("recording.export", "comp1", "ok") in reads and ("recording.export", "comp1", "needs-approval") in reads
    from sqlalchemy import select

    from cfcore.db.models import AuditEntry

    with app.catalog.session() as s:
        exp = s.scalars(select(AuditEntry).where(AuditEntry.action == "recording.export",
                                                 AuditEntry.outcome == "ok")).one()
        assert exp.approval_id == aid and exp.user == "comp1" and exp.host and exp.ip
    assert app.audit.verify().ok


def test_export_of_a_tampered_recording_fails_on_the_cli(app, deployment, run_cf, tmp_path):
    users = _setup(app)
    wav, _ = make_wav(tmp_path / "in.wav", 1.0, channels=1)
    rid = run_cf("ingest", str(wav), "--agent", "A1", "--customer", "K1", env=login_env("admin"),
                 check=True).stdout.strip()
    (obj,) = media_files(deployment)
    data = bytearray(obj.read_bytes())
    data[100] ^= 1
    obj.write_bytes(bytes(data))
    aid = approve(app, users["comp1"], users["comp2"], "recording.export", rid)
    out = tmp_path / "out.wav"
    p = run_cf("export", rid, "--out", str(out), "--approval", aid, env=login_env("comp1"))
    assert p.returncode == 7, p.stderr
    assert "cf: error:" in p.stderr and "Traceback" not in p.stderr
    assert not out.exists()
    assert [e.outcome for e in app.audit.entries(action="recording.export")][-1] == "failed"


def test_export_through_the_approval_executor(app, tmp_path):
    from cfcore.access import approvals

    users = _setup(app)
    wav, chans = make_wav(tmp_path / "in.wav", 1.0)
    from cfcore.ingest import ingest_wav

    rid = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"], consent_at=0)
    out = tmp_path / "x.wav"
    aid = approve(app, users["comp1"], users["comp2"], "recording.export", rid, {"out": str(out)})
    result = approvals.execute(app, users["comp1"], aid)
    assert result["bytes"] == out.stat().st_size and read_wav(out).channels == tuple(chans)


def test_keys_rotate_is_four_eyes_and_rewrap(app, deployment, run_cf, tmp_path):
    users = _setup(app)
    make_user(app, "admin2", ["administrator"])
    dpo = make_user(app, "dpo1", ["dpo"])
    wav, chans = make_wav(tmp_path / "in.wav", 1.0)
    rid = run_cf("ingest", str(wav), "--agent", "A1", "--customer", "K1", "--consent-at", "0",
                 env=login_env("admin"), check=True).stdout.strip()
    first = app.keys.current_kek_id()
    need = run_cf("keys", "rotate", env=login_env("admin"))
    assert need.returncode == 6 and "four-eyes" in need.stderr
    aid = approve(app, users["admin"], dpo, "keys.rotate", None)
    rot = run_cf("keys", "rotate", "--approval", aid, "--json", env=login_env("admin"))
    assert rot.returncode == 0, rot.stderr
    data = json.loads(rot.stdout)
    assert data["previous"] == first and data["current"] != first
    keys = json.loads(run_cf("keys", "list", "--json", env=login_env("admin"), check=True).stdout)
    assert {k["id"]: k["data_keys"] for k in keys} == {first: 1, data["current"]: 0}
    rw = json.loads(run_cf("keys", "rewrap", "--json", env=login_env("admin"), check=True).stdout)
    assert rw["rewrapped"] == 1
    keys = json.loads(run_cf("keys", "list", "--json", env=login_env("admin"), check=True).stdout)
    assert {k["id"]: k["data_keys"] for k in keys} == {first: 0, data["current"]: 1}
    # the old recording reads back after rotation and re-wrap
    aid2 = approve(app, users["comp1"], users["comp2"], "recording.export", rid)
    out = tmp_path / "out.wav"
    run_cf("export", rid, "--out", str(out), "--approval", aid2, env=login_env("comp1"), check=True)
    assert out.read_bytes() == wav.read_bytes()
    actions = [e.action for e in app.audit.entries()]
    assert "keys.rotate" in actions and "keys.rewrap" in actions
    assert app.audit.verify().ok


def test_ingest_needs_a_customer_and_a_login(app, run_cf, tmp_path):
    _setup(app)
    wav, _ = make_wav(tmp_path / "in.wav", 0.5)
    p = run_cf("ingest", str(wav), "--agent", "A1", env=login_env("admin"))
    assert p.returncode == 2 and "--customer" in p.stderr
    p = run_cf("ingest", str(wav), "--agent", "A1", "--customer", "K1", env={"CF_USER": "", "CF_PASSWORD": ""})
    assert p.returncode == 5
    p = run_cf("ingest", str(wav), "--agent", "A1", "--customer", "K1", env=login_env("sup"))
    assert p.returncode == 5 and "may not" in p.stderr


def test_archive_sweep_cli(app, run_cf):
    _setup(app)
    p = run_cf("archive", "sweep", "--json", env=login_env("admin"))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"deleted": []}
