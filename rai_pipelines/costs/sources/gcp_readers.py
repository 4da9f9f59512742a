"""Reading the Google Cloud Billing export of one day, where it lives (BigQuery) or from its copy in
Cloud Storage, into flat export rows (`SourceFile.kind == "gcp_billing"`) for `gcp_billing.gcp_to_focus`.

BigQuery: the export table itself; the day's rows are selected, flattened and their credits summed
           in BigQuery (`gcp_billing.bigquery_day_sql`), so only one day's rows travel.
Cloud Storage: the export copied as Parquet by BigQuery's EXPORT DATA, one folder per usage day:
           {root}/date=YYYY-MM-DD/*.parquet (EXPORT DATA writes its single '*' as 000000000000,
           000000000001, ...). `root` is gs://bucket[/prefix] or a local folder laid out the same way.

The google-cloud clients are imported inside the readers (heavy imports stay out of definition load).
Against an emulator, `endpoint` is its URL and the clients use anonymous credentials.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.sources.aws_cur import SourceFile
from rai_pipelines.costs.sources.gcp_billing import (
    KIND,
    bigquery_day_sql,
    bigquery_fingerprint_sql,
    bigquery_paths,
    billing_export_table,
    check_export_fields,
    day_query_parameters,
    flatten_export,
)


def _client_kwargs(endpoint: str | None) -> dict:
    if not endpoint:
        return {}
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    return {"credentials": AnonymousCredentials(), "client_options": ClientOptions(api_endpoint=endpoint)}


@dataclass
class BigQueryBillingExportReader:
    """The billing export table of one billing account in BigQuery.

    `project`/`dataset` hold the export; `table` defaults to Google's name for the account's standard
    (or, with `detailed`, resource-level) export. Queries run as jobs of `job_project` (default:
    `project`). `partition_column` and `max_export_lag_days` shape the partition filter (see
    `gcp_billing.bigquery_day_sql`).
    """

    project: str
    dataset: str
    billing_account_id: str
    table: str = ""
    detailed: bool = False
    job_project: str = ""
    endpoint: str = ""
    location: str | None = None
    partition_column: str | None = "_PARTITIONTIME"
    max_export_lag_days: int | None = None

    def __post_init__(self) -> None:
        self.table = self.table or billing_export_table(self.billing_account_id, self.detailed)
        self._client = None

    @property
    def table_id(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"

    def client(self):
        if self._client is None:
            from google.cloud import bigquery

            self._client = bigquery.Client(project=self.job_project or self.project, **_client_kwargs(self.endpoint))
        return self._client

    def uri(self, day: date) -> str:
        return f"bigquery://{self.table_id}/usage_date={day.isoformat()}"

    def file_paths(self, day: date) -> list[str]:
        """The one source of the day: the export table's rows of that usage day."""
        return [self.uri(day)]

    def _day_sql(self) -> str:
        from google.api_core.exceptions import NotFound

        where = f"bigquery://{self.table_id}"
        try:
            table = self.client().get_table(self.table_id)
        except NotFound as exc:
            raise BadInputError(f"{where}: no such billing export table ({exc.message})") from exc
        paths = bigquery_paths(table.schema)
        check_export_fields(paths, where)
        for field in ("usage_start_time", "usage_end_time"):
            if paths[field] != "TIMESTAMP":
                raise BadInputError(f"{where}: field {field} is {paths[field]}, not TIMESTAMP")
        return bigquery_day_sql(self.table_id, paths, self.partition_column, self.max_export_lag_days)

    def _query(self, sql: str, day: date):
        from google.api_core.exceptions import BadRequest
        from google.cloud import bigquery

        params = day_query_parameters(day, self.max_export_lag_days)
        config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter(k, "TIMESTAMP", v) for k, v in params.items()]
        )
        try:
            return self.client().query(sql, job_config=config, location=self.location).result()
        except BadRequest as exc:
            raise BadInputError(f"bigquery://{self.table_id}: the day's query failed: {exc.message}") from exc

    def fingerprint(self, day: date) -> list[tuple[str, int, str]]:
        """(uri, row count, "cost|credits|latest export_time") of the day's rows: changes when Google
        adds or restates rows of that day, and only then (the table's own modification time moves
        with every export of any day)."""
        (row,) = list(self._query(bigquery_fingerprint_sql(self._day_sql()), day))
        return [(self.uri(day), int(row["row_count"]), f"{row['cost']}|{row['credits']}|{row['last_export']}")]

    def read(self, day: date) -> list[SourceFile]:
        table = self._query(self._day_sql(), day).to_arrow(create_bqstorage_client=False)
        if table.num_rows == 0:
            return []
        return [SourceFile(self.uri(day), table, first_data_line=1, kind=KIND, context=self.billing_account_id)]


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

            self._client = storage.Client(project=self.project or None, **_client_kwargs(self.endpoint))
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
            files.append(SourceFile(uri, flat, first_data_line=1, kind=KIND, context=self.billing_account_id))
        return files
