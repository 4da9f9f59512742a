import hashlib
import json
from datetime import date

import dagster as dg

from rai_pipelines.billing_exports import CurExportReader, OnPremUsageReader
from rai_pipelines.focus import SourceFile


class AwsCurExport(dg.Config):
    """One AWS billing export: a local folder laid out like the bucket, or s3://bucket."""

    root: str
    layout: str  # "legacy" (CUR CSV + manifest) or "cur2" (Data Exports Parquet)
    prefix: str = "cur"
    name: str = "rai-cur"


class OnPremUsage(dg.Config):
    """Measured usage of on-premises or Kubernetes capacity and the Git file declaring its rates."""

    usage_root: str  # {usage_root}/date=YYYY-MM-DD/data.parquet, local or s3://
    declaration: str  # YAML: node pools and their amortised purchase, power and support per unit


class BillingExportsResource(dg.ConfigurableResource):
    """Every cost source that feeds the cost ledger."""

    aws: list[AwsCurExport]
    onprem: list[OnPremUsage] = []

    def readers(self) -> list[CurExportReader | OnPremUsageReader]:
        return [CurExportReader(e.root, e.layout, e.prefix, e.name) for e in self.aws] + [
            OnPremUsageReader(o.usage_root, o.declaration) for o in self.onprem
        ]

    def export_fingerprint(self, day: date) -> str:
        """A digest of the export files (path, size, modification time) of the day's billing period,
        over every export: it changes when a provider restates the period."""
        files = sorted(f for reader in self.readers() for f in reader.fingerprint(day))
        return hashlib.sha256(json.dumps(files).encode()).hexdigest()[:24]

    def read_day(self, day: date) -> list[SourceFile]:
        files: list[SourceFile] = []
        for reader in self.readers():
            files.extend(reader.read(day))
        return files
