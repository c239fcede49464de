"""A small async Kubernetes client for the operator's own reads and writes.

kopf brings its own client for watching and for its bookkeeping, but exposes none for
arbitrary objects; this one covers exactly what the reconciler does (get, create,
server-side apply, delete, list, status patch) over httpx, with the same credentials.
"""

from __future__ import annotations

import builtins
import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from chroma_operator import __version__
from chroma_operator.reconcile.kinds import api_path

FIELD_MANAGER = "chroma-operator"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

Obj = dict[str, Any]


class ApiError(Exception):
    """A Kubernetes API error with its status code and the server's message."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}".strip())
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class KubeConfig:
    """Where the API server is and how to authenticate: in-cluster, kubeconfig, or given."""

    server: str
    token: str | None = None
    ca_path: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    insecure: bool = False

    @classmethod
    def in_cluster(cls) -> KubeConfig:
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        token = (SERVICE_ACCOUNT_DIR / "token").read_text().strip()
        return cls(
            server=f"https://{host}:{port}",
            token=token,
            ca_path=str(SERVICE_ACCOUNT_DIR / "ca.crt"),
        )

    @classmethod
    def from_kubeconfig(cls, context: str | None = None) -> KubeConfig:
        from kubernetes import client, config  # the official loader understands every auth form

        cfg = client.Configuration()
        config.load_kube_config(context=context, client_configuration=cfg)  # type: ignore[no-untyped-call]
        auth = cfg.api_key.get("authorization", "")
        return cls(
            server=cfg.host,
            token=auth.removeprefix("Bearer ").strip() or None,
            ca_path=cfg.ssl_ca_cert,
            cert_path=cfg.cert_file,
            key_path=cfg.key_file,
            insecure=not cfg.verify_ssl,
        )

    @classmethod
    def discover(cls, context: str | None = None) -> KubeConfig:
        if "KUBERNETES_SERVICE_HOST" in os.environ and (SERVICE_ACCOUNT_DIR / "token").exists():
            return cls.in_cluster()
        return cls.from_kubeconfig(context)


class Kube:
    """The operator's reads and writes; one pooled connection per operator."""

    def __init__(
        self,
        config: KubeConfig,
        timeout: float = 30.0,
        user_agent: str = f"chroma-operator/{__version__}",
    ) -> None:
        verify: bool | str = False if config.insecure else (config.ca_path or True)
        cert = (config.cert_path, config.key_path) if config.cert_path and config.key_path else None
        headers = {"User-Agent": user_agent}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._http = httpx.AsyncClient(
            base_url=config.server, headers=headers, verify=verify, cert=cert, timeout=timeout
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        rsp = await self._http.request(method, url, **kwargs)
        if rsp.status_code >= 400:
            try:
                body = rsp.json()
                message, reason = body.get("message", rsp.text), body.get("reason", "")
            except ValueError:
                message, reason = rsp.text, ""
            raise ApiError(rsp.status_code, message, reason)
        return rsp.json() if rsp.content else None

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            obj: Obj = await self._call("GET", api_path(api_version, kind, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    async def list(
        self, api_version: str, kind: str, namespace: str, labels: dict[str, str]
    ) -> list[Obj]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        body = await self._call(
            "GET", api_path(api_version, kind, namespace), params={"labelSelector": selector}
        )
        items: list[Obj] = body.get("items", [])
        # Filter here too: a selector is a request, and not every API server honours it.
        return [
            i
            for i in items
            if all(i.get("metadata", {}).get("labels", {}).get(k) == v for k, v in labels.items())
        ]

    async def create(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        created: Obj = await self._call(
            "POST",
            api_path(obj["apiVersion"], obj["kind"], meta["namespace"]),
            params={"fieldManager": FIELD_MANAGER},
            json=obj,
        )
        return created

    async def apply(self, obj: Obj) -> Obj:
        """Server-side apply: the server merges our fields and drops the ones we stopped setting."""
        meta = obj["metadata"]
        applied: Obj = await self._call(
            "PATCH",
            api_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"]),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            headers={"Content-Type": "application/apply-patch+yaml"},
            json=obj,
        )
        return applied

    async def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        propagation: str = "Background",
    ) -> None:
        """`propagation` Orphan keeps the dependents (a StatefulSet's pods) running."""
        try:
            await self._call(
                "DELETE",
                api_path(api_version, kind, namespace, name),
                json={"propagationPolicy": propagation},
            )
        except ApiError as exc:
            if exc.status != 404:
                raise

    async def get_cluster(self, api_version: str, kind: str, name: str) -> Obj | None:
        """A cluster-scoped object (a StorageClass), or None."""
        try:
            obj: Obj = await self._call("GET", api_path(api_version, kind, None, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    async def list_cluster(self, api_version: str, kind: str) -> builtins.list[Obj]:
        body = await self._call("GET", api_path(api_version, kind, None))
        items: builtins.list[Obj] = (body or {}).get("items", [])
        return items

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: Obj
    ) -> Obj:
        """A JSON merge patch of a few fields of an object we do not own (a PVC's size)."""
        patched: Obj = await self._call(
            "PATCH",
            api_path(api_version, kind, namespace, name),
            params={"fieldManager": FIELD_MANAGER},
            headers={"Content-Type": "application/merge-patch+json"},
            json=patch,
        )
        return patched

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: Obj
    ) -> None:
        await self._call(
            "PATCH",
            api_path(api_version, kind, namespace, name) + "/status",
            headers={"Content-Type": "application/merge-patch+json"},
            json={"status": status},
        )

    async def post_event(self, involved: Obj, type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about `involved` (for code running outside a kopf handler)."""
        meta = involved["metadata"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "firstTimestamp": now[:19] + "Z",
            "lastTimestamp": now[:19] + "Z",
            "eventTime": now,
            "count": 1,
        }
        await self._call("POST", api_path("v1", "Event", meta["namespace"]), json=event)

    async def has_api(self, group_version: str, plural: str) -> bool:
        """Whether a resource is served (e.g. the Prometheus Operator's CRDs)."""
        try:
            body = await self._call("GET", f"/apis/{group_version}")
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return any(r.get("name") == plural for r in (body or {}).get("resources", []))
