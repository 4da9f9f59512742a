"""The CUR -> FOCUS mapping as DuckDB SQL: column names, the value mappings AWS documents for its
own FOCUS export, the checks of bad values, and the SELECT that builds the ledger rows."""

from __future__ import annotations

import re
from dataclasses import dataclass

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


# The amounts the ledger reads on every row: where the file holds them as doubles, each one's
# shortest text is made once per batch by Arrow (column name + SHORTEST_TEXT) instead of once per use
# in the SQL (the validation still reads the double itself).
EVERY_ROW_AMOUNTS = (
    "line_item_unblended_cost",
    "line_item_usage_amount",
    "line_item_net_unblended_cost",
    "line_item_unblended_rate",
    "pricing_public_on_demand_cost",
    "pricing_public_on_demand_rate",
)
SHORTEST_TEXT = "__shortest_text"


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


_AWS_UNIT_SPELLINGS = (
    (re.compile(r"^Hrs$"), "Hours"),
    (re.compile(r"^Hr$"), "Hour"),
    (re.compile(r"-(Mo|Mos|Month)$"), "-Months"),
    (re.compile(r"-(Hrs|Hr|Hour)$"), "-Hours"),
)


def focus_unit(unit: str) -> str:
    """AWS's pricing unit written in FOCUS's UnitFormat, which spells time units out: `Hrs` is
    `Hours`, `GB-Mo` is `GB-Months`, `Obj-Month` is `Obj-Months`; other units as they are."""
    for pattern, spelling in _AWS_UNIT_SPELLINGS:
        unit = pattern.sub(spelling, unit)
    return unit


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)


class CurSql:
    """SQL fragments for one batch schema: a typed column is used as it is, a text column (CSV, or
    a Parquet file that stores numbers as text) is parsed, with its bad values reported first."""

    def __init__(self, schema: pa.Schema):
        self.types = {f.name: f.type for f in schema}

    def is_text(self, column: str) -> bool:
        return _is_text(self.types[column])

    def is_utc_timestamp(self, column: str) -> bool:
        kind = self.types[column]
        return pa.types.is_timestamp(kind) and kind.tz is not None

    def text(self, column: str) -> str:
        return f"NULLIF({column}, '')" if _is_text(self.types[column]) else f"CAST({column} AS VARCHAR)"

    def money(self, column: str) -> str:
        if _is_text(self.types[column]):
            return f"TRY_CAST(NULLIF({column}, '') AS {MONEY_SQL})"
        if pa.types.is_floating(self.types[column]):
            # the shortest decimal that gives the double back, as the witness reads it; for the costs
            # every row uses, that text is made once by Arrow beside the column (see SHORTEST_TEXT)
            if f"{column}{SHORTEST_TEXT}" in self.types:
                return f"CAST({column}{SHORTEST_TEXT} AS {MONEY_SQL})"
            return f"CAST(CAST({column} AS VARCHAR) AS {MONEY_SQL})"
        return f"CAST({column} AS {MONEY_SQL})"

    def ts(self, column: str) -> str:
        if self.is_utc_timestamp(column):
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


# Ledger columns that are a CUR column as it is (a text column's empty values become null): Arrow
# hands them over without a copy, where DuckDB would convert every string in and out again.
COPIED_TEXT = {
    "BillingAccountId": "bill_payer_account_id",
    "BillingAccountName": "bill_payer_account_name",
    "SubAccountId": "line_item_usage_account_id",
    "SubAccountName": "line_item_usage_account_name",
    "BillingCurrency": "line_item_currency_code",
    "ChargeDescription": "line_item_line_item_description",
    "InvoiceId": "bill_invoice_id",
    "RegionId": "product_region_code",
    "AvailabilityZone": "line_item_availability_zone",
    "ResourceId": "line_item_resource_id",
    "SkuId": "product_sku",
    "SkuPriceId": "pricing_rate_id",
}
COPIED_TIMESTAMPS = {
    "BillingPeriodStart": "bill_billing_period_start_date",
    "BillingPeriodEnd": "bill_billing_period_end_date",
    "ChargePeriodStart": "line_item_usage_start_date",
    "ChargePeriodEnd": "line_item_usage_end_date",
}
# Columns of the prepared batch (see aws_cur._prepare_batch) taken as they are.
COPIED_PREPARED = {
    "Tags": "tags_json",
    "x_SourceRowNumber": "source_row_number",
    "x_LineItemType": "line_item_line_item_type",
    "x_Workload": "tag_x_Workload",
    "x_ModelName": "tag_x_ModelName",
    "x_ModelVersion": "tag_x_ModelVersion",
    "x_Team": "tag_x_Team",
    "x_Environment": "tag_x_Environment",
}
# The same value on every row: FOCUS columns a CUR has no source for are null.
CONSTANT = {
    "ProviderName": "AWS",
    "x_SourceProvider": "aws",
    **dict.fromkeys(("ResourceName", "ResourceType", "CommitmentDiscountName", "x_ProviderColumns")),
    **dict.fromkeys(FOCUS_EXPORT_ONLY),
}


