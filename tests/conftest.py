"""Shared fixtures: the repository's own files, loaded once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def quickstart() -> dict[str, Any]:
    doc: dict[str, Any] = load_yaml(EXAMPLES / "quickstart.yaml")
    return doc


@pytest.fixture(scope="session")
def production() -> dict[str, Any]:
    doc: dict[str, Any] = load_yaml(EXAMPLES / "production.yaml")
    return doc


def pytest_sessionstart(session: pytest.Session) -> None:
    """Test files share one module namespace (no packages): a basename used twice would
    stop collection, so say which files clash before pytest's less direct error."""
    from collections import Counter

    root = Path(__file__).parent
    names = Counter(p.name for p in root.rglob("test_*.py"))
    clashes = sorted(n for n, c in names.items() if c > 1)
    if clashes:
        raise pytest.UsageError(f"test file basenames must be unique: {', '.join(clashes)}")
