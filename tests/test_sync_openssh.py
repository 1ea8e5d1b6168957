"""Issue 17 against Debian's OpenSSH server (``sshd -D -f <own config> -p <free port>``, its own
host key and ``authorized_keys``, SFTP only): two sites and the archive, the CLI as the operator
runs it, and the refusals."""

from __future__ import annotations

import json

import pytest
from archive_helpers import login_env, make_user, media_files
from sqlalchemy import func, select
from sync_helpers import CutProxy, cf, receive, record, rewrite_target, sync

from cfcore.archive import read_channel
from cfcore.db.models import Recording
from cfcore.db.models_sync import SyncStub
from cfcore.sync.send import SyncError, SyncRefusedError


def test_two_sites_through_openssh_with_the_cli(openssh_world, tmp_path):
    w = openssh_world
    a, b = w.site("site-a"), w.site("site-b")
    archive = w.archive()
    for app in (a, b, archive):
        make_user(app, "admin", ["administrator"])
        make_user(app, "sup", ["supervisor"])
    ids = record(a, tmp_path, 2) + record(b, tmp_path, 1)
    audio = {rid: read_channel(a if i < 2 else b, rid, "advisor") for i, rid in enumerate(ids)}

    denied = cf(w.site_cfgs["site-a"], "sync", env=login_env("sup"))
    assert denied.returncode == 5 and "may not sync.run" in denied.stderr

    for site in ("site-a", "site-b"):
        p = cf(w.site_cfgs[site], "sync", "--json", "--progress", env=login_env("admin"))
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["state"] == "sent"
        assert "%" in p.stderr  # the progress on stderr
    r = cf(w.archive_cfg, "sync", "receive", "--json", env=login_env("admin"))
    assert r.returncode == 0, r.stderr
    assert sorted(i["site"] for i in json.loads(r.stdout)["imported"]) == ["site-a", "site-b"]
    for site in ("site-a", "site-b"):
        p = cf(w.site_cfgs[site], "sync", "--json", "--no-progress", env=login_env("admin"))
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["handed_over"]
        assert media_files(w.site_cfgs[site]) == []
    for rid in ids:
        assert read_channel(archive, rid, "advisor") == audio[rid]
    with a.catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(SyncStub)) == 2
        assert s.scalar(select(func.count()).select_from(Recording)) == 0

    st = cf(w.archive_cfg, "sync", "status", "--json", env=login_env("admin"))
    assert st.returncode == 0, st.stderr
    sites = json.loads(st.stdout)["sites"]
    assert sites["site-a"]["chain_ok"] and sites["site-b"]["chain_ok"] and sites["site-a"]["chain_entries"] > 0
    ss = cf(w.site_cfgs["site-a"], "sync", "status", "--json", env=login_env("admin"))
    assert json.loads(ss.stdout)["handed_over"] == 2


def test_openssh_changed_host_key_is_refused(openssh_world, tmp_path):
    import asyncssh

    w = openssh_world
    a = w.site("site-a")
    record(a, tmp_path, 1)
    rewrite_target(w, "site-a", host_key=asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip())
    with pytest.raises(SyncRefusedError, match="host key"):
        sync(w.site("site-a"))


def test_openssh_cut_connection_resumes(openssh_world, tmp_path):
    w = openssh_world
    cfg = w.site_cfgs["site-a"]
    cfg.write_text(cfg.read_text().replace("[sync]\n", "[sync]\nchunk_size = 32768\n", 1))
    a = w.reopen("site-a")
    ids = record(a, tmp_path, 2, seconds=20.0)
    proxy = CutProxy(w.server.port).start()
    try:
        rewrite_target(w, "site-a", port=proxy.port)
        proxy.cut_after = 500_000
        with pytest.raises(SyncError):
            sync(w.site("site-a"))
        proxy.cut_after = None
        again = sync(w.site("site-a"))
        assert again.state == "sent" and again.bytes_resumed + again.objects_skipped > 0
        assert again.objects_skipped + again.objects_sent == 4
    finally:
        proxy.close()
    got = receive(w.archive())
    assert len(got.imported) == 1
    with w.archive().catalog.session() as s:
        assert sorted(s.scalars(select(Recording.id))) == sorted(ids)
