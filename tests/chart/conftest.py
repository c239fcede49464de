"""Render the chart with the real Helm library (helm-python-sdk bundles Helm v4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import helm_python as helm
import pytest
import yaml

from chart_values import CHART_DIR, NAMESPACE, RELEASE, Render


@pytest.fixture(scope="session")
def chart() -> Any:
    loaded = helm.Chart.load(CHART_DIR)
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def render(chart: Any) -> Render:
    """values -> the rendered objects (NOTES.txt and empty documents left out)."""

    def _render(
        values: dict[str, Any] | None = None, name: str = RELEASE, namespace: str = NAMESPACE
    ) -> list[dict[str, Any]]:
        out = chart.render(values or {}, name=name, namespace=namespace, is_install=True)
        docs: list[dict[str, Any]] = []
        for path in sorted(out):
            if path.endswith("NOTES.txt"):
                continue
            docs += [d for d in yaml.safe_load_all(out[path]) if d]
        return docs

    return _render


@pytest.fixture(scope="session")
def notes(chart: Any) -> Callable[[dict[str, Any]], str]:
    def _notes(values: dict[str, Any]) -> str:
        out = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        return str(next(v for k, v in out.items() if k.endswith("NOTES.txt")))

    return _notes
