"""Many clusters at once, and RBAC compared with the calls the operator really makes."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from chroma_operator.reconcile.kube import Kube
from chroma_operator.reconcile.rbac import cluster_scoped_rules, operator_rules
from kube_emulator import ApiServer, running_operator
from kubectl import TEST_CLIENT, kubectl_apply

API = "chroma.operator.dev/v1alpha1"
NAMESPACES = ["team-a", "team-b", "team-c", "team-d"]


def _allowed(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules
    )


def _verb(method: str, name: str | None, params: dict[str, str]) -> str:
    if method == "GET":
        return "watch" if params.get("watch") == "true" else ("get" if name else "list")
    return {"POST": "create", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}[method]


async def test_twenty_clusters_in_four_namespaces(
    apiserver: ApiServer, kube: Kube, repo_root: Path
) -> None:
    base: dict[str, Any] = yaml.safe_load((repo_root / "examples/quickstart.yaml").read_text())
    docs = []
    for i in range(20):
        doc = {**base, "metadata": {"name": f"c{i}", "namespace": NAMESPACES[i % 4]}}
        docs.append(doc)
    apiserver.namespaces.update(NAMESPACES)
    with running_operator(str(apiserver.url), NAMESPACES):
        started = time.monotonic()
        applied: dict[str, float] = {}

        async def apply(doc: dict[str, Any]) -> None:
            await kubectl_apply(kube, doc, validate=False)  # admission is not what is timed
            applied[doc["metadata"]["name"]] = time.monotonic()

        await asyncio.gather(*(apply(d) for d in docs))
        # A liveness bound, not the measurement (that is apply-to-created below): generous,
        # since a reconcile now also plans resharding, day-2 operations and backups.
        deadline = time.monotonic() + 300
        pending = {d["metadata"]["name"] for d in docs}
        while pending and time.monotonic() < deadline:
            for ns in set(NAMESPACES):
                for c in await kube.list(API, "ChromaCluster", ns, {}):
                    if (c.get("status") or {}).get("phase") == "Provisioning":
                        pending.discard(c["metadata"]["name"])
            await asyncio.sleep(0.2)
        assert not pending, f"not reconciled: {sorted(pending)}"

    # Apply to created: from each cluster's apply to the arrival of its last child's create.
    done = {}
    for doc in docs:
        ns, name = doc["metadata"]["namespace"], doc["metadata"]["name"]
        children = [
            t
            for (plural, n, obj), t in apiserver.created_at.items()
            if plural != "events" and n == ns and (obj.startswith(f"{name}-") or obj == name)
        ]
        done[name] = max(children) - applied[name]
    for doc in docs:
        ns, name = doc["metadata"]["namespace"], doc["metadata"]["name"]
        for kind, api, child in [
            ("ConfigMap", "v1", f"{name}-config"),
            ("StatefulSet", "apps/v1", f"{name}-shard-0"),
            ("StatefulSet", "apps/v1", f"{name}-shard-1"),
            ("Service", "v1", name),
            ("Deployment", "apps/v1", f"{name}-encoder"),
        ]:
            assert await kube.get(api, kind, ns, child) is not None, (ns, kind, child)
    times = sorted(done.values())
    print(
        f"\n20 clusters x 8 objects: apply took {max(applied.values()) - started:.2f}s; apply-to-created "
        f"median {statistics.median(times):.2f}s, max {times[-1]:.2f}s"
    )

    # RBAC: every call the operator made in this test is granted by the rules we ship.
    rules = operator_rules() + cluster_scoped_rules()
    seen = set()
    for req in apiserver:
        if req.resource is None or req.resource.plural is None:
            continue  # discovery
        if req.headers.get("User-Agent") == TEST_CLIENT:
            continue
        method = str(req.method).rsplit(".", 1)[-1]
        resource = req.resource.plural + (f"/{req.subresource}" if req.subresource else "")
        seen.add((req.resource.group or "", resource, _verb(method, req.name, dict(req.params))))
    assert ("", "configmaps", "create") in seen and ("apps", "statefulsets", "list") in seen
    missing = {s for s in seen if not _allowed(rules, *s)}
    assert missing == set(), f"calls the RBAC rules do not grant: {sorted(missing)}"
    for rule in rules:
        assert (
            "*" not in rule["verbs"]
            and "*" not in rule["resources"]
            and "*" not in rule["apiGroups"]
        )
        assert "secrets" not in rule["resources"]
