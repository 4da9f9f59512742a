"""Where files are: a local folder or an object store URI (s3://bucket/prefix, gs://...), opened
through pyarrow.fs so that every reader and the lake handle both the same way."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs


def filesystem(root: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem of `root` and its base path on it (a local root is made absolute)."""
    if "://" in root:
        return pafs.FileSystem.from_uri(root.rstrip("/"))
    return pafs.LocalFileSystem(), str(Path(root).resolve())


def scheme_uri(root: str, path: str) -> str:
    """The URI of a path on the filesystem of `root`, as shown in lineage and errors."""
    return f"{root.split('://')[0]}://{path}" if "://" in root else path
