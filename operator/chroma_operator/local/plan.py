"""What `local up` runs for a ChromaCluster: processes, ports, files. Pure, no I/O.

The same builders that write the Kubernetes objects produce the Chroma server config,
the router and encoder arguments and the topology here; only the addresses differ
(loopback ports instead of Service DNS names).
"""

from __future__ import annotations

import sys
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
    startup_timeout: float = 60.0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


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
) -> LocalPlan:
    """Every process for the cluster: one `chroma run` per shard replica, the encoder
    (CPU), and a router on `port`; shards and encoder take the ports after it."""
    spec = cluster.spec
    directory = directory.resolve()
    processes: list[ProcessPlan] = []
    next_port = port + 1
    shard_urls: list[list[str]] = []
    for i in range(spec.shards):
        urls = []
        for r in range(spec.replicas):
            name = f"shard-{i}-{r}"
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
            next_port += 1
        shard_urls.append(urls)

    encoder_url = None
    if spec.encoder.enabled:
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

    router_url = f"http://{LOOPBACK}:{port}"
    topology = build_topology(
        cluster.name,
        "local",
        spec,
        shard_endpoints=shard_urls,
        router_peers=[router_url],
        encoder_url=encoder_url,
        hints_dir=str(directory / "router-hints"),
    )
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
        )
    )
    return LocalPlan(
        cluster=cluster.name, directory=directory, topology=topology, processes=processes
    )
