"""Where each budget stands in the month: burn rate, projection, overrun date and probability.

The budgets themselves (per model, team and workload, declared under `budgets` in the policy data)
and their validation are `costs.budget_declarations`, which the policy gate imports without numpy;
they are re-exported here, so `from rai_pipelines.costs.budgets import parse_budgets, Budgets,
budget_status` works.

`budget_status` turns a budget, the spend to date and the month-end forecast into the governance
facts: the burn rate as FinOps practitioners read it (spend to date over the budget's prorated share
of the elapsed month: 1.0 is on track, 1.2 is spending 20% faster than the budget allows), the daily
burn, the projected month end and its interval, the date the budget runs out and the days until
then at the forecast's daily rate, and the probability of an overrun. Amounts are compared in the
budget's own currency and never converted: spend in another currency is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import numpy as np

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.budget_declarations import (
    MAX_BUDGET,
    MAX_THRESHOLD,
    Alerts,
    Amount,
    Budget,
    Budgets,
    Currency,
    Name,
    ScopeKind,
    Threshold,
    load_budgets,
    parse_budgets,
)
from rai_pipelines.costs.budget_declarations import amount as _amount
from rai_pipelines.costs.forecast import MonthEndForecast, month_bounds

__all__ = [
    "MAX_BUDGET",
    "MAX_THRESHOLD",
    "Alerts",
    "Amount",
    "Budget",
    "BudgetStatus",
    "Budgets",
    "Currency",
    "Name",
    "ScopeKind",
    "Threshold",
    "budget_status",
    "load_budgets",
    "parse_budgets",
]


@dataclass(frozen=True)
class BudgetStatus:
    """Where a scope's spend stands against its monthly budget on `as_of` (amounts in `currency`).

    `burn_rate`: spend to date / (budget x elapsed share of the month), 1.0 on track.
    `daily_burn`: spend to date / elapsed days. `forecast_daily_rate`: the forecast's mean daily
    spend over the days left. `projected_month_end` (and its interval `projected_lower`/`upper`):
    spend to date plus the forecast of the days left. `projected_overrun_date`: the first day at
    whose end the spend, going on at the forecast's daily rate, reaches the budget; `as_of` when it
    already has; None when it does not within the month. `days_until_budget_exhausted`: the budget
    left over the forecast's daily rate (0 when spent, None when nothing more is spent).
    `overrun_probability`: the forecast's probability that the month's total exceeds the budget
    (None without an interval)."""

    scope: str
    month: str
    as_of: date
    currency: str
    budget: Decimal
    spend_to_date: Decimal
    days_in_month: int
    days_elapsed: int
    burn_rate: float
    daily_burn: float
    forecast_daily_rate: float
    projected_month_end: float
    projected_lower: float | None
    projected_upper: float | None
    projected_overrun: bool
    upper_exceeds_budget: bool | None
    overrun_probability: float | None
    projected_overrun_date: date | None
    days_until_budget_exhausted: float | None
    alerts: tuple[str, ...]
    forecast_method: str
    note: str = ""

    def facts(self) -> dict:
        """JSON-ready governance facts (dates ISO, amounts as floats)."""
        return {
            "budget": float(self.budget),
            "budget_currency": self.currency,
            "budget_month": self.month,
            "spend_to_date": float(self.spend_to_date),
            "burn_rate": self.burn_rate,
            "daily_burn": self.daily_burn,
            "projected_month_end": self.projected_month_end,
            "projected_month_end_lower": self.projected_lower,
            "projected_month_end_upper": self.projected_upper,
            "projected_overrun": self.projected_overrun,
            "overrun_probability": self.overrun_probability,
            "projected_overrun_date": self.projected_overrun_date.isoformat() if self.projected_overrun_date else None,
            "days_until_budget_exhausted": self.days_until_budget_exhausted,
            "budget_alerts": list(self.alerts),
        }


def _spend(value: object, where: str) -> Decimal:
    try:
        return _amount(value)
    except ValueError as exc:
        raise BadInputError(f"{where}: spend to date {exc}") from None


def _overrun_probability(forecast: MonthEndForecast, shift: float, budget: float) -> float | None:
    """P(month total > budget), read off the forecast's percentiles of the total (shifted to the
    spend to date the budget is compared with), linear between percentiles."""
    if len(forecast.percentiles) != 101:
        return None
    totals = np.asarray(forecast.percentiles, dtype=np.float64) + shift
    if budget < totals[0]:
        return 1.0
    if budget >= totals[-1]:
        return 0.0
    # np.interp needs increasing x: percentiles of a sample are non-decreasing; ties share a level
    cdf = float(np.interp(budget, totals, np.linspace(0.0, 1.0, 101)))
    return round(1.0 - cdf, 4)


def budget_status(
    budget: Budget,
    scope: str,
    spend_to_date: Decimal | float | int,
    currency: str,
    as_of: date,
    forecast: MonthEndForecast,
) -> BudgetStatus:
    """The budget facts of one scope (e.g. "model/credit-scoring-ai") on `as_of`, from its spend since
    the 1st of the month (the ledger's sum, in `currency`) and its month-end forecast made on `as_of`.

    The projections are the spend to date plus the forecast of the days left, so the ledger's sum
    stays the figure of record."""
    if not isinstance(budget, Budget):
        raise BadInputError(f"{scope}: budget must be a Budget, not {type(budget).__name__}")
    spent = _spend(spend_to_date, scope)
    for label, spend_currency in (("spend", currency), ("forecast", forecast.currency)):
        if spend_currency is not None and spend_currency != budget.currency:
            raise BadInputError(
                f"{scope}: {label} in {spend_currency} but the budget is in {budget.currency}; amounts are compared "
                "in the budget's currency and never converted: declare a budget in that currency"
            )
    if forecast.as_of != as_of or forecast.month != f"{as_of:%Y-%m}":
        raise BadInputError(
            f"{scope}: the forecast was made on {forecast.as_of.isoformat()} for {forecast.month}, "
            f"not on {as_of.isoformat()}"
        )
    _, last = month_bounds(as_of)
    days_in_month, elapsed = last.day, as_of.day
    remaining = (last - as_of).days
    amount = budget.monthly

    burn_rate = float(spent * days_in_month / (amount * elapsed))
    daily_burn = float(spent / elapsed)
    remaining_forecast = forecast.forecast_total - forecast.actual_to_date
    rate = forecast.daily_rate
    projected = float(spent) + remaining_forecast
    shift = float(spent) - forecast.actual_to_date
    lower = forecast.lower + shift if forecast.lower is not None else None
    upper = forecast.upper + shift if forecast.upper is not None else None

    left = float(amount - spent)
    if left <= 0:
        overrun_date, days_left = as_of, 0.0
    elif rate > 0:
        days_left = left / rate
        # the first whole day by whose end the budget is reached; the tolerance keeps a budget that is
        # reached exactly at a day's end (1800 left at 120 a day) on that day despite float rounding
        day = as_of + timedelta(days=math.ceil(days_left - 1e-9))
        overrun_date = day if day <= last else None
    else:
        overrun_date, days_left = None, None

    forecast_share = projected / float(amount)
    actual_share = float(spent / amount)
    alerts = tuple(
        [f"actual {t:.0%}" for t in sorted(budget.alerts.actual) if actual_share >= t]
        + [f"forecast {t:.0%}" for t in sorted(budget.alerts.forecast) if forecast_share >= t]
    )
    note = forecast.note
    if remaining == 0:
        note = note or "the month is complete"
    return BudgetStatus(
        scope=scope,
        month=f"{as_of:%Y-%m}",
        as_of=as_of,
        currency=budget.currency,
        budget=amount,
        spend_to_date=spent,
        days_in_month=days_in_month,
        days_elapsed=elapsed,
        burn_rate=burn_rate,
        daily_burn=daily_burn,
        forecast_daily_rate=rate,
        projected_month_end=projected,
        projected_lower=lower,
        projected_upper=upper,
        projected_overrun=projected > float(amount),
        upper_exceeds_budget=None if upper is None else upper > float(amount),
        overrun_probability=_overrun_probability(forecast, shift, float(amount)),
        projected_overrun_date=overrun_date,
        days_until_budget_exhausted=days_left,
        alerts=alerts,
        forecast_method=forecast.method,
        note=note,
    )
