"""Value types that cross the plugin boundary.

Every type here is a frozen attrs class, validated at construction and changed with
``attrs.evolve``. Nothing in this module imports ``cfcore``: a PBX vendor reads only this package.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs
from attrs import validators as v


def _aware(instance: object, attribute: attrs.Attribute[Any], value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{attribute.name} must be timezone-aware, got naive {value!r}")


def _nonempty(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value or not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


def _ip(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError as exc:
        raise ValueError(f"{attribute.name} is not an IP address: {value!r}") from exc


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    from types import MappingProxyType

    return MappingProxyType(dict(value or {}))


# --------------------------------------------------------------------------- capture


class Direction(enum.Enum):
    """Direction of a call as seen from the advisor."""

    INBOUND = "in"
    OUTBOUND = "out"
    INTERNAL = "internal"


class ChannelRole(enum.Enum):
    """Which voice a channel carries. Channels are never mixed."""

    ADVISOR = "advisor"
    CUSTOMER = "customer"


class RecordingMode(enum.Enum):
    """What the core asks a capture source to record.

    ``ADVISOR_ONLY`` is the mode from call start (works-council agreement): the customer's voice is
    not stored. ``BOTH`` follows the customer's consent. ``PAUSED`` stores neither voice (card
    data). ``STOP`` ends recording for the call.
    """

    ADVISOR_ONLY = "advisor_only"
    BOTH = "both"
    PAUSED = "paused"
    STOP = "stop"


class ConsentMethod(enum.Enum):
    """How the advisor triggered "record both sides" after informing the customer. Added in 1.1."""

    WEB = "web"
    API = "api"
    CLI = "cli"
    CTI = "cti"
    DTMF = "dtmf"
    DEMO = "demo"


class CallEventKind(enum.Enum):
    STARTED = "started"
    ANSWERED = "answered"
    HELD = "held"
    RESUMED = "resumed"
    TRANSFERRED = "transferred"
    ENDED = "ended"


@attrs.frozen(kw_only=True)
class CallEvent:
    """One thing the PBX said about a call, in CallFort's words.

    ``call_id`` is the PBX's id of the advisor leg that CallFort records (e.g. Asterisk's Linkedid
    plus the advisor channel); ``pbx_call_id`` the PBX's id of the whole call.
    """

    kind: CallEventKind = attrs.field(validator=v.instance_of(CallEventKind))
    call_id: str = attrs.field(validator=_nonempty)
    source: str = attrs.field(validator=_nonempty)
    at: datetime = attrs.field(validator=_aware)
    advisor_id: str | None = None
    customer_number: str | None = None
    customer_id: str | None = None
    direction: Direction | None = None
    pbx_call_id: str | None = None
    detail: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_mapping)


@attrs.frozen(kw_only=True)
class ModeSegment:
    """A stretch of a recording, in seconds from its start, and the mode in force during it."""

    start: float = attrs.field(validator=v.ge(0.0))
    end: float = attrs.field()
    mode: RecordingMode = attrs.field(validator=v.instance_of(RecordingMode))
    #: Where the switch into this mode could not be placed exactly: the PBX switched somewhere in
    #: ``[lo, hi]`` seconds and ``start`` is the fail-safe end of that window (``hi`` for a mode
    #: that keeps more, ``lo`` for one that keeps less). ``None``: exact. Added in 1.0.
    start_bounds: tuple[float, float] | None = attrs.field(default=None)

    @end.validator
    def _check_end(self, attribute: attrs.Attribute[float], value: float) -> None:
        if value < self.start:
            raise ValueError(f"segment ends ({value}) before it starts ({self.start})")

    @start_bounds.validator
    def _check_bounds(self, attribute: attrs.Attribute[Any], value: tuple[float, float] | None) -> None:
        if value is not None and not (len(value) == 2 and 0.0 <= value[0] <= value[1]):
            raise ValueError(f"start_bounds must be (lo, hi) with 0 <= lo <= hi, got {value!r}")


@attrs.frozen(kw_only=True)
class Consent:
    """The customer was informed and two-sided recording started.

    ``given_at`` is when the advisor acted (clicked, ran the command); ``offset`` is the position in
    the recording, in seconds, from which the customer's voice is kept; ``method`` how the advisor
    triggered it (a ``ConsentMethod``; its value as a string is accepted).
    """

    given_at: datetime = attrs.field(validator=_aware)
    offset: float = attrs.field(validator=v.ge(0.0))
    by_user: str = attrs.field(validator=_nonempty)
    method: ConsentMethod = attrs.field(converter=ConsentMethod)
    #: When the PBX confirmed the switch (``given_at`` is when the advisor acted). Added in 1.0.
    applied_at: datetime | None = attrs.field(default=None, validator=_aware)
    #: Evidence of the consent (e.g. a dial-in opt-in: announcement id, version and hash, the digit,
    #: times, the customer leg's id). Strings only; the core stores it encrypted with the recording's
    #: data key and shows it only through the access decision. Added in 1.0.
    proof: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_mapping)


@attrs.frozen(kw_only=True)
class ChannelFile:
    """A finished audio file holding one voice (e.g. what Asterisk MixMonitor wrote)."""

    role: ChannelRole = attrs.field(validator=v.instance_of(ChannelRole))
    path: Path = attrs.field(converter=Path)


def _strs(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _files(value: Iterable[ChannelFile]) -> tuple[ChannelFile, ...]:
    return tuple(value)


def _segments(value: Iterable[ModeSegment]) -> tuple[ModeSegment, ...]:
    return tuple(value)


def _consents(value: Iterable[Consent]) -> tuple[Consent, ...]:
    return tuple(value)



@attrs.frozen(kw_only=True)
class FinishedCall:
    """Everything a capture source hands the core when a call's files are complete.

    The core drops customer audio outside ``BOTH`` segments itself, so a source that could not mute
    at the PBX is still safe. It also checks every ``BOTH`` segment against the consents *it*
    recorded for the call (the advisor's "record both sides"): customer audio of a ``BOTH`` stretch
    that starts before the first consent is silenced up to that consent, and the refusal is
    audited (``recording.consent_refused``). ``consents`` given here by a capture source are not
    trusted for this check; only the core's own consent events are.
    """

    call_id: str = attrs.field(validator=_nonempty)
    source: str = attrs.field(validator=_nonempty)
    advisor_id: str = attrs.field(validator=_nonempty)
    started_at: datetime = attrs.field(validator=_aware)
    direction: Direction = attrs.field(validator=v.instance_of(Direction))
    files: tuple[ChannelFile, ...] = attrs.field(converter=_files)
    segments: tuple[ModeSegment, ...] = attrs.field(converter=_segments)
    consents: tuple[Consent, ...] = attrs.field(converter=_consents, factory=tuple)
    customer_numbers: tuple[str, ...] = attrs.field(converter=_strs, factory=tuple)
    customer_ids: tuple[str, ...] = attrs.field(converter=_strs, factory=tuple)
    pbx_call_id: str | None = None
    site: str | None = None


@attrs.frozen(kw_only=True)
class AudioFrame:
    """Live audio of one channel (SIPREC RTP, dial-in mobile recording).

    ``payload`` is raw samples in ``codec`` (``pcm_s16le``, ``pcmu``, ``pcma``) at ``sample_rate``;
    ``timestamp`` is seconds from the start of the call.
    """

    call_id: str = attrs.field(validator=_nonempty)
    role: ChannelRole = attrs.field(validator=v.instance_of(ChannelRole))
    timestamp: float = attrs.field(validator=v.ge(0.0))
    payload: bytes = attrs.field(validator=v.instance_of(bytes))
    codec: str = "pcm_s16le"
    sample_rate: int = 8000


@runtime_checkable
class CaptureSink(Protocol):
    """What the core hands a capture source. The source never touches the archive itself."""

    async def call_event(self, event: CallEvent) -> None:
        """Report a call event. Call start opens a recording in ``ADVISOR_ONLY``."""

    async def call_finished(self, call: FinishedCall) -> str:
        """Hand over the finished channel files; returns the archived recording id.

        Raises on failure: the source must then keep its files and try again later.
        """

    async def audio_frame(self, frame: AudioFrame) -> None:
        """Hand over live audio; encrypted into the spool segment by segment. The core keeps the
        customer's frames only after the consent it recorded."""


@runtime_checkable
class CaptureSource(Protocol):
    """A running connection to a PBX (or a recorder) that emits calls into a sink."""

    name: str
    #: True when the source can mute the customer's direction at the PBX; when False the core
    #: drops the customer's audio itself until consent.
    can_mute: bool

    async def run(self, sink: CaptureSink) -> None:
        """Run until ``stop()``; reconnect by itself when the PBX connection drops."""

    async def set_mode(self, call_id: str, mode: RecordingMode) -> bool:
        """Ask the PBX to record ``mode`` for the call; False when the call is unknown."""

    async def stop(self) -> None:
        """Stop and release the connection."""


# --------------------------------------------------------------------------- plugin context


@attrs.frozen(kw_only=True)
class PluginContext:
    """What the core hands a plugin's discovery hook: its config section and core services.

    ``config`` is the plugin's own section of ``callfort.toml`` with secrets already resolved.
    ``clock`` is the one injectable clock: plugins never call ``datetime.now()`` themselves.
    ``section`` is the dotted name of ``config`` (``plugins.crm_soap``), for messages; ``options``
    is ``config`` built into the class the plugin declares with ``cf_plugin_options`` (``None``
    without one). Both added in 1.2.
    """

    name: str = attrs.field(validator=_nonempty)
    config: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)
    clock: Callable[[], datetime]
    data_dir: Path = attrs.field(converter=Path)
    section: str = ""
    options: Any = None


