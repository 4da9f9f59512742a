"""AWS Cost and Usage Report: reading the exports and normalising them to FOCUS ledger rows.

Where AWS delivers them (a local folder laid out like the bucket, or S3):

Legacy CUR:  {root}/{prefix}/{report}/{YYYYMMDD-YYYYMMDD}/{report}-Manifest.json, whose
             `reportKeys` name the current CSV (optionally gzip) files of the billing period.
CUR 2.0:     {root}/{prefix}/{export}/data/BILLING_PERIOD=YYYY-MM/*.parquet

The normalisation takes one export file and returns the ledger rows of the days asked for, with
FOCUS column names and types plus the x_ lineage and attribution columns; DuckDB does the columnar
work (the SQL is in aws_cur_sql.py). Bad values raise BadInputError naming the file, the row and the
field.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.storage import filesystem, scheme_uri
from rai_pipelines.costs.ledger_schema import (
    ATTRIBUTION_TAGS,
    BATCH_ROWS,
    LEDGER_SCHEMA,
    ParquetInput,
    SourceConfig,
    SourceFile,
    SourceKind,
    WorkerCursors,
    first_bad_rows_sql,
    split_by_day,
)
from rai_pipelines.costs.parallel import ordered_map
from rai_pipelines.costs.sources.aws_cur_sql import (
    EVERY_ROW_AMOUNTS,
    LINE_ITEM_HASH_SQL,
    SHORTEST_TEXT,
    CurLedger,
    CurSql,
    canonical_cur_name,
    cur_checks,
    cur_ledger,
    focus_unit,
)
from rai_pipelines.costs.sources.aws_cur_tags import TagSets, legacy_tag_columns_of, map_tag_columns
from rai_pipelines.costs.sources.aws_cur_witness import source_cost_totals, source_daily_totals
from rai_pipelines.costs.sources.export_files import (
    billing_period_folder,
    gunzip_bounded,
    load_manifest,
    physical_lines,
)

# CUR columns the ledger needs, by their CUR 2.0 (snake_case) names. The legacy CSV names map onto
# these with `canonical_cur_name` ("lineItem/UnblendedCost" -> "line_item_unblended_cost").
REQUIRED_CUR_COLUMNS = (
    "bill_payer_account_id",
    "bill_billing_period_start_date",
    "bill_billing_period_end_date",
    "line_item_usage_account_id",
    "line_item_line_item_type",
    "line_item_usage_start_date",
    "line_item_usage_end_date",
    "line_item_product_code",
    "line_item_unblended_cost",
    "line_item_currency_code",
)
OPTIONAL_CUR_COLUMNS = (
    "identity_line_item_id",
    "identity_time_interval",
    "bill_payer_account_name",  # CUR 2.0 only
    "line_item_usage_account_name",  # CUR 2.0 only
    "bill_billing_entity",
    "bill_invoicing_entity",
    "line_item_legal_entity",
    "bill_invoice_id",
    "line_item_resource_id",
    "line_item_usage_type",
    "line_item_operation",
    "line_item_availability_zone",
    "line_item_usage_amount",
    "line_item_unblended_rate",
    "line_item_net_unblended_cost",
    "line_item_line_item_description",
    "product_product_name",
    "product_servicecode",
    "product_region_code",
    "product_location",
    "product_sku",
    "pricing_public_on_demand_cost",
    "pricing_public_on_demand_rate",
    "pricing_term",
    "pricing_unit",
    "pricing_rate_id",
    "reservation_effective_cost",
    "reservation_reservation_a_r_n",
    "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee",
    "savings_plan_savings_plan_effective_cost",
    "savings_plan_savings_plan_a_r_n",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
)
PRODUCT_MAP_KEYS = ("product_name", "servicecode", "region_code", "location", "sku")


def _legacy_tag_columns(names: list[str]) -> list[str]:
    return [c for c in names if c.startswith("resourceTags/") or c.startswith("resource_tags_")]


@dataclass(frozen=True)
class _Layout:
    """How one file's columns map onto the CUR 2.0 names the ledger SQL uses."""

    original: dict[str, str]  # canonical name -> name in the file (or product['key'])
    read: list[str]  # the file's columns to read
    product_keys: tuple[str, ...]  # canonical names to look up in the product map
    tag_columns: list[str]  # legacy resourceTags/* columns
    tag_map: bool  # CUR 2.0 resource_tags map


