"""When to hedge a read: each shard's recent p95 and a budget on how often.

A read sub-request that has not answered by its shard's recent p95 (a small rolling
window, never below a floor) is also sent to a second in-sync replica. The budget keeps
hedges under a fraction of all read sub-requests, so a slow shard cannot double the load.
"""

from __future__ import annotations

from collections import deque

WINDOW = 128
MIN_SAMPLES = 20


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
