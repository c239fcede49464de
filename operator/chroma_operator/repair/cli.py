"""`chroma-operator repair`: make every replica match an in-sync one (anti-entropy).

Exit codes: 0 every replica converged (a dry run: nothing differs); 2 bad arguments;
3 the collection is on no replica; 4 differences found (dry run) or left (writes during
the repair); 5 the router or a replica did not answer (reported and skipped).
"""

from __future__ import annotations

from pathlib import Path

import typer


def command(
    url: str = typer.Option(
        ..., help="A router of the cluster, e.g. http://127.0.0.1:8000 (it lists the replicas)"
    ),
    collection: str | None = typer.Option(
        None, help="Repair only this collection (by name); every collection when unset"
    ),
    tenant: list[str] = typer.Option(
        ["default_tenant"],
        help="Tenants to repair besides default_tenant and those the routers registered "
        "(tenants with collections in use; repeat for more)",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Report what differs, change nothing (exit 4 if anything does)"
    ),
    records_per_second: int = typer.Option(
        5_000,
        min=0,
        help="Records read from or written to replicas per second, so live traffic keeps "
        "its latency (0: no limit)",
    ),
    rounds: int = typer.Option(
        3, min=1, max=20, help="Fix-and-verify rounds per collection (writes may land meanwhile)"
    ),
    buckets: int = typer.Option(1024, min=1, max=1_048_576, help="Digest buckets (by id hash)"),
    token: str | None = typer.Option(None, envvar="CHROMA_TOKEN", help="Bearer token"),
    timeout: float = typer.Option(30.0, min=0.1, help="Seconds per HTTP call"),
    report: Path | None = typer.Option(None, help="Write the full JSON report here"),
    termination_log: str = typer.Option(
        "/dev/termination-log", help="Where the compact report goes when the file exists"
    ),
    progress: bool = typer.Option(True, help="Show a progress bar on stderr"),
) -> None:
    """Digest every replica of every collection and fix only the buckets that differ from
    an in-sync replica: copy missing records, remove records deleted while a replica was
    away, overwrite changed ones. Prints the report; see the exit codes above.
    """
    from rich.console import Console
    from rich.markup import escape

    from chroma_operator.repair.errors import EXIT_DIFFERENCES, EXIT_UNREACHABLE, RepairError
    from chroma_operator.repair.run import Options, run_repair
    from chroma_operator.tuner.report import write_json, write_termination_message

    err = Console(stderr=True)
    opts = Options(
        url=url,
        collection=collection,
        tenants=tenant,
        dry_run=dry_run,
        records_per_second=records_per_second,
        rounds=rounds,
        buckets=buckets,
        token=token,
        timeout=timeout,
        progress=progress and err.is_terminal,
        log=lambda msg: err.print(msg, highlight=False, markup=False),
    )
    try:
        result = run_repair(opts)
    except RepairError as exc:
        err.print(f"[bold red]error[/]: {escape(exc.message)}", highlight=False)
        write_termination_message(
            {"v": 1, "status": "failed", "reason": "cannot-start", "message": exc.message},
            termination_log,
        )
        raise typer.Exit(code=exc.exit_code) from None
    if report is not None:
        write_json(report, result.to_json())
    write_termination_message(result.compact(), termination_log)
    typer.echo(result.summary())
    if not result.converged:
        err.print(f"[bold red]error[/]: {escape(result.message())}", highlight=False)
        raise typer.Exit(code=EXIT_UNREACHABLE if result.errors else EXIT_DIFFERENCES)
