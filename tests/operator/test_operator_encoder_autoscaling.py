"""Encoder autoscaling under the real operator: the autoscaler owns `replicas`, the
reconcile loop never writes it back, and a ScaledObject waits for KEDA's CRD."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kmock
import yaml

from chroma_operator.api.validate import parse_cluster
from chroma_operator.build import Owner, build_all
from chroma_operator.build.naming import SPEC_HASH_ANNOTATION
from chroma_operator.reconcile.kinds import api_path
from chroma_operator.reconcile.kube import Kube
from chroma_operator.reconcile.rbac import operator_rules
from kube_emulator import ApiServer, running_operator
from kubectl import TEST_CLIENT, eventually, kubectl_apply

NS = "search"
API = "chroma.operator.dev/v1alpha1"
ENCODER = "quickstart-encoder"
HPA_API = "autoscaling/v2"
KEDA_API = "keda.sh/v1alpha1"


def quickstart(repo_root: Path, autoscaling: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((repo_root / "examples/quickstart.yaml").read_text())
    doc["metadata"]["namespace"] = NS
    doc["spec"]["encoder"]["autoscaling"] = autoscaling
    return doc


async def get_cluster(kube: Kube) -> dict[str, Any]:
    obj = await kube.get(API, "ChromaCluster", NS, "quickstart")
    assert obj is not None
    return obj


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    conditions = (obj.get("status") or {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == type_), None)


def wanted_hash(cluster: dict[str, Any], kind: str, name: str) -> str:
    parsed = parse_cluster({k: cluster[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    owner = Owner("quickstart", NS, cluster["metadata"]["uid"])
    built = {(m["kind"], m["metadata"]["name"]): m for m in build_all(parsed, owner)}
    return str(built[(kind, name)]["metadata"]["annotations"][SPEC_HASH_ANNOTATION])


async def scale_like_the_hpa(kube: Kube, replicas: int) -> None:
    """What the HPA controller does: write the Deployment's replicas (another writer)."""
    await kube._call(
        "PATCH",
        api_path("apps/v1", "Deployment", NS, ENCODER),
        headers={"Content-Type": "application/merge-patch+json"},
        json={"spec": {"replicas": replicas}},
    )


async def deployment(kube: Kube) -> dict[str, Any]:
    obj = await kube.get("apps/v1", "Deployment", NS, ENCODER)
    assert obj is not None
    return obj


def operator_writes(apiserver: ApiServer, plural: str) -> list[Any]:
    return [
        r
        for r in apiserver
        if r.resource is not None
        and r.resource.plural == plural
        and r.headers.get("User-Agent") != TEST_CLIENT
        and str(r.method).rsplit(".", 1)[-1] in ("POST", "PATCH", "PUT")
    ]


def _allowed(group: str, resource: str, verb: str) -> bool:
    return any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]
        for r in operator_rules()
    )


