"""The FinOps reports as documents: the cost anomalies of every scope (model, team, service,
account) with their root causes, and the month-end forecasts with the budgets' burn. Plain logic
over costs.cost_series' daily table; the Dagster assets write these documents and their plots."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd

from rai_pipelines.costs.anomalies import AnomalyConfig, detect_anomalies
from rai_pipelines.costs.budgets import Budgets, budget_status
from rai_pipelines.costs.forecast import forecast_many, month_bounds

# Each scope is monitored on its own; its cause dimensions are the others (the model's service,
# account, region and SKU; the team's models; ...), so a root cause names where the money moved.
ANOMALY_SCOPES = {
    "model": ["service", "account", "region", "sku"],
    "team": ["model", "service", "account", "region", "sku"],
    "service": ["model", "account", "region", "sku"],
    "account": ["service", "model", "region", "sku"],
}
RECENT_DAYS = 30  # closed events older than this leave the report
FORECAST_SCOPES = ("model", "team")


def _cause_text(event: dict) -> str | None:
    causes = event["root_causes"]
    if not causes:
        return None
    top = causes[0]
    return f"{top['dimension']}={top['value']} ({top['share']:.0%} of the impact)"


def anomaly_document(daily: pd.DataFrame, as_of: date, config: AnomalyConfig) -> dict:
    """Every scope's anomalies seen on `as_of` (open, or closed within the last 30 days), the scopes
    that cannot alarm yet and why, and per model its open events for the governance facts
    (`open_count`, the largest open `impact`, its `root_cause`): in the policies' currency only."""
    events, waiting = [], []
    since = as_of - timedelta(days=RECENT_DAYS)
    for currency in sorted(daily["currency"].unique()) if not daily.empty else []:
        frame = daily[daily["currency"] == currency]
        if as_of not in set(frame["date"]):
            waiting.append({"scope": {"currency": currency}, "note": f"no {currency} cost allocated on {as_of}"})
            continue
        for kind, causes in ANOMALY_SCOPES.items():
            report = detect_anomalies(frame, [kind], causes, config, as_of=as_of, currency=currency, since=since)
            events += [{**e.to_dict(), "scope_kind": kind} for e in report.events]
            waiting += [
                {"scope": s.scope, "scope_kind": kind, "note": s.note, "currency": currency}
                for s in report.statuses
                if not s.alerting
            ]
    by_model: dict[str, dict] = {}
    for event in events:
        if event["scope_kind"] != "model" or event["status"] != "open" or event["currency"] != "USD":
            continue
        model = event["scope"]["model"]
        entry = by_model.setdefault(model, {"open_count": 0, "impact": None, "root_cause": None})
        entry["open_count"] += 1
        if entry["impact"] is None or event["impact"] > entry["impact"]:
            entry["impact"], entry["root_cause"] = event["impact"], _cause_text(event)
    return {"as_of": as_of.isoformat(), "events": events, "waiting": waiting, "by_model": by_model}


def anomaly_markdown(document: dict) -> str:
    header = ["scope", "start", "last day", "status", "severity", "impact", "root causes"]
    rows = []
    for e in sorted(document["events"], key=lambda e: (e["status"] != "open", e["start"]), reverse=False):
        scope = ", ".join(f"{k}={v}" for k, v in e["scope"].items())
        causes = "; ".join(
            f"{c['dimension']}={c['value']} {c['impact']:+,.2f} ({c['share']:.0%})" for c in e["root_causes"][:3]
        )
        rows.append(
            f"| {scope} | {e['start']} | {e['last_day']} | {e['status']} | {e['severity']} | "
            f"{e['impact']:+,.2f} {e['currency']} | {causes or 'not found'} |"
        )
    lines = [f"Cost anomalies seen on {document['as_of']}:", ""]
    if rows:
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows]
    else:
        lines.append("No cost anomaly.")
    if document["waiting"]:
        lines += ["", "Not alarming yet:"]
        lines += [f"- {', '.join(f'{k}={v}' for k, v in w['scope'].items())}: {w['note']}" for w in document["waiting"]]
    return "\n".join(lines)


def forecast_document(daily: pd.DataFrame, as_of: date, level: float, budgets: Budgets) -> dict:
    """Month-end forecasts of every model and team (per currency) made on `as_of`, and for each
    scope with a budget its burn (costs.budgets): the governance facts read `budgets.model`."""
    first, _ = month_bounds(as_of)
    forecasts, statuses = [], {"model": {}, "team": {}}
    if daily.empty:
        return {"as_of": as_of.isoformat(), "forecasts": [], "budgets": statuses}
    for kind in FORECAST_SCOPES:
        per_day = daily.groupby(["date", "currency", kind], as_index=False)["cost"].sum()
        for forecast in forecast_many(per_day, [kind], as_of, level):
            name = forecast.scope[kind]
            entry = {**asdict(forecast), "scope_kind": kind, "as_of": as_of.isoformat(), "percentiles": None}
            entry["scope"] = dict(forecast.scope)
            budget = _budget(budgets, kind, name)
            if budget is not None and forecast.currency == budget.currency:
                month = per_day[
                    (per_day[kind] == name) & (per_day["currency"] == forecast.currency) & (per_day["date"] >= first)
                ]
                spend = sum((Decimal(str(v)) for v in month["cost"]), Decimal(0))
                status = budget_status(budget, f"{kind}/{name}", spend, forecast.currency, as_of, forecast)
                facts = status.facts()
                statuses[kind][name] = {
                    "budget": facts["budget"],
                    "currency": facts["budget_currency"],
                    "spend_to_date": facts["spend_to_date"],
                    "burn_rate": facts["burn_rate"],
                    "projected_overrun_date": facts["projected_overrun_date"],
                    "days_until_exhausted": facts["days_until_budget_exhausted"],
                    "forecast_total": facts["projected_month_end"],
                    "forecast_upper": facts["projected_month_end_upper"],
                    "overrun_probability": facts["overrun_probability"],
                    "alerts": facts["budget_alerts"],
                    "note": status.note,
                }
            elif budget is not None:
                statuses[kind][name] = {
                    "note": f"spend in {forecast.currency}, budget in {budget.currency}: not compared (never converted)"
                }
            forecasts.append(entry)
    return {"as_of": as_of.isoformat(), "forecasts": forecasts, "budgets": statuses}


def _budget(budgets: Budgets, kind: str, name: str):
    return {"model": budgets.by_model, "team": budgets.by_team}[kind].get(name)


def forecast_markdown(document: dict) -> str:
    header = ["scope", "month", "to date", "forecast", "80% interval", "budget", "burn rate", "overrun on", "note"]
    rows = []
    for f in document["forecasts"]:
        name = f["scope"][f["scope_kind"]]
        status = document["budgets"][f["scope_kind"]].get(name, {})
        interval = f"{f['lower']:,.2f} – {f['upper']:,.2f}" if f["lower"] is not None else "none"
        burn = f"{status['burn_rate']:.2f}" if "burn_rate" in status else "–"
        rows.append(
            f"| {f['scope_kind']}={name} | {f['month']} | {f['actual_to_date']:,.2f} {f['currency']} | "
            f"{f['forecast_total']:,.2f} | {interval} | {status.get('budget', '–')} | {burn} | "
            f"{status.get('projected_overrun_date') or '–'} | {f['note'] or status.get('note', '')} |"
        )
    lines = [f"Month-end forecasts made on {document['as_of']}:", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows] if rows else ["No spend yet."]
    return "\n".join(lines)
