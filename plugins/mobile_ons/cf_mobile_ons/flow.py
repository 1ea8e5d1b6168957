"""The dial-in flow of a mobile advisor as a pure state machine (no I/O, no clock).

The driver (``cf_mobile_ons.stasis``) turns ARI events into ``Event`` objects, feeds them to
``DialIn.handle`` and carries out the returned ``Action`` objects. Everything the machine needs to
decide (PIN check, lock-outs, the daily cap) is handed in as plain callables in ``FlowPolicy``.

The flow::

    advisor calls the dial-in number ─ answered
      caller id known?  yes → PIN          no → advisor number, then PIN   (PIN always required)
      PIN: digits + '#', 3 tries, then lock-out + alert; hash checked by the policy (argon2)
      customer number: digits + '#' (0… national, 00… international) → E.164, allow-list,
        premium/short numbers refused; read back; '1' confirms, '2' re-enters
      daily cap per advisor (toll fraud) → refused + alert
      customer leg dialled; on answer the versioned announcement is played to the customer only
      opt-in digit **on the customer's leg** (advisor digits never count) → bridge + record
      decline digit / silence → no recording; hang up or continue unrecorded (policy), alert

Invariant (tested with Hypothesis over arbitrary event orders): no ``Record`` before the
customer's opt-in digit, never a ``Record`` after a decline, and the legs are bridged before an
opt-in only when the policy lets a declined call continue unrecorded.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping

import attrs

from .numbers import NumberPolicy, NumberRefused, check_number, spoken_digits


class Leg(enum.Enum):
    ADVISOR = "advisor"
    CUSTOMER = "customer"


class State(enum.Enum):
    NEW = "new"
    ADVISOR_ID = "advisor_id"
    PIN = "pin"
    NUMBER = "number"
    CONFIRM = "confirm"
    DIALING = "dialing"
    ANNOUNCING = "announcing"
    AWAIT_OPTIN = "await_optin"
    RECORDING = "recording"
    UNRECORDED = "unrecorded"
    ENDED = "ended"


# ----------------------------------------------------------------------------- events


@attrs.frozen
class Started:
    """The advisor's call entered the Stasis application."""

    caller_id: str | None = None


@attrs.frozen
class Dtmf:
    leg: Leg
    digit: str


@attrs.frozen
class CustomerAnswered:
    pass


@attrs.frozen
class CustomerUnreachable:
    reason: str = "no answer"


@attrs.frozen
class PlaybackDone:
    leg: Leg
    playback_id: str


@attrs.frozen
class Timeout:
    name: str


@attrs.frozen
class Hangup:
    leg: Leg


@attrs.frozen
class RecordingFailed:
    leg: Leg


Event = Started | Dtmf | CustomerAnswered | CustomerUnreachable | PlaybackDone | Timeout | Hangup | RecordingFailed

# ----------------------------------------------------------------------------- actions


@attrs.frozen
class Answer:
    pass


@attrs.frozen
class Play:
    leg: Leg
    media: str
    playback_id: str


@attrs.frozen
class StartTimer:
    name: str
    seconds: float


@attrs.frozen
class CancelTimer:
    name: str


@attrs.frozen
class Dial:
    number: str


@attrs.frozen
class Bridge:
    pass


@attrs.frozen
class Record:
    """Record each leg on its own channel (only ever after the customer's opt-in)."""


@attrs.frozen
class StopRecording:
    pass


@attrs.frozen
class HangupLeg:
    leg: Leg
    reason: str


@attrs.frozen
class Alert:
    code: str
    summary: str


@attrs.frozen
class ConsentGiven:
    digit: str


@attrs.frozen
class Finished:
    reason: str
    recorded: bool


Action = (Answer | Play | StartTimer | CancelTimer | Dial | Bridge | Record | StopRecording | HangupLeg | Alert
          | ConsentGiven | Finished)

# ----------------------------------------------------------------------------- policy


@attrs.frozen(kw_only=True)
class Announcement:
    """The versioned text the customer hears; ``sha256`` of the audio file played."""

    id: str
    version: str
    media: str
    sha256: str


