"""Catalog tables of the fraud information system (issue 6)."""
