"""The CUR ledger built on several worker threads: the same rows as on one, in file order, within a
bound on the batches in flight, and the first bad row of the file reported, whichever thread finds it;
and the ledger written on a thread of its own while the next batches are made."""

from __future__ import annotations

import gzip
import threading
import time
from datetime import date

import pyarrow as pa
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.ledger_schema import LEDGER_SCHEMA, SourceFile
from rai_pipelines.costs.parallel import consume_in_background, ordered_map, usable_cores
from rai_pipelines.costs.sources.aws_cur import cur_to_focus_days, read_cur_csv
from tests.conftest import SHARED_CUR
from tests.costs.test_aws_cur import _cur2_row, _replace_field, _table

DAYS = [date(2023, 11, d) for d in range(1, 15)]


@pytest.fixture(scope="module")
def raw_csv() -> bytes:
    return gzip.decompress(SHARED_CUR.read_bytes())


def _ledger(source: SourceFile, workers: int, batch_size: int = 100) -> dict[date, pa.Table]:
    by_day: dict[date, list[pa.RecordBatch]] = {}
    for day, batch in cur_to_focus_days(source, DAYS, batch_size=batch_size, workers=workers):
        by_day.setdefault(day, []).append(batch)
    return {day: pa.Table.from_batches(batches, schema=LEDGER_SCHEMA) for day, batches in by_day.items()}


def test_the_ledger_built_on_four_threads_is_the_ledger_built_on_one(raw_csv):
    source = SourceFile("s3://billing/cur/rai-cur-1.csv", read_cur_csv(raw_csv, "s3://billing/cur/rai-cur-1.csv"))
    one, four = _ledger(source, workers=1), _ledger(source, workers=4)
    assert sorted(one) == sorted(four) == DAYS
    assert sum(t.num_rows for t in four.values()) == 1281
    for day in DAYS:
        assert four[day].equals(one[day]), day
        numbers = four[day].column("x_SourceRowNumber").to_pylist()
        assert numbers == sorted(numbers)  # file order, whichever thread finished first


def test_the_first_bad_row_of_the_file_is_reported_whichever_thread_finds_it(raw_csv):
    # Two bad costs, in the 3rd and the 10th batch of 100 lines: the one nearer the top is reported.
    bad = _replace_field(raw_csv, 950, "lineItem/UnblendedCost", "12,5O")
    bad = _replace_field(bad, 240, "lineItem/UnblendedCost", "n/a")
    source = SourceFile("bad.csv", read_cur_csv(bad, "bad.csv"))
    with pytest.raises(BadInputError, match=r"bad\.csv line 240: field lineItem/UnblendedCost = 'n/a' is not a number"):
        _ledger(source, workers=4)


def test_empty_text_copied_from_the_export_becomes_null():
    rows = [
        _cur2_row("Usage", 1.0, line_item_resource_id="", product_sku="SKU1", line_item_availability_zone=""),
        _cur2_row("Usage", 2.0, line_item_resource_id="i-0abc", product_sku="", line_item_availability_zone="a"),
    ]
    ledger = pa.Table.from_batches(
        [b for _, b in cur_to_focus_days(SourceFile("x.parquet", _table(rows), 1), [date(2023, 11, 2)])]
    ).to_pylist()
    assert [(r["ResourceId"], r["SkuId"], r["AvailabilityZone"]) for r in ledger] == [
        (None, "SKU1", None),
        ("i-0abc", None, "a"),
    ]


def test_ordered_map_hands_results_back_in_input_order():
    def slow_for_early_items(item: int) -> int:
        time.sleep(0.02 * (5 - item % 5))  # later items finish first
        return item * item

    assert list(ordered_map(slow_for_early_items, range(12), workers=4)) == [i * i for i in range(12)]


def test_ordered_map_raises_the_first_failure_in_input_order():
    def fail_on_3_and_7(item: int) -> int:
        if item == 3:
            time.sleep(0.2)  # item 7 fails first in time
            raise ValueError("item 3")
        if item == 7:
            raise ValueError("item 7")
        return item

    seen = []
    with pytest.raises(ValueError, match="item 3"):
        for value in ordered_map(fail_on_3_and_7, range(10), workers=4):
            seen.append(value)
    assert seen == [0, 1, 2]


