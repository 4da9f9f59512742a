"""The cost ledger: billing exports normalised to FOCUS, one partition per day."""

import warnings
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from rai_pipelines.core.markdown import table
from rai_pipelines.costs import ledger as ledger_rows
from rai_pipelines.costs.conformance import LedgerProfile, validate_ledger
from rai_pipelines.costs.ledger import LedgerSummary, grouped_sums
from rai_pipelines.costs.ledger_schema import LEDGER_SCHEMA, SourceFile
from rai_pipelines.defs.costs.resources import BillingExportsResource
from rai_pipelines.defs.partitions import daily_partitions
from rai_pipelines.defs.resources import LakeResource

HALF_CENT = Decimal("0.005")

# `backfill_policy` is a beta parameter of @asset in Dagster 1.13; it is used knowingly (one run per
# backfill), so the code location does not print the warning at every load.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy` of function `asset` is currently in beta")


# The export files' digest a partition was built from; the restatement sensor compares it with now.
EXPORT_FINGERPRINT = "export_fingerprint"


@dg.asset(
    partitions_def=daily_partitions,
    # A backfill is one run: each billing period's export is read once for all of its days.
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="finops",
    kinds={"duckdb", "parquet"},
    description="Every charge of the day from the billing exports, in FOCUS 1.2 columns plus x_ "
    "lineage and attribution (model, version, team, environment from resource tags).",
    check_specs=[
        dg.AssetCheckSpec(
            "reconciles_with_export",
            asset="cost_ledger",
            blocking=True,
            description="For each export file, the ledger's billed total for the day equals the export's own "
            "total to the cent, computed apart from the normalisation, straight from the raw values.",
        ),
        dg.AssetCheckSpec(
            "focus_conformance",
            asset="cost_ledger",
            blocking=True,
            description="Great Expectations: FOCUS 1.2 mandatory columns present and filled, allowed values "
            "(ChargeCategory, ChargeClass, ChargeFrequency, PricingCategory, ServiceCategory), ISO 4217 currencies, "
            "charge periods that end after they start, UTC timestamps, custom columns prefixed x_.",
        ),
    ],
)
def cost_ledger(context: dg.AssetExecutionContext, lake: LakeResource, billing: BillingExportsResource):
    """One day from the daily schedule, or a range of days as one run from a backfill: each billing
    period's export files are then read once for all its days. Days are published a billing period
    at a time, and only when every day of the period reconciles and conforms; a failing period
    stops the run, leaving the periods before it published (each checked) and nothing of itself."""
    days = sorted(date.fromisoformat(key) for key in context.partition_keys)
    store = lake.lake()
    built: dict[date, _BuiltDay] = {}
    for period in _billing_periods(days):
        built.update(_build_period(store, billing, period))
    for day in days:
        written: dict[str, Decimal] = defaultdict(Decimal)
        partition = {"date": day.isoformat()}
        for batch in store.iter_batches("cost_ledger", partition, columns=["x_SourceUri", "BilledCost"]):
            for uri, cost in grouped_sums(pa.Table.from_batches([batch]), ["x_SourceUri"], "BilledCost"):
                written[uri] += cost
        # as read back from the lake
        built[day].after = reconcile(day, written, built[day].sources, built[day].witness)
    if len(days) == 1:
        (only,) = built.values()
        yield dg.MaterializeResult(metadata=_day_metadata(only))
        yield only.after
        yield _conformance_check(only.conformance)
        return
    yield dg.MaterializeResult(metadata=_range_metadata([built[d] for d in days]))
    yield dg.AssetCheckResult(
        check_name="reconciles_with_export",
        passed=all(b.after.passed for b in built.values()),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "days": dg.MetadataValue.md(
                table(["day", "status"], [(d.isoformat(), "ok" if built[d].after.passed else "MISMATCH") for d in days])
            )
        },
    )
    yield dg.AssetCheckResult(
        check_name="focus_conformance",
        passed=all(b.conformance.passed for b in built.values()),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"expectations per day": built[days[0]].conformance.evaluated},
    )


@dataclass
class _BuiltDay:
    day: date
    fingerprint: str
    sources: list[SourceFile]
    summary: LedgerSummary
    conformance: object
    witness: dict[str, dict[str, Decimal]]
    uri: str = ""
    after: dg.AssetCheckResult | None = None


def _billing_periods(days: list[date]) -> list[list[date]]:
    periods: dict[tuple[int, int], list[date]] = defaultdict(list)
    for day in days:
        periods[(day.year, day.month)].append(day)
    return [periods[key] for key in sorted(periods)]


def _build_period(store, billing: BillingExportsResource, days: list[date]) -> dict[date, _BuiltDay]:
    # Taken before reading: a restatement during the read changes it, and the sensor notices.
    fingerprints = {day: billing.export_fingerprint(day) for day in days}
    sources = billing.read_days(days)
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
        staged = {day: stack.enter_context(store.staged("cost_ledger", {"date": day.isoformat()})) for day in days}
        # Streamed: rows go to each day's staged file batch by batch, so memory does not grow with
        # the bill; a staged file is published only after its day reconciles and conforms.
        writers = {day: pq.ParquetWriter(staged[day].path, LEDGER_SCHEMA, compression="zstd") for day in days}
        try:
            for uri, source in files.items():
                for day, batch in ledger_rows.to_focus_days(source, days_of[uri]):
                    writers[day].write_batch(batch)
                    summaries[day].add(batch)
                    profiles[day].add(batch)
        finally:
            for writer in writers.values():
                writer.close()
        built = {}
        witness: dict[str, dict[str, Decimal]] = {}  # each file's totals, computed once for all its days
        for day in days:
            before = reconcile(day, summaries[day].billed_by_source, sources[day], witness)
            if not before.passed:
                raise dg.Failure(
                    description=f"cost ledger for {day} does not reconcile with its exports; nothing of "
                    f"{day:%Y-%m} was written",
                    metadata=before.metadata,
                )
            conformance = validate_ledger(profiles[day])
            if not conformance.passed:
                raise dg.Failure(
                    description=f"cost ledger for {day} does not conform to FOCUS 1.2; nothing of {day:%Y-%m} "
                    "was written",
                    metadata={"findings": dg.MetadataValue.md(_findings_table(conformance))},
                )
            built[day] = _BuiltDay(day, fingerprints[day], sources[day], summaries[day], conformance, witness)
        for day in days:
            built[day].uri = staged[day].publish()
    return built


