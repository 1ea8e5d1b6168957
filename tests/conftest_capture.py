"""Fixtures shared by the capture tests (Asterisk, mobile, SIPREC): the anyio backend and a
capture harness around the Asterisk simulator on the test's frozen clock."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def harness(tmp_path, deployment, make_app, frozen_clock):
    from tests.asterisk_sim import CaptureHarness

    def make(**kwargs):
        return CaptureHarness(tmp_path=tmp_path, deployment=deployment, make_app=make_app, clock=frozen_clock,
                              **kwargs)
    return make
