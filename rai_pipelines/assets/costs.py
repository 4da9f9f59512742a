"""The cost ledger: billing exports normalised to FOCUS, one partition per day."""

from collections import defaultdict
from datetime import date
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from rai_pipelines import focus
from rai_pipelines import ledger as ledger_rows
from rai_pipelines.ledger import LedgerSummary
from rai_pipelines.ledger_quality import LedgerProfile, validate_ledger
from rai_pipelines.markdown import table
from rai_pipelines.partitions import daily_partitions
from rai_pipelines.resources import BillingExportsResource, LakeResource

HALF_CENT = Decimal("0.005")


def _day(context) -> date:
    return date.fromisoformat(context.partition_key)


# The export files' digest a partition was built from; the restatement sensor compares it with now.
EXPORT_FINGERPRINT = "export_fingerprint"


@dg.asset(
    partitions_def=daily_partitions,
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
    day = _day(context)
    partition = {"date": day.isoformat()}
    # Taken before reading: a restatement during the read changes it, and the sensor notices.
    fingerprint = billing.export_fingerprint(day)
    sources = billing.read_day(day)
    store = lake.lake()
    summary = LedgerSummary()
    profile = LedgerProfile(focus.LEDGER_SCHEMA)
    # Streamed: each source's rows go to a staged file batch by batch, so memory does not grow with
    # the bill. The staged file is published only after it reconciles and conforms.
    with store.staged("cost_ledger", partition) as staged:
        with pq.ParquetWriter(staged.path, focus.LEDGER_SCHEMA, compression="zstd") as writer:
            for source in sources:
                for batch in ledger_rows.to_focus_batches(source, day):
                    writer.write_batch(batch)
                    summary.add(batch)
                    profile.add(batch)
        before = reconcile(day, summary.billed_by_source, sources)
        if not before.passed:
            raise dg.Failure(
                description=f"cost ledger for {day} does not reconcile with its exports; nothing was written",
                metadata=before.metadata,
            )
        conformance = validate_ledger(profile)
        if not conformance.passed:
            raise dg.Failure(
                description=f"cost ledger for {day} does not conform to FOCUS 1.2; nothing was written",
                metadata={"findings": dg.MetadataValue.md(_findings_table(conformance))},
            )
        uri = staged.publish()
    written: dict[str, Decimal] = defaultdict(Decimal)
    for batch in store.iter_batches("cost_ledger", partition, columns=["x_SourceUri", "BilledCost"]):
        for uri_written, cost in LedgerSummary._sums(pa.Table.from_batches([batch]), ["x_SourceUri"], "BilledCost"):
            written[uri_written] += cost

    effective = summary.effective
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": summary.rows,
            "dagster/uri": uri,
            "source_files": dg.MetadataValue.json([s.uri for s in sources]),
            EXPORT_FINGERPRINT: fingerprint,
            "billed_cost": dg.MetadataValue.json({c: float(v) for c, v in sorted(summary.billed_by_currency.items())}),
            "billed_cost_usd": float(summary.billed_by_currency.get("USD", Decimal(0))),
            "effective_cost": float(effective),
            "untagged_effective_cost": float(summary.untagged_effective),
            "untagged_share": float(summary.untagged_effective / effective) if effective else 0.0,
            "cost_by_service": dg.MetadataValue.md(
                table(
                    ["service", "currency", "billed"],
                    [
                        (s, c, f"{v:.6f}")
                        for (s, c), v in sorted(summary.billed_by_service.items(), key=lambda item: -item[1])
                    ],
                )
            ),
            "cost_by_model_version": dg.MetadataValue.md(
                table(
                    ["model", "version", "effective (billing currency)"],
                    [
                        (m, v or "(untagged version)", f"{c:.4f}")
                        for (m, v), c in sorted(
                            summary.effective_by_model.items(), key=lambda i: (i[0][0], i[0][1] or "")
                        )
                    ],
                )
            ),
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(f.name, str(f.type)) for f in focus.LEDGER_SCHEMA]
            ),
        }
    )
    yield reconcile(day, written, sources)  # the partition as read back from the lake
    yield dg.AssetCheckResult(
        check_name="focus_conformance",
        passed=conformance.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"expectations": conformance.evaluated, "findings": dg.MetadataValue.md(_findings_table(conformance))},
    )


def _findings_table(result) -> str:
    if not result.findings:
        return "none"
    return table(["column", "expectation", "finding"], [(f.column, f.expectation, f.detail) for f in result.findings])


def reconcile(day: date, ledger_totals: dict[str, Decimal], sources: list[focus.SourceFile]) -> dg.AssetCheckResult:
    """Compare the ledger's billed total per source file with the export's own total for the day,
    to the cent. A day with no export file at all fails: a missing or misplaced export is not a zero
    bill."""
    ledger_totals_in, ledger_totals = ledger_totals, dict(ledger_totals)
    rows, mismatched = [], []
    for source in sources:
        expected = ledger_rows.daily_totals(source).get(day.isoformat(), Decimal(0))
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
