"""Base ports for `local up` in tests: a run of free ports no client socket can take.

`local up --port P` puts the router on P and the shards and encoder on the ports after
it. A base from the kernel's ephemeral range (what binding to port 0 hands out) can lose
P+1.. to any outgoing connection on the machine between the pick and the start, or
between a first `up` and a later grow. Ports below that range are only ever taken by
listeners, so a run checked free here stays free.
"""

from __future__ import annotations

import random
from pathlib import Path

from chroma_operator.local.chroma_server import port_in_use

RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10_000


def _ephemeral_start() -> int:
    try:
        return int(RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def port_run(count: int = 16) -> int:
    """The first of `count` consecutive free ports below the ephemeral range."""
    top = _ephemeral_start() - count
    if top <= LOWEST:
        raise RuntimeError(f"no room below the ephemeral range for {count} ports")
    picker = random.Random()
    for _ in range(200):
        base = picker.randrange(LOWEST, top)
        if not any(port_in_use(p) for p in range(base, base + count)):
            return base
    raise RuntimeError(f"found no {count} free consecutive ports below {top + count}")
