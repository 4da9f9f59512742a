"""FOCUS conformance of a cost-ledger partition, as a Great Expectations suite: the mandatory
columns FOCUS 1.2 asks of every row are present and filled, the columns with allowed values hold
only those, currencies are ISO 4217 codes, charge periods end after they start, timestamps are UTC,
and every column that is not FOCUS's own carries the x_ prefix."""

from __future__ import annotations

import pyarrow as pa

from rai_pipelines.data_quality import Finding, SuiteResult, run_suite

# FOCUS 1.2 column names this ledger emits; anything else must be prefixed x_.
FOCUS_COLUMNS = {
    "BillingAccountId", "BillingAccountName", "SubAccountId", "SubAccountName", "BillingCurrency",
    "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory",
    "ChargeClass", "ChargeFrequency", "ChargeDescription", "BilledCost", "EffectiveCost", "ListCost",
    "ContractedCost", "ListUnitPrice", "ContractedUnitPrice", "PricingQuantity", "PricingUnit", "PricingCategory",
    "ConsumedQuantity", "ConsumedUnit", "ProviderName", "PublisherName", "InvoiceIssuerName", "InvoiceId",
    "ServiceName", "ServiceCategory", "RegionId", "RegionName", "AvailabilityZone", "ResourceId", "ResourceName",
    "ResourceType", "SkuId", "SkuPriceId", "CommitmentDiscountId", "CommitmentDiscountCategory",
    "CommitmentDiscountName", "CommitmentDiscountStatus", "CommitmentDiscountType", "Tags",
}  # fmt: skip
NOT_NULL = [
    "BillingAccountId", "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart",
    "ChargePeriodEnd", "ChargeCategory", "BilledCost", "EffectiveCost", "ListCost", "ContractedCost",
    "ProviderName", "PublisherName", "InvoiceIssuerName", "ServiceCategory",
]  # fmt: skip
ALLOWED = {
    "ChargeCategory": ["Usage", "Purchase", "Tax", "Credit", "Adjustment"],
    "ChargeClass": ["Correction"],
    "ChargeFrequency": ["One-Time", "Recurring", "Usage-Based"],
    "PricingCategory": ["Standard", "Dynamic", "Committed", "Other"],
    "CommitmentDiscountCategory": ["Spend", "Usage"],
    "CommitmentDiscountStatus": ["Used", "Unused"],
    "ServiceCategory": [
        "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases", "Developer Tools",
        "Multicloud", "Identity", "Integration", "Internet of Things", "Management and Governance", "Media",
        "Migration", "Mobile", "Networking", "Security", "Storage", "Web", "Other",
    ],
}  # fmt: skip
TIMESTAMPS = ["BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"]


def _schema_findings(schema: pa.Schema) -> list[Finding]:
    findings = [
        Finding("focus_custom_column_prefix", name, "not a FOCUS column and not prefixed x_")
        for name in schema.names
        if name not in FOCUS_COLUMNS and not name.startswith("x_")
    ]
    for name in TIMESTAMPS:
        if name in schema.names:
            kind = schema.field(name).type
            if not pa.types.is_timestamp(kind) or kind.tz not in ("UTC", "+00:00"):
                findings.append(Finding("focus_utc_timestamp", name, f"type {kind}, expected a UTC timestamp"))
    return findings


def validate_ledger(ledger: pa.Table) -> SuiteResult:
    import great_expectations as gx

    e = gx.expectations
    expectations = [e.ExpectColumnToExist(column=c) for c in sorted(set(NOT_NULL) | set(ALLOWED))]
    expectations += [e.ExpectColumnValuesToNotBeNull(column=c) for c in NOT_NULL]
    expectations += [
        e.ExpectColumnValuesToBeInSet(column=c, value_set=v, meta={"allowed": f"FOCUS 1.2's allowed values for {c}"})
        for c, v in ALLOWED.items()
    ]
    expectations.append(e.ExpectColumnValuesToMatchRegex(column="BillingCurrency", regex=r"^[A-Z]{3}$"))
    for start, end in (("ChargePeriodStart", "ChargePeriodEnd"), ("BillingPeriodStart", "BillingPeriodEnd")):
        expectations.append(
            e.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=end, column_B=start, or_equal=True, ignore_row_if="either_value_is_missing"
            )
        )
    frame = ledger.to_pandas()
    result = run_suite(frame, "cost_ledger.focus_conformance", expectations)
    schema = _schema_findings(ledger.schema)
    return SuiteResult(result.suite, result.evaluated + len(TIMESTAMPS) + 1, result.findings + schema)
