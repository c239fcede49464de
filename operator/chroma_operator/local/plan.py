"""What `local up` runs for a ChromaCluster: processes, ports, files. Pure, no I/O.

The same builders that write the Kubernetes objects produce the Chroma server config,
the router and encoder arguments and the topology here; only the addresses differ
(loopback ports instead of Service DNS names).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from chroma_operator.api.models import ChromaCluster
from chroma_operator.build.config import build_topology, chroma_config_yaml, chroma_server_config
from chroma_operator.build.encoder import encoder_args
from chroma_operator.build.shards import router_args
from chroma_operator.topology import Topology

Component = Literal["shard", "encoder", "router"]
LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8000


@dataclass(frozen=True)
class ProcessPlan:
    name: str
    component: Component
    argv: list[str]
    port: int
    health_path: str
    env: dict[str, str] = field(default_factory=dict)
    files: dict[Path, str] = field(default_factory=dict)
    secret_files: dict[Path, str] = field(default_factory=dict)
    """Written owner-only (tokens, keys)."""
    startup_timeout: float = 60.0
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.port}"


@dataclass(frozen=True)
class LocalPlan:
    cluster: str
    directory: Path
    topology: Topology
    processes: list[ProcessPlan]

    @property
    def router(self) -> ProcessPlan:
        return next(p for p in self.processes if p.component == "router")

    @property
    def url(self) -> str:
        return self.router.url

    def by_name(self, name: str) -> ProcessPlan:
        return next(p for p in self.processes if p.name == name)


def plan_local(
    cluster: ChromaCluster,
    directory: Path,
    port: int = DEFAULT_PORT,
    chroma: str = "chroma",
    python: str = sys.executable,
    ports: Mapping[str, int] | None = None,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
) -> LocalPlan:
    """Every process for the cluster: one `chroma run` per shard replica, the encoder
    (CPU), and a router on `port`; shards and encoder take the ports after it.

    `ports` pins processes (by name) to the ports they already run on: after a shard
    count change the running ones keep theirs and new ones take free ports after them.
    `secrets` (name -> data keys) are written under the directory for the router, as
    Kubernetes mounts them; None plans without them (stop, status).
    """
    spec = cluster.spec
    directory = directory.resolve()
    processes: list[ProcessPlan] = []
    pinned = dict(ports or {})
    fresh = _fresh_ports(port + 1, set(pinned.values()) | {port})
    shard_urls: list[list[str]] = []
    for i in range(spec.shards):
        urls = []
        for r in range(spec.replicas):
            name = f"shard-{i}-{r}"
            next_port = pinned[name] if name in pinned else next(fresh)
            home = directory / name
            config = home / "chroma.yaml"
            settings = chroma_server_config(
                spec, port=next_port, listen_address=LOOPBACK, persist_path=str(home / "data")
            )
            processes.append(
                ProcessPlan(
                    name=name,
                    component="shard",
                    argv=[chroma, "run", str(config)],
                    port=next_port,
                    health_path="/api/v2/heartbeat",
                    env={"ANONYMIZED_TELEMETRY": "False"},
                    files={config: chroma_config_yaml(settings)},
                )
            )
            urls.append(f"http://{LOOPBACK}:{next_port}")
        shard_urls.append(urls)

    encoder_url = None
    if spec.encoder.enabled:
        next_port = pinned["encoder"] if "encoder" in pinned else next(fresh)
        cpu_spec = spec.model_copy(update={"encoder": spec.encoder.model_copy(update={"gpu": 0})})
        processes.append(
            ProcessPlan(
                name="encoder",
                component="encoder",
                argv=[
                    python,
                    "-m",
                    "chroma_operator",
                    *encoder_args(cpu_spec, port=next_port, host=LOOPBACK),
                ],
                port=next_port,
                health_path="/health",
                env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
                startup_timeout=180.0,
            )
        )
        encoder_url = f"http://{LOOPBACK}:{next_port}"

    scheme = "https" if spec.tls.secret_name else "http"
    router_url = f"{scheme}://{LOOPBACK}:{port}"
    secrets_dir = directory / "secrets"
    topology = build_topology(
        cluster.name,
        "local",
        spec,
        shard_endpoints=shard_urls,
        router_peers=[router_url],
        encoder_url=encoder_url,
        auth_dir=str(secrets_dir / (spec.auth.secret_name or "")),
        tls_dir=str(secrets_dir / (spec.tls.secret_name or "")),
        hints_dir=str(directory / "router-hints"),
    )
    secret_files = {
        secrets_dir / name / key: value
        for name, data in (secrets or {}).items()
        for key, value in data.items()
    }
    topology_path = directory / "topology.json"
    processes.append(
        ProcessPlan(
            name="router",
            component="router",
            argv=[
                python,
                "-m",
                "chroma_operator",
                *router_args(str(topology_path), port, LOOPBACK),
            ],
            port=port,
            health_path="/readyz",
            files={topology_path: topology.to_json()},
            secret_files=secret_files,
            scheme=scheme,
        )
    )
    return LocalPlan(
        cluster=cluster.name, directory=directory, topology=topology, processes=processes
    )


def _fresh_ports(start: int, taken: set[int]) -> Iterator[int]:
    port = start
    while True:
        if port not in taken:
            yield port
        port += 1
