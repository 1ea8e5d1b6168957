"""pytest fixtures of the S3 tests (registered in tests/conftest.py): moto's S3 in server mode on
loopback, a fresh locked bucket, credentials in the environment, a fault-injecting proxy."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from s3_helpers import S3_ENV, FaultProxy, MotoS3


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = MotoS3().start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(moto_s3: MotoS3) -> str:
    """A fresh bucket with versioning and Object Lock (created with ObjectLockEnabledForBucket)."""
    return moto_s3.make_bucket()


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    return dict(S3_ENV)


@pytest.fixture
def fault_proxy(moto_s3: MotoS3) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_s3.port).start()
    yield proxy
    proxy.stop()
