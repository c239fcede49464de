"""`chroma-operator backup`: create, list, verify and restore logical backups.

Exit codes: 0 success; 1 the backup or restore failed (one line says why); 2 bad
arguments. Errors never print a traceback, and a failed run leaves no half-written
backup behind and no restored collections in the target.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import typer

if TYPE_CHECKING:
    from chroma_operator.data.backup import BackupResult

app = typer.Typer(
    name="backup",
    help="Logical backups of a cluster to a directory or object storage, and restore.",
    no_args_is_help=True,
)

T = TypeVar("T")


def _console(stderr: bool = True):  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


@contextmanager
def _errors() -> Iterator[None]:
    """Known failures become one red line and exit code 1."""
    from rich.markup import escape

    from chroma_operator.data.backup import BackupError
    from chroma_operator.data.chroma_http import ChromaCallError
    from chroma_operator.data.store import StoreError

    try:
        yield
    except (BackupError, ChromaCallError, StoreError, OSError) as exc:
        _console().print(f"[bold red]error[/]: {escape(str(exc))}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        _console().print("[bold red]error[/]: interrupted")
        raise typer.Exit(130) from None


def _log(quiet: bool) -> Callable[[str], None]:
    err = _console()
    return (lambda _m: None) if quiet else (lambda m: err.print(m, markup=False))


def parse_headers(values: list[str]) -> dict[str, str]:
    """`--header 'X-Chroma-Token: secret'` (repeatable) -> a dict; values are never printed."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise typer.BadParameter("expected 'Name: value'", param_hint="--header")
        out[key.strip()] = value.strip()
    return out


def with_token(headers: dict[str, str], token: str | None) -> dict[str, str]:
    """`headers` plus `Authorization: Bearer <token>`, unless they already carry a token."""
    if not token or any(k.lower() in ("authorization", "x-chroma-token") for k in headers):
        return headers
    return {**headers, "Authorization": f"Bearer {token}"}


def _rate(records: int, seconds: float) -> str:
    return f"{records / seconds:,.0f}" if seconds > 0 else "-"