@attrs.frozen(kw_only=True)
class FlowPolicy:
    #: the advisor's mobile number (E.164) → advisor id: a pre-selection only, never proof
    mobiles: Mapping[str, str]
    #: (advisor id, PIN) → True when the PIN matches the stored hash (unknown id: False)
    verify_pin: Callable[[str, str], bool]
    #: advisor id → True while locked out after repeated failures
    is_locked: Callable[[str], bool]
    #: advisor id → customer calls already dialled today
    calls_today: Callable[[str], int]
    announcement: Announcement
    numbers: NumberPolicy = NumberPolicy()
    daily_cap: int = 20
    opt_in_digit: str = "1"
    decline_digit: str = "2"
    #: after a decline, silence or a recording failure: "hangup" or "continue" (unrecorded)
    unrecorded: str = "hangup"
    max_pin_tries: int = 3
    max_number_tries: int = 3
    input_timeout: float = 20.0
    optin_timeout: float = 20.0
    max_digits: int = 20

    def __attrs_post_init__(self) -> None:
        if self.unrecorded not in ("hangup", "continue"):
            raise ValueError("unrecorded must be 'hangup' or 'continue'")
        if self.opt_in_digit == self.decline_digit or not (
                len(self.opt_in_digit) == 1 and len(self.decline_digit) == 1
                and self.opt_in_digit in "0123456789*#" and self.decline_digit in "0123456789*#"):
            raise ValueError("opt_in_digit and decline_digit must be two different DTMF digits")


# ----------------------------------------------------------------------------- machine


