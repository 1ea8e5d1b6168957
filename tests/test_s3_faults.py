"""Faults between CallFort and S3: a server error, a timeout, a connection cut in the middle of an
upload. Each ends in a retried success or a clean failure; never an object that is half there.

The fault proxy (tests/s3_helpers.py) sits between boto3 and moto on loopback.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from s3_helpers import make_store

from hookspecs.types import StoreUnavailable

RETAIN = datetime(2031, 11, 28, 9, 0, tzinfo=UTC)
MiB = 1024 * 1024


def _nothing_there(moto_s3, bucket, key):
    assert moto_s3.versions(bucket, key) == []
    assert moto_s3.pending_uploads(bucket) == []


def test_server_error_then_retried_success(moto_s3, s3_bucket, fault_proxy):
    store = make_store(fault_proxy.endpoint, s3_bucket, retries=2)
    fault_proxy.add("error", method="PUT", times=1)
    data = os.urandom(300_000)
    store.put("rec/a.cfe", data, retain_until=RETAIN)
    assert len(fault_proxy.injected("error")) == 1
    assert store.get("rec/a.cfe") == data
    assert store.stat("rec/a.cfe").retain_until == RETAIN
    assert len(moto_s3.versions(s3_bucket, "rec/a.cfe")) == 1


def test_server_error_every_time_fails_cleanly(moto_s3, s3_bucket, fault_proxy):
    store = make_store(fault_proxy.endpoint, s3_bucket, retries=1)
    fault_proxy.add("error", method="PUT", times=100)
    with pytest.raises(StoreUnavailable, match="500"):
        store.put("rec/b.cfe", os.urandom(10_000), retain_until=RETAIN)
    assert len(fault_proxy.injected("error")) == 2
    _nothing_there(moto_s3, s3_bucket, "rec/b.cfe")


def test_timeout_then_retried_success(moto_s3, s3_bucket, fault_proxy):
    store = make_store(fault_proxy.endpoint, s3_bucket, retries=2, read_timeout=1)
    fault_proxy.add("stall", method="PUT", times=1)
    data = os.urandom(50_000)
    store.put("rec/c.cfe", data, retain_until=RETAIN)
    assert len(fault_proxy.injected("stall")) == 1
    assert store.get("rec/c.cfe") == data
    assert len(moto_s3.versions(s3_bucket, "rec/c.cfe")) == 1


def test_lost_answer_is_recognised_as_our_own_write(moto_s3, s3_bucket, fault_proxy):
    """The server stored the object, the answer never came back: the retry meets If-None-Match
    (412) and the store recognises its own put by the token in the metadata."""
    store = make_store(fault_proxy.endpoint, s3_bucket, retries=2, read_timeout=1)
    fault_proxy.add("stall_after_forward", method="PUT", times=1)
    data = os.urandom(50_000)
    store.put("rec/d.cfe", data, retain_until=RETAIN)
    assert len(fault_proxy.injected("stall_after_forward")) == 1
    calls = [(s.method, s.action) for s in fault_proxy.seen if s.target.endswith("/rec/d.cfe")]
    assert calls == [("HEAD", "pass"), ("PUT", "stall_after_forward"), ("PUT", "pass"), ("HEAD", "pass")]
    assert store.get("rec/d.cfe") == data
    assert len(moto_s3.versions(s3_bucket, "rec/d.cfe")) == 1
    # a different writer is still refused
    with pytest.raises(FileExistsError):
        store.put("rec/d.cfe", data)


def test_timeout_every_time_fails_cleanly(moto_s3, s3_bucket, fault_proxy):
    store = make_store(fault_proxy.endpoint, s3_bucket, retries=1, read_timeout=1)
    fault_proxy.add("stall", method="PUT", times=100)
    with pytest.raises(StoreUnavailable):
        store.put("rec/e.cfe", os.urandom(10_000))
    _nothing_there(moto_s3, s3_bucket, "rec/e.cfe")


def test_connection_cut_mid_upload_then_retried_success(moto_s3, s3_bucket, fault_proxy):
    store = make_store(fault_proxy.endpoint, s3_bucket, retries=2)
    fault_proxy.add("cut", method="PUT", times=1)
    data = os.urandom(2 * MiB)
    store.put("rec/f.cfe", data, retain_until=RETAIN)
    assert len(fault_proxy.injected("cut")) == 1
    assert store.get("rec/f.cfe") == data
    assert len(moto_s3.versions(s3_bucket, "rec/f.cfe")) == 1


def test_connection_cut_every_time_fails_cleanly(moto_s3, s3_bucket, fault_proxy):
    store = make_store(fault_proxy.endpoint, s3_bucket, retries=1)
    fault_proxy.add("cut", method="PUT", times=100)
    with pytest.raises(StoreUnavailable):
        store.put("rec/g.cfe", os.urandom(2 * MiB), retain_until=RETAIN)
    _nothing_there(moto_s3, s3_bucket, "rec/g.cfe")


def test_multipart_cut_in_a_part_is_aborted(moto_s3, s3_bucket, fault_proxy):
    """Every attempt of part 2 is cut: the upload is aborted, no object and no parts remain."""
    store = make_store(fault_proxy.endpoint, s3_bucket, retries=1, multipart_threshold=5 * MiB,
                       multipart_chunk=5 * MiB)
    fault_proxy.add("cut", method="PUT", query="partNumber=2", times=100)
    with pytest.raises(StoreUnavailable):
        store.put("rec/h.cfe", os.urandom(11 * MiB), retain_until=RETAIN)
    assert len(fault_proxy.injected("cut")) == 2
    assert any(s.method == "DELETE" and "uploadId" in s.target for s in fault_proxy.seen)  # the abort
    _nothing_there(moto_s3, s3_bucket, "rec/h.cfe")


def test_multipart_faults_then_retried_success(moto_s3, s3_bucket, fault_proxy):
    store = make_store(fault_proxy.endpoint, s3_bucket, retries=2, read_timeout=2,
                       multipart_threshold=5 * MiB, multipart_chunk=5 * MiB)
    fault_proxy.add("cut", method="PUT", query="partNumber=1", times=1)
    fault_proxy.add("error", method="PUT", query="partNumber=2", times=1)
    fault_proxy.add("stall_after_forward", method="POST", query="uploadId", times=1)  # the completion
    data = os.urandom(11 * MiB)
    store.put("rec/i.cfe", data, retain_until=RETAIN)
    assert {s.action for s in fault_proxy.injected()} == {"cut", "error", "stall_after_forward"}
    assert store.get("rec/i.cfe") == data
    assert store.stat("rec/i.cfe").retain_until == RETAIN
    assert len(moto_s3.versions(s3_bucket, "rec/i.cfe")) == 1
    assert moto_s3.pending_uploads(s3_bucket) == []


def test_refused_connection_on_read_is_retried(moto_s3, s3_bucket, fault_proxy):
    store = make_store(fault_proxy.endpoint, s3_bucket, retries=2)
    store.put("rec/j.cfe", b"payload")
    fault_proxy.add("refuse", method="GET", times=1)
    fault_proxy.add("error", method="GET", times=1)
    assert store.get("rec/j.cfe", 1, 4) == b"ayl"
    assert len(fault_proxy.injected()) == 2


def test_answer_cut_short_is_read_again(moto_s3, s3_bucket, fault_proxy):
    store = make_store(fault_proxy.endpoint, s3_bucket, retries=2)
    data = os.urandom(200_000)
    store.put("rec/k.cfe", data)
    fault_proxy.add("truncate", method="GET", times=1)
    assert store.get("rec/k.cfe", 1000, 150_000) == data[1000:150_000]
    assert len(fault_proxy.injected("truncate")) == 1
    assert [s.action for s in fault_proxy.seen if s.method == "GET" and s.target.endswith("/rec/k.cfe")] == [
        "truncate", "pass"]
