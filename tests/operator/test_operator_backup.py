"""Backups under the operator: a ChromaBackup becomes a Job whose report lands in the
ChromaBackup's status; `spec.backup` becomes a CronJob that backs up and prunes;
`spec.bootstrap.fromBackup` restores a new cluster once its shards are ready, and the
cluster is Ready only after the restore Job reported a verified restore."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

from chroma_operator.api.backup_crd import build_backup_crd
from chroma_operator.build.naming import shard as shard_name
from chroma_operator.reconcile.kube import Kube
from crdcheck import admit
from kube_emulator import ApiServer, events_of, running_operator
from kubectl import cluster_doc, eventually, finish_job, kubectl_apply
from manifests import validate_manifest

NS = "backups"
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
API = "chroma.operator.dev/v1alpha1"


def backup_doc(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    doc = {
        "apiVersion": API,
        "kind": "ChromaBackup",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }
    stored, errors = admit(build_backup_crd(), doc)
    assert not errors, errors
    return dict(stored)


async def mark_shards_ready(kube: Kube, cluster: str, shards: int) -> None:
    for i in range(shards):
        await kube.patch_status(
            "apps/v1",
            "StatefulSet",
            NS,
            shard_name(cluster, i),
            {"readyReplicas": 1, "replicas": 1},
        )


def validate_manifests(objs: list[dict[str, Any]]) -> None:
    """What the operator wrote, less the server's bookkeeping, is a valid object."""
    for obj in objs:
        clean = {k: v for k, v in obj.items() if k != "status"}
        meta = clean["metadata"]
        clean["metadata"] = {
            k: meta[k]
            for k in ("name", "namespace", "labels", "annotations", "ownerReferences")
            if k in meta
        }
        for version in K8S_VERSIONS:
            validate_manifest(clean, version)


def container(job: dict[str, Any]) -> dict[str, Any]:
    spec = job["spec"]
    template = (
        spec["jobTemplate"]["spec"]["template"] if "jobTemplate" in spec else spec["template"]
    )
    return dict(template["spec"]["containers"][0])


async def test_chromabackup_runs_a_job_and_reports_into_status(
    apiserver: ApiServer, kube: Kube
) -> None:
    await kubectl_apply(kube, cluster_doc("search", NS, {"shards": 2}))
    with running_operator(str(apiserver.url), [NS]):
        await kube.create(
            backup_doc(
                "nightly-1",
                {"cluster": "search", "destination": "s3://bk/search", "credentialsSecret": "s3"},
            )
        )
        job = await eventually(
            lambda: kube.get("batch/v1", "Job", NS, "nightly-1-backup"), lambda j: j is not None
        )
        validate_manifests([job])
        c = container(job)
        assert c["args"][:2] == ["backup", "create"]
        assert c["args"][c["args"].index("--to") + 1] == "s3://bk/search"
        assert c["args"][c["args"].index("--url") + 1].startswith("http://search")
        assert c["envFrom"] == [{"secretRef": {"name": "s3"}}]
        running = await eventually(
            lambda: kube.get(API, "ChromaBackup", NS, "nightly-1"),
            lambda b: (b.get("status") or {}).get("phase") == "Running",
        )
        assert running["status"]["job"] == "nightly-1-backup"

        report = {
            "status": "ok",
            "backupId": "20261201T210000Z-ab12",
            "location": "s3://bk/search/20261201T210000Z-ab12",
            "started": "2026-12-01T21:00:00Z",
            "completed": "2026-12-01T21:01:00Z",
            "collections": 3,
            "records": 1200,
            "bytes": 456789,
            "pointInTime": True,
        }
        await finish_job(kube, NS, "nightly-1-backup", "backup", report)
        done = await eventually(
            lambda: kube.get(API, "ChromaBackup", NS, "nightly-1"),
            lambda b: b["status"]["phase"] == "Completed",
        )
        st = done["status"]
        assert (st["backupId"], st["records"], st["collections"], st["bytes"]) == (
            "20261201T210000Z-ab12",
            1200,
            3,
            456789,
        )
        assert st["started"] == "2026-12-01T21:00:00Z"
        assert st["completed"] == "2026-12-01T21:01:00Z"
        await eventually(
            lambda: events_of(apiserver),
            lambda evs: "BackupCompleted" in {e["reason"] for e in evs},
        )

        # A failed backup Job is a Failed ChromaBackup with a Warning.
        await kube.create(backup_doc("nightly-2", {"cluster": "search", "destination": "/x"}))
        await eventually(
            lambda: kube.get("batch/v1", "Job", NS, "nightly-2-backup"), lambda j: j is not None
        )
        await finish_job(
            kube, NS, "nightly-2-backup", "backup", {"status": "failed", "message": "no bucket"}
        )
        failed = await eventually(
            lambda: kube.get(API, "ChromaBackup", NS, "nightly-2"),
            lambda b: b["status"]["phase"] == "Failed",
        )
        assert failed["status"]["message"] == "no bucket"
        await eventually(
            lambda: events_of(apiserver), lambda evs: "BackupFailed" in {e["reason"] for e in evs}
        )

        # A backup of a cluster that does not exist fails at once, without a Job.
        await kube.create(backup_doc("orphan", {"cluster": "nope", "destination": "/x"}))
        orphan = await eventually(
            lambda: kube.get(API, "ChromaBackup", NS, "orphan"),
            lambda b: (b.get("status") or {}).get("phase") == "Failed",
        )
        assert "nope not found" in orphan["status"]["message"]
        assert await kube.get("batch/v1", "Job", NS, "orphan-backup") is None


