"""Router benchmark: single Chroma node vs router over 1 shard vs router over 3 shards.

Same machine, same data, same HNSW settings (cosine, M 16, efConstruction 100, efSearch
100). Each setup ingests into a Chroma server of its own; for query latency every
one-shard setup then stands in front of the single node's server and collection, so the
extra hop is the only difference (two servers' HNSW graphs of the same data can differ
by 20% in query time). Measures ingest vectors/s through the stock client, query latency p50/p99 at
concurrency 1, 8 and 32 (raw HTTP with `Cache-Control: no-cache`, so the router cache
stays out of it), recall@10 against exact brute force, and the router's cache-hit latency
both end to end and inside the router (its `Server-Timing` header).

    python bench/router.py [--n 50000] [--queries 200] [--out bench/results]
        [--concurrency 1,8,32] [--no-three-shards] [--baseline-src OTHER/operator] [--floor]

`--baseline-src` adds a fourth setup: a router over its own shard running the router
code found there (e.g. an older commit's `operator/` from `git archive`), measured in the
same interleaved rounds, so a change to the request path is judged before/after within
one run. `--floor` adds two bare pass-through proxies (`bench/passthrough_proxy.py`): the
router's own stack with no router work (uvicorn, httptools, its shard client), and the
least a Python hop can do (`--raw`: asyncio protocols that only forward bytes). `--n`,
`--requests` and `--concurrency` shrink a run on a busy machine.

Data: a file of real MiniLM embeddings of Debian package descriptions
(`debian-packages.minilm-l6-v2.f16.npy`, in a `shared/data` folder beside the checkout)
when present, else a generated clustered set of the same shape. The three setups run side
by side and are measured in interleaved rounds, so load from other work on a shared
machine falls on all of them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chromadb
import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

from chroma_operator.local.chroma_server import ChromaServer, free_port  # noqa: E402
from chroma_operator.topology import ShardTopology, SloTopology, Topology  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "debian-packages.minilm-l6-v2.f16.npy"
DB = "/api/v2/tenants/default_tenant/databases/default_database"
HNSW = {"space": "cosine", "max_neighbors": 16, "ef_construction": 100, "ef_search": 100}
CONCURRENCY = (1, 8, 32)
K = 10
DEFAULT_SAMPLE_RATE = SloTopology().recall_sample_rate  # the product's default


def load_data(n: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Base vectors and held-out queries, L2-normalised float32."""
    if DATA.exists():
        allv = np.load(DATA).astype(np.float32)
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(allv))
        base, queries = allv[order[:n]], allv[order[n : n + n_queries]]
        source = f"{DATA.name} (real MiniLM embeddings)"
    else:
        rng = np.random.default_rng(seed)
        centers = rng.standard_normal((200, 384)).astype(np.float32)
        labels = rng.integers(0, 200, n + n_queries)
        pts = centers[labels] + 0.35 * rng.standard_normal((n + n_queries, 384))
        base, queries = pts[:n].astype(np.float32), pts[n:].astype(np.float32)
        source = "generated clustered set (200 clusters, 384 dims)"
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return base, queries, source


