"""Generate the ChromaCluster CustomResourceDefinition from the models.

Pydantic speaks JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3.0 schema:
no `$ref`, no `anyOf` for nullability, boolean `exclusiveMinimum`, explicit `type`
everywhere, `x-kubernetes-preserve-unknown-fields` for free-form maps. This module does
that translation and nothing else.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, TypeAdapter

from chroma_operator import yamlio
from chroma_operator.api.models import (
    API_GROUP,
    API_VERSION,
    CATEGORIES,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    ChromaClusterSpec,
    ChromaClusterStatus,
)
from chroma_operator.api.rules import RULES

Schema = dict[str, Any]

_DROP = {"title", "$defs", "discriminator"}


def _resolve(node: Any, defs: dict[str, Schema]) -> Any:
    """Inline every $ref so the schema is self-contained."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
            extra = {k: v for k, v in node.items() if k != "$ref"}
            target.update(extra)
            return _resolve(target, defs)
        return {k: _resolve(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, defs) for v in node]
    return node


def _structural(node: Schema) -> Schema:
    """Rewrite one (already resolved) JSON Schema node as a structural OpenAPI node."""
    node = {k: v for k, v in node.items() if k not in _DROP}
    any_of = node.pop("anyOf", None)
    if any_of is not None:
        options = [o for o in any_of if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express anyOf {any_of} structurally")
        merged = {k: v for k, v in options[0].items() if k not in _DROP}
        merged.update(node)
        node = merged
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node and not isinstance(node[bound], bool):
            node[flag] = node.pop(bound)
            node[bound] = True
    if node.get("default") is None:
        node.pop("default", None)
    kind = node.get("type")
    if kind == "object":
        props = node.get("properties")
        if props is not None:
            node["properties"] = {k: _structural(v) for k, v in props.items()}
            node.pop("additionalProperties", None)
        else:
            extra = node.get("additionalProperties")
            if isinstance(extra, dict) and extra:
                node["additionalProperties"] = _structural(extra)
            else:
                node.pop("additionalProperties", None)
                node["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        node["items"] = _structural(node.get("items", {}))
    elif kind is None:
        node["x-kubernetes-preserve-unknown-fields"] = True
    if "required" in node and not node["required"]:
        node.pop("required")
    return node


def _submodel(annotation: Any) -> type[BaseModel] | None:
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def _apply_factory_defaults(node: Schema, model: type[BaseModel]) -> None:
    """Write `default_factory` defaults into the schema (JSON Schema omits them).

    A sub-model whose default is its own all-defaults instance is written as `{}`, so the
    API server fills in the nested field defaults rather than a frozen copy of them.
    """
    props = node.get("properties", {})
    for name, field in model.model_fields.items():
        prop = props.get(field.alias or name)
        if prop is None:
            continue
        sub = _submodel(field.annotation)
        if field.default_factory is not None:
            value = field.default_factory()  # type: ignore[call-arg]
            if sub is not None and value == sub():
                prop["default"] = {}
            else:
                prop["default"] = TypeAdapter(Any).dump_python(
                    value, mode="json", by_alias=True, exclude_none=True
                )
        if sub is not None:
            _apply_factory_defaults(prop, sub)


def model_schema(model: type[BaseModel]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema = _structural(_resolve(raw, defs))
    _apply_factory_defaults(schema, model)
    return schema


def _attach_rules(spec_schema: Schema) -> Schema:
    for rule in RULES:
        node = spec_schema
        for part in rule.at:
            node = node["items"] if part == "[]" else node["properties"][part]
        entry: dict[str, str] = {"rule": rule.cel, "message": rule.message}
        if rule.field:
            entry["fieldPath"] = rule.field
        node.setdefault("x-kubernetes-validations", []).append(entry)
    return spec_schema


def spec_schema() -> Schema:
    return _attach_rules(model_schema(ChromaClusterSpec))


def status_schema() -> Schema:
    schema = model_schema(ChromaClusterStatus)
    schema["x-kubernetes-preserve-unknown-fields"] = True
    return schema


PRINTER_COLUMNS = [
    {"name": "Shards", "type": "integer", "jsonPath": ".spec.shards"},
    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
    {"name": "Ready", "type": "string", "jsonPath": ".status.ready"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Resharding", "type": "string", "jsonPath": ".status.resharding.phase"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{API_GROUP}",
            "labels": {
                "app.kubernetes.io/name": "chroma-operator",
                "app.kubernetes.io/component": "crd",
            },
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A sharded Chroma vector-database cluster.",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {
                                    "type": "object",
                                    "properties": {
                                        "name": {"type": "string", "maxLength": 40},
                                    },
                                },
                                "spec": {**spec_schema(), "default": {}},
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


def crd_yaml() -> str:
    """The CRD as committed in crds/chromacluster.yaml (a test keeps them equal)."""
    header = (
        "# Generated by `chroma-operator crd` from chroma_operator/api/models.py. Do not edit.\n"
    )
    return header + yamlio.dump(build_crd())
