"""Who runs a CLI command, from which PC and IP: every command records it."""

from __future__ import annotations

import getpass
import socket

from hookspecs.types import Actor, RequestContext


def local_host_and_ip() -> tuple[str, str]:
    host = socket.gethostname() or "localhost"
    try:
        # The address this PC would use to reach the network (no packet is sent for UDP connect).
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("127.0.0.1", 9))
            ip = s.getsockname()[0]
    except OSError:
        ip = "127.0.0.1"
    try:
        resolved = socket.gethostbyname(host)
        if not resolved.startswith("127."):
            ip = resolved
    except OSError:
        pass
    return host, ip


def cli_context(app: object, function: str) -> RequestContext:
    """The request context of the person at the terminal.

    Until user management authenticates the CLI (``--user`` / ``CF_USER``), the operating-system
    user is recorded.
    """
    host, ip = local_host_and_ip()
    user = getpass.getuser()
    actor = Actor(user_id=f"os:{user}", username=user, roles=frozenset({"administrator"}))
    return RequestContext(actor=actor, host=host, ip=ip, function=function)
