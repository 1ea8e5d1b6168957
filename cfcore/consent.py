"""Consent, enforced by the core: no customer audio before the customer was informed.

A capture source says which stretches it recorded in ``BOTH`` (``ModeSegment``), but a buggy or
hostile source could claim ``BOTH`` from the first second. The core therefore checks every
two-sided stretch against the consent events *it* recorded (the advisor's "record both sides",
applied through the capture runner, or given by an operator to ``cf archive ingest``): customer
audio is kept only from the first consent at or before a stretch's start. The part of a ``BOTH``
stretch before the first consent is turned into ``ADVISOR_ONLY`` (the customer channel is
silenced there) and reported, so that ingest audits the refusal.

The same question, "is a two-sided interval starting at ``t`` backed by a consent?", is asked by
live capture frame by frame (``backed_by_consent``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from hookspecs.types import Consent, ModeSegment, RecordingMode

#: Offsets are seconds computed from timestamps; allow for float noise only, not for clock skew.
EPSILON = 1e-6


def first_consent(consents: Iterable[Consent]) -> float | None:
    """The offset (seconds from the recording's start) of the earliest consent, or None."""
    offsets = [c.offset for c in consents]
    return min(offsets) if offsets else None


def backed_by_consent(start: float, consents: Iterable[Consent]) -> bool:
    """True when a two-sided interval that starts ``start`` seconds into the recording is backed
    by a consent given at or before that moment."""
    first = first_consent(consents)
    return first is not None and first <= start + EPSILON


@attrs.frozen(kw_only=True)
class Refusal:
    """A stretch a source claimed as ``BOTH`` that no consent backs: kept advisor-only."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def enforce_consent(plan: Sequence[ModeSegment], consents: Iterable[Consent]) -> tuple[list[ModeSegment], list[Refusal]]:
    """``plan`` with every ``BOTH`` segment (or its part) before the first consent turned into
    ``ADVISOR_ONLY``, and the refused stretches. Segments after the first consent are kept: a
    consent, once given, covers the rest of the call (pauses are separate ``PAUSED`` segments)."""
    first = first_consent(consents)
    out: list[ModeSegment] = []
    refused: list[Refusal] = []
    for seg in plan:
        if seg.mode is not RecordingMode.BOTH or (first is not None and first <= seg.start + EPSILON):
            out.append(seg)
            continue
        cut = seg.end if first is None else min(max(first, seg.start), seg.end)
        if cut > seg.start:
            out.append(ModeSegment(start=seg.start, end=cut, mode=RecordingMode.ADVISOR_ONLY))
            refused.append(Refusal(start=seg.start, end=cut))
        if cut < seg.end:
            out.append(ModeSegment(start=cut, end=seg.end, mode=RecordingMode.BOTH))
    return out, refused