@app.command("create")
def create(
    url: str = typer.Option(..., help="The cluster's router, e.g. http://x-router:8000"),
    to: str = typer.Option(..., "--to", help="Destination: a folder, file://, s3://, gs://, az://"),
    tenant: list[str] = typer.Option(
        [], help="Tenants besides default_tenant and those the routers registered (repeatable)"
    ),
    rate_limit: float = typer.Option(0, help="Records/s per shard copy (0: unlimited)"),
    batch_size: int = typer.Option(0, min=0, help="Records per page (0: the servers' maximum)"),
    header: list[str] = typer.Option(
        [], help="'Name: value' sent to the router and shards, e.g. X-Chroma-Token (repeatable)"
    ),
    token: str | None = typer.Option(
        None, envvar="CHROMA_TOKEN", help="Bearer token for the routers (unless --header has one)"
    ),
    progress: bool = typer.Option(True, help="Progress bars on stderr"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the summary"),
    keep: int = typer.Option(0, min=0, help="Then prune: keep the newest N backups (0: no prune)"),
    max_age_days: int = typer.Option(0, min=0, help="Then prune: remove backups older (0: none)"),
    termination_log: str = typer.Option(
        "/dev/termination-log", help="Where the compact report goes when the file exists"
    ),
) -> None:
    """Back up every collection through the router, one held replica per shard."""
    from chroma_operator.data.backup import create_backup, now_iso
    from chroma_operator.data.prune import prune_backups
    from chroma_operator.tuner.report import write_termination_message

    headers = with_token(parse_headers(header), token)
    started = now_iso()
    try:
        with _errors():
            err = _console()
            result = create_backup(
                url,
                to,
                tenants=tenant,
                progress=progress and err.is_terminal,
                log=_log(quiet),
                rate_limit=rate_limit or None,
                page_size=batch_size or None,
                headers=headers,
            )
            pruned = (
                prune_backups(to, keep or 1_000_000, max_age_days or None)
                if keep or max_age_days
                else []
            )
    except typer.Exit as exc:
        message = "backup failed (see the Job's log)"
        write_termination_message(
            {"status": "failed", "started": started, "completed": now_iso(), "message": message},
            termination_log,
        )
        raise exc
    if quiet:
        for warning in result.warnings:
            _console().print(f"warning: {warning}", markup=False)
    m = result.manifest
    _console(stderr=False).print(
        f"backup {m.backup_id}: {len(m.collections)} collections, {m.records:,} records, "
        f"{m.bytes:,} bytes in {result.seconds:.1f}s ({_rate(m.records, result.seconds)} records/s)"
        f"{'' if m.point_in_time else ' (not point-in-time)'}\n{result.location}",
        markup=False,
    )
    for backup_id in pruned:
        _console().print(f"pruned {backup_id}", markup=False)
    write_termination_message(backup_report(result, pruned), termination_log)


def backup_report(result: BackupResult, pruned: list[str]) -> dict[str, object]:
    """The compact result the operator copies into a ChromaBackup's status."""
    m = result.manifest
    return {
        "status": "ok",
        "backupId": m.backup_id,
        "location": result.location,
        "started": m.started,
        "completed": m.completed,
        "collections": len(m.collections),
        "records": m.records,
        "bytes": m.bytes,
        "pointInTime": m.point_in_time,
        "seconds": round(result.seconds, 1),
        "pruned": pruned[:20],
    }


@app.command("prune")
def prune(
    dest: str = typer.Argument(..., help="The destination given to create"),
    keep: int = typer.Option(7, min=1, help="Keep the newest N backups"),
    max_age_days: int = typer.Option(0, min=0, help="Remove backups older than D days (0: none)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only print what would go"),
) -> None:
    """Remove old backups: beyond the newest N, or older than D days (never the newest)."""
    from chroma_operator.data.prune import prune_backups

    with _errors():
        gone = prune_backups(dest, keep, max_age_days or None, dry_run=dry_run)
    out = _console(stderr=False)
    for backup_id in gone:
        out.print(f"{'would remove' if dry_run else 'removed'} {backup_id}", markup=False)
    if not gone:
        out.print("nothing to prune", markup=False)


@app.command("list")
def list_backups(dest: str = typer.Argument(..., help="The destination given to create")) -> None:
    """Backups under a destination (finished ones: those with a manifest)."""
    from chroma_operator.data.backup import BackupError, load_manifest
    from chroma_operator.data.store import Store

    with _errors():
        store = Store(dest)
        out = _console(stderr=False)
        found = 0
        for name in store.children():
            try:
                m = load_manifest(store.child(name))
            except BackupError:
                continue
            found += 1
            out.print(
                f"{m.backup_id}  {m.completed}  {len(m.collections)} collections  "
                f"{m.records:,} records  {m.bytes:,} bytes",
                markup=False,
            )
        if not found:
            out.print(f"no backups under {dest}", markup=False)


@app.command("verify")
def verify(
    location: str = typer.Argument(..., help="DEST/BACKUP_ID"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Check every file's sha256, record count and digest against the manifest."""
    from chroma_operator.data.restore import verify_backup

    with _errors():
        m = verify_backup(location, _log(quiet))
    _console(stderr=False).print(
        f"backup {m.backup_id} is intact: {len(m.collections)} collections, {m.records:,} records",
        markup=False,
    )


@app.command("restore")
def restore(
    source: str = typer.Option(..., "--from", help="DEST/BACKUP_ID"),
    url: str = typer.Option(..., help="The new (empty) cluster's router"),
    rate_limit: float = typer.Option(0, help="Records/s (0: unlimited)"),
    batch_size: int = typer.Option(0, min=0, help="Records per page (0: the router's maximum)"),
    header: list[str] = typer.Option(
        [], help="'Name: value' sent to the router and shards, e.g. X-Chroma-Token (repeatable)"
    ),
    token: str | None = typer.Option(
        None, envvar="CHROMA_TOKEN", help="Bearer token for the routers (unless --header has one)"
    ),
    progress: bool = typer.Option(True, help="Progress bars on stderr"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    termination_log: str = typer.Option(
        "/dev/termination-log", help="Where the compact report goes when the file exists"
    ),
) -> None:
    """Restore into an empty cluster, then verify counts and digests."""
    from chroma_operator.data.restore import restore_backup
    from chroma_operator.tuner.report import write_termination_message

    headers = with_token(parse_headers(header), token)
    try:
        with _errors():
            err = _console()
            result = restore_backup(
                source,
                url,
                progress=progress and err.is_terminal,
                log=_log(quiet),
                rate_limit=rate_limit or None,
                page_size=batch_size or None,
                headers=headers,
            )
    except typer.Exit as exc:
        message = f"restore of {source} failed (see the Job's log)"
        write_termination_message({"status": "failed", "message": message}, termination_log)
        raise exc
    m = result.manifest
    write_termination_message(
        {
            "status": "ok",
            "backupId": m.backup_id,
            "collections": len(m.collections),
            "records": result.records,
            "seconds": round(result.seconds, 1),
            "verified": True,
        },
        termination_log,
    )
    _console(stderr=False).print(
        f"restored {m.backup_id}: {len(m.collections)} collections, {result.records:,} records "
        f"in {result.seconds:.1f}s ({_rate(result.records, result.seconds)} records/s), verified",
        markup=False,
    )