def test_ordered_map_keeps_at_most_one_batch_per_worker_and_one_waiting_in_flight():
    taken = 0
    lock = threading.Lock()

    def items():
        nonlocal taken
        for i in range(40):
            with lock:
                taken += 1
            yield i

    most_ahead = 0
    for handed_back, _ in enumerate(ordered_map(lambda i: i, items(), workers=3), start=1):
        time.sleep(0.002)
        most_ahead = max(most_ahead, taken - handed_back)
    assert most_ahead <= 3  # workers + 1 taken, of which one has just been handed back


def test_consume_in_background_sees_every_item_in_order_on_another_thread():
    seen, threads = [], set()

    def consume(item: int) -> None:
        seen.append(item)
        threads.add(threading.current_thread().name)

    consume_in_background(iter(range(200)), consume)
    assert seen == list(range(200))
    assert threads == ({"ledger-writer"} if usable_cores() > 1 else {threading.current_thread().name})


def test_a_failure_while_consuming_stops_the_producer_and_is_raised():
    made, closed = [], []

    def items():
        try:
            for i in range(10_000):
                made.append(i)
                yield i
        finally:
            closed.append(True)

    def consume(item: int) -> None:
        if item == 5:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        consume_in_background(items(), consume, depth=2)
    assert len(made) < 100  # it stopped making items soon after, not at the end of the file
    assert closed  # and the half-read file's generator was closed, so its workers stop now


def test_a_failure_while_producing_is_raised_after_the_consumer_has_finished():
    consumed = []

    def items():
        yield from range(3)
        raise BadInputError("x.parquet row 4: field BilledCost = 'n/a' is not a number")

    def consume(item: int) -> None:
        time.sleep(0.01)
        consumed.append(item)

    with pytest.raises(BadInputError, match="row 4"):
        consume_in_background(items(), consume)
    assert consumed == [0, 1, 2]  # nothing is left writing to a file the caller is about to discard


def test_a_focus_export_built_on_four_threads_is_the_ledger_built_on_one():
    from rai_pipelines.costs.sources.focus_export import AWS, focus_export_days
    from tests.costs.focus_export_data import AWS_ACCOUNT, AWS_SCHEMA, aws_rows
    from tests.costs.focus_export_data import DAYS as MAY_DAYS

    table = pa.Table.from_pylist(aws_rows(), schema=AWS_SCHEMA)
    source = SourceFile("s3://billing/focus/part-1.parquet", table, 1, "aws_focus", AWS_ACCOUNT)

    def ledger(workers: int) -> list[tuple[date, pa.RecordBatch]]:
        return list(focus_export_days(source, MAY_DAYS, AWS, batch_size=5, workers=workers))

    one, four = ledger(1), ledger(4)
    assert len(one) > 3 and [day for day, _ in four] == [day for day, _ in one]
    assert all(a.equals(b) for (_, a), (_, b) in zip(four, one, strict=True))
    assert sum(b.num_rows for _, b in four) == table.num_rows


def test_each_worker_gets_its_own_cursor_on_one_database_in_utc():
    from concurrent.futures import ThreadPoolExecutor

    from rai_pipelines.costs.ledger_schema import WorkerCursors

    cursors = WorkerCursors()
    cursors.database.execute("SET TimeZone = 'America/Los_Angeles'")  # as a machine's local zone would be
    cursors.database.execute("CREATE TABLE shared AS SELECT 1 AS x")

    def look(_):
        cursor = cursors.get()
        assert cursors.get() is cursor  # the same cursor for the same thread
        zone = cursor.sql("SELECT current_setting('TimeZone')").fetchall()[0][0]
        day = cursor.sql("SELECT CAST(TIMESTAMPTZ '2025-03-01 02:00:00+00' AS DATE)").fetchall()[0][0]
        seen = cursor.sql("SELECT x FROM shared").fetchall()[0][0]  # the one database, not a new one
        return id(cursor), zone, day.isoformat(), seen

    with ThreadPoolExecutor(max_workers=2) as pool:
        looks = list(pool.map(look, range(8)))
    cursors.close()
    assert {(zone, day, seen) for _, zone, day, seen in looks} == {("UTC", "2025-03-01", 1)}
    assert len({cursor for cursor, *_ in looks}) <= 2
