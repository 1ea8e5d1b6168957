"""Transcripts: espeak-ng speech through the PocketSphinx plugin, per channel, merged by time,
encrypted with the recording's key, read through the access decision, gone after the purge."""

from __future__ import annotations

from datetime import timedelta

import pytest
from access_helpers import ctx_for, make_user
from speech_helpers import ADVISOR_HELLO, CUSTOMER_MONEY, call_wav

from cfcore import transcripts
from cfcore.db.models_integration import TranscriptRow
from cfcore.errors import ApprovalRequired, NotFound
from cfcore.ingest import ingest_wav
from cfcore.retention import run_purge

CONSENT_AT = 4.0


def _call(app, tmp_path, advisor="A1", customer="K-1"):
    """Advisor greets at 0.5 s; the customer talks about money before consent (dropped) and again
    after it (kept)."""
    wav = call_wav(tmp_path / f"call-{advisor}.wav", 9.0, advisor=[(0.5, ADVISOR_HELLO)],
                   customer=[(0.5, CUSTOMER_MONEY), (5.0, CUSTOMER_MONEY)])
    return ingest_wav(app, wav, advisor_id=advisor, customer_ids=[customer], consent_at=CONSENT_AT,
                      started="2026-11-20T10:00:00+00:00")


def _words(doc, role):
    return [w for w in doc["segments"] if w["role"] == role]


def test_each_voice_is_transcribed_separately_and_merged_by_time(app, tmp_path):
    rec = _call(app, tmp_path)
    [result] = transcripts.run(app)
    assert result["id"] == rec and result["state"] == "done" and result["engine"] == "pocketsphinx"
    assert result["language"] == "en"
    doc = transcripts.decrypt(app, rec)
    advisor, customer = _words(doc, "advisor"), _words(doc, "customer")
    assert any(w["text"] == "help" for w in advisor), doc
    assert all(w["start"] < 4.0 for w in advisor)
    money = [w for w in customer if w["text"] == "money"]
    assert money, doc
    # the customer's words before consent were never stored, so never transcribed
    assert all(w["start"] >= CONSENT_AT for w in customer), customer
    starts = [w["start"] for w in doc["segments"]]
    assert starts == sorted(starts)
    assert all(0 <= w["start"] <= w["end"] <= 9.0 for w in doc["segments"])
    # nothing left to do; a second run does not transcribe it again
    assert transcripts.run(app) == []


def test_transcript_is_ciphertext_under_the_recording_key(app, tmp_path):
    rec = _call(app, tmp_path)
    transcripts.run(app)
    with app.catalog.session() as s:
        row = s.get(TranscriptRow, rec)
        assert row.state == "done" and row.words > 0
        assert b"money" not in row.ciphertext and b"help" not in row.ciphertext
        assert row.ciphertext[:4] == b"CFAE"
    from sqlalchemy import select

    from cfcore.db.models import AuditEntry

    with app.catalog.session() as s:
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "transcript.create")).all()
        assert entry.target_id == rec and entry.outcome == "ok" and "money" not in entry.detail


def test_advisor_only_calls_are_not_transcribed_by_default(app, tmp_path):
    wav = call_wav(tmp_path / "adv.wav", 4.0, advisor=[(0.5, ADVISOR_HELLO)])
    ingest_wav(app, wav, advisor_id="A1", customer_ids=["K-9"], started="2026-11-20T10:00:00+00:00")
    assert transcripts.run(app) == []


def test_language_comes_from_the_advisor_setting_and_german_without_a_model_is_refused(deployment, make_app, tmp_path):
    with open(deployment, "a") as f:
        f.write('\n[transcription]\nlanguage = "en"\n[transcription.advisors]\nA7 = "de"\n')
    app = make_app(deployment)
    rec = _call(app, tmp_path, advisor="A7")
    [result] = transcripts.run(app)
    assert result["state"] == "refused" and result["language"] == "de"
    assert "no transcription engine for language 'de'" in result["error"]
    assert transcripts.run(app) == []  # a refusal is not retried on every run
    with pytest.raises(NotFound):
        transcripts.decrypt(app, rec)


