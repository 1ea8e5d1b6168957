"""ONS / mobile: the carrier's call records reconciled with the recordings (`cf mobile
import-cdr FILE`); every unrecorded advisory call is audited and raises the FIS alert
`mobile-unrecorded`; importing again raises nothing twice; malformed rows are reported."""

from __future__ import annotations

import json

from sqlalchemy import select

from cfcore.authority import SYSTEM
from tests.access_helpers import login_env, make_user, make_wav

MOBILE = "+491701234567"


def test_import_cdr_alerts_every_unrecorded_advisory_call(deployment, make_app, run_cf, tmp_path):
    with open(deployment, "a", encoding="utf-8") as f:
        f.write(f'\n[plugins.mobile_ons.advisors.A100]\nmobile = "{MOBILE}"\npin_hash = "$argon2id$x"\n')
    app = make_app(deployment)
    from cfcore.db.models import AuditEntry
    from cfcore.db.models_fis import FisAlert
    from cfcore.fis.scan import scan
    from cfcore.ingest import ingest_wav

    make_user(app, "root", ["administrator"])
    make_user(app, "anna", ["advisor"], advisor_id="A100")
    rec = ingest_wav(app, make_wav(tmp_path / "a.wav", 3.0), advisor_id="A100", customer_numbers=["+4930123456"],
                     started="2026-11-20T09:00:00+00:00", source="mobile")
    cdr = tmp_path / "carrier.csv"
    cdr.write_text("start,duration,mobile,other,direction\n"
                   "2026-11-20T09:00:30+00:00,180,+491701234567,+4930123456,out\n"   # recorded
                   "2026-11-20T11:00:00+01:00,240,00491701234567,030555777,in\n"     # NOT recorded
                   "2026-11-20T12:00:00+00:00,4,+491701234567,+4930555777,out\n"      # too short
                   "2026-11-20T13:00:00+00:00,300,+491709999999,+4930555777,out\n"    # not an advisor
                   "yesterday,60,+491701234567,+4930555777,out\n")                   # malformed
    out = run_cf("mobile", "import-cdr", str(cdr), "--json", env=login_env("root"))
    assert out.returncode == 2, out.stderr
    res = json.loads(out.stdout)
    assert (res["records"], res["advisory"], res["recorded"], res["unrecorded"]) == (4, 2, 1, 1)
    assert res["errors"] and res["errors"][0].startswith("line 6")
    with app.catalog.session() as s:
        alerts = [json.loads(e.detail) for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "capture.alert"))]
    assert [(a["alert"], a["advisor_id"]) for a in alerts] == [("ons_unrecorded", "A100")]
    assert "+4930555777" not in json.dumps(alerts) and "030555777" not in json.dumps(alerts)
    # again: nothing new
    res2 = json.loads(run_cf("mobile", "import-cdr", str(cdr), "--json", env=login_env("root")).stdout)
    assert res2["unrecorded"] == 0 and res2["already_alerted"] == 1
    scan(app, SYSTEM)
    with app.catalog.session() as s:
        rules = [a.rule for a in s.scalars(select(FisAlert))]
    assert rules.count("mobile-unrecorded") == 1
    # an advisor may not import call records (refused and audited)
    denied = run_cf("mobile", "import-cdr", str(cdr), env=login_env("anna"))
    assert denied.returncode == 5 and rec


def test_hash_pin_prints_an_argon2id_hash_the_plugin_accepts(run_cf):
    from cf_mobile_ons.pins import verify_pin

    out = run_cf("mobile", "hash-pin", input="4711\n4711\n", check=True)
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("$argon2id$") and verify_pin(line, "4711") and not verify_pin(line, "4712")
    bad = run_cf("mobile", "hash-pin", input="12\n12\n")
    assert bad.returncode != 0 and "4 to 12 digits" in bad.stderr


def test_recordings_show_consent_proof_for_the_owner_only_and_audited(deployment, make_app, run_cf, tmp_path):
    from datetime import UTC, datetime

    from cfcore.db.models import AuditEntry
    from cfcore.ingest import ingest_call
    from hookspecs.types import ChannelFile, ChannelRole, Consent, Direction, FinishedCall, ModeSegment, RecordingMode
    from tests.archive_helpers import make_wav as mono_wav

    app = make_app(deployment)
    make_user(app, "dora", ["advisor"], advisor_id="A103")
    make_user(app, "bert", ["advisor"], advisor_id="A101")
    at = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    adv, _ = mono_wav(tmp_path / "adv.wav", 2.0, channels=1)
    cus, _ = mono_wav(tmp_path / "cus.wav", 2.0, channels=1)
    proof = {"announcement_id": "mobile-consent", "announcement_version": "3", "digit": "1",
             "customer_leg_id": "cf-abc-cus"}
    rec_id = ingest_call(app, FinishedCall(
        call_id="mobile-abc", source="mobile", advisor_id="A103", started_at=at, direction=Direction.OUTBOUND,
        files=[ChannelFile(role=ChannelRole.ADVISOR, path=adv), ChannelFile(role=ChannelRole.CUSTOMER, path=cus)],
        segments=[ModeSegment(start=0.0, end=2.0, mode=RecordingMode.BOTH)],
        consents=[Consent(given_at=at, offset=0.0, by_user="customer", method="dtmf", applied_at=at, proof=proof)],
        customer_numbers=["+4930123456"]))
    out = run_cf("recordings", "show", rec_id, "--consent-proof", "--json", env=login_env("dora"), check=True)
    assert json.loads(out.stdout)["consent_proofs"] == [proof]
    human = run_cf("recordings", "show", rec_id, "--consent-proof", env=login_env("dora"), check=True).stdout
    assert "consent proof: " in human and "announcement_version=3" in human
    denied = run_cf("recordings", "show", rec_id, "--consent-proof", env=login_env("bert"))
    assert denied.returncode == 5 and "cf-abc-cus" not in denied.stdout + denied.stderr
    with app.catalog.session() as s:
        reads = s.scalars(select(AuditEntry).where(AuditEntry.action == "recording.consent_proof")).all()
    assert [e.outcome for e in reads] == ["ok", "ok"]
