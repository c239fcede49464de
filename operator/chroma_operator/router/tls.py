"""HTTPS at the router: uvicorn's certificate settings and how peers are verified.

The certificate comes from a kubernetes.io/tls Secret (e.g. a cert-manager
Certificate) mounted into the router; its `ca.crt`, when present, verifies the peer
routers this one tells about writes.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from chroma_operator.topology import TlsTopology


def uvicorn_ssl(tls: TlsTopology | None) -> dict[str, Any]:
    """uvicorn.run keyword arguments serving HTTPS (none without TLS)."""
    if tls is None:
        return {}
    return {"ssl_certfile": tls.cert_file, "ssl_keyfile": tls.key_file}


def peer_verify(tls: TlsTopology | None) -> ssl.SSLContext | bool:
    """The peer client's verification: the Secret's CA when given, else the system's."""
    if tls is None or tls.ca_file is None or not Path(tls.ca_file).exists():
        return True
    return ssl.create_default_context(cafile=tls.ca_file)


def check_files(tls: TlsTopology | None) -> str | None:
    """Why the certificate cannot be served (a message), or None."""
    if tls is None:
        return None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        return f"cannot load the TLS certificate {tls.cert_file} / key {tls.key_file}: {exc}"
    return None
