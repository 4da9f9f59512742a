"""One entry point for every cost source: each file becomes FOCUS rows by its own kind's
normalisation, and each kind has its own independent witness of the day's total for the
reconciliation (costs.sources.SOURCE_KINDS)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pyarrow as pa

from rai_pipelines.costs.ledger_schema import LEDGER_SCHEMA, SourceFile
from rai_pipelines.costs.sources import source_kind

# The costs reconciled beside BilledCost, which has its own table.
OTHER_COSTS = ("EffectiveCost", "ListCost", "ContractedCost")


def to_focus_days(source: SourceFile, days: list[date]) -> Iterator[tuple[date, pa.RecordBatch]]:
    """(day, batch) pairs of several days' ledger rows, in one pass over the file where the source
    streams (CUR, FOCUS exports), else day by day."""
    yield from source_kind(source.kind, source.uri).days(source, days)


def to_focus_batches(source: SourceFile, day: date) -> Iterator[pa.RecordBatch]:
    """The day's ledger rows of one source file, batch by batch."""
    for _, batch in to_focus_days(source, [day]):
        yield batch


def to_focus(source: SourceFile, day: date) -> pa.Table:
    """The day's ledger rows of one source file as one table, for files that fit in memory."""
    return pa.Table.from_batches(list(to_focus_batches(source, day)), schema=LEDGER_SCHEMA)


def daily_totals(source: SourceFile) -> dict[str, dict[str, Decimal]]:
    """The export's own billed total per ledger day and currency, computed apart from the normalisation."""
    return source_kind(source.kind, source.uri).daily_totals(source)


def cost_totals(source: SourceFile) -> dict[str, dict[str, dict[str, Decimal]]]:
    """The export's own totals of each reconciled cost (BilledCost, EffectiveCost, ListCost,
    ContractedCost) per ledger day and currency, in one pass, apart from the normalisation."""
    kind = source_kind(source.kind, source.uri)
    if kind.cost_totals is None:  # a kind that witnesses its billed cost only
        return {"BilledCost": kind.daily_totals(source)}
    return kind.cost_totals(source)


def grouped_sums(table: pa.Table, keys: list[str], value: str):
    """(key..., exact sum of `value`) per group of `keys`; a group of nulls sums to 0."""
    grouped = table.group_by(keys, use_threads=False).aggregate([(value, "sum")])
    sums = [Decimal(0) if v is None else v for v in grouped.column(f"{value}_sum").to_pylist()]
    columns = [grouped.column(k).to_pylist() for k in keys] + [sums]
    return zip(*columns, strict=True)


class LedgerSummary:
    """Exact (Decimal) totals of a ledger partition, accumulated batch by batch: what the
    reconciliation compares and what the materialisation shows. Every total is per BillingCurrency:
    amounts of different currencies are never added together."""

    def __init__(self) -> None:
        self.rows = 0
        self.billed_by_source: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        self.billed_by_currency: dict[str, Decimal] = defaultdict(Decimal)
        self.billed_by_service: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        self.effective_by_model: dict[tuple[str, str | None, str], Decimal] = defaultdict(Decimal)
        self.effective_by_currency: dict[str, Decimal] = defaultdict(Decimal)
        self.untagged_by_currency: dict[str, Decimal] = defaultdict(Decimal)
        # source file -> cost column -> currency -> total, for the costs reconciled beside BilledCost
        self.costs_by_source: dict[str, dict[str, dict[str, Decimal]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(Decimal))
        )

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        if not table.num_rows:
            return
        self.rows += table.num_rows
        for uri, currency, cost in grouped_sums(table, ["x_SourceUri", "BillingCurrency"], "BilledCost"):
            self.billed_by_source[uri][currency] += cost
        for currency, cost in grouped_sums(table, ["BillingCurrency"], "BilledCost"):
            self.billed_by_currency[currency] += cost
        for column in OTHER_COSTS:
            for uri, currency, cost in grouped_sums(table, ["x_SourceUri", "BillingCurrency"], column):
                self.costs_by_source[uri][column][currency] += cost
        for service, currency, cost in grouped_sums(table, ["ServiceName", "BillingCurrency"], "BilledCost"):
            self.billed_by_service[(service or "(none)", currency)] += cost
        keys = ["x_ModelName", "x_ModelVersion", "BillingCurrency"]
        for model, version, currency, cost in grouped_sums(table, keys, "EffectiveCost"):
            if model is None:
                self.untagged_by_currency[currency] += cost
            else:
                self.effective_by_model[(model, version, currency)] += cost
            self.effective_by_currency[currency] += cost

    def costs(self) -> dict[str, dict[str, dict[str, Decimal]]]:
        """Source file -> cost column -> currency -> total, BilledCost included: what is reconciled."""
        out: dict[str, dict[str, dict[str, Decimal]]] = {}
        for uri in set(self.billed_by_source) | set(self.costs_by_source):
            out[uri] = {"BilledCost": dict(self.billed_by_source.get(uri, {}))}
            for column, by_currency in self.costs_by_source.get(uri, {}).items():
                out[uri][column] = dict(by_currency)
        return out

    def untagged_share(self, currency: str) -> float:
        effective = self.effective_by_currency.get(currency, Decimal(0))
        return float(self.untagged_by_currency.get(currency, Decimal(0)) / effective) if effective else 0.0
