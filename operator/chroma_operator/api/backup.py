"""Backup resources: the ChromaBackup kind, scheduled backups and restoring a new cluster.

`ChromaBackup` asks for one backup of a ChromaCluster (the operator runs it as a Job and
copies its report into status). `spec.backup` on a ChromaCluster schedules them (a
CronJob that backs up and prunes old backups); `spec.bootstrap.fromBackup` fills a new
cluster from a backup before it is Ready.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from chroma_operator.api.models import (
    DNS_NAME_PATTERN,
    Model,
    ObjectMeta,
    credentials_help,
    destination_help,
)

BACKUP_KIND = "ChromaBackup"
BACKUP_PLURAL = "chromabackups"
BACKUP_SINGULAR = "chromabackup"
BACKUP_SHORT_NAMES = ["cbk"]
BackupPhase = Literal["Pending", "Running", "Completed", "Failed"]


class ChromaBackupSpec(Model):
    """One backup of a ChromaCluster in the same namespace."""

    cluster: str = Field(min_length=1, max_length=40, description="The ChromaCluster to back up")
    destination: str = Field(min_length=1, description=destination_help())
    credentials_secret: str | None = Field(
        default=None, pattern=DNS_NAME_PATTERN, description=credentials_help()
    )


class ChromaBackupStatus(Model):
    """What the backup Job reported."""

    model_config = ConfigDict(extra="allow")

    phase: BackupPhase = Field(default="Pending", description="Pending, Running, Completed, Failed")
    job: str | None = Field(default=None, description="The Job that takes the backup")
    started: str | None = Field(default=None, description="When the backup began (UTC)")
    completed: str | None = Field(default=None, description="When it finished (UTC)")
    backup_id: str | None = Field(default=None, description="Its id under the destination")
    location: str | None = Field(default=None, description="Where its manifest is")
    collections: int | None = Field(default=None, description="Collections backed up")
    records: int | None = Field(default=None, description="Records backed up")
    bytes: int | None = Field(default=None, description="Bytes written")
    message: str | None = Field(default=None, description="The outcome in one line")


class ChromaBackup(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    api_version: str = Field(alias="apiVersion")
    kind: Literal["ChromaBackup"]
    metadata: ObjectMeta
    spec: ChromaBackupSpec
