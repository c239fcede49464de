"""A pytest plugin for running Chroma's own test files (shipped in the chromadb wheel).

chromadb 1.5.9's conftest renames collected items by assigning `item._nodeid`, which
pytest 9 no longer has (node ids live in `_id`). On pytest 9 this gives `Node` a
`_nodeid` that reads the id and ignores the rename (a cosmetic "[single-region]" suffix);
on older pytest it does nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from _pytest.nodes import Node

if int(pytest.__version__.split(".")[0]) >= 9 and "_nodeid" not in vars(Node):

    def _get(self: Node) -> str:
        return self.nodeid

    def _set(self: Node, value: Any) -> None:
        return None

    Node._nodeid = property(_get, _set)  # type: ignore[attr-defined]
