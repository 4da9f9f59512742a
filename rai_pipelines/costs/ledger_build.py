"""Building the cost ledger's daily partitions from the billing sources' readers.

A range of days is built one billing period at a time: each export file is read once for all of
its days, its rows streamed batch by batch into each day's staged partition. A billing period is
published only when every one of its days reconciles with its exports and conforms to FOCUS;
otherwise nothing of it is (LedgerNotPublished says which day and why).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq

from rai_pipelines.core import datasets
from rai_pipelines.core.errors import BadInputError, RaiError
from rai_pipelines.core.quality import SuiteResult
from rai_pipelines.costs import ledger
from rai_pipelines.costs.conformance import LedgerProfile, validate_ledger
from rai_pipelines.costs.ledger import OTHER_COSTS, LedgerSummary, grouped_sums
from rai_pipelines.costs.ledger_schema import LEDGER_SCHEMA, SourceFile
from rai_pipelines.costs.parallel import consume_in_background
from rai_pipelines.costs.quarantine import RejectedRow, rejected_row
from rai_pipelines.costs.reconciliation import Reconciliation, reconcile_all


class LedgerNotPublished(RaiError):
    """A billing period whose ledger was not published: a day that does not reconcile or conform."""

    def __init__(
        self,
        message: str,
        reconciliation: Reconciliation | None = None,
        conformance: SuiteResult | None = None,
        rejected: list[RejectedRow] | None = None,
    ):
        super().__init__(message)
        self.reconciliation = reconciliation
        self.conformance = conformance
        self.rejected = rejected or []  # the export rows refused, for the quarantine


@dataclass
class BuiltDay:
    day: date
    fingerprint: str  # the digest of the export files the day was built from
    sources: list[SourceFile]
    summary: LedgerSummary
    conformance: SuiteResult
    witness: dict[str, dict[str, dict[str, dict[str, Decimal]]]]  # file -> cost -> day -> currency -> total
    uri: str = ""
    after: Reconciliation | None = None  # the reconciliation of the partition as read back


def billing_periods(days: list[date]) -> list[list[date]]:
    periods: dict[tuple[int, int], list[date]] = defaultdict(list)
    for day in days:
        periods[(day.year, day.month)].append(day)
    return [periods[key] for key in sorted(periods)]


def export_fingerprint(readers: list, day: date) -> str:
    """A digest of the export files (path, size, modification time) of the day's billing period,
    over every source: it changes when a provider restates the period."""
    files = sorted(f for reader in readers for f in reader.fingerprint(day))
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()[:24]


def read_days(readers: list, days: list[date]) -> dict[date, list[SourceFile]]:
    """Each day's source files; a reader whose files cover a billing period reads them once per
    month for all of its days (a backfill would otherwise read a month's CSV once per day)."""
    files: dict[date, list[SourceFile]] = {day: [] for day in days}
    for reader in readers:
        by_period: dict[tuple[int, int], list[SourceFile]] = {}
        for day in days:
            if getattr(reader, "files_cover_billing_period", False):
                period = (day.year, day.month)
                if period not in by_period:
                    by_period[period] = reader.read(day)
                files[day].extend(by_period[period])
            else:
                files[day].extend(reader.read(day))
    return files


def build_period(store, readers: list, days: list[date]) -> dict[date, BuiltDay]:
    # Taken before reading: a restatement during the read changes it, and the sensor notices.
    fingerprints = {day: export_fingerprint(readers, day) for day in days}
    sources = read_days(readers, days)
    # A billing period's files serve every one of its days: each file is read once, for all of them.
    files: dict[str, SourceFile] = {}
    days_of: dict[str, list[date]] = defaultdict(list)
    for day in days:
        for source in sources[day]:
            files.setdefault(source.uri, source)
            days_of[source.uri].append(day)
    summaries = {day: LedgerSummary() for day in days}
    profiles = {day: LedgerProfile(LEDGER_SCHEMA) for day in days}
    with ExitStack() as stack:
        staged = {
            day: stack.enter_context(store.staged(datasets.COST_LEDGER, {"date": day.isoformat()})) for day in days
        }
        # Streamed: rows go to each day's staged file batch by batch, so memory does not grow with
        # the bill; a staged file is published only after its day reconciles and conforms.
        writers = {day: pq.ParquetWriter(staged[day].path, LEDGER_SCHEMA, compression="zstd") for day in days}
        try:

            def write(item: tuple[date, pa.RecordBatch]) -> None:
                day, batch = item
                writers[day].write_batch(batch)
                summaries[day].add(batch)
                profiles[day].add(batch)

            for uri, source in files.items():
                try:
                    consume_in_background(ledger.to_focus_days(source, days_of[uri]), write)
                except BadInputError as refused:
                    raise LedgerNotPublished(
                        f"{refused}; nothing of {days[0]:%Y-%m} was written",
                        rejected=[rejected_row(source, refused)],
                    ) from refused
        finally:
            for writer in writers.values():
                writer.close()
        built = {}
        witness: dict = {}  # each file's totals of every cost, computed once for all its days
        # The FOCUS suite on each day's profile runs on a thread beside the witness's pass over the
        # exports: GE's Python and the witness's Arrow work overlap.
        suites = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-conformance")
        try:
            conformances = {day: suites.submit(validate_ledger, profiles[day]) for day in days}
            for day in days:
                before = reconcile_all(day, summaries[day].costs(), sources[day], witness)
                if not before.covered:
                    raise LedgerNotPublished(
                        f"cost ledger for {day}: the billing exports do not cover this day (yet), which is not a "
                        f"zero bill; nothing of {day:%Y-%m} was written",
                        reconciliation=before,
                    )
                if not before.passed:
                    raise LedgerNotPublished(
                        f"cost ledger for {day} does not reconcile with its exports; nothing of {day:%Y-%m} was "
                        "written",
                        reconciliation=before,
                    )
                conformance = conformances[day].result()
                if not conformance.passed:
                    raise LedgerNotPublished(
                        f"cost ledger for {day} does not conform to FOCUS 1.3; nothing of {day:%Y-%m} was written",
                        conformance=conformance,
                    )
                built[day] = BuiltDay(day, fingerprints[day], sources[day], summaries[day], conformance, witness)
        finally:
            suites.shutdown(cancel_futures=True)
        for day in days:
            built[day].uri = staged[day].publish()
    return built


def ledger_totals_as_written(store, day: date) -> dict[str, dict[str, dict[str, Decimal]]]:
    """Each reconciled cost's total per source file and currency of a published partition, read
    back from the lake: source -> cost column -> currency -> total."""
    costs = ("BilledCost", *OTHER_COSTS)
    written: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(Decimal)))
    partition = {"date": day.isoformat()}
    columns = ["x_SourceUri", "BillingCurrency", *costs]
    for batch in store.iter_batches(datasets.COST_LEDGER, partition, columns=columns):
        table = pa.Table.from_batches([batch])
        for column in costs:
            for uri, currency, cost in grouped_sums(table, columns[:2], column):
                written[uri][column][currency] += cost
    return {uri: {c: dict(t) for c, t in by_cost.items()} for uri, by_cost in written.items()}
