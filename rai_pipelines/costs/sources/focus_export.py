"""Billing exports that are FOCUS already -> cost ledger rows.

Two sources deliver FOCUS themselves: Azure Cost Management's "Cost and usage details (FOCUS)"
export (FocusCost 1.0 / 1.0r2: FOCUS 1.0 columns plus x_ Azure columns, CSV or Parquet) and AWS Data
Exports' "FOCUS 1.2 with AWS columns" (Parquet, `Tags` a map<string, string>). Normalising them is
selecting and casting into `LEDGER_SCHEMA` (decimals, UTC timestamps, the same column order),
checking every row, adding the x_ lineage columns and attributing each charge from its tags.

Rules, the same as the CUR normalisation in aws_cur.py:

- A charge belongs to the UTC date of its ChargePeriodStart; one whose charge period starts outside
  the row's billing period (a correction of an earlier month) lands on the billing period's first day,
  so that nothing in a billing period's file is left out of every partition.
- Tags become one JSON object with sorted keys, each key normalised by `ledger_schema.tag_key` (Azure's tag
  keys are free-form: "Model-Name", "model_name" and "MODEL-NAME" are one key; the first non-empty
  value, in the order of the original keys, wins). Attribution reads `ledger_schema.ATTRIBUTION_TAGS`.
- Duplicate line items are kept. Neither export carries a line-item id, two identical rows are two
  charges as far as the file (and the invoice) is concerned, and the ledger must equal the export's
  total to the cent. Each keeps its own x_SourceRowNumber and x_SourceRowHash. Double counting across
  export runs is the reader's business: it reads only the files the current run's manifest lists.
- PublisherName and InvoiceIssuerName, which AWS documents as possibly null, fall back to
  ProviderName; an export older than FOCUS 1.3 gets ServiceProviderName from PublisherName and
  HostProviderName from ProviderName, and a 1.3 export without ProviderName (deprecated) gets it from
  ServiceProviderName; a missing ServiceCategory becomes "Other", a missing ServiceSubcategory (FOCUS 1.0
  has none) "Other (<category>)". Every other value is the provider's own.
- Every FOCUS 1.2 column the export carries is kept; the provider's own x_ columns (x_BilledCostInUsd,
  x_SkuMeterName, x_Discounts, ... and any it adds later) are kept together as one JSON object per
  row in x_ProviderColumns (only those with a value). A column that is neither FOCUS's nor x_ is
  not read.

Bad input raises BadInputError naming the file, the row (CSV: the physical line; Parquet: the row
number from 1) and the field. The export must be of the billing account the reader was configured
with (`SourceFile.context`); a row of any other account is refused.

The reconciliation's witnesses of these exports are in `focus_witness.py`: Arrow compute over the raw
values, sharing no code with the normalisation.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.ledger_schema import (
    ATTRIBUTION_TAGS,
    BATCH_ROWS,
    LEDGER_SCHEMA,
    MONEY_SQL,
    TOO_PRECISE,
    SourceFile,
    WorkerCursors,
    first_bad_rows_sql,
    other_subcategory_sql,
    split_by_day,
    tag_key,
    too_precise_sql,
)
from rai_pipelines.costs.parallel import ordered_map
from rai_pipelines.costs.sources.export_files import gunzip_bounded, other_format, physical_lines
from rai_pipelines.costs.sources.focus_columns import (
    ALLOWED_VALUES,
    DECIMAL_COLUMNS,
    DEFAULT_CANDIDATES,
    JSON_COLUMNS,
    MANDATORY_COLUMNS,
    NON_EMPTY_COLUMNS,
    STRING_COLUMNS,
    TIMESTAMP_COLUMNS,
)


@dataclass(frozen=True)
class FocusProvider:
    """What differs between the FOCUS-native exports."""

    name: str  # x_SourceProvider
    kind: str  # SourceFile.kind
    # Ledger column -> the export's columns to take it from, first found wins.
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The provider's own charge-type column for x_LineItemType, when an export carries one; neither
    # FocusCost 1.0r2 nor AWS's FOCUS 1.2 documents one today, so ChargeCategory is the fallback.
    line_item_type_columns: tuple[str, ...] = ()
    # Azure resource ids (BillingAccountId is one for MCA) are case-insensitive.
    account_ids_case_insensitive: bool = False
    # The producer's tag key -> the attribution key it stands for (Oracle's namespaced
    # "ml.model_name" -> "model_name"), both as `tag_key` normalises them.
    tag_aliases: dict[str, str] = field(default_factory=dict)

    def candidates(self, column: str) -> tuple[str, ...]:
        """The export's columns a ledger column is taken from, first found wins."""
        return self.aliases.get(column, DEFAULT_CANDIDATES.get(column, (column,)))


