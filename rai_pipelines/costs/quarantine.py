"""The quarantine of refused billing rows: when an export row is refused (a cost that is no number,
a date that is none, a row of another account, ...), its billing period is not published, and the
row is kept with the reason, its file and line and its raw values, so that whoever fixes the export
sees what was refused without reading the file again."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa

from rai_pipelines.costs.ledger_schema import SourceFile

# "<file> line 12: field BilledCost = 'abc' is not a number", "... row 3: field ...", "<file> row 7: ..."
_WHERE = re.compile(r" (?:line|row) (?P<row>\d+)(?::| ) *(?:field (?P<field>[^\s=]+))?")
MAX_VALUE_CHARS = 1_000  # a raw value kept in the quarantine is cut here: a row is evidence, not a copy

QUARANTINE_SCHEMA = pa.schema(
    [
        ("x_SourceUri", pa.string()),
        ("x_SourceRowNumber", pa.int64()),
        ("field", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),  # the row's raw values as one JSON object
        ("rejected_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class RejectedRow:
    uri: str
    row: int | None
    field: str | None
    reason: str
    values: dict = field(default_factory=dict)


def _shown(value) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "..."


def _raw_row(source: SourceFile, row: int) -> dict:
    """The raw values of the file's row numbered `row` (its physical line for a CSV)."""
    numbers = source.row_numbers() if source.parquet is None else None
    if numbers is not None:
        if row not in numbers:
            return {}
        index = numbers.index(row)
        return {name: _shown(source.table.column(name)[index].as_py()) for name in source.table.column_names}
    for batch, rows in source.batches(source.schema.names):
        first, last = rows[0].as_py(), rows[-1].as_py()
        if first <= row <= last:
            values = batch.slice(row - first, 1).to_pylist()[0]
            return {name: _shown(value) for name, value in values.items()}
    return {}


def rejected_row(source: SourceFile, error: Exception) -> RejectedRow:
    """The row an error names, with its raw values; a file-level error (a missing column, an
    unreadable file) names no row."""
    reason = str(error)
    found = _WHERE.search(reason.removeprefix(source.uri))
    if found is None:
        return RejectedRow(source.uri, None, None, reason)
    row = int(found["row"])
    try:
        values = _raw_row(source, row)
    except Exception:  # noqa: BLE001 - the evidence is best effort; the refusal stands without it
        values = {}
    return RejectedRow(source.uri, row, found["field"], reason, values)


def quarantine_table(rejected: list[RejectedRow], when: datetime | None = None) -> pa.Table:
    moment = when or datetime.now(timezone.utc)
    return pa.Table.from_pylist(
        [
            {
                "x_SourceUri": r.uri,
                "x_SourceRowNumber": r.row,
                "field": r.field,
                "reason": r.reason,
                "raw": json.dumps(r.values, sort_keys=True, default=str),
                "rejected_at": moment,
            }
            for r in rejected
        ],
        schema=QUARANTINE_SCHEMA,
    )
