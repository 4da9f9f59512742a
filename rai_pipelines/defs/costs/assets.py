"""The cost ledger: billing exports normalised to FOCUS, one partition per day. The building,
reconciliation and conformance are plain logic (costs.ledger_build); this module turns them into
Dagster's materialisation, checks and failures."""

import warnings
from datetime import date
from decimal import Decimal

import dagster as dg

from rai_pipelines.core import datasets
from rai_pipelines.core.markdown import table
from rai_pipelines.costs.ledger_build import (
    BuiltDay,
    LedgerNotPublished,
    billing_periods,
    build_period,
    ledger_totals_as_written,
)
from rai_pipelines.costs.ledger_schema import LEDGER_SCHEMA
from rai_pipelines.costs.quarantine import quarantine_table
from rai_pipelines.costs.reconciliation import Reconciliation, reconcile_all
from rai_pipelines.defs.costs.resources import BillingExportsResource
from rai_pipelines.defs.keys import COST_LEDGER
from rai_pipelines.defs.resources import LakeResource

# The export files' digest a partition was built from; the restatement sensor compares it with now.
EXPORT_FINGERPRINT = "export_fingerprint"
RECONCILES = "reconciles_with_export"
CONFORMS = "focus_conformance"


def build_cost_ledger(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    # `backfill_policy` is a beta parameter of @asset in Dagster 1.13, used knowingly (one run per
    # backfill): its notice is silenced here, where it is raised, not for the whole process.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Parameter `backfill_policy` of function `asset` is currently in beta"
        )

        @dg.asset(
            name=COST_LEDGER.path[-1],
            partitions_def=partitions_def,
            # A backfill is one run: each billing period's export is read once for all of its days.
            backfill_policy=dg.BackfillPolicy.single_run(),
            group_name="finops",
            kinds={"duckdb", "parquet"},
            description="Every charge of the day from the billing exports, in FOCUS 1.3 columns (and the 1.2 "
            "ones 1.3 deprecates) plus x_ lineage and attribution (model, version, team, environment from "
            "resource tags).",
            check_specs=[
                dg.AssetCheckSpec(
                    RECONCILES,
                    asset=COST_LEDGER,
                    blocking=True,
                    description="For each export file, the ledger's billed total for the day equals the export's "
                    "own total to the cent, computed apart from the normalisation, straight from the raw values.",
                ),
                dg.AssetCheckSpec(
                    CONFORMS,
                    asset=COST_LEDGER,
                    blocking=True,
                    description="Great Expectations: FOCUS 1.3 mandatory columns present and filled, allowed "
                    "values (ChargeCategory, ChargeClass, ChargeFrequency, PricingCategory, ServiceCategory), ISO "
                    "4217 currencies, charge periods that end after they start, UTC timestamps, custom columns "
                    "prefixed x_.",
                ),
            ],
        )
        def cost_ledger(context: dg.AssetExecutionContext, lake: LakeResource, billing: BillingExportsResource):
            """One day from the daily schedule, or a range of days as one run from a backfill: each
            billing period's export files are then read once for all its days. Days are published a
            billing period at a time, and only when every day of the period reconciles and conforms; a
            failing period stops the run, leaving the periods before it published (each checked) and
            nothing of itself."""
            days = sorted(date.fromisoformat(key) for key in context.partition_keys)
            store = lake.lake()
            readers = billing.readers()
            built: dict[date, BuiltDay] = {}
            for period in billing_periods(days):
                try:
                    built.update(build_period(store, readers, period))
                except LedgerNotPublished as refused:
                    metadata = _refusal_metadata(refused)
                    if refused.rejected:
                        where = store.write_table(
                            datasets.COST_LEDGER_QUARANTINE,
                            {"period": f"{period[0]:%Y-%m}"},
                            quarantine_table(refused.rejected),
                        )
                        metadata["quarantine"] = dg.MetadataValue.path(where)
                    raise dg.Failure(description=str(refused), metadata=metadata) from refused
            for day in days:  # the partition as read back from the lake
                built[day].after = reconcile_all(
                    day, ledger_totals_as_written(store, day), built[day].sources, built[day].witness
                )
            if len(days) == 1:
                (only,) = built.values()
                yield dg.MaterializeResult(metadata=_day_metadata(only))
                yield _reconciliation_check(only.after)
                yield _conformance_check(only.conformance)
                return
            yield dg.MaterializeResult(metadata=_range_metadata([built[d] for d in days]))
            yield dg.AssetCheckResult(
                check_name=RECONCILES,
                passed=all(b.after.passed for b in built.values()),
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "days": dg.MetadataValue.md(
                        table(
                            ["day", "status"],
                            [(d.isoformat(), "ok" if built[d].after.passed else "MISMATCH") for d in days],
                        )
                    )
                },
            )
            yield dg.AssetCheckResult(
                check_name=CONFORMS,
                passed=all(b.conformance.passed for b in built.values()),
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"expectations per day": built[days[0]].conformance.evaluated},
            )

    return cost_ledger


