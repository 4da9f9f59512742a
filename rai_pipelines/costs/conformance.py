"""FOCUS conformance of a cost-ledger partition, as a Great Expectations suite: the mandatory
columns FOCUS 1.3 asks of every row (and the 1.2 ones it deprecates) are present and filled, the
columns with allowed values hold only those, currencies are ISO 4217 codes, charge periods end
after they start, timestamps are UTC, and every column that is not FOCUS's own carries the x_ prefix.

Every one of these rules is decided row by row on one column or one pair of columns, so its verdict
depends only on which values occur, not on how often. A day of ten million line items is therefore
validated through its profile: each checked column's distinct values (for a column that only has
to be filled, one value and whether any is missing) and the distinct charge and billing periods,
gathered batch by batch as the ledger is written. Great Expectations then sees every distinct value
the partition holds, and a finding names the offending values; it counts distinct values, not rows.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from rai_pipelines.core.quality import Finding, SuiteResult, run_suite
from rai_pipelines.costs.ledger_schema import FOCUS_EXPORT_ONLY, SUBCATEGORY_PARENT

# FOCUS column names this ledger emits (1.3's, with the 1.2 columns 1.3 deprecates); anything else
# must be prefixed x_.
FOCUS_COLUMNS = {
    "BillingAccountId", "BillingAccountName", "SubAccountId", "SubAccountName", "BillingCurrency",
    "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory",
    "ChargeClass", "ChargeFrequency", "ChargeDescription", "BilledCost", "EffectiveCost", "ListCost",
    "ContractedCost", "ListUnitPrice", "ContractedUnitPrice", "PricingQuantity", "PricingUnit", "PricingCategory",
    "ConsumedQuantity", "ConsumedUnit", "ServiceProviderName", "HostProviderName", "ProviderName", "PublisherName",
    "InvoiceIssuerName", "InvoiceId", "ServiceName", "ServiceCategory", "ServiceSubcategory", "RegionId",
    "RegionName", "AvailabilityZone", "ResourceId", "ResourceName", "ResourceType", "SkuId", "SkuPriceId",
    "CommitmentDiscountId", "CommitmentDiscountCategory", "CommitmentDiscountName", "CommitmentDiscountStatus",
    "CommitmentDiscountType", "Tags", *FOCUS_EXPORT_ONLY,
}  # fmt: skip
NOT_NULL = [
    "BillingAccountId", "BillingCurrency", "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart",
    "ChargePeriodEnd", "ChargeCategory", "BilledCost", "EffectiveCost", "ListCost", "ContractedCost",
    "ServiceProviderName", "HostProviderName", "ProviderName", "PublisherName", "InvoiceIssuerName",
    "ServiceCategory", "ServiceSubcategory",
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
    "ServiceSubcategory": sorted(SUBCATEGORY_PARENT),
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


PERIODS = [("ChargePeriodStart", "ChargePeriodEnd"), ("BillingPeriodStart", "BillingPeriodEnd")]

VALUE_CHECKED = sorted(set(ALLOWED) | {"BillingCurrency"})
FILLED_ONLY = sorted(set(NOT_NULL) - set(VALUE_CHECKED) - set(TIMESTAMPS))

# FOCUS 1.2's rules over several columns of a row, on commitment discounts. Each is decided on the
# row's combination of (ChargeCategory, has a CommitmentDiscountId, CommitmentDiscountStatus, has a
# CommitmentDiscountCategory), so the profile keeps those combinations (a handful) with the first
# row of each, which a finding names.
COMMITMENT_COLUMNS = (
    "ChargeCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountStatus",
    "CommitmentDiscountCategory",
    "EffectiveCost",
    "BilledCost",
)
COMMITMENT_RULES = (
    (
        lambda c, has_id, status, has_category: not has_id and status is not None,
        "CommitmentDiscountStatus",
        "is set on a row without a CommitmentDiscountId (FOCUS: MUST be null when CommitmentDiscountId is null)",
    ),
    (
        lambda c, has_id, status, has_category: has_id and c == "Usage" and status is None,
        "CommitmentDiscountStatus",
        "is missing on a Usage row with a CommitmentDiscountId (FOCUS: MUST NOT be null there)",
    ),
    (
        lambda c, has_id, status, has_category: c != "Usage" and status is not None,
        "CommitmentDiscountStatus",
        "is set on a row whose ChargeCategory is not Usage: only usage consumes a commitment or leaves it unused",
    ),
    (
        lambda c, has_id, status, has_category: has_id != has_category,
        "CommitmentDiscountCategory",
        "must be set exactly when CommitmentDiscountId is (FOCUS)",
    ),
)
# FOCUS 1.2's rules between a row's quantities, units, category and class, decided on the row's
# combination of (ChargeCategory, ChargeClass, CommitmentDiscountStatus, and whether PricingQuantity,
# PricingUnit, ConsumedQuantity and ConsumedUnit are set, and whether the charge starts before its
# billing period), kept with the first row of each.
QUANTITY_COLUMNS = (
    "ChargeCategory", "ChargeClass", "CommitmentDiscountStatus", "PricingQuantity", "PricingUnit",
    "ConsumedQuantity", "ConsumedUnit", "ChargePeriodStart", "BillingPeriodStart",
)  # fmt: skip
QUANTITY_RULES = (
    (
        lambda c, cls, st, pq, pu, cq, cu, early: c == "Tax" and pq,
        "PricingQuantity",
        "is set on a Tax row (FOCUS: MUST be null when ChargeCategory is Tax)",
    ),
    (
        lambda c, cls, st, pq, pu, cq, cu, early: c in ("Usage", "Purchase") and cls != "Correction" and not pq,
        "PricingQuantity",
        "is missing on a Usage or Purchase row that is not a correction (FOCUS: MUST NOT be null there)",
    ),
    (
        lambda c, cls, st, pq, pu, cq, cu, early: pq != pu,
        "PricingUnit",
        "must be set exactly when PricingQuantity is (FOCUS)",
    ),
    (
        lambda c, cls, st, pq, pu, cq, cu, early: cq != cu,
        "ConsumedUnit",
        "must be set exactly when ConsumedQuantity is (FOCUS)",
    ),
    (
        lambda c, cls, st, pq, pu, cq, cu, early: cq and (c != "Usage" or st == "Unused"),
        "ConsumedQuantity",
        "is set on a row that consumes nothing (FOCUS: null unless ChargeCategory is Usage and the "
        "commitment is not Unused)",
    ),
    (
        lambda c, cls, st, pq, pu, cq, cu, early: early and cls != "Correction",
        "ChargeClass",
        "is not Correction on a charge for a period before its billing period (FOCUS: a correction of an "
        "earlier billing period)",
    ),
)
DOUBLE_COUNTED = (
    "is the whole BilledCost of the purchase of a commitment discount whose covered usage also carries "
    "its amortised cost: the commitment is counted twice in EffectiveCost (FOCUS: a purchase that covers "
    "eligible charges is amortised into them, its own EffectiveCost 0 or the unused part)"
)


class LedgerProfile:
    """What the FOCUS rules need to know of a partition, gathered batch by batch (see above)."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.rows = 0
        self._distinct: dict[str, set] = {c: set() for c in VALUE_CHECKED if c in schema.names}
        self._filled: dict[str, list] = {c: [None, False] for c in FILLED_ONLY if c in schema.names}
        self._periods: set[tuple] = set()
        self._period_columns = [c for pair in PERIODS for c in pair if c in schema.names]
        self._commitments: dict[tuple, tuple] = {}  # combination -> (source uri, row) of its first row
        # per CommitmentDiscountId: (source uri, row) of a purchase counted in full, and whether
        # usage it covered carries an amortised cost
        self._purchased_in_full: dict[str, tuple] = {}
        self._amortised: set[str] = set()
        self._check_commitments = all(c in schema.names for c in COMMITMENT_COLUMNS)
        # (ServiceCategory, ServiceSubcategory) -> (source uri, row) of its first row: FOCUS gives
        # each subcategory one parent category
        self._services: dict[tuple, tuple] = {}
        self._check_services = {"ServiceCategory", "ServiceSubcategory"} <= set(schema.names)
        self._quantities: dict[tuple, tuple] = {}
        self._check_quantities = set(QUANTITY_COLUMNS) <= set(schema.names)

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        self.rows += batch.num_rows
        for column, values in self._distinct.items():
            values.update(pc.unique(batch.column(column)).to_pylist())
        for column, state in self._filled.items():
            values = batch.column(column)
            if state[0] is None:
                present = pc.drop_null(values)
                if len(present):
                    state[0] = present[0].as_py()
            state[1] = state[1] or values.null_count > 0
        if self._check_commitments and batch.num_rows:
            self._add_commitments(batch)
        if self._check_services and batch.num_rows:
            self._add_services(batch)
        if self._check_quantities and batch.num_rows:
            self._add_quantities(batch)
        if self._period_columns:
            periods = pa.table([batch.column(c) for c in self._period_columns], names=self._period_columns)
            distinct = periods.group_by(self._period_columns).aggregate([])
            self._periods.update(zip(*(distinct.column(c).to_pylist() for c in self._period_columns), strict=True))

    @staticmethod
    def _lineage(batch) -> tuple[pa.Array, pa.Array]:
        uri = batch.column("x_SourceUri") if "x_SourceUri" in batch.schema.names else pa.nulls(batch.num_rows)
        row = (
            batch.column("x_SourceRowNumber")
            if "x_SourceRowNumber" in batch.schema.names
            else pa.nulls(batch.num_rows, pa.int64())
        )
        return uri, row

    def _first_rows(self, seen: dict, batch, columns: list[pa.Array]) -> None:
        """Record in `seen` each distinct combination of `columns`' values with the (source uri, row)
        of its first row: the rules over several columns are decided on these combinations."""
        uri, row = self._lineage(batch)
        names = [f"c{i}" for i in range(len(columns))]
        combos = pa.table([*columns, uri, row], names=[*names, "uri", "row"])
        grouped = combos.group_by(names, use_threads=False).aggregate([("uri", "first"), ("row", "first")])
        for found in grouped.to_pylist():
            seen.setdefault(tuple(found[n] for n in names), (found["uri_first"], found["row_first"]))

    def _add_services(self, batch) -> None:
        self._first_rows(self._services, batch, [batch.column("ServiceCategory"), batch.column("ServiceSubcategory")])

    def _add_quantities(self, batch) -> None:
        column = batch.column
        columns = [
            column("ChargeCategory"),
            column("ChargeClass"),
            column("CommitmentDiscountStatus"),
            *(pc.is_valid(column(c)) for c in ("PricingQuantity", "PricingUnit", "ConsumedQuantity", "ConsumedUnit")),
            pc.fill_null(pc.less(column("ChargePeriodStart"), column("BillingPeriodStart")), False),
        ]
        self._first_rows(self._quantities, batch, columns)

    @staticmethod
    def _rule_findings(seen: dict, rules, expectation: str) -> list[Finding]:
        """A finding for each rule a recorded combination breaks, naming its first row."""
        findings = []
        for combo, (uri, row) in sorted(seen.items(), key=str):
            for rule, column, detail in rules:
                if rule(*combo):
                    where = f"{uri} row {row}" if uri else "a row"
                    findings.append(Finding(expectation, column, f"{where}: {detail}"))
        return findings

    def quantity_findings(self) -> list[Finding]:
        return self._rule_findings(self._quantities, QUANTITY_RULES, "focus_quantity_and_class_rules")

    def service_findings(self) -> list[Finding]:
        findings = []
        for (category, subcategory), (uri, row) in sorted(self._services.items(), key=str):
            parent = SUBCATEGORY_PARENT.get(subcategory)
            if subcategory is not None and parent is not None and parent != category:
                where = f"{uri} row {row}" if uri else "a row"
                detail = f"{where}: {subcategory!r} belongs to ServiceCategory {parent!r}, not {category!r} (FOCUS)"
                findings.append(Finding("focus_service_subcategory_parent", "ServiceSubcategory", detail))
        return findings

    def _add_commitments(self, batch) -> None:
        uri, row = self._lineage(batch)
        category, ids, status = (batch.column(c) for c in COMMITMENT_COLUMNS[:3])
        has_category = pc.is_valid(batch.column("CommitmentDiscountCategory"))
        self._first_rows(self._commitments, batch, [category, pc.is_valid(ids), status, has_category])
        effective, billed = batch.column("EffectiveCost"), batch.column("BilledCost")
        zero = pa.scalar(0, billed.type)
        in_full = pc.and_(
            pc.and_(pc.equal(category, "Purchase"), pc.is_valid(ids)),
            pc.and_(pc.equal(effective, billed), pc.not_equal(billed, zero)),
        )
        for i in pc.indices_nonzero(pc.fill_null(in_full, False)).to_pylist():
            self._purchased_in_full.setdefault(ids[i].as_py(), (uri[i].as_py(), row[i].as_py()))
        amortised = pc.and_(
            pc.and_(pc.equal(category, "Usage"), pc.equal(status, "Used")),
            pc.greater(effective, pa.scalar(0, effective.type)),
        )
        self._amortised.update(pc.unique(pc.filter(ids, pc.fill_null(amortised, False))).to_pylist())

    def commitment_findings(self) -> list[Finding]:
        findings = self._rule_findings(self._commitments, COMMITMENT_RULES, "focus_commitment_discount_rules")
        for commitment, (uri, row) in sorted(self._purchased_in_full.items()):
            if commitment in self._amortised:
                where = f"{uri} row {row}" if uri else "a row"
                detail = f"{where} ({commitment}): {DOUBLE_COUNTED}"
                findings.append(Finding("focus_commitment_discount_rules", "EffectiveCost", detail))
        return findings

    def frames(self):
        """The profile as data frames for Great Expectations: the distinct values of the columns
        with allowed values (padded with nulls, which those rules skip), whether each mandatory
        column is filled (padded with its own value, which that rule accepts), and the periods."""
        import pandas as pd

        def frame(columns: dict[str, list], pad) -> pd.DataFrame:
            length = max([len(v) for v in columns.values()] + [0])  # no row at all: an empty frame
            return pd.DataFrame(
                {c: pd.Series(v + [pad(v)] * (length - len(v)), dtype=object) for c, v in columns.items()}
            )

        distinct = {c: sorted((x for x in v if x is not None), key=str) for c, v in self._distinct.items()}
        filled = {}
        for column in NOT_NULL:
            if column in self._filled:
                value, missing = self._filled[column]
            elif column in self._distinct:
                values = self._distinct[column]
                value, missing = next((x for x in values if x is not None), None), None in values
            else:
                continue
            filled[column] = ([value] if value is not None else []) + ([None] if missing else [])
        values = frame(distinct, lambda v: None)
        mandatory = frame(filled, lambda v: v[0] if v else None)
        periods = pd.DataFrame(sorted(self._periods, key=str), columns=self._period_columns)
        return values, mandatory, periods


