"""Base ports for `local up` in tests: a run of free ports no client socket can take.

`local up --port P` puts the router on P and the shards and encoder on the ports after
it. A base from the kernel's ephemeral range (what binding to port 0 hands out) can lose
P+1.. to any outgoing connection on the machine between the pick and the start, or
between a first `up` and a later grow. Ports below that range are only ever taken by
listeners, so a run checked free here stays free.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10_000


def _ephemeral_start() -> int:
    try:
        return int(RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _listenable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_run(count: int = 16) -> int:
    """The first of `count` consecutive free ports below the ephemeral range."""
    top = _ephemeral_start() - count
    if top <= LOWEST:
        raise RuntimeError(f"no room below the ephemeral range for {count} ports")
    picker = random.Random()
    for _ in range(200):
        base = picker.randrange(LOWEST, top)
        if all(_listenable(p) for p in range(base, base + count)):
            return base
    raise RuntimeError(f"found no {count} free consecutive ports below {top + count}")
