"""The life cycles of the catalog's rows, as enums: one place names each state.

They are ``StrEnum``s, so a value equals the string stored in the catalog (``CallState.HELD ==
"held"``) and old rows, audit details and API answers keep their spelling.
"""

from __future__ import annotations

import enum

from hookspecs.types import ConsentMethod


class RecordingState(enum.StrEnum):
    ARCHIVED = "archived"
    #: finalised after a crash mid-call: what was captured up to the crash
    INCOMPLETE = "incomplete"
    PURGING = "purging"
    PURGED = "purged"


#: Recordings whose media exist (not being or already deleted).
LIVE_RECORDING_STATES = (RecordingState.ARCHIVED, RecordingState.INCOMPLETE)


class CallState(enum.StrEnum):
    """A live call leg (``capture_calls``)."""

    RINGING = "ringing"
    RECORDING = "recording"
    HELD = "held"
    ENDED = "ended"
    FAILED = "failed"
    ARCHIVED = "archived"


ACTIVE_CALL_STATES = (CallState.RINGING, CallState.RECORDING, CallState.HELD)


class RequestStatus(enum.StrEnum):
    """An advisor's record-both / pause / resume request (``capture_mode_requests``)."""

    PENDING = "pending"
    APPLYING = "applying"
    APPLIED = "applied"
    FAILED = "failed"
    UNAVAILABLE = "unavailable"
    EXPIRED = "expired"


class ApprovalState(enum.StrEnum):
    """A four-eyes request."""

    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    EXECUTED = "executed"


OPEN_APPROVAL_STATES = (ApprovalState.REQUESTED, ApprovalState.APPROVED)

#: The catalog's spelling of every ``hookspecs.types.ConsentMethod`` (consent rows keep the value).
CONSENT_METHODS = tuple(m.value for m in ConsentMethod)
