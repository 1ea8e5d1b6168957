"""Concurrent ingests from threads and from processes: every recording whole, one audit chain."""

import os
import subprocess
import sys
import threading

from archive_helpers import NOW, login_env, make_user, make_wav
from sqlalchemy import select

from cfcore.archive import read_channel
from cfcore.db.models import Recording
from cfcore.ingest import ingest_wav


def _check_all(app, expected, chans):
    with app.catalog.session() as s:
        ids = list(s.scalars(select(Recording.id)))
    assert len(ids) == expected == len(set(ids))
    for rid in ids:
        assert read_channel(app, rid, "advisor") == chans[0]
        assert read_channel(app, rid, "customer") == chans[1]
    res = app.audit.verify()
    assert res.ok, res.problem
    assert len([e for e in app.audit.entries(action="recording.archive")]) == expected


def test_threads(app, make_app, deployment, tmp_path):
    wav, chans = make_wav(tmp_path / "in.wav", 1.0)
    apps = [make_app(deployment) for _ in range(4)]
    errors = []

    def work(a, k):
        try:
            for i in range(3):
                ingest_wav(a, wav, advisor_id=f"A{k}", customer_ids=[f"K{k}-{i}"], consent_at=0)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(a, k)) for k, a in enumerate(apps)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    _check_all(app, 12, chans)


def test_four_processes(app, deployment, tmp_path):
    make_user(app, "admin", ["administrator"])
    wav, chans = make_wav(tmp_path / "in.wav", 1.0)
    env = {**os.environ, "CF_CONFIG": str(deployment), **login_env("admin"), "CF_NOW": NOW.isoformat()}
    script = (
        "import sys\n"
        "from cfcore.cli.main import main\n"
        "for i in range(3):\n"
        "    try:\n"
        "        main(['ingest', sys.argv[1], '--agent', sys.argv[2], '--customer', 'K' + str(i), '--consent-at', '0'])\n"
        "    except SystemExit as e:\n"
        "        if e.code: raise\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(wav), f"A{k}"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(4)]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    _check_all(app, 12, chans)