async def test_scheduled_backups_become_a_cronjob_with_retention(
    apiserver: ApiServer, kube: Kube
) -> None:
    doc = cluster_doc(
        "sched",
        NS,
        {
            "shards": 1,
            "backup": {
                "schedule": "0 2 * * *",
                "destination": "s3://bk/sched",
                "credentialsSecret": "s3",
                "retention": {"keep": 5, "maxAgeDays": 30},
            },
        },
    )
    await kubectl_apply(kube, doc)
    with running_operator(str(apiserver.url), [NS]):
        cron = await eventually(
            lambda: kube.get("batch/v1", "CronJob", NS, "sched-backup"), lambda c: c is not None
        )
        validate_manifests([cron])
        assert cron["spec"]["schedule"] == "0 2 * * *"
        assert cron["spec"]["concurrencyPolicy"] == "Forbid"
        args = container(cron)["args"]
        assert args[:2] == ["backup", "create"]
        assert args[args.index("--keep") + 1] == "5"
        assert args[args.index("--max-age-days") + 1] == "30"
        assert container(cron)["envFrom"] == [{"secretRef": {"name": "s3"}}]

        # Removing spec.backup (a merge patch with null, as kubectl sends) removes the CronJob.
        doc["spec"]["backup"] = None
        await kubectl_apply(kube, doc, validate=False)
        await eventually(
            lambda: kube.get("batch/v1", "CronJob", NS, "sched-backup"), lambda c: c is None
        )


async def _restore_until_ready_or_failed(
    apiserver: ApiServer, kube: Kube, name: str, result: dict[str, Any]
) -> dict[str, Any]:
    boot = {"fromBackup": {"destination": "s3://bk/src", "backupId": "b1"}}
    await kubectl_apply(kube, cluster_doc(name, NS, {"shards": 2, "bootstrap": boot}))
    with running_operator(str(apiserver.url), [NS]):
        # Both shards' StatefulSets (they may be written in either order).
        await eventually(
            lambda: kube.list("apps/v1", "StatefulSet", NS, {"app.kubernetes.io/instance": name}),
            lambda items: len(items) == 2,
        )
        restore_jobs = {"app.kubernetes.io/component": "restore"}
        assert await kube.list("batch/v1", "Job", NS, restore_jobs) == []

        async def ready_then_jobs() -> list[dict[str, Any]]:
            """Like a kubelet, keep reporting the shards ready until the Job appears."""
            await mark_shards_ready(kube, name, 2)
            return await kube.list(
                "batch/v1", "Job", NS, {**restore_jobs, "app.kubernetes.io/instance": name}
            )

        jobs = await eventually(ready_then_jobs, lambda items: len(items) == 1)
        job = jobs[0]
        validate_manifests([job])
        args = container(job)["args"]
        assert args[:2] == ["backup", "restore"]
        assert args[args.index("--from") + 1] == "s3://bk/src/b1"
        # Shards are up, the restore runs: not Ready yet.
        waiting = await eventually(
            lambda: kube.get(API, "ChromaCluster", NS, name),
            lambda c: (c["status"].get("restore") or {}).get("phase") == "Running",
        )
        ready = next(c for c in waiting["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False" and ready["reason"] == "Restoring"
        assert waiting["status"]["phase"] != "Ready"
        await finish_job(kube, NS, job["metadata"]["name"], "restore", result)
        return await eventually(
            lambda: kube.get(API, "ChromaCluster", NS, name),
            lambda c: (
                c["status"]["restore"]["phase"] in ("Completed", "Failed")
                and any(
                    x["type"] == "Restored" and x["reason"] != "Restoring"
                    for x in c["status"]["conditions"]
                )
                and all(
                    x["reason"] != "Restoring"
                    for x in c["status"]["conditions"]
                    if x["type"] == "Ready"
                )
                and (c["status"]["phase"] == "Ready")
                == (c["status"]["restore"]["phase"] == "Completed")
            ),
        )


async def test_bootstrap_from_backup_is_ready_only_after_a_verified_restore(
    apiserver: ApiServer, kube: Kube
) -> None:
    result = {"status": "ok", "backupId": "b1", "collections": 2, "records": 500, "verified": True}
    cluster = await _restore_until_ready_or_failed(apiserver, kube, "restored", result)
    status = cluster["status"]
    assert status["phase"] == "Ready" and status["restore"]["records"] == 500
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Restored"]["status"] == "True" and conds["Ready"]["status"] == "True"
    await eventually(
        lambda: events_of(apiserver), lambda evs: "Restored" in {e["reason"] for e in evs}
    )


async def test_failed_restore_leaves_the_cluster_not_ready_with_a_warning(
    apiserver: ApiServer, kube: Kube
) -> None:
    result = {"status": "failed", "message": "restore of s3://bk/src/b1 failed"}
    cluster = await _restore_until_ready_or_failed(apiserver, kube, "broken", result)
    status = cluster["status"]
    conds = {c["type"]: c for c in status["conditions"]}
    assert status["restore"]["phase"] == "Failed"
    assert conds["Restored"]["status"] == "False" and conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "RestoreFailed"
    events = await eventually(
        lambda: events_of(apiserver), lambda evs: "RestoreFailed" in {e["reason"] for e in evs}
    )
    assert next(e for e in events if e["reason"] == "RestoreFailed")["type"] == "Warning"
