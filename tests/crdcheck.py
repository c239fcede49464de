"""What the API server does with a CRD, for tests: defaulting, schema and CEL validation.

No kube-apiserver runs here, so tests apply the generated CRD the way one would: fill
structural defaults, validate the OpenAPI v3 schema (jsonschema, Draft 4 semantics as
OpenAPI 3.0 uses), then evaluate every `x-kubernetes-validations` rule with a real CEL
implementation (cel-python), numbers typed by the schema as Kubernetes does.
"""

from __future__ import annotations

import copy
from typing import Any

import celpy
import jsonschema

Schema = dict[str, Any]


def apply_defaults(schema: Schema, value: Any) -> Any:
    """Structural defaulting: fill absent properties that have a default, recursively."""
    value = copy.deepcopy(value)
    if isinstance(value, dict) and schema.get("type") == "object":
        for name, prop in schema.get("properties", {}).items():
            if name not in value and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
            if name in value:
                value[name] = apply_defaults(prop, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                value[key] = apply_defaults(extra, value[key])
    elif isinstance(value, list) and schema.get("type") == "array":
        value = [apply_defaults(schema["items"], v) for v in value]
    return value


def _typed(schema: Schema, value: Any) -> Any:
    """Numbers declared `number` are doubles in Kubernetes CEL, even when written as 1."""
    kind = schema.get("type")
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "object" and isinstance(value, dict):
        props = schema.get("properties", {})
        return {k: _typed(props.get(k, {}), v) for k, v in value.items()}
    if kind == "array" and isinstance(value, list):
        return [_typed(schema.get("items", {}), v) for v in value]
    return value


def schema_errors(schema: Schema, value: Any) -> list[str]:
    validator = jsonschema.Draft4Validator(schema)
    out = []
    for err in validator.iter_errors(value):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        out.append(f"{path.lstrip('.')}: {err.message}")
    return sorted(out)


_env = celpy.Environment()


def _eval(rule: str, value: Any, old: Any | None) -> bool:
    program = _env.program(_env.compile(rule))
    activation = {"self": celpy.json_to_cel(value)}
    if old is not None:
        activation["oldSelf"] = celpy.json_to_cel(old)
    return bool(program.evaluate(activation))


def cel_errors(schema: Schema, value: Any, old: Any | None = None, path: str = "") -> list[str]:
    """Evaluate every rule where its node is present; transition rules only with `old`."""
    out: list[str] = []
    typed, typed_old = _typed(schema, value), _typed(schema, old) if old is not None else None
    for rule in schema.get("x-kubernetes-validations", []):
        transition = "oldSelf" in rule["rule"]
        if transition and old is None:
            continue
        if not _eval(rule["rule"], typed, typed_old if transition else None):
            out.append(f"{path}{rule.get('fieldPath', '')}: {rule['message']}")
    kind = schema.get("type")
    if kind == "object" and isinstance(value, dict):
        for name, prop in schema.get("properties", {}).items():
            if name in value:
                prev = old.get(name) if isinstance(old, dict) else None
                out += cel_errors(prop, value[name], prev, f"{path}.{name}" if path else name)
    elif kind == "array" and isinstance(value, list):
        for i, item in enumerate(value):
            out += cel_errors(schema["items"], item, None, f"{path}[{i}]")
    return out


def admit(
    crd: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Default and validate `obj` as the API server would; return (stored object, errors)."""
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    stored = apply_defaults(schema, obj)
    errors = schema_errors(schema, stored)
    if not errors:
        errors = cel_errors(schema, stored, apply_defaults(schema, old) if old else None)
    return stored, errors
