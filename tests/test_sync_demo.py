"""Issue 17, done when: ``cf demo --sites 2`` shows two sites recording and syncing into one archive."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from archive_helpers import NOW


def test_cf_demo_with_two_sites_hands_everything_to_one_archive(tmp_path):
    env = {**os.environ, "CF_NOW": NOW.isoformat()}
    env.pop("CF_CONFIG", None)
    p = subprocess.run([sys.executable, "-m", "cfcore", "demo", "--sites", "2", "--dir", str(tmp_path / "ds"), "--json"],
                       capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["recordings"] == {"site-a": 3, "site-b": 3}
    assert out["chains_ok"] is True
    assert any("handed over" in line for line in out["log"])
    for site in ("site-a", "site-b"):
        media = tmp_path / "ds" / site / "media"
        assert not [f for f in media.rglob("*") if f.is_file()], "the sites keep no media after the hand-over"
    again = subprocess.run([sys.executable, "-m", "cfcore", "demo", "--sites", "2", "--dir", str(tmp_path / "ds"),
                            "--json"], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    other = tmp_path / "other"
    other.mkdir()
    refused = subprocess.run([sys.executable, "-m", "cfcore", "demo", "--sites", "2", "--dir", str(other)],
                             capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert refused.returncode != 0 and "was not made by" in refused.stderr
