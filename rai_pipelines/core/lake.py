"""The lake: Parquet datasets hive-partitioned by day (and model), local folder or object store.

Each partition is a single object (`data.parquet`), written under a temporary name and moved into
place, so readers see either the old partition or the new one, never half of one, and rewriting a
partition replaces it (a backfill never double-counts). On an object store the file is serialised
in memory first and uploaded as one object, so a failure while writing publishes nothing.

A partition too large to hold in memory is staged instead (`Lake.staged`): written batch by batch
to a local file, checked there, and only then published (a rename on a local lake; on an object
store, an upload under a temporary key and a server-side copy into place).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from rai_pipelines.core.storage import filesystem

DATA_FILE = "data.parquet"


def _partition_path(dataset: str, partition: Mapping[str, str]) -> str:
    parts = [dataset]
    for key, value in partition.items():
        value = str(value)
        if not value or "/" in value or value in {".", ".."}:
            raise ValueError(f"invalid partition value {key}={value!r} for dataset {dataset}")
        parts.append(f"{key}={value}")
    return "/".join(parts)


class Lake:
    """Reads and writes partitions under `root`, a local path or a URI such as s3://bucket/prefix."""

    def __init__(self, root: str):
        self.root = root.rstrip("/")
        self.fs, self._base = filesystem(self.root)
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, dataset: str, partition: Mapping[str, str] | None = None, name: str = DATA_FILE) -> str:
        rel = _partition_path(dataset, partition or {})
        return f"{self._base}/{rel}/{name}"

    def uri(self, dataset: str, partition: Mapping[str, str] | None = None, name: str = DATA_FILE) -> str:
        path = self.path(dataset, partition, name)
        return path if self.is_local else f"{self.root.split('://')[0]}://{path}"

    # -- writing -------------------------------------------------------------------------------
    def _atomic_write(self, path: str, write) -> None:
        directory = path.rsplit("/", 1)[0]
        self.fs.create_dir(directory, recursive=True)
        if not self.is_local:
            # Serialise fully in memory first: an object-store stream completes its upload when it
            # is closed, even on an exception, which would publish half a partition.
            buffer = pa.BufferOutputStream()
            write(buffer)
            payload = buffer.getvalue()
            with self.fs.open_output_stream(path) as out:
                out.write(payload)
            return
        tmp = f"{directory}/.tmp-{uuid.uuid4().hex}-{path.rsplit('/', 1)[1]}"
        try:
            with open(tmp, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def write_table(self, dataset: str, partition: Mapping[str, str], table: pa.Table) -> str:
        path = self.path(dataset, partition)
        self._atomic_write(path, lambda out: pq.write_table(table, out, compression="zstd"))
        return self.uri(dataset, partition)

    @contextmanager
    def staged(self, dataset: str, partition: Mapping[str, str]) -> Iterator[StagedPartition]:
        """A partition file to write in full at `staged.path` (local), then `staged.publish()`;
        leaving the block without publishing, or by an exception, publishes nothing."""
        final = self.path(dataset, partition)
        directory, name = final.rsplit("/", 1)
        if self.is_local:
            # Beside the partition (one filesystem, so publishing is a rename), under a name that
            # is not a data file's.
            created = []  # the folders made for this partition, deepest first
            folder = directory
            while not os.path.isdir(folder):
                created.append(folder)
                folder = os.path.dirname(folder)
            os.makedirs(directory, exist_ok=True)
            local_dir, path = None, f"{directory}/.tmp-{uuid.uuid4().hex}-{name}"
        else:
            local_dir = tempfile.mkdtemp(prefix="rai-lake-stage-")
            path = os.path.join(local_dir, name)
        try:
            yield StagedPartition(self, final, path, self.uri(dataset, partition))
        finally:
            if local_dir is not None:
                shutil.rmtree(local_dir, ignore_errors=True)
            else:
                if os.path.exists(path):
                    os.unlink(path)
                # A partition that was not published leaves no trace: its folder goes if it is empty.
                for folder in created:
                    try:
                        os.rmdir(folder)
                    except OSError:  # not empty: published, or another writer's
                        break

    def iter_batches(
        self, dataset: str, partition: Mapping[str, str], columns: list[str] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """A partition's rows batch by batch, without reading it whole."""
        if not self.exists(dataset, partition):
            raise FileNotFoundError(f"lake partition not found: {self.uri(dataset, partition)}")
        with self.fs.open_input_file(self.path(dataset, partition)) as f:
            yield from pq.ParquetFile(f).iter_batches(columns=columns, use_threads=False)

    def write_json(self, dataset: str, partition: Mapping[str, str], name: str, document) -> str:
        path = self.path(dataset, partition, name)
        # NaN and infinity are not JSON: a strict reader would reject the file, so refuse to write it.
        try:
            payload = json.dumps(document, indent=2, sort_keys=True, default=str, allow_nan=False).encode()
        except ValueError as exc:
            raise ValueError(f"{self.uri(dataset, partition, name)}: {exc}") from None
        self._atomic_write(path, lambda out: out.write(payload))
        return self.uri(dataset, partition, name)

    def write_bytes(self, dataset: str, partition: Mapping[str, str], name: str, payload: bytes) -> str:
        self._atomic_write(self.path(dataset, partition, name), lambda out: out.write(payload))
        return self.uri(dataset, partition, name)

    # -- reading -------------------------------------------------------------------------------
    def exists(self, dataset: str, partition: Mapping[str, str], name: str = DATA_FILE) -> bool:
        info = self.fs.get_file_info(self.path(dataset, partition, name))
        return info.type == pafs.FileType.File

    def read_bytes(self, dataset: str, partition: Mapping[str, str], name: str) -> bytes:
        with self.fs.open_input_stream(self.path(dataset, partition, name)) as f:
            return f.read()

    def modified_ns(self, dataset: str, partition: Mapping[str, str], name: str = DATA_FILE) -> int | None:
        """Modification time of a partition's file, None when it does not exist."""
        info = self.fs.get_file_info(self.path(dataset, partition, name))
        return info.mtime_ns if info.type == pafs.FileType.File else None

    def fingerprint(self, dataset: str, partition: Mapping[str, str], name: str = DATA_FILE) -> str | None:
        """Changes whenever the file is rewritten (size and modification time)."""
        info = self.fs.get_file_info(self.path(dataset, partition, name))
        return f"{info.size}-{info.mtime_ns}" if info.type == pafs.FileType.File else None

    def read_table(self, dataset: str, partition: Mapping[str, str], columns: list[str] | None = None) -> pa.Table:
        path = self.path(dataset, partition)
        if not self.exists(dataset, partition):
            raise FileNotFoundError(f"lake partition not found: {self.uri(dataset, partition)}")
        with self.fs.open_input_file(path) as f:
            return pq.read_table(f, columns=columns)

    def read_json(self, dataset: str, partition: Mapping[str, str], name: str):
        path = self.path(dataset, partition, name)
        with self.fs.open_input_stream(path) as f:
            return json.loads(f.read())

    def list_partitions(self, dataset: str, prefix: Mapping[str, str] | None = None) -> list[dict[str, str]]:
        """Every partition of `dataset` below `prefix` that holds a data file, sorted."""
        base = f"{self._base}/{_partition_path(dataset, prefix or {})}"
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        found = []
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.File or not info.path.endswith("/" + DATA_FILE):
                continue
            rel = info.path[len(f"{self._base}/{dataset}/") :].rsplit("/", 1)[0]
            found.append(dict(part.split("=", 1) for part in rel.split("/") if "=" in part))
        return sorted(found, key=lambda p: tuple(p.items()))

    def read_dataset(self, dataset: str, prefix: Mapping[str, str] | None = None) -> pa.Table | None:
        """All partitions below `prefix` concatenated, with the partition keys as string columns."""

        def read(partition: dict[str, str]) -> pa.Table:
            table = self.read_table(dataset, partition)
            for key, value in partition.items():
                if key not in table.column_names:
                    table = table.append_column(key, pa.array([value] * table.num_rows, pa.string()))
            return table

        # Many small files (one per model and day): read side by side, Arrow releases the GIL.
        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
            tables = list(pool.map(read, self.list_partitions(dataset, prefix)))
        if not tables:
            return None
        return pa.concat_tables(tables, promote_options="default")


class StagedPartition:
    """A partition being written outside the lake's view (see `Lake.staged`)."""

    def __init__(self, lake: Lake, final: str, path: str, uri: str):
        self.lake, self.final, self.path, self.uri = lake, final, path, uri

    def publish(self) -> str:
        with open(self.path, "rb") as f:
            os.fsync(f.fileno())
        if self.lake.is_local:
            os.replace(self.path, self.final)
            return self.uri
        directory, name = self.final.rsplit("/", 1)
        self.lake.fs.create_dir(directory, recursive=True)
        temporary = f"{directory}/.tmp-{uuid.uuid4().hex}-{name}"
        try:
            with open(self.path, "rb") as source, self.lake.fs.open_output_stream(temporary) as out:
                while chunk := source.read(8 << 20):
                    out.write(chunk)
            # A server-side copy of a whole object: readers see the old partition or the new one.
            self.lake.fs.move(temporary, self.final)
        finally:
            if self.lake.fs.get_file_info(temporary).type == pafs.FileType.File:
                self.lake.fs.delete_file(temporary)
        return self.uri
