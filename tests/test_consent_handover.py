"""A source may hand a call over the moment set_mode(BOTH) returned, before the runner wrote the
consent: the hand-over waits for the request being applied, so the consent backs the BOTH part."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from access_helpers import ctx_for, make_user
from archive_helpers import noise

from cfcore.archive import read_channel
from cfcore.capture import controller
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


def test_hand_over_waits_for_the_consent_being_written(app, tmp_path, frozen_clock):
    make_user(app, "anna", ["advisor"], advisor_id="A100")
    anna = ctx_for(app, "anna")
    t0 = frozen_clock.now()
    who = {"call_id": "leg-1", "source": "pbx", "advisor_id": "A100"}
    controller.on_call_event(app, CallEvent(kind=CallEventKind.STARTED, at=t0, direction=Direction.INBOUND, **who))
    controller.on_call_event(app, CallEvent(kind=CallEventKind.ANSWERED, at=t0, **who))
    frozen_clock.advance(1)
    req = controller.request_mode(app, anna, "leg-1", "record_both", "web")
    (claimed,) = controller.claim_requests(app, ["pbx"], "runner-1")  # the runner is applying it

    adv, cus = noise(2.0, seed=1), noise(2.0, seed=2)
    write_wav(tmp_path / "a.wav", [adv], 8000)
    write_wav(tmp_path / "c.wav", [cus], 8000)
    call = FinishedCall(call_id="leg-1", source="pbx", advisor_id="A100", started_at=t0, direction=Direction.INBOUND,
                        files=[ChannelFile(role=ChannelRole.ADVISOR, path=tmp_path / "a.wav"),
                               ChannelFile(role=ChannelRole.CUSTOMER, path=tmp_path / "c.wav")],
                        segments=[ModeSegment(start=0, end=1, mode=RecordingMode.ADVISOR_ONLY),
                                  ModeSegment(start=1, end=2, mode=RecordingMode.BOTH)])
    result: list[str] = []
    handover = threading.Thread(target=lambda: result.append(controller.archive_call(app, call)))
    handover.start()
    time.sleep(0.5)
    assert handover.is_alive(), "the hand-over must wait while the request is being applied"
    controller.finish_request(app, claimed, RecordingMode.BOTH, True, None)
    handover.join(30)
    (rec_id,) = result
    customer = read_channel(app, rec_id, "customer")
    assert customer[:16000] == bytes(16000) and customer[16000:] == cus[16000:]
    assert not list(app.audit.entries(action="recording.consent_refused"))
    assert req.id == claimed.id and frozen_clock.now() - t0 == timedelta(seconds=1)
