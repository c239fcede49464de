"""Retention for scheduled backups: keep the newest N, drop those older than D days.

Only finished backups (with a manifest) count and are removed; a folder without a
manifest may be a backup being written right now, so it is left alone. The newest
finished backup is never removed, whatever its age: retention must not leave nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chroma_operator.data.backup import BackupError, load_manifest
from chroma_operator.data.store import Store


@dataclass(frozen=True)
class Finished:
    backup_id: str
    completed: datetime


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def finished_backups(store: Store) -> list[Finished]:
    """Backups with a readable manifest, newest first."""
    out = []
    for name in store.children():
        try:
            m = load_manifest(store.child(name))
        except BackupError:
            continue
        out.append(Finished(name, _when(m.completed)))
    return sorted(out, key=lambda f: f.completed, reverse=True)


def to_prune(
    backups: list[Finished], keep: int, max_age_days: int | None, now: datetime
) -> list[str]:
    """Ids to remove from `backups` (newest first). Pure."""
    if keep < 1:
        raise ValueError("keep must be >= 1")
    cutoff = now - timedelta(days=max_age_days) if max_age_days else None
    out = []
    for i, b in enumerate(backups):
        if i == 0:
            continue
        if i >= keep or (cutoff is not None and b.completed < cutoff):
            out.append(b.backup_id)
    return out


def prune_backups(
    dest: str, keep: int, max_age_days: int | None = None, *, dry_run: bool = False
) -> list[str]:
    """Remove the backups retention drops; their ids."""
    store = Store(dest)
    doomed = to_prune(finished_backups(store), keep, max_age_days, datetime.now(UTC))
    if not dry_run:
        for backup_id in doomed:
            store.child(backup_id).remove()
    return doomed
