"""Any FOCUS producer: a folder or bucket prefix of FOCUS files (CSV, gzip CSV or Parquet) with no
manifest, as Oracle Cloud's FOCUS reports, GCP's FOCUS export copied to Cloud Storage, or any other
FOCUS producer write them. Rows are normalised by the FOCUS export normalisation (focus_export.py) and
reconciled by its witness (focus_witness.py), like AWS's and Azure's FOCUS exports.

Which files a day reads: a file whose path names a date (`2023-11-05`, `2023/11/05`, `20231105`)
serves that day; one whose path names only a month (`2023-11`, `2023/11`, `BILLING_PERIOD=2023-11`)
serves every day of it; a file whose path names no date serves every day (its rows are kept by
their own charge dates). Producers that namespace their tags (Oracle: `ml.model_name`) map them to
the attribution keys with `tag_keys`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

import pyarrow.fs as pafs
import pydantic

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.storage import filesystem, scheme_uri
from rai_pipelines.costs.ledger_schema import (
    ATTRIBUTION_TAGS,
    ParquetInput,
    SourceConfig,
    SourceFile,
    SourceKind,
    tag_key,
)
from rai_pipelines.costs.sources.focus_export import Fingerprint, FocusProvider, _source_file, focus_export_days
from rai_pipelines.costs.sources.focus_witness import focus_export_cost_totals, focus_export_daily_totals

KIND = "focus_files"
SUFFIXES = (".csv", ".csv.gz", ".parquet")
MAX_FILES = 100_000  # a prefix that lists more is a wrong root, not a billing export

_DAY = re.compile(r"(?<!\d)(\d{4})[-/]?(\d{2})[-/]?(\d{2})(?!\d)")
_MONTH = re.compile(r"(?<!\d)(\d{4})[-/](\d{2})(?![-/]?\d)")


def days_named(path: str) -> tuple[str, str]:
    """('day', 'YYYY-MM-DD'), ('month', 'YYYY-MM') or ('', '') for the date a file's path names (the
    last one in the path: the deepest folder or the file name)."""
    found = [("day", f"{y}-{m}-{d}", match.start()) for match in _DAY.finditer(path) for y, m, d in [match.groups()]]
    found += [("month", f"{y}-{m}", match.start()) for match in _MONTH.finditer(path) for y, m in [match.groups()]]
    if not found:
        return "", ""
    kind, value, _ = max(found, key=lambda f: f[2])
    return kind, value


@dataclass(frozen=True)
class FocusFilesContext:
    """What the normalisation of a plain FOCUS file needs: the account and the tag mapping."""

    billing_account_id: str
    tag_aliases: dict[str, str] = field(default_factory=dict)


@dataclass
class FocusFilesReader:
    """The FOCUS files under `root` (a local folder, s3:// or gs:// prefix) that serve a day."""

    root: str
    billing_account_id: str
    tag_keys: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.billing_account_id:
            raise ValueError("FocusFilesReader needs the billing account id the files belong to")
        self.fs, self._base = filesystem(self.root)
        self.context = FocusFilesContext(
            self.billing_account_id, {tag_key(k): tag_key(v) for k, v in self.tag_keys.items()}
        )

    def _files(self) -> list[pafs.FileInfo]:
        if self.fs.get_file_info(self._base).type != pafs.FileType.Directory:
            return []
        found = []
        for info in self.fs.get_file_info(pafs.FileSelector(self._base, recursive=True)):
            if info.type == pafs.FileType.File and info.base_name.lower().endswith(SUFFIXES):
                found.append(info)
                if len(found) > MAX_FILES:
                    raise BadInputError(f"{self.root}: more than {MAX_FILES:,} files under the FOCUS files' root")
        return sorted(found, key=lambda i: i.path)

    def file_infos(self, day: date) -> list[pafs.FileInfo]:
        out = []
        for info in self._files():
            kind, named = days_named(info.path[len(self._base) :])
            if not kind or named == day.isoformat() or named == f"{day:%Y-%m}":
                out.append(info)
        return out

    def fingerprint(self, day: date) -> list[Fingerprint]:
        return [
            (scheme_uri(self.root, i.path), i.size or 0, i.mtime.timestamp() if i.mtime else 0.0)
            for i in self.file_infos(day)
        ]

    def read(self, day: date) -> list[SourceFile]:
        files = []
        for info in self.file_infos(day):
            uri = scheme_uri(self.root, info.path)
            if info.base_name.lower().endswith(".parquet"):
                parquet = ParquetInput(self.fs, info.path, uri)
                _ = parquet.schema  # a file that is no Parquet at all fails here, naming it
                files.append(SourceFile.streamed(parquet, kind=KIND, context=self.context))
                continue
            with self.fs.open_input_stream(info.path, compression=None) as f:
                data = f.read()
            file = _source_file(data, uri, KIND, self.billing_account_id)
            files.append(SourceFile(file.uri, file.table, file.first_data_line, KIND, self.context, file.row_lines))
        return files


def _provider(source: SourceFile) -> FocusProvider:
    aliases = getattr(source.context, "tag_aliases", {})
    return FocusProvider("focus", KIND, line_item_type_columns=("x_ChargeType",), tag_aliases=aliases)


class FocusFilesExport(SourceConfig):
    """Any FOCUS producer's files under a folder or prefix, with no manifest."""

    root: str
    billing_account_id: str  # rows of any other BillingAccountId are refused
    # the producer's tag key -> the attribution key it stands for (model_name, model_version, team, ...)
    tag_keys: dict[str, str] = {}

    @pydantic.field_validator("tag_keys")
    @classmethod
    def _known_attribution_keys(cls, value: dict[str, str]) -> dict[str, str]:
        known = {key for keys in ATTRIBUTION_TAGS.values() for key in keys}
        unknown = sorted({v for v in value.values() if tag_key(v) not in known})
        if unknown:
            raise ValueError(f"{', '.join(unknown)} is not an attribution key ({', '.join(sorted(known))})")
        return value


SOURCE = SourceKind(
    config=FocusFilesExport,
    reader=lambda c: FocusFilesReader(c.root, c.billing_account_id, dict(c.tag_keys)),
    days=lambda source, days: focus_export_days(source, days, _provider(source)),
    daily_totals=lambda source: focus_export_daily_totals(source, _provider(source)),
    cost_totals=lambda source: focus_export_cost_totals(source, _provider(source)),
)
