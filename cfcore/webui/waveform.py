"""Waveform peaks of a recording, per channel, computed from the decrypted audio in memory.

Only the peaks leave this module (a few hundred numbers per channel); neither the audio nor the
peaks are written anywhere or cached. Reading goes through a streaming link of the caller (the
same access decision and audit trail as playing it): ``recording.play`` with ``waveform: true``.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any

from hookspecs.types import RequestContext

from ..access import links
from ..errors import AccessDenied

if TYPE_CHECKING:
    from ..app import App

BUCKETS = 480
CHUNK_FRAMES = 1 << 16


def _bucket_peaks(view: Any, index: int, buckets: int) -> list[float]:
    frames = view.frames
    out = [0.0] * buckets
    if frames == 0:
        return out
    pos = 0
    while pos < frames:
        end = min(frames, pos + CHUNK_FRAMES)
        samples = array("h")
        samples.frombytes(view.channel_frames(index, pos, end))
        # one bucket index per sample would be slow: walk the bucket boundaries inside this chunk
        i = pos
        while i < end:
            b = i * buckets // frames
            b_end = min(end, -(-(b + 1) * frames // buckets))
            part = samples[i - pos:b_end - pos]
            if part:
                peak = max(max(part), -min(part)) / 32768.0
                if peak > out[b]:
                    out[b] = peak
            i = max(b_end, i + 1)
        pos = end
    return [round(p, 3) for p in out]


def peaks(app: App, ctx: RequestContext, recording_id: str, token: str, *, buckets: int = BUCKETS) -> dict[str, Any]:
    """``{"channels": [{"name", "peaks"}], "duration"}`` for the holder of a valid link."""
    from ..archive import WavView

    claims, reason = links.check(app, token, recording_id=recording_id, user_id=ctx.actor.user_id,
                                 client_ip=ctx.ip, require_user=True)
    if claims is None:
        app.audit.record(ctx, "recording.play", "recording", recording_id, "denied",
                         {"reason": reason, "waveform": True})
        raise AccessDenied(links.LINK_REFUSED)
    view = WavView(app, recording_id)
    result = {"duration": view.frames / view.sample_rate if view.sample_rate else 0.0,
              "channels": [{"name": name, "peaks": _bucket_peaks(view, i, buckets)}
                           for i, name in enumerate(view.channel_names)]}
    app.audit.record(ctx, "recording.play", "recording", recording_id, "ok",
                     {"waveform": True, "link": claims.nonce, "buckets": buckets, "purpose": claims.purpose})
    return result
