"""CallFort plugin transcribe_whisper: offline speech to text with faster-whisper (CTranslate2).

Serves only when the deployment chooses it, so that installing it next to ``transcribe_sphinx``
changes nothing until an operator says so::

    [transcription]
    engine = "whisper"                             # without this line the plugin passes (None)

    [transcription.whisper]
    model_path = "/opt/models/whisper-base-ct2"    # a faster-whisper (CTranslate2) model directory
    # languages = ["de", "en"]                     # optional: serve only these (default: all)
    # compute_type = "int8"  cpu_threads = 0  beam_size = 5

The model directory must hold ``model.bin``, ``config.json`` and ``tokenizer.json``; it is loaded
with ``local_files_only=True`` from that directory only (a model *name* is never accepted, so
nothing is ever downloaded). A missing or invalid directory is refused with
``TranscriptionUnavailable`` naming the path. The language is always passed to the model, never
detected (Whisper's detection picks the wrong language on 8 kHz telephone audio). Word timestamps
become the ``Transcript``'s segments (seconds from the start of the clip).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Mapping
from typing import Any

import attrs

from hookspecs import OptionsError, hookimpl, parse_options
from hookspecs.types import AudioClip, Transcript, TranscriptionUnavailable, TranscriptSegment

ENGINE = "faster-whisper"
NAME = "whisper"  # the value of [transcription] engine that selects this plugin
MODEL_RATE = 16000
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")

_lock = threading.Lock()
_models: dict[tuple[str, str, int], Any] = {}


@attrs.frozen(kw_only=True)
class WhisperOptions:
    """``[transcription.whisper]``, built with ``hookspecs.parse_options`` (a misspelt key or a
    wrong type is refused with the key named, as ``TranscriptionUnavailable``)."""

    model_path: str = ""
    #: serve only these languages (default: all)
    languages: list[str] | None = None
    compute_type: str = "int8"
    cpu_threads: int = 0
    beam_size: int = 5


def _options(settings: Mapping[str, Any]) -> WhisperOptions | None:
    """This engine's ``[transcription.whisper]``, or None when another engine is chosen."""
    if not isinstance(settings, Mapping) or str(settings.get("engine", "")).strip().lower() != NAME:
        return None
    own = settings.get(NAME, {})
    if not isinstance(own, Mapping):
        raise TranscriptionUnavailable(f"[transcription.{NAME}] must be a table with model_path")
    try:
        return parse_options(WhisperOptions, own, where=f"transcription.{NAME}")
    except OptionsError as exc:
        raise TranscriptionUnavailable(str(exc)) from None


def model_dir(own: WhisperOptions) -> str:
    """The validated model directory; ``TranscriptionUnavailable`` naming what is wrong."""
    path = own.model_path
    if not path.strip():
        raise TranscriptionUnavailable(
            "the faster-whisper engine needs model_path in [transcription.whisper] "
            "(a local CTranslate2 model directory; nothing is downloaded)")
    if not os.path.isdir(path):
        raise TranscriptionUnavailable(
            f"the faster-whisper model is missing: model_path = {path} is not a directory "
            "(install the model there or correct the path; nothing is downloaded)")
    missing = [f for f in REQUIRED_FILES if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise TranscriptionUnavailable(
            f"the faster-whisper model at model_path = {path} is invalid: {', '.join(missing)} missing")
    return path


def _load(path: str, compute_type: str, threads: int) -> Any:
    key = (os.path.realpath(path), compute_type, threads)
    model = _models.get(key)
    if model is None:
        from faster_whisper import WhisperModel

        try:
            model = WhisperModel(path, device="cpu", compute_type=compute_type, cpu_threads=threads,
                                 local_files_only=True)
        except (RuntimeError, ValueError, OSError) as exc:
            raise TranscriptionUnavailable(
                f"faster-whisper could not load the model at model_path = {path}: {exc}") from exc
        _models[key] = model
    return model


def to_float16k(pcm: bytes, rate: int) -> Any:
    """PCM16 mono at ``rate`` as float32 samples at 16 kHz (``audioop.ratecv``'s filter)."""
    import numpy as np

    pcm = pcm[: len(pcm) // 2 * 2]
    if rate != MODEL_RATE:
        if rate <= 0:
            raise ValueError(f"cannot resample {rate} Hz")
        with warnings.catch_warnings():  # deprecated, gone in 3.13; CallFort runs on 3.11
            warnings.simplefilter("ignore", DeprecationWarning)
            import audioop
        pcm = bytes(audioop.ratecv(pcm, 2, 1, rate, MODEL_RATE, None)[0])
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def transcribe(audio: AudioClip, language: str, settings: Mapping[str, Any]) -> Transcript | None:
    own = _options(settings)
    if own is None:
        return None
    if own.languages is not None and language not in [x.lower() for x in own.languages]:
        return None
    path = model_dir(own)
    compute_type, threads, beam = own.compute_type, own.cpu_threads, own.beam_size
    lang = language.split("-", 1)[0]  # Whisper knows "en", not "en-us"
    samples = to_float16k(audio.pcm_s16le, audio.sample_rate)
    words: list[TranscriptSegment] = []
    with _lock:  # one model per path, used by one thread at a time
        model = _load(path, compute_type, threads)
        try:
            segments, _info = model.transcribe(samples, language=lang, task="transcribe", beam_size=beam,
                                               word_timestamps=True, condition_on_previous_text=False,
                                               vad_filter=False)
            for seg in segments:  # a generator: decoding happens here
                for w in seg.words or ():
                    text = w.word.strip()
                    if text:
                        start = max(0.0, float(w.start))
                        words.append(TranscriptSegment(start=start, end=max(start, float(w.end)), text=text))
        except ValueError as exc:  # e.g. a language code Whisper does not know
            raise TranscriptionUnavailable(f"faster-whisper cannot transcribe language '{language}': {exc}") from exc
    return Transcript(recording_id=audio.recording_id, language=language, engine=ENGINE,
                      text=" ".join(w.text for w in words), segments=words)


@hookimpl
def cf_transcribe(audio: AudioClip, language: str, settings: Mapping[str, Any]) -> Transcript | None:
    return transcribe(audio, language, settings)
