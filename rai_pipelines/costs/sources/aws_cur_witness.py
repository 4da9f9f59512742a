"""The reconciliation's witness of the CUR: each cost per ledger day and currency straight from the
export's raw columns, with Arrow compute (witness.py), sharing nothing with the DuckDB normalisation
in aws_cur_sql.py; EffectiveCost is derived again from each line item type's columns."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.ledger_schema import MONEY, SourceFile
from rai_pipelines.costs.parallel import ordered_map
from rai_pipelines.costs.sources.aws_cur_sql import canonical_cur_name
from rai_pipelines.costs.witness import CostTotals, DailyTotals, add_totals, amounts, witness_batch, witness_costs

WITNESS_COLUMNS = (
    "line_item_usage_start_date",
    "line_item_unblended_cost",
    "bill_billing_period_start_date",
    "bill_billing_period_end_date",
    "line_item_currency_code",
)


def source_daily_totals(source: SourceFile) -> DailyTotals:
    """Billed cost per ledger day and currency straight from the export, computed apart from the
    normalisation (`witness_batch` on five raw columns; the same day rule) so that the
    reconciliation check is an independent witness. Streams like the normalisation."""
    names = {canonical_cur_name(c): c for c in source.schema.names}
    for column in WITNESS_COLUMNS:
        if column not in names:
            raise BadInputError(f"{source.uri}: missing required CUR column {column}")
    fields = [names[c] for c in WITNESS_COLUMNS]
    totals: DailyTotals = {}
    what = "line" if source.uri.endswith((".csv", ".csv.gz")) else "row"
    for batch, rows in source.batches(fields):
        witness_batch(batch.columns, fields, source.uri, rows, what, totals)
    return totals


# What the other three costs are computed from, where the export has the column (AWS's documented
# FOCUS mapping: the ledger's SQL in aws_cur_sql.py, written here again apart in Arrow compute).
COST_WITNESS_COLUMNS = (
    "line_item_line_item_type",
    "pricing_public_on_demand_cost",
    "line_item_net_unblended_cost",
    "savings_plan_savings_plan_effective_cost",
    "reservation_effective_cost",
    "reservation_reservation_a_r_n",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
    "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee",
)


def _exact(operation, a: pa.Array, b: pa.Array) -> pa.Array:
    """`operation` on two of the ledger's decimals, exactly: Arrow widens the result's precision past
    decimal128's 38 digits, so it is computed in decimal256 and brought back (a result too large for
    the ledger is an error, never a rounding)."""
    wide = pa.decimal256(40, MONEY.scale)
    return pc.cast(operation(pc.cast(a, wide), pc.cast(b, wide)), MONEY)


def _cur_costs(batch: pa.RecordBatch, fields: dict[str, str], uri: str, rows: pa.Array, what: str) -> dict:
    """BilledCost, EffectiveCost, ListCost and ContractedCost of each line item, from its raw values."""
    n = batch.num_rows
    zero = pa.scalar(Decimal(0), MONEY)

    def money(column: str) -> pa.Array:
        if column not in fields:
            return pa.nulls(n, MONEY)
        return amounts(batch.column(fields[column]), uri, fields[column], rows, what)

    def text(column: str) -> pa.Array:
        if column not in fields:
            return pa.nulls(n, pa.string())
        values = pc.utf8_trim_whitespace(pc.cast(batch.column(fields[column]), pa.string()))
        return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)

    unblended = money("line_item_unblended_cost")
    kind = pc.fill_null(text("line_item_line_item_type"), "")
    present = set(pc.unique(kind).to_pylist())
    effective = unblended
    # each line item type's rule, computed only for a batch that has such line items
    rules = {
        "SavingsPlanCoveredUsage": lambda: money("savings_plan_savings_plan_effective_cost"),
        "DiscountedUsage": lambda: money("reservation_effective_cost"),
        "SavingsPlanNegation": lambda: zero,
        "SavingsPlanUpfrontFee": lambda: zero,
        "Fee": lambda: pc.if_else(pc.is_valid(text("reservation_reservation_a_r_n")), zero, unblended),
        "SavingsPlanRecurringFee": lambda: _exact(
            pc.subtract, money("savings_plan_total_commitment_to_date"), money("savings_plan_used_commitment")
        ),
        "RIFee": lambda: _exact(
            pc.add,
            pc.fill_null(money("reservation_unused_amortized_upfront_fee_for_billing_period"), zero),
            pc.fill_null(money("reservation_unused_recurring_fee"), zero),
        ),
    }
    for line_type, value in rules.items():
        if line_type in present:
            effective = pc.if_else(pc.equal(kind, line_type), value(), effective)
    return {
        "BilledCost": unblended,
        "EffectiveCost": effective,
        "ListCost": pc.coalesce(money("pricing_public_on_demand_cost"), unblended),
        "ContractedCost": pc.coalesce(money("line_item_net_unblended_cost"), unblended),
    }


def source_cost_totals(source: SourceFile) -> CostTotals:
    """The four costs per ledger day and currency straight from the export, in one pass (the
    witness of every reconciled cost; `source_daily_totals` is its BilledCost)."""
    names = {canonical_cur_name(c): c for c in source.schema.names}
    for column in WITNESS_COLUMNS:
        if column not in names:
            raise BadInputError(f"{source.uri}: missing required CUR column {column}")
    fields = {c: names[c] for c in (*WITNESS_COLUMNS, *COST_WITNESS_COLUMNS) if c in names}
    read = list(dict.fromkeys(fields.values()))
    what = "line" if source.uri.endswith((".csv", ".csv.gz")) else "row"
    dates = [fields[c] for c in (WITNESS_COLUMNS[0], *WITNESS_COLUMNS[2:])]

    def batch_totals(item: tuple[pa.RecordBatch, pa.Array]) -> CostTotals:
        batch, rows = item
        by_name = pa.RecordBatch.from_arrays(batch.columns, names=read)
        costs = _cur_costs(by_name, fields, source.uri, rows, what)
        partial: CostTotals = {}
        witness_costs([by_name.column(f) for f in dates], dates, costs, source.uri, rows, what, partial)
        return partial

    totals: CostTotals = {}
    # The batches on every core; exact sums, so the order they are added in does not matter, but they
    # come back in file order, so that the first bad row of the file is the one reported.
    for partial in ordered_map(batch_totals, source.batches(read)):
        add_totals(totals, partial)
    return totals