@attrs.frozen(kw_only=True)
class CaptureSourceType:
    """Registration of a capture source kind, yielded by ``cf_capture_sources``. Added in 1.1.

    The core calls ``create(options, ctx)`` once at start of ``cf serve`` / ``cf capture run`` with
    the registering plugin's section ``[plugins.<plugin>]`` (built into ``options`` when the
    registration names an ``options`` class, else the section as a mapping); it returns the
    sources to run, or an empty list when the plugin is installed but not configured.
    """

    name: str = attrs.field(validator=_nonempty)
    create: Callable[[Any, PluginContext], list[CaptureSource]]
    options: type | None = None
    description: str = ""


# --------------------------------------------------------------------------- storage


@attrs.frozen(kw_only=True)
class ObjectInfo:
    key: str
    size: int
    retain_until: datetime | None = None
    legal_hold: bool = False


@runtime_checkable
class MediaStore(Protocol):
    """A place for opaque ciphertext objects. A store never sees plaintext or keys.

    Keys are relative slash-separated names (``ab/cd/<recording>.cfe``). ``put`` never overwrites
    an existing object (raises ``FileExistsError``) and is atomic: after a crash the object is
    either complete or absent.

    Optional (added in 1.1): ``batch()``, a context manager inside which puts may defer making
    their names durable (e.g. one directory fsync) to the end of the block; the core names the
    objects in the catalog only after the block. A store without it is used as before.
    """

    name: str

    def put(self, key: str, chunks: Iterator[bytes] | bytes, *, retain_until: datetime | None = None) -> int:
        """Store the object; returns its size in bytes."""

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of the object (``end=None``: to the end). KeyError when absent."""

    def delete(self, key: str) -> None:
        """Delete the object; KeyError when absent; PermissionError when it is locked."""

    def exists(self, key: str) -> bool: ...

    def stat(self, key: str) -> ObjectInfo:
        """Size and lock state; KeyError when absent."""

    def lock_until(self, key: str, until: datetime | None = None, *, legal_hold: bool | None = None) -> None:
        """Extend the retention lock (never shorten) and/or set the legal hold, where supported."""

    def keys(self, prefix: str = "") -> Iterator[str]:
        """All object keys below ``prefix``.

        Optional (added in 1.1), for stores that make deletes durable one by one (a directory
        fsync): ``delete(key, *, sync=False)`` defers that, ``sync_deletes()`` makes every deferred
        delete durable; the purge deletes a batch, then syncs once, then commits. Optional too:
        ``object_lock = False`` says the store never refuses a delete for a lock, so the purge
        does not ask it for every object's lock state."""


