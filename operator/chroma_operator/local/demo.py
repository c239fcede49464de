"""The demo: Python's own docstrings, indexed through the stock client, searched by meaning.

The corpus exists on every machine with Python (the standard library's source), so the
demo needs no download. Documents are embedded by the cluster's encoder: the client
gives no embedding function, and the router creates the collection with Chroma's
`huggingface_server` function pointing at the encoder.
"""

from __future__ import annotations

import ast
import contextlib
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from chroma_operator.local.plan import LocalPlan
from chroma_operator.router.placement import shard_for

COLLECTION = "python-stdlib"
QUERIES = (
    "parse a date from a string",
    "compress a file",
    "send an email",
    "read rows from a CSV file",
    "run a shell command and capture its output",
)
SKIP_DIRS = {
    "test",
    "tests",
    "idlelib",
    "lib2to3",
    "turtledemo",
    "site-packages",
    "__pycache__",
    "ensurepip",
}


@dataclass(frozen=True)
class Doc:
    id: str
    text: str
    module: str


def _first_line(doc: str | None) -> str | None:
    if not doc:
        return None
    line = doc.strip().splitlines()[0].strip()
    return line if len(line) >= 12 else None


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def stdlib_docstrings(limit: int = 3000, root: Path | None = None) -> list[Doc]:
    """First lines of public docstrings in the standard library, parsed (never imported).

    When there are more than `limit`, an evenly spread subset keeps every part of the
    library represented (not just the modules that sort first).
    """
    root = root or Path(sysconfig.get_paths()["stdlib"])
    docs: list[Doc] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if any(p in SKIP_DIRS or (p.startswith("_") and p != "__init__.py") for p in rel):
            continue
        docs.extend(_docs_in(path, _module_name(path, root)))
    if len(docs) <= limit:
        return docs
    step = len(docs) / limit
    return [docs[int(i * step)] for i in range(limit)]


def _docs_in(path: Path, module: str) -> Iterator[Doc]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError):
        return
    head = _first_line(ast.get_docstring(tree))
    if head:
        yield Doc(module, f"{module}: {head}", module)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
            line = _first_line(ast.get_docstring(node))
            if line:
                name = f"{module}.{node.name}"
                yield Doc(name, f"{name}: {line}", module)


def run_demo(plan: LocalPlan, limit: int = 3000, batch: int = 64) -> None:
    """The demo; a failure on the way is one line (DemoError), never a traceback."""
    try:
        _run_demo(plan, limit, batch)
    except Exception as exc:  # httpx, chromadb and encoder errors alike
        raise DemoError(f"the demo stopped: {type(exc).__name__}: {exc}") from exc


class DemoError(Exception):
    pass


def _run_demo(plan: LocalPlan, limit: int, batch: int) -> None:
    import chromadb
    from chromadb.errors import NotFoundError
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    console = Console()
    url = urlparse(plan.url)
    client = chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=url.port or 8000)
    shards = len(plan.topology.shards)
    started = time.monotonic()
    docs = stdlib_docstrings(limit)
    with contextlib.suppress(NotFoundError):  # a first run has nothing to delete
        client.delete_collection(COLLECTION)
    collection = client.get_or_create_collection(COLLECTION)
    with Progress(console=console) as bar:
        task = bar.add_task(f"Indexing {len(docs)} docstrings", total=len(docs))
        for i in range(0, len(docs), batch):
            chunk = docs[i : i + batch]
            collection.add(
                ids=[d.id for d in chunk],
                documents=[d.text for d in chunk],
                metadatas=[{"module": d.module} for d in chunk],
            )
            bar.advance(task, len(chunk))
    indexed = time.monotonic() - started
    console.print(f"Indexed {collection.count()} docstrings over {shards} shards in {indexed:.1f}s")
    for query in QUERIES:
        res = collection.query(query_texts=[query], n_results=3, include=["documents", "distances"])
        table = Table(title=f"“{query}”", show_header=True, title_justify="left")
        table.add_column("distance", justify="right")
        table.add_column("shard", justify="right")
        table.add_column("docstring")
        distances = (res["distances"] or [[]])[0]
        texts = (res["documents"] or [[]])[0]
        for doc_id, dist, text in zip(res["ids"][0], distances, texts, strict=False):
            table.add_row(f"{dist:.3f}", str(shard_for(doc_id, shards)), text or "")
        console.print(table)
    console.print(f"Demo done in {time.monotonic() - started:.1f}s.")
