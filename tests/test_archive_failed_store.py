"""A store failing in the middle of an ingest leaves nothing behind; the sweep survives locked orphans.

The failing store is a plugin implementing the MediaStore protocol on a directory, which refuses
what the test tells it to (the S3 fault tests cover a real server failing).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from archive_helpers import make_wav

from cfcore.config import load_config
from cfcore.db.models import Recording
from cfcore.ingest import ingest_wav, sweep_orphans
from cfcore.plugins import get_plugin_manager
from hookspecs import hookimpl
from hookspecs.types import ObjectInfo, StoreType, StoreUnavailable


class DirStore:
    """A tiny directory store that can be told to fail puts of one channel or refuse deletes."""

    fail_channel: str | None = None
    locked: set[str] = set()

    def __init__(self, root: Path) -> None:
        self.name = "flaky"
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _p(self, key: str) -> Path:
        return self.root / key.replace("/", "__")

    def put(self, key, chunks, *, retain_until=None):
        if self.fail_channel and f".{self.fail_channel}." in key:
            raise StoreUnavailable(f"store flaky refused {key} (test)")
        data = chunks if isinstance(chunks, bytes) else b"".join(chunks)
        if self._p(key).exists():
            raise FileExistsError(key)
        self._p(key).write_bytes(data)
        return len(data)

    def get(self, key, start=0, end=None):
        if not self._p(key).exists():
            raise KeyError(key)
        return self._p(key).read_bytes()[start:end]

    def delete(self, key):
        if key in DirStore.locked:
            raise PermissionError(f"{key} is locked (test)")
        if not self._p(key).exists():
            raise KeyError(key)
        self._p(key).unlink()

    def exists(self, key):
        return self._p(key).exists()

    def stat(self, key):
        if not self._p(key).exists():
            raise KeyError(key)
        return ObjectInfo(key=key, size=self._p(key).stat().st_size)

    def lock_until(self, key, until=None, *, legal_hold=None):
        return None

    def keys(self, prefix=""):
        for p in sorted(self.root.iterdir()):
            key = p.name.replace("__", "/")
            if key.startswith(prefix):
                yield key


class FlakyPlugin:
    @hookimpl
    def cf_media_stores(self):
        return [StoreType(name="flaky", create=lambda opts, ctx: DirStore(Path(opts["root"])))]


@pytest.fixture
def flaky_app(deployment, make_app, tmp_path):
    root = tmp_path / "flaky"
    text = deployment.read_text().replace('stores = ["primary"]', 'stores = ["flaky"]')
    deployment.write_text(text + f'\n[stores.flaky]\ntype = "flaky"\nroot = "{root}"\n')
    DirStore.fail_channel, DirStore.locked = None, set()
    pm = get_plugin_manager(load_config(deployment), extra=[("flaky", FlakyPlugin())])
    return make_app(deployment, pm=pm), root


@pytest.mark.parametrize("parallel", [False, True], ids=["one-by-one", "channels-in-parallel"])
def test_second_channel_failing_removes_the_first_and_shows_nothing(flaky_app, tmp_path, monkeypatch, parallel):
    import cfcore.ingest

    if parallel:  # long calls store their channels at the same time; a failure must clean up alike
        monkeypatch.setattr(cfcore.ingest, "PARALLEL_BYTES", 0)
    app, root = flaky_app
    wav, _ = make_wav(tmp_path / "call.wav", seconds=1.0, channels=2)
    DirStore.fail_channel = "customer"
    with pytest.raises(Exception, match="refused"):
        ingest_wav(app, wav, advisor_id="A1", customer_ids=["C1"], consent_at=0.2)
    assert list(root.iterdir()) == [], "the advisor object of the failed ingest must be removed"
    with app.catalog.session() as s:
        assert s.query(Recording).count() == 0
    DirStore.fail_channel = None
    rec = ingest_wav(app, wav, advisor_id="A1", customer_ids=["C1"], consent_at=0.2)
    assert sorted(p.name.split(".")[1] for p in root.iterdir()) == ["advisor", "customer"]
    assert rec


def test_sweep_skips_locked_orphans_and_removes_the_rest(flaky_app, tmp_path, frozen_clock):
    app, root = flaky_app
    store = app.stores.stores["flaky"]
    frozen_clock.advance(timedelta(days=-1))
    from cfcore.archive import new_recording_id, object_key

    orphans = [object_key(new_recording_id(frozen_clock.now()), "advisor", frozen_clock.now()) for _ in range(2)]
    for key in orphans:
        store.put(key, b"ciphertext without a catalog row")
    frozen_clock.advance(timedelta(days=1))
    DirStore.locked = {orphans[0]}
    deleted = sweep_orphans(app)
    assert deleted == [f"flaky:{orphans[1]}"]
    assert store.exists(orphans[0]) and not store.exists(orphans[1])
    (entry,) = [e for e in app.audit.entries(action="store.sweep")]
    assert entry.outcome == "partial" and entry.detail["skipped"] == [f"flaky:{orphans[0]}"]
