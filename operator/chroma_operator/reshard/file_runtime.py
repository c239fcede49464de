"""The engine's runtime on one machine: a topology file the routers watch.

`local up` and the tests use it: publishing writes the file atomically (routers reload
it), router epochs come from each router's `GET /internal/placement`, and progress is
kept in a JSON file beside the topology so a restarted move carries on from it.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

from chroma_operator.reshard.progress import Progress
from chroma_operator.topology import Topology

log = logging.getLogger("chroma_operator.reshard")


def progress_path(topology_path: Path) -> Path:
    return topology_path.with_name(topology_path.stem + ".resharding.json")


def topology_trust(topology_path: Path) -> ssl.SSLContext | bool:
    """What verifies this topology's HTTPS routers: the CA it names for peers (the TLS
    Secret's ca.crt), else the system's trust store (also when the file is unreadable)."""
    try:
        tls = Topology.from_json(topology_path.read_bytes()).tls
    except (OSError, ValueError):
        return True
    if tls is None or tls.ca_file is None:
        return True
    return ssl.create_default_context(cafile=tls.ca_file)


class FileRuntime:
    def __init__(
        self,
        topology_path: Path,
        router_urls: list[str],
        on_event: Callable[[str], None] | None = None,
        report_every: float = 1.0,
    ) -> None:
        self.path = topology_path
        self.router_urls = router_urls
        self.on_event = on_event or (lambda line: log.info("%s", line))
        self.client = httpx.Client(timeout=httpx.Timeout(2.0), verify=topology_trust(topology_path))
        self.report_every = report_every
        self._last_report = 0.0
        self.events: list[str] = []

    def topology(self) -> Topology:
        return Topology.from_json(self.path.read_bytes())

    def publish(self, topology: Topology) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(topology.to_json())
        tmp.replace(self.path)

    def router_epochs(self) -> list[int | None]:
        out: list[int | None] = []
        for url in self.router_urls:
            try:
                out.append(int(self.client.get(url + "/internal/placement").json()["epoch"]))
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                out.append(None)
        return out

    def report(self, progress: Progress, event: str | None = None) -> None:
        now = time.monotonic()
        if event is None and now - self._last_report < self.report_every:
            return
        self._last_report = now
        status = progress.as_status()
        tmp = progress_path(self.path).with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(status, option=orjson.OPT_INDENT_2))
        tmp.replace(progress_path(self.path))
        if event:
            self.events.append(event)
            self.on_event(event)

    def saved_progress(self) -> Progress | None:
        p = progress_path(self.path)
        if not p.exists():
            return None
        return Progress.from_status(orjson.loads(p.read_bytes()))

    def close(self) -> None:
        self.client.close()