@attrs.frozen(kw_only=True)
class StoreType:
    """Registration of a store implementation, yielded by ``cf_media_stores``.

    ``create(options, ctx)`` builds a store from a ``[stores.<name>]`` config section.
    """

    name: str = attrs.field(validator=_nonempty)
    create: Callable[[Any, PluginContext], MediaStore]
    #: The options class (see ``hookspecs.options``): the section arrives built and checked.
    #: ``None``: ``create`` gets the section as a mapping (1.0 behaviour).
    options: type | None = None
    description: str = ""


class StoreFailure(Exception):
    """A store could not do what was asked. Base of the two errors below; a store raises these
    (besides ``KeyError``/``FileExistsError``/``PermissionError`` of the ``MediaStore`` protocol)
    so that the core can tell a failed copy from a bug. The message names the store, never a secret.
    """


class StoreUnavailable(StoreFailure):
    """The store cannot be reached, timed out or answered with a server error after its retries.

    Transient: the same call may succeed later. The core counts the copy as not confirmed and reads
    from another copy. Added in 1.0.
    """


class StoreMisconfigured(StoreFailure):
    """The store's options or its backend do not meet CallFort's needs (e.g. an S3 bucket without
    versioning or Object Lock, wrong credentials). The message says what to change. Added in 1.0.
    """


