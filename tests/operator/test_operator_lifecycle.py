"""The real operator (kopf) against the KMock API emulator: apply, update, fail, degrade."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from conftest import cluster_doc, eventually, kubectl_apply
from kube_emulator import ApiServer, running_operator

from chroma_operator.api.validate import parse_cluster
from chroma_operator.build import Owner, build_all
from chroma_operator.build.naming import SPEC_HASH_ANNOTATION
from chroma_operator.reconcile.kube import Kube

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
            assert live["spec" if "spec" in manifest else "data"] == manifest.get("spec", manifest.get("data"))
            (ref,) = live["metadata"]["ownerReferences"]
            assert ref["uid"] == provisioning["metadata"]["uid"] and ref["controller"] is True
            assert live["metadata"]["annotations"][SPEC_HASH_ANNOTATION] == manifest["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
        assert condition(provisioning, "Ready")["status"] == "False"
        assert condition(provisioning, "Progressing")["status"] == "True"

        for i in range(2):
            await mark_ready(kube, "StatefulSet", f"quickstart-shard-{i}", 1)
        await mark_ready(kube, "Deployment", "quickstart-encoder", 1)
        ready = await eventually(lambda: get_cluster(kube), lambda c: status_of(c).get("phase") == "Ready")
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
