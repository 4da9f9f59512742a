"""AWS Cost and Usage Report (legacy CSV and CUR 2.0 Parquet) -> FOCUS 1.2 cost ledger rows.

Pure logic: takes an Arrow table as read from one export file and returns the ledger rows of one
day, with FOCUS column names and types, plus the x_ lineage and attribution columns. DuckDB does
the columnar work. Bad values raise BadInputError naming the file, the row and the field.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from rai_pipelines.core.errors import BadInputError

MONEY = pa.decimal128(38, 12)
MONEY_SQL = "DECIMAL(38,12)"

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
NUMERIC_CUR_COLUMNS = (
    "line_item_unblended_cost",
    "line_item_net_unblended_cost",
    "line_item_usage_amount",
    "line_item_unblended_rate",
    "pricing_public_on_demand_cost",
    "pricing_public_on_demand_rate",
    "reservation_effective_cost",
    "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee",
    "savings_plan_savings_plan_effective_cost",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
)
NON_EMPTY_CUR_COLUMNS = (
    "bill_payer_account_id",
    "line_item_usage_account_id",
    "line_item_currency_code",
    "line_item_unblended_cost",
)
TIMESTAMP_CUR_COLUMNS = (
    "line_item_usage_start_date",
    "line_item_usage_end_date",
    "bill_billing_period_start_date",
    "bill_billing_period_end_date",
)

# lineItem/LineItemType -> FOCUS ChargeCategory, as AWS documents its FOCUS export.
CHARGE_CATEGORY = {
    "Usage": "Usage",
    "DiscountedUsage": "Usage",
    "SavingsPlanCoveredUsage": "Usage",
    "SavingsPlanNegation": "Usage",
    "Tax": "Tax",
    "Credit": "Credit",
    "Refund": "Credit",
    "Discount": "Credit",
    "BundledDiscount": "Credit",
    "EdpDiscount": "Credit",
    "PrivateRateDiscount": "Credit",
    "Fee": "Purchase",
    "RIFee": "Purchase",
    "SavingsPlanUpfrontFee": "Purchase",
    "SavingsPlanRecurringFee": "Purchase",
}
CHARGE_FREQUENCY = {
    "Fee": "One-Time",
    "SavingsPlanUpfrontFee": "One-Time",
    "RIFee": "Recurring",
    "SavingsPlanRecurringFee": "Recurring",
    "Tax": "Recurring",
    "Credit": "One-Time",
    "Refund": "One-Time",
}
PRICING_CATEGORY = {"OnDemand": "Standard", "Reserved": "Committed", "Spot": "Dynamic"}
SERVICE_CATEGORY = {
    "AmazonEC2": "Compute",
    "AWSLambda": "Compute",
    "AmazonECS": "Compute",
    "AmazonEKS": "Compute",
    "AmazonSageMaker": "AI and Machine Learning",
    "AmazonBedrock": "AI and Machine Learning",
    "AmazonS3": "Storage",
    "AmazonEFS": "Storage",
    "AmazonEBS": "Storage",
    "AWSGlue": "Analytics",
    "AmazonAthena": "Analytics",
    "AWSQueueService": "Integration",
    "AmazonSNS": "Integration",
    "AmazonStates": "Integration",
    "AmazonCloudWatch": "Management and Governance",
    "AWSCloudTrail": "Management and Governance",
    "awskms": "Security",
    "AWSSecretsManager": "Security",
    "AWSCloudShell": "Developer Tools",
    "AWSDataTransfer": "Networking",
    "AWSIoT": "Internet of Things",
    "AWSMigrationHubRefactorSpaces": "Migration",
}

# Tag keys (after the provider prefix is dropped and '-' folded to '_') -> attribution column.
ATTRIBUTION_TAGS = {
    "x_ModelName": ("model_name", "model"),
    "x_ModelVersion": ("model_version",),
    "x_Team": ("team", "owner_team"),
    "x_Environment": ("environment", "env"),
    "x_Workload": ("workload", "app", "application"),
}

LEDGER_SCHEMA = pa.schema(
    [
        ("BillingAccountId", pa.string()),
        ("BillingAccountName", pa.string()),
        ("SubAccountId", pa.string()),
        ("SubAccountName", pa.string()),
        ("BillingCurrency", pa.string()),
        ("BillingPeriodStart", pa.timestamp("us", tz="UTC")),
        ("BillingPeriodEnd", pa.timestamp("us", tz="UTC")),
        ("ChargePeriodStart", pa.timestamp("us", tz="UTC")),
        ("ChargePeriodEnd", pa.timestamp("us", tz="UTC")),
        ("ChargeCategory", pa.string()),
        ("ChargeClass", pa.string()),
        ("ChargeFrequency", pa.string()),
        ("ChargeDescription", pa.string()),
        ("BilledCost", MONEY),
        ("EffectiveCost", MONEY),
        ("ListCost", MONEY),
        ("ContractedCost", MONEY),
        ("ListUnitPrice", MONEY),
        ("ContractedUnitPrice", MONEY),
        ("PricingQuantity", pa.decimal128(38, 12)),
        ("PricingUnit", pa.string()),
        ("PricingCategory", pa.string()),
        ("ConsumedQuantity", pa.decimal128(38, 12)),
        ("ConsumedUnit", pa.string()),
        ("ProviderName", pa.string()),
        ("PublisherName", pa.string()),
        ("InvoiceIssuerName", pa.string()),
        ("InvoiceId", pa.string()),
        ("ServiceName", pa.string()),
        ("ServiceCategory", pa.string()),
        ("RegionId", pa.string()),
        ("RegionName", pa.string()),
        ("AvailabilityZone", pa.string()),
        ("ResourceId", pa.string()),
        ("ResourceName", pa.string()),
        ("ResourceType", pa.string()),
        ("SkuId", pa.string()),
        ("SkuPriceId", pa.string()),
        ("CommitmentDiscountId", pa.string()),
        ("CommitmentDiscountCategory", pa.string()),
        ("CommitmentDiscountName", pa.string()),
        ("CommitmentDiscountStatus", pa.string()),
        ("CommitmentDiscountType", pa.string()),
        ("Tags", pa.string()),
        ("x_SourceProvider", pa.string()),
        ("x_SourceUri", pa.string()),
        ("x_SourceRowNumber", pa.int64()),
        ("x_SourceRowHash", pa.string()),
        ("x_LineItemType", pa.string()),
        ("x_Workload", pa.string()),
        ("x_ModelName", pa.string()),
        ("x_ModelVersion", pa.string()),
        ("x_Team", pa.string()),
        ("x_Environment", pa.string()),
    ]
)


def canonical_cur_name(name: str) -> str:
    """Legacy CUR column name -> CUR 2.0 column name ("lineItem/UsageStartDate" -> "line_item_usage_start_date")."""
    if "/" not in name:
        return name
    category, field = name.split("/", 1)
    category = re.sub(r"(?<!^)(?=[A-Z])", "_", category).lower()
    field = re.sub(r"(?<!^)(?=[A-Z])", "_", field).lower()
    return f"{category}_{field}"


@functools.lru_cache(maxsize=65_536)
def tag_key(raw: str) -> str:
    """Normalise a resource tag key across export formats: `user:model-name`, `user_model_name`
    and `model-name` all become `model_name`; AWS-generated `aws:` keys keep their prefix."""
    key = raw
    for prefix in ("resource_tags_", "resourceTags/"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    if key.startswith("user:"):
        key = key[5:]
    elif key.startswith("user_"):
        key = key[5:]
    return key.replace("-", "_").replace(":", "_").lower()


# Rows per batch of the streamed normalisation: large enough that DuckDB's per-query overhead is
# noise, small enough for the CPU caches (measured: Parquet decodes a 64k batch fastest).
BATCH_ROWS = 65_536


@dataclass(frozen=True)
class ParquetInput:
    """A Parquet export file read batch by batch, with only the columns the ledger needs."""

    filesystem: pafs.FileSystem
    path: str
    uri: str

    def _file(self):
        import pyarrow.parquet as pq

        try:
            # Buffered page reads, not whole column chunks: a row group of a million rows would
            # otherwise be held decoded at once (measured: 690 MB against 410 MB, and slower).
            return pq.ParquetFile(self.filesystem.open_input_file(self.path), buffer_size=1 << 20, pre_buffer=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BadInputError(f"{self.uri}: not a readable Parquet file: {exc}") from exc

    # The footer is read once: layout, witness and row numbers all ask for it.
    @functools.cached_property
    def schema(self) -> pa.Schema:
        return self._file().schema_arrow

    @functools.cached_property
    def num_rows(self) -> int:
        return self._file().metadata.num_rows

    def batches(self, columns: list[str], batch_size: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        reader = self._file()
        try:
            yield from reader.iter_batches(batch_size=batch_size, columns=columns, use_threads=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BadInputError(f"{self.uri}: not a readable Parquet file: {exc}") from exc


@dataclass(frozen=True)
class SourceFile:
    """One export file: where it is and its rows, either read (`table`) or streamed (`parquet`)."""

    uri: str
    table: pa.Table | None
    first_data_line: int = 2  # CSV: line 1 is the header. Parquet: row numbers start at 1.
    kind: str = "aws_cur"  # which normalisation reads it: "aws_cur" or "onprem"
    # What that normalisation needs besides the file: the declared rates (on-prem), the billing
    # account the export must belong to (cloud exports).
    context: object = None
    # CSV only: the physical line of each row, when blank lines or quoted line breaks make it
    # differ from first_data_line + row index.
    row_lines: list[int] | None = None
    parquet: ParquetInput | None = None

    @classmethod
    def streamed(cls, parquet: ParquetInput, kind: str = "aws_cur", context: object = None) -> SourceFile:
        return cls(parquet.uri, None, first_data_line=1, kind=kind, context=context, parquet=parquet)

    @property
    def schema(self) -> pa.Schema:
        return self.parquet.schema if self.parquet is not None else self.table.schema

    def row_numbers(self) -> list[int]:
        if self.row_lines is not None:
            return self.row_lines
        return list(range(self.first_data_line, self.first_data_line + self.num_rows))

    @property
    def num_rows(self) -> int:
        return self.parquet.num_rows if self.parquet is not None else self.table.num_rows

    def batches(self, columns: list[str], batch_size: int = BATCH_ROWS) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
        """(batch, the row number of each of its rows), `columns` only, in file order."""
        if self.parquet is not None:
            offset = self.first_data_line
            for batch in self.parquet.batches(columns, batch_size):
                yield batch, pa.array(range(offset, offset + batch.num_rows), pa.int64())
                offset += batch.num_rows
            return
        table = self.table.select(columns)
        lines = pa.array(self.row_numbers(), pa.int64())
        start = 0
        for batch in table.to_batches(max_chunksize=batch_size):
            yield batch, lines.slice(start, batch.num_rows)
            start += batch.num_rows


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


def _attribution(tags: dict[str, str]) -> tuple[str | None, ...]:
    return tuple(next((tags[k] for k in keys if tags.get(k)), None) for keys in ATTRIBUTION_TAGS.values())


class _TagSets:
    """Each distinct tag set as its JSON text and attribution values, computed once per file: a day
    has tens of thousands of distinct sets against millions of rows. The sets seen so far are kept
    as Arrow arrays, so a batch's rows are matched to them by Arrow's hash lookup, and only a set
    never seen before reaches Python."""

    def __init__(self) -> None:
        self._known = pa.array([], pa.string())
        self._resolved = [pa.array([], pa.string()) for _ in range(1 + len(ATTRIBUTION_TAGS))]

    def resolve(self, signatures: pa.Array, parse) -> list[pa.Array]:
        """Given one signature string per row (null: no tags) and `parse` (signature -> raw (key,
        value) pairs), the Tags JSON column followed by one column per attribution tag."""
        encoded = pc.dictionary_encode(signatures)
        distinct = encoded.dictionary
        positions = pc.index_in(distinct, value_set=self._known)
        new = pc.filter(distinct, pc.is_null(positions)).to_pylist()
        if new:
            # All parsed before any is kept: a parse that raises leaves the sets as they were.
            parsed = []
            for raw in new:
                tags = dict(sorted((tag_key(k), v) for k, v in parse(raw) if v not in (None, "")))
                parsed.append((json.dumps(tags, sort_keys=True), *_attribution(tags)))
            self._known = pa.concat_arrays([self._known, pa.array(new, pa.string())])
            self._resolved = [
                pa.concat_arrays([known, pa.array(column, pa.string())])
                for known, column in zip(self._resolved, zip(*parsed, strict=True), strict=True)
            ]
            positions = pc.index_in(distinct, value_set=self._known)
        rows = positions.take(encoded.indices)  # null where the row has no tags at all
        texts = pc.fill_null(self._resolved[0].take(rows), "{}")
        return [texts] + [column.take(rows) for column in self._resolved[1:]]


# A row's tags become one signature string, made in Arrow: its number of pairs, its keys and its
# values, joined by control characters. A key or value that holds one of them gives a signature
# whose parts do not add up to that number: such a batch is signed the plain way, row by row.
_KEY_SEP, _PAIR_SEP = "\x1f", "\x1e"


class _Ambiguous(Exception):
    pass


def _split_signature(raw: str) -> list[tuple[str, str]]:
    parts = raw.split(_PAIR_SEP)
    if len(parts) != 3:
        raise _Ambiguous
    count = int(parts[0])
    if count == 0:
        return []
    keys, items = parts[1].split(_KEY_SEP), parts[2].split(_KEY_SEP)
    if len(keys) != count or len(items) != count:
        raise _Ambiguous
    return list(zip(keys, items, strict=True))


def _pairs_of_json(raw: str) -> list[tuple[str, str | None]]:
    return [tuple(pair) for pair in json.loads(raw[1:])]


def _map_tag_columns(column: pa.MapArray, sets: _TagSets) -> list[pa.Array]:
    """The CUR 2.0 map column without a Python object per row: each row's raw keys and values are
    joined into one signature string in Arrow, and only the distinct signatures reach Python."""
    if len(column) == 0:
        return [pa.array([], pa.string()) for _ in range(1 + len(ATTRIBUTION_TAGS))]
    keys = pa.ListArray.from_arrays(column.offsets, column.keys)
    # A missing value and an empty one are the same to the ledger: neither is kept as a tag.
    items = pa.ListArray.from_arrays(column.offsets, pc.fill_null(column.items, ""))
    signatures = pc.binary_join_element_wise(
        pc.cast(pc.list_value_length(keys), pa.string()),
        pc.binary_join(keys, _KEY_SEP),
        pc.binary_join(items, _KEY_SEP),
        _PAIR_SEP,
    )
    signatures = pc.if_else(column.is_valid(), signatures, pa.scalar(None, pa.string()))
    try:
        return sets.resolve(signatures, _split_signature)
    except _Ambiguous:
        rows = [None if e is None else "J" + json.dumps(e) for e in column.to_pylist()]
        return sets.resolve(pa.array(rows, pa.string()), _pairs_of_json)


def _legacy_tag_columns_of(batch: pa.RecordBatch, names: list[str], sets: _TagSets) -> list[pa.Array]:
    """Legacy resourceTags/* columns: the row's values joined into one signature in Arrow."""
    n = batch.num_rows
    if not names:
        return [pa.array(["{}"] * n, pa.string())] + [pa.nulls(n, pa.string()) for _ in ATTRIBUTION_TAGS]
    values = [pc.fill_null(pc.cast(batch.column(c), pa.string()), "") for c in names]

    def split(raw: str) -> list[tuple[str, str]]:
        parts = raw.split(_KEY_SEP)[1:]  # after the leading "L"
        if len(parts) != len(names):
            raise _Ambiguous
        return list(zip(names, parts, strict=True))

    try:
        return sets.resolve(pc.binary_join_element_wise("L", *values, _KEY_SEP), split)
    except _Ambiguous:
        rows = zip(*(v.to_pylist() for v in values), strict=True)
        signatures = ["J" + json.dumps(list(zip(names, r, strict=True))) for r in rows]
        return sets.resolve(pa.array(signatures, pa.string()), _pairs_of_json)


def _prepare_batch(batch: pa.RecordBatch, rows: pa.Array, layout: _Layout, sets: _TagSets) -> pa.Table:
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
        tag_columns = _map_tag_columns(batch.column("resource_tags"), sets)
    else:
        tag_columns = _legacy_tag_columns_of(batch, layout.tag_columns, sets)
    columns += tag_columns
    names += ["tags_json", *(f"tag_{c}" for c in ATTRIBUTION_TAGS)]
    columns.append(rows)
    names.append("source_row_number")
    return pa.Table.from_arrays(columns, names=names)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)


class _Sql:
    """SQL fragments for one batch schema: a typed column is used as it is, a text column (CSV, or
    a Parquet file that stores numbers as text) is parsed, with its bad values reported first."""

    def __init__(self, schema: pa.Schema):
        self.types = {f.name: f.type for f in schema}

    def text(self, column: str) -> str:
        return f"NULLIF({column}, '')" if _is_text(self.types[column]) else f"CAST({column} AS VARCHAR)"

    def money(self, column: str) -> str:
        if _is_text(self.types[column]):
            return f"TRY_CAST(NULLIF({column}, '') AS {MONEY_SQL})"
        return f"CAST({column} AS {MONEY_SQL})"

    def ts(self, column: str) -> str:
        kind = self.types[column]
        if pa.types.is_timestamp(kind) and kind.tz is not None:
            return column
        return f"TRY_CAST({column} AS TIMESTAMPTZ)"

    def bad_number(self, column: str) -> str:
        if _is_text(self.types[column]):
            return f"{column} IS NOT NULL AND {column} <> '' AND TRY_CAST({column} AS {MONEY_SQL}) IS NULL"
        if pa.types.is_floating(self.types[column]):
            return f"NOT isfinite({column})"
        return "false"

    def bad_timestamp(self, column: str) -> str:
        if _is_text(self.types[column]):
            return f"{column} IS NOT NULL AND {column} <> '' AND TRY_CAST({column} AS TIMESTAMPTZ) IS NULL"
        return "false"

    def empty(self, column: str) -> str:
        return f"{column} IS NULL OR {column} = ''" if _is_text(self.types[column]) else f"{column} IS NULL"


def _case(column: str, mapping: dict[str, str], default: str = "NULL") -> str:
    whens = " ".join(f"WHEN {column} = '{k}' THEN '{v}'" for k, v in mapping.items())
    return f"CASE {whens} ELSE {default} END"


def _checks(s: _Sql, account: str | None) -> list[tuple[str, str, str]]:
    """(condition of a bad row, column, what is wrong), in the order they are reported."""
    checks = []
    if account is not None:
        quoted = account.replace("'", "''")
        checks.append(
            (
                f"CAST(bill_payer_account_id AS VARCHAR) <> '{quoted}'",
                "bill_payer_account_id",
                f"is not the payer account this export is configured for ({account}): an export of the wrong account",
            )
        )
    checks += [(s.bad_number(c), c, "is not a number") for c in NUMERIC_CUR_COLUMNS]
    checks += [(s.bad_timestamp(c), c, "is not a date-time") for c in TIMESTAMP_CUR_COLUMNS]
    checks += [(s.empty(c), c, "is empty") for c in (*TIMESTAMP_CUR_COLUMNS, *NON_EMPTY_CUR_COLUMNS)]
    checks.append(
        (
            "NOT regexp_full_match(CAST(line_item_currency_code AS VARCHAR), '[A-Z]{3}')",
            "line_item_currency_code",
            "is not an ISO 4217 currency code",
        )
    )
    known = ", ".join(repr(k) for k in CHARGE_CATEGORY)
    checks.append(
        (
            f"line_item_line_item_type NOT IN ({known}) OR line_item_line_item_type IS NULL",
            "line_item_line_item_type",
            f"is not a known line item type ({', '.join(sorted(CHARGE_CATEGORY))})",
        )
    )
    return [c for c in checks if c[0] != "false"]


def _validation_sql(checks: list[tuple[str, str, str]]) -> str:
    firsts = ", ".join(f"min(CASE WHEN {condition} THEN source_row_number END)" for condition, _, _ in checks)
    return f"SELECT {firsts} FROM cur"


def _ledger_sql(s: _Sql) -> str:
    item_type = "line_item_line_item_type"
    sp_arn, ri_arn = s.text("savings_plan_savings_plan_a_r_n"), s.text("reservation_reservation_a_r_n")
    unblended = s.money("line_item_unblended_cost")
    usage_start, period_start = s.ts("line_item_usage_start_date"), s.ts("bill_billing_period_start_date")
    return f"""
SELECT
    {s.text("bill_payer_account_id")} AS BillingAccountId,
    {s.text("bill_payer_account_name")} AS BillingAccountName,
    {s.text("line_item_usage_account_id")} AS SubAccountId,
    {s.text("line_item_usage_account_name")} AS SubAccountName,
    {s.text("line_item_currency_code")} AS BillingCurrency,
    {period_start} AS BillingPeriodStart,
    {s.ts("bill_billing_period_end_date")} AS BillingPeriodEnd,
    {usage_start} AS ChargePeriodStart,
    {s.ts("line_item_usage_end_date")} AS ChargePeriodEnd,
    {_case(item_type, CHARGE_CATEGORY)} AS ChargeCategory,
    CAST(NULL AS VARCHAR) AS ChargeClass,
    {_case(item_type, CHARGE_FREQUENCY, "'Usage-Based'")} AS ChargeFrequency,
    {s.text("line_item_line_item_description")} AS ChargeDescription,
    COALESCE({unblended}, 0) AS BilledCost,
    COALESCE(CASE {item_type}
        WHEN 'SavingsPlanCoveredUsage' THEN {s.money("savings_plan_savings_plan_effective_cost")}
        WHEN 'DiscountedUsage' THEN {s.money("reservation_effective_cost")}
        WHEN 'SavingsPlanNegation' THEN 0
        WHEN 'SavingsPlanUpfrontFee' THEN 0
        WHEN 'Fee' THEN CASE WHEN {ri_arn} IS NOT NULL THEN 0 ELSE {unblended} END
        WHEN 'SavingsPlanRecurringFee' THEN
            {s.money("savings_plan_total_commitment_to_date")} - {s.money("savings_plan_used_commitment")}
        WHEN 'RIFee' THEN COALESCE({s.money("reservation_unused_amortized_upfront_fee_for_billing_period")}, 0)
            + COALESCE({s.money("reservation_unused_recurring_fee")}, 0)
        ELSE {unblended} END, 0) AS EffectiveCost,
    COALESCE({s.money("pricing_public_on_demand_cost")}, {unblended}, 0) AS ListCost,
    COALESCE({s.money("line_item_net_unblended_cost")}, {unblended}, 0) AS ContractedCost,
    -- FOCUS: no pricing quantity, unit or unit prices on tax rows.
    CASE WHEN {item_type} <> 'Tax' THEN {s.money("pricing_public_on_demand_rate")} END AS ListUnitPrice,
    CASE WHEN {item_type} <> 'Tax' THEN {s.money("line_item_unblended_rate")} END AS ContractedUnitPrice,
    CASE WHEN {item_type} <> 'Tax' THEN {s.money("line_item_usage_amount")} END AS PricingQuantity,
    CASE WHEN {item_type} <> 'Tax' THEN {s.text("pricing_unit")} END AS PricingUnit,
    CASE WHEN {item_type} IN ('SavingsPlanCoveredUsage', 'DiscountedUsage') THEN 'Committed'
         WHEN {item_type} IN ('Usage') THEN {_case("pricing_term", PRICING_CATEGORY, "'Standard'")}
         ELSE NULL END AS PricingCategory,
    CASE WHEN {item_type} IN ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage')
         THEN {s.money("line_item_usage_amount")} END AS ConsumedQuantity,
    CASE WHEN {item_type} IN ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage')
         THEN {s.text("pricing_unit")} END AS ConsumedUnit,
    'AWS' AS ProviderName,
    COALESCE({s.text("bill_billing_entity")}, 'AWS') AS PublisherName,
    COALESCE({s.text("bill_invoicing_entity")}, 'Amazon Web Services, Inc.') AS InvoiceIssuerName,
    {s.text("bill_invoice_id")} AS InvoiceId,
    COALESCE({s.text("product_product_name")}, {s.text("product_servicecode")},
             {s.text("line_item_product_code")}) AS ServiceName,
    {_case("line_item_product_code", SERVICE_CATEGORY, "'Other'")} AS ServiceCategory,
    {s.text("product_region_code")} AS RegionId,
    {s.text("product_location")} AS RegionName,
    {s.text("line_item_availability_zone")} AS AvailabilityZone,
    {s.text("line_item_resource_id")} AS ResourceId,
    CAST(NULL AS VARCHAR) AS ResourceName,  -- CUR carries no resource display names
    CAST(NULL AS VARCHAR) AS ResourceType,
    {s.text("product_sku")} AS SkuId,
    {s.text("pricing_rate_id")} AS SkuPriceId,
    COALESCE({sp_arn}, {ri_arn}) AS CommitmentDiscountId,
    CASE WHEN {sp_arn} IS NOT NULL THEN 'Spend' WHEN {ri_arn} IS NOT NULL THEN 'Usage' END
        AS CommitmentDiscountCategory,
    CAST(NULL AS VARCHAR) AS CommitmentDiscountName,
    CASE WHEN COALESCE({sp_arn}, {ri_arn}) IS NOT NULL AND {_case(item_type, CHARGE_CATEGORY)} = 'Usage'
         THEN 'Used' END AS CommitmentDiscountStatus,
    CASE WHEN {sp_arn} IS NOT NULL THEN 'Savings Plan' WHEN {ri_arn} IS NOT NULL THEN 'Reserved Instance' END
        AS CommitmentDiscountType,
    tags_json AS Tags,
    'aws' AS x_SourceProvider,
    $uri AS x_SourceUri,
    source_row_number AS x_SourceRowNumber,
    md5($uri || ':' || CAST(source_row_number AS VARCHAR)
        || ':' || COALESCE(CAST(identity_line_item_id AS VARCHAR), '')
        || ':' || CAST(line_item_unblended_cost AS VARCHAR)) AS x_SourceRowHash,
    {item_type} AS x_LineItemType,
    tag_x_Workload AS x_Workload,
    tag_x_ModelName AS x_ModelName,
    tag_x_ModelVersion AS x_ModelVersion,
    tag_x_Team AS x_Team,
    tag_x_Environment AS x_Environment,
    (CASE WHEN {usage_start} >= {period_start} AND {usage_start} < {s.ts("bill_billing_period_end_date")}
          THEN CAST({usage_start} AS DATE) ELSE CAST({period_start} AS DATE) END) AS ledger_day
FROM cur
WHERE ledger_day BETWEEN CAST($first AS DATE) AND CAST($last AS DATE)
"""


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


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
    source: SourceFile, days: list[date], batch_size: int = BATCH_ROWS
) -> Iterator[tuple[date, pa.RecordBatch]]:
    """`cur_to_focus_batches` for several days in one pass over the file: (day, batch) pairs. A
    backfill of a month reads the month's export once, not once per day."""
    wanted = set(days)
    first_day, last_day = min(days).isoformat(), max(days).isoformat()
    layout = _layout(source)
    what = "line" if source.uri.endswith((".csv", ".csv.gz")) else "row"
    sets = _TagSets()
    con = _connect()
    statements: dict[pa.Schema, tuple[list, str, str]] = {}
    identified = "identity_line_item_id" in layout.original
    line_items: list[dict] = []  # a 64-bit hash of each row's line item id and time interval
    for batch, rows in source.batches(layout.read, batch_size):
        prepared = _prepare_batch(batch, rows, layout, sets)
        if prepared.schema not in statements:
            s = _Sql(prepared.schema)
            checks = _checks(s, source.context if isinstance(source.context, str) else None)
            statements[prepared.schema] = (checks, _validation_sql(checks), _ledger_sql(s))
        checks, validation, ledger = statements[prepared.schema]
        con.register("cur", prepared)
        firsts = con.sql(validation).fetchall()[0]
        for (_, column, problem), first in zip(checks, firsts, strict=True):
            if first is not None:
                value = con.sql(
                    f"SELECT CAST({column} AS VARCHAR) FROM cur WHERE source_row_number = $row", params={"row": first}
                ).fetchall()[0][0]
                field = layout.original.get(column, column)
                shown = "" if problem == "is empty" else f" = {value!r}"
                raise BadInputError(f"{source.uri} {what} {first}: field {field}{shown} {problem}")
        result = con.sql(ledger, params={"uri": source.uri, "first": first_day, "last": last_day}).to_arrow_table()
        if identified:
            line_items.append(con.sql(LINE_ITEM_HASH_SQL).fetchnumpy())
        con.unregister("cur")
        for ledger_day, rows_of_day in split_by_day(result, wanted):
            for out in rows_of_day.cast(LEDGER_SCHEMA).to_batches():
                if out.num_rows:
                    yield ledger_day, out
    if identified:
        _refuse_duplicate_line_items(source, layout, line_items, what)


def split_by_day(result: pa.Table, wanted: set[date]) -> Iterator[tuple[date, pa.Table]]:
    """The rows of each wanted day, without the ledger_day column."""
    if not result.num_rows:
        return
    days = result.column("ledger_day")
    rows = result.drop_columns(["ledger_day"])
    distinct = pc.unique(days).to_pylist()
    if len(distinct) == 1:
        if distinct[0] in wanted:
            yield distinct[0], rows
        return
    for ledger_day in sorted(d for d in distinct if d in wanted):
        yield ledger_day, rows.filter(pc.equal(days, pa.scalar(ledger_day, pa.date32())))


# AWS: a line item id is unique within one report file for its time interval. The same pair twice
# is the same charge twice, which would be billed twice.
LINE_ITEM_HASH_SQL = """
SELECT hash(CAST(identity_line_item_id AS VARCHAR), CAST(identity_time_interval AS VARCHAR)) AS h,
       CAST(source_row_number AS UINTEGER) AS row
FROM cur WHERE identity_line_item_id IS NOT NULL AND CAST(identity_line_item_id AS VARCHAR) <> ''
"""


def _refuse_duplicate_line_items(source: SourceFile, layout: _Layout, parts: list[dict], what: str) -> None:
    import numpy as np

    if not parts:
        return
    hashes = np.concatenate([p["h"] for p in parts])
    rows = np.concatenate([p["row"] for p in parts])
    order = np.argsort(hashes, kind="stable")
    same = hashes[order][1:] == hashes[order][:-1]
    if not same.any():
        return
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


def empty_ledger() -> pa.Table:
    return LEDGER_SCHEMA.empty_table()


# -- the reconciliation witness ----------------------------------------------------------------------------
WITNESS_COLUMNS = (
    "line_item_usage_start_date",
    "line_item_unblended_cost",
    "bill_billing_period_start_date",
    "bill_billing_period_end_date",
)


def _instants(values: pa.Array, uri: str, field: str, rows: pa.Array, what: str = "row") -> pa.Array:
    if pa.types.is_timestamp(values.type):
        return values if values.type.tz else pc.assume_timezone(values, "UTC")
    text = pc.replace_substring_regex(pc.utf8_trim_whitespace(pc.cast(values, pa.string())), r"Z$", "+00:00")
    try:
        return pc.cast(text, pa.timestamp("us", tz="UTC"))
    except pa.ArrowInvalid:
        pass
    # Not one format Arrow parses in bulk (an offset other than UTC, say): row by row, naming the
    # first value that is no date-time at all.
    parsed = []
    for value, row in zip(values.to_pylist(), rows.to_pylist(), strict=True):
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadInputError(f"{uri} {what} {row}: field {field} = {value!r} is not a date-time") from None
        parsed.append(moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))
    return pa.array(parsed, pa.timestamp("us", tz="UTC"))


def _amounts(values: pa.Array, uri: str, field: str, rows: pa.Array, what: str = "row") -> pa.Array:
    if pa.types.is_floating(values.type) or pa.types.is_integer(values.type) or pa.types.is_decimal(values.type):
        return pc.cast(values, MONEY, safe=False)
    text = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
    try:
        return pc.cast(text, MONEY)
    except pa.ArrowInvalid:
        for value, row in zip(values.to_pylist(), rows.to_pylist(), strict=True):
            try:
                Decimal(value) if value not in (None, "") else None
            except ArithmeticError:
                raise BadInputError(f"{uri} {what} {row}: field {field} = {value!r} is not a number") from None
        raise


def witness_batch(
    columns: list[pa.Array], fields: list[str], uri: str, rows: pa.Array, what: str, totals: dict[str, Decimal]
) -> None:
    """Add one batch's billed cost per ledger day to `totals`, from its raw charge start, cost,
    billing period start and end (named `fields` in the file, for errors): the reconciliation's
    witness, Arrow compute on raw values, sharing nothing with the DuckDB normalisations."""
    conversions = (_instants, _amounts, _instants, _instants)
    start, cost, period_start, period_end = (
        convert(values, uri, field, rows, what)
        for values, field, convert in zip(columns, fields, conversions, strict=True)
    )
    within = pc.and_(pc.greater_equal(start, period_start), pc.less(start, period_end))
    day = pc.cast(pc.if_else(within, start, period_start), pa.date32())
    sums = pa.table({"day": day, "cost": pc.fill_null(cost, pa.scalar(Decimal(0), MONEY))})
    for row in sums.group_by("day").aggregate([("cost", "sum")]).to_pylist():
        key = row["day"].isoformat()
        totals[key] = totals.get(key, Decimal(0)) + row["cost_sum"]


def source_daily_totals(source: SourceFile) -> dict[str, Decimal]:
    """Billed cost per ledger day straight from the export, computed apart from the normalisation
    (`witness_batch` on the four raw columns; the same day rule) so that the reconciliation check is
    an independent witness. Streams like the normalisation."""
    names = {canonical_cur_name(c): c for c in source.schema.names}
    for column in WITNESS_COLUMNS:
        if column not in names:
            raise BadInputError(f"{source.uri}: missing required CUR column {column}")
    fields = [names[c] for c in WITNESS_COLUMNS]
    totals: dict[str, Decimal] = {}
    what = "line" if source.uri.endswith((".csv", ".csv.gz")) else "row"
    for batch, rows in source.batches(fields):
        witness_batch(batch.columns, fields, source.uri, rows, what, totals)
    return totals