def brute_force(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by cosine distance (ids as row numbers, and the distances)."""
    dist = 1.0 - queries @ base.T
    idx = np.argpartition(dist, k, axis=1)[:, :k]
    d = np.take_along_axis(dist, idx, axis=1)
    order = np.argsort(d, axis=1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(d, order, axis=1)


class Router:
    """`chroma-operator router` as a child process."""

    def __init__(
        self,
        shard_urls: list[str],
        workdir: Path,
        src: Path | None = None,
        recall_sample_rate: float = DEFAULT_SAMPLE_RATE,
        script: Path | None = None,
        script_args: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        topo = Topology(
            cluster="bench",
            namespace="bench",
            shards=[ShardTopology(index=i, endpoints=[u]) for i, u in enumerate(shard_urls)],
            # (an older tree's topology may not know the field: leave it out there unless
            # the run asks for a rate other than the default, so both sides sample alike)
            **(
                {"slo": {"recall_sample_rate": recall_sample_rate}}
                if src is None or recall_sample_rate != DEFAULT_SAMPLE_RATE
                else {}
            ),
        )
        path = workdir / f"topology-{self.port}.json"
        path.write_text(topo.to_json())
        env = {**os.environ, "PYTHONPATH": str(src or ROOT / "operator")}
        self.log = (workdir / f"router-{self.port}.log").open("ab")
        program = [str(script), *script_args] if script else ["-m", "chroma_operator", "router"]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                *program,
                "--topology",
                str(path),
                "--port",
                str(self.port),
                "--host",
                "127.0.0.1",
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120  # a busy shared machine starts Python slowly
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"router did not start (log in {workdir})")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        """User + system CPU seconds the router process has used (Linux /proc).

        On a shared machine latency ratios mostly show scheduling delay; the CPU the
        router spends per request is its own cost whatever else runs.
        """
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def one_shard_setup(label: str, shard_url: str, workdir: Path, args: argparse.Namespace) -> Router:
    """The one-shard setup `label` in front of the Chroma server at `shard_url`."""
    proxy = ROOT / "bench" / "passthrough_proxy.py"
    if label == "router_1_shard":
        return Router([shard_url], workdir, None, args.recall_sample_rate)
    if label == "router_1_shard_before":
        return Router([shard_url], workdir, args.baseline_src, args.recall_sample_rate)
    if label == "passthrough_proxy":
        return Router([shard_url], workdir, script=proxy)
    if label == "raw_proxy":
        return Router([shard_url], workdir, script=proxy, script_args=("--raw",))
    raise ValueError(label)


def create(url: str, name: str) -> Any:
    port = int(url.rsplit(":", 1)[1])
    client = chromadb.HttpClient(host="127.0.0.1", port=port)
    return client.create_collection(name, configuration={"hnsw": HNSW}, embedding_function=None)


def ingest_interleaved(
    cols: dict[str, Any], base: np.ndarray, batch: int = 1000
) -> dict[str, float]:
    """Batch i goes to every setup in turn (rotating who goes first), each timed alone.

    The machine is shared: interleaving spreads background load evenly over the setups
    instead of charging it to whichever ran while it happened.
    """
    ids = [str(i) for i in range(len(base))]
    spent = dict.fromkeys(cols, 0.0)
    labels = list(cols)
    for n, i in enumerate(range(0, len(base), batch)):
        for label in labels[n % len(labels) :] + labels[: n % len(labels)]:
            t = time.perf_counter()
            cols[label].add(ids=ids[i : i + batch], embeddings=base[i : i + batch])
            spent[label] += time.perf_counter() - t
    for col in cols.values():
        assert col.count() == len(base)
    return {label: len(base) / spent[label] for label in cols}


def query_bodies(queries: np.ndarray) -> list[bytes]:
    return [
        orjson.dumps({"query_embeddings": [q.tolist()], "n_results": K, "include": ["distances"]})
        for q in queries
    ]


async def load(
    url: str, cid: str, bodies: list[bytes], concurrency: int, total: int, headers: dict[str, str]
) -> list[float]:
    """`total` queries from `concurrency` workers; per-request latencies in seconds."""
    endpoint = f"{url}{DB}/collections/{cid}/query"
    latencies: list[float] = []
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker() -> None:
            for i in counter:
                body = bodies[i % len(bodies)]
                t = time.perf_counter()
                r = await client.post(endpoint, content=body, headers=headers)
                latencies.append(time.perf_counter() - t)
                r.raise_for_status()

        for _ in range(3):  # warm connections
            await client.post(endpoint, content=bodies[0], headers=headers)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


@contextlib.contextmanager
def load_generator_gc_paused() -> Iterator[None]:
    """No garbage collection in this process while it times requests.

    The client makes reference cycles on every request; its collector then stops it for
    1 to 3 ms about every 0.4 s (and up to 55 ms for a full collection), and every request
    in flight at that moment is timed that much slower: noise in whichever setup it falls
    on, and at 8 clients enough requests to move a p99. Collected before and after, so the
    heap stays small; the processes under test keep their own collectors.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def recall(
    url: str, cid: str, queries: np.ndarray, truth: np.ndarray, truth_d: np.ndarray
) -> dict[str, float]:
    """Exact-id recall@10 and the ANN-benchmarks variant (distance within 1e-3 of the 10th)."""
    endpoint = f"{url}{DB}/collections/{cid}/query"
    hits = tol_hits = 0
    with httpx.Client(timeout=60) as client:
        for i in range(0, len(queries), 50):
            body = {
                "query_embeddings": queries[i : i + 50].tolist(),
                "n_results": K,
                "include": ["distances"],
            }
            res = client.post(
                endpoint, content=orjson.dumps(body), headers={"Cache-Control": "no-cache"}
            ).json()
            for j, (ids, dists) in enumerate(zip(res["ids"], res["distances"], strict=True)):
                want = set(truth[i + j].tolist())
                hits += len(want & {int(x) for x in ids})
                tol_hits += sum(1 for d in dists if d <= truth_d[i + j][-1] + 1e-3)
    n = len(queries) * K
    return {"recall_at_10": hits / n, "recall_at_10_dist_tol": tol_hits / n}


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000.0, p))


