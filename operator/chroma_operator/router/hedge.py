"""When to hedge a read: each shard's recent p95 and a budget on how often.

A read sub-request that has not answered by its shard's recent p95 (a small rolling
window, never below a floor) is also sent to a second in-sync replica. The budget keeps
hedges under a fraction of all read sub-requests, so a slow shard cannot double the load.
A replica that lost to a hedge is asked last for a few seconds (`SuspectList`): a hung
replica then costs one hedge delay, not one per read that happens to be sent to it first.
Hedging at p95 spends a 5% budget on the ordinary tail, so a read still unanswered at
`STALL_FACTOR` x p95 (at least `STALL_MIN_S`) is hedged even over budget, once per suspect period per replica.
"""

from __future__ import annotations

import time
from collections import deque

WINDOW = 128
MIN_SAMPLES = 20
SUSPECT_SECONDS = 5.0
STALL_FACTOR = 4.0  # past this multiple of p95 (and STALL_MIN_S) a read is hedged
STALL_MIN_S = 0.25  # even over budget: a stall, not the ordinary tail


class LatencyWindow:
    """The last `WINDOW` read latencies of one shard, in seconds."""

    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=WINDOW)

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)

    def p95(self, floor: float) -> float | None:
        """None until there are enough samples to say what slow is."""
        if len(self._samples) < MIN_SAMPLES:
            return None
        ordered = sorted(self._samples)
        return max(floor, ordered[int(0.95 * (len(ordered) - 1))])


class HedgeBudget:
    """Hedges may be at most `max_fraction` of read sub-requests (counted since start)."""

    def __init__(self, max_fraction: float) -> None:
        self.max_fraction = max_fraction
        self.requests = 0
        self.hedges = 0

    def count_request(self) -> None:
        self.requests += 1

    def take(self) -> bool:
        if self.hedges + 1 > self.max_fraction * self.requests:
            return False
        self.hedges += 1
        return True


class SuspectList:
    """Replicas that recently lost to a hedge, until when (monotonic seconds)."""

    def __init__(self, seconds: float = SUSPECT_SECONDS) -> None:
        self.seconds = seconds
        self._until: dict[str, float] = {}

    def mark(self, endpoint: str) -> None:
        self._until[endpoint] = time.monotonic() + self.seconds

    def order(self, endpoints: list[str]) -> list[str]:
        """The same endpoints, suspects last, the most recently marked last of all.

        Two replicas can both be suspect (a healthy one lost a hedge to a busy moment
        just before its sibling hung); the one that lost most recently goes last, so
        the hung one is not asked first on every other read.
        """
        if not self._until:
            return endpoints
        now = time.monotonic()
        for ep in [ep for ep, until in self._until.items() if until <= now]:
            del self._until[ep]
        if not self._until:
            return endpoints
        return sorted(endpoints, key=lambda ep: self._until.get(ep, 0.0))
