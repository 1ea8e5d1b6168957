"""Transcription: speech to text for the CRM."""

from __future__ import annotations

from ._markers import hookspec
from .types import AudioClip, Transcript


@hookspec(firstresult=True)
def cf_transcribe(audio: AudioClip, language: str) -> Transcript | None:
    """Transcribe one channel of a recording held in memory.

    firstresult: the first engine that returns a ``Transcript`` wins; ``None`` passes on.

    Provisional: the core does not call this hook yet (the CRM/transcription issue makes it real).

    Added in 1.0. Example::

        @hookimpl
        def cf_transcribe(audio, language):
            if language != "en":
                return None
            return Transcript(recording_id=audio.recording_id, language="en", text=..., engine="x")
    """
