"""Daily cost series read back from the allocation (lake datasets model_costs and
model_cost_summary): what the anomaly detector, the forecasts and the reports work on. Amounts stay
per billing currency; nothing here adds two currencies."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pyarrow as pa

from rai_pipelines.core.lake import Lake
from rai_pipelines.costs.allocation import MODEL_COST_SUMMARY, MODEL_COSTS

IDLE, UNTAGGED = "(idle)", "(untagged)"
LINE_COLUMNS = [
    "x_AllocationCategory",
    "x_ModelName",
    "BillingCurrency",
    "EffectiveCost",
    "ServiceName",
    "SubAccountId",
    "RegionId",
    "SkuId",
]


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def read_partitions(lake: Lake, dataset: str, first: date, last: date, columns: list[str] | None) -> pa.Table | None:
    """The dataset's day partitions from `first` to `last` that exist, each with its `date`."""
    tables = []
    for day in _days(first, last):
        partition = {"date": day.isoformat()}
        if lake.exists(dataset, partition):
            table = lake.read_table(dataset, partition, columns=columns)
            if "date" in table.column_names:
                table = table.drop_columns(["date"])
            tables.append(table.append_column("date", pa.array([day] * table.num_rows, pa.date32())))
    return pa.concat_tables(tables, promote_options="default") if tables else None


def published_days(lake: Lake, first: date, last: date) -> list[date]:
    return [d for d in _days(first, last) if lake.exists(MODEL_COSTS, {"date": d.isoformat()})]


def daily_costs(lake: Lake, first: date, last: date, teams: dict[str, str]) -> pd.DataFrame:
    """One row per day, currency, model and cause values with the day's effective cost (float, for
    statistics): columns date, currency, model (`(idle)` and `(untagged)` for nobody's cost), team,
    service, account, region, sku, cost. Days without an allocation are absent, not zero."""
    lines = read_partitions(lake, MODEL_COSTS, first, last, LINE_COLUMNS)
    columns = ["date", "currency", "model", "team", "service", "account", "region", "sku", "cost"]
    if lines is None or lines.num_rows == 0:
        return pd.DataFrame(columns=columns)
    frame = lines.to_pandas()
    category = frame["x_AllocationCategory"]
    model = frame["x_ModelName"].where(category.isin(["direct", "shared"]))
    model = model.where(category != "idle", IDLE).where(category != "untagged", UNTAGGED)
    out = pd.DataFrame(
        {
            "date": frame["date"],
            "currency": frame["BillingCurrency"],
            "model": model.fillna(UNTAGGED),
            "service": frame["ServiceName"].fillna("(no service)"),
            "account": frame["SubAccountId"].fillna("(no account)"),
            "region": frame["RegionId"].fillna("(no region)"),
            "sku": frame["SkuId"].fillna("(no sku)"),
            "cost": frame["EffectiveCost"].astype(float),
        }
    )
    out["team"] = out["model"].map(teams).fillna("(no team)")
    keys = ["date", "currency", "model", "team", "service", "account", "region", "sku"]
    return out.groupby(keys, as_index=False, dropna=False)["cost"].sum()[columns]


def version_summaries(lake: Lake, first: date, last: date) -> pd.DataFrame:
    """model_cost_summary over the days: per day, model version and currency, its cost, inferences
    and cost per inference (daily and rolling 7-day)."""
    table = read_partitions(lake, MODEL_COST_SUMMARY, first, last, None)
    if table is None:
        return pd.DataFrame()
    frame = table.to_pandas()
    for column in ("direct_cost", "shared_cost", "total_cost"):
        frame[column] = frame[column].astype(float)
    return frame