AZURE = FocusProvider(
    "azure",
    "azure_focus",
    aliases={"InvoiceId": ("InvoiceId", "x_InvoiceId")},  # InvoiceId is FOCUS 1.2; FocusCost 1.0 has x_InvoiceId
    line_item_type_columns=("x_ChargeType", "ChargeType"),
    account_ids_case_insensitive=True,
)
AWS = FocusProvider("aws", "aws_focus", line_item_type_columns=("x_LineItemType", "line_item_line_item_type"))


def _columns_by_name(names: list[str]) -> dict[str, str]:
    """Lower-cased name -> the name as in the file (a CSV header may carry a byte-order mark)."""
    out: dict[str, str] = {}
    for name in names:
        out.setdefault(name.strip().lstrip("\ufeff").lower(), name)
    return out


def _find(names: dict[str, str], candidates: tuple[str, ...]) -> str | None:
    for candidate in candidates:
        found = names.get(candidate.lower())
        if found is not None:
            return found
    return None


def _where(source: SourceFile) -> str:
    return "line" if source.uri.endswith((".csv", ".csv.gz", ".gz")) else "row"


def _expected_account(source: SourceFile) -> str:
    expected = getattr(source.context, "billing_account_id", source.context)
    if not isinstance(expected, str) or not expected:
        raise ValueError(
            f"{source.uri}: no expected billing account id in SourceFile.context; "
            "the reader must be configured with the account the export belongs to"
        )
    return expected


# --- tags -------------------------------------------------------------------------------------------


def _tag_pairs_from_text(text: str) -> list[tuple[str, object]]:
    text = text.strip()
    if not text:
        return []
    if not text.startswith("{"):  # Azure's older cost exports write the pairs without braces
        text = "{" + text + "}"
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return list(value.items())


def _normalised_tags(pairs) -> tuple[tuple[str, object], ...]:
    out: dict[str, object] = {}
    for key, value in sorted(pairs, key=lambda kv: str(kv[0])):
        if value is None or value == "":
            continue
        out.setdefault(tag_key(str(key)), value)
    return tuple(sorted(out.items()))


def _tags(
    source: SourceFile, column: str | None, aliases: dict[str, str] | None = None
) -> tuple[list[str], dict[str, list[str | None]]]:
    """The Tags JSON of every row and the attribution columns read from it. Tag sets repeat a lot,
    so each distinct raw value is parsed once."""
    n = source.table.num_rows
    attribution: dict[str, list[str | None]] = {c: [] for c in ATTRIBUTION_TAGS}
    if column is None:
        for values in attribution.values():
            values.extend([None] * n)
        return ["{}"] * n, attribution
    raw_values = source.table.column(column).to_pylist()
    rows = source.row_numbers()
    cache: dict[object, tuple[str, tuple]] = {}
    texts = []
    for i, raw in enumerate(raw_values):
        if isinstance(raw, list):
            key = tuple(raw)
        elif isinstance(raw, dict):
            key = tuple(sorted(raw.items()))
        else:
            key = raw
        hit = cache.get(key)
        if hit is None:
            if raw is None:
                pairs = []
            elif isinstance(raw, str):
                try:
                    pairs = _tag_pairs_from_text(raw)
                except ValueError as exc:
                    raise BadInputError(
                        f"{source.uri} {_where(source)} {rows[i]}: field {column} = {raw[:80]!r} "
                        f"is not a JSON object of tags ({exc})"
                    ) from None
            elif isinstance(raw, list):  # an Arrow map<string, string>
                pairs = list(raw)
            elif isinstance(raw, dict):  # a struct
                pairs = list(raw.items())
            else:
                raise BadInputError(f"{source.uri} {_where(source)} {rows[i]}: field {column} has type {type(raw)}")
            tags = _normalised_tags(pairs)
            as_dict = dict(tags)
            for alias, key in (aliases or {}).items():  # a declared alias never overrides the key itself
                if alias in as_dict and key not in as_dict:
                    as_dict = {**as_dict, key: as_dict[alias]}
            found = tuple(
                next((str(as_dict[k]) for k in keys if k in as_dict), None) for keys in ATTRIBUTION_TAGS.values()
            )
            hit = cache[key] = (json.dumps(dict(tags), sort_keys=True), found)
        texts.append(hit[0])
        for name, value in zip(ATTRIBUTION_TAGS, hit[1], strict=True):
            attribution[name].append(value)
    return texts, attribution


