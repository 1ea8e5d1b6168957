"""The streaming half of ingest: one channel of a WAV file, block by block, to encrypted pieces.

Per channel: read a block of frames → take the channel out (numpy, strided, in C) → decode
G.711 (a table look-up) → silence what the mode segments forbid → encode (``cfcore.codecs``) →
SHA-256 of the payload → encrypt (``envelope.StreamSealer``) → SHA-256 of the ciphertext → the
store. Memory stays a few blocks whatever the length of the call; each byte is hashed once per
hash, as it passes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence

import attrs
import numpy as np

from hookspecs.types import ModeSegment, RecordingMode

from . import codecs
from .crypto import envelope
from .errors import InputError
from .wav import FORMAT_ALAW, FORMAT_MULAW, WavInfo, _alaw_table, _ulaw_table

#: Frames per block: 512 KiB of PCM16 per channel (32 s at 8 kHz).
BLOCK_FRAMES = 1 << 18
_G711 = {FORMAT_MULAW: np.array(_ulaw_table(), dtype="<i2"), FORMAT_ALAW: np.array(_alaw_table(), dtype="<i2")}


@attrs.frozen(kw_only=True)
class ChannelSource:
    """Channel ``index`` of a WAV file, padded with silence to ``frames``."""

    info: WavInfo
    index: int
    frames: int

    def blocks(self, block_frames: int | None = None) -> Iterator[np.ndarray]:
        """Contiguous, writable int16 blocks that add up to ``frames``."""
        block_frames = block_frames or BLOCK_FRAMES
        info = self.info
        fb = info.width * info.channels
        have = min(info.frames, self.frames)
        buf = bytearray(block_frames * fb)
        with open(info.path, "rb") as f:
            f.seek(info.data_offset)
            done = 0
            while done < have:
                n = min(block_frames, have - done)
                view = memoryview(buf)[:n * fb]
                got = f.readinto(view)
                if got != n * fb:
                    raise InputError(f"{info.path} changed while it was read (shorter than its header said)")
                if info.width == 2:
                    samples = np.frombuffer(buf, dtype="<i2", count=n * info.channels)
                    yield np.ascontiguousarray(samples[self.index::info.channels])
                else:
                    codes = np.frombuffer(buf, dtype=np.uint8, count=n * info.channels)
                    yield _G711[info.code][codes[self.index::info.channels]]
                done += n
        while done < self.frames:  # the shorter file of a call: silence to the end
            n = min(block_frames, self.frames - done)
            yield np.zeros(n, dtype="<i2")
            done += n


def silenced_ranges(plan: Sequence[ModeSegment], rate: int, frames: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """``(advisor, customer)`` frame ranges to silence: the advisor's inside ``PAUSED`` segments,
    the customer's everywhere outside ``BOTH`` segments (the same rounding as ``apply_modes``:
    in doubt a sample is silenced)."""
    advisor: list[tuple[int, int]] = []
    keep: list[tuple[int, int]] = []
    for seg in plan:
        if seg.mode is RecordingMode.PAUSED:
            a = max(0, math.floor(seg.start * rate + 1e-6))
            b = min(frames, math.ceil(seg.end * rate - 1e-6))
            if b > a:
                advisor.append((a, b))
        elif seg.mode is RecordingMode.BOTH:
            a = max(0, math.ceil(seg.start * rate - 1e-6))
            b = min(frames, math.floor(seg.end * rate + 1e-6))
            if b > a:
                keep.append((a, b))
    customer: list[tuple[int, int]] = []
    pos = 0
    for a, b in sorted(keep):
        if a > pos:
            customer.append((pos, a))
        pos = max(pos, b)
    if pos < frames:
        customer.append((pos, frames))
    return advisor, customer


@attrs.define
class SealedChannel:
    """What a channel's stream produced: sizes and hashes of the payload and of the object."""

    size: int = 0
    sha256: str = ""
    plain_size: int = 0
    plain_sha256: str = ""


def seal_channel(source: ChannelSource, silence: Sequence[tuple[int, int]], *, codec: str, sample_rate: int,
                 data_key: bytes, recording_id: str, channel: str, segment_size: int, nonce_prefix: bytes,
                 result: SealedChannel) -> Iterator[bytes | bytearray]:
    """The encrypted object of one channel, piece by piece; ``result`` is filled in at the end.

    Deterministic for a given ``nonce_prefix``: a second store gets the same bytes from a second
    run (the caller compares the results)."""
    enc = codecs.encoder(codec, sample_rate, source.frames)
    sealer = envelope.StreamSealer(data_key, recording_id, channel, segment_size=segment_size,
                                   nonce_prefix=nonce_prefix)
    plain_h, ct_h = hashlib.sha256(), hashlib.sha256()
    plain_size = size = 0
    pos = 0
    pending = sorted(silence)
    for block in source.blocks():
        end = pos + len(block)
        for a, b in pending:
            if a >= end:
                break
            if b > pos:
                block[max(a, pos) - pos:min(b, end) - pos] = 0
        pos = end
        payload = enc.feed(block)
        if len(payload):
            plain_h.update(payload)
            plain_size += len(payload)
            for piece in sealer.feed(payload):
                ct_h.update(piece)
                size += len(piece)
                yield piece
    tail = enc.finish()
    plain_h.update(tail)
    plain_size += len(tail)
    for piece in sealer.feed(tail) + sealer.finish():
        ct_h.update(piece)
        size += len(piece)
        yield piece
    result.size, result.sha256 = size, ct_h.hexdigest()
    result.plain_size, result.plain_sha256 = plain_size, plain_h.hexdigest()
