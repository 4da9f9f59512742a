"""GCP's Cloud Billing export where it lives, in BigQuery: the day's rows are selected, flattened
and their credits summed in BigQuery (`bigquery_day_sql`), so only one day's rows travel. The
google-cloud client is imported inside the reader; against an emulator, `endpoint` is its URL and
the client uses anonymous credentials. The rows are normalised by gcp_billing.gcp_to_focus."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.ledger_schema import SourceConfig, SourceFile, SourceKind, day_by_day
from rai_pipelines.costs.sources.gcp_billing import (
    check_export_fields,
    client_kwargs,
    gcp_cost_totals,
    gcp_daily_totals,
    gcp_to_focus,
    select_list,
)


def billing_export_table(billing_account_id: str, detailed: bool = False) -> str:
    """The table name Google gives the export: the account id with '-' as '_'."""
    kind = "resource_v1" if detailed else "v1"
    return f"gcp_billing_export_{kind}_{billing_account_id.replace('-', '_')}"


def bigquery_paths(schema) -> dict[str, str]:
    """Dotted path -> type of a BigQuery table schema (a list of google.cloud.bigquery.SchemaField)."""
    out: dict[str, str] = {}

    def walk(prefix: str, fields) -> None:
        for field in fields:
            path = f"{prefix}{field.name}"
            out[path] = "REPEATED" if field.mode == "REPEATED" else field.field_type
            if field.fields:
                walk(f"{path}.", field.fields)

    walk("", schema)
    return out


def bigquery_day_sql(
    table_id: str,
    paths: dict[str, str],
    partition_column: str | None = "_PARTITIONTIME",
    max_export_lag_days: int | None = None,
) -> str:
    """GoogleSQL for the rows whose usage started on one UTC day, with the TIMESTAMP parameters of
    `day_query_parameters`: @day_start <= usage_start_time < @day_end.

    The export tables are partitioned by day on the time the rows were written, so a day's usage
    sits in that day's partition and in later ones (late usage reports, restatements). The partition
    filter starts the day before (@partitions_from: a row exported on the evening of the previous
    Pacific day can carry early-UTC usage), which prunes the whole history before it; with
    `max_export_lag_days` it also ends that many days after the day (@partitions_until), which bounds
    the scan of a backfill at the price of missing rows exported later than that. `partition_column`
    is `_PARTITIONTIME` for the export's own tables, the name of a TIMESTAMP column for a copy
    partitioned on a column (`export_time`, `usage_start_time`), or None for an unpartitioned copy.

    The bounds are TIMESTAMP parameters computed by the caller rather than DATE_ADD(@day, ...) in SQL:
    bqemulator 1.4.0 rounds every NUMERIC cast of a query to 3 decimals once the query has
    DATE_ADD/DATE_SUB on a DATE parameter.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", table_id):
        raise ValueError(f"not a BigQuery table id: {table_id!r}")
    where = []
    if partition_column:
        if not re.fullmatch(r"_PARTITIONTIME|[A-Za-z_][A-Za-z0-9_]*", partition_column):
            raise ValueError(f"not a partition column: {partition_column!r}")
        ref = partition_column if partition_column == "_PARTITIONTIME" else f"e.{partition_column}"
        where.append(f"{ref} >= @partitions_from")
        if max_export_lag_days is not None:
            where.append(f"{ref} < @partitions_until")
    where.append("e.usage_start_time >= @day_start")
    where.append("e.usage_start_time < @day_end")
    select = ",\n  ".join(select_list(paths, "bigquery"))
    conditions = "\n  AND ".join(where)
    return (
        f"SELECT\n  {select}\nFROM `{table_id}` AS e\nWHERE {conditions}\n"
        "ORDER BY usage_start_time, project_id, service_id, sku_id, cost_type, cost"
    )


def day_query_parameters(day: date, max_export_lag_days: int | None = None) -> dict[str, datetime]:
    """The TIMESTAMP parameters of `bigquery_day_sql` for a UTC day."""
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    params = {"day_start": start, "day_end": start + timedelta(days=1), "partitions_from": start - timedelta(days=1)}
    if max_export_lag_days is not None:
        params["partitions_until"] = start + timedelta(days=int(max_export_lag_days) + 1)
    return params


def bigquery_fingerprint_sql(day_sql: str) -> str:
    """Row count, cost, credits and latest export time of the day's rows: changes when Google restates."""
    return (
        "SELECT COUNT(*) AS row_count, CAST(SUM(CAST(cost AS NUMERIC(38, 9))) AS STRING) AS cost,\n"
        "  CAST(SUM(credits_total) AS STRING) AS credits, CAST(MAX(export_time) AS STRING) AS last_export\n"
        f"FROM (\n{day_sql}\n)"
    )


@dataclass
class BigQueryBillingExportReader:
    """The billing export table of one billing account in BigQuery.

    `project`/`dataset` hold the export; `table` defaults to Google's name for the account's standard
    (or, with `detailed`, resource-level) export. Queries run as jobs of `job_project` (default:
    `project`). `partition_column` and `max_export_lag_days` shape the partition filter (see
    `bigquery_day_sql`).
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

            self._client = bigquery.Client(project=self.job_project or self.project, **client_kwargs(self.endpoint))
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
        return [
            SourceFile(self.uri(day), table, first_data_line=1, kind="gcp_bigquery", context=self.billing_account_id)
        ]


class GcpBigQueryExport(SourceConfig):
    """GCP's Cloud Billing export to BigQuery (standard or detailed), queried one day at a time."""

    project: str
    dataset: str
    billing_account_id: str  # rows of any other billing account are refused
    table: str = ""  # default: gcp_billing_export[_resource]_v1_<billing account id with _>
    detailed: bool = False  # the resource-level export
    job_project: str = ""  # the project that runs (and pays for) the query; default: project
    endpoint: str = ""  # an API endpoint override (an emulator); default: Google's
    location: str | None = None
    partition_column: str = "_PARTITIONTIME"  # "" for a copy that is not partitioned
    max_export_lag_days: int | None = None  # bound the partitions scanned for a day's late rows


SOURCE = SourceKind(
    config=GcpBigQueryExport,
    reader=lambda c: BigQueryBillingExportReader(**c.model_dump()),
    days=day_by_day(gcp_to_focus),
    daily_totals=gcp_daily_totals,
    cost_totals=gcp_cost_totals,
)
