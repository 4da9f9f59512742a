"""The FinOps report documents the assets write and the facts read: budgets are compared only in
their own currency, anomalies become per-model facts only in the policies' currency, and a scope
with too little history says why it cannot alarm."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from rai_pipelines.costs.anomalies import AnomalyConfig
from rai_pipelines.costs.budgets import parse_budgets
from rai_pipelines.costs.finops_reports import anomaly_document, forecast_document

AS_OF = date(2024, 3, 20)


def _daily(model: str, currency: str, days: int, level: float, spike: dict[date, float] | None = None):
    rows = []
    for i in range(days):
        day = AS_OF - timedelta(days=days - 1 - i)
        weekly = 0.8 if day.weekday() >= 5 else 1.0
        cost = level * weekly * (1 + 0.02 * ((i * 7) % 5 - 2)) + (spike or {}).get(day, 0.0)
        rows.append({"date": day, "currency": currency, "model": model, "team": "t-" + model, "service": "EC2",
                     "account": "1", "region": "eu-west-1", "sku": "box", "cost": cost})  # fmt: skip
        if day in (spike or {}):
            rows[-1]["service"] = "DataTransfer"
            rows.append({**rows[-1], "service": "EC2", "cost": cost - spike[day]})
            rows[-2]["cost"] = spike[day]
    return rows


def test_a_budget_in_another_currency_is_not_compared_and_says_so():
    daily = pd.DataFrame(_daily("m-eur", "EUR", 40, 100.0) + _daily("m-usd", "USD", 40, 100.0))
    budgets = parse_budgets({"by_model": {"m-eur": {"monthly": 3000, "currency": "USD"},
                                          "m-usd": {"monthly": 3000, "currency": "USD"}}})  # fmt: skip
    document = forecast_document(daily, AS_OF, 0.8, budgets)
    assert document["budgets"]["model"]["m-eur"] == {
        "note": "spend in EUR, budget in USD: not compared (never converted)"
    }
    usd = document["budgets"]["model"]["m-usd"]
    spent = daily[(daily["model"] == "m-usd") & (daily["date"] >= AS_OF.replace(day=1))]["cost"].sum()
    assert usd["spend_to_date"] == pytest.approx(spent)
    assert usd["burn_rate"] == pytest.approx(spent / (3000 * AS_OF.day / 31))


def test_anomalies_become_facts_of_the_model_in_the_policies_currency_only():
    spike = {AS_OF: 600.0}
    daily = pd.DataFrame(_daily("m-usd", "USD", 30, 100.0, spike) + _daily("m-eur", "EUR", 30, 100.0, spike))
    config = AnomalyConfig(min_impact_absolute=50.0, min_impact_relative=0.2)
    document = anomaly_document(daily, AS_OF, config)
    models = {(e["scope"].get("model"), e["currency"]) for e in document["events"] if e["scope_kind"] == "model"}
    assert models == {("m-usd", "USD"), ("m-eur", "EUR")}
    assert set(document["by_model"]) == {"m-usd"}  # the EUR event is reported, never added to USD budgets
    fact = document["by_model"]["m-usd"]
    assert fact["open_count"] == 1 and fact["impact"] == pytest.approx(600.0, rel=0.1)
    assert fact["root_cause"].startswith("service=DataTransfer")


def test_a_young_scope_cannot_alarm_and_the_report_says_why():
    daily = pd.DataFrame(_daily("new-model", "USD", 2, 100.0))
    document = anomaly_document(daily, AS_OF, AnomalyConfig())
    assert document["events"] == []
    notes = {w["note"] for w in document["waiting"] if w.get("scope_kind") == "model"}
    assert notes == {"no alarm yet: 2 days of history, alerting needs 3"}
