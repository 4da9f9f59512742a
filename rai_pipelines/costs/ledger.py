"""One entry point for every cost source: each file becomes FOCUS rows by its own normalisation,
and each has its own independent witness of the day's total for the reconciliation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pyarrow as pa

from rai_pipelines.costs.sources import aws_cur as focus
from rai_pipelines.costs.sources.aws_cur import SourceFile


def to_focus_batches(source: SourceFile, day: date) -> Iterator[pa.RecordBatch]:
    """The day's ledger rows of one source file, batch by batch (streamed where the source allows)."""
    if source.kind == "aws_cur":
        yield from focus.cur_to_focus_batches(source, day)
        return
    if source.kind in ("aws_focus", "azure_focus"):
        from rai_pipelines.costs.sources.focus_export import AWS, AZURE, focus_export_batches

        yield from focus_export_batches(source, day, AWS if source.kind == "aws_focus" else AZURE)
        return
    yield from to_focus(source, day).to_batches()


def to_focus_days(source: SourceFile, days: list[date]) -> Iterator[tuple[date, pa.RecordBatch]]:
    """(day, batch) pairs of several days' ledger rows: one pass over a CUR or FOCUS export file,
    else day by day."""
    if source.kind == "aws_cur":
        yield from focus.cur_to_focus_days(source, days)
        return
    if source.kind in ("aws_focus", "azure_focus"):
        from rai_pipelines.costs.sources.focus_export import AWS, AZURE, focus_export_days

        yield from focus_export_days(source, days, AWS if source.kind == "aws_focus" else AZURE)
        return
    for day in sorted(days):
        for batch in to_focus_batches(source, day):
            yield day, batch


def to_focus(source: SourceFile, day: date) -> pa.Table:
    if source.kind == "aws_cur":
        return focus.cur_to_focus(source, day)
    if source.kind == "onprem":
        from rai_pipelines.costs.sources.onprem import onprem_to_focus

        return onprem_to_focus(source, source.context, day)
    if source.kind == "azure_focus":
        from rai_pipelines.costs.sources.focus_export import azure_focus_to_focus

        return azure_focus_to_focus(source, day)
    if source.kind == "aws_focus":
        from rai_pipelines.costs.sources.focus_export import aws_focus_to_focus

        return aws_focus_to_focus(source, day)
    if source.kind == "gcp_billing":
        from rai_pipelines.costs.sources.gcp_billing import gcp_to_focus

        return gcp_to_focus(source, day)
    raise ValueError(f"{source.uri}: no normalisation for source kind {source.kind!r}")


def daily_totals(source: SourceFile) -> dict[str, Decimal]:
    if source.kind == "aws_cur":
        return focus.source_daily_totals(source)
    if source.kind == "onprem":
        from rai_pipelines.costs.sources.onprem import onprem_daily_totals

        return onprem_daily_totals(source, source.context)
    if source.kind == "azure_focus":
        from rai_pipelines.costs.sources.focus_export import azure_focus_daily_totals

        return azure_focus_daily_totals(source)
    if source.kind == "aws_focus":
        from rai_pipelines.costs.sources.focus_export import aws_focus_daily_totals

        return aws_focus_daily_totals(source)
    if source.kind == "gcp_billing":
        from rai_pipelines.costs.sources.gcp_billing import gcp_daily_totals

        return gcp_daily_totals(source)
    raise ValueError(f"{source.uri}: no reconciliation witness for source kind {source.kind!r}")


def grouped_sums(table: pa.Table, keys: list[str], value: str):
    """(key..., exact sum of `value`) per group of `keys`; a group of nulls sums to 0."""
    grouped = table.group_by(keys, use_threads=False).aggregate([(value, "sum")])
    sums = [Decimal(0) if v is None else v for v in grouped.column(f"{value}_sum").to_pylist()]
    columns = [grouped.column(k).to_pylist() for k in keys] + [sums]
    return zip(*columns, strict=True)


class LedgerSummary:
    """Exact (Decimal) totals of a ledger partition, accumulated batch by batch: what the
    reconciliation compares and what the materialisation shows."""

    def __init__(self) -> None:
        self.rows = 0
        self.billed_by_source: dict[str, Decimal] = defaultdict(Decimal)
        self.billed_by_currency: dict[str, Decimal] = defaultdict(Decimal)
        self.billed_by_service: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        self.effective_by_model: dict[tuple[str, str | None], Decimal] = defaultdict(Decimal)
        self.effective = Decimal(0)
        self.untagged_effective = Decimal(0)

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        if not table.num_rows:
            return
        self.rows += table.num_rows
        for uri, cost in grouped_sums(table, ["x_SourceUri"], "BilledCost"):
            self.billed_by_source[uri] += cost
        for currency, cost in grouped_sums(table, ["BillingCurrency"], "BilledCost"):
            self.billed_by_currency[currency] += cost
        for service, currency, cost in grouped_sums(table, ["ServiceName", "BillingCurrency"], "BilledCost"):
            self.billed_by_service[(service or "(none)", currency)] += cost
        for model, version, cost in grouped_sums(table, ["x_ModelName", "x_ModelVersion"], "EffectiveCost"):
            if model is None:
                self.untagged_effective += cost
            else:
                self.effective_by_model[(model, version)] += cost
            self.effective += cost
