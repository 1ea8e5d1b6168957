"""CallFort's engine: catalog, crypto, capture, access, audit, retention, FIS, DSAR, web, CLI."""

__version__ = "0.1.0"