@dataclass(frozen=True)
class CurLedger:
    """How one batch schema becomes ledger rows: `sql` computes the derived columns (and each row's
    `ledger_day` and `batch_position`); `copied` names the ledger columns taken from the batch as they
    are, `text_copied` those among them whose empty values become null; `constant` the rest but for
    x_SourceUri, the file's own URI."""

    sql: str
    copied: dict[str, str]
    text_copied: frozenset[str]
    constant: dict[str, str | None]


def cur_ledger(s: CurSql) -> CurLedger:
    item_type = "line_item_line_item_type"
    credit_types = ", ".join(f"'{t}'" for t, category in CHARGE_CATEGORY.items() if category == "Credit")
    sp_arn, ri_arn = s.text("savings_plan_savings_plan_a_r_n"), s.text("reservation_reservation_a_r_n")
    unblended = s.money("line_item_unblended_cost")
    usage_start, period_start = s.ts("line_item_usage_start_date"), s.ts("bill_billing_period_start_date")
    marketplace_seller = (
        f"CASE WHEN {s.text('bill_billing_entity')} = 'AWS Marketplace' "
        f"THEN COALESCE({s.text('line_item_legal_entity')}, 'AWS Marketplace') ELSE 'AWS' END"
    )
    computed = {
        **{name: s.text(column) for name, column in COPIED_TEXT.items() if not s.is_text(column)},
        **{name: s.ts(column) for name, column in COPIED_TIMESTAMPS.items() if not s.is_utc_timestamp(column)},
        "ChargeCategory": _case(item_type, CHARGE_CATEGORY),
        # FOCUS: a charge for a period before its billing period corrects an earlier billing period
        "ChargeClass": f"CASE WHEN {usage_start} < {period_start} THEN 'Correction' END",
        "ChargeFrequency": _case(item_type, CHARGE_FREQUENCY, "'Usage-Based'"),
        "BilledCost": f"COALESCE({unblended}, 0)",
        "EffectiveCost": f"""COALESCE(CASE {item_type}
        WHEN 'SavingsPlanCoveredUsage' THEN {s.money("savings_plan_savings_plan_effective_cost")}
        WHEN 'DiscountedUsage' THEN {s.money("reservation_effective_cost")}
        WHEN 'SavingsPlanNegation' THEN 0
        WHEN 'SavingsPlanUpfrontFee' THEN 0
        WHEN 'Fee' THEN CASE WHEN {ri_arn} IS NOT NULL THEN 0 ELSE {unblended} END
        WHEN 'SavingsPlanRecurringFee' THEN
            {s.money("savings_plan_total_commitment_to_date")} - {s.money("savings_plan_used_commitment")}
        WHEN 'RIFee' THEN COALESCE({s.money("reservation_unused_amortized_upfront_fee_for_billing_period")}, 0)
            + COALESCE({s.money("reservation_unused_recurring_fee")}, 0)
        ELSE {unblended} END, 0)""",
        "ListCost": f"COALESCE({s.money('pricing_public_on_demand_cost')}, {unblended}, 0)",
        "ContractedCost": f"COALESCE({s.money('line_item_net_unblended_cost')}, {unblended}, 0)",
        # FOCUS: no pricing quantity, unit or unit prices on tax rows.
        "ListUnitPrice": f"CASE WHEN {item_type} <> 'Tax' THEN {s.money('pricing_public_on_demand_rate')} END",
        "ContractedUnitPrice": f"CASE WHEN {item_type} <> 'Tax' THEN {s.money('line_item_unblended_rate')} END",
        # AWS writes credits and discounts with a usage amount of 0 and no pricing unit: no quantity then.
        "PricingQuantity": f"""CASE WHEN {item_type} <> 'Tax'
             AND ({s.text("pricing_unit")} IS NOT NULL OR {item_type} NOT IN ({credit_types}))
             THEN {s.money("line_item_usage_amount")} END""",
        "PricingUnit": f"CASE WHEN {item_type} <> 'Tax' THEN focus_pricing_unit END",
        "PricingCategory": f"""CASE WHEN {item_type} IN ('SavingsPlanCoveredUsage', 'DiscountedUsage') THEN 'Committed'
             WHEN {item_type} IN ('Usage') THEN {_case("pricing_term", PRICING_CATEGORY, "'Standard'")}
             ELSE NULL END""",
        "ConsumedQuantity": f"""CASE WHEN {item_type} IN ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage')
             THEN {s.money("line_item_usage_amount")} END""",
        "ConsumedUnit": f"""CASE WHEN {item_type} IN ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage')
             THEN focus_pricing_unit END""",
        "PublisherName": f"COALESCE({s.text('bill_billing_entity')}, 'AWS')",
        # FOCUS 1.3: a Marketplace charge is the seller's service (the line item's legal entity), hosted
        # where the seller does not say; every other charge is AWS's own service on AWS.
        "ServiceProviderName": marketplace_seller,
        "HostProviderName": marketplace_seller,
        "InvoiceIssuerName": f"COALESCE({s.text('bill_invoicing_entity')}, 'Amazon Web Services, Inc.')",
        "ServiceName": f"""COALESCE({s.text("product_product_name")}, {s.text("product_servicecode")},
             {s.text("line_item_product_code")})""",
        "ServiceCategory": _case("line_item_product_code", SERVICE_CATEGORY, "'Other'"),
        "ServiceSubcategory": _case("line_item_product_code", SERVICE_SUBCATEGORY, "'Other (Other)'"),
        # FOCUS: no region name without a region id (CUR writes "Any" for global services)
        "RegionName": f"CASE WHEN {s.text('product_region_code')} IS NOT NULL THEN {s.text('product_location')} END",
        "CommitmentDiscountId": f"COALESCE({sp_arn}, {ri_arn})",
        "CommitmentDiscountCategory": (
            f"CASE WHEN {sp_arn} IS NOT NULL THEN 'Spend' WHEN {ri_arn} IS NOT NULL THEN 'Usage' END"
        ),
        "CommitmentDiscountStatus": f"""CASE WHEN COALESCE({sp_arn}, {ri_arn}) IS NOT NULL
             AND {_case(item_type, CHARGE_CATEGORY)} = 'Usage' THEN 'Used' END""",
        "CommitmentDiscountType": (
            f"CASE WHEN {sp_arn} IS NOT NULL THEN 'Savings Plan' WHEN {ri_arn} IS NOT NULL THEN 'Reserved Instance' END"
        ),
        "x_SourceRowHash": """md5($uri || ':' || CAST(source_row_number AS VARCHAR)
             || ':' || COALESCE(CAST(identity_line_item_id AS VARCHAR), '')
             || ':' || CAST(line_item_unblended_cost AS VARCHAR))""",
        "ledger_day": f"""CASE WHEN {usage_start} >= {period_start}
             AND {usage_start} < {s.ts("bill_billing_period_end_date")}
             THEN CAST({usage_start} AS DATE) ELSE CAST({period_start} AS DATE) END""",
        "batch_position": "batch_position",
    }
    text_copied = {name: column for name, column in COPIED_TEXT.items() if name not in computed}
    copied = {
        **text_copied,
        **{name: column for name, column in COPIED_TIMESTAMPS.items() if name not in computed},
        **COPIED_PREPARED,
    }
    unplaced = set(LEDGER_SCHEMA.names) - set(computed) - set(copied) - set(CONSTANT) - {"x_SourceUri"}
    assert not unplaced, f"ledger columns the CUR mapping does not place: {sorted(unplaced)}"
    select = ",\n    ".join(f"{expression} AS {name}" for name, expression in computed.items())
    sql = f"SELECT\n    {select}\nFROM cur\nWHERE ledger_day BETWEEN CAST($first AS DATE) AND CAST($last AS DATE)"
    return CurLedger(sql, copied, frozenset(text_copied), CONSTANT)


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
