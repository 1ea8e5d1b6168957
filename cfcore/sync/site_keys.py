"""Site side of the key hand-over: every data key sealed to the archive at ingest.

On a site, ingest calls ``site_keys_for`` while the data key is still in memory: the key is sealed
to the archive's X25519 public key (``cfcore.crypto.archive_seal``) and stored in the same
transaction as the recording. With ``[sync] local_key = "none"`` the site keeps no key of its own
at all (advisor-only sites that never play back locally); otherwise its own key-ring copy lives
until the archive's receipt arrives (``cfcore.sync.handover``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from ..crypto import archive_seal
from ..db.models_sync import ArchiveWrap
from .settings import role, site_local_key

if TYPE_CHECKING:
    from ..app import App


@attrs.frozen(kw_only=True)
class SiteKeys:
    keep_local: bool
    archive_key_id: str
    sealed: bytes

    def row(self, recording_id: str, now: datetime) -> ArchiveWrap:
        return ArchiveWrap(recording_id=recording_id, archive_key_id=self.archive_key_id, sealed=self.sealed,
                           created_at=now)


def is_site(app: App) -> bool:
    return role(app.config) == "site"


def site_keys_for(app: App, recording_id: str, data_key: bytes) -> SiteKeys | None:
    """None on a standalone or archive deployment; on a site the sealed copy for the archive."""
    if not is_site(app):
        return None
    pub = app.config.get("sync.archive_public_key", str)
    return SiteKeys(keep_local=site_local_key(app.config) != "none",
                    archive_key_id=archive_seal.key_id(bytes.fromhex(pub)) if len(pub) == 64 else "?",
                    sealed=archive_seal.seal(pub, recording_id, data_key))
