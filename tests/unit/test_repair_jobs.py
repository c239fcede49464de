"""Repair CronJob and Job builders: valid Kubernetes, the shared Job shape, args the CLI
accepts, and the report read back into status."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
import typer

from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.api.validate import parse_cluster
from chroma_operator.build import build_all, owner_of
from chroma_operator.build.meta import Owner, with_spec_hash
from chroma_operator.build.repair import (
    REPAIR_ANNOTATION,
    build_repair_cronjob,
    build_repair_job,
)
from chroma_operator.reconcile import jobs
from chroma_operator.reconcile.repair import repair_outcome
from chroma_operator.repair import cli as repair_cli
from manifests import validate_manifest

K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
UID = "0f6a3c1e-1111-4c2b-9a55-5b0c9d1f0a01"
CUSTOM = {
    "enabled": True,
    "schedule": "@daily",
    "collection": "docs",
    "recordsPerSecond": 250,
    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
}


def _doc(repair: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "docs", "namespace": "search"}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "chroma.operator.dev/v1alpha1",
        "kind": "ChromaCluster",
        "metadata": meta,
        "spec": {"replicas": 2, "repair": repair},
    }


def _spec(repair: dict[str, Any]) -> tuple[Owner, ChromaClusterSpec]:
    cluster = parse_cluster(_doc(repair))
    return owner_of(cluster, "default", UID), cluster.spec


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("repair", [{"enabled": True}, CUSTOM])
def test_validate_against_kubernetes(version: str, repair: dict[str, Any]) -> None:
    owner, spec = _spec(repair)
    cron = build_repair_cronjob(owner, spec)
    assert cron is not None
    for manifest in (cron, build_repair_job(owner, spec, "2026-12-01T21:00")):
        kubernetes_validate.validate(with_spec_hash(manifest), version, strict=True)
        validate_manifest(with_spec_hash(manifest), version)


def test_cronjob_only_when_enabled_job_only_on_annotation() -> None:
    cluster = parse_cluster(_doc({}))
    kinds = {(m["kind"], m["metadata"]["name"]) for m in build_all(cluster, owner_of(cluster))}
    assert not any(n.startswith("docs-repair") for _, n in kinds)
    cluster = parse_cluster(_doc({"enabled": True}, {REPAIR_ANNOTATION: "now"}))
    built = build_all(cluster, owner_of(cluster))
    names = {(m["kind"], m["metadata"]["name"]) for m in built}
    assert ("CronJob", "docs-repair") in names
    job = next(m for m in built if m["kind"] == "Job")
    assert job["metadata"]["name"].startswith("docs-repair-")
    assert job["metadata"]["annotations"][REPAIR_ANNOTATION] == "now"


def test_shares_the_tuning_job_shape() -> None:
    owner, spec = _spec(CUSTOM)
    cron = build_repair_cronjob(owner, spec)
    assert cron is not None and cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["schedule"] == "@daily"
    js = cron["spec"]["jobTemplate"]["spec"]
    rule = js["podFailurePolicy"]["rules"][0]
    assert rule["onExitCodes"] == {"containerName": "repair", "operator": "In", "values": [2, 3]}
    (c,) = js["template"]["spec"]["containers"]
    assert c["name"] == "repair"
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert c["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"memory": "2Gi"},
    }
    labels = js["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "repair"


def test_job_name_follows_the_request_and_settings() -> None:
    owner, spec = _spec({})
    a = build_repair_job(owner, spec, "first")["metadata"]["name"]
    assert a == build_repair_job(owner, spec, "first")["metadata"]["name"]
    assert a != build_repair_job(owner, spec, "second")["metadata"]["name"]
    _, other = _spec({"recordsPerSecond": 10})
    assert a != build_repair_job(owner, other, "first")["metadata"]["name"]
    long_owner = Owner(name="a" * 40, namespace="ns")
    assert len(build_repair_job(long_owner, spec, "x")["metadata"]["name"]) <= 63
    cron = build_repair_cronjob(long_owner, _spec({"enabled": True})[1])
    assert cron is not None and len(cron["metadata"]["name"]) <= 52


def test_args_target_the_front_service_and_parse_with_the_real_cli() -> None:
    owner, spec = _spec(CUSTOM)
    args = build_repair_job(owner, spec, "x")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["repair", "--url", "http://docs.search.svc.cluster.local:8000"]
    assert args[args.index("--records-per-second") + 1] == "250"
    assert args[args.index("--collection") + 1] == "docs"
    cmd = typer.main.get_command_from_info(
        typer.models.CommandInfo(callback=repair_cli.command),
        pretty_exceptions_short=True,
        rich_markup_mode=None,
    )
    ctx = cmd.make_context("repair", args[1:])
    assert ctx.params["records_per_second"] == 250
    assert ctx.params["progress"] is False


def test_report_into_status() -> None:
    report = {
        "v": 1,
        "status": "ok",
        "dryRun": False,
        "copied": 3,
        "removed": 2,
        "overwritten": 1,
        "bucketsCompared": 4096,
        "bucketsDiffering": 5,
        "seconds": 1.5,
    }
    pod = {
        "status": {
            "containerStatuses": [{"state": {"terminated": {"message": json.dumps(report)}}}]
        }
    }
    parsed = jobs.parse_result(jobs.termination_message([pod]))
    record, ok, reason, message = repair_outcome("docs-repair-1", parsed)
    assert ok and reason == "Converged" and record["job"] == "docs-repair-1" and "v" not in record
    assert "3 copied, 2 removed, 1 overwritten in 5 of 4096 buckets" in message
    failed = {
        **report,
        "status": "failed",
        "reason": "replica-unreachable",
        "message": "shard-1-1 down",
    }
    record, ok, reason, message = repair_outcome("j", failed)
    assert not ok and reason == "ReplicaUnreachable" and message.startswith("shard-1-1 down")
    record, ok, reason, _ = repair_outcome("j", jobs.parse_result("Traceback ..."))
    assert not ok and reason == "NoResult" and record["status"] == "failed"
