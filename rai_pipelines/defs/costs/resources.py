import hashlib
import json
from datetime import date

import dagster as dg

from rai_pipelines.costs.sources.aws_cur import SourceFile
from rai_pipelines.costs.sources.exports import CurExportReader, OnPremUsageReader
from rai_pipelines.costs.sources.focus_export_readers import AwsFocusExportReader, AzureFocusExportReader
from rai_pipelines.costs.sources.gcp_readers import BigQueryBillingExportReader, GcsBillingExportReader


class AwsCurExport(dg.Config):
    """One AWS billing export: a local folder laid out like the bucket, or s3://bucket."""

    root: str
    layout: str  # "legacy" (CUR CSV + manifest) or "cur2" (Data Exports Parquet)
    prefix: str = "cur"
    name: str = "rai-cur"
    billing_account_id: str | None = None  # the payer account; rows of any other are refused


class AwsFocusExport(dg.Config):
    """AWS Data Exports' "FOCUS 1.2 with AWS columns": a local folder laid out like the bucket, or s3://bucket."""

    root: str
    billing_account_id: str  # rows of any other payer account are refused
    prefix: str = "focus"
    name: str = "rai-focus"


class AzureFocusExport(dg.Config):
    """An Azure Cost Management export in FOCUS format, in Blob Storage or a local folder laid out like the
    container. Credentials come from the environment, e.g. dg.EnvVar("AZURE_STORAGE_CONNECTION_STRING")."""

    billing_account_id: str  # rows of any other billing account are refused (compared ignoring case)
    export_name: str
    directory: str = ""  # the export's root folder path in the container
    root: str | None = None  # a local folder laid out like the container, or:
    container: str | None = None
    connection_string: str | None = None
    account_url: str | None = None  # https://<account>.blob.core.windows.net
    account_key: str | None = None
    sas_token: str | None = None


class GcpBigQueryExport(dg.Config):
    """GCP's Cloud Billing export to BigQuery (standard or detailed), queried one day at a time."""

    project: str
    dataset: str
    billing_account_id: str  # rows of any other billing account are refused
    table: str = ""  # default: gcp_billing_export[_resource]_v1_<billing account id with _>
    detailed: bool = False  # the resource-level export
    job_project: str = ""  # the project that runs (and pays for) the query; default: project
    endpoint: str = ""  # an API endpoint override (an emulator); default: Google's
    location: str | None = None
    partition_column: str | None = "_PARTITIONTIME"
    max_export_lag_days: int | None = None  # bound the partitions scanned for a day's late rows


class GcpStorageExport(dg.Config):
    """The same export copied to Cloud Storage as Parquet: gs://bucket/prefix/date=YYYY-MM-DD/*.parquet."""

    root: str  # gs://bucket/prefix, or a local folder laid out the same way
    billing_account_id: str
    endpoint: str = ""
    project: str = ""


class OnPremUsage(dg.Config):
    """Measured usage of on-premises or Kubernetes capacity and the Git file declaring its rates."""

    usage_root: str  # {usage_root}/date=YYYY-MM-DD/data.parquet, local or s3://
    declaration: str  # YAML: node pools and their amortised purchase, power and support per unit


class BillingExportsResource(dg.ConfigurableResource):
    """Every cost source that feeds the cost ledger."""

    aws: list[AwsCurExport]
    aws_focus: list[AwsFocusExport] = []
    azure_focus: list[AzureFocusExport] = []
    gcp_bigquery: list[GcpBigQueryExport] = []
    gcp_storage: list[GcpStorageExport] = []
    onprem: list[OnPremUsage] = []

    def readers(self) -> list:
        return [
            *(CurExportReader(e.root, e.layout, e.prefix, e.name, e.billing_account_id) for e in self.aws),
            *(AwsFocusExportReader(e.root, e.billing_account_id, e.prefix, e.name) for e in self.aws_focus),
            *(
                AzureFocusExportReader(
                    e.billing_account_id,
                    e.export_name,
                    e.directory,
                    root=e.root,
                    container=e.container,
                    connection_string=e.connection_string,
                    account_url=e.account_url,
                    credential=e.account_key or e.sas_token,
                )
                for e in self.azure_focus
            ),
            *(
                BigQueryBillingExportReader(
                    e.project,
                    e.dataset,
                    e.billing_account_id,
                    e.table,
                    e.detailed,
                    e.job_project,
                    e.endpoint,
                    e.location,
                    e.partition_column,
                    e.max_export_lag_days,
                )
                for e in self.gcp_bigquery
            ),
            *(GcsBillingExportReader(e.root, e.billing_account_id, e.endpoint, e.project) for e in self.gcp_storage),
            *(OnPremUsageReader(o.usage_root, o.declaration) for o in self.onprem),
        ]

    def export_fingerprint(self, day: date) -> str:
        """A digest of the export files (path, size, modification time) of the day's billing period,
        over every export: it changes when a provider restates the period."""
        files = sorted(f for reader in self.readers() for f in reader.fingerprint(day))
        return hashlib.sha256(json.dumps(files).encode()).hexdigest()[:24]

    def read_day(self, day: date) -> list[SourceFile]:
        return self.read_days([day])[day]

    def read_days(self, days: list[date]) -> dict[date, list[SourceFile]]:
        """Each day's source files; a reader whose files cover a billing period reads them once per
        month for all of its days (a backfill would otherwise read a month's CSV once per day)."""
        files: dict[date, list[SourceFile]] = {day: [] for day in days}
        for reader in self.readers():
            by_period: dict[tuple[int, int], list[SourceFile]] = {}
            for day in days:
                if getattr(reader, "files_cover_billing_period", False):
                    period = (day.year, day.month)
                    if period not in by_period:
                        by_period[period] = reader.read(day)
                    files[day].extend(by_period[period])
                else:
                    files[day].extend(reader.read(day))
        return files
