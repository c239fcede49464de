"""Every third-party module the operator's code imports is a declared dependency (of the
package or one of its extras), not something that happens to come along with another."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    return {_norm(re.split(r"[\s\[<>=!~;]", s, maxsplit=1)[0]) for s in specs}


def _imported() -> dict[str, str]:
    """Top-level module -> one file that imports it."""
    out: dict[str, str] = {}
    for path in sorted((ROOT / "operator" / "chroma_operator").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                out.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return out


def test_every_third_party_import_is_declared() -> None:
    declared = _declared()
    providers = packages_distributions()
    missing = []
    for module, where in _imported().items():
        if module in sys.stdlib_module_names or module == "chroma_operator":
            continue
        dists = {_norm(d) for d in providers.get(module, [module])}
        if not dists & declared:
            missing.append(f"{module} ({where}; from {sorted(dists)})")
    assert not missing, "imported but not declared in pyproject.toml: " + ", ".join(missing)
