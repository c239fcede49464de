"""KMock's KubernetesEmulator made to behave like a real API server where kopf cares.

KMock 0.8 stores objects as they are sent. A real API server also stamps `uid`,
`resourceVersion`, `generation` and `creationTimestamp`, keeps `spec` out of status
writes and `status` out of main-resource writes, and answers a failed JSON-patch `test`
with 422. kopf relies on all of these, so this subclass adds them. It also serves a pod's
`log` subresource from `pod_logs` (KMock has no kubelet), for `kubectl chroma logs`.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
import kopf
from kmock._internal import dsl, enums, rendering
from kmock._internal.dicts import merge_patch_dict

from chroma_operator.api.models import API_GROUP, API_VERSION, KIND, PLURAL
from chroma_operator.build.meta import Owner
from chroma_operator.reconcile.handlers import register
from chroma_operator.reconcile.kube import KubeConfig
from chroma_operator.reconcile.slo_loop import MetricsUrls

Obj = dict[str, Any]
CLUSTERS = f"{API_GROUP}/{API_VERSION}/{PLURAL}"
POD_LOG = re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log/?")


def merge_diff(old: Obj, new: Obj) -> Obj:
    """The RFC 7386 merge patch that turns `old` into `new` (None removes a key)."""
    out: Obj = {}
    for key in old.keys() - new.keys():
        out[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            sub = merge_diff(before, value)
            if sub:
                out[key] = sub
        elif key not in old or before != value:
            out[key] = value
    return out


def _with_data(request: rendering.Request, data: Any) -> rendering.Request:
    """Replace the parsed body in place (a new Request would lose its routing state)."""
    object.__setattr__(request, "data", data)
    return request


# KMock decides which of its reactions serves a request with `request in view`, and a
# view answers that by iterating every request the server has seen: quadratic in a test's
# request count (minutes for the 20-cluster test). For the views the emulator uses -- the
# root, plain chains and filters -- membership of a request is decidable at once: it is in
# the root's log, and it passes each filter's criteria. Anything else keeps KMock's way.
_view_contains = dsl.View.__contains__


def _member(view: dsl.View, request: rendering.Request) -> bool | None:
    if isinstance(view, dsl.Root) and type(view).__iter__ is dsl.Root.__iter__:
        return any(seen is request for seen in reversed(view._requests))
    if type(view) is dsl.Filter:
        if not view.criteria(request):
            return False
        return _member(view._source, request)
    if type(view) in (dsl.Chained, dsl.Priority):
        return _member(view._source, request)
    return None


def _fast_contains(self: dsl.View, item: Any) -> bool:
    if isinstance(item, rendering.Request):
        known = _member(self, item)
        if known is not None:
            return known
    return bool(_view_contains(self, item))


dsl.View.__contains__ = _fast_contains  # type: ignore[method-assign]


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    namespaces: set[str] = attrs.field(factory=lambda: {"default"})
    """Namespaces that exist besides those of stored objects."""
    created_at: dict[tuple[str, str | None, str], float] = attrs.field(factory=dict)
    """(plural, namespace, name) -> time.monotonic() when the create arrived (for timings)."""
    pod_logs: dict[tuple[str, str, str], str] = attrs.field(factory=dict)
    """(namespace, pod, container) -> what that container logged (the kubelet's part)."""

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # KMock 0.8 cannot parse the cluster-level path /api/v1/namespaces (kopf lists and
        # watches it when given namespaces); serve it here from the namespaces in use.
        if raw_request.path.rstrip("/") == "/api/v1/namespaces":
            return await self._serve_namespaces(raw_request)
        # KMock would answer pods/<name>/log with the Pod object; a real server sends text.
        log = POD_LOG.fullmatch(raw_request.path)
        if log is not None and raw_request.method == "GET":
            return self._serve_pod_log(raw_request, log.group(1), log.group(2))
        return await super().__call__(raw_request)

    def _serve_pod_log(
        self, raw_request: aiohttp.web.BaseRequest, namespace: str, name: str
    ) -> aiohttp.web.StreamResponse:
        """As the API server does: 404 for no such pod, 400 for no such container, else the
        container's log as text (the last `tailLines` lines when asked)."""
        pod = next(
            (
                o.raw
                for (r, ns, n), o in self.objects.items()
                if r.plural == "pods" and ns == namespace and n == name and not o.deleted
            ),
            None,
        )
        if pod is None:
            return _status(404, "NotFound", f'pods "{name}" not found')
        containers = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
        container = raw_request.query.get("container")
        if container is None and len(containers) == 1:
            container = containers[0]
        if container is None:
            message = (
                f"a container name must be specified for pod {name}, choose one of: {containers}"
            )
            return _status(400, "BadRequest", message)
        if container not in containers:
            return _status(400, "BadRequest", f"container {container} is not valid for pod {name}")
        text = self.pod_logs.get((namespace, name, container), "")
        tail = raw_request.query.get("tailLines")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail) :] if int(tail) > 0 else [])
        return aiohttp.web.Response(text=text, content_type="text/plain")

    async def _serve_namespaces(
        self, raw_request: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        names = sorted({ns for _, ns, _ in self.objects if ns} | self.namespaces)
        items = [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": n, "resourceVersion": "1"},
            }
            for n in names
        ]
        if raw_request.query.get("watch") != "true":
            return aiohttp.web.json_response(
                {"kind": "NamespaceList", "metadata": {"resourceVersion": "1"}, "items": items}
            )
        response = aiohttp.web.StreamResponse()
        await response.prepare(raw_request)
        for item in items:
            await response.write(json.dumps({"type": "ADDED", "object": item}).encode() + b"\n")
        await asyncio.sleep(3600)  # a quiet watch until the client or the server goes away
        return response

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        # As KMock's, but the event bus is subscribed *before* the snapshot is taken, so an
        # object created while a watch starts is never lost between the two.
        yield b""
        assert request.resource is not None
        bus = self._buses[request.resource]
        async with self._lock:
            marker = await bus.mark()
            snapshot = [
                {"type": "ADDED", "object": obj.raw}
                for (res, ns, name), obj in self.objects.items()
                if res == request.resource and not obj.deleted and self._matches(request, ns, name)
            ]
        try:
            for event in snapshot:
                yield event
            async for event in bus.stream(since=marker):
                meta = event.get("object", {}).get("metadata", {})
                if self._matches(request, meta.get("namespace"), meta.get("name")):
                    yield event
        finally:
            await bus.unmark(marker)

    @staticmethod
    def _matches(request: rendering.Request, namespace: str | None, name: str | None) -> bool:
        return (request.namespace is None or namespace == request.namespace) and (
            request.name is None or name == request.name
        )

    def _has_status(self, resource: kmock.resource) -> bool:
        return resource in self.resources and "status" in self.resources[resource].subresources

    def _now(self) -> str:
        return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def _handle(self, request: rendering.Request) -> Any:
        if request.resource is not None and request.action == enums.action.CREATE:
            request = self._stamp_create(request)
        elif request.resource is not None and request.action == enums.action.UPDATE:
            request = self._stamp_update(request)
        return await super()._handle(request)

    def _stamp_create(self, request: rendering.Request) -> rendering.Request:
        data = copy.deepcopy(request.data or {})
        meta = data.setdefault("metadata", {})
        if request.namespace:
            meta.setdefault("namespace", request.namespace)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        meta.update(
            uid=str(uuid.uuid4()),
            resourceVersion=str(next(self._versions)),
            generation=1,
            creationTimestamp=self._now(),
        )
        if self._has_status(request.resource):  # type: ignore[arg-type]
            data.pop("status", None)
        if request.resource is not None and request.resource.plural:
            self.created_at[
                (request.resource.plural, meta.get("namespace"), meta.get("name", ""))
            ] = time.monotonic()
        return _with_data(request, data)

    def _stamp_update(self, request: rendering.Request) -> rendering.Request:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return request  # the emulator answers 404
        current: Obj = copy.deepcopy(self.objects[key].raw)
        patch = request.data
        if isinstance(patch, list):
            try:
                wanted = jsonpatch.apply_patch(current, patch, in_place=False)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise kmock.KubernetesError(
                    status=422, reason="Invalid", message=str(exc)
                ) from None
        else:
            wanted = copy.deepcopy(dict(merge_patch_dict(current, patch or {})))
        if request.subresource == "status":
            wanted = copy.deepcopy({**current, "status": wanted.get("status")})
        elif self._has_status(request.resource):  # type: ignore[arg-type]
            wanted["status"] = current.get("status")
            if wanted.get("status") is None:
                wanted.pop("status", None)
        meta = wanted.setdefault("metadata", {})
        old_meta = current.get("metadata", {})
        for field in ("uid", "creationTimestamp", "name", "namespace"):
            if field in old_meta:
                meta[field] = old_meta[field]
        generation = int(old_meta.get("generation", 1))
        if request.subresource is None and wanted.get("spec") != current.get("spec"):
            generation += 1
        meta["generation"] = generation
        meta["resourceVersion"] = str(next(self._versions))
        return _with_data(request, merge_diff(current, wanted))


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    """A failed call's body, as the API server shapes it (a v1 Status)."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return aiohttp.web.json_response(body, status=code)


def declare_resources(server: ApiServer) -> None:
    """Built-in kinds plus the ChromaCluster CRD, as discovery would list them."""
    server.resources.load_bundled()
    server.resources[CLUSTERS] = kmock.ResourceInfo(
        kind=KIND,
        singular=KIND.lower(),
        namespaced=True,
        subresources={"status"},
        shortnames={"chroma", "cc"},
        verbs={"get", "list", "watch", "create", "patch", "delete"},
    )
    server.resources[f"{API_GROUP}/{API_VERSION}/chromabackups"] = kmock.ResourceInfo(
        kind="ChromaBackup",
        singular="chromabackup",
        namespaced=True,
        subresources={"status"},
        shortnames={"cbk"},
        verbs={"get", "list", "watch", "create", "patch", "delete"},
    )


@contextmanager
def running_operator(
    server_url: str,
    namespaces: list[str],
    metrics_urls: MetricsUrls = lambda owner, spec: [],
    router_url: Callable[[Owner], str] | None = None,
    slo_tick: float = 0.5,
    **more: Any,
) -> Iterator[None]:
    """The real operator (kopf) in its own thread and event loop, with a fresh registry.

    `metrics_urls` tells it where routers serve /metrics (none by default: the pods'
    DNS names do not resolve here).
    """
    registry = kopf.OperatorRegistry()
    extra = {"router_url": router_url} if router_url is not None else {}
    register(
        registry,
        KubeConfig(server=server_url),
        metrics_urls=metrics_urls,
        slo_tick=slo_tick,
        **extra,
        **more,
    )
    stop, ready = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=registry,
                    namespaces=namespaces,
                    standalone=True,
                    stop_flag=stop,
                    ready_flag=ready,
                )
            )
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=main, name="operator", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError(f"operator did not start: {errors}")
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
    if errors:
        raise errors[0]


async def events_of(server: ApiServer) -> list[dict[str, Any]]:
    """Every Event the emulated API server holds (what `kubectl get events` lists)."""
    return [
        o.raw for (r, _, _), o in server.objects.items() if r.plural == "events" and not o.deleted
    ]
