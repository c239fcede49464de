"""Operator Jobs through the routers' auth and TLS: every kind of Job (tuning, verify,
repair, backup, restore; one-off and scheduled) gets the job token from `auth.jobToken`
and only the CA of the TLS Secret, and reaches the routers over HTTPS.

The commands themselves are run against a real router with auth and TLS in
tests/integration/router/test_router_tls.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from chroma_operator.api.validate import InvalidResource, parse_cluster
from chroma_operator.build import build_all, owner_of
from chroma_operator.build.backup import build_backup_job
from chroma_operator.build.meta import Manifest
from chroma_operator.build.repair import build_repair_job
from chroma_operator.build.tuning import build_tuning_job, build_verify_job
from chroma_operator.cli import trust_cluster_ca
from manifests import validate_manifest

UID = "0f6a3c1e-2222-4c2b-9a55-5b0c9d1f0a01"
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
TOKEN_REF = {"name": "docs-job-token", "key": "token"}


def _doc(auth: dict[str, Any] | None, tls: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": 2,
        "tuning": {"enabled": True, "schedule": "@weekly"},
        "repair": {"enabled": True},
        "backup": {"schedule": "@daily", "destination": "s3://bucket/docs"},
        "bootstrap": {"fromBackup": {"destination": "s3://bucket/old", "backupId": "b1"}},
    }
    if auth is not None:
        spec["auth"] = auth
    if tls:
        spec["tls"] = {"secretName": "docs-tls"}
    return {
        "apiVersion": "chroma.operator.dev/v1alpha1",
        "kind": "ChromaCluster",
        "metadata": {"name": "docs", "namespace": "search"},
        "spec": spec,
    }


def every_job(doc: dict[str, Any]) -> list[Manifest]:
    """Every Job and CronJob the operator makes for the cluster."""
    cluster = parse_cluster(doc)
    owner = owner_of(cluster, "default", UID)
    spec = cluster.spec
    backup = {"metadata": {"name": "nightly", "uid": UID}, "spec": {"destination": "/b"}}
    made = [
        *build_all(cluster, owner, restore=True),
        build_tuning_job(owner, spec, "now"),
        build_verify_job(owner, spec, "rollout-1", "docs"),
        build_repair_job(owner, spec, "now"),
        build_backup_job(owner, spec, backup),
    ]
    jobs = [m for m in made if m["kind"] in ("Job", "CronJob")]
    kinds = {m["metadata"]["labels"]["app.kubernetes.io/component"] for m in jobs}
    assert {"tuner", "repair", "backup", "restore"} <= kinds, kinds
    return jobs


def pod_spec(job: Manifest) -> dict[str, Any]:
    spec = job["spec"]
    spec = spec["jobTemplate"]["spec"] if job["kind"] == "CronJob" else spec
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


def env_of(job: Manifest) -> dict[str, Any]:
    (container,) = pod_spec(job)["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def url_of(job: Manifest) -> str:
    (container,) = pod_spec(job)["containers"]
    args: list[str] = container["args"]
    return args[args.index("--url") + 1]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_jobs_carry_the_job_token_and_the_ca(version: str) -> None:
    auth = {"secretName": "docs-tokens", "jobToken": TOKEN_REF}
    for job in every_job(_doc(auth, tls=True)):
        what = job["metadata"]["name"]
        validate_manifest(job, version)
        env = env_of(job)
        assert env["CHROMA_TOKEN"] == {"secretKeyRef": TOKEN_REF}, what
        assert env["CHROMA_CA_FILE"] == "/etc/chroma-tls/ca.crt", what
        assert url_of(job) == "https://docs.search.svc.cluster.local:8000", what
        pod = pod_spec(job)
        (ca,) = [v for v in pod["volumes"] if v["name"] == "tls-ca"]
        # Only the CA: the TLS key never reaches a Job.
        assert ca["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}], what
        assert ca["secret"]["optional"] is True, what  # a public certificate has no ca.crt
        (container,) = pod["containers"]
        assert {"name": "tls-ca", "mountPath": "/etc/chroma-tls", "readOnly": True} in container[
            "volumeMounts"
        ]
        # The tokens file stays with the routers.
        assert all(v.get("secret", {}).get("secretName") != "docs-tokens" for v in pod["volumes"])


def test_without_auth_or_tls_jobs_use_plain_http_and_no_token() -> None:
    for job in every_job(_doc(None, tls=False)):
        env = env_of(job)
        assert "CHROMA_TOKEN" not in env and "CHROMA_CA_FILE" not in env
        assert url_of(job).startswith("http://")
        assert [v["name"] for v in pod_spec(job)["volumes"]] == ["tmp"]


def test_auth_without_a_job_token_gives_jobs_no_token() -> None:
    for job in every_job(_doc({"secretName": "docs-tokens"}, tls=False)):
        assert "CHROMA_TOKEN" not in env_of(job)


def test_a_job_token_without_a_tokens_file_is_refused() -> None:
    with pytest.raises(InvalidResource) as refused:
        parse_cluster(_doc({"jobToken": TOKEN_REF}, tls=False))
    assert refused.value.problems == [
        "spec.auth.jobToken: auth.jobToken needs auth.secretName "
        "(without a tokens file nothing checks it)"
    ]


def test_the_ca_is_trusted_only_when_the_secret_has_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Set, then removed, so the monkeypatch puts back whatever was there when the test ends.
    monkeypatch.setenv("SSL_CERT_FILE", "")
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.setenv("CHROMA_CA_FILE", str(tmp_path / "ca.crt"))
    trust_cluster_ca()  # no ca.crt in the Secret: the system's trust, untouched
    assert "SSL_CERT_FILE" not in os.environ
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    trust_cluster_ca()
    assert os.environ["SSL_CERT_FILE"] == str(tmp_path / "ca.crt")
