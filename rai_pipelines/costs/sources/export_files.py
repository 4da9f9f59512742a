"""What every export file reader needs: the billing-period folder names providers use, the
physical line of each CSV row (for errors that name the line a person would open), manifests read
as JSON objects, and gzip files inflated within bounds."""

from __future__ import annotations

import csv
import io
import json
import os
import zlib
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


# A gzip file inflates to at most this much, and to at most this many times its own size past the
# first 64 MB: a 4 MB export that would inflate to gigabytes is refused while it is inflated.
MAX_INFLATED_BYTES = int(os.environ.get("RAI_MAX_EXPORT_FILE_MB", "4096")) * 1024 * 1024
MAX_INFLATION_RATIO = 200
_CHUNK = 1 << 20


def gunzip_bounded(data: bytes, uri: str) -> bytes:
    """The inflated content of a gzip file (every member of it, as gzip.decompress reads them),
    inflated a chunk at a time and refused as soon as it passes the bounds."""
    limit = min(MAX_INFLATED_BYTES, max(64 * 1024 * 1024, MAX_INFLATION_RATIO * len(data)))
    out = bytearray()
    rest = data
    try:
        while rest:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = inflater.decompress(rest, _CHUNK)
            while True:
                out += chunk
                if len(out) > limit:
                    raise BadInputError(
                        f"{uri}: inflates to more than {limit:,} bytes from {len(data):,}: refused as a gzip bomb "
                        "(RAI_MAX_EXPORT_FILE_MB raises the absolute bound)"
                    )
                if inflater.eof or not inflater.unconsumed_tail:
                    break
                chunk = inflater.decompress(inflater.unconsumed_tail, _CHUNK)
            if not inflater.eof:
                raise BadInputError(f"{uri}: not a readable gzip file: truncated")
            rest = inflater.unused_data.lstrip(b"\0")  # concatenated members (padding between them)
    except zlib.error as exc:
        raise BadInputError(f"{uri}: not a readable gzip file: {exc}") from None
    return bytes(out)


# Billing formats that are not FOCUS, by columns only they have, and the export to use instead.
OTHER_FORMATS = (
    (
        ("lineitem/unblendedcost", "line_item_unblended_cost"),
        "an AWS Cost and Usage Report: declare it as an aws_cur source, or create a Data Exports export of "
        "'FOCUS 1.2 with AWS columns'",
    ),
    (
        ("costinbillingcurrency", "metercategory", "pretaxcost"),
        "an Azure cost details (EA or MCA usage details) export: create a 'Cost and usage details (FOCUS)' "
        "export in Cost Management instead",
    ),
    (
        ("lineitem/referenceno", "cost/mycost"),
        "an OCI cost report: use OCI's FOCUS reports (FOCUS Reports/YYYY/MM/DD) instead",
    ),
    (
        ("service.description", "service_description", "cost_type"),
        "a Google Cloud Billing export: declare it as a gcp_bigquery or gcp_storage source",
    ),
)


def other_format(names: dict[str, str]) -> str:
    """'; it looks like ...' when a file's columns (lower-cased name -> name) are those of a known
    billing format that is not FOCUS, and the export to use instead; '' otherwise."""
    for columns, what in OTHER_FORMATS:
        if any(c in names for c in columns):
            return f"; it looks like {what}"
    return ""
