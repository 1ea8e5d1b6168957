"""Imports every module that defines catalog tables, so that metadata and migrations see them."""

from . import (
    models,  # noqa: F401
    models_access,  # noqa: F401
    models_capture,  # noqa: F401
    models_fis,  # noqa: F401
    models_integration,  # noqa: F401
    models_leases,  # noqa: F401
    models_retention,  # noqa: F401
    models_sync,  # noqa: F401
)