def _reconciliation_metadata(result: Reconciliation) -> dict:
    return {
        "day": result.day.isoformat(),
        "mismatched_sources": dg.MetadataValue.json(result.mismatched),
        "totals": dg.MetadataValue.md(
            table(["source", "currency", "export total", "ledger total", "status"], result.rows)
        ),
        "other_costs": dg.MetadataValue.md(
            table(["source", "cost", "currency", "export total", "ledger total", "status"], result.cost_rows)
        ),
    }


def _reconciliation_check(result: Reconciliation) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=RECONCILES,
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=_reconciliation_metadata(result),
    )


def _refusal_metadata(refused: LedgerNotPublished) -> dict:
    if refused.reconciliation is not None:
        return _reconciliation_metadata(refused.reconciliation)
    if refused.conformance is not None:
        return {"findings": dg.MetadataValue.md(_findings_table(refused.conformance))}
    rows = [(r.uri, str(r.row or "–"), r.field or "–", r.reason) for r in refused.rejected]
    return {"rejected": dg.MetadataValue.md(table(["source", "row", "field", "reason"], rows))}


def _by_currency(totals: dict[str, Decimal]) -> dg.MetadataValue:
    return dg.MetadataValue.json({c: float(v) for c, v in sorted(totals.items())})


def _day_metadata(built: BuiltDay) -> dict:
    """The day's figures, every total per billing currency (a USD and a CAD bill are not added)."""
    summary = built.summary
    currencies = sorted(summary.effective_by_currency)
    return {
        "dagster/row_count": summary.rows,
        "dagster/uri": built.uri,
        "source_files": dg.MetadataValue.json([s.uri for s in built.sources]),
        EXPORT_FINGERPRINT: built.fingerprint,
        "billed_cost": _by_currency(summary.billed_by_currency),
        "effective_cost": _by_currency(summary.effective_by_currency),
        "untagged_effective_cost": _by_currency(summary.untagged_by_currency),
        "untagged_share": dg.MetadataValue.json({c: summary.untagged_share(c) for c in currencies}),
        "cost_by_service": dg.MetadataValue.md(
            table(
                ["service", "currency", "billed"],
                [(s, c, f"{v:.6f}") for (s, c), v in sorted(summary.billed_by_service.items(), key=lambda i: -i[1])],
            )
        ),
        "cost_by_model_version": dg.MetadataValue.md(
            table(
                ["model", "version", "currency", "effective"],
                [
                    (m, v or "(untagged version)", c, f"{cost:.4f}")
                    for (m, v, c), cost in sorted(
                        summary.effective_by_model.items(), key=lambda i: (i[0][0], i[0][1] or "", i[0][2])
                    )
                ],
            )
        ),
        "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in LEDGER_SCHEMA]),
    }


def _range_metadata(days: list[BuiltDay]) -> dict:
    """A backfill run's one materialisation, shared by its days: each day's figures per currency in
    a table, and each day's export digest by day (what the restatement sensor compares)."""
    rows = []
    for built in days:
        summary = built.summary
        for currency in sorted(summary.effective_by_currency) or ["–"]:
            rows.append(
                (
                    built.day.isoformat(),
                    currency,
                    summary.rows,
                    f"{summary.billed_by_currency.get(currency, Decimal(0)):.2f}",
                    f"{summary.effective_by_currency.get(currency, Decimal(0)):.2f}",
                    f"{summary.untagged_share(currency):.1%}",
                )
            )
    header = ["day", "currency", "rows", "billed", "effective", "untagged share"]
    return {
        "days": dg.MetadataValue.md(table(header, rows)),
        EXPORT_FINGERPRINT: dg.MetadataValue.json({b.day.isoformat(): b.fingerprint for b in days}),
        "rows": sum(b.summary.rows for b in days),
        "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in LEDGER_SCHEMA]),
    }


def _conformance_check(conformance) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=CONFORMS,
        passed=conformance.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"expectations": conformance.evaluated, "findings": dg.MetadataValue.md(_findings_table(conformance))},
    )


def _findings_table(result) -> str:
    if not result.findings:
        return "none"
    return table(["column", "expectation", "finding"], [(f.column, f.expectation, f.detail) for f in result.findings])
