"""One timer tick's I/O: fetch every router's `/metrics` concurrently into the evaluator.

Kept apart from `window.py` so the evaluator stays pure and testable without sockets; a
kopf timer does `await scrape_routers(...)`, then `evaluator.evaluate(now)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from chroma_operator.slo.window import SloEvaluator
from chroma_operator.topology import Topology


@dataclass(frozen=True)
class ScrapeResult:
    scraped: tuple[str, ...]
    failed: Mapping[str, str]
    """URL -> why it was skipped (connection error, HTTP status, unparsable text)."""


def metrics_urls(topology: Topology) -> list[str]:
    """Every router's metrics URL: the routers are the topology's peers."""
    return [peer.rstrip("/") + "/metrics" for peer in topology.router.peers]


async def fetch_texts(
    client: httpx.AsyncClient, urls: Sequence[str], *, timeout_s: float = 5.0
) -> tuple[dict[str, str], dict[str, str]]:
    """GET each URL at once: (URL -> body, URL -> why it failed). The one path the
    operator uses to ask every router something (metrics, replica states)."""

    async def fetch(url: str) -> str:
        response = await client.get(url, timeout=timeout_s)
        response.raise_for_status()
        return response.text

    answers = await asyncio.gather(*(fetch(u) for u in urls), return_exceptions=True)
    texts: dict[str, str] = {}
    failed: dict[str, str] = {}
    for url, answer in zip(urls, answers, strict=True):
        if isinstance(answer, BaseException):
            if not isinstance(answer, httpx.HTTPError):
                raise answer
            failed[url] = f"{type(answer).__name__}: {answer}"
        else:
            texts[url] = answer
    return texts, failed


async def scrape_routers(
    evaluator: SloEvaluator,
    client: httpx.AsyncClient,
    urls: Sequence[str],
    now: float,
    *,
    timeout_s: float = 5.0,
) -> ScrapeResult:
    """GET each URL at once and feed the answers to `evaluator`, all stamped `now`.

    A router that does not answer is skipped: its earlier samples still count, and it
    drops out of `SloEvaluation.routers` once stale.
    """

    texts, failed = await fetch_texts(client, urls, timeout_s=timeout_s)
    scraped: list[str] = []
    for url, answer in texts.items():
        try:
            evaluator.observe(url, answer, now)
        except ValueError as exc:
            failed[url] = f"unparsable metrics: {exc}"
            continue
        scraped.append(url)
    return ScrapeResult(tuple(scraped), failed)
