"""Retention of scheduled backups: newest N kept, older than D days removed, never the newest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chroma_operator.data.backup_format import Manifest
from chroma_operator.data.prune import Finished, prune_backups, to_prune
from chroma_operator.data.store import Store

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def ages(*days: int) -> list[Finished]:
    return [Finished(f"b{d}", NOW - timedelta(days=d)) for d in days]


def test_keep_count_and_age() -> None:
    backups = ages(0, 1, 2, 3, 40)
    assert to_prune(backups, keep=3, max_age_days=None, now=NOW) == ["b3", "b40"]
    assert to_prune(backups, keep=10, max_age_days=30, now=NOW) == ["b40"]
    assert to_prune(backups, keep=2, max_age_days=30, now=NOW) == ["b2", "b3", "b40"]


def test_the_newest_backup_is_never_pruned() -> None:
    assert to_prune(ages(90, 100), keep=1, max_age_days=7, now=NOW) == ["b100"]
    with pytest.raises(ValueError):
        to_prune(ages(1), keep=0, max_age_days=None, now=NOW)


def _write(store: Store, backup_id: str, completed: datetime) -> None:
    stamp = completed.isoformat(timespec="seconds").replace("+00:00", "Z")
    m = Manifest(
        backup_id=backup_id,
        source="http://router:8000",
        chroma_version="1.0.0",
        started=stamp,
        completed=stamp,
        point_in_time=True,
    )
    store.child(backup_id).write_bytes("manifest.json", m.to_json())


def test_prune_removes_old_folders_and_leaves_unfinished_ones(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    now = datetime.now(UTC)
    for i, days in enumerate((0, 1, 2, 50)):
        _write(store, f"b{i}", now - timedelta(days=days))
    (tmp_path / "in-progress").mkdir()  # no manifest: maybe being written right now
    assert prune_backups(str(tmp_path), keep=2, max_age_days=None, dry_run=True) == ["b2", "b3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b0", "b1", "b2", "b3", "in-progress"]
    assert prune_backups(str(tmp_path), keep=10, max_age_days=30) == ["b3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b0", "b1", "b2", "in-progress"]
