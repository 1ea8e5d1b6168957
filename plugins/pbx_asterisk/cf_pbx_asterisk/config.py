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

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs


class AsteriskConfigError(ValueError):
    """The plugin section is incomplete or wrong; the message names the key."""


def _get(cfg: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None,
         required: bool = False) -> Any:
    if key not in cfg:
        if required:
            raise AsteriskConfigError(f"plugins.pbx_asterisk.{key} is required")
        return default
    value = cfg[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise AsteriskConfigError(f"plugins.pbx_asterisk.{key} must be {name}, got {type(value).__name__}")
    return value


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
        advisors = _get(cfg, "advisors", Mapping, {})
        for k, v in advisors.items():
            if not isinstance(v, str) or not v.strip():
                raise AsteriskConfigError(f"plugins.pbx_asterisk.advisors.{k!r} must be an advisor id (string)")
        tls = _get(cfg, "tls", bool, False)
        monitor_dir = _get(cfg, "monitor_dir", str, "/var/spool/asterisk/monitor/callfort").rstrip("/")
        if not monitor_dir.startswith("/"):
            raise AsteriskConfigError("plugins.pbx_asterisk.monitor_dir must be an absolute path (as Asterisk sees it)")
        if any(c in monitor_dir for c in "(),|'\"\\\r\n"):
            raise AsteriskConfigError("plugins.pbx_asterisk.monitor_dir must not contain ( ) , | quotes, "
                                      "backslashes or line breaks")
        recordings_dir = _get(cfg, "recordings_dir", str)
        sftp_host = _get(cfg, "sftp_host", str)
        if recordings_dir and sftp_host:
            raise AsteriskConfigError("set either plugins.pbx_asterisk.recordings_dir or sftp_host, not both")
        if not recordings_dir and not sftp_host:
            raise AsteriskConfigError(
                "plugins.pbx_asterisk needs recordings_dir (a directory shared with Asterisk) or sftp_host "
                "(pick the files up over SFTP)")
        sftp_username = _get(cfg, "sftp_username", str)
        sftp_key = _get(cfg, "sftp_key", str)
        sftp_password = _get(cfg, "sftp_password", str)
        sftp_known_hosts = _get(cfg, "sftp_known_hosts", str)
        if sftp_host:
            if not sftp_username:
                raise AsteriskConfigError("plugins.pbx_asterisk.sftp_username is required with sftp_host")
            if not (sftp_key or sftp_password):
                raise AsteriskConfigError("plugins.pbx_asterisk.sftp_key or sftp_password is required with sftp_host")
            if not sftp_known_hosts:
                raise AsteriskConfigError(
                    "plugins.pbx_asterisk.sftp_known_hosts is required with sftp_host (the Asterisk host's SSH key)")
        return cls(
            name=_get(cfg, "name", str, "asterisk"),
            host=_get(cfg, "host", str, required=True),
            port=_get(cfg, "port", int, 5039 if tls else 5038),
            username=_get(cfg, "username", str, required=True),
            secret=_get(cfg, "secret", str, required=True),  # the core's Secret keeps its repr masked
            md5=_get(cfg, "md5", bool, False),
            tls=tls,
            tls_ca=Path(cfg["tls_ca"]) if _get(cfg, "tls_ca", str) else None,
            tls_verify=_get(cfg, "tls_verify", bool, True),
            tls_server_name=_get(cfg, "tls_server_name", str),
            advisors=dict(advisors),
            monitor_dir=monitor_dir,
            recordings_dir=Path(recordings_dir) if recordings_dir else None,
            sftp_host=sftp_host,
            sftp_port=_get(cfg, "sftp_port", int, 22),
            sftp_username=sftp_username,
            sftp_password=str(sftp_password) if sftp_password else None,
            sftp_key=Path(sftp_key) if sftp_key else None,
            sftp_known_hosts=Path(sftp_known_hosts) if sftp_known_hosts else None,
            sftp_dir=_get(cfg, "sftp_dir", str, monitor_dir).rstrip("/") or "/",
            record_internal=_get(cfg, "record_internal", bool, False),
            done_marker=_get(cfg, "done_marker", bool, False),
            settle_seconds=_get(cfg, "settle_seconds", float, 2.0),
            pickup_timeout=_get(cfg, "pickup_timeout", float, 120.0),
            ping_interval=_get(cfg, "ping_interval", float, 20.0),
            action_timeout=_get(cfg, "action_timeout", float, 10.0),
            reconnect_min=_get(cfg, "reconnect_min", float, 0.5),
            reconnect_max=_get(cfg, "reconnect_max", float, 30.0),
            retry_seconds=_get(cfg, "retry_seconds", float, 10.0),
            max_message=_get(cfg, "max_message", int, 64 * 1024),
            write_buffer=_write_buffer(cfg),
            site=_get(cfg, "site", str),
            advisor_variable=_advisor_variable(cfg),
            ons_advisors=frozenset(str(a) for a in _get(cfg, "ons_advisors", list, [])),
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


def _advisor_variable(cfg: Mapping[str, Any]) -> str | None:
    import re

    value = _get(cfg, "advisor_variable", str)
    if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", value):
        raise AsteriskConfigError("plugins.pbx_asterisk.advisor_variable must be a channel variable name "
                                  "(letters, digits, '_')")
    return value


def _write_buffer(cfg: Mapping[str, Any]) -> int:
    """Bytes Asterisk may hold unflushed per file (its stdio buffer): glibc uses the file system's
    block size up to BUFSIZ = 8192, musl 1024. The default covers both."""
    value = _get(cfg, "write_buffer", int, 8192)
    if not 0 <= value <= 1 << 20:
        raise AsteriskConfigError("plugins.pbx_asterisk.write_buffer must be between 0 and 1048576 bytes")
    return int(value)


def endpoint_of(channel_name: str) -> str:
    """``PJSIP/100-00000001`` → ``PJSIP/100`` (the part before the last dash)."""
    base, sep, suffix = channel_name.rpartition("-")
    return base if sep and suffix else channel_name
