"""The dial-in flow of mobile_ons as a pure state machine: scripted paths and Hypothesis over
arbitrary event orders with the invariant "no customer audio before opt-in"."""

from __future__ import annotations

import pytest
from cf_mobile_ons.flow import (
    Alert,
    Announcement,
    Bridge,
    ConsentGiven,
    CustomerAnswered,
    CustomerUnreachable,
    Dial,
    DialIn,
    Dtmf,
    Finished,
    FlowPolicy,
    Hangup,
    HangupLeg,
    Leg,
    Play,
    PlaybackDone,
    Record,
    RecordingFailed,
    Started,
    State,
    StopRecording,
    Timeout,
)
from cf_mobile_ons.numbers import NumberPolicy, NumberRefused, check_number
from cf_mobile_ons.pins import hash_pin, verify_pin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MOBILE = "+491701234567"
PIN_HASH = hash_pin("4711")
ANN = Announcement(id="mobile-consent", version="3", media="sound:cf-consent-v3", sha256="ab" * 32)


def policy(*, unrecorded: str = "hangup", cap: int = 5, today: int = 0, locked: bool = False,
           fast: bool = False) -> FlowPolicy:
    hashes = {"A100": PIN_HASH}

    def check(a: str, p: str) -> bool:
        if fast:  # the property tests: the same decision without argon2's cost per try
            return a == "A100" and p == "4711"
        return a in hashes and verify_pin(hashes[a], p)

    return FlowPolicy(mobiles={MOBILE: "A100"}, verify_pin=check,
                      is_locked=lambda a: locked, calls_today=lambda a: today, announcement=ANN, daily_cap=cap,
                      unrecorded=unrecorded)


def keys(flow: DialIn, digits: str, leg: Leg = Leg.ADVISOR) -> list:
    out = []
    for d in digits:
        out += flow.handle(Dtmf(leg, d))
    return out


def to_optin(flow: DialIn) -> list:
    out = flow.handle(Started(MOBILE))
    out += keys(flow, "4711#")
    out += keys(flow, "030123456#")
    out += keys(flow, "1")
    out += flow.handle(CustomerAnswered())
    ann = [a for a in out if isinstance(a, Play) and a.leg is Leg.CUSTOMER]
    assert len(ann) == 1 and ann[0].media == ANN.media
    out += flow.handle(PlaybackDone(Leg.CUSTOMER, ann[0].playback_id))
    assert flow.state is State.AWAIT_OPTIN
    return out


def test_opt_in_path_dials_the_checked_number_and_records_after_the_customers_digit() -> None:
    f = DialIn(policy())
    out = to_optin(f)
    assert Dial("+4930123456") in out
    assert Play(Leg.ADVISOR, "digits:4930123456", out[[i for i, a in enumerate(out) if isinstance(a, Play)
                                                          and a.media.startswith("digits:")][0]].playback_id) in out
    assert not any(isinstance(a, Record | Bridge) for a in out)
    out = keys(f, "1", Leg.ADVISOR)  # the advisor pressing the opt-in digit does not count
    assert out == [] and f.state is State.AWAIT_OPTIN and f.ignored_advisor_digits == 1
    out = keys(f, "1", Leg.CUSTOMER)
    assert [type(a) for a in out if not isinstance(a, type(out[0]))][:0] == []
    assert ConsentGiven("1") in out and Bridge() in out and Record() in out
    assert f.state is State.RECORDING
    out = f.handle(Hangup(Leg.CUSTOMER))
    assert StopRecording() in out and HangupLeg(Leg.ADVISOR, "customer hung up") in out
    assert Finished("customer hung up", True) in out


def test_unknown_caller_id_asks_for_the_advisor_and_still_the_pin() -> None:
    f = DialIn(policy())
    f.handle(Started("+4915199999999"))
    assert f.state is State.ADVISOR_ID and f.advisor_id is None
    keys(f, "A100"[1:] + "#")  # "100": not an advisor id → the PIN check fails
    assert f.state is State.PIN
    keys(f, "4711#")
    assert f.state is State.PIN and f.pin_tries == 1


