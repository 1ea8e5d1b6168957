"""Consent witnesses: only a capture source the deployment names in ``[capture.sources.<name>]
consent_witness = true`` may report the customer's own opt-in; any other source's report is
refused, audited, alerted by the FIS, and the customer's audio stays off at ingest."""

from __future__ import annotations

from typing import Any

import pytest
from archive_helpers import noise
from fis_helpers import alerts_of, scan_rules

from cfcore.archive import read_channel
from cfcore.capture import controller
from cfcore.config import load_config
from cfcore.db.models import Recording
from cfcore.errors import ConfigError
from cfcore.wav import write_wav
from hookspecs.types import (
    CallEvent,
    CallEventKind,
    ChannelFile,
    ChannelRole,
    Direction,
    FinishedCall,
    ModeSegment,
    RecordingMode,
)


def _opted_in_call(app: Any, tmp_path: Any, clock: Any, source: str) -> tuple[str, bytes]:
    """A call whose source reports the customer's DTMF opt-in on ANSWERED and hands over a BOTH
    segment for the whole call."""
    t0 = clock.now()
    who = {"call_id": "leg-1", "source": source, "advisor_id": "A100"}
    controller.on_call_event(app, CallEvent(kind=CallEventKind.STARTED, at=t0, direction=Direction.INBOUND, **who))
    controller.on_call_event(app, CallEvent(kind=CallEventKind.ANSWERED, at=t0, **who,
                                            detail={"consent": "dtmf", "mode": "both", "consent_at": t0.isoformat()}))
    adv, cus = noise(2.0, seed=1), noise(2.0, seed=2)
    write_wav(tmp_path / "a.wav", [adv], 8000)
    write_wav(tmp_path / "c.wav", [cus], 8000)
    call = FinishedCall(call_id="leg-1", source=source, advisor_id="A100", started_at=t0, direction=Direction.INBOUND,
                        files=[ChannelFile(role=ChannelRole.ADVISOR, path=tmp_path / "a.wav"),
                               ChannelFile(role=ChannelRole.CUSTOMER, path=tmp_path / "c.wav")],
                        segments=[ModeSegment(start=0, end=2, mode=RecordingMode.BOTH)])
    return controller.archive_call(app, call), cus


def _recording(app: Any, rec_id: str) -> Any:
    with app.catalog.session() as s:
        rec = s.get(Recording, rec_id)
        _ = rec.consents, rec.media
        return rec


def test_a_trusted_witness_records_the_customers_consent(deployment, make_app, tmp_path, frozen_clock):
    deployment.write_text(deployment.read_text() + "\n[capture.sources.mobile]\nconsent_witness = true\n")
    app = make_app(deployment)
    rec_id, cus = _opted_in_call(app, tmp_path, frozen_clock, "mobile")
    rec = _recording(app, rec_id)
    assert rec.two_sided and [c.method for c in rec.consents] == ["dtmf"]
    assert read_channel(app, rec_id, "customer") == cus
    [entry] = app.audit.entries(action="call.consent")
    assert entry.outcome == "ok" and entry.detail["source"] == "mobile"


@pytest.mark.parametrize("policy", ["", "\n[capture.sources.mobile]\nconsent_witness = false\n",
                                    "\n[capture.sources.other]\nconsent_witness = true\n"])
def test_an_untrusted_source_cannot_make_up_consent(deployment, make_app, tmp_path, frozen_clock, policy):
    deployment.write_text(deployment.read_text() + policy)
    app = make_app(deployment)
    rec_id, cus = _opted_in_call(app, tmp_path, frozen_clock, "mobile")
    rec = _recording(app, rec_id)
    assert not rec.two_sided and rec.consents == []
    customer = read_channel(app, rec_id, "customer") if any(m.channel == "customer" for m in rec.media) else b""
    assert cus[:1600] not in customer and customer.strip(b"\0") == b""  # silent or absent, never the customer
    [entry] = app.audit.entries(action="call.consent")
    assert entry.outcome == "refused" and entry.detail["source"] == "mobile"
    assert "consent_witness" in entry.detail["reason"]
    scan_rules(app)
    [alert] = alerts_of(app, "untrusted-consent")
    assert "mobile" in alert.summary


@pytest.mark.parametrize(("section", "message"), [
    ("[capture.sources.mobile]\nconsent_witnes = true\n",
     "capture.sources.mobile.consent_witnes is not an option (choose one of: consent_witness)"),
    ('[capture.sources.mobile]\nconsent_witness = "yes"\n',
     "capture.sources.mobile.consent_witness must be bool, got str"),
    ("[capture]\nsources = 1\n", "[capture.sources] must be a table"),
])
def test_a_mistake_in_the_witness_list_stops_start_up(deployment, section, message):
    deployment.write_text(deployment.read_text() + "\n" + section)
    with pytest.raises(ConfigError) as err:
        load_config(deployment)
    assert str(deployment) in str(err.value) and message in str(err.value)
