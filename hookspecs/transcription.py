"""Transcription: speech to text for the CRM."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._markers import hookspec
from .types import AudioClip, Transcript


@hookspec(firstresult=True)
def cf_transcribe(audio: AudioClip, language: str, settings: Mapping[str, Any]) -> Transcript | None:
    """Transcribe one channel of a recording held in memory (a stretch of one voice).

    :param audio: decrypted PCM16 of one voice; the customer's only from inside two-sided segments.
    :param language: the language to transcribe in (``en``, ``de``, …), from the advisor's or the
        deployment's setting; never detect it from the audio.
    :param settings: the deployment's ``[transcription]`` section (read-only); an engine keeps its
        own options (e.g. an operator-supplied model path) in ``[transcription.<engine>]``.
        Implementations may omit this parameter.
    :return: a ``Transcript`` whose ``segments`` are words or phrases timed from the start of the
        clip, or ``None`` when this engine does not serve ``language`` (the next one is asked).
        Raise ``TranscriptionUnavailable`` when the language is configured but its model is
        missing: the core records that refusal. Never download a model at run time.

    firstresult: the first engine that returns a ``Transcript`` wins; ``None`` passes on.

    Added in 1.0; ``settings`` and ``Transcript.segments`` in 1.1. Example::

        @hookimpl
        def cf_transcribe(audio, language):
            if language != "en":
                return None
            return Transcript(recording_id=audio.recording_id, language="en", text=..., engine="x",
                              segments=[TranscriptSegment(start=0.4, end=0.9, text="hello")])
    """