def _layout(source: SourceFile) -> _Layout:
    names = source.schema.names
    original: dict[str, str] = {}
    wanted = set(REQUIRED_CUR_COLUMNS) | set(OPTIONAL_CUR_COLUMNS)
    read: list[str] = []
    for name in names:
        canonical = canonical_cur_name(name)
        if canonical in wanted and canonical not in original:
            original[canonical] = name
            read.append(name)
    # CUR 2.0 keeps most product attributes in the `product` map (product['product_name'], ...),
    # where the legacy report had product/ProductName columns: look them up when no column has them.
    product_keys: list[str] = []
    if "product" in names and pa.types.is_map(source.schema.field("product").type):
        for key in PRODUCT_MAP_KEYS:
            canonical = f"product_{key}"
            if canonical not in original:
                product_keys.append(key)
                original[canonical] = f"product['{key}']"
        if product_keys:
            read.append("product")
    missing = [c for c in REQUIRED_CUR_COLUMNS if c not in original]
    if missing:
        raise BadInputError(f"{source.uri}: missing required CUR column(s) {', '.join(missing)}")
    tag_map = "resource_tags" in names and pa.types.is_map(source.schema.field("resource_tags").type)
    tag_columns = [] if tag_map else _legacy_tag_columns(names)
    read += ["resource_tags"] if tag_map else tag_columns
    return _Layout(original, read, tuple(product_keys), tag_columns, tag_map)


def _focus_units(names: list[str], columns: list) -> pa.Array:
    """The batch's pricing units in FOCUS's spelling, each distinct unit mapped once (a day has tens)."""
    units = columns[names.index("pricing_unit")]
    units = pc.cast(units.combine_chunks() if isinstance(units, pa.ChunkedArray) else units, pa.string())
    encoded = pc.dictionary_encode(units)
    spelled = [None if unit in (None, "") else focus_unit(unit) for unit in encoded.dictionary.to_pylist()]
    return pa.array(spelled, pa.string()).take(encoded.indices)


def _prepare_batch(batch: pa.RecordBatch, rows: pa.Array, layout: _Layout, sets: TagSets) -> pa.Table:
    """A batch with CUR 2.0 names, the optional columns it lacks as nulls, the product map's
    attributes, the tag columns and each row's number in the file."""
    columns, names = [], []
    for canonical, name in layout.original.items():
        if not name.startswith("product["):
            columns.append(batch.column(name))
            names.append(canonical)
    if layout.product_keys:
        product = batch.column("product")
        for key in layout.product_keys:
            columns.append(pc.map_lookup(product, pa.scalar(key), "first"))
            names.append(f"product_{key}")
    n = batch.num_rows
    for name in OPTIONAL_CUR_COLUMNS:
        if name not in layout.original:
            columns.append(pa.nulls(n, pa.string()))
            names.append(name)
    if layout.tag_map:
        tag_columns = map_tag_columns(batch.column("resource_tags"), sets)
    else:
        tag_columns = legacy_tag_columns_of(batch, layout.tag_columns, sets)
    columns += tag_columns
    names += ["tags_json", *(f"tag_{c}" for c in ATTRIBUTION_TAGS)]
    for name in EVERY_ROW_AMOUNTS:
        values = columns[names.index(name)]
        if pa.types.is_floating(values.type):
            columns.append(pc.cast(values, pa.string()))  # the shortest text that gives the double back
            names.append(f"{name}{SHORTEST_TEXT}")
    columns += [_focus_units(names, columns), rows, pa.array(np.arange(n, dtype=np.int32))]
    names += ["focus_pricing_unit", "source_row_number", "batch_position"]
    return pa.Table.from_arrays(columns, names=names)