def _day_metadata(built: _BuiltDay) -> dict:
    summary = built.summary
    effective = summary.effective
    return {
        "dagster/row_count": summary.rows,
        "dagster/uri": built.uri,
        "source_files": dg.MetadataValue.json([s.uri for s in built.sources]),
        EXPORT_FINGERPRINT: built.fingerprint,
        "billed_cost": dg.MetadataValue.json({c: float(v) for c, v in sorted(summary.billed_by_currency.items())}),
        "billed_cost_usd": float(summary.billed_by_currency.get("USD", Decimal(0))),
        "effective_cost": float(effective),
        "untagged_effective_cost": float(summary.untagged_effective),
        "untagged_share": float(summary.untagged_effective / effective) if effective else 0.0,
        "cost_by_service": dg.MetadataValue.md(
            table(
                ["service", "currency", "billed"],
                [(s, c, f"{v:.6f}") for (s, c), v in sorted(summary.billed_by_service.items(), key=lambda i: -i[1])],
            )
        ),
        "cost_by_model_version": dg.MetadataValue.md(
            table(
                ["model", "version", "effective (billing currency)"],
                [
                    (m, v or "(untagged version)", f"{c:.4f}")
                    for (m, v), c in sorted(summary.effective_by_model.items(), key=lambda i: (i[0][0], i[0][1] or ""))
                ],
            )
        ),
        "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in LEDGER_SCHEMA]),
    }


def _range_metadata(days: list[_BuiltDay]) -> dict:
    """A backfill run's one materialisation, shared by its days: each day's figures in a table, and
    each day's export digest by day (what the restatement sensor compares)."""
    rows = []
    for built in days:
        summary = built.summary
        effective = summary.effective
        rows.append(
            (
                built.day.isoformat(),
                summary.rows,
                f"{summary.billed_by_currency.get('USD', Decimal(0)):.2f}",
                f"{effective:.2f}",
                f"{(summary.untagged_effective / effective) if effective else 0:.1%}",
            )
        )
    return {
        "days": dg.MetadataValue.md(table(["day", "rows", "billed USD", "effective", "untagged share"], rows)),
        EXPORT_FINGERPRINT: dg.MetadataValue.json({b.day.isoformat(): b.fingerprint for b in days}),
        "rows": sum(b.summary.rows for b in days),
        "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in LEDGER_SCHEMA]),
    }


def _conformance_check(conformance) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="focus_conformance",
        passed=conformance.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"expectations": conformance.evaluated, "findings": dg.MetadataValue.md(_findings_table(conformance))},
    )


def _findings_table(result) -> str:
    if not result.findings:
        return "none"
    return table(["column", "expectation", "finding"], [(f.column, f.expectation, f.detail) for f in result.findings])


def reconcile(
    day: date,
    ledger_totals: dict[str, Decimal],
    sources: list[SourceFile],
    witness: dict[str, dict[str, Decimal]] | None = None,
) -> dg.AssetCheckResult:
    """Compare the ledger's billed total per source file with the export's own total for the day,
    to the cent. A day with no export file at all fails: a missing or misplaced export is not a zero
    bill. `witness` holds the export totals already computed per file (every day of a file at once)."""
    ledger_totals_in, ledger_totals = ledger_totals, dict(ledger_totals)
    witness = {} if witness is None else witness
    rows, mismatched = [], []
    for source in sources:
        if source.uri not in witness:
            witness[source.uri] = ledger_rows.daily_totals(source)
        expected = witness[source.uri].get(day.isoformat(), Decimal(0))
        got = ledger_totals.pop(source.uri, Decimal(0))
        ok = abs(expected - got) < HALF_CENT
        rows.append((source.uri, f"{expected:.6f}", f"{got:.6f}", "ok" if ok else "MISMATCH"))
        if not ok:
            mismatched.append(source.uri)
    for uri, got in ledger_totals.items():  # ledger rows whose source is no longer in the export
        rows.append((uri, "0", f"{got:.6f}", "MISMATCH"))
        mismatched.append(uri)
    if not sources:
        rows.append(("(no export file covers this day)", "–", "–", "MISSING"))
    # Export files that hold no line item at all for the day: a day cut out of the export, not a
    # zero bill (an account's bill has charges every day; a month starting later has no file yet).
    empty = bool(sources) and not ledger_totals_in
    if empty:
        rows.append(("(the export files hold no line item for this day)", "–", "–", "EMPTY"))
    return dg.AssetCheckResult(
        check_name="reconciles_with_export",
        passed=bool(sources) and not mismatched and not empty,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "day": day.isoformat(),
            "mismatched_sources": dg.MetadataValue.json(mismatched),
            "totals": dg.MetadataValue.md(table(["source", "export USD", "ledger USD", "status"], rows)),
        },
    )
