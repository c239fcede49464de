"""Backups of a cluster on a schedule and a new cluster restored from one (spec.backup,
spec.bootstrap)."""

from __future__ import annotations

from pydantic import Field

from chroma_operator.api.base import CRON_PATTERN, DNS_NAME_PATTERN, Model


def destination_help() -> str:
    return "Where backups go: a folder, file://, s3://, gs:// or az:// URL"


def credentials_help() -> str:
    return (
        "Secret whose keys become the Job's environment (e.g. AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL)"
    )


class Retention(Model):
    """Which scheduled backups to keep: the newest `keep`, none older than `maxAgeDays`."""

    keep: int = Field(default=7, ge=1, le=10_000, description="Newest backups kept")
    max_age_days: int | None = Field(
        default=None, ge=1, le=36_500, description="Backups older than this are removed"
    )


class ScheduledBackup(Model):
    """Backups on a schedule: a CronJob runs `backup create` then prunes by retention."""

    schedule: str = Field(
        default="0 3 * * *", pattern=CRON_PATTERN, description="Cron schedule of the backup Job"
    )
    destination: str = Field(min_length=1, description=destination_help())
    credentials_secret: str | None = Field(
        default=None, pattern=DNS_NAME_PATTERN, description=credentials_help()
    )
    retention: Retention = Field(default_factory=Retention, description="Backups kept")


class FromBackup(Model):
    """The backup a new cluster starts from."""

    destination: str = Field(min_length=1, description=destination_help())
    backup_id: str = Field(min_length=1, description="The backup's id (`backup list DEST`)")
    credentials_secret: str | None = Field(
        default=None, pattern=DNS_NAME_PATTERN, description=credentials_help()
    )


class Bootstrap(Model):
    """How a new cluster is filled before it is Ready."""

    from_backup: FromBackup | None = Field(
        default=None, description="Restore this backup through the routers once shards are up"
    )
