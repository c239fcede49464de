"""The reusable `ChromaServer` helper: config, restart with the same data, clean close."""

from __future__ import annotations

import httpx
import pytest
import yaml

from chroma_operator.local.chroma_server import ChromaServer, ChromaServerError

pytestmark = pytest.mark.slow


def test_start_restart_keeps_data_and_close_cleans_up() -> None:
    with ChromaServer(settings={"max_payload_size_bytes": 1_000_000}) as server:
        cfg = yaml.safe_load(server.config_path.read_text())
        assert cfg["port"] == server.port and cfg["max_payload_size_bytes"] == 1_000_000
        assert cfg["sqlitedb"] == {"hash_type": "md5", "migration_mode": "apply"}
        assert httpx.get(server.url + "/api/v2/heartbeat").status_code == 200
        db = server.url + "/api/v2/tenants/default_tenant/databases/default_database"
        httpx.post(db + "/collections", json={"name": "keepme"}).raise_for_status()
        pid = server.pid
        server.restart()
        assert server.pid != pid and server.running
        assert httpx.get(db + "/collections/keepme").status_code == 200
        data_dir = server.data_dir
    assert not data_dir.exists()
    assert not server.running


def test_a_server_that_cannot_start_is_reported_and_killed() -> None:
    with ChromaServer() as first:
        clash = ChromaServer(port=first.port, startup_timeout=5)
        with pytest.raises(ChromaServerError):
            clash.start()
        assert not clash.running
        clash.close()
