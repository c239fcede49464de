"""Where the router's topology comes from, and noticing when it changes.

On Kubernetes the file is a ConfigMap mount, which the kubelet updates by swapping a
symlink; comparing the content (not just the mtime of the link) catches that.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from chroma_operator.topology import Topology


class TopologySource:
    def __init__(self, source: Topology | str | Path) -> None:
        self.path: Path | None = None
        self._digest = b""
        if isinstance(source, Topology):
            self.current = source
        else:
            self.path = Path(source)
            raw = self.path.read_bytes()
            self.current = Topology.from_json(raw)
            self._digest = hashlib.sha256(raw).digest()

    def poll(self) -> Topology | None:
        """The new topology when the file's content changed and parses; else None.

        A file that is missing or invalid keeps the last good topology (raises so the
        caller can count the failure).
        """
        if self.path is None:
            return None
        raw = self.path.read_bytes()
        digest = hashlib.sha256(raw).digest()
        if digest == self._digest:
            return None
        topology = Topology.from_json(raw)
        self._digest = digest
        if topology == self.current:
            return None
        self.current = topology
        return topology
