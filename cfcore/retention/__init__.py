"""Retention: how long each recording is kept, legal holds, and the purge (crypto-shredding).

How rules combine (see ``docs/retention.md``): every ``cf_retention_rules`` implementation returns
the duties it sees; the recording is kept until the latest ``keep_until``. A per-recording
extension (four-eyes) moves that date later; a shortening (four-eyes) moves it earlier but never
below a ``statutory`` rule. A legal hold or a ``cf_before_purge`` veto stops the purge whatever the
date says.

The purge of one recording is a small state machine, resumable after a crash at any point:

1. *mark* (one transaction): re-check hold, date and vetoes under a row lock; ``state="purging"``
   and a ``purge_tasks`` row; audit ``recording.purge`` outcome ``started``.
2. *delete media* from every store (absent objects are fine; a store that refuses — an object
   lock — leaves the recording ``purging``: it is retried on the next run).
3. *shred* (one transaction): destroy the data key, write the tombstone, delete the recording's
   catalog rows, ``state="purged"``; audit ``recording.purge`` (or ``recording.erase``) with the
   new ``row_digest``.
4. *disposal log* (one transaction per run): one ``retention.disposal`` audit entry naming every
   recording shredded since the last one (so one lost to a crash is reported by the next run).

An Art. 17 erasure (four-eyes ``recording.erase``) runs the same machine with reason
``art17-erasure``, but destroys the data key already in step 1: the audio is unreadable at once
even where a store keeps the ciphertext under an Object Lock until its retention date.
The modules: ``settings`` (the ``[retention]`` section, classes), ``policy`` (rules, overrides,
the decision), ``changes`` (extend/shorten), ``holds`` (legal holds), ``purge`` (the machine above
and the disposal log), ``erasure`` (Art. 17), ``status`` (``cf retention show``), ``jobs`` (the
scheduled purge), ``common`` (what they share). Import from ``cfcore.retention``.

Crash points for tests (``CRASH_POINTS``; see docs/retention.md): only the test-only plugin acts
on them (``cf_test_crash_point``; the test kit's ``CF_TEST_CRASH_AT``).
"""

from __future__ import annotations

from . import changes, erasure, holds
from .changes import change_retention, check_change, precheck, request_change
from .common import CRASH_POINTS, LIVE_STATES, REASON_ERASURE, REASON_EXPIRED, parse_date, recording_target
from .erasure import check_erasable, erase_recording, request_erasure
from .holds import list_holds, release_hold, set_hold
from .jobs import JOB_POLL_SECONDS, purge_job
from .policy import RetentionDecision, apply_retention, compute_retention, decide_retention, info_of, rules_for
from .purge import PurgeReport, count_due, run_purge, store_locks
from .settings import choose_class, retention_settings
from .status import retention_status

#: The four-eyes actions of retention (``cf_approval_actions``, cfcore/defaults/approval_actions.py).
APPROVAL_ACTIONS = {
    "retention.extend": changes.exec_extend,
    "retention.shorten": changes.exec_shorten,
    "hold.release": holds.exec_release,
    "recording.erase": erasure.exec_erase,
}

__all__ = [
    "APPROVAL_ACTIONS", "CRASH_POINTS", "JOB_POLL_SECONDS", "LIVE_STATES", "REASON_ERASURE", "REASON_EXPIRED",
    "PurgeReport", "RetentionDecision", "apply_retention", "change_retention", "check_change", "check_erasable",
    "choose_class", "compute_retention", "count_due", "decide_retention", "erase_recording", "info_of",
    "list_holds", "parse_date", "precheck", "purge_job", "recording_target", "release_hold", "request_change",
    "request_erasure", "retention_settings", "retention_status", "rules_for", "run_purge", "set_hold",
    "store_locks",
]
