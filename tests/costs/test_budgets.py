"""Budgets as declared in the policy data, and the budget facts worked out by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.budgets import Budget, budget_status, load_budgets, parse_budgets
from rai_pipelines.costs.forecast import MonthEndForecast

APRIL_10 = date(2024, 4, 10)  # April has 30 days: 10 elapsed, 20 left


def _forecast(actual: float, daily_rate: float, as_of: date = APRIL_10, days_in_month: int = 30, **extra):
    remaining = days_in_month - as_of.day
    return MonthEndForecast(
        month=f"{as_of:%Y-%m}",
        as_of=as_of,
        actual_to_date=actual,
        forecast_total=actual + daily_rate * remaining,
        lower=extra.pop("lower", None),
        upper=extra.pop("upper", None),
        level=0.8,
        method="hand-made",
        days_of_history=60,
        days_elapsed=as_of.day,
        days_remaining=remaining,
        **extra,
    )


def _budget(monthly, currency="USD", **extra) -> Budget:
    return parse_budgets({"by_model": {"credit-scoring-ai": {"monthly": monthly, "currency": currency, **extra}}}).get(
        "model", "credit-scoring-ai"
    )


def test_overspending_budget_worked_by_hand():
    # 3000 a month, 1200 spent in the first 10 of 30 days: the prorated budget so far is 1000, so the burn
    # rate is 1.2. At 130 a day the 1800 left last 1800 / 130 = 13.85 days: the end of day 14 after
    # 10 April (24 April) is the first day end past the budget (1200 + 14 x 130 = 3020; day 13: 2890).
    status = budget_status(
        _budget(3000), "model/credit-scoring-ai", Decimal("1200.00"), "USD", APRIL_10, _forecast(1200, 130)
    )
    assert status.burn_rate == pytest.approx(1.2)
    assert status.daily_burn == pytest.approx(120.0)
    assert status.forecast_daily_rate == pytest.approx(130.0)
    assert status.projected_month_end == pytest.approx(1200 + 20 * 130)
    assert status.projected_overrun is True
    assert status.days_until_budget_exhausted == pytest.approx(1800 / 130)
    assert status.projected_overrun_date == date(2024, 4, 24)
    assert status.days_in_month == 30 and status.days_elapsed == 10
    assert status.budget == Decimal(3000) and status.spend_to_date == Decimal("1200.00")


def test_budget_reached_exactly_at_a_days_end():
    # 1800 left at 120 a day: exactly 15 days, spent by the end of 25 April (not 26, not 24).
    status = budget_status(_budget(3000), "model/m", 1200, "USD", APRIL_10, _forecast(1200, 120))
    assert status.days_until_budget_exhausted == pytest.approx(15.0)
    assert status.projected_overrun_date == date(2024, 4, 25)
    assert status.projected_month_end == pytest.approx(3600)


def test_budget_on_track_has_no_overrun_date_in_the_month():
    # 900 of 3000 by day 10 (burn rate 0.9); at 80 a day: 2500 at month end, and the 2100 left
    # would last 26.25 days, past 30 April.
    status = budget_status(_budget(3000), "model/m", 900, "USD", APRIL_10, _forecast(900, 80))
    assert status.burn_rate == pytest.approx(0.9)
    assert status.projected_month_end == pytest.approx(2500)
    assert status.projected_overrun is False
    assert status.days_until_budget_exhausted == pytest.approx(26.25)
    assert status.projected_overrun_date is None
    assert status.alerts == ()


def test_budget_already_spent():
    status = budget_status(_budget(3000), "model/m", 3100, "USD", APRIL_10, _forecast(3100, 100))
    assert status.burn_rate == pytest.approx(3.1)
    assert status.days_until_budget_exhausted == 0.0
    assert status.projected_overrun_date == APRIL_10
    assert status.alerts == ("actual 100%", "forecast 100%")
    exactly = budget_status(_budget(3000), "model/m", Decimal("3000.00"), "USD", APRIL_10, _forecast(3000, 100))
    assert exactly.days_until_budget_exhausted == 0.0 and exactly.projected_overrun_date == APRIL_10


def test_burn_rate_of_a_31_day_month_and_nothing_more_to_spend():
    # 3100 for January: 1500 by the 15th is exactly on track (1500 x 31 / (3100 x 15) = 1.0).
    jan_15 = date(2025, 1, 15)
    status = budget_status(_budget(3100), "team/t", 1500, "USD", jan_15, _forecast(1500, 0.0, jan_15, 31))
    assert status.burn_rate == pytest.approx(1.0)
    assert status.days_until_budget_exhausted is None
    assert status.projected_overrun_date is None
    assert status.projected_month_end == pytest.approx(1500)


def test_projection_starts_from_the_ledger_spend_and_shifts_the_interval():
    # The forecast saw 1190 to date (floats), the ledger's sum is 1200.00: the projection and its
    # interval start from the ledger's figure.
    forecast = _forecast(1190, 100, lower=2900.0, upper=3500.0)
    status = budget_status(_budget(3300), "model/m", Decimal("1200.00"), "USD", APRIL_10, forecast)
    assert status.projected_month_end == pytest.approx(1200 + 2000)
    assert (status.projected_lower, status.projected_upper) == (pytest.approx(2910), pytest.approx(3510))
    assert status.upper_exceeds_budget is True
    assert status.projected_overrun is False


def test_overrun_probability_is_read_off_the_percentiles():
    # Percentiles of the total spread evenly from 3000 to 4000: P(total > 3500) = 0.5, P(> 3250) = 0.75.
    percentiles = tuple(3000.0 + 10.0 * k for k in range(101))
    forecast = _forecast(1200, 125, lower=3100.0, upper=3900.0, percentiles=percentiles)
    for monthly, probability in ((3500, 0.5), (3250, 0.75), (2999, 1.0), (4000, 0.0), (3975, 0.025)):
        status = budget_status(_budget(monthly), "model/m", 1200, "USD", APRIL_10, forecast)
        assert status.overrun_probability == pytest.approx(probability), monthly
    # 100 more spent than the forecast saw: the whole distribution moves up by 100
    status = budget_status(_budget(3500), "model/m", 1300, "USD", APRIL_10, forecast)
    assert status.overrun_probability == pytest.approx(0.6)
    # no interval (run-rate forecast): no probability
    no_interval = budget_status(_budget(3500), "model/m", 1200, "USD", APRIL_10, _forecast(1200, 125))
    assert no_interval.overrun_probability is None and no_interval.upper_exceeds_budget is None


def test_alert_thresholds_on_actual_and_forecast():
    budget = _budget(3000, alerts={"actual": [0.5, 0.3, 1.0], "forecast": [0.9, 1.2]})
    status = budget_status(budget, "model/m", 1200, "USD", APRIL_10, _forecast(1200, 100))  # 40% spent, 3200 due
    assert status.alerts == ("actual 30%", "forecast 90%")
    status = budget_status(budget, "model/m", 1600, "USD", APRIL_10, _forecast(1600, 100))  # 53%, 3600 due
    assert status.alerts == ("actual 30%", "actual 50%", "forecast 90%", "forecast 120%")
    status = budget_status(budget, "model/m", 1500, "USD", APRIL_10, _forecast(1500, 75))  # 50% exactly, 3000 due
    assert status.alerts == ("actual 30%", "actual 50%", "forecast 90%")


def test_facts_are_json_ready():
    import json

    status = budget_status(_budget(3000), "model/m", 1200, "USD", APRIL_10, _forecast(1200, 130))
    facts = json.loads(json.dumps(status.facts()))
    assert facts["projected_overrun_date"] == "2024-04-24"
    assert facts["burn_rate"] == pytest.approx(1.2)
    assert facts["budget"] == 3000.0 and facts["budget_currency"] == "USD"


def test_spend_in_a_currency_the_budget_does_not_use_is_refused():
    with pytest.raises(BadInputError) as err:
        budget_status(_budget(3000), "team/people-analytics", 1200, "EUR", APRIL_10, _forecast(1200, 100))
    assert "EUR" in str(err.value) and "USD" in str(err.value) and "team/people-analytics" in str(err.value)
    forecast_in_gbp = _forecast(1200, 100, currency="GBP")
    with pytest.raises(BadInputError, match="forecast in GBP but the budget is in USD"):
        budget_status(_budget(3000), "model/m", 1200, "USD", APRIL_10, forecast_in_gbp)


def test_forecast_of_another_day_is_refused():
    with pytest.raises(BadInputError, match="made on 2024-04-09"):
        budget_status(_budget(3000), "model/m", 1200, "USD", APRIL_10, _forecast(1200, 100, date(2024, 4, 9)))


@pytest.mark.parametrize(
    "document, problem",
    [
        ({"by_modle": {}}, "by_modle: Extra inputs are not permitted"),
        ({"by_model": {"m": {"monthly": 100, "currency": "USD", "limit": 5}}}, "by_model.m.limit: Extra inputs"),
        ({"by_model": {"m": {"montly": 100, "currency": "USD"}}}, "by_model.m.monthly: Field required"),
        ({"by_team": {"t": {"monthly": -100, "currency": "USD"}}}, "by_team.t.monthly: Input should be greater than 0"),
        ({"by_team": {"t": {"monthly": 0, "currency": "USD"}}}, "by_team.t.monthly: Input should be greater than 0"),
        ({"by_workload": {"w": {"monthly": "100", "currency": "USD"}}}, "'100' is not a number"),
        ({"by_workload": {"w": {"monthly": True, "currency": "USD"}}}, "True is not a number"),
        ({"by_workload": {"w": {"monthly": float("inf"), "currency": "USD"}}}, "not a finite amount"),
        ({"by_model": {"m": {"monthly": 100, "currency": "usd"}}}, "by_model.m.currency"),
        ({"by_model": {"m": {"monthly": 100, "currency": "USD", "alerts": {"actual": [-0.5]}}}}, "alerts.actual.0"),
        ({"by_model": {"m": {"monthly": 100, "currency": "USD", "alerts": {"actuals": [1.0]}}}}, "alerts.actuals"),
        ({"by_model": []}, "by_model: Input should be a valid dictionary"),
    ],
)
def test_bad_budget_declarations_are_refused(document, problem):
    with pytest.raises(BadInputError) as err:
        parse_budgets(document, "policies/governance/data.yaml: budgets")
    assert problem in str(err.value)
    assert str(err.value).startswith("policies/governance/data.yaml: budgets: ")


def test_budgets_read_from_the_policy_data(tmp_path):
    path = tmp_path / "data.yaml"
    path.write_text(
        "thresholds:\n  fairness_score_min: 0.8\n"
        "budgets:\n"
        "  by_model:\n    credit-scoring-ai: {monthly: 2500.10, currency: USD}\n"
        "  by_team:\n    people-analytics:\n      monthly: 12000\n      currency: EUR\n"
        "      alerts: {actual: [0.8], forecast: [1.0, 1.1]}\n"
    )
    budgets = load_budgets(path)
    model = budgets.get("model", "credit-scoring-ai")
    assert model.monthly == Decimal("2500.1") and model.currency == "USD"
    assert model.alerts.actual == [1.0] and model.alerts.forecast == [1.0]
    team = budgets.get("team", "people-analytics")
    assert team.monthly == Decimal(12000) and team.currency == "EUR" and team.alerts.forecast == [1.0, 1.1]
    assert budgets.get("workload", "credit-scoring-ai") is None
    assert budgets.get("model", "no-such-model") is None
    with pytest.raises(BadInputError, match="not one of model, team, workload"):
        budgets.get("region", "eu")
    no_budgets = tmp_path / "none.yaml"
    no_budgets.write_text("thresholds: {}\n")
    assert load_budgets(no_budgets) == parse_budgets(None)


def test_declarations_import_without_numpy_or_pandas(tmp_path):
    """The policy gate validates `budgets:` with its base install (PyYAML, ruamel.yaml, pydantic):
    the declarations must load, validate and read a file with numpy, pandas and the forecasting
    stack unimportable."""
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "data.yaml"
    path.write_text("budgets:\n  by_team:\n    people-analytics: {monthly: 12000.5, currency: EUR}\n")
    blocked = ["numpy", "pandas", "pyarrow", "scipy", "statsforecast", "dagster"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "from rai_pipelines.costs.budget_declarations import load_budgets, parse_budgets\n"
        "from rai_pipelines.core.errors import BadInputError\n"
        f"budget = load_budgets({str(path)!r}).get('team', 'people-analytics')\n"
        "print(budget.monthly, budget.currency)\n"
        "try:\n"
        "    parse_budgets({'by_team': {'t': {'monthly': '1', 'currency': 'EUR'}}})\n"
        "except BadInputError as exc:\n"
        "    print(exc)\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["12000.5 EUR", "budgets: by_team.t.monthly: Value error, '1' is not a number"]


def test_budgets_module_re_exports_the_declarations():
    from rai_pipelines.costs import budget_declarations, budgets

    for name in ("Budget", "Budgets", "Alerts", "Threshold", "parse_budgets", "load_budgets", "ScopeKind"):
        assert getattr(budgets, name) is getattr(budget_declarations, name), name
