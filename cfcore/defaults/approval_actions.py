"""In-tree default plugin: the four-eyes actions of the core's own areas (``cf_approval_actions``).

The access module's link executors are ``fallback`` registrations: ``recording.export`` as a
download link yields to the archive's WAV export.
"""

from __future__ import annotations

from hookspecs import hookimpl
from hookspecs.types import ApprovalAction


@hookimpl
def cf_approval_actions() -> list[ApprovalAction]:
    from cfcore import archive, retention, transcripts
    from cfcore.access import auditlog, links, users
    from cfcore.crypto import rotation
    from cfcore.dsar import export

    return [
        ApprovalAction(name="roles.change", execute=users._execute_role_change, target_kind="user",
                       description="change a user's roles or advisor id"),
        ApprovalAction(name="keys.rotate", execute=rotation._exec_rotate, target_kind="keys", flags=("rewrap",),
                       description="create a new key-encryption key (params: rewrap=true re-wraps data keys)"),
        ApprovalAction(name="dsar.export", execute=export.export_copies, target_kind="subject",
                       description="copies of a person's recordings for the person (MiFID II Art. 16(7))"),
        ApprovalAction(name="recording.export", execute=archive._exec_export, target_kind="recording",
                       description="export a recording as a WAV file (params: out)"),
        *(ApprovalAction(name=name, execute=executor) for name, executor in retention.APPROVAL_ACTIONS.items()),
        ApprovalAction(name="recording.play", execute=links._exec_play, target_kind="recording", fallback=True,
                       flags=("bind_ip",), description="a streaming link to another advisor's call"),
        ApprovalAction(name="recording.export", execute=links._exec_export, target_kind="recording", fallback=True,
                       flags=("bind_ip",), description="a download link for an approved export"),
        ApprovalAction(name="audit.export", execute=auditlog._exec_export, target_kind="audit", fallback=True,
                       description="export audit entries (params since_seq, until_seq)"),
        ApprovalAction(name="transcript.read", execute=transcripts._exec_read, target_kind="recording",
                       description="a link to the transcript of another advisor's call"),
    ]
