"""`chroma-operator install generate` and `helm install` create the same objects."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from chart_values import NAMESPACE, RELEASE, Render
from chroma_operator.cli import app

# What only says who installed an object (Helm or the plain manifests), not what it is.
INSTALLER_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by"}
HOOK_ANNOTATIONS = {"helm.sh/hook", "helm.sh/hook-delete-policy"}


def _normalise(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    metas = [obj["metadata"]]
    template = obj.get("spec", {}).get("template")
    if isinstance(template, dict):
        metas.append(template["metadata"])
    for meta in metas:
        for key in INSTALLER_LABELS:
            meta.get("labels", {}).pop(key, None)
        for key in HOOK_ANNOTATIONS:
            meta.get("annotations", {}).pop(key, None)
        if meta.get("annotations") == {}:
            meta.pop("annotations")
    return obj


def _keyed(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    out = {}
    for doc in docs:
        meta = doc["metadata"]
        out[(doc["kind"], meta.get("namespace", ""), meta["name"])] = _normalise(doc)
    return out


CASES = {
    "default": ({}, []),
    "namespaced": (
        {"watchNamespaces": ["search", "team-a"]},
        ["--watch-namespaces", "search,team-a"],
    ),
    "ha": (
        {
            "replicaCount": 2,
            "image": {"repository": "registry.example/chroma-operator", "tag": "0.1.0-rc1"},
        },
        ["--replicas", "2", "--image", "registry.example/chroma-operator:0.1.0-rc1"],
    ),
    "no-crds": ({"crds": {"install": False}}, ["--no-crds"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_install_generate_equals_the_chart(render: Render, case: str) -> None:
    values, flags = CASES[case]
    result = CliRunner().invoke(
        app,
        ["install", "generate", "--namespace", NAMESPACE, "--name", RELEASE, *flags],
    )
    assert result.exit_code == 0, result.output
    generated = [d for d in yaml.safe_load_all(result.stdout) if d]
    namespaces = [d for d in generated if d["kind"] == "Namespace"]
    assert [n["metadata"]["name"] for n in namespaces] == [NAMESPACE]
    generated = [d for d in generated if d["kind"] != "Namespace"]

    # The chart keeps CRDs on uninstall by default; plain manifests have no uninstall.
    chart = render({**values, "crds": {**values.get("crds", {}), "keep": False}})
    ours, theirs = _keyed(generated), _keyed(chart)
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        assert ours[key] == theirs[key], key
