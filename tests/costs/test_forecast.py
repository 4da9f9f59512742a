"""Month-end forecasts: accuracy and interval on realistic daily spend, the interval of a sum, and
the clear outcomes of too little history and bad input."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs import forecast as fc
from rai_pipelines.costs.forecast import MIN_HISTORY_DAYS, forecast_many, forecast_month_end

AS_OF = date(2024, 5, 10)  # May has 31 days: 10 known, 21 to forecast
MONTH_END = date(2024, 5, 31)


def _daily_spend(rng, base: float, noise: float, days: pd.DatetimeIndex) -> np.ndarray:
    """A serving model's daily bill: a slowly drifting level, weekends at 70%, log-normal noise."""
    level = np.exp(np.cumsum(rng.normal(0.0005, 0.004, len(days))))
    weekly = np.where(days.dayofweek >= 5, 0.7, 1.0)
    return base * level * weekly * np.exp(rng.normal(0.0, noise, len(days)))


def _table(n_scopes: int, noise: float, seed: int, history_start: date = date(2024, 1, 1)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = pd.date_range(history_start, MONTH_END, freq="D")
    frames = [
        pd.DataFrame(
            {
                "date": days.date,
                "model": f"model-{k}",
                "cost": _daily_spend(rng, float(rng.uniform(50, 500)), noise, days),
                "currency": "USD",
            }
        )
        for k in range(n_scopes)
    ]
    return pd.concat(frames, ignore_index=True)


def _month_total(table: pd.DataFrame, model: str) -> float:
    rows = table[(table["model"] == model) & (table["date"] >= AS_OF.replace(day=1))]
    return float(rows["cost"].sum())


def test_month_end_forecast_of_realistic_spend_is_close_and_its_interval_holds_the_actual():
    table = _table(8, noise=0.05, seed=7)
    forecasts = forecast_many(table, ["model"], AS_OF)
    assert [f.scope for f in forecasts] == [{"model": f"model-{k}"} for k in range(8)]
    errors, covered = [], 0
    for f in forecasts:
        actual = _month_total(table, f.scope["model"])
        assert f.month == "2024-05" and f.as_of == AS_OF and f.level == 0.8 and f.currency == "USD"
        assert (f.days_elapsed, f.days_remaining, f.days_of_history) == (10, 21, (AS_OF - date(2024, 1, 1)).days + 1)
        known = table[(table["model"] == f.scope["model"]) & (table["date"] >= date(2024, 5, 1))]
        assert f.actual_to_date == pytest.approx(known[known["date"] <= AS_OF]["cost"].sum())
        assert f.lower < f.forecast_total < f.upper
        assert f.percentiles[10] == pytest.approx(f.lower) and f.percentiles[90] == pytest.approx(f.upper)
        assert f.method.startswith("statsforecast AutoTheta ") and f.method.endswith(", 1000 simulated paths")
        errors.append(abs(f.forecast_total - actual) / actual)
        covered += f.lower <= actual <= f.upper
    assert max(errors) < 0.06
    assert np.mean(errors) < 0.03
    assert covered >= 6  # an 80% interval: 6.4 of 8 expected


def test_interval_is_that_of_the_sum_of_the_days_left(monkeypatch):
    """For simple exponential smoothing, ETS(A,N,N), the variance of the sum of the next H days' errors
    has the closed form sigma^2 * sum_k (1 + (H - k) alpha)^2 (each day's error stays in the level of
    all later days). The interval made from the model's simulated paths must match it, and neither
    adding per-day intervals (too wide) nor adding per-day variances (too narrow) would."""
    from scipy.stats import norm
    from statsforecast.models import AutoETS

    rng = np.random.default_rng(3)
    n = 200
    y = 500 + np.cumsum(rng.normal(0, 6, n)) + rng.normal(0, 20, n)
    days = pd.date_range(end=AS_OF, periods=n, freq="D")
    monkeypatch.setattr(fc, "_model", lambda season_length=7: AutoETS(season_length=7, model="ANN"))
    monkeypatch.setattr(fc, "_robust_history", lambda values, start: fc._History(values))  # spend as it is
    f = forecast_month_end(pd.Series(y, index=days), AS_OF)
    assert "ETS(A,N,N)" in f.method

    model = AutoETS(season_length=7, model="ANN").fit(y).model_
    alpha, sigma2, h = model["par"][0], model["sigma2"], f.days_remaining
    sum_sd = np.sqrt(sigma2 * sum((1 + (h - k) * alpha) ** 2 for k in range(1, h + 1)))
    interval_sd = (f.upper - f.lower) / (2 * norm.ppf(0.9))
    assert interval_sd == pytest.approx(sum_sd, rel=0.1)
    per_day_sds = np.sqrt(sigma2 * (1 + alpha**2 * np.arange(h)))
    assert per_day_sds.sum() > 1.3 * interval_sd  # per-day intervals added up
    assert np.sqrt((per_day_sds**2).sum()) < 0.5 * interval_sd  # per-day variances added up


def test_interval_widens_with_noise():
    quiet = forecast_many(_table(3, noise=0.02, seed=11), ["model"], AS_OF)
    noisy = forecast_many(_table(3, noise=0.12, seed=11), ["model"], AS_OF)
    for q, n in zip(quiet, noisy, strict=True):
        assert (n.upper - n.lower) / n.forecast_total > 2 * (q.upper - q.lower) / q.forecast_total


def test_spend_after_as_of_is_not_used_and_the_result_is_repeatable():
    table = _table(2, noise=0.05, seed=5)
    series = table[table["model"] == "model-1"].set_index("date")["cost"]
    full = forecast_month_end(series, AS_OF)
    known = forecast_month_end(series[series.index <= AS_OF], AS_OF)
    assert full == known
    # one StatsForecast call for many scopes gives each the figures it gets alone
    many = forecast_many(table, ["model"], AS_OF)[1]
    assert (many.forecast_total, many.lower, many.upper) == (full.forecast_total, full.lower, full.upper)


def test_spend_is_never_forecast_below_zero():
    # an intermittent workload: most days nothing, now and then a batch run; the model's normal errors
    # would send many simulated days below zero
    rng = np.random.default_rng(2)
    days = pd.date_range("2024-01-01", AS_OF, freq="D")
    spend = np.where(rng.random(len(days)) < 0.08, rng.uniform(50, 150, len(days)), 0.0)
    f = forecast_month_end(pd.Series(spend, index=days), AS_OF)
    assert f.has_interval
    assert f.percentiles[0] >= f.actual_to_date
    assert f.lower > f.actual_to_date  # a batch run or two is likely in 21 days


def test_days_without_charges_are_days_of_zero_spend():
    days = pd.date_range("2024-03-01", AS_OF, freq="D")
    series = pd.Series(100.0, index=days)
    gap = series.drop(pd.date_range("2024-05-03", "2024-05-04"))
    f = forecast_month_end(gap, AS_OF)
    assert f.days_of_history == len(days)
    assert f.actual_to_date == pytest.approx(800.0)


def test_too_little_history_gives_a_run_rate_projection_without_interval():
    days = pd.date_range(AS_OF - timedelta(days=MIN_HISTORY_DAYS - 2), AS_OF, freq="D")  # 13 days
    series = pd.Series(np.arange(len(days), dtype=float) + 100.0, index=days)  # 100, 101, ..., 112
    f = forecast_month_end(series, AS_OF)
    assert f.method == "run-rate"
    assert f.lower is None and f.upper is None and not f.has_interval and f.percentiles == ()
    assert f.days_of_history == 13
    assert "only 13 days of history" in f.note and f"at least {MIN_HISTORY_DAYS}" in f.note
    # May 1-10 are the last ten values (103..112); the mean of all 13 days (106) for 21 days
    assert f.actual_to_date == pytest.approx(sum(range(103, 113)))
    assert f.forecast_total == pytest.approx(sum(range(103, 113)) + 106 * 21)
    assert f.daily_rate == pytest.approx(106)
    # one more day of history and the forecast is statistical, with an interval
    longer = pd.concat([pd.Series([99.0], index=[days[0] - pd.Timedelta(days=1)]), series])
    assert forecast_month_end(longer, AS_OF).has_interval


def test_last_day_of_the_month_is_the_actual_total():
    days = pd.date_range("2024-03-01", MONTH_END, freq="D")
    f = forecast_month_end(pd.Series(10.0, index=days), MONTH_END)
    assert f.method == "actual" and f.days_remaining == 0
    assert f.forecast_total == f.lower == f.upper == pytest.approx(310.0)
    assert set(f.percentiles) == {f.forecast_total}
    assert f.daily_rate == pytest.approx(10.0)


def test_amounts_may_be_decimals_and_several_rows_a_day_are_added():
    rows = []
    for day in pd.date_range("2024-04-01", AS_OF, freq="D").date:
        rows += [(day, "m", Decimal("40.10")), (day, "m", Decimal("9.90"))]
    table = pd.DataFrame(rows, columns=["date", "model", "cost"])
    (f,) = forecast_many(table, ["model"], AS_OF, currency_column=None)
    assert f.actual_to_date == pytest.approx(500.0)
    assert f.forecast_total == pytest.approx(50.0 * calendar.monthrange(2024, 5)[1])
    assert f.currency is None


@pytest.mark.parametrize(
    "series, problem",
    [
        (pd.Series([1.0, np.nan], index=pd.date_range("2024-05-01", periods=2)), "NaN"),
        (pd.Series([1.0, 2.0], index=["2024-05-01", "2024-05-02"]), "is not a date"),
        (pd.Series(["1", "2"], index=pd.date_range("2024-05-01", periods=2)), "is not an amount"),
        (pd.Series([1.0], index=pd.date_range("2024-05-11", periods=1)), "no spend on or before 2024-05-10"),
        ([1.0, 2.0], "a pandas Series"),
    ],
)
def test_bad_series_is_refused(series, problem):
    with pytest.raises(BadInputError, match=problem):
        forecast_month_end(series, AS_OF)


@pytest.mark.parametrize("level", [0.3, 1.0, 80, True, "0.8"])
def test_level_must_be_a_probability(level):
    with pytest.raises(BadInputError, match="level"):
        forecast_month_end(pd.Series([1.0], index=pd.date_range("2024-05-01", periods=1)), AS_OF, level=level)


def test_bad_tables_are_refused():
    table = _table(2, noise=0.05, seed=1, history_start=date(2024, 4, 1))
    with pytest.raises(BadInputError, match=r"missing column\(s\) \['team'\]"):
        forecast_many(table, ["team"], AS_OF)
    mixed = table.copy()
    mixed.loc[mixed.index[-1], "currency"] = "EUR"
    several = r"scope \{'model': 'model-1'\}: spend in several currencies \['EUR', 'USD'\]"
    with pytest.raises(BadInputError, match=several):
        forecast_many(mixed, ["model"], AS_OF)
    unnamed = table.copy()
    unnamed.loc[3, "model"] = None
    with pytest.raises(BadInputError, match="row 3, column model: None is not a name"):
        forecast_many(unnamed, ["model"], AS_OF)
    with pytest.raises(BadInputError, match="at least one scope column"):
        forecast_many(table, [], AS_OF)
    # a scope whose spend all comes after as_of has nothing to forecast from and is left out
    late = pd.DataFrame({"date": [date(2024, 5, 20)], "model": ["late"], "cost": [5.0], "currency": ["USD"]})
    scopes = [f.scope["model"] for f in forecast_many(pd.concat([table, late]), ["model"], AS_OF)]
    assert scopes == ["model-0", "model-1"]


# The demo's allocated daily costs, 1-14 November 2023: credit-scoring-ai moved to a GPU node on the 6th (a
# permanent level shift); employment-screening-ai had a one-off data transfer out on the 11th.
DEMO_DAYS = pd.date_range("2023-11-01", "2023-11-14", freq="D")
GPU_MOVE = [5.59957] * 5 + [33.15157] + [33.151465] * 6 + [33.15149] * 2
DATA_TRANSFER = [11.15243] * 6 + [11.152535] * 4 + [92.152535, 11.152535, 11.15251, 11.15251]


def test_a_level_shift_is_forecast_at_its_new_level_not_as_growth():
    f = forecast_month_end(pd.Series(GPU_MOVE, index=DEMO_DAYS), date(2023, 11, 14))
    expected = sum(GPU_MOVE) + 16 * 33.15149  # 326.36 spent, 16 days left at the new level: 856.78
    assert f.has_interval and f.actual_to_date == pytest.approx(sum(GPU_MOVE))
    assert f.forecast_total == pytest.approx(expected, rel=0.01)
    assert 800 < f.lower <= f.forecast_total <= f.upper < 900  # was 1156 in [686, 1568]: the step as growth
    assert "level shift on 2023-11-06 (spend x5.92)" in f.note
    # before two weeks of history: a run-rate of the level since the shift, not of the ten days' mean
    early = forecast_month_end(pd.Series(GPU_MOVE[:10], index=DEMO_DAYS[:10]), date(2023, 11, 10))
    assert early.method == "run-rate" and "level shift on 2023-11-06" in early.note
    assert early.forecast_total == pytest.approx(sum(GPU_MOVE[:10]) + 20 * 33.15149, rel=0.001)


def test_a_one_day_spike_is_not_extrapolated():
    f = forecast_month_end(pd.Series(DATA_TRANSFER, index=DEMO_DAYS), date(2023, 11, 14))
    expected = sum(DATA_TRANSFER) + 16 * 11.15251  # 237.13 spent, 16 days at the usual 11.15: 415.57
    assert f.forecast_total == pytest.approx(expected, rel=0.01)
    assert f.upper < 440  # was 807 in [400, 1215]
    assert "1 outlier day(s) replaced by their baseline: 2023-11-11 (x8.3)" in f.note
    assert "a single spike is a one-off" in f.note


def _noisy(rng, days: pd.DatetimeIndex, base: float) -> np.ndarray:
    weekly = np.where(days.dayofweek >= 5, 0.7, 1.0)
    return base * weekly * np.exp(rng.normal(0.0, 0.04, len(days)))


def test_a_level_shift_in_noisy_spend_with_a_weekly_pattern():
    # 100 days at about 40 a day, then three times as much from 2 May: eight days of the new level on 9 May
    rng = np.random.default_rng(4)
    days = pd.date_range("2024-01-23", MONTH_END, freq="D")
    spend = _noisy(rng, days, 40.0) * np.where(days >= pd.Timestamp("2024-05-02"), 3.0, 1.0)
    series = pd.Series(spend, index=days)
    as_of = date(2024, 5, 9)
    f = forecast_month_end(series, as_of)
    actual = float(series[series.index >= pd.Timestamp("2024-05-01")].sum())
    assert f.lower <= actual <= f.upper
    assert f.forecast_total == pytest.approx(actual, rel=0.04)
    assert (f.upper - f.lower) / f.forecast_total < 0.15
    assert "level shift on 2024-05-02" in f.note


def test_recurring_spikes_are_simulated_not_taken_for_the_level():
    rng = np.random.default_rng(8)
    days = pd.date_range("2024-01-11", AS_OF, freq="D")  # 121 days
    calm = _noisy(rng, days, 100.0)
    spiky = calm.copy()
    spiky[[20, 50, 80, len(days) - 2]] *= 5.0  # a backfill now and then, the last one two days ago
    quiet = forecast_month_end(pd.Series(calm, index=days), AS_OF)
    f = forecast_month_end(pd.Series(spiky, index=days), AS_OF)
    assert "4 spikes in 121 days recur" in f.note
    # the level is that of the days around the spikes: with no spike in the 21 days left (half the paths)
    # the total is that of the calm series
    assert f.lower - f.actual_to_date == pytest.approx(quiet.lower - quiet.actual_to_date, rel=0.03)
    # a spike about every 30 days of four days' extra spend: about 2.8 days' spend more over the 21 left
    # (a day's spend is about 92 here), so the extra lies between 1.5 and 4.5 days' spend
    extra = (f.forecast_total - f.actual_to_date) - (quiet.forecast_total - quiet.actual_to_date)
    low, high = 1.5 * 92, 4.5 * 92
    assert low < extra < high
    assert f.upper - f.actual_to_date > 1.1 * (quiet.upper - quiet.actual_to_date)
