"""User names as people read them (shared by users and approvals, so neither imports the other)."""

from __future__ import annotations

import unicodedata


def fold_username(name: str) -> str:
    """A user name as people read it: Unicode compatibility form (NFKC: full-width letters become
    ASCII), case-folded, surrounding whitespace removed. Every place that stores or compares a
    user name goes through this (or ``normalise_username``, which also checks the result)."""
    return unicodedata.normalize("NFKC", name or "").casefold().strip()