def test_three_wrong_pins_end_the_call_with_an_alert() -> None:
    f = DialIn(policy())
    f.handle(Started(MOBILE))
    out = keys(f, "1111#2222#")
    assert f.state is State.PIN and not any(isinstance(a, Alert) for a in out)
    out = keys(f, "3333#")
    assert any(isinstance(a, Alert) and a.code == "pin_failed" for a in out)
    assert HangupLeg(Leg.ADVISOR, "wrong PIN") in out and f.state is State.ENDED


def test_locked_advisor_is_refused_even_with_the_right_pin() -> None:
    f = DialIn(policy(locked=True))
    f.handle(Started(MOBILE))
    out = keys(f, "4711#")
    assert any(isinstance(a, Alert) and a.code == "pin_locked" for a in out) and f.state is State.ENDED


@pytest.mark.parametrize("keyed,reason", [("0900123456#", "blocked"), ("0112#", "short"), ("0118800#", "blocked"),
                                          ("110#", "malformed"), ("00447700900123#", "not_allowed")])
def test_refused_numbers(keyed: str, reason: str) -> None:
    f = DialIn(policy())
    f.handle(Started(MOBILE))
    keys(f, "4711#")
    out = keys(f, keyed)
    assert f.state is State.NUMBER and not any(isinstance(a, Dial) for a in out)
    with pytest.raises(NumberRefused) as exc:
        check_number(keyed.rstrip("#"), NumberPolicy())
    assert exc.value.reason == reason
    if reason in ("blocked", "not_allowed"):
        assert any(isinstance(a, Alert) and a.code == "number_refused" for a in out)


def test_daily_cap_refuses_and_alerts() -> None:
    f = DialIn(policy(cap=3, today=3))
    f.handle(Started(MOBILE))
    keys(f, "4711#030123456#")
    out = keys(f, "1")
    assert any(isinstance(a, Alert) and a.code == "daily_cap" for a in out)
    assert not any(isinstance(a, Dial) for a in out) and f.state is State.ENDED


def test_re_entering_the_number_after_the_read_back() -> None:
    f = DialIn(policy())
    f.handle(Started(MOBILE))
    keys(f, "4711#030123456#")
    keys(f, "2")
    out = keys(f, "040555#")
    assert Dial("+4940555") not in out  # 7 digits: too short
    keys(f, "04055577#")
    out = keys(f, "1")
    assert Dial("+494055577") in out


@pytest.mark.parametrize("how", ["decline", "silence"])
@pytest.mark.parametrize("unrecorded", ["hangup", "continue"])
def test_decline_or_silence_means_no_recording(how: str, unrecorded: str) -> None:
    f = DialIn(policy(unrecorded=unrecorded))
    to_optin(f)
    out = keys(f, "2", Leg.CUSTOMER) if how == "decline" else f.handle(Timeout("optin"))
    assert any(isinstance(a, Alert) and a.code == ("declined" if how == "decline" else "no_optin") for a in out)
    assert Record() not in out
    if unrecorded == "continue":
        assert Bridge() in out and f.state is State.UNRECORDED
        assert keys(f, "1", Leg.CUSTOMER) == []  # a late "1" does not start a recording
        assert Finished("customer hung up", False) in f.handle(Hangup(Leg.CUSTOMER))
    else:
        assert Bridge() not in out and f.state is State.ENDED
        assert HangupLeg(Leg.CUSTOMER, "the customer declined the recording" if how == "decline"
                         else "the customer did not answer the recording question") in out


def test_digits_during_the_announcement_do_not_count() -> None:
    f = DialIn(policy())
    f.handle(Started(MOBILE))
    keys(f, "4711#030123456#1")
    f.handle(CustomerAnswered())
    assert keys(f, "1", Leg.CUSTOMER) == [] and f.state is State.ANNOUNCING


def test_customer_hangs_up_during_the_announcement() -> None:
    f = DialIn(policy())
    f.handle(Started(MOBILE))
    keys(f, "4711#030123456#1")
    f.handle(CustomerAnswered())
    out = f.handle(Hangup(Leg.CUSTOMER))
    assert Finished("customer hung up before opting in", False) in out
    assert HangupLeg(Leg.ADVISOR, "customer hung up before opting in") in out


