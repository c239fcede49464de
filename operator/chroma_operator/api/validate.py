"""Turn a raw resource (YAML/JSON dict) into a ChromaCluster, or a list of problems.

Every problem is one line naming the field path the way `kubectl` users spell it
(`spec.hnsw.space: must be one of l2, cosine, ip`), never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

from chroma_operator.api.models import ChromaCluster
from chroma_operator.api.rules import RULES, Rule


class InvalidResource(ValueError):
    """The resource cannot be used; `problems` holds one line per field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _message(err: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"must be one of {expected}" if "," in expected else f"must be {expected}"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required"
    if kind == "string_pattern_mismatch":
        return f"invalid value (must match {ctx.get('pattern')})"
    limits = {
        "greater_than_equal": ">=",
        "greater_than": ">",
        "less_than_equal": "<=",
        "less_than": "<",
    }
    if kind in limits:
        bound = next(iter(ctx.values()))
        return f"must be {limits[kind]} {bound}"
    return str(err["msg"]).rstrip(".").replace("Input should be", "must be")


def _alias_to_attr(model: BaseModel, alias: str) -> str:
    for name, field in type(model).model_fields.items():
        if field.alias == alias or name == alias:
            return name
    raise KeyError(alias)


def _targets(obj: Any, at: tuple[str, ...], path: str) -> Iterator[tuple[str, Any]]:
    """Yield (field path, object) for every place a rule applies."""
    if not at:
        yield path, obj
        return
    head, rest = at[0], at[1:]
    if head == "[]":
        for i, item in enumerate(obj):
            yield from _targets(item, rest, f"{path}[{i}]")
        return
    child = getattr(obj, _alias_to_attr(obj, head))
    yield from _targets(child, rest, f"{path}.{head}")


def rule_problems(cluster: ChromaCluster, rules: tuple[Rule, ...] = RULES) -> list[str]:
    """Problems found by the cross-field rules (the Python twin of the CRD's CEL)."""
    problems = []
    for rule in rules:
        if rule.check is None:
            continue
        for path, target in _targets(cluster.spec, rule.at, "spec"):
            if not rule.check(target):
                problems.append(f"{path}{rule.field}: {rule.message}")
    return problems


def parse_cluster(doc: Any) -> ChromaCluster:
    """Validate a whole resource; raise InvalidResource with every problem found."""
    if not isinstance(doc, dict):
        raise InvalidResource(["resource: must be a mapping with apiVersion, kind, metadata, spec"])
    try:
        cluster = ChromaCluster.model_validate(doc)
    except ValidationError as exc:
        problems = [f"{_path(e['loc'])}: {_message(e)}" for e in exc.errors()]
        raise InvalidResource(problems) from None
    problems = rule_problems(cluster)
    if problems:
        raise InvalidResource(problems)
    return cluster
