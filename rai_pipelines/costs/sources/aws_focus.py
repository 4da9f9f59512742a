"""AWS Data Exports "FOCUS 1.2 with AWS columns" (Parquet, or gzip CSV) in S3 or a local folder that
stands for the bucket:

    {prefix}/{export-name}/data/BILLING_PERIOD=YYYY-MM/...parquet
    {prefix}/{export-name}/metadata/BILLING_PERIOD=YYYY-MM/[...]/{export-name}-Manifest.json

whose manifest's `dataFiles` (s3:// URIs) name the current files of the period; when several
manifests are there (exports that keep every version), the newest one is the current version.
The rows are normalised by the FOCUS export normalisation (focus_export.py), which refuses any row
of another billing account than the one configured."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pyarrow.fs as pafs

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.storage import filesystem
from rai_pipelines.costs.ledger_schema import ParquetInput, SourceConfig, SourceFile, SourceKind
from rai_pipelines.costs.sources.export_files import load_manifest
from rai_pipelines.costs.sources.focus_export import (
    AWS,
    Fingerprint,
    _source_file,
    focus_export_days,
)
from rai_pipelines.costs.sources.focus_witness import focus_export_cost_totals, focus_export_daily_totals


@dataclass
class AwsFocusExportReader:
    """One AWS Data Exports export of the "FOCUS 1.2 with AWS columns" table, in `root` (s3://bucket,
    with pyarrow's query options such as endpoint_override, or a local folder standing for the bucket)."""

    # Its files cover a whole billing period: what it reads for one day serves every day of the month.
    files_cover_billing_period = True

    root: str
    billing_account_id: str  # the payer account: rows of any other BillingAccountId are refused
    prefix: str = "focus"
    name: str = "rai-focus"

    def __post_init__(self) -> None:
        if not self.billing_account_id:
            raise ValueError("AwsFocusExportReader needs the billing account id the export belongs to")
        self.fs, self._base = filesystem(self.root)
        self._s3 = self.root.startswith("s3://")

    def _uri(self, path: str) -> str:
        return f"s3://{path}" if self._s3 else path

    def _export_dir(self) -> str:
        parts = [p for p in (self.prefix.strip("/"), self.name.strip("/")) if p]
        return "/".join([self._base, *parts])

    def _manifest(self, day: date) -> pafs.FileInfo | None:
        folder = f"{self._export_dir()}/metadata/BILLING_PERIOD={day:%Y-%m}"
        if self.fs.get_file_info(folder).type != pafs.FileType.Directory:
            return None
        found = [
            info
            for info in self.fs.get_file_info(pafs.FileSelector(folder, recursive=True))
            if info.type == pafs.FileType.File and info.base_name == f"{self.name}-Manifest.json"
        ]
        if not found:
            return None
        # Several manifests: an export that keeps every version; the newest is the current one.
        return max(found, key=lambda i: (i.mtime.timestamp() if i.mtime else 0.0, i.path))

    def file_paths(self, day: date) -> list[str]:
        """The data files the current manifest of the billing period of `day` names."""
        info = self._manifest(day)
        if info is None:
            return []
        uri = self._uri(info.path)
        with self.fs.open_input_stream(info.path) as f:
            manifest = load_manifest(f.read(), uri)
        files = manifest.get("dataFiles")
        if not isinstance(files, list) or not all(isinstance(f, str) and f.startswith("s3://") for f in files):
            raise BadInputError(f"{uri}: manifest has no dataFiles list of s3:// URIs")
        if len(set(files)) != len(files):
            raise BadInputError(f"{uri}: manifest lists a data file twice")
        bucket = self._base.split("/", 1)[0]
        paths = []
        for f in files:
            file_bucket, _, key = f[len("s3://") :].partition("/")
            if self._s3 and file_bucket != bucket:
                raise BadInputError(f"{uri}: data file {f} is not in the export's bucket {bucket}")
            # s3://<bucket>/<key>: locally, the root stands for the bucket.
            paths.append(f"{file_bucket}/{key}" if self._s3 else f"{self._base}/{key}")
        return paths

    def fingerprint(self, day: date) -> list[Fingerprint]:
        """(path, size, modification time) of the current manifest and its data files."""
        info = self._manifest(day)
        if info is None:
            return []
        out = [(self._uri(info.path), info.size or 0, info.mtime.timestamp() if info.mtime else 0.0)]
        for path in self.file_paths(day):
            file_info = self.fs.get_file_info(path)
            out.append((self._uri(path), file_info.size or 0, file_info.mtime.timestamp() if file_info.mtime else 0.0))
        return out

    def read(self, day: date) -> list[SourceFile]:
        files = []
        for path in self.file_paths(day):
            uri = self._uri(path)
            if self.fs.get_file_info(path).type != pafs.FileType.File:
                raise BadInputError(f"{uri}: listed in the manifest but missing from the export")
            if uri.lower().endswith(".parquet"):
                # Streamed like CUR 2.0: an AWS FOCUS export has about as many rows as the CUR.
                parquet = ParquetInput(self.fs, path, uri)
                _ = parquet.schema  # a file that is no Parquet at all fails here, naming it
                files.append(SourceFile.streamed(parquet, kind="aws_focus", context=self.billing_account_id))
                continue
            with self.fs.open_input_stream(path, compression=None) as f:
                data = f.read()
            files.append(_source_file(data, uri, "aws_focus", self.billing_account_id))
        return files


class AwsFocusExport(SourceConfig):
    """AWS Data Exports' "FOCUS 1.2 with AWS columns": a local folder laid out like the bucket, or s3://bucket."""

    root: str
    billing_account_id: str  # rows of any other payer account are refused
    prefix: str = "focus"
    name: str = "rai-focus"


SOURCE = SourceKind(
    config=AwsFocusExport,
    reader=lambda c: AwsFocusExportReader(c.root, c.billing_account_id, c.prefix, c.name),
    days=lambda source, days: focus_export_days(source, days, AWS),
    daily_totals=lambda source: focus_export_daily_totals(source, AWS),
    cost_totals=lambda source: focus_export_cost_totals(source, AWS),
)
