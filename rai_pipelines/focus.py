"""AWS Cost and Usage Report (legacy CSV and CUR 2.0 Parquet) -> FOCUS 1.2 cost ledger rows.

Pure logic: takes an Arrow table as read from one export file and returns the ledger rows of one
day, with FOCUS column names and types, plus the x_ lineage and attribution columns. DuckDB does
the columnar work. Bad values raise BadInputError naming the file, the row and the field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from rai_pipelines.errors import BadInputError

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


@dataclass(frozen=True)
class SourceFile:
    """One export file: where it is and the Arrow table read from it."""

    uri: str
    table: pa.Table
    first_data_line: int = 2  # CSV: line 1 is the header. Parquet: row numbers start at 1.
    kind: str = "aws_cur"  # which normalisation reads it: "aws_cur" or "onprem"
    context: object = None  # what that normalisation needs besides the file (on-prem: the declared rates)
    # CSV only: the physical line of each row, when blank lines or quoted line breaks make it
    # differ from first_data_line + row index.
    row_lines: list[int] | None = None

    def row_numbers(self) -> list[int]:
        if self.row_lines is not None:
            return self.row_lines
        return list(range(self.first_data_line, self.first_data_line + self.table.num_rows))


def _legacy_tag_columns(table: pa.Table) -> list[str]:
    return [c for c in table.column_names if c.startswith("resourceTags/") or c.startswith("resource_tags_")]


def _prepare(source: SourceFile) -> tuple[pa.Table, dict[str, str]]:
    """Rename to CUR 2.0 names, fold tags into one JSON column, add the missing optional columns.
    Returns the table and the mapping canonical name -> name as found in the file (for errors)."""
    table = source.table
    original = {}
    columns, names = [], []
    tag_cols = _legacy_tag_columns(table)
    for name in table.column_names:
        if name in tag_cols or name == "resource_tags":
            continue
        canonical = canonical_cur_name(name)
        if canonical in original:
            continue
        original[canonical] = name
        columns.append(table.column(name))
        names.append(canonical)
    # CUR 2.0 keeps most product attributes in the `product` map (product['product_name'], ...),
    # where the legacy report had product/ProductName columns: look them up when no column has them.
    if "product" in table.column_names and pa.types.is_map(table.column("product").type):
        product = table.column("product")
        for key in PRODUCT_MAP_KEYS:
            canonical = f"product_{key}"
            if canonical not in original:
                columns.append(pc.map_lookup(product, pa.scalar(key), "first"))
                names.append(canonical)
                original[canonical] = f"product['{key}']"
    missing = [c for c in REQUIRED_CUR_COLUMNS if c not in original]
    if missing:
        shown = ", ".join(missing)
        raise BadInputError(f"{source.uri}: missing required CUR column(s) {shown}")
    n = table.num_rows
    for name in OPTIONAL_CUR_COLUMNS:
        if name not in original:
            columns.append(pa.nulls(n, pa.string()))
            names.append(name)
    columns.append(_tags_json(table, tag_cols))
    names.append("tags_json")
    columns.append(pa.array(source.row_numbers(), pa.int64()))
    names.append("source_row_number")
    return pa.Table.from_arrays(columns, names=names), original


def _tags_json(table: pa.Table, tag_cols: list[str]) -> pa.Array:
    """One JSON object per row, from either a CUR 2.0 map column or legacy resourceTags/* columns.
    Tag cardinality is small, so rows share their JSON strings through a dictionary of tag tuples."""
    n = table.num_rows
    if "resource_tags" in table.column_names:
        return _map_tags_json(table.column("resource_tags"))
    if tag_cols:
        keys = [tag_key(c) for c in tag_cols]
        cols = [table.column(c).to_pylist() for c in tag_cols]
        rows = [
            tuple(sorted((k, col[i]) for k, col in zip(keys, cols, strict=False) if col[i] not in (None, "")))
            for i in range(n)
        ]
    else:
        return pa.array(["{}"] * n, pa.string())
    cache: dict[tuple, str] = {}
    out = []
    for row in rows:
        text = cache.get(row)
        if text is None:
            text = cache[row] = json.dumps(dict(row), sort_keys=True)
        out.append(text)
    return pa.array(out, pa.string())


_KEY_SEP, _PAIR_SEP, _NULL = "\x1f", "\x1e", "\x00"


def _map_tags_json(column: pa.ChunkedArray) -> pa.Array:
    """The CUR 2.0 map column as JSON without a Python object per row: each row's raw keys and
    values are joined into one signature string in Arrow, the signatures are dictionary-encoded, and
    only the distinct tag sets (tens of thousands a day, against millions of rows) are normalised and
    serialised in Python."""
    out = []
    for chunk in column.chunks:
        if len(chunk) == 0:
            continue
        if any(pc.any(pc.match_substring_regex(part, "[\x00\x1e\x1f]")).as_py() for part in (chunk.keys, chunk.items)):
            out.append(_map_tags_json_by_row(chunk))  # separators inside tags: the plain, slower way
            continue
        keys = pa.ListArray.from_arrays(chunk.offsets, chunk.keys)
        items = pa.ListArray.from_arrays(chunk.offsets, pc.fill_null(chunk.items, _NULL))
        signature = pc.binary_join_element_wise(
            pc.binary_join(keys, _KEY_SEP), pc.binary_join(items, _KEY_SEP), _PAIR_SEP
        )
        signature = pc.if_else(chunk.is_valid(), signature, pa.scalar(None, pa.string()))
        encoded = pc.dictionary_encode(signature)
        texts = []
        for raw in encoded.dictionary.to_pylist():
            raw_keys, raw_items = raw.split(_PAIR_SEP)
            pairs = zip(raw_keys.split(_KEY_SEP), raw_items.split(_KEY_SEP), strict=True) if raw_keys else []
            row = sorted((tag_key(k), v) for k, v in pairs if v not in (_NULL, ""))
            texts.append(json.dumps(dict(row), sort_keys=True))
        resolved = pa.array(texts, pa.string()).take(encoded.indices)
        out.append(pc.fill_null(resolved, "{}"))
    return pa.concat_arrays(out) if out else pa.array([], pa.string())


def _map_tags_json_by_row(chunk: pa.MapArray) -> pa.Array:
    cache: dict[tuple, str] = {}
    out = []
    for entries in chunk.to_pylist():
        row = tuple(sorted((tag_key(k), v) for k, v in (entries or []) if v not in (None, "")))
        if row not in cache:
            cache[row] = json.dumps(dict(row), sort_keys=True)
        out.append(cache[row])
    return pa.array(out, pa.string())


def _first_bad_value(con, column: str, sql_type: str) -> tuple[int, str] | None:
    row = con.execute(
        f"""SELECT source_row_number, CAST("{column}" AS VARCHAR) FROM cur
            WHERE "{column}" IS NOT NULL AND CAST("{column}" AS VARCHAR) <> ''
              AND TRY_CAST("{column}" AS {sql_type}) IS NULL
            ORDER BY source_row_number LIMIT 1"""
    ).fetchone()
    return (int(row[0]), row[1]) if row else None


def _validate(con, source: SourceFile, original: dict[str, str]) -> None:
    what = "line" if source.uri.endswith((".csv", ".csv.gz")) else "row"
    for column in NUMERIC_CUR_COLUMNS:
        bad = _first_bad_value(con, column, MONEY_SQL)
        if bad:
            raise BadInputError(
                f"{source.uri} {what} {bad[0]}: field {original.get(column, column)} = {bad[1]!r} is not a number"
            )
    for column in TIMESTAMP_CUR_COLUMNS:
        bad = _first_bad_value(con, column, "TIMESTAMPTZ")
        if bad:
            raise BadInputError(
                f"{source.uri} {what} {bad[0]}: field {original.get(column, column)} = {bad[1]!r} is not a date-time"
            )
    for column in (*TIMESTAMP_CUR_COLUMNS, *NON_EMPTY_CUR_COLUMNS):
        empty = con.execute(
            f"""SELECT source_row_number FROM cur WHERE "{column}" IS NULL OR CAST("{column}" AS VARCHAR) = ''
                ORDER BY 1 LIMIT 1"""
        ).fetchone()
        if empty:
            raise BadInputError(f"{source.uri} {what} {empty[0]}: field {original.get(column, column)} is empty")
    currency = con.execute(
        "SELECT source_row_number, line_item_currency_code FROM cur "
        "WHERE NOT regexp_full_match(CAST(line_item_currency_code AS VARCHAR), '[A-Z]{3}') ORDER BY 1 LIMIT 1"
    ).fetchone()
    if currency:
        raise BadInputError(
            f"{source.uri} {what} {currency[0]}: field {original['line_item_currency_code']} = {currency[1]!r} "
            "is not an ISO 4217 currency code"
        )
    unknown = con.execute(
        "SELECT source_row_number, line_item_line_item_type FROM cur "
        f"WHERE line_item_line_item_type NOT IN ({', '.join(repr(k) for k in CHARGE_CATEGORY)}) "
        "OR line_item_line_item_type IS NULL ORDER BY 1 LIMIT 1"
    ).fetchone()
    if unknown:
        raise BadInputError(
            f"{source.uri} {what} {unknown[0]}: field {original['line_item_line_item_type']} = {unknown[1]!r} "
            f"is not a known line item type ({', '.join(sorted(CHARGE_CATEGORY))})"
        )


def _case(column: str, mapping: dict[str, str], default: str = "NULL") -> str:
    whens = " ".join(f"WHEN {column} = '{k}' THEN '{v}'" for k, v in mapping.items())
    return f"CASE {whens} ELSE {default} END"


def _money(column: str) -> str:
    return f"TRY_CAST(NULLIF(CAST({column} AS VARCHAR), '') AS {MONEY_SQL})"


def _text(column: str) -> str:
    return f"NULLIF(CAST({column} AS VARCHAR), '')"


def _tag_lookup(column: str) -> str:
    keys = ATTRIBUTION_TAGS[column]
    return "COALESCE(" + ", ".join(f"json_extract_string(tags_json, '$.\"{k}\"')" for k in keys) + ")"


def _ts(column: str) -> str:
    return f"CAST(TRY_CAST({column} AS TIMESTAMPTZ) AS TIMESTAMPTZ)"


LEDGER_SQL = f"""
SELECT
    {_text("bill_payer_account_id")} AS BillingAccountId,
    {_text("bill_payer_account_name")} AS BillingAccountName,
    {_text("line_item_usage_account_id")} AS SubAccountId,
    {_text("line_item_usage_account_name")} AS SubAccountName,
    {_text("line_item_currency_code")} AS BillingCurrency,
    {_ts("bill_billing_period_start_date")} AS BillingPeriodStart,
    {_ts("bill_billing_period_end_date")} AS BillingPeriodEnd,
    {_ts("line_item_usage_start_date")} AS ChargePeriodStart,
    {_ts("line_item_usage_end_date")} AS ChargePeriodEnd,
    {_case("line_item_line_item_type", CHARGE_CATEGORY)} AS ChargeCategory,
    CAST(NULL AS VARCHAR) AS ChargeClass,
    {_case("line_item_line_item_type", CHARGE_FREQUENCY, "'Usage-Based'")} AS ChargeFrequency,
    {_text("line_item_line_item_description")} AS ChargeDescription,
    COALESCE({_money("line_item_unblended_cost")}, 0) AS BilledCost,
    COALESCE(CASE line_item_line_item_type
        WHEN 'SavingsPlanCoveredUsage' THEN {_money("savings_plan_savings_plan_effective_cost")}
        WHEN 'DiscountedUsage' THEN {_money("reservation_effective_cost")}
        WHEN 'SavingsPlanNegation' THEN 0
        WHEN 'SavingsPlanUpfrontFee' THEN 0
        WHEN 'Fee' THEN CASE WHEN {_text("reservation_reservation_a_r_n")} IS NOT NULL THEN 0
                             ELSE {_money("line_item_unblended_cost")} END
        WHEN 'SavingsPlanRecurringFee' THEN
            {_money("savings_plan_total_commitment_to_date")} - {_money("savings_plan_used_commitment")}
        WHEN 'RIFee' THEN COALESCE({_money("reservation_unused_amortized_upfront_fee_for_billing_period")}, 0)
            + COALESCE({_money("reservation_unused_recurring_fee")}, 0)
        ELSE {_money("line_item_unblended_cost")} END, 0) AS EffectiveCost,
    COALESCE({_money("pricing_public_on_demand_cost")}, {_money("line_item_unblended_cost")}, 0) AS ListCost,
    COALESCE({_money("line_item_net_unblended_cost")}, {_money("line_item_unblended_cost")}, 0) AS ContractedCost,
    -- FOCUS: no pricing quantity, unit or unit prices on tax rows.
    CASE WHEN line_item_line_item_type <> 'Tax' THEN {_money("pricing_public_on_demand_rate")} END AS ListUnitPrice,
    CASE WHEN line_item_line_item_type <> 'Tax' THEN {_money("line_item_unblended_rate")} END AS ContractedUnitPrice,
    CASE WHEN line_item_line_item_type <> 'Tax' THEN {_money("line_item_usage_amount")} END AS PricingQuantity,
    CASE WHEN line_item_line_item_type <> 'Tax' THEN {_text("pricing_unit")} END AS PricingUnit,
    CASE WHEN line_item_line_item_type IN ('SavingsPlanCoveredUsage', 'DiscountedUsage') THEN 'Committed'
         WHEN line_item_line_item_type IN ('Usage') THEN {_case("pricing_term", PRICING_CATEGORY, "'Standard'")}
         ELSE NULL END AS PricingCategory,
    CASE WHEN line_item_line_item_type IN ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage')
         THEN {_money("line_item_usage_amount")} END AS ConsumedQuantity,
    CASE WHEN line_item_line_item_type IN ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage')
         THEN {_text("pricing_unit")} END AS ConsumedUnit,
    'AWS' AS ProviderName,
    COALESCE({_text("bill_billing_entity")}, 'AWS') AS PublisherName,
    COALESCE({_text("bill_invoicing_entity")}, 'Amazon Web Services, Inc.') AS InvoiceIssuerName,
    {_text("bill_invoice_id")} AS InvoiceId,
    COALESCE({_text("product_product_name")}, {_text("product_servicecode")},
             {_text("line_item_product_code")}) AS ServiceName,
    {_case("line_item_product_code", SERVICE_CATEGORY, "'Other'")} AS ServiceCategory,
    {_text("product_region_code")} AS RegionId,
    {_text("product_location")} AS RegionName,
    {_text("line_item_availability_zone")} AS AvailabilityZone,
    {_text("line_item_resource_id")} AS ResourceId,
    CAST(NULL AS VARCHAR) AS ResourceName,  -- CUR carries no resource display names
    CAST(NULL AS VARCHAR) AS ResourceType,
    {_text("product_sku")} AS SkuId,
    {_text("pricing_rate_id")} AS SkuPriceId,
    COALESCE({_text("savings_plan_savings_plan_a_r_n")},
             {_text("reservation_reservation_a_r_n")}) AS CommitmentDiscountId,
    CASE WHEN {_text("savings_plan_savings_plan_a_r_n")} IS NOT NULL THEN 'Spend'
         WHEN {_text("reservation_reservation_a_r_n")} IS NOT NULL THEN 'Usage' END AS CommitmentDiscountCategory,
    CAST(NULL AS VARCHAR) AS CommitmentDiscountName,
    CASE WHEN COALESCE({_text("savings_plan_savings_plan_a_r_n")}, {_text("reservation_reservation_a_r_n")})
              IS NOT NULL AND {_case("line_item_line_item_type", CHARGE_CATEGORY)} = 'Usage'
         THEN 'Used' END AS CommitmentDiscountStatus,
    CASE WHEN {_text("savings_plan_savings_plan_a_r_n")} IS NOT NULL THEN 'Savings Plan'
         WHEN {_text("reservation_reservation_a_r_n")} IS NOT NULL THEN 'Reserved Instance' END
         AS CommitmentDiscountType,
    tags_json AS Tags,
    'aws' AS x_SourceProvider,
    $uri AS x_SourceUri,
    source_row_number AS x_SourceRowNumber,
    sha256($uri || ':' || CAST(source_row_number AS VARCHAR)
           || ':' || COALESCE(CAST(identity_line_item_id AS VARCHAR), '')
           || ':' || CAST(line_item_unblended_cost AS VARCHAR)) AS x_SourceRowHash,
    line_item_line_item_type AS x_LineItemType,
    {_tag_lookup("x_Workload")} AS x_Workload,
    {_tag_lookup("x_ModelName")} AS x_ModelName,
    {_tag_lookup("x_ModelVersion")} AS x_ModelVersion,
    {_tag_lookup("x_Team")} AS x_Team,
    {_tag_lookup("x_Environment")} AS x_Environment
FROM cur
WHERE (CASE
        WHEN {_ts("line_item_usage_start_date")} >= {_ts("bill_billing_period_start_date")}
         AND {_ts("line_item_usage_start_date")} < {_ts("bill_billing_period_end_date")}
        THEN CAST({_ts("line_item_usage_start_date")} AS DATE)
        ELSE CAST({_ts("bill_billing_period_start_date")} AS DATE)
    END) = CAST($day AS DATE)
ORDER BY source_row_number
"""


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def cur_to_focus(source: SourceFile, day: date) -> pa.Table:
    """The FOCUS ledger rows of `day` (by the UTC date of ChargePeriodStart) in one CUR file.

    A charge belongs to the day its charge period starts on; the month-long tax lines AWS writes
    at the start of the billing period therefore land on its first day, as they do in AWS's own
    FOCUS export. A charge whose period starts outside the file's billing period (a credit or a
    correction for an earlier month) lands on the billing period's first day, so nothing in the
    file is left out of every partition.
    """
    table, original = _prepare(source)
    con = _connect()
    con.register("cur", table)
    _validate(con, source, original)
    result = con.sql(LEDGER_SQL, params={"uri": source.uri, "day": day.isoformat()}).to_arrow_table()
    return result.cast(LEDGER_SCHEMA)


def empty_ledger() -> pa.Table:
    return LEDGER_SCHEMA.empty_table()


def _utc_instant(value) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value).strip().replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def source_daily_totals(source: SourceFile) -> dict[str, Decimal]:
    """Billed cost per ledger day straight from the export, computed apart from `cur_to_focus` (plain
    Decimal arithmetic on the raw values, the same day rule) so that the reconciliation check is an
    independent witness."""
    table = source.table
    names = {canonical_cur_name(c): c for c in table.column_names}
    needed = (
        "line_item_usage_start_date",
        "line_item_unblended_cost",
        "bill_billing_period_start_date",
        "bill_billing_period_end_date",
    )
    for column in needed:
        if column not in names:
            raise BadInputError(f"{source.uri}: missing required CUR column {column}")
    starts, costs, period_starts, period_ends = (table.column(names[c]).to_pylist() for c in needed[:2] + needed[2:])
    totals: dict[str, Decimal] = {}
    lines = source.row_numbers()
    for i, (start, cost, period_start, period_end) in enumerate(
        zip(starts, costs, period_starts, period_ends, strict=True)
    ):
        try:
            charge_start, bp_start, bp_end = (_utc_instant(v) for v in (start, period_start, period_end))
            amount = Decimal(str(cost)) if cost not in (None, "") else Decimal(0)
        except (ArithmeticError, ValueError) as exc:
            raise BadInputError(f"{source.uri} row {lines[i]}: unreadable date or cost ({exc})") from exc
        day = charge_start if bp_start <= charge_start < bp_end else bp_start
        key = day.astimezone(timezone.utc).date().isoformat()
        totals[key] = totals.get(key, Decimal(0)) + amount
    return totals
