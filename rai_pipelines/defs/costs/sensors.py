"""The billing restatement sensor: providers rewrite the current month's billing files; the days
built from files that have changed since are re-materialised."""

from datetime import date, timedelta

import dagster as dg

from rai_pipelines.defs.costs.assets import EXPORT_FINGERPRINT
from rai_pipelines.defs.costs.resources import BillingExportsResource
from rai_pipelines.defs.keys import COST_LEDGER


def build_restatement_sensor(
    job, facts: list[dg.AssetKey], lookback_days: int = 62, minimum_interval_seconds: int = 300
) -> dg.SensorDefinition:
    """`facts`: every model's governance facts, which read the day's ledger."""
    """Providers rewrite the current (and, until it closes, the previous) month's billing files
    several times a day. Each ledger partition records the digest of the export files it was built
    from; a day whose billing-period files now have another digest is re-materialised. Rebuilding a
    day replaces its partition, so a restatement never double-counts."""

    @dg.sensor(
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Billing restatements: re-materialises the cost ledger (and the day's governance facts) of "
        "every recent day whose billing export files changed since the day was built.",
    )
    def billing_restatement_sensor(context: dg.SensorEvaluationContext, billing: BillingExportsResource):
        built = sorted(context.instance.get_materialized_partitions(COST_LEDGER))
        if not built:
            return dg.SkipReason("no cost ledger partition has been materialised yet")
        horizon = (date.fromisoformat(built[-1]) - timedelta(days=lookback_days)).isoformat()
        recent = [d for d in built if d >= horizon]
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=COST_LEDGER, asset_partitions=recent), limit=len(recent) * 4
        ).records
        recorded: dict[str, str | None] = {}
        for record in records:  # newest first: keep each day's latest materialisation
            materialisation = record.asset_materialization
            if materialisation.partition in recorded:
                continue
            value = materialisation.metadata.get(EXPORT_FINGERPRINT)
            value = value.value if value is not None else None
            if isinstance(value, dict):  # a backfill run of several days records each day's digest
                value = value.get(materialisation.partition)
            recorded[materialisation.partition] = value
        requests = []
        for day in recent:
            period = day[:7]
            # Per day: a CUR's digest covers its billing period, a BigQuery export's only the day.
            now = billing.export_fingerprint(date.fromisoformat(day))
            if recorded.get(day) != now:
                requests.append(
                    dg.RunRequest(
                        run_key=f"restated:{day}:{now}",
                        partition_key=day,
                        asset_selection=[COST_LEDGER, *facts],
                        tags={"rai-pipelines/restated-billing-period": period},
                    )
                )
        if not requests:
            return dg.SkipReason(f"the export files of the last {len(recent)} built day(s) are unchanged")
        context.log.info(f"billing restated: rebuilding {', '.join(r.partition_key for r in requests)}")
        return requests

    return billing_restatement_sensor
