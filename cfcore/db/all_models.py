"""Imports every module that defines catalog tables, so that metadata and migrations see them."""

from . import models  # noqa: F401
from . import models_access  # noqa: F401
from . import models_fis  # noqa: F401
