"""Governance facts: one row per model version and day, the document policies see as data.ai_models."""

from __future__ import annotations

import json
import math
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from rai_pipelines.core import datasets
from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.registry import ModelSpec, validate_model_version
from rai_pipelines.monitoring.lake_reads import model_partition, report_json, traffic_by_version

FACTS_SCHEMA = pa.schema(
    [
        ("date", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("inference_count", pa.int64()),
        ("fairness_applicable", pa.bool_()),  # the model declares protected attributes to enforce
        ("fairness_score", pa.float64()),
        ("fairness_worst_attribute", pa.string()),
        ("fairness_worst_group", pa.string()),
        ("fairness_by_attribute", pa.string()),  # JSON {attribute: ratio}
        ("fairness_score_ci_lower", pa.float64()),  # 95% bootstrap interval of fairness_score
        ("fairness_score_ci_upper", pa.float64()),
        ("equalized_odds_ratio", pa.float64()),  # worst enforced attribute, labelled rows only
        ("fairness_coverage", pa.float64()),  # the least share of rows an enforced attribute's score covers
        ("drift_share", pa.float64()),
        ("drifted_features", pa.list_(pa.string())),
        ("drift_max_effect_size", pa.float64()),
        ("drift_classifier_auc", pa.float64()),  # multivariate drift, when the model asks for it
        ("prediction_drift_p_value", pa.float64()),
        ("prediction_drift_effect_size", pa.float64()),
        ("explanation_fidelity", pa.float64()),  # R² of the explainer against the logged scores
        ("attribution_ndcg", pa.float64()),  # the global attribution ranking against the reference's
        ("attribution_drifted_features", pa.list_(pa.string())),
        ("estimated_roc_auc", pa.float64()),  # CBPE from the scores, before the labels arrive
        ("estimated_accuracy", pa.float64()),
        ("labelled_rows", pa.int64()),
        ("roc_auc", pa.float64()),
        ("accuracy", pa.float64()),
        ("expected_calibration_error", pa.float64()),
        ("daily_cost_usd", pa.float64()),  # allocated: direct + its share of shared pools (model_costs)
        ("cost_per_inference_usd", pa.float64()),
        ("cost_per_inference_7d_usd", pa.float64()),  # rolling 7 days: their cost over their inferences
        ("serving_hours", pa.int64()),  # hours of the day the version served (first to last request)
        ("declared_daily_cost_usd", pa.float64()),  # catalogue price of the declared resources for those hours
        ("estimated_cost_per_inference_usd", pa.float64()),
        ("catalogue_price_age_days", pa.int64()),
        ("budget_monthly_usd", pa.float64()),  # the model's budget (policy data) and how it burns
        ("budget_burn_rate", pa.float64()),
        ("budget_projected_overrun_date", pa.string()),
        ("budget_days_until_exhausted", pa.float64()),
        ("forecast_month_end_usd", pa.float64()),
        ("forecast_month_end_upper_usd", pa.float64()),  # upper end of the 80% interval
        ("cost_anomaly_open_count", pa.int64()),  # open cost anomalies of the model and the largest's impact
        ("cost_anomaly_impact_usd", pa.float64()),
        ("cost_anomaly_root_cause", pa.string()),
        ("source_run_ids", pa.list_(pa.string())),
    ]
)


def _finite(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


PERFORMANCE_FIELDS = ("labelled_rows", "roc_auc", "accuracy", "expected_calibration_error")
POLICY_CURRENCY = "USD"  # the currency of the policies' budgets (estimated_cost_per_inference_usd_max)


def allocated_costs(store, day: str) -> dict[tuple[str, str], dict]:
    """The day's allocated cost per (model, version) in the policies' currency (model_cost_summary).
    A version billed in another currency is an error: adding it to a USD budget would be wrong by
    the exchange rate, and silently."""
    partition = {"date": day}
    if not store.exists(datasets.MODEL_COST_SUMMARY, partition):
        raise BadInputError(f"no allocated costs for {day} at {store.uri(datasets.MODEL_COST_SUMMARY, partition)}")
    costs: dict[tuple[str, str], dict] = {}
    for row in store.read_table(datasets.MODEL_COST_SUMMARY, partition).to_pylist():
        if row["BillingCurrency"] != POLICY_CURRENCY:
            raise BadInputError(
                f"model_cost_summary {day}: {row['model_name']} {row['model_version']} is billed in "
                f"{row['BillingCurrency']}, not {POLICY_CURRENCY}; cost per inference is only computed for "
                f"{POLICY_CURRENCY} bills"
            )
        costs[(row["model_name"], row["model_version"])] = row
    return costs


SERVING_PRICES_FILE = "prices.json"  # the catalogue_prices asset's document: model -> version -> price


def _serving_prices(store, day: str) -> dict:
    partition = {"date": day}
    if not store.exists(datasets.SERVING_PRICES, partition, SERVING_PRICES_FILE):
        raise BadInputError(f"no catalogue prices for {day} at {store.uri(datasets.SERVING_PRICES, partition)}")
    return store.read_json(datasets.SERVING_PRICES, partition, SERVING_PRICES_FILE)


def _finops_report(store, dataset: str, day: str) -> dict:
    partition = {"date": day}
    if not store.exists(dataset, partition, "report.json"):
        raise BadInputError(f"no {dataset} report for {day} at {store.uri(dataset, partition, 'report.json')}")
    return store.read_json(dataset, partition, "report.json")


def cost_per_inference(cost: Decimal | float | None, inferences: int) -> float | None:
    if cost is None or inferences <= 0:
        return None
    return float(cost) / inferences


def facts_table(rows: list[dict]) -> pa.Table:
    clean = []
    for row in rows:
        out = {name: row.get(name) for name in FACTS_SCHEMA.names}
        for name in FACTS_SCHEMA.names:
            if FACTS_SCHEMA.field(name).type == pa.float64():
                out[name] = _finite(out[name])
        out["drifted_features"] = list(out["drifted_features"] or [])
        out["attribution_drifted_features"] = list(out["attribution_drifted_features"] or [])
        out["source_run_ids"] = list(out["source_run_ids"] or [])
        clean.append(out)
    return pa.Table.from_pylist(clean, schema=FACTS_SCHEMA)


def ai_models_document(facts: list[dict], conflicts: list[str] | None = None) -> dict[str, dict]:
    """data.ai_models for the policies: keyed by model version, the latest day's facts of each.

    Fields without a value are left out rather than set to null: in Rego `null < 0.8` is true, so a
    null fairness score would read as a violation, while a missing one is undefined.

    Each entry carries `facts_age_days`: how many days its model's newest facts are behind the newest
    facts of any model. Facts are per model, so a model whose day failed keeps its last facts while
    the others move on; the policies decide, by threshold, when that age warns or denies. It is the
    model's age, not the version's: a version that stopped serving weeks ago (the candidate of a
    rollback) has old facts of its own, which is what a rollback relies on, not staleness.
    """
    latest: dict[str, dict] = {}
    owner: dict[str, str] = {}
    for row in sorted(facts, key=lambda r: (r["date"], r["model_name"])):
        version, model = row["model_version"], row["model_name"]
        if owner.setdefault(version, model) != model:
            message = (
                f"model version {version!r} is used by both {owner[version]} and {model}: the policies key "
                "data.ai_models by version alone, so versions must be unique across models"
            )
            if conflicts is None:
                raise BadInputError(message)
            conflicts.append(message)
            continue
        latest[version] = row
    # Labels arrive days after the traffic, so the newest row of a version has no performance yet:
    # carry the latest labelled day's numbers forward, with the date they are from.
    labelled: dict[str, dict] = {}
    for row in sorted(facts, key=lambda r: r["date"]):
        if row.get("roc_auc") is not None or row.get("accuracy") is not None:
            labelled[row["model_version"]] = row
    document = {}
    model_newest: dict[str, date] = {}
    for row in latest.values():
        day = date.fromisoformat(str(row["date"]))
        model_newest[row["model_name"]] = max(day, model_newest.get(row["model_name"], day))
    newest = max(model_newest.values(), default=None)
    clashing = {m.split("'")[1] for m in conflicts or []}
    for version, row in latest.items():
        if version in clashing:
            continue  # no facts for an ambiguous version: its deployments are alerted, never allowed
        entry = {k: v for k, v in row.items() if v is not None and k != "model_version"}
        entry["facts_age_days"] = (newest - model_newest[row["model_name"]]).days
        if version in labelled and labelled[version] is not row:
            for field in PERFORMANCE_FIELDS:
                if labelled[version].get(field) is not None:
                    entry[field] = labelled[version][field]
            entry["performance_date"] = labelled[version]["date"]
        elif version in labelled:
            entry["performance_date"] = row["date"]
        document[version] = entry
    return document


def serving_hours(first, last) -> int:
    """Hours of the day a version served, from its first to its last request, in whole hours: on a
    day a rollout or rollback switches versions, each is charged for its own hours only."""
    span = (last - first).total_seconds()
    return int(min(24, max(1, math.ceil(span / 3600))))


def read_all_facts(lake) -> list[dict]:
    """Every model's facts (governance_facts/model=<name>/date=<day>/), oldest day first."""
    table_ = lake.read_dataset(datasets.GOVERNANCE_FACTS)
    if table_ is None:
        return []
    table_ = table_.select([name for name in table_.column_names if name in FACTS_SCHEMA.names])
    if "date" in table_.column_names:
        table_ = table_.sort_by([("date", "ascending"), ("model_name", "ascending")])
    return table_.to_pylist()


def day_facts(store, specs: list[ModelSpec], day: str, run_ids: list[str]) -> list[dict]:
    """The facts rows of one day: for every model version that served, its fairness, drift and
    performance from the day's reports, its inference count, its cost (allocated from the ledger,
    and its declared resources at the catalogue's price for the hours it served), its model's
    budget burn and forecast, and the cost anomalies open on its model. `run_ids` are the runs the
    inputs came from, kept as lineage."""
    allocated = allocated_costs(store, day)
    prices = _serving_prices(store, day)
    budgets = _finops_report(store, datasets.COST_FORECAST, day).get("budgets", {}).get("model", {})
    anomalies = _finops_report(store, datasets.COST_ANOMALIES, day).get("by_model", {})
    rows = []
    for spec in specs:
        # the versions the day's reports describe: only the snapshot's version column is read
        sampled = store.read_table(datasets.FEATURE_SNAPSHOTS, model_partition(spec, day), columns=["model_version"])
        drift = report_json(store, datasets.DRIFT_REPORT, spec, day)["versions"]
        fairness = report_json(store, datasets.FAIRNESS_REPORT, spec, day)["versions"]
        performance = report_json(store, datasets.PERFORMANCE_REPORT, spec, day)["versions"]
        explained = report_json(store, datasets.EXPLANATION_REPORT, spec, day)["versions"] if spec.explanations else {}
        traffic = traffic_by_version(store, spec, day)
        for version in sorted(pc.unique(sampled.column("model_version")).to_pylist()):
            validate_model_version(version, f"{spec.name} feature snapshot {day}")
            if version not in traffic:
                raise BadInputError(f"{spec.name} {day}: version {version} is in the snapshot but not in the log")
            count, first, last = traffic[version]
            hours = serving_hours(first, last)
            price = prices.get(spec.name, {}).get(version)
            if price is None:
                raise BadInputError(f"{spec.name} {version}: no catalogue price for {day} (catalogue_prices)")
            declared = float(price["usd_per_hour"]) * hours
            summary = allocated.get((spec.name, version), {})
            actual = summary.get("total_cost")
            budget = budgets.get(spec.name, {})
            anomaly = anomalies.get(spec.name, {})
            fair = fairness.get(version, {})
            perf = performance.get(version, {})
            low, high = fair.get("fairness_score_ci") or (None, None)
            rows.append(
                {
                    "date": day,
                    "model_name": spec.name,
                    "model_version": version,
                    "inference_count": int(count),
                    "fairness_applicable": bool(spec.enforced_protected_attributes),
                    "fairness_score": fair.get("fairness_score"),
                    "fairness_worst_attribute": fair.get("worst_attribute"),
                    "fairness_worst_group": fair.get("worst_group"),
                    "fairness_by_attribute": json.dumps(
                        {a["attribute"]: a["ratio"] for a in fair.get("attributes", [])}
                    ),
                    "fairness_score_ci_lower": low,
                    "fairness_score_ci_upper": high,
                    "equalized_odds_ratio": fair.get("equalized_odds_ratio"),
                    "fairness_coverage": fair.get("coverage"),
                    "drift_share": drift[version]["drift_share"],
                    "drifted_features": drift[version]["drifted_features"],
                    "drift_max_effect_size": drift[version]["max_effect_size"],
                    "drift_classifier_auc": (drift[version].get("multivariate") or {}).get("auc"),
                    "prediction_drift_p_value": drift[version]["prediction_drift_p_value"],
                    "prediction_drift_effect_size": drift[version]["prediction_drift_effect_size"],
                    "explanation_fidelity": explained.get(version, {}).get("fidelity"),
                    "attribution_ndcg": explained.get(version, {}).get("ndcg"),
                    "attribution_drifted_features": explained.get(version, {}).get("drifted_features"),
                    "estimated_roc_auc": perf.get("estimated_roc_auc"),
                    "estimated_accuracy": perf.get("estimated_accuracy"),
                    "labelled_rows": perf.get("labelled_rows"),
                    "roc_auc": perf.get("roc_auc"),
                    "accuracy": perf.get("accuracy"),
                    "expected_calibration_error": perf.get("expected_calibration_error"),
                    "daily_cost_usd": float(actual) if actual is not None else None,
                    "cost_per_inference_usd": summary.get("cost_per_inference"),
                    "cost_per_inference_7d_usd": summary.get("rolling_7d_cost_per_inference"),
                    "serving_hours": hours,
                    "declared_daily_cost_usd": declared,
                    "estimated_cost_per_inference_usd": cost_per_inference(declared, int(count)),
                    "catalogue_price_age_days": price["age_days"],
                    "budget_monthly_usd": budget.get("budget"),
                    "budget_burn_rate": budget.get("burn_rate"),
                    "budget_projected_overrun_date": budget.get("projected_overrun_date"),
                    "budget_days_until_exhausted": budget.get("days_until_exhausted"),
                    "forecast_month_end_usd": budget.get("forecast_total"),
                    "forecast_month_end_upper_usd": budget.get("forecast_upper"),
                    "cost_anomaly_open_count": anomaly.get("open_count", 0),
                    "cost_anomaly_impact_usd": anomaly.get("impact"),
                    "cost_anomaly_root_cause": anomaly.get("root_cause"),
                    "source_run_ids": sorted(set(run_ids)),
                }
            )
    return rows
