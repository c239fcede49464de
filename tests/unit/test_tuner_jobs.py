"""Tuning CronJob and Job builders: valid Kubernetes, safe defaults, args the CLI accepts."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import typer

from chroma_operator.api.models import ChromaClusterSpec
from chroma_operator.api.validate import parse_cluster
from chroma_operator.build import owner_of
from chroma_operator.build.meta import Owner, with_spec_hash
from chroma_operator.build.naming import TUNE_ANNOTATION
from chroma_operator.build.tuning import (
    build_tuning_cronjob,
    build_tuning_job,
    tune_job_name,
)
from chroma_operator.tuner import cli as tuner_cli

K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
UID = "0f6a3c1e-1111-4c2b-9a55-5b0c9d1f0a01"


def _spec(tuning: dict[str, Any] | None = None, **extra: Any) -> tuple[Owner, ChromaClusterSpec]:
    doc = {
        "apiVersion": "chroma.operator.dev/v1alpha1",
        "kind": "ChromaCluster",
        "metadata": {"name": "docs", "namespace": "search"},
        "spec": {"tuning": tuning or {}, **extra},
    }
    cluster = parse_cluster(doc)
    return owner_of(cluster, "default", UID), cluster.spec


TUNINGS = {
    "defaults": {"enabled": True},
    "custom": {
        "enabled": True,
        "schedule": "@daily",
        "collection": "debian-packages",
        "targetRecall": 0.99,
        "k": 20,
        "sampleSize": 60000,
        "queries": 1000,
        "grid": {"maxNeighbors": [16], "efConstruction": [200], "efSearch": [50, 100]},
        "apply": "efSearch",
        "resources": {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"memory": "16Gi"}},
    },
}


def _manifests(tuning: dict[str, Any]) -> list[dict[str, Any]]:
    owner, spec = _spec(tuning)
    cron = build_tuning_cronjob(owner, spec)
    assert cron is not None
    return [cron, build_tuning_job(owner, spec, "2026-11-25T12:00:00Z")]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", list(TUNINGS))
def test_validate_against_kubernetes(version: str, name: str) -> None:
    for manifest in _manifests(TUNINGS[name]):
        kubernetes_validate.validate(manifest, version, strict=True)
        kubernetes_validate.validate(with_spec_hash(manifest), version, strict=True)


def test_no_cronjob_unless_enabled() -> None:
    owner, spec = _spec({"enabled": False})
    assert build_tuning_cronjob(owner, spec) is None
    # A one-off Job asked for by annotation still runs.
    assert build_tuning_job(owner, spec, "now")["kind"] == "Job"


def _job_spec(m: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = m["spec"]["jobTemplate"]["spec"] if m["kind"] == "CronJob" else m["spec"]
    return spec


def test_safety_settings() -> None:
    cron, job = _manifests(TUNINGS["custom"])
    assert cron["metadata"]["name"] == "docs-tune"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["schedule"] == "@daily"
    for m in (cron, job):
        js = _job_spec(m)
        assert js["backoffLimit"] >= 1
        assert js["ttlSecondsAfterFinished"] > 0
        assert js["activeDeadlineSeconds"] > 0
        rule = js["podFailurePolicy"]["rules"][0]
        assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [2, 3, 4]
        pod = js["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (c,) = pod["containers"]
        assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert c["resources"] == {
            "requests": {"cpu": "4", "memory": "8Gi"},
            "limits": {"memory": "16Gi"},
        }
        assert m["metadata"]["ownerReferences"][0]["uid"] == UID
        assert m["metadata"]["labels"]["app.kubernetes.io/component"] == "tuner"


def test_job_name_follows_the_request_and_the_tuning_spec() -> None:
    owner, spec = _spec({"enabled": True})
    a = build_tuning_job(owner, spec, "first")
    assert a["metadata"]["name"].startswith("docs-tune-")
    assert len(a["metadata"]["name"]) <= 63
    assert a["metadata"]["annotations"][TUNE_ANNOTATION] == "first"
    assert build_tuning_job(owner, spec, "first") == a
    assert build_tuning_job(owner, spec, "second")["metadata"]["name"] != a["metadata"]["name"]
    _, other = _spec({"enabled": True, "targetRecall": 0.9})
    assert tune_job_name("docs", "first", other.tuning) != a["metadata"]["name"]


def test_longest_cluster_name_fits_kubernetes_limits() -> None:
    owner = Owner(name="a" * 40, namespace="ns")
    _, spec = _spec({"enabled": True})
    cron = build_tuning_cronjob(owner, spec)
    assert cron is not None and len(cron["metadata"]["name"]) <= 52  # CronJob limit
    assert len(build_tuning_job(owner, spec, "x")["metadata"]["name"]) <= 63


def test_args_target_the_front_service_and_parse_with_the_real_cli() -> None:
    (_, job) = _manifests(TUNINGS["custom"])
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["tune", "--url", "http://docs.search.svc.cluster.local:8000"]
    cmd = typer.main.get_command_from_info(
        typer.models.CommandInfo(callback=tuner_cli.command),
        pretty_exceptions_short=True,
        rich_markup_mode=None,
    )
    ctx = cmd.make_context("tune", args[1:])
    p = ctx.params
    assert p["collection"] == "debian-packages"
    assert (p["k"], p["target_recall"], p["sample"], p["queries"]) == (20, 0.99, 60000, 1000)
    assert tuner_cli.parse_grid(p["grid"]) == {
        "max_neighbors": [16],
        "ef_construction": [200],
        "ef_search": [50, 100],
    }
    assert p["progress"] is False
    assert str(p["report"]).startswith("/tmp/")
    assert p["apply_ef_search"] is True  # apply: efSearch; the Job holds the job token


def test_the_job_applies_only_when_the_spec_asks() -> None:
    (_, job) = _manifests(TUNINGS["defaults"])  # apply: none
    assert "--apply-ef-search" not in job["spec"]["template"]["spec"]["containers"][0]["args"]


def test_no_collection_flag_when_the_spec_leaves_it_to_the_tuner() -> None:
    (_, job) = _manifests(TUNINGS["defaults"])
    assert "--collection" not in job["spec"]["template"]["spec"]["containers"][0]["args"]