def test_a_configured_german_model_that_is_missing_is_refused_naming_the_path(deployment, make_app, tmp_path):
    with open(deployment, "a") as f:
        f.write('\n[transcription]\nlanguage = "de"\n[transcription.sphinx.models.de]\n'
                f'hmm = "{tmp_path}/no-such-model"\nlm = "{tmp_path}/de.lm.bin"\ndict = "{tmp_path}/de.dict"\n')
    app = make_app(deployment)
    _call(app, tmp_path)
    [result] = transcripts.run(app)
    assert result["state"] == "refused"
    assert f"hmm = {tmp_path}/no-such-model does not exist" in result["error"]


def test_links_are_for_the_calls_advisor_others_need_four_eyes(app, tmp_path):
    make_user(app, "adam", ["advisor"], advisor_id="A1")
    make_user(app, "berta", ["advisor"], advisor_id="A2")
    rec = _call(app, tmp_path)
    transcripts.run(app)
    link = transcripts.create_link(app, ctx_for(app, "adam"), rec)
    assert link["purpose"] == "transcript" and f"/api/transcripts/{rec}?t=" in link["url"]
    with pytest.raises(ApprovalRequired):
        transcripts.create_link(app, ctx_for(app, "berta"), rec)


def test_the_purge_shreds_the_transcript_with_the_recording(app, tmp_path, frozen_clock):
    rec = _call(app, tmp_path)
    transcripts.run(app)
    ciphertext = transcripts.status(app, rec).ciphertext
    frozen_clock.advance(timedelta(days=366 * 8))
    report = run_purge(app)
    assert rec in [p["id"] for p in report.purged]
    assert transcripts.status(app, rec) is None
    with pytest.raises(NotFound):
        transcripts.decrypt(app, rec)
    # even a copy of the ciphertext (a backup) is unreadable: the data key is gone
    from cfcore.db.models import DataKey

    with app.catalog.session() as s:
        assert s.get(DataKey, rec).wrapped is None
    assert ciphertext is not None


def test_the_art15_report_names_the_transcript(app, tmp_path):
    from cfcore.dsar.collect import build_report, subject_pseudonyms

    rec = _call(app, tmp_path, customer="K-77")
    transcripts.run(app)
    for lang, word in (("en", "machine transcript"), ("de", "maschinelle Verschriftung")):
        report = build_report(app, subject_pseudonyms(app, ["K-77"]), lang=lang)
        [entry] = [r for r in report["recordings"] if r["id"] == rec]
        assert entry["transcript"]["language"] == "en"
        assert word in entry["transcript"]["text"]


def test_cf_transcribe_run_needs_the_archive_operator(app, tmp_path, run_cf):
    import json

    from access_helpers import login_env

    make_user(app, "ops", ["administrator"])
    make_user(app, "adam", ["advisor"], advisor_id="A1")
    rec = _call(app, tmp_path)
    refused = run_cf("transcribe", "run", env=login_env("adam"))
    assert refused.returncode != 0 and "may not" in refused.stderr and "Traceback" not in refused.stderr
    done = run_cf("transcribe", "run", "--json", env=login_env("ops"), check=True)
    [result] = json.loads(done.stdout)
    assert result["id"] == rec and result["state"] == "done"
    assert "help" not in done.stdout and "money" not in done.stdout  # no text on the terminal


def test_cf_serve_runs_the_transcription_and_outbox_jobs(deployment, make_app, tmp_path):
    import asyncio

    from cfcore import outbox
    from cfcore.jobs import JobRunner, registered_jobs

    app = make_app(deployment)
    jobs = registered_jobs(app)
    assert jobs["transcripts.run"].run is transcripts.job and jobs["integration.outbox"].run is outbox.job
    rec = _call(app, tmp_path)

    async def once():
        runner = JobRunner(app, {"transcripts.run": jobs["transcripts.run"]})
        await runner.start()
        for _ in range(600):
            if runner.status["transcripts.run"].runs:
                break
            await asyncio.sleep(0.1)
        await runner.stop()
        return runner.status["transcripts.run"]

    status = asyncio.run(once())
    assert status.runs == 1 and status.failures == 0
    assert transcripts.status(app, rec).state == "done"
    with open(deployment, "a") as f:
        f.write("\n[transcription]\nenabled = false\n")
    assert transcripts.job(make_app(deployment)) is None
