"""Drive the emulated API server as a user would: kubectl-style apply, and waiting for state."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from chroma_operator.api.crd import build_crd
from chroma_operator.reconcile.kube import Kube
from crdcheck import admit
from kube_emulator import CLUSTERS

T = TypeVar("T")
CRD = build_crd()
TEST_CLIENT = "chroma-operator-tests"
"""User-Agent of the test's own calls (kubectl and controller stand-ins), told apart in RBAC checks."""


async def eventually(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], timeout: float = 20.0
) -> T:
    """Poll until `check(await probe())` holds; the final state is what tests assert."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(0.1)


def cluster_doc(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "chroma.operator.dev/v1alpha1",
        "kind": "ChromaCluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": copy.deepcopy(spec),
    }


async def kubectl_apply(kube: Kube, doc: dict[str, Any], *, validate: bool = True) -> None:
    """Create or update like `kubectl apply`: CRD defaulting and validation first."""
    meta = doc["metadata"]
    old = await kube.get(doc["apiVersion"], doc["kind"], meta["namespace"], meta["name"])
    if validate:
        stored, errors = admit(CRD, doc, old={"spec": old["spec"]} if old else None)
        if errors:
            raise ValueError(f"rejected by the CRD: {errors}")
        doc = stored
    if old is None:
        await kube.create(doc)
    else:
        await kube._call(  # a merge patch of spec, as kubectl's three-way merge boils down to here
            "PATCH",
            f"/apis/{CLUSTERS.rsplit('/', 1)[0]}/namespaces/{meta['namespace']}/chromaclusters/{meta['name']}",
            headers={"Content-Type": "application/merge-patch+json"},
            json={"spec": doc["spec"]},
        )


async def kubectl_annotate(kube: Kube, doc: dict[str, Any], annotations: dict[str, str]) -> None:
    """`kubectl annotate --overwrite`: a merge patch of metadata.annotations."""
    meta = doc["metadata"]
    await kube._call(
        "PATCH",
        f"/apis/{CLUSTERS.rsplit('/', 1)[0]}/namespaces/{meta['namespace']}/chromaclusters/{meta['name']}",
        headers={"Content-Type": "application/merge-patch+json"},
        json={"metadata": {"annotations": annotations}},
    )


async def finish_job(
    kube: Kube, namespace: str, job: str, container: str, result: dict[str, Any]
) -> None:
    """No kubelet or Job controller here: write what they would for a finished Job whose
    container left `result` as its termination message."""
    import json

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{job}-x1", "namespace": namespace, "labels": {"job-name": job}},
        "spec": {"containers": [{"name": container, "image": "x"}]},
    }
    await kube._call("POST", f"/api/v1/namespaces/{namespace}/pods", json=pod)
    terminated = {"exitCode": 0, "reason": "Completed", "message": json.dumps(result)}
    await kube._call(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/pods/{job}-x1/status",
        headers={"Content-Type": "application/merge-patch+json"},
        json={
            "status": {
                "containerStatuses": [{"name": container, "state": {"terminated": terminated}}]
            }
        },
    )
    await kube.patch_status("batch/v1", "Job", namespace, job, {"succeeded": 1})