def validate_ledger(ledger: pa.Table | LedgerProfile) -> SuiteResult:
    """Run the FOCUS suite on a ledger partition (a table, or the profile of one written in batches)."""
    import great_expectations as gx

    if isinstance(ledger, pa.Table):
        profile = LedgerProfile(ledger.schema)
        profile.add(ledger)
    else:
        profile = ledger
    e = gx.expectations
    present = set(profile.schema.names)
    missing = [
        Finding("expect_column_to_exist", c, "column is missing")
        for c in sorted(set(NOT_NULL) | set(ALLOWED))
        if c not in present
    ]
    filled = [e.ExpectColumnValuesToNotBeNull(column=c) for c in NOT_NULL if c in present and c not in TIMESTAMPS]
    allowed = [
        e.ExpectColumnValuesToBeInSet(column=c, value_set=v, meta={"allowed": f"FOCUS 1.2's allowed values for {c}"})
        for c, v in ALLOWED.items()
        if c in present
    ]
    if "BillingCurrency" in present:
        allowed.append(e.ExpectColumnValuesToMatchRegex(column="BillingCurrency", regex=r"^[A-Z]{3}$"))
    period_rules = [e.ExpectColumnValuesToNotBeNull(column=c) for c in TIMESTAMPS if c in present]
    for start, end in PERIODS:
        if start in present and end in present:
            period_rules.append(
                e.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=end, column_B=start, or_equal=True, ignore_row_if="either_value_is_missing"
                )
            )
    values, mandatory, periods = profile.frames()
    name = "cost_ledger.focus_conformance"
    filled_result = run_suite(mandatory, name + ".filled", filled)
    # The profile keeps whether a column has a missing value, not how many: say so, not "1 of 2".
    filled_result = SuiteResult(
        filled_result.suite,
        filled_result.evaluated,
        [
            Finding(f.expectation, f.column, "missing in at least one row")
            if f.expectation == "expect_column_values_to_not_be_null"
            else f
            for f in filled_result.findings
        ],
    )
    results = [run_suite(values, name, allowed), filled_result]
    if len(periods):
        results.append(run_suite(periods, name + ".periods", period_rules))
    relations = profile.commitment_findings() + profile.service_findings() + profile.quantity_findings()
    findings = [f for r in results for f in r.findings] + missing + _schema_findings(profile.schema) + relations
    evaluated = (
        sum(r.evaluated for r in results)
        + len(missing)
        + len(TIMESTAMPS)
        + 1
        + len(COMMITMENT_RULES)
        + 2
        + len(QUANTITY_RULES)
    )
    return SuiteResult("cost_ledger.focus_conformance", evaluated, findings)
