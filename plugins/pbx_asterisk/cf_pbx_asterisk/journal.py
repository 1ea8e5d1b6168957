"""The plugin's small journal in its data directory: what is being recorded, what waits for
pickup, and which legs were handed over to the archive (with the recording id the core returned).

Layout below ``data_dir``::

    legs/<call_id>.json      one leg: state recording | finished | archived, files, segments
    handed_over.jsonl        one line per leg the archive confirmed: call_id, recording_id
    spool/<call_id>/         files fetched over SFTP, until the archive confirmed them

Every write is atomic (temporary file, fsync, rename, fsync of the directory) and private (0600):
a leg file holds the customer's number until the leg is archived.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
from pathlib import Path
from typing import Any

_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,120}$")


def safe_id(call_id: str) -> str:
    if not _SAFE.match(call_id) or call_id.startswith("."):
        raise ValueError(f"call id {call_id!r} is not usable as a file name")
    return call_id


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Journal:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.legs_dir = self.root / "legs"
        self.spool_dir = self.root / "spool"
        self.handed_path = self.root / "handed_over.jsonl"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.legs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._handed: dict[str, str] | None = None
        self._stale = 0
        # Hand-over lines are appended from worker threads; a compaction must not lose one.
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ legs
    def save_leg(self, record: dict[str, Any]) -> None:
        path = self.legs_dir / f"{safe_id(record['call_id'])}.json"
        write_atomic(path, json.dumps(record, sort_keys=True, indent=1).encode())

    def load_leg(self, call_id: str) -> dict[str, Any] | None:
        path = self.legs_dir / f"{safe_id(call_id)}.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None

    def legs(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.legs_dir.glob("*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                # A torn write cannot happen (atomic rename); a hand-edited file is reported.
                bad = path.with_suffix(".bad")
                os.replace(path, bad)
        return out

    def remove_leg(self, call_id: str) -> None:
        """The leg is done: its file, its spool and its hand-over line go (in that order, so that
        a crash in between still finds the recording id for a leg that is still journalled).
        No fsync: a removal lost in a crash only repeats the (idempotent) clean-up."""
        try:
            (self.legs_dir / f"{safe_id(call_id)}.json").unlink()
        except FileNotFoundError:
            pass
        shutil.rmtree(self.spool_dir / safe_id(call_id), ignore_errors=True)
        self._forget_handed_over(call_id)

    def spool_for(self, call_id: str) -> Path:
        d = self.spool_dir / safe_id(call_id)
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return d

    # ------------------------------------------------------------------ handed over
    def _load_handed(self) -> dict[str, str]:
        if self._handed is None:
            self._handed = {}
            if self.handed_path.exists():
                for line in self.handed_path.read_text().splitlines():
                    try:
                        row = json.loads(line)
                        self._handed[row["call_id"]] = row["recording_id"]
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn last line after a crash: that leg is handed over again
            # Lines of legs no longer journalled are done with (kept until the next compaction).
            done = [c for c in self._handed if not (self.legs_dir / f"{c}.json").exists()]
            for c in done:
                del self._handed[c]
            self._stale = len(done)
        return self._handed

    def handed_over(self, call_id: str) -> str | None:
        """The recording id the archive returned for this leg, or None."""
        with self._lock:
            return self._load_handed().get(call_id)

    def _forget_handed_over(self, call_id: str) -> None:
        with self._lock:
            handed = self._load_handed()
            if handed.pop(call_id, None) is None:
                return
            self._stale += 1
            if self._stale < 100:
                return
            # Compact now and then: only legs still journalled need their line.
            lines = "".join(json.dumps({"call_id": c, "recording_id": r}, sort_keys=True) + "\n"
                            for c, r in handed.items())
            write_atomic(self.handed_path, lines.encode())
            self._stale = 0

    def mark_handed_over(self, call_id: str, recording_id: str) -> None:
        line = json.dumps({"call_id": call_id, "recording_id": recording_id}, sort_keys=True) + "\n"
        with self._lock:
            handed = self._load_handed()
            fd = os.open(self.handed_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = "\n" + line  # close a line torn by a crash, so this one stays whole
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            handed[call_id] = recording_id
