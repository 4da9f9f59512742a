"""Refused export rows are kept in a quarantine with the reason, file, line and raw values, while
their billing period publishes nothing."""

from __future__ import annotations

import csv
import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.ledger_schema import ParquetInput, SourceFile
from rai_pipelines.costs.quarantine import quarantine_table, rejected_row


def test_the_row_an_error_names_is_kept_with_its_raw_values():
    table = pa.table({"cost": ["1.5", "abc", "2"], "note": ["a", "b" * 5000, "c"]})
    source = SourceFile("s3://billing/x.csv", table, first_data_line=2, row_lines=[2, 4, 5])
    error = BadInputError("s3://billing/x.csv line 4: field cost = 'abc' is not a number")
    rejected = rejected_row(source, error)
    assert (rejected.row, rejected.field) == (4, "cost")
    assert rejected.values["cost"] == "abc" and len(rejected.values["note"]) == 1003  # bounded
    (row,) = quarantine_table([rejected]).to_pylist()
    assert row["x_SourceUri"] == "s3://billing/x.csv" and row["x_SourceRowNumber"] == 4
    assert json.loads(row["raw"])["cost"] == "abc" and "is not a number" in row["reason"]
    # a file-level error names no row
    assert rejected_row(source, BadInputError("s3://billing/x.csv: missing column cost")).row is None


def test_a_streamed_parquet_row_is_found_batch_by_batch(tmp_path):
    import pyarrow.fs as pafs

    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"cost": [float(i) for i in range(200_000)]}), path)
    source = SourceFile.streamed(ParquetInput(pafs.LocalFileSystem(), str(path), str(path)))
    rejected = rejected_row(source, BadInputError(f"{path} row 150001: field cost = 150000.0 is wrong"))
    assert rejected.values == {"cost": 150000.0}


def test_a_refused_row_fails_its_period_and_is_quarantined(tmp_path, specs):

    from rai_pipelines.core.lake import Lake
    from tests.conftest import LOOP_DAYS, make_world, run_cost_ledger

    day = LOOP_DAYS[0]
    world = make_world(tmp_path / "world", specs, days=[day])
    (export,) = world.legacy_export_root.rglob("*.csv.gz")
    lines = gzip.decompress(export.read_bytes()).decode().splitlines(keepends=True)
    header = next(iter(csv.reader(io.StringIO(lines[0]))))
    cost = header.index("lineItem/UnblendedCost")
    fields = next(iter(csv.reader(io.StringIO(lines[5]))))
    fields[cost] = "12,50 EUR"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    lines[5] = buffer.getvalue()
    export.write_bytes(gzip.compress("".join(lines).encode()))

    result = run_cost_ledger(world, day)
    assert not result.success
    lake = Lake(str(world.lake_root))
    assert not lake.exists("cost_ledger", {"date": day.isoformat()})  # nothing of the period published
    (row,) = lake.read_table("cost_ledger_quarantine", {"period": f"{day:%Y-%m}"}).to_pylist()
    assert row["x_SourceUri"].endswith(export.name) and row["x_SourceRowNumber"] == 6
    assert row["field"] == "lineItem/UnblendedCost" and "'12,50 EUR' is not a number" in row["reason"]
    assert json.loads(row["raw"])["lineItem/UnblendedCost"] == "12,50 EUR"
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    metadata = failure.event_specific_data.user_failure_data.metadata
    assert metadata["quarantine"].value.endswith("period=" + f"{day:%Y-%m}/data.parquet")
    assert "12,50 EUR" in metadata["rejected"].value
