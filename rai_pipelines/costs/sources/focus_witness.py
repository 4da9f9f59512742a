"""The reconciliation's witnesses of the FOCUS-native exports (Azure's and AWS's): each cost per
ledger day and BillingCurrency straight from the raw columns, with Arrow compute (witness.py), sharing
no code with the DuckDB normalisation in focus_export.py."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.ledger_schema import SourceFile
from rai_pipelines.costs.sources.focus_export import (
    AWS,
    AZURE,
    FocusProvider,
    _columns_by_name,
    _expected_account,
    _where,
)
from rai_pipelines.costs.witness import COSTS, CostTotals, DailyTotals, amounts, witness_batch, witness_costs


def focus_export_daily_totals(source: SourceFile, provider: FocusProvider) -> DailyTotals:
    """BilledCost per ledger day and BillingCurrency from the raw values, batch by batch: Arrow
    compute on six raw columns (the CUR witness's conversions), sharing nothing with the DuckDB
    normalisation."""
    names = _columns_by_name(source.schema.names)
    needed = (
        "ChargePeriodStart",
        "BilledCost",
        "BillingPeriodStart",
        "BillingPeriodEnd",
        "BillingAccountId",
        "BillingCurrency",
    )
    found = {}
    for column in needed:
        name = names.get(column.lower())
        if name is None:
            raise BadInputError(f"{source.uri}: missing mandatory FOCUS column {column}")
        found[column] = name
    expected = _expected_account(source)
    fold = str.lower if provider.account_ids_case_insensitive else str
    what = _where(source)
    totals: DailyTotals = {}
    for batch, rows in source.batches([found[c] for c in needed]):
        accounts = pc.utf8_trim_whitespace(pc.cast(batch.column(4), pa.string()))
        if provider.account_ids_case_insensitive:
            accounts = pc.utf8_lower(accounts)
        other = pc.not_equal(pc.fill_null(accounts, ""), fold(expected))
        if pc.any(other).as_py():
            i = pc.index(other, True).as_py()
            raise BadInputError(
                f"{source.uri} {what} {rows[i]}: field BillingAccountId = {batch.column(4)[i].as_py()!r} "
                f"is not the configured {expected!r}"
            )
        witnessed = [*batch.columns[:4], batch.column(5)]
        witness_batch(witnessed, [found[c] for c in (*needed[:4], needed[5])], source.uri, rows, what, totals)
    return totals


def focus_export_cost_totals(source: SourceFile, provider: FocusProvider) -> CostTotals:
    """The four costs per ledger day and BillingCurrency from their raw columns, in one pass (the
    witness of every reconciled cost; the billing account is checked by the BilledCost witness)."""
    names = _columns_by_name(source.schema.names)
    dates = ("ChargePeriodStart", "BillingPeriodStart", "BillingPeriodEnd", "BillingCurrency")
    found = {}
    for column in (*dates, *COSTS):
        name = names.get(column.lower())
        if name is None:
            raise BadInputError(f"{source.uri}: missing mandatory FOCUS column {column}")
        found[column] = name
    what = _where(source)
    totals: CostTotals = {}
    read = list(dict.fromkeys(found.values()))
    for batch, rows in source.batches(read):
        column = dict(zip(read, batch.columns, strict=True))
        costs = {c: amounts(column[found[c]], source.uri, found[c], rows, what) for c in COSTS}
        witness_costs(
            [column[found[c]] for c in dates], [found[c] for c in dates], costs, source.uri, rows, what, totals
        )
    return totals


def azure_focus_daily_totals(source: SourceFile) -> DailyTotals:
    """BilledCost per ledger day straight from the raw values of an Azure FOCUS export file."""
    return focus_export_daily_totals(source, AZURE)


def aws_focus_daily_totals(source: SourceFile) -> DailyTotals:
    """BilledCost per ledger day straight from the raw values of an AWS FOCUS export file."""
    return focus_export_daily_totals(source, AWS)