# --- normalisation ----------------------------------------------------------------------------------


def _prepare(source: SourceFile, provider: FocusProvider) -> tuple[pa.Table, dict[str, str]]:
    """The ledger's source columns under their FOCUS names (absent optional ones as nulls), the tags
    as JSON, the attribution, the line item type and the source row number; plus ledger name -> name
    in the file, for error messages."""
    table = source.table
    names = _columns_by_name(table.column_names)
    missing = [c for c in MANDATORY_COLUMNS if _find(names, provider.candidates(c)) is None]
    if missing:
        raise BadInputError(
            f"{source.uri}: missing mandatory FOCUS column(s) {', '.join(missing)}{other_format(names)}"
        )
    n = table.num_rows
    original: dict[str, str] = {}
    columns, out_names = [], []
    for column in (*STRING_COLUMNS, *TIMESTAMP_COLUMNS, *DECIMAL_COLUMNS, *JSON_COLUMNS):
        found = _find(names, provider.candidates(column))
        if found is None:
            columns.append(pa.nulls(n, pa.string()))
        else:
            original[column] = found
            columns.append(table.column(found))
        out_names.append(column)
    taken = set(original.values())
    for name in _provider_columns(table.column_names, taken):
        columns.append(table.column(name))
        out_names.append(f"provider__{name}")
    line_type = _find(names, provider.line_item_type_columns) or original["ChargeCategory"]
    columns.append(table.column(line_type))
    out_names.append("line_item_type")
    tags_json, attribution = _tags(source, _find(names, ("Tags",)), provider.tag_aliases)
    columns.append(pa.array(tags_json, pa.string()))
    out_names.append("tags_json")
    for name, values in attribution.items():
        columns.append(pa.array(values, pa.string()))
        out_names.append(name)
    columns.append(pa.array(source.row_numbers(), pa.int64()))
    out_names.append("source_row_number")
    return pa.Table.from_arrays(columns, names=out_names), original


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _provider_columns(names: list[str], taken: set[str]) -> list[str]:
    """The export's own x_ columns (FOCUS's prefix for provider columns), but those the ledger reads."""
    return [n for n in names if n.lower().startswith("x_") and n not in taken]


def _provider_columns_sql(names: list[tuple[str, bool]]) -> str:
    """One JSON object of the row's provider x_ columns (name, is text) that hold a value (JSON merge
    patch drops the nulls; an empty text is no value); NULL when none does."""
    if not names:
        return "CAST(NULL AS VARCHAR)"
    values = [(_quote(n[len("provider__") :]), _text(n) if text else f'"{n}"') for n, text in names]
    pairs = ", ".join(f"{key}, {value}" for key, value in values)
    return f"NULLIF(CAST(json_merge_patch('{{}}', json_object({pairs})) AS VARCHAR), '{{}}')"


def _json_text(column: str) -> str:
    """A JSON-valued column as JSON text: text as written (checked to be JSON), a struct or map as JSON."""
    return (
        f'CASE WHEN typeof("{column}") = \'VARCHAR\' THEN {_text(column)} ELSE CAST(to_json("{column}") AS VARCHAR) END'
    )


def _text(column: str) -> str:
    return f"NULLIF(TRIM(CAST(\"{column}\" AS VARCHAR)), '')"


def _money(column: str) -> str:
    return f"TRY_CAST({_text(column)} AS {MONEY_SQL})"


