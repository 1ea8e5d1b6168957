"""CallFort example plugin: a simulated PBX with one call (see README.md).

Written from ``hookspecs`` and ``docs/plugins.md`` only: it imports nothing from ``cfcore``.
"""

from __future__ import annotations

import asyncio
import wave
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from hookspecs import hookimpl
from hookspecs.types import (
    CallEvent,
    CallEventKind,
    CaptureSink,
    CaptureSource,
    CaptureSourceType,
    ChannelFile,
    ChannelRole,
    Direction,
    FinishedCall,
    ModeSegment,
    PluginContext,
    RecordingInfo,
    RecordingMode,
)

__all__ = ["ExampleOptions", "ExamplePbx", "cf_capture_sources", "cf_recording_archived"]

RATE = 8000
ADVISOR_LEVEL, CUSTOMER_LEVEL = 1000, 2000


@attrs.frozen(kw_only=True)
class ExampleOptions:
    """``[plugins.example_pbx]``. Without ``advisor`` the plugin is installed but idle."""

    advisor: str | None = None
    customer_number: str = "+4930123456"
    #: seconds the call goes on after the core switched it to BOTH
    call_seconds: float = attrs.field(default=2.0, validator=attrs.validators.gt(0))
    #: behave like a buggy or hostile adapter: report the whole call as BOTH
    claim_both_from_start: bool = False


class ExamplePbx:
    """One call: it starts and is answered; when the core asks for BOTH (the advisor clicked
    "record both sides"), the call goes on for ``call_seconds`` and ends; the files go to the core."""

    name = "example-pbx"
    can_mute = False  # the customer's voice is in the file from the first second

    def __init__(self, options: ExampleOptions, ctx: PluginContext) -> None:
        self.options = options
        self.ctx = ctx
        self.call_id = "example-call-1"
        self.started_at: datetime | None = None
        self.both_at: float | None = None
        self.modes: list[RecordingMode] = []
        self.archived: list[str] = []
        self._both = asyncio.Event()
        self._stopped = asyncio.Event()

    def status(self) -> dict[str, Any]:
        """What ``cf capture status`` shows (docs/plugins.md: the runner's status() duty)."""
        active = [] if self.archived or self.started_at is None else [self.call_id]
        return {"connected": True, "last_error": None, "handed_over": len(self.archived), "active_legs": active}

    async def set_mode(self, call_id: str, mode: RecordingMode) -> bool:
        if call_id != self.call_id or self.archived:
            return False
        self.modes.append(mode)
        if mode is RecordingMode.BOTH and self.both_at is None:
            assert self.started_at is not None
            self.both_at = (self.ctx.clock() - self.started_at).total_seconds()
            self._both.set()
        return True

    async def run(self, sink: CaptureSink) -> None:
        self.started_at = self.ctx.clock()
        who: dict[str, Any] = {"call_id": self.call_id, "source": self.name, "advisor_id": self.options.advisor}
        await sink.call_event(CallEvent(kind=CallEventKind.STARTED, at=self.started_at, direction=Direction.INBOUND,
                                        customer_number=self.options.customer_number, **who))
        await sink.call_event(CallEvent(kind=CallEventKind.ANSWERED, at=self.started_at, **who))
        stop = asyncio.create_task(self._stopped.wait())
        both = asyncio.create_task(self._both.wait())
        await asyncio.wait({stop, both}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        both.cancel()
        if self.both_at is None:  # stopped before consent: nothing to hand over in this example
            return
        duration = self.both_at + self.options.call_seconds
        ended = self.ctx.clock()
        await sink.call_event(CallEvent(kind=CallEventKind.ENDED, at=ended, **who))
        files = self._write_files(duration)
        if self.options.claim_both_from_start:
            segments = [ModeSegment(start=0, end=duration, mode=RecordingMode.BOTH)]
        else:
            segments = [ModeSegment(start=0, end=self.both_at, mode=RecordingMode.ADVISOR_ONLY),
                        ModeSegment(start=self.both_at, end=duration, mode=RecordingMode.BOTH)]
        recording_id = await sink.call_finished(FinishedCall(
            call_id=self.call_id, source=self.name, advisor_id=str(self.options.advisor),
            started_at=self.started_at, direction=Direction.INBOUND, files=files, segments=segments,
            customer_numbers=[self.options.customer_number], pbx_call_id=self.call_id))
        for f in files:  # the archive confirmed: the PBX's copies may go
            f.path.unlink()
        self.archived.append(recording_id)
        await self._stopped.wait()

    async def stop(self) -> None:
        self._stopped.set()

    def _write_files(self, duration: float) -> list[ChannelFile]:
        folder = Path(self.ctx.data_dir)
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        frames = round(duration * RATE)
        for role, level in ((ChannelRole.ADVISOR, ADVISOR_LEVEL), (ChannelRole.CUSTOMER, CUSTOMER_LEVEL)):
            path = folder / f"{self.call_id}-{role.value}.wav"
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes(level.to_bytes(2, "little", signed=True) * frames)
            files.append(ChannelFile(role=role, path=path))
        return files


def create_sources(options: ExampleOptions, ctx: PluginContext) -> list[CaptureSource]:
    return [ExamplePbx(options, ctx)] if options.advisor else []


@hookimpl
def cf_capture_sources() -> list[CaptureSourceType]:
    return [CaptureSourceType(name="example-pbx", create=create_sources, options=ExampleOptions,
                              description="a simulated PBX with one call (example plugin)")]


@hookimpl
def cf_recording_archived(recording: RecordingInfo) -> None:
    """Stands for the PBX's CDR system, which is down: the core must carry on without it."""
    raise ConnectionError(f"CDR system of the example PBX is not reachable (recording {recording.id})")
