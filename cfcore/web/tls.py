"""TLS for ``cf serve`` straight from uvicorn, with optional client certificates (mutual TLS).

``[server] tls_cert`` / ``tls_key`` (PEM files) turn on HTTPS; ``tls_client_ca`` (PEM with the CA
that signed the CRM's client certificates) makes a client certificate **required**: a peer without
one signed by that CA cannot even connect. The key file must not be readable by others (0600).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..app import App


def tls_options(app: App) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` (empty: plain HTTP)."""
    cfg = app.config
    cert = cfg.get("server.tls_cert", str, "")
    key = cfg.get("server.tls_key", str, "")
    ca = cfg.get("server.tls_client_ca", str, "")
    if not cert and not key:
        if ca:
            raise ConfigError(f"{cfg.path}: server.tls_client_ca needs server.tls_cert and server.tls_key")
        return {}
    if not cert or not key:
        raise ConfigError(f"{cfg.path}: set both server.tls_cert and server.tls_key")
    paths = {"tls_cert": cfg.resolve_path(cert), "tls_key": cfg.resolve_path(key)}
    if ca:
        paths["tls_client_ca"] = cfg.resolve_path(ca)
    for name, path in paths.items():
        if not path.is_file():
            raise ConfigError(f"{cfg.path}: server.{name} {path} does not exist")
    if paths["tls_key"].stat().st_mode & 0o077:
        raise ConfigError(f"{cfg.path}: server.tls_key {paths['tls_key']} is readable by others",
                          hint=f"chmod 600 {paths['tls_key']}")
    opts: dict[str, Any] = {"ssl_certfile": str(paths["tls_cert"]), "ssl_keyfile": str(paths["tls_key"])}
    if ca:
        opts.update(ssl_ca_certs=str(paths["tls_client_ca"]), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return opts