def _ts(column: str) -> str:
    return f"TRY_CAST({_text(column)} AS TIMESTAMPTZ)"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _checks(provider: FocusProvider, expected: str) -> list[tuple[str, str, list[str], object]]:
    """(condition of a bad row, column reported, values shown, values -> what is wrong), in the
    order they are reported."""
    compare = "lower" if provider.account_ids_case_insensitive else ""
    account = _text("BillingAccountId")
    checks = [
        (
            f"{account} IS NOT NULL AND {compare}({account}) <> {compare}({_quote(expected)})",
            "BillingAccountId",
            [account],
            lambda v: f"= {v[0]!r}: the export belongs to another billing account than the configured {expected!r}",
        )
    ]
    checks += [
        (f"{_text(c)} IS NOT NULL AND {_money(c)} IS NULL", c, [_text(c)], lambda v: f"= {v[0]!r} is not a number")
        for c in DECIMAL_COLUMNS
    ]
    checks += [
        (
            f"{_text(c)} IS NOT NULL AND {too_precise_sql(_text(c))}",
            c,
            [_text(c)],
            lambda v: f"= {v[0]!r} {TOO_PRECISE}",
        )
        for c in DECIMAL_COLUMNS
    ]
    checks += [
        (
            f"{_text(c)} IS NOT NULL AND {_ts(c)} IS NULL",
            c,
            [_text(c)],
            lambda v: f"= {v[0]!r} is not an ISO 8601 date-time",
        )
        for c in TIMESTAMP_COLUMNS
    ]
    checks += [(f"{_text(c)} IS NULL", c, [], lambda v: "is empty") for c in NON_EMPTY_COLUMNS]
    checks += [
        (
            f"{_text(c)} IS NOT NULL AND typeof(\"{c}\") = 'VARCHAR' AND NOT json_valid({_text(c)})",
            c,
            [_text(c)],
            lambda v: f"= {v[0][:80]!r} is not JSON",
        )
        for c in JSON_COLUMNS
    ]
    currency = _text("BillingCurrency")
    checks.append(
        (
            f"NOT regexp_full_match({currency}, '[A-Z]{{3}}')",
            "BillingCurrency",
            [currency],
            lambda v: f"= {v[0]!r} is not an ISO 4217 currency code",
        )
    )
    for column, allowed in ALLOWED_VALUES.items():
        listed = ", ".join(_quote(v) for v in allowed)
        checks.append(
            (
                f"{_text(column)} IS NOT NULL AND {_text(column)} NOT IN ({listed})",
                column,
                [_text(column)],
                lambda v, allowed=allowed: f"= {v[0]!r} is not one of FOCUS's values ({', '.join(allowed)})",
            )
        )
    checks.append(
        (
            f"{_ts('ChargePeriodEnd')} < {_ts('ChargePeriodStart')}",
            "ChargePeriodEnd",
            [_text("ChargePeriodEnd"), _text("ChargePeriodStart")],
            lambda v: f"= {v[0]!r} is before ChargePeriodStart {v[1]!r}",
        )
    )
    return checks


def _validate(con, source: SourceFile, provider: FocusProvider, original: dict[str, str]) -> None:
    """Every check in one pass over the batch (the first bad row of each); the first check that
    finds one is reported, naming the file, the row and the field."""
    checks = _checks(provider, _expected_account(source))
    firsts = con.sql(first_bad_rows_sql([c[0] for c in checks], "focus")).fetchall()[0]
    for (_, column, shown, detail), row in zip(checks, firsts, strict=True):
        if row is None:
            continue
        values = []
        if shown:
            values = con.sql(
                f"SELECT {', '.join(shown)} FROM focus WHERE source_row_number = $row", params={"row": row}
            ).fetchall()[0]
        field = original.get(column, column)
        raise BadInputError(f"{source.uri} {_where(source)} {row}: field {field} {detail(values)}")


