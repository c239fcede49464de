"""The per-query search mode a client asks for with the `X-Chroma-Search` header.

Stock clients can send it (`chromadb.HttpClient(..., headers={"X-Chroma-Search": ...})`):
- absent or `approximate`: HNSW as configured;
- `exact`: brute force over every record that passes the filters, so recall is 1.0;
- `candidates=N`: every shard is asked for N >= k neighbours (HNSW searches with
  max(ef_search, N)) and the router keeps the best k: more recall per query, no restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chroma_operator.router.errors import invalid_argument

HEADER = "x-chroma-search"
MAX_CANDIDATES = 10_000

Kind = Literal["approximate", "exact", "candidates"]


@dataclass(frozen=True)
class SearchMode:
    kind: Kind = "approximate"
    candidates: int = 0

    @property
    def cache_tag(self) -> str:
        """Part of the cache key: an approximate answer never serves an exact request."""
        return self.kind if self.kind != "candidates" else f"candidates={self.candidates}"

    def shard_k(self, k: int) -> int:
        """How many neighbours to ask each shard for."""
        return max(k, self.candidates) if self.kind == "candidates" else k


APPROXIMATE = SearchMode()


def parse_search_mode(value: str | None) -> SearchMode:
    """The header's value as a mode; anything else is a 400 in Chroma's error shape."""
    if value is None:
        return APPROXIMATE
    text = value.strip().lower()
    if text in ("", "approximate"):
        return APPROXIMATE
    if text == "exact":
        return SearchMode("exact")
    name, sep, number = text.partition("=")
    if name.strip() == "candidates" and sep:
        number = number.strip()
        if number.isdigit() and 1 <= int(number) <= MAX_CANDIDATES:
            return SearchMode("candidates", int(number))
        raise invalid_argument(
            f"X-Chroma-Search: candidates must be an integer from 1 to {MAX_CANDIDATES}, "
            f"got {number[:40]!r}"
        )
    raise invalid_argument(
        f"X-Chroma-Search must be 'approximate', 'exact' or 'candidates=N', got {value[:40]!r}"
    )