class DialIn:
    """One dial-in call. ``handle(event)`` returns the actions to carry out, in order."""

    def __init__(self, policy: FlowPolicy) -> None:
        self.p = policy
        self.state = State.NEW
        self.caller_id: str | None = None
        self.advisor_id: str | None = None
        self.candidate: str | None = None
        self.pin_tries = 0
        self.number_tries = 0
        self.buffer = ""
        self.number: str | None = None
        self.consent_digit: str | None = None
        self.end_reason: str | None = None
        self.recorded = False
        self.ignored_advisor_digits = 0
        self._seq = 0
        self.announcement_id: str | None = None

    # ------------------------------------------------------------------ helpers
    def _pid(self, what: str) -> str:
        self._seq += 1
        return f"{what}-{self._seq}"

    def _prompt(self, media: str, leg: Leg = Leg.ADVISOR) -> Play:
        return Play(leg, media, self._pid("p"))

    def _end(self, reason: str, *hangups: Leg) -> list[Action]:
        out: list[Action] = [CancelTimer("input"), CancelTimer("optin")]
        if self.state is State.RECORDING:
            out.append(StopRecording())
        out += [HangupLeg(leg, reason) for leg in hangups]
        out.append(Finished(reason, self.recorded))
        self.state, self.end_reason = State.ENDED, reason
        return out

    def _ask(self, state: State, media: str) -> list[Action]:
        self.state, self.buffer = state, ""
        return [self._prompt(media), StartTimer("input", self.p.input_timeout)]

    # ------------------------------------------------------------------ entry
    def handle(self, event: Event) -> list[Action]:
        if self.state is State.ENDED:
            return []
        if isinstance(event, Hangup):
            return self._hangup(event.leg)
        if isinstance(event, Dtmf) and (len(event.digit) != 1 or event.digit not in "0123456789*#ABCD"):
            return []  # not a DTMF digit: ignored, never interpreted
        handler = getattr(self, f"_on_{self.state.value}")
        out: list[Action] = handler(event)
        return out

    def _hangup(self, leg: Leg) -> list[Action]:
        s = self.state
        if leg is Leg.ADVISOR:
            if s in (State.DIALING, State.ANNOUNCING, State.AWAIT_OPTIN, State.RECORDING, State.UNRECORDED):
                return self._end("advisor hung up", Leg.CUSTOMER)
            return self._end("advisor hung up")
        # the customer's leg
        if s in (State.ANNOUNCING, State.AWAIT_OPTIN):
            return [self._prompt("sound:cf-mobile-customer-gone")] + self._end(
                "customer hung up before opting in", Leg.ADVISOR)
        if s is State.DIALING:
            return self._on_dialing(CustomerUnreachable("customer leg ended"))
        if s in (State.RECORDING, State.UNRECORDED):
            return self._end("customer hung up", Leg.ADVISOR)
        return []

    # ------------------------------------------------------------------ states
    def _on_new(self, event: Event) -> list[Action]:
        if not isinstance(event, Started):
            return []
        self.caller_id = event.caller_id
        self.candidate = self.p.mobiles.get(event.caller_id or "")
        out: list[Action] = [Answer()]
        if self.candidate is not None:
            self.advisor_id = self.candidate
            return out + self._ask(State.PIN, "sound:cf-mobile-enter-pin")
        return out + self._ask(State.ADVISOR_ID, "sound:cf-mobile-enter-advisor")

    def _collect(self, event: Event) -> str | None | list[Action]:
        """Digits of the advisor's leg up to '#': the entry, None while collecting, or actions."""
        if isinstance(event, Timeout) and event.name == "input":
            return self._end("no input from the advisor", Leg.ADVISOR)
        if not isinstance(event, Dtmf) or event.leg is not Leg.ADVISOR:
            return None
        if event.digit == "#":
            entry, self.buffer = self.buffer, ""
            return entry
        if event.digit == "*":
            self.buffer = ""
            return None
        if event.digit in "0123456789":
            self.buffer += event.digit
            if len(self.buffer) > self.p.max_digits:
                self.buffer = ""
                return "!"  # overlong: refused like a wrong entry
        return None

    def _on_advisor_id(self, event: Event) -> list[Action]:
        got = self._collect(event)
        if got is None or isinstance(got, list):
            return got or []
        self.advisor_id = got or None
        return self._ask(State.PIN, "sound:cf-mobile-enter-pin")

    def _on_pin(self, event: Event) -> list[Action]:
        got = self._collect(event)
        if got is None or isinstance(got, list):
            return got or []
        adv = self.advisor_id or ""
        locked = bool(adv) and self.p.is_locked(adv)
        ok = bool(adv) and not locked and got != "!" and self.p.verify_pin(adv, got)
        if ok:
            self.number_tries = 0
            return [CancelTimer("input")] + self._ask(State.NUMBER, "sound:cf-mobile-enter-number")
        self.pin_tries += 1
        if locked:
            return [Alert("pin_locked", "dial-in attempt for a locked-out advisor"),
                    self._prompt("sound:cf-mobile-locked")] + self._end("advisor locked out", Leg.ADVISOR)
        if self.pin_tries >= self.p.max_pin_tries:
            return [Alert("pin_failed", f"{self.pin_tries} wrong PINs on the mobile dial-in"),
                    self._prompt("sound:cf-mobile-pin-failed")] + self._end("wrong PIN", Leg.ADVISOR)
        return self._ask(State.PIN, "sound:cf-mobile-pin-wrong")

    def _on_number(self, event: Event) -> list[Action]:
        got = self._collect(event)
        if got is None or isinstance(got, list):
            return got or []
        try:
            self.number = check_number(got, self.p.numbers)
        except NumberRefused as exc:
            self.number_tries += 1
            out: list[Action] = []
            if exc.reason in ("blocked", "not_allowed"):
                out.append(Alert("number_refused", f"mobile dial-in: a {exc.reason.replace('_', ' ')} number was keyed"))
            if self.number_tries >= self.p.max_number_tries:
                return out + [self._prompt("sound:cf-mobile-number-refused")] + self._end(
                    "no dialable number", Leg.ADVISOR)
            return out + self._ask(State.NUMBER, "sound:cf-mobile-number-refused")
        self.state = State.CONFIRM
        return [self._prompt(f"digits:{spoken_digits(self.number)}"), self._prompt("sound:cf-mobile-confirm-number"),
                StartTimer("input", self.p.input_timeout)]

    def _on_confirm(self, event: Event) -> list[Action]:
        if isinstance(event, Timeout) and event.name == "input":
            return self._end("no input from the advisor", Leg.ADVISOR)
        if not isinstance(event, Dtmf) or event.leg is not Leg.ADVISOR:
            return []
        if event.digit == "2":
            return self._ask(State.NUMBER, "sound:cf-mobile-enter-number")
        if event.digit != "1":
            return []
        assert self.advisor_id is not None and self.number is not None
        if self.p.calls_today(self.advisor_id) >= self.p.daily_cap:
            return [Alert("daily_cap", f"mobile dial-in: daily cap of {self.p.daily_cap} customer calls reached"),
                    self._prompt("sound:cf-mobile-cap-reached")] + self._end("daily cap reached", Leg.ADVISOR)
        self.state = State.DIALING
        return [CancelTimer("input"), Dial(self.number), self._prompt("sound:cf-mobile-dialing")]

    def _on_dialing(self, event: Event) -> list[Action]:
        if isinstance(event, CustomerAnswered):
            self.state = State.ANNOUNCING
            play = Play(Leg.CUSTOMER, self.p.announcement.media, self._pid("announcement"))
            self.announcement_id = play.playback_id
            return [self._prompt("sound:cf-mobile-customer-informed"), play]
        if isinstance(event, CustomerUnreachable):
            self.number_tries += 1
            if self.number_tries >= self.p.max_number_tries:
                return [self._prompt("sound:cf-mobile-not-reached")] + self._end("customer not reached", Leg.ADVISOR)
            return [self._prompt("sound:cf-mobile-not-reached")] + self._ask(State.NUMBER, "sound:cf-mobile-enter-number")
        if isinstance(event, Dtmf) and event.leg is Leg.ADVISOR:
            self.ignored_advisor_digits += 1
        return []

    def _on_announcing(self, event: Event) -> list[Action]:
        if isinstance(event, PlaybackDone) and event.leg is Leg.CUSTOMER and event.playback_id == self.announcement_id:
            self.state = State.AWAIT_OPTIN
            return [StartTimer("optin", self.p.optin_timeout)]
        if isinstance(event, Dtmf) and event.leg is Leg.ADVISOR:
            self.ignored_advisor_digits += 1
        # digits during the announcement are not an answer: the customer has not heard it all
        return []

    def _on_await_optin(self, event: Event) -> list[Action]:
        if isinstance(event, Dtmf):
            if event.leg is not Leg.CUSTOMER:
                self.ignored_advisor_digits += 1
                return []
            if event.digit == self.p.opt_in_digit:
                self.consent_digit = event.digit
                self.state, self.recorded = State.RECORDING, True
                return [CancelTimer("optin"), ConsentGiven(event.digit), Bridge(), Record()]
            if event.digit == self.p.decline_digit:
                return self._unrecorded("declined", "the customer declined the recording")
            return []
        if isinstance(event, Timeout) and event.name == "optin":
            return self._unrecorded("no_optin", "the customer did not answer the recording question")
        return []

    def _unrecorded(self, code: str, summary: str) -> list[Action]:
        out: list[Action] = [CancelTimer("optin"), Alert(code, f"mobile dial-in: {summary}; no recording")]
        if self.p.unrecorded == "continue":
            self.state = State.UNRECORDED
            return out + [self._prompt("sound:cf-mobile-unrecorded"), Bridge()]
        return out + [self._prompt("sound:cf-mobile-unrecorded-end"),
                      self._prompt("sound:cf-mobile-unrecorded-end", Leg.CUSTOMER)] + self._end(
            summary, Leg.CUSTOMER, Leg.ADVISOR)

    def _on_recording(self, event: Event) -> list[Action]:
        if isinstance(event, RecordingFailed):
            out: list[Action] = [Alert("recording_failed", f"mobile dial-in: the {event.leg.value}'s recording failed")]
            if self.p.unrecorded == "continue":
                self.state = State.UNRECORDED
                return out + [StopRecording(), self._prompt("sound:cf-mobile-recording-failed")]
            return out + [self._prompt("sound:cf-mobile-recording-failed")] + self._end(
                "recording failed", Leg.CUSTOMER, Leg.ADVISOR)
        return []

    def _on_unrecorded(self, event: Event) -> list[Action]:
        return []