def _ledger_sql(provider: FocusProvider, provider_columns: list[tuple[str, bool]]) -> str:
    text_columns = {c: _text(c) for c in STRING_COLUMNS}
    text_columns |= {c: _json_text(c) for c in JSON_COLUMNS}
    text_columns["PublisherName"] = f"COALESCE({_text('PublisherName')}, {_text('ProviderName')})"
    text_columns["InvoiceIssuerName"] = f"COALESCE({_text('InvoiceIssuerName')}, {_text('ProviderName')})"
    # An export of FOCUS 1.2 or older: the service is its publisher's, hosted by its provider (the
    # cloud whose marketplace or infrastructure it is sold on).
    text_columns["ServiceProviderName"] = (
        f"COALESCE({_text('ServiceProviderName')}, {_text('PublisherName')}, {_text('ProviderName')})"
    )
    text_columns["HostProviderName"] = f"COALESCE({_text('HostProviderName')}, {_text('ProviderName')})"
    text_columns["ServiceCategory"] = f"COALESCE({_text('ServiceCategory')}, 'Other')"
    # FOCUS 1.0 exports have no ServiceSubcategory: a service is then "Other (<its category>)"
    text_columns["ServiceSubcategory"] = (
        f"COALESCE({_text('ServiceSubcategory')}, {other_subcategory_sql(text_columns['ServiceCategory'])})"
    )
    select = []
    for f in LEDGER_SCHEMA:
        name = f.name
        if name in text_columns:
            select.append(f"{text_columns[name]} AS {name}")
        elif name in TIMESTAMP_COLUMNS:
            select.append(f"{_ts(name)} AS {name}")
        elif name in DECIMAL_COLUMNS:
            select.append(f"{_money(name)} AS {name}")
    identity = " || ':' || ".join(
        f"COALESCE({_text(c)}, '')"
        for c in ("ChargePeriodStart", "ChargeCategory", "ResourceId", "SkuPriceId", "BilledCost", "EffectiveCost")
    )
    select += [
        "tags_json AS Tags",
        f"'{provider.name}' AS x_SourceProvider",
        "$uri AS x_SourceUri",
        "source_row_number AS x_SourceRowNumber",
        f"sha256($uri || ':' || CAST(source_row_number AS VARCHAR) || ':' || {identity}) AS x_SourceRowHash",
        f"COALESCE({_text('line_item_type')}, {_text('ChargeCategory')}) AS x_LineItemType",
        *(f'"{c}" AS {c}' for c in ATTRIBUTION_TAGS),
        f"{_provider_columns_sql(provider_columns)} AS x_ProviderColumns",
    ]
    start, bp_start, bp_end = _ts("ChargePeriodStart"), _ts("BillingPeriodStart"), _ts("BillingPeriodEnd")
    select.append(
        f"""(CASE WHEN {start} >= {bp_start} AND {start} < {bp_end} THEN CAST({start} AS DATE)
            ELSE CAST({bp_start} AS DATE) END) AS ledger_day"""
    )
    return (
        "SELECT\n    "
        + ",\n    ".join(select)
        + """
FROM focus
WHERE ledger_day BETWEEN CAST($first AS DATE) AND CAST($last AS DATE)
ORDER BY source_row_number"""
    )


def _needed_columns(source: SourceFile, provider: FocusProvider) -> list[str]:
    """The file's columns the ledger reads: the rest (x_ provider columns, new ones) are not read."""
    names = _columns_by_name(source.schema.names)
    wanted = [provider.candidates(c) for c in (*STRING_COLUMNS, *TIMESTAMP_COLUMNS, *DECIMAL_COLUMNS)]
    wanted += [provider.line_item_type_columns, ("Tags",), *((c,) for c in JSON_COLUMNS)]
    found = {_find(names, candidates) for candidates in wanted}
    return [n for n in source.schema.names if n in found or n.lower().startswith("x_")]


def focus_export_batches(source: SourceFile, day: date, provider: FocusProvider) -> Iterator[pa.RecordBatch]:
    """The ledger rows of `day` in one FOCUS-native export file, batch by batch (a streamed Parquet
    file is never held whole). Every batch is checked before any of its rows is returned."""
    for _, batch in focus_export_days(source, [day], provider):
        yield batch