#: Problems of a ``BrokenCopy``: the catalogued copy is gone, or its bytes differ from the
#: ciphertext SHA-256 in the catalog.
BROKEN_COPY_PROBLEMS = ("missing", "damaged")


@attrs.frozen(kw_only=True)
class BrokenCopy:
    """A copy of a media object that a read or a store check found missing or damaged.

    ``healthy_stores`` are the stores that still hold a good copy (empty: none found);
    ``audit_seq`` is the ``store.copy_broken`` audit entry that recorded it. Ids only, no
    personal data. Added in 1.0.
    """

    store: str = attrs.field(validator=_nonempty)
    key: str = attrs.field(validator=_nonempty)
    problem: str = attrs.field(validator=v.in_(BROKEN_COPY_PROBLEMS))
    detected_at: datetime = attrs.field(validator=_aware)
    recording_id: str | None = None
    healthy_stores: tuple[str, ...] = attrs.field(converter=_strs, factory=tuple)
    audit_seq: int | None = None


# --------------------------------------------------------------------------- keys


@runtime_checkable
class KeyProvider(Protocol):
    """Key-encryption keys (KEKs) by id. Data keys never leave the core unwrapped."""

    name: str

    def current_kek_id(self) -> str: ...

    def wrap(self, kek_id: str, data_key: bytes, aad: bytes) -> bytes: ...

    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes:
        """Raises KeyError for an unknown or destroyed KEK."""

    def rotate(self) -> str:
        """Create a new current KEK and return its id; old KEKs stay for unwrapping."""


@attrs.frozen(kw_only=True)
class KeyProviderType:
    name: str = attrs.field(validator=_nonempty)
    create: Callable[[Any, PluginContext], KeyProvider]
    options: type | None = None
    description: str = ""


