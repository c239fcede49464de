"""The operator's HTTP clients for its own calls to a cluster's routers: the SLO scrape,
replica states and, while resharding, each router's placement epoch.

With `spec.tls` the routers serve HTTPS, often under a private CA. The operator reads no
Secrets, so it cannot take `ca.crt` from the TLS Secret: `spec.tls.caConfigMap` names a
ConfigMap key with the CA bundle (what trust-manager writes, or a copy of `ca.crt`), and
the calls are verified with it. Without one, the operator's own trust store verifies them
(the system's, or `SSL_CERT_FILE`). One client per CA bundle, kept while it is in use.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from collections import OrderedDict

import httpx

from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.reconcile.kube import Kube

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
MAX_CLIENTS = 32
"""CA bundles kept (clusters with a CA of their own, plus rotations); the oldest closes."""


class RouterClients:
    """A client per CA bundle (the default one for none)."""

    def __init__(self, timeout_s: float = TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.default = httpx.AsyncClient(timeout=timeout_s)
        self._by_ca: OrderedDict[str, httpx.AsyncClient] = OrderedDict()

    async def for_ca(self, pem: str | None) -> httpx.AsyncClient:
        """The client that trusts exactly `pem` (raises `ssl.SSLError` on a bad bundle)."""
        if not pem:
            return self.default
        key = hashlib.sha256(pem.encode()).hexdigest()
        found = self._by_ca.get(key)
        if found is not None:
            self._by_ca.move_to_end(key)
            return found
        context = ssl.create_default_context(cadata=pem)
        found = self._by_ca[key] = httpx.AsyncClient(timeout=self.timeout_s, verify=context)
        if len(self._by_ca) > MAX_CLIENTS:
            _, oldest = self._by_ca.popitem(last=False)
            await oldest.aclose()
        return found

    async def aclose(self) -> None:
        for client in [self.default, *self._by_ca.values()]:
            await client.aclose()
        self._by_ca.clear()


async def cluster_ca(kube: Kube, namespace: str, spec: ChromaClusterSpec) -> str | None:
    """The PEM bundle `spec.tls.caConfigMap` names, or None (none named, or not there:
    logged, and the operator's trust store is tried instead)."""
    ref = spec.tls.ca_config_map
    if spec.tls.secret_name is None or ref is None:
        return None
    cm = await kube.get("v1", "ConfigMap", namespace, ref.name)
    data = (cm or {}).get("data")
    pem = data.get(ref.key) if isinstance(data, dict) else None
    if not isinstance(pem, str) or not pem.strip():
        log.warning(
            "ConfigMap %s/%s has no key %r: the routers are verified with the operator's "
            "trust store",
            namespace,
            ref.name,
            ref.key,
        )
        return None
    return pem


async def client_for(
    kube: Kube, clients: RouterClients, namespace: str, spec: ChromaClusterSpec
) -> httpx.AsyncClient:
    """The client for this cluster's routers."""
    pem = await cluster_ca(kube, namespace, spec)
    try:
        return await clients.for_ca(pem)
    except ssl.SSLError as exc:
        ref = spec.tls.ca_config_map
        log.warning(
            "the CA bundle in ConfigMap %s/%s is not PEM certificates (%s): the routers are "
            "verified with the operator's trust store",
            namespace,
            ref.name if ref else "?",
            exc,
        )
        return clients.default
