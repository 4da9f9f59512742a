"""The FinOps reports people read in the Dagster UI: cost anomalies with their root cause, and the
month-end forecasts with their interval and the budgets' burn, as markdown and PNG plots. The
documents are built in costs.finops_reports; the governance facts read them."""

from datetime import date, timedelta

import dagster as dg
import pandas as pd

from rai_pipelines.core import datasets
from rai_pipelines.costs.budgets import parse_budgets
from rai_pipelines.costs.cost_series import daily_costs
from rai_pipelines.costs.finops_plots import cost_over_time_plot, forecast_plot
from rai_pipelines.costs.finops_reports import anomaly_document, anomaly_markdown, forecast_document, forecast_markdown
from rai_pipelines.defs.finops.resources import FinOpsResource
from rai_pipelines.defs.governance.resources import PolicyResource
from rai_pipelines.defs.keys import COST_ANOMALIES, COST_FORECAST, MODEL_COSTS
from rai_pipelines.defs.resources import LakeResource, ModelRegistryResource

REPORT = "report.json"
ANOMALY_HISTORY_DAYS = 120  # the detector's seasonal baseline reads up to 8 weeks; margin for gaps


def _teams(registry: ModelRegistryResource) -> dict[str, str]:
    return {name: spec.team for name, spec in registry.models().items() if spec.team}


def build_cost_anomalies(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=COST_ANOMALIES,
        partitions_def=partitions_def,
        deps=[MODEL_COSTS],
        group_name="finops",
        kinds={"pandas"},
        description="Cost anomalies per model, team, service and account, on a baseline robust to weekly "
        "seasonality and to past anomalies, alerting from the third day of history when the impact passes both "
        "the absolute and the relative threshold (as AWS Cost Anomaly Detection does); one event per anomaly, "
        "with its root causes ranked by cost impact.",
    )
    def cost_anomalies(
        context: dg.AssetExecutionContext, lake: LakeResource, registry: ModelRegistryResource, finops: FinOpsResource
    ) -> dg.MaterializeResult:
        day = date.fromisoformat(context.partition_key)
        store = lake.lake()
        daily = daily_costs(store, day - timedelta(days=ANOMALY_HISTORY_DAYS), day, _teams(registry))
        document = anomaly_document(daily, day, finops.config().anomalies)
        partition = {"date": day.isoformat()}
        usd = daily[daily["currency"] == "USD"] if not daily.empty else daily
        model_events = [e for e in document["events"] if e["scope_kind"] == "model" and e["currency"] == "USD"]
        plot = store.write_bytes(
            datasets.COST_ANOMALIES,
            partition,
            "cost_per_model.png",
            cost_over_time_plot(
                usd.groupby(["date", "model"], as_index=False)["cost"].sum() if not usd.empty else usd,
                model_events,
                "USD",
                f"Allocated cost per model up to {day}, anomalies shaded",
            ),
        )
        uri = store.write_json(datasets.COST_ANOMALIES, partition, REPORT, {**document, "plot": plot})
        opened = [e for e in document["events"] if e["status"] == "open"]
        return dg.MaterializeResult(
            metadata={
                "dagster/uri": uri,
                "report": dg.MetadataValue.md(anomaly_markdown(document)),
                "open_anomalies": len(opened),
                "plot cost_per_model.png": dg.MetadataValue.path(plot),
            }
        )

    return cost_anomalies


def build_cost_forecast(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=COST_FORECAST,
        partitions_def=partitions_def,
        deps=[MODEL_COSTS],
        group_name="finops",
        kinds={"statsforecast"},
        description="Month-end spend per model and team with an 80% prediction interval (AWS Cost Explorer's "
        "convention), and for each budget in the policy data its burn rate, projected overrun date and days "
        "until it runs out (governance facts).",
    )
    def cost_forecast(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        registry: ModelRegistryResource,
        finops: FinOpsResource,
        policy: PolicyResource,
    ) -> dg.MaterializeResult:
        day = date.fromisoformat(context.partition_key)
        store = lake.lake()
        config = finops.config().forecast
        daily = daily_costs(store, day - timedelta(days=config.history_days), day, _teams(registry))
        bundle = policy.bundle()
        budgets = parse_budgets(bundle.data.get("governance", {}).get("budgets"), f"{bundle.root}: budgets")
        document = forecast_document(daily, day, config.level, budgets)
        partition = {"date": day.isoformat()}
        plots = {}
        month_start = day.replace(day=1)
        for forecast in document["forecasts"]:
            kind, name = forecast["scope_kind"], forecast["scope"][forecast["scope_kind"]]
            rows = daily[(daily[kind] == name) & (daily["currency"] == forecast["currency"])]
            spend = rows[rows["date"] >= month_start].groupby("date")["cost"].sum()
            budget = document["budgets"][kind].get(name, {}).get("budget")
            file = f"{kind}__{name}.png"
            plots[file] = store.write_bytes(
                datasets.COST_FORECAST,
                partition,
                file,
                forecast_plot(
                    spend if not spend.empty else pd.Series(dtype=float),
                    forecast,
                    budget,
                    forecast["currency"],
                    f"{kind} {name}: spend in {forecast['month']}, forecast on {day}",
                ),
            )
        uri = store.write_json(datasets.COST_FORECAST, partition, REPORT, {**document, "plots": plots})
        return dg.MaterializeResult(
            metadata={
                "dagster/uri": uri,
                "report": dg.MetadataValue.md(forecast_markdown(document)),
                **{f"plot {name}": dg.MetadataValue.path(path) for name, path in plots.items()},
            }
        )

    return cost_forecast
