"""What every export file reader needs: the billing-period folder names providers use, and the
physical line of each CSV row (for errors that name the line a person would open)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

from rai_pipelines.core.errors import BadInputError


def billing_period_folder(day: date) -> str:
    start = day.replace(day=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return f"{start:%Y%m%d}-{end:%Y%m%d}"


def physical_lines(data: bytes, rows: int | None = None) -> list[int] | None:
    """The file line on which each data row starts, when that is not simply its index + 2 (blank
    lines, which the CSV reader skips, or quoted fields spanning lines); None when it is. Given the
    number of parsed rows, counting line breaks settles it cheaply: with no blank line, as many
    breaks as rows (plus the header's) means one line per row, quotes or not."""
    blank = b"\n\n" in data or b"\n\r\n" in data
    one_per_row = b'"' not in data or (rows is not None and data.count(b"\n") in (rows, rows + 1))
    if not blank and one_per_row:
        return None
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    lines, previous_end = [], 0
    for row in reader:
        start, previous_end = previous_end + 1, reader.line_num
        if row and any(cell != "" for cell in row):
            lines.append(start)
    return lines[1:]  # the first record is the header


def load_manifest(data: bytes, uri: str) -> dict:
    try:
        manifest = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{uri}: manifest is not JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BadInputError(f"{uri}: manifest is not a JSON object")
    return manifest
