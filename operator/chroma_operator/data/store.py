"""Where backups live: a directory or object storage, through fsspec.

`/path`, `file://`, `s3://` (s3fs), `gs://` (gcsfs) and `az://` (adlfs) all look the same
here. Credentials come from each library's standard chain (environment variables, config
files, instance identity); nothing here reads, prints or logs them. For S3-compatible
stores, `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`) points s3fs at the endpoint.
"""

from __future__ import annotations

import hashlib
import os
from typing import IO, Any

import fsspec
from fsspec.core import url_to_fs

_CHUNK = 1 << 20


class StoreError(RuntimeError):
    """The destination cannot be used (unknown scheme, missing library, no access)."""


class Store:
    """A root folder in some filesystem; paths below it are relative and use '/'."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") or url
        try:
            fs, root = url_to_fs(self.url, **_options(self.url))
        except ImportError as exc:
            raise StoreError(f"{url}: {_missing_library(url, exc)}") from None
        except ValueError as exc:
            raise StoreError(f"{url}: {exc}") from None
        self.fs: fsspec.AbstractFileSystem = fs
        self.root = str(root).rstrip("/")

    def child(self, name: str) -> Store:
        return Store(f"{self.url}/{name}")

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def open(self, rel: str, mode: str = "rb") -> IO[Any]:
        if "w" in mode:
            parent = self.path(rel).rsplit("/", 1)[0]
            self.fs.makedirs(parent, exist_ok=True)
        return self.fs.open(self.path(rel), mode)  # type: ignore[no-any-return]

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self.path(rel)))

    def read_bytes(self, rel: str) -> bytes:
        with self.open(rel) as f:
            return bytes(f.read())

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.open(rel, "wb") as f:
            f.write(data)

    def size(self, rel: str) -> int:
        return int(self.fs.size(self.path(rel)))

    def sha256(self, rel: str) -> str:
        h = hashlib.sha256()
        with self.open(rel) as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        return h.hexdigest()

    def children(self) -> list[str]:
        """Names of the folders directly under the root ([] when it does not exist)."""
        try:
            entries = self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            return []
        out = []
        for e in entries:
            if e.get("type") == "directory":
                out.append(str(e["name"]).rstrip("/").rsplit("/", 1)[-1])
        return sorted(out)

    def remove(self) -> None:
        """Delete the root and everything below it (a failed backup's partial files)."""
        if self.fs.exists(self.root):
            self.fs.rm(self.root, recursive=True)


def _options(url: str) -> dict[str, Any]:
    if url.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            return {"client_kwargs": {"endpoint_url": endpoint}}
    return {}


def _missing_library(url: str, exc: ImportError) -> str:
    scheme = url.split("://", 1)[0]
    package = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}.get(
        scheme, "its fsspec backend"
    )
    return f"the {scheme}:// scheme needs the {package} package ({exc})"
