"""The CRD is generated from the models, committed, structural, and refuses bad resources."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from chroma_operator.api.crd import build_crd, crd_yaml
from chroma_operator.api.rules import RULES
from chroma_operator.api.validate import InvalidResource, parse_cluster
from crdcheck import admit

CRD = build_crd()


def _walk(node: Any, path: str = ""):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def test_committed_crd_matches_models(repo_root: Path) -> None:
    committed = (repo_root / "crds" / "chromacluster.yaml").read_text()
    assert committed == crd_yaml(), (
        "crds/chromacluster.yaml drifted: run `chroma-operator crd -o crds/chromacluster.yaml`"
    )


def test_crd_is_a_valid_kubernetes_object() -> None:
    for version in ("1.30.0", kubernetes_validate.latest_version()):
        kubernetes_validate.validate(CRD, version, strict=True)


def test_schema_is_structural() -> None:
    schema = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        if path.endswith("/properties") or path.endswith("x-kubernetes-validations"):
            continue
        if "type" in node or "x-kubernetes-preserve-unknown-fields" in node:
            continue
        if path.split("/")[-2:-1] == ["properties"] or path.endswith("/items"):
            raise AssertionError(f"{path} has no type")


def test_every_spec_field_is_documented() -> None:
    spec = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for path, node in _walk(spec):
        if path.split("/")[-2:-1] == ["properties"]:
            assert node.get("description"), f"spec{path} has no description"


def test_crd_names_and_columns() -> None:
    names = CRD["spec"]["names"]
    assert names["shortNames"] == ["chroma", "cc"]
    assert names["categories"] == ["chroma"]
    version = CRD["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    cols = [c["name"] for c in version["additionalPrinterColumns"]]
    assert cols == ["Shards", "Replicas", "Ready", "Phase", "Resharding", "Age"]


def test_rules_are_in_the_crd() -> None:
    in_crd = {v["rule"] for _, node in _walk(CRD) for v in node.get("x-kubernetes-validations", [])}
    assert in_crd == {rule.cel for rule in RULES}


@pytest.mark.parametrize("name", ["quickstart", "production"])
def test_examples_are_admitted(name: str, request: pytest.FixtureRequest) -> None:
    doc = request.getfixturevalue(name)
    stored, errors = admit(CRD, doc)
    assert errors == []
    # What the API server stores parses to the same cluster as the file itself.
    assert parse_cluster(stored).spec == parse_cluster(doc).spec


def test_api_server_defaults_equal_model_defaults() -> None:
    """An empty spec defaulted by the CRD equals the models' defaults, field for field."""
    doc = {
        "apiVersion": "chroma.operator.dev/v1alpha1",
        "kind": "ChromaCluster",
        "metadata": {"name": "x"},
    }
    stored, errors = admit(CRD, doc)
    assert errors == []
    from_models = parse_cluster(doc).spec.model_dump(by_alias=True, exclude_none=True)
    assert stored["spec"] == from_models


