"""The real operator (kopf) against the KMock API emulator: apply, update, fail, degrade."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

from chroma_operator.api.validate import parse_cluster
from chroma_operator.build import Owner, build_all
from chroma_operator.build.naming import SPEC_HASH_ANNOTATION
from chroma_operator.reconcile.kube import Kube
from kube_emulator import ApiServer, running_operator
from kubectl import cluster_doc, eventually, kubectl_apply

NS = "search"
API = "chroma.operator.dev/v1alpha1"


def quickstart(repo_root: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((repo_root / "examples/quickstart.yaml").read_text())
    doc["metadata"]["namespace"] = NS
    return doc


async def get_cluster(kube: Kube, name: str = "quickstart") -> dict[str, Any]:
    obj = await kube.get(API, "ChromaCluster", NS, name)
    assert obj is not None
    return obj


def status_of(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj.get("status") or {})


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status_of(obj).get("conditions", []) if c["type"] == type_)


async def mark_ready(kube: Kube, kind: str, name: str, ready: int, namespace: str = NS) -> None:
    """No controllers run in the emulator: write the status a controller would."""
    api = "apps/v1"
    field = "readyReplicas" if kind == "StatefulSet" else "availableReplicas"
    await kube.patch_status(api, kind, namespace, name, {field: ready, "replicas": ready})


def expected_children(cluster: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    parsed = parse_cluster({k: cluster[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    owner = Owner(cluster["metadata"]["name"], NS, cluster["metadata"]["uid"])
    return {(m["kind"], m["metadata"]["name"]): m for m in build_all(parsed, owner)}


async def test_apply_quickstart_creates_everything_and_becomes_ready(
    apiserver: ApiServer, kube: Kube, repo_root: Path
) -> None:
    await kubectl_apply(kube, quickstart(repo_root))
    with running_operator(str(apiserver.url), [NS]):
        provisioning = await eventually(
            lambda: get_cluster(kube), lambda c: status_of(c).get("phase") == "Provisioning"
        )
        want = expected_children(provisioning)
        for (kind, name), manifest in want.items():
            live = await kube.get(manifest["apiVersion"], kind, NS, name)
            assert live is not None, (kind, name)
            assert live["spec" if "spec" in manifest else "data"] == manifest.get(
                "spec", manifest.get("data")
            )
            (ref,) = live["metadata"]["ownerReferences"]
            assert ref["uid"] == provisioning["metadata"]["uid"] and ref["controller"] is True
            assert (
                live["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
                == manifest["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
            )
        assert condition(provisioning, "Ready")["status"] == "False"
        assert condition(provisioning, "Progressing")["status"] == "True"

        for i in range(2):
            await mark_ready(kube, "StatefulSet", f"quickstart-shard-{i}", 1)
        await mark_ready(kube, "Deployment", "quickstart-encoder", 1)
        ready = await eventually(
            lambda: get_cluster(kube), lambda c: status_of(c).get("phase") == "Ready"
        )
        status = status_of(ready)
        assert status["observedGeneration"] == ready["metadata"]["generation"]
        assert status["ready"] == "2/2"
        assert condition(ready, "Ready")["status"] == "True"
        assert condition(ready, "Degraded")["status"] == "False"
        assert status["endpoints"] == {
            "router": "quickstart.search.svc.cluster.local:8000",
            "encoder": "http://quickstart-encoder.search.svc.cluster.local:8080",
        }
        assert [s["readyReplicas"] for s in status["shards"]] == [1, 1]
    # The operator's own metrics (served by `run --metrics-port`) counted the work.
    assert (
        REGISTRY.get_sample_value("chroma_operator_reconcile_total", {"result": "ok"}) or 0
    ) >= 1
    assert (
        REGISTRY.get_sample_value("chroma_operator_child_writes_total", {"verb": "create"}) or 0
    ) >= 8


CHILD_PLURALS = {
    "configmaps",
    "services",
    "statefulsets",
    "deployments",
    "poddisruptionbudgets",
    "networkpolicies",
    "cronjobs",
    "jobs",
    "prometheusrules",
    "servicemonitors",
}


def child_writes(apiserver: ApiServer, since: int = 0) -> list[tuple[str, str, str | None]]:
    out = []
    for req in list(apiserver)[since:]:
        if req.resource is None or req.resource.plural not in CHILD_PLURALS:
            continue
        if req.subresource == "status":
            continue  # the test's own stand-in for controllers
        if str(req.method) in (
            "method.POST",
            "method.PATCH",
            "method.DELETE",
            "POST",
            "PATCH",
            "DELETE",
        ):
            out.append((str(req.method).rsplit(".", 1)[-1], req.resource.plural, req.name))
    return out


def events_for(apiserver: ApiServer, reason: str) -> list[dict[str, Any]]:
    out = []
    for (res, _, _), obj in apiserver.objects.items():
        if res.plural == "events" and not obj.deleted and obj.get("reason") == reason:
            out.append(obj.raw)
    return out


async def _ready_quickstart(apiserver: ApiServer, kube: Kube, repo_root: Path) -> dict[str, Any]:
    await kubectl_apply(kube, quickstart(repo_root))
    await eventually(
        lambda: get_cluster(kube), lambda c: status_of(c).get("phase") == "Provisioning"
    )
    for i in range(2):
        await mark_ready(kube, "StatefulSet", f"quickstart-shard-{i}", 1)
    await mark_ready(kube, "Deployment", "quickstart-encoder", 1)
    return await eventually(
        lambda: get_cluster(kube), lambda c: status_of(c).get("phase") == "Ready"
    )


async def _spec_change(kube: Kube, repo_root: Path, path: str, value: Any) -> None:
    doc = quickstart(repo_root)
    node = doc["spec"]
    *parents, last = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    await kubectl_apply(kube, doc)


async def test_spec_changes_patch_only_what_changed(
    apiserver: ApiServer, kube: Kube, repo_root: Path
) -> None:
    with running_operator(str(apiserver.url), [NS]):
        ready = await _ready_quickstart(apiserver, kube, repo_root)
        gen = ready["metadata"]["generation"]

        mark = len(list(apiserver))
        await _spec_change(kube, repo_root, "hnsw.efSearch", 250)
        cm = await eventually(
            lambda: kube.get("v1", "ConfigMap", NS, "quickstart-config"),
            lambda c: c is not None and '"ef_search": 250' in c["data"]["topology.json"],
        )
        assert cm is not None
        await eventually(
            lambda: get_cluster(kube), lambda c: status_of(c).get("observedGeneration") == gen + 1
        )
        assert child_writes(apiserver, mark) == [("PATCH", "configmaps", "quickstart-config")]

        mark = len(list(apiserver))
        doc = quickstart(repo_root)
        doc["spec"]["hnsw"]["efSearch"] = 250
        doc["spec"]["encoder"]["replicas"] = 3
        await kubectl_apply(kube, doc)
        await eventually(
            lambda: kube.get("apps/v1", "Deployment", NS, "quickstart-encoder"),
            lambda d: d is not None and d["spec"]["replicas"] == 3,
        )
        await eventually(
            lambda: get_cluster(kube), lambda c: status_of(c).get("observedGeneration") == gen + 2
        )
        assert child_writes(apiserver, mark) == [("PATCH", "deployments", "quickstart-encoder")]

        mark = len(list(apiserver))
        doc["spec"]["encoder"]["enabled"] = False
        await kubectl_apply(kube, doc)
        await eventually(
            lambda: kube.get("apps/v1", "Deployment", NS, "quickstart-encoder"), lambda d: d is None
        )
        assert await kube.get("v1", "Service", NS, "quickstart-encoder") is None
        writes = child_writes(apiserver, mark)
        assert sorted(writes) == sorted(
            [
                ("DELETE", "deployments", "quickstart-encoder"),
                ("DELETE", "services", "quickstart-encoder"),
                ("DELETE", "networkpolicies", "quickstart-encoder"),
                ("PATCH", "configmaps", "quickstart-config"),  # the topology loses the encoder URL
            ]
        )
        cluster = await eventually(
            lambda: get_cluster(kube), lambda c: "encoder" not in status_of(c).get("endpoints", {})
        )
        assert status_of(cluster)["phase"] == "Ready"  # nothing left to wait for

        doc["spec"]["encoder"]["enabled"] = True
        await kubectl_apply(kube, doc)
        dep = await eventually(
            lambda: kube.get("apps/v1", "Deployment", NS, "quickstart-encoder"),
            lambda d: d is not None,
        )
        assert dep is not None and dep["spec"]["replicas"] == 3
        assert await kube.get("v1", "Service", NS, "quickstart-encoder") is not None
        # kopf posts Events from a queue: wait for them while the operator still runs.
        await eventually(lambda: _events(apiserver, "Deleted"), lambda e: len(e) > 0)
        await eventually(lambda: _events(apiserver, "Updated"), lambda e: len(e) > 0)


async def test_invalid_spec_fails_naming_the_field_and_writes_nothing(
    apiserver: ApiServer, kube: Kube
) -> None:
    bad = cluster_doc("broken", NS, {"shards": 0, "hnsw": {"space": "euclid"}})
    await kubectl_apply(kube, bad, validate=False)  # a CRD installed without validation
    with running_operator(str(apiserver.url), [NS]):
        failed = await eventually(
            lambda: get_cluster(kube, "broken"), lambda c: status_of(c).get("phase") == "Failed"
        )
        # kopf posts Events from a queue: wait for it while the operator still runs.
        await eventually(lambda: _events(apiserver, "InvalidSpec"), lambda e: len(e) > 0)
    status = status_of(failed)
    assert status["reason"] == "InvalidSpec"
    assert "spec.shards: must be >= 1" in status["message"]
    assert "spec.hnsw.space: must be one of l2, cosine, ip" in status["message"]
    assert condition(failed, "Ready")["status"] == "False"
    assert child_writes(apiserver) == []
    (event,) = events_for(apiserver, "InvalidSpec")
    assert event["type"] == "Warning" and "spec.shards" in event["message"]


async def test_shard_losing_readiness_degrades_the_cluster(
    apiserver: ApiServer, kube: Kube, repo_root: Path
) -> None:
    with running_operator(str(apiserver.url), [NS]):
        await _ready_quickstart(apiserver, kube, repo_root)
        await mark_ready(kube, "StatefulSet", "quickstart-shard-1", 0)
        degraded = await eventually(
            lambda: get_cluster(kube), lambda c: status_of(c).get("phase") == "Degraded"
        )
        assert "shard 1: 0/1 ready" in status_of(degraded)["message"]
        assert condition(degraded, "Degraded")["status"] == "True"
        assert condition(degraded, "Ready")["status"] == "False"
        assert status_of(degraded)["ready"] == "1/2"
        warning = await eventually(lambda: _events(apiserver, "Degraded"), lambda e: len(e) > 0)
        assert warning[0]["type"] == "Warning" and "shard 1" in warning[0]["message"]

        await mark_ready(kube, "StatefulSet", "quickstart-shard-1", 1)
        recovered = await eventually(
            lambda: get_cluster(kube), lambda c: status_of(c).get("phase") == "Ready"
        )
        assert condition(recovered, "Degraded")["status"] == "False"


async def _events(apiserver: ApiServer, reason: str) -> list[dict[str, Any]]:
    return events_for(apiserver, reason)


async def test_restart_with_nothing_changed_writes_nothing(
    apiserver: ApiServer, kube: Kube, repo_root: Path
) -> None:
    with running_operator(str(apiserver.url), [NS]):
        ready = await _ready_quickstart(apiserver, kube, repo_root)
    mark = len(list(apiserver))
    with running_operator(str(apiserver.url), [NS]):
        # Wait until the restarted operator has resumed the cluster (it reads every child).
        await eventually(
            lambda: _count(apiserver, mark, "statefulsets"), lambda n: n >= 2, timeout=20
        )
        await eventually(lambda: _resumed(apiserver, mark), lambda done: done, timeout=20)
    assert child_writes(apiserver, mark) == []
    after = await get_cluster(kube)
    health = ("Ready", "Progressing", "Degraded")
    assert [condition(after, t) for t in health] == [condition(ready, t) for t in health]


async def _count(apiserver: ApiServer, since: int, plural: str) -> int:
    return sum(
        1
        for r in list(apiserver)[since:]
        if r.resource is not None
        and r.resource.plural == plural
        and r.name
        and str(r.method).endswith("GET")
    )


async def _resumed(apiserver: ApiServer, since: int) -> bool:
    """The resume handler lists every child kind at the end of a pass."""
    return any(
        r.resource is not None and r.resource.plural == "servicemonitors"
        for r in list(apiserver)[since:]
    )


async def test_monitoring_objects_only_when_the_prometheus_operator_is_installed(
    apiserver: ApiServer, kube: Kube, repo_root: Path
) -> None:
    import kmock

    doc = quickstart(repo_root)
    doc["spec"]["monitoring"] = {"serviceMonitor": True, "prometheusRule": True, "dashboard": True}
    await kubectl_apply(kube, doc)
    with running_operator(str(apiserver.url), [NS]):
        skipped = await eventually(
            lambda: get_cluster(kube),
            lambda c: any(x["type"] == "Monitoring" for x in status_of(c).get("conditions", [])),
        )
        mon = condition(skipped, "Monitoring")
        assert mon["status"] == "False" and mon["reason"] == "PrometheusOperatorMissing"
        assert "PrometheusRule, ServiceMonitor" in mon["message"]
        assert await kube.get("v1", "ConfigMap", NS, "quickstart-dashboard") is not None

        for plural, kind in (
            ("prometheusrules", "PrometheusRule"),
            ("servicemonitors", "ServiceMonitor"),
        ):
            apiserver.resources[f"monitoring.coreos.com/v1/{plural}"] = kmock.ResourceInfo(
                kind=kind,
                namespaced=True,
                verbs={"get", "list", "watch", "create", "patch", "delete"},
            )
        doc["spec"]["hnsw"]["efSearch"] = 64  # any change makes the operator look again
        await kubectl_apply(kube, doc)
        created = await eventually(
            lambda: get_cluster(kube), lambda c: condition(c, "Monitoring")["status"] == "True"
        )
        assert condition(created, "Monitoring")["reason"] == "Created"
    rule = await kube.get("monitoring.coreos.com/v1", "PrometheusRule", NS, "quickstart-slo")
    assert rule is not None and rule["spec"]["groups"]
    assert (
        await kube.get("monitoring.coreos.com/v1", "ServiceMonitor", NS, "quickstart") is not None
    )