def cache_hits(url: str, cid: str, body: bytes, n: int = 400) -> dict[str, float]:
    """Latency of answers from the cache (a miss, once the TTL expires, refills it)."""
    endpoint = f"{url}{DB}/collections/{cid}/query"
    outer, inner = [], []
    with httpx.Client(timeout=30) as client:
        client.post(endpoint, content=body)
        for _ in range(n):
            t = time.perf_counter()
            r = client.post(endpoint, content=body)
            if r.headers.get("X-Chroma-Cache") != "hit":
                continue
            outer.append(time.perf_counter() - t)
            inner.append(float(r.headers["Server-Timing"].split("dur=")[1]) / 1000.0)
    return {
        "e2e_p50_ms": pct(outer, 50),
        "e2e_p99_ms": pct(outer, 99),
        "in_router_p50_ms": pct(inner, 50),
        "in_router_p99_ms": pct(inner, 99),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--requests", type=int, default=600, help="queries per concurrency level")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument(
        "--concurrency",
        default=",".join(map(str, CONCURRENCY)),
        help="comma-separated client counts, e.g. 1,8",
    )
    ap.add_argument(
        "--no-three-shards", action="store_true", help="leave out the router over 3 shards"
    )
    ap.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="an `operator/` tree whose router runs as a 4th setup (router_1_shard_before)",
    )
    ap.add_argument(
        "--floor",
        action="store_true",
        help="add two bare pass-through proxies over shards of their own "
        "(bench/passthrough_proxy.py, plain and --raw): what one Python HTTP hop costs "
        "before any router work",
    )
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per level")
    ap.add_argument(
        "--recall-sample-rate",
        type=float,
        default=DEFAULT_SAMPLE_RATE,
        help="the routers' recall SLI sampling (default: the product default, 1%%); 0 measures "
        "the request path alone, without the background exact re-runs",
    )
    args = ap.parse_args()
    levels = tuple(int(c) for c in args.concurrency.split(","))
    started = time.perf_counter()
    load_before = os.getloadavg()
    base, queries, source = load_data(args.n, args.queries)
    truth, truth_d = brute_force(base, queries, K)
    bodies = query_bodies(queries)
    work = Path(tempfile.mkdtemp(prefix="router-bench-"))
    servers: list[ChromaServer] = []
    routers: list[Router] = []
    results: dict[str, Any] = {}
    try:
        one_shard = ["router_1_shard"]
        one_shard += ["router_1_shard_before"] if args.baseline_src is not None else []
        one_shard += ["passthrough_proxy", "raw_proxy"] if args.floor else []
        n_servers = 1 + len(one_shard) + (0 if args.no_three_shards else 3)
        servers = [ChromaServer(data_dir=work / f"s{i}").start() for i in range(n_servers)]
        urls = {"single_node": servers[0].url}
        ingest_routers: list[Router] = []
        for label, server in zip(one_shard, servers[1:], strict=False):
            ingest_routers.append(one_shard_setup(label, server.url, work, args))
            urls[label] = ingest_routers[-1].url
        routers.extend(ingest_routers)
        procs: dict[str, Router] = {}  # the setups whose CPU is measured, by label
        if not args.no_three_shards:
            three = [s.url for s in servers[-3:]]
            procs["router_3_shards"] = Router(three, work, None, args.recall_sample_rate)
            routers.append(procs["router_3_shards"])
            urls["router_3_shards"] = routers[-1].url
        cols = {label: create(url, "bench") for label, url in urls.items()}
        cids = {label: str(col.id) for label, col in cols.items()}
        print(f"ingest {args.n} vectors into each setup, interleaved ...", flush=True)
        for label, rate in ingest_interleaved(cols, base).items():
            results[label] = {"ingest_vec_per_s": rate}
        for label, url in urls.items():
            results[label].update(recall(url, cids[label], queries, truth, truth_d))
        # Latency: every one-shard setup stands in front of the single node's own server
        # and collection, so the hop is all that differs. Each server builds its own HNSW
        # graph, and two graphs of the same data can differ by 20% in query time.
        for r in ingest_routers:
            r.stop()
            routers.remove(r)
        for label in one_shard:
            procs[label] = one_shard_setup(label, servers[0].url, work, args)
            routers.append(procs[label])
            urls[label], cids[label] = procs[label].url, cids["single_node"]
        headers = {"Cache-Control": "no-cache"}
        rounds = args.rounds
        per_round = args.requests // rounds
        labels = list(urls)
        for c in levels:
            lat: dict[str, list[float]] = {label: [] for label in labels}
            cpu = dict.fromkeys(labels, 0.0)
            for rnd in range(rounds):
                first = rnd % len(labels)
                for label in labels[first:] + labels[:first]:
                    before = procs[label].cpu_s() if label in procs else 0.0
                    with load_generator_gc_paused():
                        lat[label] += asyncio.run(
                            load(urls[label], cids[label], bodies, c, per_round, headers)
                        )
                    if label in procs:
                        cpu[label] += procs[label].cpu_s() - before
            for label in labels:
                results[label][f"c{c}"] = {
                    "p50_ms": pct(lat[label], 50),
                    "p99_ms": pct(lat[label], 99),
                    "requests": len(lat[label]),
                }
                if label in procs:
                    per_request = cpu[label] / len(lat[label]) * 1000.0
                    results[label][f"c{c}"]["router_cpu_ms_per_request"] = per_request
                print(
                    f"[{label}] c={c} p50={pct(lat[label], 50):.2f}ms "
                    f"p99={pct(lat[label], 99):.2f}ms",
                    flush=True,
                )
        for label in urls:
            if label not in ("single_node", "passthrough_proxy", "raw_proxy"):  # no cache
                results[label]["cache_hit"] = cache_hits(urls[label], cids[label], bodies[0])
        print(json.dumps(results, indent=1), flush=True)
    finally:
        for r in routers:
            r.stop()
        for s in servers:
            s.close()
    ratios = vs_single(results, levels)
    report = {
        "data": source,
        "n": args.n,
        "queries": args.queries,
        "k": K,
        "hnsw": HNSW,
        "requests_per_level": args.requests,
        "recall_sample_rate": args.recall_sample_rate,
        "concurrency": list(levels),
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            "python": platform.python_version(),
            "chromadb": chromadb.__version__,
        },
        "results": results,
        "ratios": ratios,
        "wall_s": time.perf_counter() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "router.json").write_text(json.dumps(report, indent=2))
    plot(report, args.out / "router.png")
    print(json.dumps(ratios, indent=2))


