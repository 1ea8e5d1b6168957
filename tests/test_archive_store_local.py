"""The store_local plugin: atomic, never overwrites, no key leaves the root, ranged reads."""

import ast
import os
from pathlib import Path

import cf_store_local
import pytest
from cf_store_local import LocalStore, UnsafeKey

from cfcore.errors import ConfigError
from cfcore.storage import StoreSet, open_stores
from hookspecs.types import MediaStore


@pytest.fixture
def store(tmp_path):
    return LocalStore("primary", tmp_path / "root")


ESCAPES = [
    "../outside", "a/../../outside", "/etc/passwd", "a\\..\\b", "a/\x00b", "", "a//b", "./a", "a/./b",
    ".hidden", "a/.tmp", "-rf", "a/", "..", "~/x", "a/b c", "x" * 2000,
]


@pytest.mark.parametrize("key", ESCAPES)
def test_keys_that_try_to_leave_the_root_are_refused(store, tmp_path, key):
    for op in (lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.delete(key),
               lambda: store.exists(key), lambda: store.stat(key)):
        with pytest.raises(UnsafeKey):
            op()
    assert not (tmp_path / "outside").exists()


def test_symlinks_out_of_the_root_are_refused(store, tmp_path):
    secret_dir = tmp_path / "elsewhere"
    secret_dir.mkdir()
    (secret_dir / "passwd").write_bytes(b"secret")
    os.symlink(secret_dir, store.root / "link")
    with pytest.raises(UnsafeKey, match="outside the store root"):
        store.put("link/x.cfe", b"data")
    with pytest.raises(UnsafeKey):
        store.get("link/passwd")
    os.symlink(secret_dir / "passwd", store.root / "file.cfe")
    with pytest.raises(UnsafeKey):
        store.get("file.cfe")
    with pytest.raises(UnsafeKey):
        store.delete("file.cfe")
    assert not (secret_dir / "x.cfe").exists() and (secret_dir / "passwd").read_bytes() == b"secret"


def test_put_get_ranges_delete_and_keys(store):
    data = bytes(range(256)) * 10
    assert store.put("2026/11/a.advisor.cfe", data) == len(data)
    assert store.put("2026/11/b.advisor.cfe", iter([b"ab", b"cd"])) == 4
    assert store.get("2026/11/a.advisor.cfe") == data
    assert store.get("2026/11/a.advisor.cfe", 10, 20) == data[10:20]
    assert store.get("2026/11/a.advisor.cfe", 2550) == data[2550:]
    assert store.get("2026/11/a.advisor.cfe", 2550, 99999) == data[2550:]
    assert store.get("2026/11/a.advisor.cfe", 5000) == b""
    assert store.stat("2026/11/a.advisor.cfe").size == len(data)
    assert list(store.keys()) == ["2026/11/a.advisor.cfe", "2026/11/b.advisor.cfe"]
    assert list(store.keys("2026/11/b")) == ["2026/11/b.advisor.cfe"]
    store.lock_until("2026/11/a.advisor.cfe", None, legal_hold=True)  # no-op, must not fail
    store.delete("2026/11/a.advisor.cfe")
    assert not store.exists("2026/11/a.advisor.cfe")
    with pytest.raises(KeyError):
        store.get("2026/11/a.advisor.cfe")
    with pytest.raises(KeyError):
        store.delete("2026/11/a.advisor.cfe")
    with pytest.raises(KeyError):
        store.stat("nope.cfe")
    assert isinstance(store, MediaStore)


def test_never_overwrites_and_leaves_no_temporary_files(store):
    store.put("k.cfe", b"first")
    with pytest.raises(FileExistsError):
        store.put("k.cfe", b"second")
    assert store.get("k.cfe") == b"first"

    def failing():
        yield b"partial"
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        store.put("j.cfe", failing())
    assert not store.exists("j.cfe")
    assert [p.name for p in store.root.rglob("*")] == ["k.cfe"]


def test_objects_are_private_files(store):
    store.put("a/b/c.cfe", b"x")
    assert (store.root / "a/b/c.cfe").stat().st_mode & 0o077 == 0


def test_plugin_imports_only_hookspecs():
    src = Path(cf_store_local.__file__).read_text()
    mods = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module.split(".")[0])
    assert "cfcore" not in mods and "hookspecs" in mods


def test_store_config_errors(deployment, make_app):
    text = deployment.read_text().replace('type = "local"', 'type = "tape"')
    deployment.write_text(text)
    app = make_app(deployment)
    with pytest.raises(ConfigError, match="choose one of: .*local"):
        open_stores(app)


def test_store_set_uses_the_configured_root_and_falls_back(app, tmp_path):
    stores = app.stores
    assert stores.names == ("primary",)
    assert stores.stores["primary"].root == (app.config.base_dir / "media").resolve()
    a, b = LocalStore("a", tmp_path / "a"), LocalStore("b", tmp_path / "b")
    both = StoreSet({"a": a, "b": b}, required_copies=2)
    assert both.put("x.cfe", b"payload") == ["a", "b"]
    a.delete("x.cfe")
    a.put("x.cfe", b"damaged")
    import hashlib

    assert both.get("x.cfe", expected_sha256=hashlib.sha256(b"payload").hexdigest()) == b"payload"
    both.delete("x.cfe")
    both.delete("x.cfe")  # idempotent
    assert not a.exists("x.cfe") and not b.exists("x.cfe")


def test_keys_under_a_prefix_walk_only_that_directory(store, tmp_path):
    store.put("audit-anchors/000000000005.json", b"{}")
    store.put("2026/11/a.advisor.cfe", b"x")
    assert list(store.keys("audit-anchors/")) == ["audit-anchors/000000000005.json"]
    assert list(store.keys("nosuch/")) == []
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_bytes(b"{}")
    os.symlink(outside, store.root / "linked")
    assert list(store.keys("linked/")) == []  # a symlinked directory is never followed
