import hashlib
import json
from datetime import date

import dagster as dg

from rai_pipelines.billing_exports import CurExportReader
from rai_pipelines.focus import SourceFile


class AwsCurExport(dg.Config):
    """One AWS billing export: a local folder laid out like the bucket, or s3://bucket."""

    root: str
    layout: str  # "legacy" (CUR CSV + manifest) or "cur2" (Data Exports Parquet)
    prefix: str = "cur"
    name: str = "rai-cur"


class BillingExportsResource(dg.ConfigurableResource):
    """Every billing export that feeds the cost ledger."""

    aws: list[AwsCurExport]

    def readers(self) -> list[CurExportReader]:
        return [CurExportReader(e.root, e.layout, e.prefix, e.name) for e in self.aws]

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
