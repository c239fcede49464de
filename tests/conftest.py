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