# --------------------------------------------------------------------------- access


@attrs.frozen(kw_only=True)
class Actor:
    """Who acts: a user with roles. ``user_id`` is the catalog id (``os:<name>`` before login)."""

    user_id: str = attrs.field(validator=_nonempty)
    username: str = attrs.field(validator=_nonempty)
    roles: frozenset[str] = attrs.field(converter=frozenset, factory=frozenset)
    advisor_id: str | None = None


@attrs.frozen(kw_only=True)
class RequestContext:
    """Every access is logged with user, PC host name, IP address and function."""

    actor: Actor
    host: str = attrs.field(validator=_nonempty)
    ip: str = attrs.field(validator=_ip)
    function: str = attrs.field(validator=_nonempty)
    #: The four-eyes approval under which this request runs, if any.
    approval_id: str | None = None


class Decision(enum.Enum):
    ALLOW = "allow"
    NEEDS_APPROVAL = "needs_approval"
    DENY = "deny"


@attrs.frozen(kw_only=True)
class AccessTarget:
    """What is accessed: ``kind`` is ``recording``, ``user``, ``audit``, ``subject``, …"""

    kind: str = attrs.field(validator=_nonempty)
    id: str | None = None
    owner_advisor_id: str | None = None
    attributes: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)


@attrs.frozen(kw_only=True)
class AccessDecision:
    decision: Decision = attrs.field(validator=v.instance_of(Decision))
    reason: str = ""
    by: str = ""


# --------------------------------------------------------------------------- recordings, retention


@attrs.frozen(kw_only=True)
class RecordingInfo:
    """A read-only view of a catalogued recording, without customer identifiers in clear."""

    id: str
    site: str
    source: str
    advisor_id: str
    direction: Direction
    started_at: datetime = attrs.field(validator=_aware)
    ended_at: datetime = attrs.field(validator=_aware)
    two_sided: bool
    retention_class: str
    legal_hold: bool = False
    subject_pseudonyms: tuple[str, ...] = attrs.field(converter=_strs, factory=tuple)
    state: str = "archived"


@attrs.frozen(kw_only=True)
class RetentionRule:
    """A duty to keep a recording: until ``keep_until`` on ``legal_basis``.

    The core keeps a recording until the latest ``keep_until`` of all rules that apply, and
    deletes it then unless a legal hold or a ``cf_before_purge`` veto stands.
    """

    name: str = attrs.field(validator=_nonempty)
    keep_until: datetime = attrs.field(validator=_aware)
    legal_basis: str = attrs.field(validator=_nonempty)
    purpose: str = ""
    #: A legal obligation to keep (e.g. MiFID II): retention is never shortened below it and
    #: Art. 17 erasure is refused while it runs. False: a permission (works agreement, consent).
    statutory: bool = False


@attrs.frozen(kw_only=True)
class Tombstone:
    """What remains of a deleted recording: no personal data in clear."""

    recording_id: str
    started_at: datetime
    ended_at: datetime
    deleted_at: datetime
    reason: str
    rule: str
    subject_pseudonyms: tuple[str, ...] = attrs.field(converter=_strs, factory=tuple)
    ciphertext_sha256: tuple[str, ...] = attrs.field(converter=_strs, factory=tuple)


# --------------------------------------------------------------------------- integrity, notification


class Severity(enum.Enum):
    INFO = "info"
    WARNING = "warning"
    HIGH = "high"
    CRITICAL = "critical"


@attrs.frozen(kw_only=True)
class Alert:
    """An irregularity for the DPO. ``evidence`` holds ids only (audit entry ids, object keys)."""

    id: str = attrs.field(validator=_nonempty)
    rule: str = attrs.field(validator=_nonempty)
    severity: Severity = attrs.field(validator=v.instance_of(Severity))
    summary: str = attrs.field(validator=_nonempty)
    raised_at: datetime = attrs.field(validator=_aware)
    evidence: tuple[str, ...] = attrs.field(converter=_strs, factory=tuple)


