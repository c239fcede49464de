"""`chroma-operator tune`: measure HNSW recall and latency on a sample, recommend a point.

Exit codes: 0 a point meets the target; 2 bad arguments; 3 the collection cannot be
tuned as asked (unknown, empty, k too large); 4 no grid point reached the target; 5
Chroma failed or was unreachable. Every run that got as far as parsing its arguments
writes its report (and, in a pod, the compact result as the termination message).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from chroma_operator.api.models import Grid

if TYPE_CHECKING:
    from chroma_operator.tuner.report import Report

GRID_KEYS = {
    "m": "max_neighbors",
    "maxneighbors": "max_neighbors",
    "max_neighbors": "max_neighbors",
    "efc": "ef_construction",
    "efconstruction": "ef_construction",
    "ef_construction": "ef_construction",
    "ef": "ef_search",
    "efs": "ef_search",
    "efsearch": "ef_search",
    "ef_search": "ef_search",
}


def parse_grid(values: list[str]) -> dict[str, list[int]]:
    """`M=8,16 efc=64,128 ef=10,20,40` -> lists; axes not given keep the spec defaults."""
    default = Grid()
    out: dict[str, list[int]] = {
        "max_neighbors": list(default.max_neighbors),
        "ef_construction": list(default.ef_construction),
        "ef_search": list(default.ef_search),
    }
    for item in values:
        key, sep, raw = item.partition("=")
        axis = GRID_KEYS.get(key.strip().lower())
        if not sep or axis is None:
            raise typer.BadParameter(
                f"{item!r}: expected M=..., efc=... or ef=... with comma-separated integers",
                param_hint="--grid",
            )
        try:
            numbers = [int(v) for v in raw.split(",") if v.strip()]
        except ValueError as exc:
            raise typer.BadParameter(
                f"{item!r}: values must be integers", param_hint="--grid"
            ) from exc
        if not numbers or min(numbers) < 1:
            raise typer.BadParameter(
                f"{item!r}: values must be positive integers", param_hint="--grid"
            )
        if axis == "max_neighbors" and min(numbers) < 2:
            raise typer.BadParameter(
                f"{item!r}: maxNeighbors must be at least 2", param_hint="--grid"
            )
        out[axis] = numbers
    return out


def command(
    url: str = typer.Option(
        ..., help="Router (or single Chroma node) base URL, e.g. http://c:8000"
    ),
    collection: str | None = typer.Option(
        None, help="Collection to tune; the largest one when omitted"
    ),
    k: int = typer.Option(10, min=1, help="k of recall@k"),
    target_recall: float = typer.Option(0.95, min=0.0, max=1.0, help="Recall@k to reach"),
    sample: int = typer.Option(20_000, min=1, help="Vectors to sample from the collection"),
    queries: int = typer.Option(500, min=1, help="Sampled vectors held out as queries"),
    query_file: Path | None = typer.Option(
        None, help="A .npy array of query vectors to use instead of held-out ones"
    ),
    grid: list[str] = typer.Option(
        [], help="Grid axis, repeatable: M=8,16,32  efc=64,128  ef=10,20,40"
    ),
    report: Path | None = typer.Option(None, help="Write the full JSON report here"),
    plot: Path | None = typer.Option(None, help="Write a recall-vs-latency PNG here"),
    live: bool = typer.Option(
        False, help="Also try each efSearch on the live collection (restored afterwards)"
    ),
    verify: bool = typer.Option(
        False,
        "--verify",
        help="No sweep: measure the live collection's recall and latency as it is now "
        "(after a tuning result was applied and the shards restarted)",
    ),
    apply_ef_search: bool = typer.Option(
        False,
        "--apply-ef-search",
        help="Then set the chosen efSearch on the live collection (through --url); the "
        "result says appliedEfSearch or applyError",
    ),
    token: str | None = typer.Option(None, envvar="CHROMA_TOKEN", help="Bearer token for Chroma"),
    threads: int | None = typer.Option(None, min=1, help="Index build threads (all cores)"),
    repeats: int = typer.Option(2, min=1, help="Timed runs per query (fastest kept)"),
    seed: int = typer.Option(0, help="Seed of the sample and the held-out split"),
    termination_log: str = typer.Option(
        "/dev/termination-log", help="Where the compact result goes when the file exists"
    ),
    progress: bool = typer.Option(True, help="Show progress bars on stderr"),
) -> None:
    """Measure HNSW recall and latency on a sample and recommend parameters.

    Exit codes: 0 a point meets the target; 2 bad arguments; 3 the collection cannot be
    tuned as asked (unknown, empty, k too large); 4 no grid point reached the target;
    5 Chroma failed or was unreachable.
    """
    from rich.console import Console
    from rich.markup import escape

    from chroma_operator.tuner.report import compact, write_json, write_termination_message
    from chroma_operator.tuner.report import plot as write_plot
    from chroma_operator.tuner.run import Options, run_tuning
    from chroma_operator.tuner.sweep import grid_from

    err = Console(stderr=True)
    axes = parse_grid(grid)
    opts = Options(
        url=url,
        collection=collection,
        grid=grid_from(axes["max_neighbors"], axes["ef_construction"], axes["ef_search"]),
        k=k,
        target_recall=target_recall,
        sample=sample,
        queries=queries,
        query_file=query_file,
        live=live,
        verify=verify,
        token=token,
        threads=threads,
        repeats=repeats,
        seed=seed,
        progress=progress and err.is_terminal,
        log=lambda msg: err.print(msg, highlight=False, markup=False),
    )
    result = run_tuning(opts)
    full = result.to_json()
    applied: dict[str, object] = {}
    chosen = result.choice.point if result.choice else None
    if apply_ef_search and not verify and result.status == "ok" and chosen and result.collection:
        from chroma_operator.tuner.apply import apply_result

        applied = apply_result(url, result.collection, chosen.ef_search, token)
        full.update(applied)
        err.print(
            applied.get("applyError") or f"efSearch {chosen.ef_search} applied",
            highlight=False,
            markup=False,
        )
    small = compact(result, applied)
    if report is not None:
        write_json(report, full)
    if plot is not None and result.points:
        write_plot(result, plot)
    write_termination_message(small, termination_log)
    typer.echo(_summary(result))
    if result.status != "ok":
        err.print(
            f"[bold red]error[/] ({result.reason}): {escape(result.message)}", highlight=False
        )
        from chroma_operator.tuner.errors import EXIT_CODES

        raise typer.Exit(code=EXIT_CODES.get(result.reason or "", 1))


def _summary(result: Report) -> str:
    lines = [f"collection: {result.collection}  space: {result.space}  status: {result.status}"]
    choice = result.choice
    if choice is not None:
        if choice.point is not None:
            p = choice.point
            lines.append(
                f"chosen: maxNeighbors={p.max_neighbors} efConstruction={p.ef_construction} "
                f"efSearch={p.ef_search}  recall@{result.k}={p.recall:.4f}  "
                f"p50={p.p50_ms:.3f} ms  p99={p.p99_ms:.3f} ms"
            )
        if choice.best is not None:
            b = choice.best
            lines.append(
                f"most accurate: maxNeighbors={b.max_neighbors} efConstruction={b.ef_construction} "
                f"efSearch={b.ef_search}  recall@{result.k}={b.recall:.4f}  p50={b.p50_ms:.3f} ms"
            )
    if result.live is not None:
        lines.append(
            f"live: effective={result.live['effective']} restored={result.live['restored']}"
        )
        if result.live.get("note"):
            lines.append(f"live note: {result.live['note']}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(typer.run(command))  # type: ignore[func-returns-value]
