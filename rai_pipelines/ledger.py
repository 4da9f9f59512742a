"""One entry point for every cost source: each file becomes FOCUS rows by its own normalisation,
and each has its own independent witness of the day's total for the reconciliation."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pyarrow as pa

from rai_pipelines import focus
from rai_pipelines.focus import SourceFile


def to_focus(source: SourceFile, day: date) -> pa.Table:
    if source.kind == "aws_cur":
        return focus.cur_to_focus(source, day)
    if source.kind == "onprem":
        from rai_pipelines.onprem import onprem_to_focus

        return onprem_to_focus(source, source.context, day)
    raise ValueError(f"{source.uri}: no normalisation for source kind {source.kind!r}")


def daily_totals(source: SourceFile) -> dict[str, Decimal]:
    if source.kind == "aws_cur":
        return focus.source_daily_totals(source)
    if source.kind == "onprem":
        from rai_pipelines.onprem import onprem_daily_totals

        return onprem_daily_totals(source, source.context)
    raise ValueError(f"{source.uri}: no reconciliation witness for source kind {source.kind!r}")
