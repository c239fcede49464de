"""Validate any manifest we build: core kinds with kubernetes-validate (real Kubernetes
OpenAPI schemas), Prometheus Operator and KEDA kinds with their vendored CRD schemas."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from chroma_operator.build.meta import Manifest

VENDOR = Path(__file__).resolve().parent / "vendor" / "prometheus-operator"
KEDA_VENDOR = Path(__file__).resolve().parent / "vendor" / "keda"


def _crd_schema(filename: str, vendor: Path = VENDOR) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((vendor / filename).read_text()) if d]
    schema: dict[str, Any] = docs[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return _closed(schema)


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown fields refused: an API server would prune them silently,
    which hides a misspelt field; here it fails the test."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node.setdefault("additionalProperties", False)
            pattern = node.get("pattern")
            if isinstance(pattern, str) and pattern.startswith("^(?i)"):
                # RE2 takes a flag group anywhere; Python only at the very start.
                node["pattern"] = "(?i)^" + pattern[len("^(?i)") :]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(out)
    return out


PROMETHEUS_RULE_SCHEMA = _crd_schema("monitoring.coreos.com_prometheusrules.yaml")
SERVICE_MONITOR_SCHEMA = _crd_schema("monitoring.coreos.com_servicemonitors.extract.yaml")
SCHEMAS = {"PrometheusRule": PROMETHEUS_RULE_SCHEMA, "ServiceMonitor": SERVICE_MONITOR_SCHEMA}
SCALED_OBJECT_SCHEMA = _crd_schema("keda.sh_scaledobjects.extract.yaml", KEDA_VENDOR)


def check_schema(manifest: Manifest, schema: dict[str, Any]) -> None:
    """OpenAPI 3.0 schemas follow JSON Schema draft 4 (as tests/crdcheck.py does)."""
    validator = jsonschema.Draft4Validator(schema)
    validator.check_schema(schema)
    validator.validate(manifest)


def validate_metadata(manifest: Manifest, version: str) -> None:
    """ObjectMeta is `type: object` in a CRD schema; check it as the API server does, by
    validating the same metadata on a core kind."""
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": manifest["metadata"]}
    kubernetes_validate.validate(probe, version, strict=True)


def validate_manifest(manifest: Manifest, version: str) -> None:
    """Raise if `manifest` is not a valid object of its kind at Kubernetes `version`."""
    if manifest["kind"] in SCHEMAS and manifest["apiVersion"].startswith("monitoring.coreos.com/"):
        check_schema(manifest, SCHEMAS[manifest["kind"]])
        validate_metadata(manifest, version)
    elif manifest["kind"] == "ScaledObject" and manifest["apiVersion"] == "keda.sh/v1alpha1":
        check_schema(manifest, SCALED_OBJECT_SCHEMA)
        validate_metadata(manifest, version)
    else:
        kubernetes_validate.validate(manifest, version, strict=True)
