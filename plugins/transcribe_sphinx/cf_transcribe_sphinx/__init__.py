"""CallFort plugin transcribe_sphinx: offline speech to text with PocketSphinx 5.

Works on any machine without downloads for US English: PocketSphinx ships its ``en-us`` model
(wideband; telephone audio at 8 kHz is interpolated to 16 kHz first). Other languages need a model
the operator installs and names in the deployment's config::

    [transcription.sphinx.models.de]
    hmm = "/opt/models/cmusphinx-de/acoustic"   # acoustic model directory
    lm = "/opt/models/cmusphinx-de/de.lm.bin"    # language model
    dict = "/opt/models/cmusphinx-de/de.dict"    # pronunciation dictionary

A language with no model configured is passed on (``None``: another engine may serve it); a
configured model whose files are missing is refused with ``TranscriptionUnavailable`` naming the
missing path. With ``[transcription] engine = "<other>"`` (e.g. ``"whisper"``) this plugin passes on
every language; without it (or with ``engine = "sphinx"``) it serves as above. Nothing is downloaded at run time. Word timestamps come from the decoder's segments
(100 frames per second).
"""

from __future__ import annotations

import array
import os
import threading
import warnings
from collections.abc import Mapping
from typing import Any

import attrs

from hookspecs import OptionsError, hookimpl, parse_options
from hookspecs.types import AudioClip, Transcript, TranscriptionUnavailable, TranscriptSegment

ENGINE = "pocketsphinx"
MODEL_RATE = 16000
FRAME_RATE = 100.0  # decoder frames per second
#: Languages the shipped model serves without configuration.
BUILTIN = {"en": "en-us", "en-us": "en-us"}
_FILLERS = ("<s>", "</s>", "<sil>")

_lock = threading.Lock()
_decoders: dict[tuple[str, ...], Any] = {}


def _audioop() -> Any:
    try:
        with warnings.catch_warnings():  # deprecated, gone in 3.13; CallFort runs on 3.11 (spyne)
            warnings.simplefilter("ignore", DeprecationWarning)
            import audioop
    except ImportError:  # pragma: no cover - Python 3.13+
        return None
    return audioop


def upsample(pcm: bytes, rate: int, target: int = MODEL_RATE) -> bytes:
    """PCM16 mono from ``rate`` to ``target``: ``audioop.ratecv`` (its interpolation filter gave
    clearly better recognition than plain linear interpolation), linear where it is missing."""
    if rate == target:
        return pcm
    ao = _audioop()
    if ao is not None and 0 < rate < target:
        return bytes(ao.ratecv(pcm[: len(pcm) // 2 * 2], 2, 1, rate, target, None)[0])
    if rate <= 0 or rate > target:
        raise ValueError(f"cannot resample {rate} Hz to {target} Hz")
    src = array.array("h")
    src.frombytes(pcm[: len(pcm) // 2 * 2])
    n = len(src)
    if n == 0:
        return b""
    m = n * target // rate
    out = array.array("h", bytes(2 * m))
    step = rate / target
    last = n - 1
    for j in range(m):
        pos = j * step
        i = int(pos)
        if i >= last:
            out[j] = src[last]
        else:
            f = pos - i
            out[j] = int(src[i] + (src[i + 1] - src[i]) * f)
    return out.tobytes()


@attrs.frozen(kw_only=True)
class SphinxModel:
    """``[transcription.sphinx.models.<language>]``: an operator-installed model."""

    hmm: str
    lm: str
    dict: str


@attrs.frozen(kw_only=True)
class SphinxOptions:
    """``[transcription.sphinx]``, built with ``hookspecs.parse_options`` (a misspelt key or a
    wrong type is refused with the key named, as ``TranscriptionUnavailable``)."""

    models: Mapping[str, SphinxModel] = attrs.field(factory=dict)


def _options(settings: Mapping[str, Any]) -> SphinxOptions | None:
    """This engine's ``[transcription.sphinx]``, or None when ``[transcription] engine`` chooses another."""
    chosen = str(settings.get("engine", "") if isinstance(settings, Mapping) else "").strip().lower()
    if chosen and chosen != "sphinx":
        return None
    own = settings.get("sphinx", {}) if isinstance(settings, Mapping) else {}
    if not isinstance(own, Mapping):
        raise TranscriptionUnavailable("[transcription.sphinx] must be a table")
    try:
        return parse_options(SphinxOptions, own, where="transcription.sphinx")
    except OptionsError as exc:
        raise TranscriptionUnavailable(str(exc)) from None


def _model(language: str, settings: Mapping[str, Any]) -> tuple[str, ...] | None:
    """``()`` for the shipped en-us model, ``(hmm, lm, dict)`` for an operator's, None if none
    (or when ``[transcription] engine`` chooses another engine)."""
    own = _options(settings)
    if own is None:
        return None
    cfg = own.models.get(language)
    if cfg is None:
        return () if language in BUILTIN else None
    paths = []
    for key in ("hmm", "lm", "dict"):
        value = getattr(cfg, key)
        if not value:
            raise TranscriptionUnavailable(
                f"the PocketSphinx model for '{language}' needs '{key}' in [transcription.sphinx.models.{language}]")
        if not os.path.exists(value):
            raise TranscriptionUnavailable(
                f"the PocketSphinx model for '{language}' is missing: {key} = {value} does not exist "
                "(install the model there or correct the path; nothing is downloaded)")
        paths.append(value)
    return tuple(paths)


def _decoder(model: tuple[str, ...]) -> Any:
    from pocketsphinx import Decoder

    dec = _decoders.get(model)
    if dec is None:
        kwargs: dict[str, Any] = {"samprate": MODEL_RATE, "loglevel": "FATAL"}
        if model:
            kwargs.update(hmm=model[0], lm=model[1], dict=model[2])
        try:
            dec = Decoder(**kwargs)
        except RuntimeError as exc:
            raise TranscriptionUnavailable(f"PocketSphinx could not load the model {model or 'en-us'}: {exc}") from exc
        _decoders[model] = dec
    return dec


def _word(text: str) -> str:
    base = text.split("(", 1)[0] if text.endswith(")") else text  # "the(2)": an alternative pronunciation
    return base.strip()


def transcribe(audio: AudioClip, language: str, settings: Mapping[str, Any]) -> Transcript | None:
    model = _model(language, settings)
    if model is None:
        return None
    pcm = upsample(audio.pcm_s16le, audio.sample_rate)
    words: list[TranscriptSegment] = []
    with _lock:  # one decoder per model, used by one thread at a time
        dec = _decoder(model)
        dec.start_utt()
        dec.process_raw(pcm, full_utt=True)
        dec.end_utt()
        for seg in dec.seg():
            word = _word(seg.word)
            if not word or word in _FILLERS or word.startswith(("[", "<", "+")):
                continue
            start = seg.start_frame / FRAME_RATE
            words.append(TranscriptSegment(start=start, end=max(start, seg.end_frame / FRAME_RATE), text=word))
    return Transcript(recording_id=audio.recording_id, language=language, engine=ENGINE,
                      text=" ".join(w.text for w in words), segments=words)


@hookimpl
def cf_transcribe(audio: AudioClip, language: str, settings: Mapping[str, Any]) -> Transcript | None:
    return transcribe(audio, language, settings)
