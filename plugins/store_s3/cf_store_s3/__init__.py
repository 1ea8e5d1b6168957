"""CallFort plugin store_s3: media store on S3-compatible object storage with Object Lock.

Registers the store type ``s3``. A deployment names it in a ``[stores.<name>]`` section::

    [stores.cloud]
    type = "s3"
    bucket = "callfort-archive"
    endpoint_url = "https://s3.eu-central-1.amazonaws.com"   # or MinIO / Ceph RGW
    region = "eu-central-1"
    access_key = { env = "CF_S3_ACCESS_KEY" }
    secret_key = { file = "/etc/callfort/s3-secret" }
    lock_mode = "compliance"                                  # or "governance"

See docs/storage.md for every option.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hookspecs import hookimpl
from hookspecs.types import PluginContext, StoreType

from .options import S3Options

if TYPE_CHECKING:
    from .store import S3Store

__all__ = ["S3Options", "S3Store", "create_store"]


def __getattr__(name: str) -> Any:
    # boto3 costs ~0.1 s to import: load it when a deployment actually uses an S3 store, not on
    # every `cf` start that merely discovers this plugin.
    if name == "S3Store":
        from .store import S3Store

        return S3Store
    raise AttributeError(name)


def create_store(options: S3Options, ctx: PluginContext) -> S3Store:
    """Build the store of a ``[stores.<name>]`` section and check its bucket (``StoreMisconfigured``
    for a bucket without versioning or Object Lock)."""
    from .store import S3Store

    return S3Store(options.name or ctx.name, options, clock=ctx.clock).start()


@hookimpl
def cf_media_stores() -> list[StoreType]:
    return [StoreType(name="s3", create=create_store, options=S3Options,
                      description="S3-compatible object storage (AWS, MinIO, Ceph) with Object Lock")]
