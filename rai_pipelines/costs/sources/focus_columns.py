"""The FOCUS columns a FOCUS-native export is read by: their kinds, which must be there and filled,
and the values FOCUS allows (focus_export.py normalises the exports with them)."""

from __future__ import annotations

from rai_pipelines.costs.ledger_schema import SUBCATEGORY_PARENT

STRING_COLUMNS = (
    "BillingAccountId", "BillingAccountName", "SubAccountId", "SubAccountName", "BillingCurrency",
    "ChargeCategory", "ChargeClass", "ChargeFrequency", "ChargeDescription", "PricingUnit", "PricingCategory",
    "ConsumedUnit", "ProviderName", "PublisherName", "InvoiceIssuerName", "InvoiceId", "ServiceName",
    "ServiceCategory", "ServiceSubcategory", "RegionId", "RegionName", "AvailabilityZone", "ResourceId",
    "ResourceName", "ResourceType", "SkuId", "SkuPriceId", "CommitmentDiscountId", "CommitmentDiscountCategory",
    "CommitmentDiscountName", "CommitmentDiscountStatus", "CommitmentDiscountType", "CommitmentDiscountUnit",
    "BillingAccountType", "SubAccountType", "CapacityReservationId", "CapacityReservationStatus", "PricingCurrency",
    "SkuMeter", "ServiceProviderName", "HostProviderName", "AllocatedMethodId", "AllocatedResourceId",
    "AllocatedResourceName",
)  # fmt: skip
# JSON-valued FOCUS columns: kept as JSON text whatever the file's type for them (text, struct, map)
JSON_COLUMNS = ("SkuPriceDetails", "ContractApplied", "AllocatedMethodDetails", "AllocatedTags")
TIMESTAMP_COLUMNS = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")
DECIMAL_COLUMNS = (
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice", "ContractedUnitPrice",
    "PricingQuantity", "ConsumedQuantity", "CommitmentDiscountQuantity", "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice",
)  # fmt: skip
# A FOCUS 1.3 export may leave out ProviderName, which 1.3 deprecates for ServiceProviderName.
DEFAULT_CANDIDATES = {"ProviderName": ("ProviderName", "ServiceProviderName")}
# Without these a row cannot be put in the ledger: the file is refused when one is missing.
MANDATORY_COLUMNS = (
    "BillingAccountId", "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart",
    "ChargePeriodEnd", "ChargeCategory", "BilledCost", "EffectiveCost", "ListCost", "ContractedCost",
    "ProviderName", "ServiceName",
)  # fmt: skip
# ... and these must be filled on every row (FOCUS: "MUST NOT be null").
NON_EMPTY_COLUMNS = (
    "BillingAccountId", "BillingCurrency", *TIMESTAMP_COLUMNS, "ChargeCategory",
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost",
)  # fmt: skip
# FOCUS 1.2's allowed values (FOCUS 1.0, which Azure's FocusCost 1.0 follows, allows the same).
ALLOWED_VALUES = {
    "ChargeCategory": ("Usage", "Purchase", "Tax", "Credit", "Adjustment"),
    "ChargeClass": ("Correction",),
    "ChargeFrequency": ("One-Time", "Recurring", "Usage-Based"),
    "PricingCategory": ("Standard", "Dynamic", "Committed", "Other"),
    "CommitmentDiscountCategory": ("Spend", "Usage"),
    "CommitmentDiscountStatus": ("Used", "Unused"),
    "ServiceCategory": (
        "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases", "Developer Tools",
        "Multicloud", "Identity", "Integration", "Internet of Things", "Management and Governance", "Media",
        "Migration", "Mobile", "Networking", "Security", "Storage", "Web", "Other",
    ),
    "ServiceSubcategory": tuple(SUBCATEGORY_PARENT),
}  # fmt: skip
