"""``/health``, ``/ready`` and ``/metrics`` on a real server (``cf serve`` and uvicorn)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
from access_helpers import NOW, api_server, ingest
from prometheus_client.parser import text_string_to_metric_families
from scaleout_helpers import stop_worker
from test_api_serve import wait_for


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(f"{base}/metrics", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for sample in fam.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_cf_serve_answers_health_ready_and_metrics(deployment, make_app, free_port, tmp_path):
    deployment.write_text(deployment.read_text() + f"\n[server]\nhost = \"127.0.0.1\"\nport = {free_port}\n")
    app = make_app(deployment)
    ingest(app, tmp_path, "A1")
    ingest(app, tmp_path, "A2")
    env = {**os.environ, "CF_CONFIG": str(deployment), "CF_NOW": NOW.isoformat()}
    for k in ("CF_USER", "CF_PASSWORD", "CF_TOKEN"):
        env.pop(k, None)
    proc = subprocess.Popen([sys.executable, "-m", "cfcore", "serve", "--log-level", "warning"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{free_port}"
    try:
        wait_for(f"{base}/health", proc)
        assert httpx.get(f"{base}/health").json() == {"status": "ok"}
        ready = httpx.get(f"{base}/ready", timeout=30)
        assert ready.status_code == 200, ready.text
        assert {c["name"] for c in ready.json()["checks"]} >= {"catalog", "keys", "store:primary", "clock",
                                                               "audit-anchor"}
        m = scrape(base)
        assert m[("callfort_recordings", (("state", "archived"),))] == 2
        assert m[("callfort_recordings_archived_total", ())] == 2
        assert m[("callfort_calls_in_progress", ())] == 0
        with app.catalog.session() as s:
            from cfcore.db.models import AuditHead

            head = s.get(AuditHead, 1).seq
        assert m[("callfort_audit_entries_total", ())] >= head  # the server's own start is audited too
        assert m[("callfort_purge_backlog", ())] == 0
        # the jobs of this server: approvals.expire runs at start-up
        runs = {labels: v for (name, labels), v in m.items() if name == "callfort_job_runs_total"}
        assert any(dict(lbl)["job"] == "approvals.expire" for lbl in runs)
        # no personal data in any label: advisors, customers, numbers
        r = httpx.get(f"{base}/metrics").text
        assert "A1" not in r and "K-1" not in r
    finally:
        stop_worker(proc)


def test_store_latency_and_errors_are_counted(app, tmp_path):
    from cfcore.metrics_store import snapshot

    before = snapshot().get(("primary", "put"), (0, 0.0, 0))
    ingest(app, tmp_path, "A1")
    with api_server(app) as server:
        m = scrape(server.base)
    puts = m[("callfort_store_operations_total", (("op", "put"), ("outcome", "ok"), ("store", "primary")))]
    assert puts >= before[0] - before[2] + 1
    assert m[("callfort_store_operation_seconds_count", (("op", "put"), ("store", "primary")))] >= puts
    assert m[("callfort_store_operation_seconds_sum", (("op", "put"), ("store", "primary")))] > 0
    # a store failing: its error is counted
    media = app.data_dir / "media"
    for p in sorted(media.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    media.rmdir()
    media.write_text("not a directory")
    try:
        ingest(app, tmp_path, "A1")
    except Exception:  # noqa: BLE001 - the ingest fails; the metric is what is tested
        pass
    with api_server(app) as server:
        m2 = scrape(server.base)
    errors = m2[("callfort_store_operations_total", (("op", "put"), ("outcome", "error"), ("store", "primary")))]
    assert errors >= 1


def test_ready_is_503_naming_the_failing_check(app):
    (app.keys_dir / "stream-link.key").chmod(0o644)
    with api_server(app) as server:
        r = httpx.get(f"{server.base}/ready", timeout=30)
        assert httpx.get(f"{server.base}/health").status_code == 200  # alive, but not ready
    assert r.status_code == 503
    bad = [c for c in r.json()["checks"] if not c["ok"]]
    assert [c["name"] for c in bad] == ["keys"] and "stream-link.key" in bad[0]["detail"]


def test_cf_serve_logs_json_lines_with_timestamps_and_no_personal_data(deployment, free_port):
    import json

    deployment.write_text(deployment.read_text() + f"\n[server]\nhost = \"127.0.0.1\"\nport = {free_port}\n")
    env = {**os.environ, "CF_CONFIG": str(deployment), "CF_NOW": NOW.isoformat()}
    for k in ("CF_USER", "CF_PASSWORD", "CF_TOKEN"):
        env.pop(k, None)
    proc = subprocess.Popen([sys.executable, "-m", "cfcore", "serve", "--no-jobs", "--log-format", "json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{free_port}"
    try:
        wait_for(f"{base}/health", proc)
        httpx.get(f"{base}/api/recordings", params={"customer_number": "+49 30 9876543"})
        httpx.post(f"{base}/api/auth/login", json={"username": "mallory", "password": "hunter2hunter2"})
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    err = proc.stderr.read() if proc.stderr else ""
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert records, err
    for r in records:
        assert r["ts"].endswith("Z") and r["level"] and r["logger"] and "msg" in r
    assert any(r["logger"] == "uvicorn.access" and "/api/recordings" in r["msg"] for r in records)
    assert "9876543" not in err and "hunter2" not in err


def test_api_docs_serve_their_assets_themselves(app):
    import re

    with api_server(app) as server:
        page = httpx.get(f"{server.base}/api/docs", timeout=30)
        assert page.status_code == 200 and "SwaggerUIBundle" in page.text
        urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", page.text)
        assert urls and all(u.startswith("/api/") for u in urls), urls  # nothing from a CDN
        for u in urls:
            r = httpx.get(f"{server.base}{u}", timeout=30)
            assert r.status_code == 200 and len(r.content) > 100, u
        assert httpx.get(f"{server.base}/api/docs-assets/..%2Fkeys", timeout=30).status_code == 404
        assert httpx.get(f"{server.base}/api/docs-assets/index.html", timeout=30).status_code == 404