def focus_export_days(
    source: SourceFile,
    days: list[date],
    provider: FocusProvider,
    batch_size: int = BATCH_ROWS,
    workers: int | None = None,
) -> Iterator[tuple[date, pa.RecordBatch]]:
    """`focus_export_batches` for several days in one pass over the file: (day, batch) pairs."""
    ledger_columns = [f.name for f in LEDGER_SCHEMA] + ["ledger_day"]
    names = _columns_by_name(source.schema.names)
    missing = [c for c in MANDATORY_COLUMNS if _find(names, provider.candidates(c)) is None]
    if missing:  # said of the whole file, which also tells a billing format that is not FOCUS
        raise BadInputError(
            f"{source.uri}: missing mandatory FOCUS column(s) {', '.join(missing)}{other_format(names)}"
        )
    params = {"uri": source.uri, "first": min(days).isoformat(), "last": max(days).isoformat()}
    wanted = set(days)
    # The batches on every core (worker threads, one DuckDB cursor each on one database), in file order.
    cursors = WorkerCursors()

    def normalise(item: tuple[pa.RecordBatch, pa.Array]) -> list[tuple[date, pa.RecordBatch]]:
        batch, rows = item
        part = SourceFile(
            source.uri, pa.Table.from_batches([batch]), kind=source.kind, context=source.context,
            row_lines=rows.to_pylist(),
        )  # fmt: skip
        table, original = _prepare(part, provider)
        con = cursors.get()
        con.register("focus", table)
        try:
            _validate(con, part, provider, original)
            extra = [(f.name, _is_text(f.type)) for f in table.schema if f.name.startswith("provider__")]
            result = con.sql(_ledger_sql(provider, extra), params=params).to_arrow_table().select(ledger_columns)
        finally:
            con.unregister("focus")
        return [
            (day, b)
            for day, rows_of_day in split_by_day(result, wanted)
            for b in rows_of_day.cast(LEDGER_SCHEMA).to_batches()
        ]

    batches = ordered_map(normalise, source.batches(_needed_columns(source, provider), batch_size), workers)
    try:
        for pairs in batches:
            yield from pairs
    finally:
        batches.close()  # its workers are done before the database they use is closed
        cursors.close()


def _focus_to_ledger(source: SourceFile, day: date, provider: FocusProvider) -> pa.Table:
    return pa.Table.from_batches(list(focus_export_batches(source, day, provider)), schema=LEDGER_SCHEMA)


def azure_focus_to_focus(source: SourceFile, day: date) -> pa.Table:
    """Ledger rows of `day` from one Azure Cost Management FOCUS export file (`kind="azure_focus"`,
    `context` = the expected billing account id)."""
    return _focus_to_ledger(source, day, AZURE)


def aws_focus_to_focus(source: SourceFile, day: date) -> pa.Table:
    """Ledger rows of `day` from one AWS Data Exports "FOCUS 1.2 with AWS columns" file
    (`kind="aws_focus"`, `context` = the expected billing account id)."""
    return _focus_to_ledger(source, day, AWS)


Fingerprint = tuple[str, int | str, float]


def read_focus_csv(data: bytes, uri: str) -> tuple[pa.Table, list[int] | None]:
    """A FOCUS CSV (plain or gzip) with every column as text, so that a bad value is reported with its
    line instead of silently becoming null; and the physical line of each row when it differs from
    index + 2."""
    if uri.endswith(".gz") or data[:2] == b"\x1f\x8b":
        data = gunzip_bounded(data, uri)
    header = data.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").strip()
    if not header:
        raise BadInputError(f"{uri}: empty file, no FOCUS header")
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(encoding="utf-8"),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in _csv_header(header)}, strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise BadInputError(f"{uri}: not a readable CSV file: {exc}") from exc
    table = table.rename_columns([c.lstrip("\ufeff") for c in table.column_names])
    lines = physical_lines(data, table.num_rows)
    if lines is not None and len(lines) != table.num_rows:
        raise BadInputError(f"{uri}: {len(lines)} records by line but {table.num_rows} parsed rows")
    return table, lines


def _csv_header(header: str) -> list[str]:
    return next(csv.reader([header]))


def read_focus_parquet(data: bytes, uri: str) -> pa.Table:
    try:
        return pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInputError(f"{uri}: not a readable Parquet file: {exc}") from exc


def _source_file(data: bytes, uri: str, kind: str, account: str) -> SourceFile:
    name = uri.rsplit("/", 1)[-1].lower()
    if name.endswith(".parquet"):
        return SourceFile(uri, read_focus_parquet(data, uri), first_data_line=1, kind=kind, context=account)
    if name.endswith((".csv", ".csv.gz", ".gz")):
        table, lines = read_focus_csv(data, uri)
        return SourceFile(uri, table, first_data_line=2, kind=kind, context=account, row_lines=lines)
    raise BadInputError(f"{uri}: not a CSV, gzip CSV or Parquet export file")


def _month_bounds(day: date) -> tuple[date, date]:
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following
