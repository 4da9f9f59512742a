"""The cost ledger: billing exports normalised to FOCUS, one partition per day."""

from collections import defaultdict
from datetime import date
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from rai_pipelines import focus
from rai_pipelines import ledger as ledger_rows
from rai_pipelines.ledger_quality import validate_ledger
from rai_pipelines.markdown import table
from rai_pipelines.partitions import daily_partitions
from rai_pipelines.resources import BillingExportsResource, LakeResource

HALF_CENT = Decimal("0.005")


def _day(context) -> date:
    return date.fromisoformat(context.partition_key)


def _sum(values: pa.ChunkedArray) -> Decimal:
    total = pc.sum(values).as_py()
    return Decimal(0) if total is None else Decimal(total)


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
    # Taken before reading: a restatement during the read changes it, and the sensor notices.
    fingerprint = billing.export_fingerprint(day)
    sources = billing.read_day(day)
    parts = [ledger_rows.to_focus(source, day) for source in sources]
    ledger = pa.concat_tables(parts) if parts else focus.empty_ledger()
    # Reconcile before publishing: a ledger that does not match its exports is never written.
    before = reconcile(day, ledger, sources)
    if not before.passed:
        raise dg.Failure(
            description=f"cost ledger for {day} does not reconcile with its exports; nothing was written",
            metadata=before.metadata,
        )
    # FOCUS conformance, also before publishing: a ledger that breaks the contract is never written.
    conformance = validate_ledger(ledger)
    if not conformance.passed:
        raise dg.Failure(
            description=f"cost ledger for {day} does not conform to FOCUS 1.2; nothing was written",
            metadata={"findings": dg.MetadataValue.md(_findings_table(conformance))},
        )
    store = lake.lake()
    uri = store.write_table("cost_ledger", {"date": day.isoformat()}, ledger)
    written = store.read_table("cost_ledger", {"date": day.isoformat()}, columns=["x_SourceUri", "BilledCost"])

    by_service: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for service, currency, cost in zip(
        ledger.column("ServiceName").to_pylist(),
        ledger.column("BillingCurrency").to_pylist(),
        ledger.column("BilledCost").to_pylist(),
        strict=True,
    ):
        by_service[(service or "(none)", currency)] += cost
    effective = _sum(ledger.column("EffectiveCost"))
    billed_by_currency: dict[str, Decimal] = defaultdict(Decimal)
    for currency, cost in zip(
        ledger.column("BillingCurrency").to_pylist(), ledger.column("BilledCost").to_pylist(), strict=True
    ):
        billed_by_currency[currency] += cost
    untagged_mask = pc.is_null(ledger.column("x_ModelName"))
    untagged = _sum(pc.filter(ledger.column("EffectiveCost"), untagged_mask)) if ledger.num_rows else Decimal(0)
    by_model: dict[tuple, Decimal] = defaultdict(Decimal)
    for model, version, cost in zip(
        ledger.column("x_ModelName").to_pylist(),
        ledger.column("x_ModelVersion").to_pylist(),
        ledger.column("EffectiveCost").to_pylist(),
        strict=False,
    ):
        if model:
            by_model[(model, version)] += cost
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": ledger.num_rows,
            "dagster/uri": uri,
            "source_files": dg.MetadataValue.json([s.uri for s in sources]),
            EXPORT_FINGERPRINT: fingerprint,
            "billed_cost": dg.MetadataValue.json({c: float(v) for c, v in sorted(billed_by_currency.items())}),
            "billed_cost_usd": float(billed_by_currency.get("USD", Decimal(0))),
            "effective_cost": float(effective),
            "untagged_effective_cost": float(untagged),
            "untagged_share": float(untagged / effective) if effective else 0.0,
            "cost_by_service": dg.MetadataValue.md(
                table(
                    ["service", "currency", "billed"],
                    [(s, c, f"{v:.6f}") for (s, c), v in sorted(by_service.items(), key=lambda item: -item[1])],
                )
            ),
            "cost_by_model_version": dg.MetadataValue.md(
                table(
                    ["model", "version", "effective (billing currency)"],
                    [(m, v, f"{c:.4f}") for (m, v), c in sorted(by_model.items())],
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


def reconcile(day: date, ledger: pa.Table, sources: list[focus.SourceFile]) -> dg.AssetCheckResult:
    """Compare the ledger, per source file, with the export's own totals for the day, to the cent.
    A day with no export file at all fails: a missing or misplaced export is not a zero bill."""
    ledger_totals: dict[str, Decimal] = defaultdict(Decimal)
    for uri, cost in zip(
        ledger.column("x_SourceUri").to_pylist(), ledger.column("BilledCost").to_pylist(), strict=False
    ):
        ledger_totals[uri] += cost
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
    return dg.AssetCheckResult(
        check_name="reconciles_with_export",
        passed=bool(sources) and not mismatched,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "day": day.isoformat(),
            "mismatched_sources": dg.MetadataValue.json(mismatched),
            "totals": dg.MetadataValue.md(table(["source", "export USD", "ledger USD", "status"], rows)),
        },
    )