async def test_the_hpa_owns_replicas_and_reconcile_never_writes_them(
    apiserver: ApiServer, kube: Kube, repo_root: Path
) -> None:
    auto = {"enabled": True, "minReplicas": 1, "maxReplicas": 8, "targetQueuePerReplica": 64}
    doc = quickstart(repo_root, auto)
    await kubectl_apply(kube, doc)
    with running_operator(str(apiserver.url), [NS]):
        hpa = await eventually(
            lambda: kube.get(HPA_API, "HorizontalPodAutoscaler", NS, ENCODER),
            lambda h: h is not None,
        )
        assert hpa is not None and hpa["spec"]["maxReplicas"] == 8
        # (the HPA may come first: wait for the Deployment without asserting on the way)
        dep = await eventually(
            lambda: kube.get("apps/v1", "Deployment", NS, ENCODER), lambda d: d is not None
        )
        assert dep is not None and "replicas" not in dep["spec"]

        await scale_like_the_hpa(kube, 5)  # a burst: the HPA scales out

        # A spec change the operator must roll out to the same Deployment.
        doc["spec"]["encoder"]["batching"] = {"maxBatchSize": 128}
        await kubectl_apply(kube, doc)
        cluster = await get_cluster(kube)
        want = wanted_hash(cluster, "Deployment", ENCODER)
        updated = await eventually(
            lambda: deployment(kube),
            lambda d: d["metadata"]["annotations"][SPEC_HASH_ANNOTATION] == want,
        )
        args = updated["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("--max-batch-size") + 1] == "128"
        assert updated["spec"]["replicas"] == 5, "the reconcile loop undid the HPA's scaling"

        # Changing the bounds changes the HPA, and still not the replicas.
        doc["spec"]["encoder"]["autoscaling"] = {**auto, "maxReplicas": 12}
        await kubectl_apply(kube, doc)
        await eventually(
            lambda: kube.get(HPA_API, "HorizontalPodAutoscaler", NS, ENCODER),
            lambda h: h is not None and h["spec"]["maxReplicas"] == 12,
        )
        assert (await deployment(kube))["spec"]["replicas"] == 5

        writes = operator_writes(apiserver, "deployments")
        assert len(writes) >= 2  # the create and the rollout of the new batch size
        for req in writes:
            assert "replicas" not in (req.data or {}).get("spec", {}), req.data

        # Autoscaling off: the HPA goes and the spec's replicas apply again.
        doc["spec"]["encoder"]["autoscaling"] = {**auto, "enabled": False}
        doc["spec"]["encoder"]["replicas"] = 2
        await kubectl_apply(kube, doc)
        await eventually(
            lambda: kube.get(HPA_API, "HorizontalPodAutoscaler", NS, ENCODER),
            lambda h: h is None,
        )
        await eventually(lambda: deployment(kube), lambda d: d["spec"].get("replicas") == 2)

    calls = {
        (r.resource.group or "", r.resource.plural, str(r.method).rsplit(".", 1)[-1])
        for r in apiserver
        if r.resource is not None
        and r.resource.plural == "horizontalpodautoscalers"
        and r.headers.get("User-Agent") != TEST_CLIENT
    }
    verbs = {"POST": "create", "PATCH": "patch", "DELETE": "delete", "GET": "get"}
    assert {c[2] for c in calls} >= {"POST", "PATCH", "DELETE"}
    for group, plural, method in calls:
        assert _allowed(group, plural, verbs[method]), (group, plural, method)


async def test_scaled_object_only_once_kedas_crd_is_served(
    apiserver: ApiServer, kube: Kube, repo_root: Path
) -> None:
    auto = {
        "enabled": True,
        "provider": "keda",
        "minReplicas": 2,
        "maxReplicas": 6,
        "targetQueuePerReplica": 100,
    }
    doc = quickstart(repo_root, auto)
    await kubectl_apply(kube, doc)
    with running_operator(str(apiserver.url), [NS]):
        missing = await eventually(
            lambda: get_cluster(kube), lambda c: condition(c, "Autoscaling") is not None
        )
        cond = condition(missing, "Autoscaling")
        assert cond is not None and cond["status"] == "False" and cond["reason"] == "KedaMissing"
        assert "scaledobjects.keda.sh" in cond["message"]
        dep = await deployment(kube)
        assert "replicas" not in dep["spec"]
        assert await kube.get(HPA_API, "HorizontalPodAutoscaler", NS, ENCODER) is None

        apiserver.resources[f"{KEDA_API}/scaledobjects"] = kmock.ResourceInfo(
            kind="ScaledObject",
            namespaced=True,
            verbs={"get", "list", "watch", "create", "patch", "delete"},
        )
        changed = copy.deepcopy(doc)
        changed["spec"]["encoder"]["autoscaling"]["targetQueuePerReplica"] = 200
        await kubectl_apply(kube, changed)
        created = await eventually(
            lambda: get_cluster(kube),
            lambda c: (condition(c, "Autoscaling") or {}).get("status") == "True",
        )
        assert (condition(created, "Autoscaling") or {}).get("reason") == "Created"
        so = await kube.get(KEDA_API, "ScaledObject", NS, ENCODER)
        assert so is not None
        assert so["spec"]["minReplicaCount"] == 2 and so["spec"]["maxReplicaCount"] == 6
        assert so["spec"]["triggers"][0]["metadata"]["threshold"] == "200"
        assert so["spec"]["scaleTargetRef"]["name"] == ENCODER
        assert so["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]

        # Switching to the HPA replaces the ScaledObject; the KEDA condition goes with it.
        changed["spec"]["encoder"]["autoscaling"]["provider"] = "hpa"
        await kubectl_apply(kube, changed)
        await eventually(
            lambda: kube.get(HPA_API, "HorizontalPodAutoscaler", NS, ENCODER),
            lambda h: h is not None,
        )
        await eventually(
            lambda: kube.get(KEDA_API, "ScaledObject", NS, ENCODER), lambda so: so is None
        )
        await eventually(lambda: get_cluster(kube), lambda c: condition(c, "Autoscaling") is None)
    for req in operator_writes(apiserver, "deployments"):
        assert "replicas" not in (req.data or {}).get("spec", {}), req.data
    for req in operator_writes(apiserver, "scaledobjects"):
        method = str(req.method).rsplit(".", 1)[-1]
        assert _allowed("keda.sh", "scaledobjects", "create" if method == "POST" else "patch")
