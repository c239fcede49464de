"""The field reference table in the README, generated from the CRD schema (no drift)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from chroma_operator.api.crd import spec_schema

HEADER = "| Field | Type | Default | Description |\n| --- | --- | --- | --- |\n"


def _type(prop: dict[str, Any]) -> str:
    kind = prop.get("type", "any")
    if kind == "array":
        return f"[]{prop['items'].get('type', 'any')}"
    return str(kind)


def _default(prop: dict[str, Any]) -> str:
    value = prop.get("default")
    if value is None or value == {}:
        return ""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    text = (
        json.dumps(value, separators=(",", ":")) if isinstance(value, dict | list) else str(value)
    )
    return f"`{text}`" if len(text) <= 40 else "(see `kubectl explain`)"


def _rows(node: dict[str, Any], path: str) -> Iterator[str]:
    for name, prop in node.get("properties", {}).items():
        here = f"{path}.{name}"
        text = prop.get("description", "").rstrip(".") + "."
        if "enum" in prop:
            text += " One of " + ", ".join(f"`{e}`" for e in prop["enum"]) + "."
        if "minimum" in prop or "maximum" in prop:
            text += f" Range {prop.get('minimum', '')}..{prop.get('maximum', '')}."
        yield f"| `{here}` | {_type(prop)} | {_default(prop)} | {text} |"
        if "properties" in prop:
            yield from _rows(prop, here)
        elif prop.get("type") == "array" and "properties" in prop["items"]:
            yield from _rows(prop["items"], here + "[]")


def reference_markdown() -> str:
    return HEADER + "\n".join(_rows(spec_schema(), "spec")) + "\n"