def _mutate(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    node = doc
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {}) if not part.isdigit() else node[int(part)]
    last = parts[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return doc


INVALID: list[tuple[str, Any, str]] = [
    ("spec.shards", 0, "spec.shards"),
    ("spec.shards", 1000, "spec.shards"),
    ("spec.shards", "two", "spec.shards"),
    ("spec.replicas", 0, "spec.replicas"),
    ("spec.hnsw.space", "euclid", "spec.hnsw.space"),
    ("spec.hnsw.maxNeighbors", 1, "spec.hnsw.maxNeighbors"),
    ("spec.hnsw.efSearch", 0, "spec.hnsw.efSearch"),
    ("spec.hnsw.resizeFactor", 0.5, "spec.hnsw.resizeFactor"),
    ("spec.storage.size", "ten gigs", "spec.storage.size"),
    ("spec.resources.requests.cpu", "lots", "spec.resources.requests.cpu"),
    ("spec.router.cache.ttlSeconds", 0, "spec.router.cache.ttlSeconds"),
    ("spec.router.port", 8000, "spec.router.port"),
    ("spec.encoder.gpu", -1, "spec.encoder.gpu"),
    ("spec.encoder.dtype", "int4", "spec.encoder.dtype"),
    ("spec.encoder.batching.maxBatchSize", 0, "spec.encoder.batching.maxBatchSize"),
    ("spec.encoder.autoscaling.minReplicas", 0, "spec.encoder.autoscaling.minReplicas"),
    ("spec.encoder.autoscaling.maxReplicas", 0, "spec.encoder.autoscaling.maxReplicas"),
    ("spec.encoder.autoscaling.provider", "vpa", "spec.encoder.autoscaling.provider"),
    (
        "spec.encoder.autoscaling.targetQueuePerReplica",
        0,
        "spec.encoder.autoscaling.targetQueuePerReplica",
    ),
    ("spec.tuning.targetRecall", 1.5, "spec.tuning.targetRecall"),
    ("spec.tuning.schedule", "every sunday", "spec.tuning.schedule"),
    ("spec.tuning.apply", "everything", "spec.tuning.apply"),
    ("spec.tuning.k", 50, "spec.tuning.k"),
    ("spec.tuning.queries", 70000, "spec.tuning.queries"),
    ("spec.slo.objectives.0.target", 1, "spec.slo.objectives[0].target"),
    ("spec.slo.objectives.0.target", 0, "spec.slo.objectives[0].target"),
    ("spec.slo.objectives.0.thresholdMs", None, "spec.slo.objectives[0].thresholdMs"),
    ("spec.slo.objectives.1.name", "query-latency", "spec.slo.objectives"),
    ("spec.slo.objectives.0.window", "30 days", "spec.slo.objectives[0].window"),
    ("spec.monitoring.scrapeInterval", "0s", "spec.monitoring.scrapeInterval"),
    ("spec.version", "latest", "spec.version"),
    ("spec.unknownField", 1, "spec"),
]


def _without_none(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: _without_none(v) for k, v in doc.items() if v is not None}
    if isinstance(doc, list):
        return [_without_none(v) for v in doc]
    return doc


@pytest.mark.parametrize(
    ("path", "value", "field"), INVALID, ids=[f"{p}={v}" for p, v, _ in INVALID]
)
def test_invalid_resources_are_refused_naming_the_field(
    production: dict[str, Any], path: str, value: Any, field: str
) -> None:
    doc = _without_none(_mutate(production, path, value))
    _, errors = admit(CRD, doc)
    if path == "spec.unknownField":
        # The API server prunes unknown fields rather than refusing them; our own
        # validation (render, reconcile) refuses them so typos do not pass silently.
        assert errors == []
    else:
        assert errors, f"CRD admitted {path}={value!r}"
        assert any(e.startswith(field) for e in errors), errors
    with pytest.raises(InvalidResource) as refused:
        parse_cluster(doc)
    assert any(p.startswith(field) for p in refused.value.problems), refused.value.problems


def test_shard_count_can_change_online(quickstart: dict[str, Any]) -> None:
    changed = _mutate(quickstart, "spec.shards", 3)
    _, errors = admit(CRD, changed, old=quickstart)
    assert errors == []  # the operator reshards online (and refuses conflicting moves)
    zero = _mutate(quickstart, "spec.shards", 0)
    assert admit(CRD, zero, old=quickstart)[1]
    same = _mutate(quickstart, "spec.replicas", 2)
    assert admit(CRD, same, old=quickstart)[1] == []


def test_python_rules_agree_with_cel(production: dict[str, Any]) -> None:
    """Each cross-field rule, broken on purpose: CEL and the Python check both refuse it."""
    broken = {
        "tuning.k": _mutate(production, "spec.tuning.k", 500),
        "tuning.queries": _mutate(production, "spec.tuning.queries", 60000),
        "objectives.thresholdMs": _mutate(production, "spec.slo.objectives.0.thresholdMs", None),
        "objectives.target": _mutate(production, "spec.slo.objectives.0.target", 1.0),
        "objectives.name": _mutate(production, "spec.slo.objectives.1.name", "availability"),
        "monitoring": _mutate(production, "spec.slo.objectives", []),
        "router.port": _mutate(production, "spec.router.port", 8000),
        "auth.jobToken": _mutate(production, "spec.auth", {"jobToken": {"name": "job-token"}}),
        "tls.caConfigMap": _mutate(production, "spec.tls", {"caConfigMap": {"name": "ca"}}),
        "autoscaling": _mutate(
            production, "spec.encoder.autoscaling", {"minReplicas": 5, "maxReplicas": 2}
        ),
    }
    for what, doc in broken.items():
        doc = _without_none(doc)
        _, cel = admit(CRD, doc)
        with pytest.raises(InvalidResource) as python:
            parse_cluster(doc)
        assert cel, what
        assert set(cel) <= set(python.value.problems) or cel == python.value.problems, (
            what,
            cel,
            python.value.problems,
        )


def test_autoscaling_min_above_max_is_refused_naming_the_field(
    production: dict[str, Any],
) -> None:
    doc = _mutate(production, "spec.encoder.autoscaling", {"minReplicas": 3, "maxReplicas": 2})
    message = "encoder.autoscaling.minReplicas must not be above encoder.autoscaling.maxReplicas"
    _, errors = admit(CRD, doc)
    assert errors == [f"spec.encoder.autoscaling.minReplicas: {message}"]
    with pytest.raises(InvalidResource) as refused:
        parse_cluster(doc)
    assert refused.value.problems == [f"spec.encoder.autoscaling.minReplicas: {message}"]
    equal = _mutate(production, "spec.encoder.autoscaling", {"minReplicas": 2, "maxReplicas": 2})
    assert admit(CRD, equal)[1] == []
    assert parse_cluster(equal).spec.encoder.autoscaling.max_replicas == 2


def test_readme_field_reference_is_current(repo_root: Path) -> None:
    from chroma_operator.api.reference import reference_markdown

    readme = (repo_root / "README.md").read_text()
    section = readme.split("<!-- reference:start -->\n", 1)[1].split("<!-- reference:end -->", 1)[0]
    assert section == reference_markdown(), "README field reference drifted: regenerate it"


def test_committed_backup_crd_matches_the_models(repo_root: Path) -> None:
    from chroma_operator.api.backup_crd import backup_crd_yaml

    committed = (repo_root / "crds" / "chromabackup.yaml").read_text()
    assert committed == backup_crd_yaml(), (
        "crds/chromabackup.yaml drifted: run `chroma-operator crd --kind ChromaBackup "
        "-o crds/chromabackup.yaml`"
    )


def test_backup_crd_admits_a_backup_and_freezes_its_spec() -> None:
    from chroma_operator.api.backup_crd import build_backup_crd

    crd = build_backup_crd()
    doc = {
        "apiVersion": "chroma.operator.dev/v1alpha1",
        "kind": "ChromaBackup",
        "metadata": {"name": "b1", "namespace": "default"},
        "spec": {"cluster": "search", "destination": "s3://bk/search", "credentialsSecret": "s3"},
    }
    _stored, errors = admit(crd, doc)
    assert errors == []
    _, errors = admit(crd, {**doc, "spec": {"cluster": "search"}})
    assert any("destination" in e for e in errors)
    changed = {**doc, "spec": {**doc["spec"], "destination": "s3://other"}}
    _, errors = admit(crd, changed, old={"spec": doc["spec"]})
    assert any("cannot be changed" in e for e in errors)


def test_backup_example_is_admitted_by_both_crds(repo_root: Path) -> None:
    import yaml

    from chroma_operator.api.backup_crd import build_backup_crd

    crds = {"ChromaCluster": CRD, "ChromaBackup": build_backup_crd()}
    docs = [d for d in yaml.safe_load_all((repo_root / "examples/backup.yaml").read_text()) if d]
    assert {d["kind"] for d in docs} == set(crds)
    for doc in docs:
        _stored, errors = admit(crds[doc["kind"]], doc)
        assert errors == [], (doc["kind"], errors)