def _null_if_empty(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A text column with its empty values as null (FOCUS: no value is null, never ""); handed over
    as it is when it has none, which is the common case."""
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), pa.string())
    empty = pc.equal(column, "")
    if not pc.any(empty).as_py():
        return column
    return pc.if_else(empty, pa.scalar(None, pa.string()), column)


def cur_to_focus_batches(source: SourceFile, day: date, batch_size: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The FOCUS ledger rows of `day` (by the UTC date of ChargePeriodStart) in one CUR file, batch
    by batch, reading only the columns the ledger needs: memory stays bounded by the batch size.

    A charge belongs to the day its charge period starts on; the month-long tax lines AWS writes
    at the start of the billing period therefore land on its first day, as they do in AWS's own
    FOCUS export. A charge whose period starts outside the file's billing period (a credit or a
    correction for an earlier month) lands on the billing period's first day, so nothing in the
    file is left out of every partition.

    Bad values raise BadInputError naming the file, the row (the physical line of a CSV) and the
    field, before any batch holding that row is returned.
    """
    for _, batch in cur_to_focus_days(source, [day], batch_size):
        yield batch


def cur_to_focus_days(
    source: SourceFile, days: list[date], batch_size: int = BATCH_ROWS, workers: int | None = None
) -> Iterator[tuple[date, pa.RecordBatch]]:
    """`cur_to_focus_batches` for several days in one pass over the file: (day, batch) pairs. A
    backfill of a month reads the month's export once, not once per day. The batches are normalised
    on `workers` threads (default: every usable core) and come back in file order."""
    normalise = _CurBatches(source, days)
    line_items: list[dict] = []  # a 64-bit hash of each row's line item id and time interval
    batches = ordered_map(normalise, source.batches(normalise.layout.read, batch_size), workers)
    try:
        for by_day, hashes in batches:
            if hashes is not None:
                line_items.append(hashes)
            yield from by_day
    finally:
        batches.close()  # its workers are done before the database they use is closed
        normalise.close()
    if normalise.identified:
        _refuse_duplicate_line_items(source, normalise.layout, line_items, normalise.what)


class _CurBatches:
    """Normalises one batch of a CUR file: checks its values, then builds its ledger rows in DuckDB.
    Called from several threads at once: each has its own DuckDB cursor on the file's one database,
    and they share the file's tag sets."""

    def __init__(self, source: SourceFile, days: list[date]):
        self.source = source
        self.days = set(days)
        self.layout = _layout(source)
        self.what = "line" if source.uri.endswith((".csv", ".csv.gz")) else "row"
        self.identified = "identity_line_item_id" in self.layout.original
        self._params = {"uri": source.uri, "first": min(days).isoformat(), "last": max(days).isoformat()}
        self._account = source.context if isinstance(source.context, str) else None
        self._cursors = WorkerCursors()
        self._tag_sets = TagSets()
        self._statements: dict[pa.Schema, tuple[list, str, CurLedger]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._cursors.close()

    def _sql(self, schema: pa.Schema) -> tuple[list, str, CurLedger]:
        with self._lock:
            if schema not in self._statements:
                s = CurSql(schema)
                checks = cur_checks(s, self._account)
                validation = first_bad_rows_sql([c[0] for c in checks], "cur")
                self._statements[schema] = (checks, validation, cur_ledger(s))
            return self._statements[schema]

    def __call__(self, item: tuple[pa.RecordBatch, pa.Array]) -> tuple[list[tuple[date, pa.RecordBatch]], dict | None]:
        """The batch's ledger rows as (day, batch) pairs of the wanted days, and its line item hashes."""
        batch, rows = item
        prepared = _prepare_batch(batch, rows, self.layout, self._tag_sets)
        checks, validation, ledger = self._sql(prepared.schema)
        con = self._cursors.get()
        con.register("cur", prepared)
        try:
            firsts = con.sql(validation).fetchall()[0]
            for (_, column, problem), first in zip(checks, firsts, strict=True):
                if first is not None:
                    value = con.sql(
                        f"SELECT CAST({column} AS VARCHAR) FROM cur WHERE source_row_number = $row",
                        params={"row": first},
                    ).fetchall()[0][0]
                    field = self.layout.original.get(column, column)
                    shown = "" if problem == "is empty" else f" = {value!r}"
                    raise BadInputError(f"{self.source.uri} {self.what} {first}: field {field}{shown} {problem}")
            computed = con.sql(ledger.sql, params=self._params).to_arrow_table()
            hashes = con.sql(LINE_ITEM_HASH_SQL).fetchnumpy() if self.identified else None
        finally:
            con.unregister("cur")
        result = self._assemble(prepared, computed, ledger)
        by_day = [
            (day, out)
            for day, rows_of_day in split_by_day(result, self.days)
            for out in rows_of_day.cast(LEDGER_SCHEMA).to_batches()
            if out.num_rows
        ]
        return by_day, hashes

    def _assemble(self, prepared: pa.Table, computed: pa.Table, ledger: CurLedger) -> pa.Table:
        """The ledger columns in order (and ledger_day): DuckDB's, and the copied ones taken from the
        batch at the positions of the rows DuckDB kept."""
        positions = computed.column("batch_position")
        n = computed.num_rows
        in_order = pa.array(np.arange(n, dtype=np.int32))
        kept_all = n == prepared.num_rows and pc.all(pc.equal(positions, in_order)).as_py()
        columns = []
        for field in LEDGER_SCHEMA:
            if field.name in ledger.copied:
                column = prepared.column(ledger.copied[field.name])
                column = column if kept_all else column.take(positions)
                if field.name in ledger.text_copied:
                    column = _null_if_empty(column)
            elif field.name == "x_SourceUri":
                column = pa.repeat(pa.scalar(self.source.uri, pa.string()), n)
            elif field.name in ledger.constant:
                value = ledger.constant[field.name]
                column = pa.nulls(n, field.type) if value is None else pa.repeat(pa.scalar(value, field.type), n)
            else:
                column = computed.column(field.name)
            columns.append(column)
        names = [*LEDGER_SCHEMA.names, "ledger_day"]
        return pa.Table.from_arrays([*columns, computed.column("ledger_day")], names=names)


def _refuse_duplicate_line_items(source: SourceFile, layout: _Layout, parts: list[dict], what: str) -> None:
    if not parts:
        return
    # The common case, no repeated hash, decided on one sorted copy of the hashes (8 bytes a line
    # item): the rows and the sort order are only needed when a hash repeats.
    ordered = np.concatenate([p["h"] for p in parts])
    ordered.sort()
    if not (ordered[1:] == ordered[:-1]).any():
        return
    del ordered
    hashes = np.concatenate([p["h"] for p in parts])
    rows = np.concatenate([p["row"] for p in parts])
    order = np.argsort(hashes, kind="stable")
    same = hashes[order][1:] == hashes[order][:-1]
    # Equal hashes: read those rows' ids again to tell a duplicate from a (very unlikely) collision.
    candidates = set(rows[order][1:][same].tolist()) | set(rows[order][:-1][same].tolist())
    id_column, interval_column = layout.original["identity_line_item_id"], layout.original.get("identity_time_interval")
    columns = [id_column] + ([interval_column] if interval_column else [])
    seen: dict[tuple, int] = {}
    for batch, numbers in source.batches(columns):
        values = [batch.column(i).to_pylist() for i in range(len(columns))]
        for i, number in enumerate(numbers.to_pylist()):
            if number not in candidates:
                continue
            key = tuple(v[i] for v in values)
            if key in seen:
                raise BadInputError(
                    f"{source.uri} {what} {number}: field {id_column} = {key[0]!r} repeats the line item of "
                    f"{what} {seen[key]} (same time interval): a duplicate line item would be billed twice"
                )
            seen[key] = number


def cur_to_focus(source: SourceFile, day: date) -> pa.Table:
    """`cur_to_focus_batches` as one table, for files that fit in memory."""
    return pa.Table.from_batches(list(cur_to_focus_batches(source, day)), schema=LEDGER_SCHEMA)


def read_cur_csv(data: bytes, uri: str, inflated: bool = False) -> pa.Table:
    """A legacy CUR CSV (plain or gzip) with every column read as text, so that a bad value is
    reported with its row instead of silently becoming null."""
    if uri.endswith(".gz") and not inflated:
        data = gunzip_bounded(data, uri)
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
        self.fs, self._base = filesystem(self.root)

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
                manifest = load_manifest(f.read(), scheme_uri(self.root, manifest_path))
            keys = manifest.get("reportKeys")
            if not isinstance(keys, list):
                raise BadInputError(f"{scheme_uri(self.root, manifest_path)}: manifest has no reportKeys list")
            return [f"{self._base}/{key}" for key in keys]
        # Data Exports write the manifest after every data file of an execution has landed; it names
        # the files of the current version (an overwrite can leave stale parts beside them).
        manifest_path = f"{self._export_dir()}/metadata/BILLING_PERIOD={day:%Y-%m}/{self.name}-Manifest.json"
        if self.fs.get_file_info(manifest_path).type != pafs.FileType.File:
            return []
        uri = scheme_uri(self.root, manifest_path)
        with self.fs.open_input_stream(manifest_path) as f:
            manifest = load_manifest(f.read(), uri)
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
            uri = scheme_uri(self.root, path)
            if self.fs.get_file_info(path).type != pafs.FileType.File:
                raise BadInputError(f"{uri}: listed in the manifest but missing from the export")
            if self.layout == "legacy":
                with self.fs.open_input_stream(path, compression=None) as f:
                    raw = f.read()
                text = gunzip_bounded(raw, uri) if uri.endswith(".gz") else raw
                table = read_cur_csv(text, uri, inflated=True)
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


class AwsCurExport(SourceConfig):
    """One AWS billing export: a local folder laid out like the bucket, or s3://bucket."""

    root: str
    layout: str  # "legacy" (CUR CSV + manifest) or "cur2" (Data Exports Parquet)
    prefix: str = "cur"
    name: str = "rai-cur"
    billing_account_id: str | None = None  # the payer account; rows of any other are refused


SOURCE = SourceKind(
    config=AwsCurExport,
    reader=lambda c: CurExportReader(c.root, c.layout, c.prefix, c.name, c.billing_account_id),
    days=cur_to_focus_days,
    daily_totals=source_daily_totals,
    cost_totals=source_cost_totals,
)
