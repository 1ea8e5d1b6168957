"""store_s3 against moto's S3 in server mode over real HTTP on loopback."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from s3_helpers import ACCESS_KEY, SECRET_KEY, make_store

from hookspecs import OptionsError
from hookspecs.types import MediaStore, StoreMisconfigured, StoreUnavailable

# moto enforces Object Lock on its own, real clock: a lock meant to be running must end after the
# real date, whatever it is (the store's own clock in make_store is a fixed day in 2026)
RETAIN = datetime.now(UTC).replace(microsecond=0) + timedelta(days=5 * 365)
MiB = 1024 * 1024


def test_put_get_ranges_stat_keys(moto_s3, s3_bucket):
    store = make_store(moto_s3.endpoint, s3_bucket, prefix="site-a")
    assert isinstance(store, MediaStore)
    data = os.urandom(100_000)
    assert store.put("ab/cd/rec1.cfe", data) == len(data)
    assert store.get("ab/cd/rec1.cfe") == data
    assert store.get("ab/cd/rec1.cfe", 10, 20) == data[10:20]
    assert store.get("ab/cd/rec1.cfe", 99_990) == data[99_990:]
    assert store.get("ab/cd/rec1.cfe", 0, 1) == data[:1]
    assert store.get("ab/cd/rec1.cfe", 5, 5) == b""
    assert store.get("ab/cd/rec1.cfe", 100_000) == b""
    assert store.get("ab/cd/rec1.cfe", 99_000, 200_000) == data[99_000:]
    assert store.exists("ab/cd/rec1.cfe") and not store.exists("ab/cd/other.cfe")
    info = store.stat("ab/cd/rec1.cfe")
    assert (info.size, info.retain_until, info.legal_hold) == (len(data), None, False)
    store.put("ab/ef/rec2.cfe", iter([b"one", b"", b"two"]))
    assert store.get("ab/ef/rec2.cfe") == b"onetwo"
    assert sorted(store.keys()) == ["ab/cd/rec1.cfe", "ab/ef/rec2.cfe"]
    assert list(store.keys("ab/ef/")) == ["ab/ef/rec2.cfe"]
    # the prefix is really applied in the bucket
    head = moto_s3.client().head_object(Bucket=s3_bucket, Key="site-a/ab/cd/rec1.cfe")
    assert head["ContentLength"] == len(data)
    with pytest.raises(KeyError):
        store.get("ab/cd/missing.cfe")
    with pytest.raises(KeyError):
        store.stat("ab/cd/missing.cfe")


def test_put_never_overwrites(moto_s3, s3_bucket):
    store = make_store(moto_s3.endpoint, s3_bucket)
    store.put("k/obj", b"first")
    with pytest.raises(FileExistsError):
        store.put("k/obj", b"second")
    assert store.get("k/obj") == b"first"
    assert len(moto_s3.versions(s3_bucket, "k/obj")) == 1


def test_server_rejects_second_write_with_if_none_match(moto_s3, s3_bucket):
    """The condition the store sends: the server itself refuses a second object at the key."""
    store = make_store(moto_s3.endpoint, s3_bucket)
    store.put("k/obj", b"first")
    with pytest.raises(ClientError) as err:
        moto_s3.client().put_object(Bucket=s3_bucket, Key="k/obj", Body=b"x", IfNoneMatch="*")
    assert err.value.response["Error"]["Code"] == "PreconditionFailed"


def test_server_rejects_second_multipart_completion_with_if_none_match(moto_s3, s3_bucket):
    raw = moto_s3.client()
    raw.put_object(Bucket=s3_bucket, Key="k/mp", Body=b"first")
    up = raw.create_multipart_upload(Bucket=s3_bucket, Key="k/mp")
    part = raw.upload_part(Bucket=s3_bucket, Key="k/mp", UploadId=up["UploadId"], PartNumber=1, Body=b"x")
    with pytest.raises(ClientError) as err:
        raw.complete_multipart_upload(Bucket=s3_bucket, Key="k/mp", UploadId=up["UploadId"], IfNoneMatch="*",
                                      MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert err.value.response["Error"]["Code"] == "PreconditionFailed"


def test_another_writer_first_is_exists_already(moto_s3, s3_bucket):
    """The HEAD saw nothing, but another writer got there before our PUT/completion: the server's
    412 is not mistaken for our own lost answer (the put token differs)."""
    store = make_store(moto_s3.endpoint, s3_bucket, multipart_threshold=5 * MiB, multipart_chunk=5 * MiB)
    raw = moto_s3.client()
    raw.put_object(Bucket=s3_bucket, Key="k/race", Body=b"theirs")
    with pytest.raises(FileExistsError):
        store._put_single("k/race", "k/race", b"ours", None, "our-token")
    raw.put_object(Bucket=s3_bucket, Key="k/race-mp", Body=b"theirs")
    parts = iter([os.urandom(5 * MiB), b"tail"])
    with pytest.raises(FileExistsError):
        store._put_multipart("k/race-mp", "k/race-mp", parts, RETAIN, "our-token")
    assert moto_s3.pending_uploads(s3_bucket) == []  # the losing upload was aborted
    assert store.get("k/race") == b"theirs" and store.get("k/race-mp") == b"theirs"
    assert [len(moto_s3.versions(s3_bucket, k)) for k in ("k/race", "k/race-mp")] == [1, 1]


def test_locked_object_deletion_refused_by_server(moto_s3, s3_bucket):
    store = make_store(moto_s3.endpoint, s3_bucket)
    store.put("rec/locked.cfe", b"ciphertext", retain_until=RETAIN)
    info = store.stat("rec/locked.cfe")
    assert info.retain_until == RETAIN
    raw = moto_s3.client()
    head = raw.head_object(Bucket=s3_bucket, Key="rec/locked.cfe")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"].astimezone(UTC) == RETAIN
    # the server itself refuses to delete the locked version, whoever asks
    with pytest.raises(ClientError) as err:
        raw.delete_object(Bucket=s3_bucket, Key="rec/locked.cfe", VersionId=head["VersionId"])
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(PermissionError):
        store.delete("rec/locked.cfe")
    assert store.get("rec/locked.cfe") == b"ciphertext"
    assert [v["VersionId"] for v in moto_s3.versions(s3_bucket, "rec/locked.cfe")] == [head["VersionId"]]


def test_retain_until_rounds_up_to_whole_seconds(moto_s3, s3_bucket):
    store = make_store(moto_s3.endpoint, s3_bucket)
    store.put("rec/frac.cfe", b"x", retain_until=RETAIN + timedelta(microseconds=250))
    assert store.stat("rec/frac.cfe").retain_until == RETAIN + timedelta(seconds=1)


def test_retention_only_extended(moto_s3, s3_bucket):
    store = make_store(moto_s3.endpoint, s3_bucket)
    store.put("rec/r.cfe", b"x", retain_until=RETAIN)
    later = RETAIN + timedelta(days=365)
    store.lock_until("rec/r.cfe", later)
    assert store.stat("rec/r.cfe").retain_until == later
    with pytest.raises(PermissionError, match="only be extended"):
        store.lock_until("rec/r.cfe", RETAIN)
    assert store.stat("rec/r.cfe").retain_until == later
    store.lock_until("rec/r.cfe", later)  # the same date again is fine
    # an object stored without retention gets one later
    store.put("rec/nolock.cfe", b"y")
    store.lock_until("rec/nolock.cfe", RETAIN)
    assert store.stat("rec/nolock.cfe").retain_until == RETAIN
    with pytest.raises(PermissionError):
        store.delete("rec/nolock.cfe")


def test_retention_in_the_past_is_not_sent(moto_s3, s3_bucket):
    store = make_store(moto_s3.endpoint, s3_bucket)
    store.put("rec/old.cfe", b"x", retain_until=datetime(2020, 1, 1, tzinfo=UTC))
    assert store.stat("rec/old.cfe").retain_until is None
    store.delete("rec/old.cfe")
    assert moto_s3.versions(s3_bucket, "rec/old.cfe") == []


def test_legal_hold_maps_to_s3_legal_hold(moto_s3, s3_bucket):
    store = make_store(moto_s3.endpoint, s3_bucket)
    store.put("rec/held.cfe", b"x")
    store.lock_until("rec/held.cfe", legal_hold=True)
    assert store.stat("rec/held.cfe").legal_hold is True
    head = moto_s3.client().head_object(Bucket=s3_bucket, Key="rec/held.cfe")
    assert head["ObjectLockLegalHoldStatus"] == "ON"
    with pytest.raises(PermissionError):
        store.delete("rec/held.cfe")
    store.lock_until("rec/held.cfe", legal_hold=False)
    assert store.stat("rec/held.cfe").legal_hold is False
    store.delete("rec/held.cfe")
    assert not store.exists("rec/held.cfe")


def test_delete_removes_every_version(moto_s3, s3_bucket):
    store = make_store(moto_s3.endpoint, s3_bucket)
    store.put("rec/d.cfe", b"x")
    raw = moto_s3.client()
    raw.delete_object(Bucket=s3_bucket, Key="rec/d.cfe")  # a plain delete leaves the data as a version
    raw.put_object(Bucket=s3_bucket, Key="rec/d.cfe", Body=b"again")
    assert len(moto_s3.versions(s3_bucket, "rec/d.cfe")) == 3
    store.delete("rec/d.cfe")
    assert moto_s3.versions(s3_bucket, "rec/d.cfe") == []
    with pytest.raises(KeyError):
        store.delete("rec/d.cfe")


def test_multipart_large_object_locked_after_completion(moto_s3, s3_bucket):
    store = make_store(moto_s3.endpoint, s3_bucket, multipart_threshold=5 * MiB, multipart_chunk=5 * MiB)
    data = os.urandom(12 * MiB + 123)
    assert store.put("rec/big.cfe", data, retain_until=RETAIN) == len(data)
    raw = moto_s3.client()
    head = raw.head_object(Bucket=s3_bucket, Key="rec/big.cfe")
    assert head["ETag"].strip('"').endswith("-3")  # three parts: 5 + 5 + 2 MiB
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert store.stat("rec/big.cfe").retain_until == RETAIN
    assert store.get("rec/big.cfe") == data
    assert store.get("rec/big.cfe", 5 * MiB - 10, 5 * MiB + 10) == data[5 * MiB - 10:5 * MiB + 10]
    assert moto_s3.pending_uploads(s3_bucket) == []
    with pytest.raises(ClientError):
        raw.delete_object(Bucket=s3_bucket, Key="rec/big.cfe", VersionId=head["VersionId"])
    # streamed input (an iterator of chunks) goes the same way
    chunks = (data[i:i + 1_000_000] for i in range(0, len(data), 1_000_000))
    assert store.put("rec/big2.cfe", chunks) == len(data)
    assert store.get("rec/big2.cfe") == data
    assert raw.head_object(Bucket=s3_bucket, Key="rec/big2.cfe")["ETag"].strip('"').endswith("-3")
    with pytest.raises(FileExistsError):
        store.put("rec/big.cfe", data)
    assert moto_s3.pending_uploads(s3_bucket) == []


def test_governance_mode(moto_s3, s3_bucket):
    store = make_store(moto_s3.endpoint, s3_bucket, lock_mode="governance")
    store.put("rec/g.cfe", b"x", retain_until=RETAIN)
    head = moto_s3.client().head_object(Bucket=s3_bucket, Key="rec/g.cfe")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    with pytest.raises(PermissionError):
        store.delete("rec/g.cfe")  # the store never sends the governance bypass


def test_bucket_without_object_lock_refused(moto_s3):
    plain = moto_s3.make_bucket(lock=False)
    with pytest.raises(StoreMisconfigured, match="versioning is not enabled"):
        make_store(moto_s3.endpoint, plain)
    versioned = moto_s3.make_bucket(lock=False, versioning=True)
    with pytest.raises(StoreMisconfigured, match="Object Lock is not enabled"):
        make_store(moto_s3.endpoint, versioned)
    with pytest.raises(StoreMisconfigured, match="does not exist"):
        make_store(moto_s3.endpoint, "cf-no-such-bucket")


def test_bad_options_refused(moto_s3, s3_bucket):
    with pytest.raises(OptionsError, match=r"stores\.cloud: lock_mode must be compliance or governance"):
        make_store(moto_s3.endpoint, s3_bucket, lock_mode="relaxed")
    with pytest.raises(OptionsError, match=r"stores\.cloud\.buckett is not an option \(choose one of: access_key, "):
        make_store(moto_s3.endpoint, s3_bucket, buckett="x")
    with pytest.raises(OptionsError, match=r"stores\.cloud: multipart_chunk must be between"):
        make_store(moto_s3.endpoint, s3_bucket, multipart_chunk=1024)
    with pytest.raises(OptionsError, match=r"stores\.cloud\.retries must be int, got str"):
        make_store(moto_s3.endpoint, s3_bucket, retries="2")
    with pytest.raises(OptionsError, match=r"stores\.cloud\.secret_key is a secret"):
        make_store(moto_s3.endpoint, s3_bucket, secret_key="in clear")


def test_unreachable_endpoint_does_not_stop_start_but_fails_use(s3_bucket, free_port):
    store = make_store(f"http://127.0.0.1:{free_port}", s3_bucket, retries=0, connect_timeout=1)
    with pytest.raises(StoreUnavailable, match="failed after retries"):
        store.put("rec/x.cfe", b"x")


def test_credentials_never_in_repr_messages_or_logs(moto_s3, s3_bucket, caplog):
    caplog.set_level(logging.DEBUG)
    store = make_store(moto_s3.endpoint, s3_bucket)
    store.put("rec/s.cfe", b"x", retain_until=RETAIN)
    store.get("rec/s.cfe")
    messages = [repr(store), repr(store.options)]
    for call in (lambda: store.delete("rec/s.cfe"), lambda: store.get("rec/none"),
                 lambda: make_store(moto_s3.endpoint, "cf-no-such-bucket")):
        try:
            call()
        except Exception as exc:
            messages.append(str(exc))
    text = caplog.text + "\n".join(messages)
    assert SECRET_KEY not in text and ACCESS_KEY not in text
    assert "S3Store(name='cloud'" in messages[0]
