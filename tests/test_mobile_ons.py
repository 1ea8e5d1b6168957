"""ONS: a mobile leg routed through the PBX is attributed to the advisor by a dialplan-set channel
variable (never by caller id) and recorded by pbx_asterisk under the same advisor-only rules."""

from __future__ import annotations

import pytest

from tests.asterisk_sim import assert_segments, channel, has_tone, leg_id, live_call, recording

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]




async def test_ons_leg_is_recorded_for_the_advisor_named_by_the_dialplan(harness, frozen_clock):
    async with harness(plugin={"advisor_variable": "CF_ADVISOR"}) as h:
        call = h.sim.ons_call("+4930123456", "+491701234567", variable="CF_ADVISOR", advisor_id="A100")
        await h.settle()
        cid = leg_id(call)
        assert live_call(h.app, cid).advisor_id == "A100"
        await h.answered(call)
        frozen_clock.advance(10)
        h.sim.hangup(call)
        rec_id = await h.archived(cid)
    rec = recording(h.app, rec_id)
    assert rec.advisor_id == "A100" and not rec.two_sided
    assert_segments(h.app, rec_id, [(0.0, 10.0, "advisor_only")])
    assert channel(h.app, rec_id, "customer") is None
    assert has_tone(channel(h.app, rec_id, "advisor"), 0, 10)


@pytest.mark.parametrize("variable,value", [("CF_ADVISOR", "A999"), ("OTHER_VAR", "A100")])
async def test_unknown_advisor_or_other_variable_is_not_attributed(harness, variable, value):
    from cfcore.db.models_capture import LiveCall

    async with harness(plugin={"advisor_variable": "CF_ADVISOR"}) as h:
        call = h.sim.ons_call("+4930123456", "+491701234567", variable=variable, advisor_id=value)
        await h.settle()
        with h.app.catalog.session() as s:
            assert s.get(LiveCall, leg_id(call)) is None
        h.sim.hangup(call)
        await h.settle()


async def test_without_the_option_the_variable_is_ignored(harness):
    from cfcore.db.models_capture import LiveCall

    async with harness() as h:
        call = h.sim.ons_call("+4930123456", "+491701234567", variable="CF_ADVISOR", advisor_id="A100")
        await h.settle()
        with h.app.catalog.session() as s:
            assert s.get(LiveCall, leg_id(call)) is None
        h.sim.hangup(call)
        await h.settle()
