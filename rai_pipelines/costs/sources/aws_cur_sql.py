"""The CUR -> FOCUS mapping as DuckDB SQL: column names, the value mappings AWS documents for its
own FOCUS export, the checks of bad values, and the SELECT that builds the ledger rows."""

from __future__ import annotations

import re

import pyarrow as pa

from rai_pipelines.costs.ledger_schema import (
    FOCUS_EXPORT_ONLY,
    LEDGER_SCHEMA,
    MONEY_SQL,
    TOO_PRECISE,
    too_precise_sql,
)

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


# CUR product code -> (FOCUS ServiceCategory, ServiceSubcategory); other codes are "Other".
SERVICES = {
    "AmazonEC2": ("Compute", "Virtual Machines"),
    "AWSLambda": ("Compute", "Serverless Compute"),
    "AmazonECS": ("Compute", "Containers"),
    "AmazonEKS": ("Compute", "Containers"),
    "AmazonSageMaker": ("AI and Machine Learning", "Machine Learning"),
    "AmazonBedrock": ("AI and Machine Learning", "Generative AI"),
    "AmazonS3": ("Storage", "Object Storage"),
    "AmazonEFS": ("Storage", "File Storage"),
    "AmazonEBS": ("Storage", "Block Storage"),
    "AWSGlue": ("Analytics", "Data Processing"),
    "AmazonAthena": ("Analytics", "Analytics Platforms"),
    "AWSQueueService": ("Integration", "Messaging"),
    "AmazonSNS": ("Integration", "Messaging"),
    "AmazonStates": ("Integration", "Workflow Orchestration"),
    "AmazonCloudWatch": ("Management and Governance", "Observability"),
    "AWSCloudTrail": ("Management and Governance", "Compliance"),
    "awskms": ("Security", "Secret Management"),
    "AWSSecretsManager": ("Security", "Secret Management"),
    "AWSCloudShell": ("Developer Tools", "Development Environments"),
    "AWSDataTransfer": ("Networking", "Network Connectivity"),
    "AWSIoT": ("Internet of Things", "IoT Platforms"),
    "AWSMigrationHubRefactorSpaces": ("Migration", "Resource Migration"),
}
SERVICE_CATEGORY = {code: category for code, (category, _) in SERVICES.items()}
SERVICE_SUBCATEGORY = {code: subcategory for code, (_, subcategory) in SERVICES.items()}


def focus_unit_sql(unit: str) -> str:
    """DuckDB: AWS's pricing unit written in FOCUS's UnitFormat, which spells time units out:
    `Hrs` is `Hours`, `GB-Mo` is `GB-Months`, `Obj-Month` is `Obj-Months`; other units as they are."""
    return (
        f"regexp_replace(regexp_replace(regexp_replace(regexp_replace({unit}, "
        "'^Hrs$', 'Hours'), '^Hr$', 'Hour'), '-(Mo|Mos|Month)$', '-Months'), '-(Hrs|Hr|Hour)$', '-Hours')"
    )


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)


class CurSql:
    """SQL fragments for one batch schema: a typed column is used as it is, a text column (CSV, or
    a Parquet file that stores numbers as text) is parsed, with its bad values reported first."""

    def __init__(self, schema: pa.Schema):
        self.types = {f.name: f.type for f in schema}

    def text(self, column: str) -> str:
        return f"NULLIF({column}, '')" if _is_text(self.types[column]) else f"CAST({column} AS VARCHAR)"

    def money(self, column: str) -> str:
        if _is_text(self.types[column]):
            return f"TRY_CAST(NULLIF({column}, '') AS {MONEY_SQL})"
        if pa.types.is_floating(self.types[column]):
            # the shortest decimal that gives the double back, as the witness reads it
            return f"CAST(CAST({column} AS VARCHAR) AS {MONEY_SQL})"
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

    def too_precise(self, column: str) -> str:
        if _is_text(self.types[column]):
            return f"{column} IS NOT NULL AND {column} <> '' AND {too_precise_sql(column)}"
        return "false"

    def bad_timestamp(self, column: str) -> str:
        if _is_text(self.types[column]):
            return f"{column} IS NOT NULL AND {column} <> '' AND TRY_CAST({column} AS TIMESTAMPTZ) IS NULL"
        return "false"

    def empty(self, column: str) -> str:
        return f"{column} IS NULL OR {column} = ''" if _is_text(self.types[column]) else f"{column} IS NULL"


def _nulls_for_focus_export_only() -> str:
    """The FOCUS columns a CUR has no source for, empty."""
    kinds = {f.name: f.type for f in LEDGER_SCHEMA}
    return ",\n    ".join(
        f"CAST(NULL AS {'VARCHAR' if pa.types.is_string(kinds[c]) else 'DECIMAL(38,12)'}) AS {c}"
        for c in FOCUS_EXPORT_ONLY
    )