def vs_single(results: dict[str, Any], levels: tuple[int, ...]) -> dict[str, float]:
    """Each router setup against the single node it stands in for, measured in one run."""
    single = results["single_node"]
    ratios: dict[str, float] = {}
    for label, res in results.items():
        if label == "single_node":
            continue
        name = label.removeprefix("router_").removesuffix("_proxy")
        ratios[f"{name}_ingest"] = res["ingest_vec_per_s"] / single["ingest_vec_per_s"]
        for c in levels:
            for p in ("p50", "p99"):
                ratios[f"{name}_{p}_c{c}"] = res[f"c{c}"][f"{p}_ms"] / single[f"c{c}"][f"{p}_ms"]
        ratios[f"{name}_minus_single_recall"] = res["recall_at_10"] - single["recall_at_10"]
    before = results.get("router_1_shard_before")
    if before is not None:
        for c in levels:
            now_cpu = results["router_1_shard"][f"c{c}"]["router_cpu_ms_per_request"]
            ratios[f"1_shard_cpu_vs_before_c{c}"] = (
                now_cpu / before[f"c{c}"]["router_cpu_ms_per_request"]
            )
    return ratios


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = report["results"]
    labels = list(res)
    levels = report.get("concurrency", CONCURRENCY)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        xs = np.arange(len(levels)) + (i - (len(labels) - 1) / 2) * width
        axes[0].bar(xs, [res[label][f"c{c}"]["p50_ms"] for c in levels], width, label=label)
        axes[0].scatter(
            xs,
            [res[label][f"c{c}"]["p99_ms"] for c in levels],
            marker="_",
            s=200,
            color="black",
        )
    axes[0].set_xticks(np.arange(len(levels)), [f"c={c}" for c in levels])
    axes[0].set_yscale("log")
    axes[0].set_ylabel("query latency ms, log (bar p50, tick p99)")
    axes[0].legend()
    axes[1].bar(labels, [res[lb]["ingest_vec_per_s"] for lb in labels])
    axes[1].set_ylabel("ingest vectors/s")
    axes[2].bar(labels, [res[lb]["recall_at_10"] for lb in labels])
    axes[2].set_ylim(0.8, 1.0)
    axes[2].set_ylabel("recall@10 (exact ids)")
    for ax in axes[1:]:
        ax.tick_params(axis="x", rotation=15)
    fig.suptitle(f"router benchmark: {report['n']} vectors, {report['data']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
