"""S3 throughput: CallFort's S3 store beside a raw boto3 upload of the same bytes, and ingest of
calls to S3 and to local disk. Runs against moto's S3 server in its own process on loopback.

    .venv/bin/python bench/bench_s3.py [--quick]

moto keeps objects in memory and is written in Python: the figures compare CallFort with raw
boto3 on the same server and machine in the same run; they say nothing about AWS S3 itself.
Takes well under a minute.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import boto3
from botocore.config import Config as BotoConfig

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
ACCESS, SECRET = "AKIABENCHCALLFORT001", "bench-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto_server did not start")


def raw_client(endpoint: str) -> object:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS,
                        aws_secret_access_key=SECRET,
                        config=BotoConfig(s3={"addressing_style": "path"}, retries={"mode": "standard"}))


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def machine() -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import cpu_model

    cpu = cpu_model()
    import botocore
    import moto

    return [f"uname: {' '.join(platform.uname())}", f"CPU: {cpu}, {os.cpu_count()} cores",
            f"Python {platform.python_version()}, boto3 {boto3.__version__}, botocore {botocore.__version__}, "
            f"moto {moto.__version__} (server mode, separate process)"]


def bench_uploads(endpoint: str, quick: bool) -> list[tuple[str, str, str, str]]:
    """The same bytes through CallFort's store and through raw boto3, into the same bucket."""
    from cf_store_s3 import cf_media_stores

    from hookspecs.types import PluginContext

    raw = raw_client(endpoint)
    bucket = f"bench-{secrets.token_hex(4)}"
    raw.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)  # type: ignore[attr-defined]
    (stype,) = cf_media_stores()
    ctx = PluginContext(name="bench", config={}, clock=lambda: datetime.now(UTC), data_dir=tempfile.gettempdir())
    store = stype.create({"bucket": bucket, "endpoint_url": endpoint, "access_key": ACCESS, "secret_key": SECRET,
                          "multipart_threshold": 16 * MiB, "multipart_chunk": 8 * MiB}, ctx)
    until = datetime(2031, 12, 31, tzinfo=UTC)
    rows = []
    cases = [("1 MiB objects", 1 * MiB, 10 if quick else 40), ("64 MiB object (CallFort: 8 MiB parts)", 64 * MiB, 1 if quick else 2)]
    for label, size, count in cases:
        blobs = [os.urandom(size) for _ in range(count)]
        total = size * count / MiB
        tag = secrets.token_hex(3)
        spent = {"ours": 0.0, "raw": 0.0, "managed": 0.0}
        # interleaved, object by object: moto slows down as it fills, and each path gets the same share
        for i, b in enumerate(blobs):
            key = f"{tag}/{i}"
            t0 = time.perf_counter()
            store.put(f"ours/{key}", b, retain_until=until)
            t1 = time.perf_counter()
            raw.put_object(Bucket=bucket, Key=f"raw/{key}", Body=b, ObjectLockMode="COMPLIANCE",  # type: ignore[attr-defined]
                           ObjectLockRetainUntilDate=until)
            t2 = time.perf_counter()
            raw.upload_fileobj(io.BytesIO(b), bucket, f"managed/{key}")  # type: ignore[attr-defined]
            t3 = time.perf_counter()
            spent["ours"] += t1 - t0
            spent["raw"] += t2 - t1
            spent["managed"] += t3 - t2
        for who, t in (("CallFort S3Store.put (locked)", spent["ours"]),
                       ("raw boto3 put_object (locked)", spent["raw"]),
                       ("raw boto3 upload_fileobj (threads, no lock)", spent["managed"])):
            rows.append((label, who, f"{total / t:.1f} MiB/s", f"{count / t:.1f} obj/s"))
    return rows


def bench_ingest(endpoint: str, quick: bool) -> list[tuple[str, str, str, str]]:
    """Whole ingest (read WAV, encrypt, store, catalog, audit) of 60-second two-sided calls."""
    from cfcore.app import App
    from cfcore.ingest import ingest_wav
    from cfcore.testing import write_deployment
    from cfcore.wav import write_wav

    raw = raw_client(endpoint)
    calls = 6 if quick else 20
    rows = []
    work = Path(tempfile.mkdtemp(prefix="cf-bench-s3-"))
    try:
        wav = work / "call.wav"
        write_wav(wav, [os.urandom(16000 * 60), os.urandom(16000 * 60)], 8000)  # 60 s, 2 channels
        audio_mib = wav.stat().st_size / MiB
        apps = {}
        names = {"local disk": '["primary"]', "S3 (moto)": '["cloud"]', "local + S3, 2 copies": '["primary", "cloud"]'}
        for label, stores in names.items():
            bucket = f"bench-{secrets.token_hex(4)}"
            raw.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)  # type: ignore[attr-defined]
            s3 = (f'[stores.cloud]\ntype = "s3"\nbucket = "{bucket}"\nendpoint_url = "{endpoint}"\n'
                  f'access_key = "{ACCESS}"\nsecret_key = "{SECRET}"\n')
            d = work / secrets.token_hex(4)
            cfg = write_deployment(d, f"sqlite:///{d / 'catalog.db'}", s3)
            copies = 2 if "2 copies" in label else 1
            cfg.write_text(cfg.read_text().replace('stores = ["primary"]\nrequired_copies = 1',
                                                   f"stores = {stores}\nrequired_copies = {copies}"))
            apps[label] = App.open(cfg)
        try:
            spent = dict.fromkeys(apps, 0.0)
            for rnd in range(calls + 1):  # round 0 warms up
                for label, app in apps.items():
                    t = timed(lambda app=app: ingest_wav(app, wav, advisor_id="A1", customer_ids=["K1"],
                                                         consent_at=0.0))
                    spent[label] += t if rnd else 0.0
        finally:
            for app in apps.values():
                app.close()
        for label, t in spent.items():
            rows.append(("ingest 60 s two-sided calls", label, f"{calls * audio_mib / t:.1f} MiB/s audio",
                         f"{calls / t:.1f} calls/s"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = []
    for part in (bench_uploads, bench_ingest):  # a fresh moto server each: it keeps every object in memory
        proc, endpoint = start_moto()
        try:
            rows += part(endpoint, args.quick)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print("\n".join(machine()))
    print()
    print("| what | path | throughput | rate |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\n(total run {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