def _case(column: str, mapping: dict[str, str], default: str = "NULL") -> str:
    whens = " ".join(f"WHEN {column} = '{k}' THEN '{v}'" for k, v in mapping.items())
    return f"CASE {whens} ELSE {default} END"


def cur_checks(s: CurSql, account: str | None) -> list[tuple[str, str, str]]:
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
    checks += [(s.too_precise(c), c, TOO_PRECISE) for c in NUMERIC_CUR_COLUMNS]
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


def cur_ledger_sql(s: CurSql) -> str:
    item_type = "line_item_line_item_type"
    credit_types = ", ".join(f"'{t}'" for t, category in CHARGE_CATEGORY.items() if category == "Credit")
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
    -- FOCUS: a charge for a period before its billing period corrects an earlier billing period
    CASE WHEN {usage_start} < {period_start} THEN 'Correction' END AS ChargeClass,
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
    -- AWS writes credits and discounts with a usage amount of 0 and no pricing unit: no quantity then.
    CASE WHEN {item_type} <> 'Tax' AND ({s.text("pricing_unit")} IS NOT NULL OR {item_type} NOT IN ({credit_types}))
         THEN {s.money("line_item_usage_amount")} END AS PricingQuantity,
    CASE WHEN {item_type} <> 'Tax' THEN {focus_unit_sql(s.text("pricing_unit"))} END AS PricingUnit,
    CASE WHEN {item_type} IN ('SavingsPlanCoveredUsage', 'DiscountedUsage') THEN 'Committed'
         WHEN {item_type} IN ('Usage') THEN {_case("pricing_term", PRICING_CATEGORY, "'Standard'")}
         ELSE NULL END AS PricingCategory,
    CASE WHEN {item_type} IN ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage')
         THEN {s.money("line_item_usage_amount")} END AS ConsumedQuantity,
    CASE WHEN {item_type} IN ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage')
         THEN {focus_unit_sql(s.text("pricing_unit"))} END AS ConsumedUnit,
    'AWS' AS ProviderName,
    COALESCE({s.text("bill_billing_entity")}, 'AWS') AS PublisherName,
    COALESCE({s.text("bill_invoicing_entity")}, 'Amazon Web Services, Inc.') AS InvoiceIssuerName,
    {s.text("bill_invoice_id")} AS InvoiceId,
    COALESCE({s.text("product_product_name")}, {s.text("product_servicecode")},
             {s.text("line_item_product_code")}) AS ServiceName,
    {_case("line_item_product_code", SERVICE_CATEGORY, "'Other'")} AS ServiceCategory,
    {_case("line_item_product_code", SERVICE_SUBCATEGORY, "'Other (Other)'")} AS ServiceSubcategory,
    {s.text("product_region_code")} AS RegionId,
    -- FOCUS: no region name without a region id (CUR writes "Any" for global services)
    CASE WHEN {s.text("product_region_code")} IS NOT NULL THEN {s.text("product_location")} END AS RegionName,
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
    {_nulls_for_focus_export_only()},
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
    CAST(NULL AS VARCHAR) AS x_ProviderColumns,
    (CASE WHEN {usage_start} >= {period_start} AND {usage_start} < {s.ts("bill_billing_period_end_date")}
          THEN CAST({usage_start} AS DATE) ELSE CAST({period_start} AS DATE) END) AS ledger_day
FROM cur
WHERE ledger_day BETWEEN CAST($first AS DATE) AND CAST($last AS DATE)
"""


# AWS: a line item id is unique within one report file for its time interval. The same pair twice
# is the same charge twice, which would be billed twice.
LINE_ITEM_HASH_SQL = """
SELECT hash(CAST(identity_line_item_id AS VARCHAR), CAST(identity_time_interval AS VARCHAR)) AS h,
       CAST(source_row_number AS UINTEGER) AS row
FROM cur WHERE identity_line_item_id IS NOT NULL AND CAST(identity_line_item_id AS VARCHAR) <> ''
"""


def canonical_cur_name(name: str) -> str:
    """Legacy CUR column name -> CUR 2.0 column name ("lineItem/UsageStartDate" -> "line_item_usage_start_date")."""
    if "/" not in name:
        return name
    category, field = name.split("/", 1)
    category = re.sub(r"(?<!^)(?=[A-Z])", "_", category).lower()
    field = re.sub(r"(?<!^)(?=[A-Z])", "_", field).lower()
    return f"{category}_{field}"
