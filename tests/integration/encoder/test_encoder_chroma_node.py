"""A real `chroma run` node whose collection embeds through the encoder.

The collection is created with Chroma's own `huggingface_server` embedding function
pointing at the encoder, so the stock client embeds `documents` and `query_texts` on it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

DOCS = {
    "0ad": "Real-time strategy game of ancient warfare",
    "nginx": "small, powerful, scalable web/proxy server",
    "postgresql": "object-relational SQL database server",
    "gimp": "GNU Image Manipulation Program for editing photos and pictures",
    "vim": "Vi IMproved - enhanced vi text editor",
    "openssh-server": "secure shell (SSH) server, for secure access from remote machines",
    "python3": "interactive high-level object-oriented language",
    "ffmpeg": "tools for transcoding, streaming and playing multimedia files",
    "fonts-dejavu": "Vera font family derivate with additional characters",
    "git": "fast, scalable, distributed revision control system",
}
QUERIES = {
    "a historical battle strategy video game": "0ad",
    "HTTP reverse proxy for websites": "nginx",
    "relational database for storing tables": "postgresql",
    "edit my photographs": "gimp",
    "log in to a remote machine securely": "openssh-server",
    "convert video and audio formats": "ffmpeg",
    "version control for source code": "git",
}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """`chroma run` from the installed chromadb wheel, on loopback."""
    exe = Path(sys.executable).parent / "chroma"
    chroma = str(exe) if exe.exists() else shutil.which("chroma")
    if chroma is None:
        pytest.skip("the `chroma` server command is not installed")
    tmp = tmp_path_factory.mktemp("chroma")
    port = _free_port()
    config = tmp / "config.yaml"
    config.write_text(
        f'port: {port}\nlisten_address: "127.0.0.1"\npersist_path: "{tmp / "data"}"\n'
        "allow_reset: true\nmax_payload_size_bytes: 41943040\ncors_allow_origins: []\n"
        'sqlitedb: {hash_type: "md5", migration_mode: "apply"}\n'
    )
    log = (tmp / "chroma.log").open("wb")
    proc = subprocess.Popen([chroma, "run", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError((tmp / "chroma.log").read_text())
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("chroma did not start")
            time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_collection_embeds_through_the_encoder(chroma_node: tuple[str, int], encoder: Any) -> None:
    import chromadb
    from chromadb.utils.embedding_functions import HuggingFaceEmbeddingServer

    host, port = chroma_node
    client = chromadb.HttpClient(host=host, port=port)
    ef = HuggingFaceEmbeddingServer(url=f"{encoder.url}/embed")
    col = client.create_collection(
        "packages", embedding_function=ef, configuration={"hnsw": {"space": "cosine"}}
    )
    col.add(ids=list(DOCS), documents=list(DOCS.values()))
    assert col.count() == len(DOCS)

    res = col.query(query_texts=list(QUERIES), n_results=3)
    for query, ids, dists in zip(QUERIES, res["ids"], res["distances"] or [], strict=True):
        assert ids[0] == QUERIES[query], (query, ids)
        assert dists == sorted(dists)

    stored = col.get(ids=["vim"], include=["embeddings"])
    direct = ef(["Vi IMproved - enhanced vi text editor"])[0]
    assert abs(float((stored["embeddings"][0] * direct).sum()) - 1.0) < 1e-4

    # A fresh stock client rebuilds the embedding function from the collection's stored
    # configuration: no code of ours on the client side.
    fresh = chromadb.HttpClient(host=host, port=port).get_collection("packages")
    again = fresh.query(query_texts=["text editor for programmers"], n_results=1)
    assert again["ids"][0][0] == "vim"


def test_large_add_is_one_request_split_by_the_encoder(
    chroma_node: tuple[str, int], encoder: Any
) -> None:
    import chromadb
    from chromadb.utils.embedding_functions import HuggingFaceEmbeddingServer

    host, port = chroma_node
    client = chromadb.HttpClient(host=host, port=port)
    col = client.create_collection(
        "many", embedding_function=HuggingFaceEmbeddingServer(url=f"{encoder.url}/embed")
    )
    before = _embed_requests(encoder.url)
    # 600 texts: many encoder batches, yet inside the client's fixed 5 s timeout on 2 cores
    docs = [f"package number {i} provides tool {i % 50} for task {i % 7}" for i in range(600)]
    col.add(ids=[str(i) for i in range(600)], documents=docs)
    assert _embed_requests(encoder.url) == before + 1  # one client request, many batches
    assert col.count() == 600
    hit = col.query(query_texts=[docs[321]], n_results=1)
    assert hit["ids"][0][0] == "321"


def _embed_requests(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    line = 'chroma_encoder_requests_total{route="/embed",status="200"} '
    return float(text.split(line)[1].split()[0]) if line in text else 0.0
