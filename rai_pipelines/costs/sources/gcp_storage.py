"""GCP's Cloud Billing export copied to Cloud Storage as Parquet by BigQuery's EXPORT DATA, one folder
per usage day: {root}/date=YYYY-MM-DD/*.parquet (EXPORT DATA writes its single '*' as 000000000000,
000000000001, ...). `root` is gs://bucket[/prefix] or a local folder laid out the same way. The
rows are flattened and normalised like the BigQuery export's (gcp_billing)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.ledger_schema import SourceConfig, SourceFile, SourceKind, day_by_day
from rai_pipelines.costs.sources.gcp_billing import (
    client_kwargs,
    flatten_export,
    gcp_cost_totals,
    gcp_daily_totals,
    gcp_to_focus,
)


@dataclass
class GcsBillingExportReader:
    """The billing export copied to Cloud Storage as Parquet, {root}/date=YYYY-MM-DD/*.parquet."""

    root: str  # gs://bucket[/prefix] or a local folder
    billing_account_id: str
    endpoint: str = ""
    project: str = ""

    def __post_init__(self) -> None:
        self._client = None

    def _is_gcs(self) -> bool:
        return self.root.startswith("gs://")

    def _bucket_prefix(self) -> tuple[str, str]:
        bucket, _, prefix = self.root[len("gs://") :].partition("/")
        return bucket, prefix.strip("/")

    def client(self):
        if self._client is None:
            from google.cloud import storage

            self._client = storage.Client(project=self.project or None, **client_kwargs(self.endpoint))
        return self._client

    def _folder(self, day: date) -> str:
        return f"date={day.isoformat()}"

    def _blobs(self, day: date) -> list:
        bucket, prefix = self._bucket_prefix()
        folder = f"{prefix}/{self._folder(day)}/" if prefix else f"{self._folder(day)}/"
        blobs = self.client().list_blobs(bucket, prefix=folder)
        return sorted((b for b in blobs if b.name.endswith(".parquet")), key=lambda b: b.name)

    def _local_files(self, day: date) -> list[Path]:
        return sorted((Path(self.root) / self._folder(day)).glob("*.parquet"))

    def file_paths(self, day: date) -> list[str]:
        if self._is_gcs():
            bucket, _ = self._bucket_prefix()
            return [f"gs://{bucket}/{b.name}" for b in self._blobs(day)]
        return [str(p) for p in self._local_files(day)]

    def fingerprint(self, day: date) -> list[tuple[str, int, float]]:
        """(uri, size, generation) of the day's objects (a rewrite gets a new generation); for a local
        folder (path, size, mtime)."""
        if self._is_gcs():
            bucket, _ = self._bucket_prefix()
            return [(f"gs://{bucket}/{b.name}", int(b.size or 0), float(b.generation or 0)) for b in self._blobs(day)]
        return [(str(p), p.stat().st_size, p.stat().st_mtime) for p in self._local_files(day)]

    def _contents(self, day: date) -> list[tuple[str, bytes]]:
        if self._is_gcs():
            bucket, _ = self._bucket_prefix()
            return [(f"gs://{bucket}/{b.name}", b.download_as_bytes()) for b in self._blobs(day)]
        return [(str(p), p.read_bytes()) for p in self._local_files(day)]

    def read(self, day: date) -> list[SourceFile]:
        files = []
        for uri, data in self._contents(day):
            try:
                table = pq.read_table(io.BytesIO(data))
            except (pa.ArrowInvalid, OSError) as exc:
                raise BadInputError(f"{uri}: not a readable Parquet file: {exc}") from exc
            flat = flatten_export(table, uri)
            files.append(SourceFile(uri, flat, first_data_line=1, kind="gcp_storage", context=self.billing_account_id))
        return files


class GcpStorageExport(SourceConfig):
    """The same export copied to Cloud Storage as Parquet: gs://bucket/prefix/date=YYYY-MM-DD/*.parquet."""

    root: str  # gs://bucket/prefix, or a local folder laid out the same way
    billing_account_id: str
    endpoint: str = ""
    project: str = ""


SOURCE = SourceKind(
    config=GcpStorageExport,
    reader=lambda c: GcsBillingExportReader(**c.model_dump()),
    days=day_by_day(gcp_to_focus),
    daily_totals=gcp_daily_totals,
    cost_totals=gcp_cost_totals,
)