def test_recording_failure_alerts_and_ends_by_default() -> None:
    f = DialIn(policy())
    to_optin(f)
    keys(f, "1", Leg.CUSTOMER)
    out = f.handle(RecordingFailed(Leg.CUSTOMER))
    assert any(isinstance(a, Alert) and a.code == "recording_failed" for a in out)
    assert StopRecording() in out and f.state is State.ENDED


def test_customer_not_reached_returns_to_the_number() -> None:
    f = DialIn(policy())
    f.handle(Started(MOBILE))
    keys(f, "4711#030123456#1")
    f.handle(CustomerUnreachable("busy"))
    assert f.state is State.NUMBER


# ----------------------------------------------------------------------------- property tests

DIGITS = "0123456789*#"
events = st.one_of(
    st.builds(Dtmf, st.sampled_from(list(Leg)), st.sampled_from(list(DIGITS))),
    st.just(CustomerAnswered()),
    st.builds(CustomerUnreachable),
    st.builds(PlaybackDone, st.sampled_from(list(Leg)), st.sampled_from(["announcement-1", "announcement-9", "p-2", "x"])),
    st.builds(Timeout, st.sampled_from(["input", "optin", "other"])),
    st.builds(Hangup, st.sampled_from(list(Leg))),
    st.builds(RecordingFailed, st.sampled_from(list(Leg))),
)
# A prefix that reaches the opt-in question often, so that the random tail exercises it.
prefix = st.sampled_from([[], [Dtmf(Leg.ADVISOR, d) for d in "4711#030123456#1"] + [CustomerAnswered()]])


def check_trace(policy_: FlowPolicy, evs: list) -> None:
    f = DialIn(policy_)
    trace = [(None, a) for a in f.handle(Started(MOBILE))]
    for e in evs:
        if isinstance(e, PlaybackDone) and e.playback_id.startswith("announcement") and f.announcement_id:
            e = PlaybackDone(e.leg, f.announcement_id if e.playback_id == "announcement-1" else e.playback_id)
        trace += [(e, a) for a in f.handle(e)]
    opted_in = declined = False
    pin_ok = False
    dialled = 0
    for i, (ev, act) in enumerate(trace):
        if isinstance(act, Dial):
            dialled += 1
            assert pin_ok, "dialled before a correct PIN"
        if isinstance(act, Play) and act.media.startswith("sound:cf-mobile-enter-number"):
            pin_ok = True
        if isinstance(act, ConsentGiven):
            # The consent comes from a digit on the customer's leg, and only after the announcement.
            assert isinstance(ev, Dtmf) and ev.leg is Leg.CUSTOMER and ev.digit == policy_.opt_in_digit
            assert not declined
            opted_in = True
        if isinstance(act, Alert) and act.code in ("declined", "no_optin"):
            declined = True
        if isinstance(act, Record):
            assert opted_in and not declined, "recording without the customer's opt-in"
        if isinstance(act, Bridge) and not opted_in:
            assert declined and policy_.unrecorded == "continue", "customer audio before opt-in"
        if isinstance(act, Finished):
            assert all(not isinstance(a, Record | Bridge | Dial) for _, a in trace[i + 1:])
    assert f.pin_tries <= policy_.max_pin_tries
    assert sum(1 for _, a in trace if isinstance(a, Finished)) <= 1
    if f.state is State.ENDED:
        assert any(isinstance(a, Finished) for _, a in trace)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix, st.lists(events, max_size=40), st.sampled_from(["hangup", "continue"]))
def test_no_customer_audio_before_opt_in_in_any_event_order(pre: list, evs: list, unrecorded: str) -> None:
    check_trace(policy(unrecorded=unrecorded, fast=True), pre + evs)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="0123456789*#", min_size=0, max_size=6), max_size=6))
def test_pin_tries_never_exceed_three(entries: list[str]) -> None:
    f = DialIn(policy(fast=True))
    f.handle(Started(MOBILE))
    for e in entries:
        keys(f, e + "#")
    assert f.pin_tries <= 3
    if f.pin_tries == 3:
        assert f.state is State.ENDED