@attrs.frozen(kw_only=True)
class AuditView:
    """One audit entry as FIS rules see it."""

    seq: int
    at: datetime
    user: str
    host: str
    ip: str
    function: str
    action: str
    target_kind: str
    target_id: str | None
    outcome: str
    detail: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)


@attrs.frozen(kw_only=True)
class FisRule:
    """A detector over the audit stream. ``check(entries, now, options)`` yields
    ``(rule severity, summary, evidence)`` triples; the core turns them into alerts.
    """

    name: str = attrs.field(validator=_nonempty)
    description: str = attrs.field(validator=_nonempty)
    check: Callable[[tuple[AuditView, ...], datetime, Mapping[str, Any]], Iterator[tuple[Severity, str, tuple[str, ...]]]]
    default_options: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)


@runtime_checkable
class Notifier(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver the alert; raise on failure (the core retries until delivered)."""


@attrs.frozen(kw_only=True)
class NotifierType:
    name: str = attrs.field(validator=_nonempty)
    create: Callable[[Any, PluginContext], Notifier]
    options: type | None = None
    description: str = ""


# --------------------------------------------------------------------------- sync, transcription, integration


class SyncUnavailable(Exception):
    """The archive's inbox cannot be reached now (connection refused, cut, timed out, remote disk
    full). Transient: the core keeps everything and resumes at the next run. Added in 1.0."""


class SyncRefused(Exception):
    """The transport refuses to go on for a security reason: the archive's host key is not the
    pinned one, or the archive refused the site's client key. Not retried blindly: the core raises
    an FIS alert and an operator must look. Added in 1.0."""


@runtime_checkable
class SyncFile(Protocol):
    """A remote file open for writing (see ``SyncConnection.open_write``)."""

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class SyncConnection(Protocol):
    """An open session with the archive's inbox. Paths are relative to the inbox root and
    ``/``-separated; the core builds them from checked names only. Every method raises
    ``SyncUnavailable`` or ``SyncRefused`` for transport problems."""

    async def size(self, path: str) -> int | None:
        """Size of a file, None when it does not exist."""

    async def open_write(self, path: str, offset: int) -> SyncFile:
        """Open ``path`` for writing at ``offset`` (0: create or truncate; >0: resume an upload,
        the bytes before ``offset`` are kept)."""

    async def read(self, path: str, limit: int) -> bytes | None:
        """The whole file (at most ``limit`` bytes), None when it does not exist."""

    async def makedirs(self, path: str) -> None: ...

    async def rename(self, old: str, new: str) -> None:
        """Rename; the new name must not exist (an atomic hand-over of a finished upload)."""

    async def remove(self, path: str) -> None:
        """Remove a file or a whole directory tree; an absent path is fine."""

    async def close(self) -> None: ...


@runtime_checkable
class SyncTarget(Protocol):
    """Where a site ships its recordings at night (the central archive's inbox).

    The core owns the protocol (batches, manifests, receipts, resuming); a target only moves
    bytes. ``connect`` opens a session (host key pinned, client key only, no passwords)."""

    name: str

    async def connect(self) -> SyncConnection: ...


@attrs.frozen(kw_only=True)
class SyncTargetType:
    name: str = attrs.field(validator=_nonempty)
    create: Callable[[Any, PluginContext], SyncTarget]
    options: type | None = None
    description: str = ""


@attrs.frozen(kw_only=True)
class AudioClip:
    """Decrypted PCM handed to a transcriber; lives in memory only."""

    recording_id: str
    role: ChannelRole
    pcm_s16le: bytes
    sample_rate: int = 8000


@attrs.frozen(kw_only=True)
class TranscriptSegment:
    """A word or phrase with its time in seconds from the start of the clip (or, once merged by
    the core, of the recording) and whose voice it is (``None`` inside an engine's answer; the
    core fills in the channel's role)."""

    start: float = attrs.field(validator=v.ge(0.0))
    end: float = attrs.field()
    text: str = attrs.field(validator=v.instance_of(str))
    role: ChannelRole | None = None
    confidence: float | None = None

    @end.validator
    def _check_end(self, attribute: attrs.Attribute[float], value: float) -> None:
        if value < self.start:
            raise ValueError(f"transcript segment ends ({value}) before it starts ({self.start})")


def _tsegments(value: Iterable[TranscriptSegment]) -> tuple[TranscriptSegment, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class Transcript:
    """What an engine heard in one ``AudioClip``: the text and its timed words or phrases
    (``segments``, seconds from the start of the clip). Added in 1.0; ``segments`` in 1.1."""

    recording_id: str
    language: str
    text: str
    engine: str
    segments: tuple[TranscriptSegment, ...] = attrs.field(converter=_tsegments, factory=tuple)


class TranscriptionUnavailable(Exception):
    """An engine was asked for a language it is configured for but cannot serve now (e.g. the
    operator's model path is missing). The message says what to install or configure; the core
    records the refusal and does not try again until the configuration changes. Added in 1.1.
    """


@attrs.frozen(kw_only=True)
class WebApp:
    """An ASGI application mounted below ``path`` by ``cf serve``."""

    path: str = attrs.field(validator=_nonempty)
    app: Callable[..., Awaitable[None]]
    name: str = ""


# --------------------------------------------------------------------------- engine extensions


@attrs.frozen(kw_only=True)
class BackgroundJob:
    """A job ``cf serve`` runs next to the API, yielded by ``cf_background_jobs``. Added in 1.1.

    ``run(app)`` is a plain function (run in a worker thread) or a coroutine function (run on the
    server's event loop); it receives the running deployment (in-tree jobs use it; a plugin's job
    uses what its registration closed over and ignores it). ``interval_seconds > 0`` runs it every
    that many seconds, the first run at start-up; ``0`` runs it once at start-up (long-running
    services). A failing run is logged and retried at the next interval.

    ``scope`` (added for scale-out, issue 20) says where it runs when several ``cf serve`` workers share one
    catalog: ``"cluster"`` (the default) on one worker at a time — each run holds the lease
    ``job:<name>``, renewed while it runs; a worker that dies mid-run loses it after
    ``[server] lease_seconds`` and another worker runs the job; ``"worker"`` on every worker —
    for work that is per process, or that claims its own items (``cfcore.leases.claim``).
    """

    name: str = attrs.field(validator=_nonempty)
    interval_seconds: float = attrs.field(converter=float, validator=v.ge(0.0))
    run: Callable[[Any], Any]
    description: str = ""
    scope: str = attrs.field(default="cluster", validator=v.in_(("cluster", "worker")))


@attrs.frozen(kw_only=True)
class ApprovalAction:
    """A four-eyes action and what runs once it is approved, yielded by ``cf_approval_actions``.

    ``execute(app, ctx, target_id, params) -> dict`` runs under the approval (``ctx.approval_id``
    set) and returns a JSON-able result. ``fallback=True`` yields to another registration of the
    same name (a default that an area may replace); two non-fallback registrations of one name are
    an error. Added in 1.1.
    """

    name: str = attrs.field(validator=_nonempty)
    execute: Callable[[Any, RequestContext, str, dict[str, Any]], dict[str, Any]]
    target_kind: str | None = None
    description: str = ""
    fallback: bool = False
    #: yes/no parameters, checked strictly when the request is filed ("rewrap=flase" is refused
    #: then, not after two people approved it). Added in 1.1.
    flags: tuple[str, ...] = attrs.field(default=(), converter=_strs)


# --------------------------------------------------------------------------- integrations (CRM)


@attrs.frozen(kw_only=True)
class GatewayCaller:
    """Who asks through an integration such as the CRM: the acting user as the integration
    vouches for them (``username``), the PC host name and IP for the audit trail, the function
    (e.g. ``soap.crm.GetPlaybackLink``) and the integration (``via``, e.g. ``crm:main``).
    Added in 1.1."""

    username: str = attrs.field(validator=_nonempty)
    host: str = attrs.field(validator=_nonempty)
    ip: str = attrs.field(validator=_ip)
    function: str = attrs.field(validator=_nonempty)
    via: str = attrs.field(validator=_nonempty)


@attrs.frozen(kw_only=True)
class CallRecord:
    """Metadata of one archived call as an integration may show it: no customer identifier, no
    audio, no text. ``own`` is True when the acting user is the call's advisor. Added in 1.1."""

    id: str
    advisor_id: str
    started_at: datetime = attrs.field(validator=_aware)
    ended_at: datetime = attrs.field(validator=_aware)
    duration: float
    direction: Direction
    two_sided: bool
    transcript: bool
    own: bool


@attrs.frozen(kw_only=True)
class LinkGrant:
    """A signed, short-lived link for the acting user (``purpose`` ``play`` or ``transcript``).
    Opening it needs that user's own session as well. Added in 1.1."""

    url: str = attrs.field(validator=_nonempty)
    expires_at: datetime = attrs.field(validator=_aware)
    purpose: str = attrs.field(validator=_nonempty)


@attrs.frozen(kw_only=True)
class AccessRequestView:
    """A four-eyes request for access to a call, as its requester sees it. ``state`` is one of
    ``requested``, ``approved``, ``rejected``, ``expired``, ``executed``. Added in 1.1."""

    id: str
    call_id: str
    purpose: str
    state: str
    requested_at: datetime = attrs.field(validator=_aware)
    expires_at: datetime = attrs.field(validator=_aware)


#: Why a gateway refused; the integration maps each to one fault.
GATEWAY_REFUSALS = ("unknown-or-forbidden", "approval-required", "invalid", "unknown-user", "unavailable")


class GatewayRefusal(Exception):
    """A gateway call was refused. ``kind`` is one of ``GATEWAY_REFUSALS``: an unknown call and a
    call the user may not see are both ``unknown-or-forbidden`` (same answer, nothing revealed);
    ``approval-required`` means the user may ask for four-eyes access. Added in 1.1."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in GATEWAY_REFUSALS:
            raise ValueError(f"unknown refusal kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message


@runtime_checkable
class ArchiveGateway(Protocol):
    """What the core offers an integration plugin (handed over as the ``archive`` argument of
    ``cf_web_apps``). Every method runs as ``caller``'s user through the access
    decision and the audit trail, exactly as the API would; none returns audio or transcript text.
    Raises ``GatewayRefusal``. Added in 1.1."""

    def search_calls(self, caller: GatewayCaller, *, customer_id: str | None = None,
                     customer_number: str | None = None, since: datetime | None = None,
                     until: datetime | None = None, offset: int = 0, limit: int = 50) -> list[CallRecord]:
        """Calls the user may list (an advisor: their own), newest first, found by customer
        pseudonym."""

    def call_metadata(self, caller: GatewayCaller, call_id: str) -> CallRecord: ...

    def playback_link(self, caller: GatewayCaller, call_id: str, request_id: str | None = None) -> LinkGrant:
        """A streaming link; ``request_id`` names an approved four-eyes request of the user."""

    def transcript_link(self, caller: GatewayCaller, call_id: str, request_id: str | None = None) -> LinkGrant: ...

    def request_access(self, caller: GatewayCaller, call_id: str, purpose: str, reason: str) -> AccessRequestView:
        """File a four-eyes request (``purpose`` ``play`` or ``transcript``)."""

    def access_request_status(self, caller: GatewayCaller, request_id: str) -> AccessRequestView: ...
