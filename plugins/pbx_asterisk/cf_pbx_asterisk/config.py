"""The ``[plugins.pbx_asterisk]`` section, validated into a frozen settings object.

Example::

    [plugins.pbx_asterisk]
    host = "pbx.example.internal"
    port = 5039
    username = "callfort"
    secret = { env = "CF_AMI_SECRET" }
    md5 = true                       # MD5 challenge login instead of the plain secret
    tls = true                       # AMI over TLS (tlsenable in manager.conf)
    tls_ca = "/etc/callfort/pbx-ca.pem"
    monitor_dir = "/var/spool/asterisk/monitor/callfort"   # as Asterisk sees it
    recordings_dir = "/mnt/pbx-monitor/callfort"          # the same directory, shared with us
    # or, instead of recordings_dir, SFTP from the Asterisk host:
    # sftp_host = "pbx.example.internal"
    # sftp_username = "callfort"
    # sftp_key = "/etc/callfort/pbx_sftp_ed25519"
    # sftp_known_hosts = "/etc/callfort/pbx_known_hosts"
    [plugins.pbx_asterisk.advisors]
    "PJSIP/100" = "A100"
    "PJSIP/101" = "A101"
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from hookspecs.options import OptionsError, Secret, parse_options

WHERE = "plugins.pbx_asterisk"


class AsteriskConfigError(ValueError):
    """The plugin section is incomplete or wrong; the message names the key."""


@attrs.frozen(kw_only=True)
class AsteriskOptions:
    """``[plugins.pbx_asterisk]`` as written, typed; the core builds it with
    ``hookspecs.parse_options`` (unknown keys, wrong types and secrets in clear refused with the
    key named). ``AsteriskSettings.from_options`` adds what depends on several keys."""

    name: str = "asterisk"
    #: without a host the plugin is installed but idle
    host: str | None = None
    port: int | None = None
    username: str | None = None
    secret: Secret | None = attrs.field(default=None, repr=False)
    md5: bool = False
    tls: bool = False
    tls_ca: Path | None = None
    tls_verify: bool = True
    tls_server_name: str | None = None
    advisors: Mapping[str, str] = attrs.field(factory=dict)
    monitor_dir: str = "/var/spool/asterisk/monitor/callfort"
    recordings_dir: Path | None = None
    sftp_host: str | None = None
    sftp_port: int = 22
    sftp_username: str | None = None
    sftp_password: Secret | None = attrs.field(default=None, repr=False)
    sftp_key: Path | None = None
    sftp_known_hosts: Path | None = None
    sftp_dir: str | None = None
    record_internal: bool = False
    done_marker: bool = False
    settle_seconds: float = 2.0
    pickup_timeout: float = 120.0
    ping_interval: float = 20.0
    action_timeout: float = 10.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    retry_seconds: float = 10.0
    max_message: int = 64 * 1024
    #: Bytes Asterisk may hold unflushed per file (its stdio buffer): glibc uses the file system's
    #: block size up to BUFSIZ = 8192, musl 1024. The default covers both.
    write_buffer: int = 8192
    site: str | None = None
    advisor_variable: str | None = None
    ons_advisors: list[str] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class AsteriskSettings:
    name: str
    host: str
    port: int
    username: str
    secret: str = attrs.field(repr=False)
    md5: bool
    tls: bool
    tls_ca: Path | None
    tls_verify: bool
    tls_server_name: str | None
    advisors: Mapping[str, str]
    monitor_dir: str
    recordings_dir: Path | None
    sftp_host: str | None
    sftp_port: int
    sftp_username: str | None
    sftp_password: str | None = attrs.field(repr=False)
    sftp_key: Path | None
    sftp_known_hosts: Path | None
    sftp_dir: str
    record_internal: bool
    done_marker: bool
    settle_seconds: float
    pickup_timeout: float
    ping_interval: float
    action_timeout: float
    reconnect_min: float
    reconnect_max: float
    retry_seconds: float
    max_message: int
    write_buffer: int
    site: str | None
    #: ONS: a channel variable the dialplan sets on a mobile leg routed through the PBX, naming the
    #: advisor (never the caller id); accepted values: the advisor ids below and ``ons_advisors``
    advisor_variable: str | None = None
    ons_advisors: frozenset[str] = frozenset()

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> AsteriskSettings:
        """Settings from a section as a mapping (what ``[plugins.pbx_asterisk]`` holds)."""
        try:
            return cls.from_options(parse_options(AsteriskOptions, cfg, where=WHERE))
        except OptionsError as exc:
            raise AsteriskConfigError(str(exc)) from None

    @classmethod
    def from_options(cls, o: AsteriskOptions) -> AsteriskSettings:
        """The checks that involve several keys or a value's form; each message names the key."""
        for k, v in o.advisors.items():
            if not v.strip():
                raise AsteriskConfigError(f"{WHERE}.advisors.{k!r} must be an advisor id (string)")
        for key in ("host", "username", "secret"):
            if not getattr(o, key):
                raise AsteriskConfigError(f"{WHERE}.{key} is required")
        assert o.host and o.username and o.secret
        monitor_dir = o.monitor_dir.rstrip("/")
        if not monitor_dir.startswith("/"):
            raise AsteriskConfigError(f"{WHERE}.monitor_dir must be an absolute path (as Asterisk sees it)")
        if any(c in monitor_dir for c in "(),|'\"\\\r\n"):
            raise AsteriskConfigError(f"{WHERE}.monitor_dir must not contain ( ) , | quotes, "
                                      "backslashes or line breaks")
        if o.recordings_dir and o.sftp_host:
            raise AsteriskConfigError(f"set either {WHERE}.recordings_dir or sftp_host, not both")
        if not o.recordings_dir and not o.sftp_host:
            raise AsteriskConfigError(
                f"{WHERE} needs recordings_dir (a directory shared with Asterisk) or sftp_host "
                "(pick the files up over SFTP)")
        if o.sftp_host:
            if not o.sftp_username:
                raise AsteriskConfigError(f"{WHERE}.sftp_username is required with sftp_host")
            if not (o.sftp_key or o.sftp_password):
                raise AsteriskConfigError(f"{WHERE}.sftp_key or sftp_password is required with sftp_host")
            if not o.sftp_known_hosts:
                raise AsteriskConfigError(
                    f"{WHERE}.sftp_known_hosts is required with sftp_host (the Asterisk host's SSH key)")
        if o.advisor_variable is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", o.advisor_variable):
            raise AsteriskConfigError(f"{WHERE}.advisor_variable must be a channel variable name (letters, digits, '_')")
        if not 0 <= o.write_buffer <= 1 << 20:
            raise AsteriskConfigError(f"{WHERE}.write_buffer must be between 0 and 1048576 bytes")
        return cls(
            name=o.name, host=o.host, port=o.port if o.port is not None else 5039 if o.tls else 5038,
            username=o.username, secret=o.secret, md5=o.md5, tls=o.tls, tls_ca=o.tls_ca, tls_verify=o.tls_verify,
            tls_server_name=o.tls_server_name, advisors=dict(o.advisors), monitor_dir=monitor_dir,
            recordings_dir=o.recordings_dir, sftp_host=o.sftp_host, sftp_port=o.sftp_port,
            sftp_username=o.sftp_username, sftp_password=o.sftp_password, sftp_key=o.sftp_key,
            sftp_known_hosts=o.sftp_known_hosts, sftp_dir=(o.sftp_dir or monitor_dir).rstrip("/") or "/",
            record_internal=o.record_internal, done_marker=o.done_marker, settle_seconds=o.settle_seconds,
            pickup_timeout=o.pickup_timeout, ping_interval=o.ping_interval, action_timeout=o.action_timeout,
            reconnect_min=o.reconnect_min, reconnect_max=o.reconnect_max, retry_seconds=o.retry_seconds,
            max_message=o.max_message, write_buffer=o.write_buffer, site=o.site,
            advisor_variable=o.advisor_variable, ons_advisors=frozenset(o.ons_advisors),
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.tls_ca) if self.tls_ca else None)
        if not self.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def ons_advisor(self, variable: str, value: str) -> str | None:
        """The advisor a dialplan-set channel variable names (ONS), if it is ours and known."""
        if not self.advisor_variable or variable != self.advisor_variable:
            return None
        value = value.strip()
        return value if value in set(self.advisors.values()) | self.ons_advisors else None

    def advisor_for(self, channel_name: str) -> str | None:
        """The advisor id of a channel: by endpoint (``PJSIP/100``) or bare resource (``100``)."""
        endpoint = endpoint_of(channel_name)
        if endpoint in self.advisors:
            return self.advisors[endpoint]
        resource = endpoint.split("/", 1)[-1]
        return self.advisors.get(resource)


def endpoint_of(channel_name: str) -> str:
    """``PJSIP/100-00000001`` → ``PJSIP/100`` (the part before the last dash)."""
    base, sep, suffix = channel_name.rpartition("-")
    return base if sep and suffix else channel_name
