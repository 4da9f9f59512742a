"""Reading AWS billing exports laid out as AWS delivers them to S3, from a local folder or S3.

Legacy CUR:  {root}/{prefix}/{report}/{YYYYMMDD-YYYYMMDD}/{report}-Manifest.json, whose
             `reportKeys` name the current CSV (optionally gzip) files of the billing period.
CUR 2.0:     {root}/{prefix}/{export}/data/BILLING_PERIOD=YYYY-MM/*.parquet
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.sources.aws_cur import ParquetInput, SourceFile


def _filesystem(root: str) -> tuple[pafs.FileSystem, str]:
    if "://" in root:
        return pafs.FileSystem.from_uri(root.rstrip("/"))
    from pathlib import Path

    return pafs.LocalFileSystem(), str(Path(root).resolve())


def _scheme_uri(root: str, path: str) -> str:
    return f"{root.split('://')[0]}://{path}" if "://" in root else path


def billing_period_folder(day: date) -> str:
    start = day.replace(day=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return f"{start:%Y%m%d}-{end:%Y%m%d}"


def physical_lines(data: bytes, rows: int | None = None) -> list[int] | None:
    """The file line on which each data row starts, when that is not simply its index + 2 (blank
    lines, which the CSV reader skips, or quoted fields spanning lines); None when it is. Given the
    number of parsed rows, counting line breaks settles it cheaply: with no blank line, as many
    breaks as rows (plus the header's) means one line per row, quotes or not."""
    blank = b"\n\n" in data or b"\n\r\n" in data
    one_per_row = b'"' not in data or (rows is not None and data.count(b"\n") in (rows, rows + 1))
    if not blank and one_per_row:
        return None
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    lines, previous_end = [], 0
    for row in reader:
        start, previous_end = previous_end + 1, reader.line_num
        if row and any(cell != "" for cell in row):
            lines.append(start)
    return lines[1:]  # the first record is the header


def read_cur_csv(data: bytes, uri: str) -> pa.Table:
    """A legacy CUR CSV (plain or gzip) with every column read as text, so that a bad value is
    reported with its row instead of silently becoming null."""
    if uri.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise BadInputError(f"{uri}: not a readable gzip file: {exc}") from exc
    header = data.split(b"\n", 1)[0].decode("utf-8-sig").strip()
    if not header:
        raise BadInputError(f"{uri}: empty file, no CUR header")
    names = next(csv.reader([header]))
    try:
        return pacsv.read_csv(
            io.BytesIO(data),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as exc:
        raise BadInputError(f"{uri}: not a readable CSV file: {exc}") from exc


@dataclass
class CurExportReader:
    """One AWS export: `layout` is "legacy" (CUR CSV with manifest) or "cur2" (Data Exports Parquet)."""

    # Its files cover a whole billing period: what it reads for one day serves every day of the month.
    files_cover_billing_period = True

    root: str
    layout: str
    prefix: str = "cur"
    name: str = "rai-cur"
    billing_account_id: str | None = None  # when set, rows of any other payer account are refused

    def __post_init__(self) -> None:
        if self.layout not in ("legacy", "cur2"):
            raise ValueError(f"unknown CUR layout {self.layout!r}: use 'legacy' or 'cur2'")
        self.fs, self._base = _filesystem(self.root)

    def _export_dir(self) -> str:
        return f"{self._base}/{self.prefix}/{self.name}"

    def file_paths(self, day: date) -> list[str]:
        """The export files that hold the billing period of `day` (the current version only)."""
        if self.layout == "legacy":
            folder = f"{self._export_dir()}/{billing_period_folder(day)}"
            manifest_path = f"{folder}/{self.name}-Manifest.json"
            if self.fs.get_file_info(manifest_path).type != pafs.FileType.File:
                return []
            with self.fs.open_input_stream(manifest_path) as f:
                try:
                    manifest = json.loads(f.read())
                except json.JSONDecodeError as exc:
                    raise BadInputError(
                        f"{_scheme_uri(self.root, manifest_path)}: manifest is not JSON: {exc}"
                    ) from exc
            keys = manifest.get("reportKeys")
            if not isinstance(keys, list):
                raise BadInputError(f"{_scheme_uri(self.root, manifest_path)}: manifest has no reportKeys list")
            return [f"{self._base}/{key}" for key in keys]
        # Data Exports write the manifest after every data file of an execution has landed; it names
        # the files of the current version (an overwrite can leave stale parts beside them).
        manifest_path = f"{self._export_dir()}/metadata/BILLING_PERIOD={day:%Y-%m}/{self.name}-Manifest.json"
        if self.fs.get_file_info(manifest_path).type != pafs.FileType.File:
            return []
        uri = _scheme_uri(self.root, manifest_path)
        with self.fs.open_input_stream(manifest_path) as f:
            try:
                manifest = json.loads(f.read())
            except json.JSONDecodeError as exc:
                raise BadInputError(f"{uri}: manifest is not JSON: {exc}") from exc
        files = manifest.get("dataFiles")
        if not isinstance(files, list) or not all(isinstance(f, str) and f.startswith("s3://") for f in files):
            raise BadInputError(f"{uri}: manifest has no dataFiles list of s3:// URIs")
        # s3://<bucket>/<key>: the key is relative to the bucket, which is this export's root.
        return [f"{self._base}/{f.split('/', 3)[3]}" for f in files]

    def fingerprint(self, day: date) -> list[tuple[str, int, float]]:
        """(path, size, mtime) of the files of the day's billing period: changes when AWS restates."""
        out = []
        for path in self.file_paths(day):
            info = self.fs.get_file_info(path)
            out.append((path, info.size or 0, info.mtime.timestamp() if info.mtime else 0.0))
        return out

    def read(self, day: date) -> list[SourceFile]:
        files = []
        for path in self.file_paths(day):
            uri = _scheme_uri(self.root, path)
            if self.fs.get_file_info(path).type != pafs.FileType.File:
                raise BadInputError(f"{uri}: listed in the manifest but missing from the export")
            if self.layout == "legacy":
                with self.fs.open_input_stream(path, compression=None) as f:
                    raw = f.read()
                table = read_cur_csv(raw, uri)
                text = gzip.decompress(raw) if uri.endswith(".gz") else raw
                lines = physical_lines(text, table.num_rows)
                if lines is not None and len(lines) != table.num_rows:
                    raise BadInputError(f"{uri}: {len(lines)} records by line but {table.num_rows} parsed rows")
                files.append(
                    SourceFile(uri, table, first_data_line=2, row_lines=lines, context=self.billing_account_id)
                )
            else:
                # Streamed: read batch by batch, only the columns the ledger needs, when it is built.
                parquet = ParquetInput(self.fs, path, uri)
                parquet.schema  # noqa: B018 - a file that is no Parquet at all fails here, naming it
                files.append(SourceFile.streamed(parquet, context=self.billing_account_id))
        return files


@dataclass
class OnPremUsageReader:
    """Measured usage of on-premises or Kubernetes capacity, one Parquet file a day
    (`{root}/date=YYYY-MM-DD/data.parquet`), priced by the rates declared in Git."""

    root: str
    declaration: str  # path of the YAML that declares the node pools' rates

    def __post_init__(self) -> None:
        self.fs, self._base = _filesystem(self.root)

    def _path(self, day: date) -> str:
        return f"{self._base}/date={day.isoformat()}/data.parquet"

    def fingerprint(self, day: date) -> list[tuple[str, int, float]]:
        """The usage files of the day's month and the declaration: a restated month or a changed
        rate changes it."""
        first = day.replace(day=1)
        out = []
        for offset in range(31):
            current = first + timedelta(days=offset)
            if current.month != first.month:
                break
            info = self.fs.get_file_info(self._path(current))
            if info.type == pafs.FileType.File:
                out.append((info.path, info.size or 0, info.mtime.timestamp() if info.mtime else 0.0))
        declared = Path(self.declaration).stat()
        return out + [(self.declaration, declared.st_size, declared.st_mtime)]

    def read(self, day: date) -> list[SourceFile]:
        from rai_pipelines.costs.sources.onprem import load_declaration

        path = self._path(day)
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return []
        uri = _scheme_uri(self.root, path)
        with self.fs.open_input_file(path) as f:
            try:
                table = pq.read_table(f)
            except pa.ArrowInvalid as exc:
                raise BadInputError(f"{uri}: not a readable Parquet file: {exc}") from exc
        return [SourceFile(uri, table, first_data_line=1, kind="onprem", context=load_declaration(self.declaration))]
