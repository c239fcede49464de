"""`chroma-operator install generate`: one valid YAML stream for `kubectl apply`."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from chroma_operator.api.backup_crd import build_backup_crd
from chroma_operator.api.crd import build_crd
from chroma_operator.cli import app
from chroma_operator.install import InstallOptions, build_install
from chroma_operator.install.chart_files import chart_files
from chroma_operator.reconcile.rbac import cluster_scoped_rules, operator_rules
from manifests import validate_manifest


def _docs(args: list[str]) -> list[dict[str, object]]:
    result = CliRunner().invoke(app, ["install", "generate", *args])
    assert result.exit_code == 0, result.output
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_stream_is_in_apply_order() -> None:
    kinds = [d["kind"] for d in _docs([])]
    assert kinds == [
        "Namespace",
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "Deployment",
        "ClusterKopfPeering",
    ]


@pytest.mark.parametrize("version", ["1.30.0", kubernetes_validate.latest_version()])
@pytest.mark.parametrize(
    "opts",
    [
        InstallOptions(),
        InstallOptions(watch_namespaces=("a", "b"), namespace="ops"),
        InstallOptions(replicas=3),
    ],
    ids=["cluster", "namespaced", "ha"],
)
def test_objects_are_valid(opts: InstallOptions, version: str) -> None:
    for obj in build_install(opts):
        if obj["apiVersion"].startswith("kopf.dev/"):
            continue  # custom kinds: checked against their CRD in tests/chart
        validate_manifest(obj, version)


def test_namespaced_mode_has_no_cluster_permissions() -> None:
    docs = _docs(["--watch-namespaces", "a, b", "-n", "ops"])
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
    roles = [d for d in docs if d["kind"] == "Role"]
    assert [r["metadata"]["namespace"] for r in roles] == ["a", "b"]  # type: ignore[index]
    assert all(r["rules"] == operator_rules() for r in roles)
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert all(
        b["subjects"] == [{"kind": "ServiceAccount", "name": "chroma-operator", "namespace": "ops"}]
        for b in bindings
    )


def test_cluster_role_is_the_operator_rules() -> None:
    (role,) = [d for d in build_install() if d["kind"] == "ClusterRole"]
    assert role["rules"] == operator_rules() + cluster_scoped_rules()


def test_crd_is_the_generated_one() -> None:
    crds = [d for d in build_install() if d["kind"] == "CustomResourceDefinition"]
    assert crds[0] == build_crd()
    assert crds[1] == build_backup_crd()
    assert {c["spec"]["group"] for c in crds[2:]} == {"kopf.dev"}


def test_image_and_ha_flags() -> None:
    docs = _docs(["--image", "example.org/op@sha256:" + "a" * 64, "--replicas", "2"])
    (sts,) = [d for d in docs if d["kind"] == "StatefulSet"]
    container = sts["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert container["image"] == "example.org/op@sha256:" + "a" * 64
    assert "--priority" in container["args"]


def test_no_crds_and_no_namespace() -> None:
    kinds = [d["kind"] for d in _docs(["--no-crds", "--no-create-namespace"])]
    assert "CustomResourceDefinition" not in kinds and "Namespace" not in kinds


def test_chart_files_command_checks_and_writes(tmp_path: Path, repo_root: Path) -> None:
    runner = CliRunner()
    committed = runner.invoke(
        app,
        ["install", "chart-files", "--check", "--chart", str(repo_root / "charts/chroma-operator")],
    )
    assert committed.exit_code == 0, committed.output
    assert (
        runner.invoke(
            app, ["install", "chart-files", "--check", "--chart", str(tmp_path)]
        ).exit_code
        == 1
    )
    wrote = runner.invoke(app, ["install", "chart-files", "--chart", str(tmp_path)])
    assert wrote.exit_code == 0
    for rel, text in chart_files().items():
        assert (tmp_path / rel).read_text() == text
