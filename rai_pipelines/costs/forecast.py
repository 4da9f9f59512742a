"""Month-end spend forecasts with a prediction interval, per model, workload or team.

What is forecast: the calendar month's total spend of one scope (a model, a workload, a team), seen on
`as_of`: the actual spend from the 1st up to and including `as_of`, plus a forecast of the days left.
The interval is an 80% prediction interval by default, the convention of AWS Cost Explorer's
forecasts: the month's total falls below `lower` one time in ten and above `upper` one time in ten.

The model is statsforecast's AutoTheta (the standard, optimised and dynamic theta models of Fiorucci
et al., 2016, chosen by in-sample error): simple exponential smoothing with a drift (Hyndman and
Billah, 2003), a level that follows each day's spend plus a growth, which is what a serving model's
bill is (traffic moves the level, adoption makes it grow, weekends are quieter). It is fitted per
scope to at most `MAX_HISTORY_DAYS` days of spend less its weekday effects (medians of log spend's
deviations from the week's median) and less its growth (the least-squares slope of log spend), in
units of its median (statsforecast's theta optimiser is not scale-free); both are multiplied back
into the simulated days. The growth is added back in full: the theta line's half of it lagged, and
totals fell above the interval twice as often as below. Below `DRIFT_MIN_DAYS` no growth is added:
the slope of a few weeks is more noise than growth. In backtests (`benchmarks/forecast.py`) AutoETS
with AICc-chosen trends covered 73% (it extrapolates noise), AutoARIMA was twenty times slower.

The history is made robust first (`_robust_history`; the forecast's note says what was changed). A
level shift (a move to a GPU instance, a scale-down: the median of log spend changes by at least 25%
and four times the day-to-day noise, across the day and across the weeks either side, and the new
level has lasted three days) is taken out by scaling the days before it to the new level: the step
is neither extrapolated as growth (the demo's 6x step in 14 days made a month of 857 one of 1,156 in
[686, 1,568]) nor averaged into the level, and the older days still carry the weekly pattern and the
noise. A day at least twice (or half) its week's median and five times the noise away is an outlier,
replaced by that median: a one-off data transfer is not a new level. Spikes recur when there are
`SPIKES_TO_RECUR` of them or the history has `DRIFT_MIN_DAYS`: each simulated day has one at the rate
seen, of a size drawn from those seen. A single spike in a short history is a one-off, left out as
other one-off charges are (reservations bought on the 1st, tax lines): forecast usage, or expect the
interval to miss them. Series with more than a tenth of days without positive spend (intermittent
runs, credits) are fitted as they are, with statsforecast's weekly decomposition (additive, to whose
residuals statsforecast 2.1.1 adds the weekly pattern: a wider interval), floored at zero; any
smoothing model forecasts intermittent spend poorly. A day with no charges is a day of zero spend.

Why the interval comes from simulated sample paths. What is uncertain is the SUM of the remaining
days, and the errors of the forecast are correlated across the horizon: a level that turns out
higher on day 12 stays higher on days 13 to 31. Adding the per-day intervals would treat the days as
perfectly correlated (too wide); adding per-day variances would treat them as independent (too
narrow, several times so after three weeks). statsforecast simulates future paths from the fitted
model, each simulated day fed back into the level and drift as an observed day would be, so summing
each path over the remaining days gives draws of the remaining spend with the error correlation the
model implies. The model's errors are independent; when its one-day errors are autocorrelated (spend
that stays high a few days without moving the level), the simulated deviations are widened by
sqrt((1 + rho) / (1 - rho)), the ratio for sums of AR(1) errors. The interval's ends are the
(1 - level)/2 and (1 + level)/2 quantiles of the sums and the point forecast is their mean;
`percentiles` keeps the 0th to 100th percentiles of the total, from which a budget's overrun
probability is read. Weekday effects and growth are taken as known. Paths are drawn with a fixed
seed, so re-running a day gives the same figures. A flat history gives a narrow interval.

Too little history: below `MIN_HISTORY_DAYS` days (two weekly cycles) no statistical forecast is
made: the weekly pattern cannot be told from noise before two cycles, and an error variance from a
handful of residuals would make an 80% interval mean anything but 80%. The outcome is a run-rate
projection (the mean daily spend of the robust history, times the days left) with no interval,
`method="run-rate"` and a note that says why.
"""

from __future__ import annotations

import calendar
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.values import float_amounts

MIN_HISTORY_DAYS = 14
# A year: enough for the weekly pattern and the growth; older spend describes another deployment, and
# the bound keeps the fit's cost and the reindexing of a hostile date range small.
MAX_HISTORY_DAYS = 365
SEASON_LENGTH = 7
N_PATHS = 1000
SEED = 20240601
MAX_SCOPES = 10_000
# The robust history and the growth (see the module docstring)
SHIFT_MIN_RATIO = 1.25
SHIFT_MIN_SIGMAS = 4.0
SHIFT_MIN_DAYS = 3
SHIFT_MIN_BEFORE = 5
SHIFT_WINDOW = 28
SHIFT_LOCAL_DAYS = 7
MAX_SHIFTS = 3
OUTLIER_MIN_RATIO = 2.0
OUTLIER_MIN_SIGMAS = 5.0
NOISE_FLOOR = 0.01  # a day, in log spend: on a flat series only a material change is one
MIN_POSITIVE_SHARE = 0.9
SPIKES_TO_RECUR = 2
MAX_NOTED = 3
DRIFT_MIN_DAYS = 56
MAX_AUTOCORRELATION = 0.5
# statsforecast's theta optimiser is not scale-free: it fits a series of a few units badly
RELATIVE_UNITS = 100.0


@dataclass(frozen=True)
class MonthEndForecast:
    """The month's total spend of one scope seen on `as_of`. Amounts are in the series' currency.

    `forecast_total`, `lower` and `upper` include `actual_to_date`. `lower`/`upper` are None when no
    interval could be given (too little history); `note` then says why."""

    month: str  # YYYY-MM
    as_of: date
    actual_to_date: float
    forecast_total: float
    lower: float | None
    upper: float | None
    level: float
    method: str
    days_of_history: int
    days_elapsed: int
    days_remaining: int
    note: str = ""
    scope: Mapping[str, str] = field(default_factory=dict)
    currency: str | None = None
    # the month total's 0th, 1st, ..., 100th percentiles (empty when there is no interval)
    percentiles: tuple[float, ...] = ()

    @property
    def daily_rate(self) -> float:
        """The forecast's mean daily spend over the days left; on the last day of the month, the
        month's mean daily spend."""
        if self.days_remaining:
            return (self.forecast_total - self.actual_to_date) / self.days_remaining
        return self.actual_to_date / self.days_elapsed

    @property
    def has_interval(self) -> bool:
        return self.lower is not None and self.upper is not None


def month_bounds(as_of: date) -> tuple[date, date]:
    """The first and last day of `as_of`'s month."""
    last = calendar.monthrange(as_of.year, as_of.month)[1]
    return as_of.replace(day=1), as_of.replace(day=last)


def _as_date(value: object, where: str) -> date:
    if isinstance(value, datetime | pd.Timestamp):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).date()
    raise BadInputError(f"{where}: {value!r} is not a date")


def _check_level(level: object) -> float:
    if not isinstance(level, float | int) or isinstance(level, bool) or not 0.5 <= level < 1:
        raise BadInputError(f"level: {level!r} must be a probability between 0.5 and 1 (0.8 for an 80% interval)")
    return float(level)


def _to_float(values: pd.Series, where: str) -> np.ndarray:
    """Costs as floats (statistics need no cents): numbers or Decimals, all finite."""
    out = float_amounts(values, where)
    if not np.isfinite(out).all():
        raise BadInputError(f"{where}: missing, infinite or NaN amounts ({int((~np.isfinite(out)).sum())} of them)")
    return out


def _daily_history(dates: Sequence[date], costs: np.ndarray, as_of: date, where: str) -> tuple[np.ndarray, date]:
    """Daily spend from the first day with a charge (at most MAX_HISTORY_DAYS back) to `as_of`
    inclusive, days without a charge as zero; charges after `as_of` are left out (not yet known
    then). Returns the values and the first day."""
    per_day: dict[date, float] = {}
    earliest = as_of - timedelta(days=MAX_HISTORY_DAYS - 1)
    for day, cost in zip(dates, costs, strict=True):
        if day > as_of:
            continue
        per_day[day] = per_day.get(day, 0.0) + float(cost)
    if not per_day:
        raise BadInputError(f"{where}: no spend on or before {as_of.isoformat()}: nothing to forecast from")
    start = max(min(per_day), earliest)
    n = (as_of - start).days + 1
    values = np.zeros(n, dtype=np.float64)
    for day, cost in per_day.items():
        if day >= start:
            values[(day - start).days] = cost
    return values, start


def _window_medians(x: np.ndarray, before: int, after: int) -> np.ndarray:
    """For each day t, the median of x[t - before : t + after] (fewer days at the ends)."""
    padded = np.concatenate([np.full(before, np.nan), x, np.full(after, np.nan)])
    with warnings.catch_warnings():  # the window before the first day is empty: its median is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(np.lib.stride_tricks.sliding_window_view(padded, before + after)[: len(x)], axis=1)


def _rolling_median(x: np.ndarray, half: int) -> np.ndarray:
    """The median of each day's centred window of 2 * half + 1 days (shorter at the ends)."""
    return _window_medians(x, half, half + 1)


def _weekday_effects(x: np.ndarray, first_weekday: int) -> np.ndarray:
    """The effect of each weekday (Monday first) in log spend: the median of its days' deviations
    from their centred weekly median and a zero (no effect), so that with two weeks one spike cannot
    make an effect: the smaller of two deviations of one sign, else none. Zero before two weeks."""
    if len(x) < 2 * SEASON_LENGTH:
        return np.zeros(SEASON_LENGTH)
    weekday = (first_weekday + np.arange(len(x))) % SEASON_LENGTH
    deviation = x - _rolling_median(x, SEASON_LENGTH // 2)
    effect = np.array([np.median(np.append(deviation[weekday == d], 0.0)) for d in range(SEASON_LENGTH)])
    return effect - effect.mean()


def _noise_sd(z: np.ndarray) -> float:
    """The day-to-day noise of a log series, from the MAD of its first differences (a level shift
    or a spike moves one or two of them, not their median)."""
    diffs = np.diff(z)
    return max(1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / math.sqrt(2), NOISE_FLOOR)


def _l1(x: np.ndarray) -> float:
    return float(np.abs(x - np.median(x)).sum())


def _find_shift(z: np.ndarray) -> tuple[int, float] | None:
    """The first day and size of a material level shift in a log series less its weekday effects
    (see the module docstring), or None; of the candidate days, the one that best splits the series
    into two flat segments (the largest fall in absolute deviations from their medians)."""
    n, threshold = len(z), max(math.log(SHIFT_MIN_RATIO), SHIFT_MIN_SIGMAS * _noise_sd(z))
    delta = _window_medians(z, 0, SHIFT_WINDOW) - _window_medians(z, SHIFT_WINDOW, 0)
    local = _window_medians(z, 0, SHIFT_LOCAL_DAYS) - _window_medians(z, SHIFT_LOCAL_DAYS, 0)
    material = (np.minimum(np.abs(delta), np.abs(local)) >= threshold) & (delta * local > 0)
    material[:SHIFT_MIN_BEFORE] = material[n - SHIFT_MIN_DAYS + 1 :] = False
    best: tuple[float, int, float] | None = None
    for t in np.flatnonzero(material):
        before, after = z[max(0, t - SHIFT_WINDOW) : t], z[t : t + SHIFT_WINDOW]
        gain = _l1(np.concatenate([before, after])) - _l1(before) - _l1(after)
        if best is None or gain > best[0]:
            best = (gain, int(t), float(delta[t]))
    return None if best is None else best[1:]


@dataclass(frozen=True)
class _History:
    """Spend with level shifts and outliers taken out, the note that says so, the sizes of recurring
    spikes (spend / baseline - 1) and the weekday effects in log spend (Monday first), if positive."""

    values: np.ndarray
    note: str = ""
    spikes: np.ndarray = field(default_factory=lambda: np.empty(0))
    weekdays: np.ndarray | None = None


def _robust_history(values: np.ndarray, start: date) -> _History:
    """The history with level shifts scaled out and outliers replaced by their week's median, both
    found in log spend less its weekday effects (see the module docstring)."""
    n = len(values)
    if n < SHIFT_MIN_BEFORE + SHIFT_MIN_DAYS or np.mean(values > 0) < MIN_POSITIVE_SHARE:
        return _History(values)
    x = np.log(np.maximum(values, 1e-3 * float(np.median(values[values > 0]))))
    fitted, shifts, weekday = values.copy(), [], (start.weekday() + np.arange(n)) % SEASON_LENGTH
    for _ in range(MAX_SHIFTS):
        shift = _find_shift(x - _weekday_effects(x, start.weekday())[weekday])
        if shift is None:
            break
        t, delta = shift
        x[:t] += delta
        fitted[:t] *= math.exp(delta)
        shifts.append((start + timedelta(days=t), math.exp(delta)))
    weekly = _weekday_effects(x, start.weekday())[weekday]
    z = x - weekly
    baseline = _rolling_median(z, SEASON_LENGTH // 2)
    limit = max(math.log(OUTLIER_MIN_RATIO), OUTLIER_MIN_SIGMAS * _noise_sd(z))
    outliers = np.flatnonzero(np.abs(z - baseline) > limit)
    spiked = fitted.copy()
    fitted[outliers] = np.exp(baseline[outliers] + weekly[outliers])
    ups = outliers[z[outliers] > baseline[outliers]]
    recur = len(ups) >= SPIKES_TO_RECUR or (len(ups) and n >= DRIFT_MIN_DAYS)
    spikes = spiked[ups] / fitted[ups] - 1.0 if recur else np.empty(0)
    notes = []
    if shifts:
        steps = ", ".join(f"{day.isoformat()} (spend x{ratio:.3g})" for day, ratio in sorted(shifts))
        notes.append(f"level shift on {steps}: the days before it scaled to the level since")
    if len(outliers):
        days = ", ".join(
            f"{start + timedelta(days=int(t))} (x{max(spiked[t], 0) / fitted[t]:.2g})" for t in outliers[:MAX_NOTED]
        )
        more = f" and {len(outliers) - MAX_NOTED} more" if len(outliers) > MAX_NOTED else ""
        notes.append(f"{len(outliers)} outlier day(s) replaced by their baseline: {days}{more}")
    if len(spikes):
        notes.append(f"{len(spikes)} spikes in {n} days recur: simulated at that rate")
    elif len(ups):
        notes.append("a single spike is a one-off: not simulated")
    effects = _weekday_effects(np.log(fitted), start.weekday()) if fitted.min() > 0 else None
    return _History(fitted, "; ".join(notes), spikes, effects)


@dataclass(frozen=True)
class _Series:
    scope: dict[str, str]
    currency: str | None
    values: np.ndarray
    start: date


def _month_actual(series: _Series, as_of: date) -> float:
    first, _ = month_bounds(as_of)
    offset = max((first - series.start).days, 0)
    return float(series.values[offset:].sum())


def _run_rate(series: _Series, fit: np.ndarray, as_of: date, level: float, why: str) -> MonthEndForecast:
    _, last = month_bounds(as_of)
    remaining = (last - as_of).days
    actual = _month_actual(series, as_of)
    rate = float(fit.mean())
    return MonthEndForecast(
        month=f"{as_of:%Y-%m}",
        as_of=as_of,
        actual_to_date=actual,
        forecast_total=actual + rate * remaining,
        lower=None,
        upper=None,
        level=level,
        method="run-rate",
        days_of_history=len(series.values),
        days_elapsed=as_of.day,
        days_remaining=remaining,
        note=why,
        scope=series.scope,
        currency=series.currency,
    )


def _complete(series: _Series, as_of: date, level: float) -> MonthEndForecast:
    actual = _month_actual(series, as_of)
    return MonthEndForecast(
        month=f"{as_of:%Y-%m}",
        as_of=as_of,
        actual_to_date=actual,
        forecast_total=actual,
        lower=actual,
        upper=actual,
        level=level,
        method="actual",
        days_of_history=len(series.values),
        days_elapsed=as_of.day,
        days_remaining=0,
        note="the month is complete: its total is the actual spend",
        scope=series.scope,
        currency=series.currency,
        percentiles=(actual,) * 101,
    )


def _too_short(series: _Series) -> str:
    return (
        f"only {len(series.values)} days of history (at least {MIN_HISTORY_DAYS}, two weekly cycles, are needed"
        " for a statistical forecast with a prediction interval): run-rate projection, no interval"
    )


def _model(season_length: int = SEASON_LENGTH):
    """The forecasting model, one fitted per scope."""
    from statsforecast.models import AutoTheta

    return AutoTheta(season_length=season_length)


def _describe(fitted) -> str:
    model = fitted.model_
    if "modeltype" in model:  # AutoTheta
        seasonal = f", {model['decomposition_type']} weekly season" if model.get("decompose") else ""
        return f"statsforecast {fitted.alias} {model['modeltype']}{seasonal}"
    if "components" in model:  # AutoETS
        error, trend, season, damped = model["components"][:4]
        return f"statsforecast {fitted.alias} ETS({error},{trend}{'d' if damped != 'N' else ''},{season})"
    return f"statsforecast {fitted.alias}"


def _add_spikes(paths: np.ndarray, history: _History) -> np.ndarray:
    """Recurring spikes on the simulated days: on each day one with probability (spikes seen / days
    of history), of a size drawn from those seen, relative to the day's simulated spend."""
    if not len(history.spikes):
        return paths
    rng = np.random.default_rng(SEED)
    hits = rng.random(paths.shape) < len(history.spikes) / len(history.values)
    return paths * (1.0 + hits * rng.choice(history.spikes, size=paths.shape))


def _adjusted(series: _Series, history: _History) -> tuple[np.ndarray, float, float]:
    """The spend fitted: less weekday effects and growth, in units of its median / RELATIVE_UNITS;
    that median's log and the growth a day to add back (see the module docstring)."""
    n = len(history.values)
    z = np.log(history.values) - history.weekdays[(series.start.weekday() + np.arange(n)) % SEASON_LENGTH]
    slope = float(np.polyfit(np.arange(n), z, 1)[0])
    z -= slope * np.arange(n)
    center = float(np.median(z))
    return RELATIVE_UNITS * np.exp(z - center), center, slope if n >= DRIFT_MIN_DAYS else 0.0


def _autocorrelation_factor(fitted) -> float:
    """sqrt((1 + rho) / (1 - rho)), rho the lag-1 autocorrelation of the model's one-day errors when
    positive (capped; from four weeks of them): the widening of a sum of AR(1) errors."""
    residuals = np.asarray(fitted.model_["residuals"], dtype=np.float64)[3:]
    if len(residuals) < 4 * SEASON_LENGTH or np.std(residuals) == 0:
        return 1.0
    rho = min(float(np.corrcoef(residuals[:-1], residuals[1:])[0, 1]), MAX_AUTOCORRELATION)
    return math.sqrt((1 + rho) / (1 - rho)) if rho > 0 else 1.0


def _fit_group(model, frames: list[pd.DataFrame]) -> dict[str, object]:
    """Fit `model` to every series in one StatsForecast call: the fitted model by unique_id."""
    from statsforecast import StatsForecast  # heavy (statsmodels, scipy.stats): only when forecasting

    sf = StatsForecast(models=[model], freq="D", n_jobs=1)
    with warnings.catch_warnings():
        # candidate fits that divide by zero on short or flat series are dropped by the library
        warnings.simplefilter("ignore", RuntimeWarning)
        sf.fit(pd.concat(frames, ignore_index=True))
    return {uid: sf.fitted_[row, 0] for row, uid in enumerate(sf.uids)}


def _simulate_remaining(series_list: list[_Series], fits: list[_History], h: int) -> list[tuple[np.ndarray, str]]:
    """Fit the model to every series' robust history and simulate each one's next `h` days: (paths
    of shape N_PATHS x h in the series' units, description of the model). Series in log spend are
    fitted together without a season (their weekday effects are taken out), the others together
    with statsforecast's weekly decomposition."""
    frames: dict[bool, list[pd.DataFrame]] = {True: [], False: []}
    growth: dict[int, float] = {}
    center: dict[int, float] = {}
    for k, (s, history) in enumerate(zip(series_list, fits, strict=True)):
        in_logs = history.weekdays is not None
        y = history.values
        if in_logs:
            y, center[k], growth[k] = _adjusted(s, history)
        frames[in_logs].append(
            pd.DataFrame({"unique_id": str(k), "ds": pd.date_range(s.start, periods=len(y)), "y": y})
        )
    fitted_of = {}
    for in_logs, group in frames.items():
        if group:
            fitted_of |= _fit_group(_model(1 if in_logs else SEASON_LENGTH), group)
    out = []
    for k, (s, history) in enumerate(zip(series_list, fits, strict=True)):
        fitted = fitted_of[str(k)]
        # the library seeds numpy's global generator too: leave the caller's as it was
        global_state = np.random.get_state()
        try:
            paths = np.asarray(fitted.simulate(h=h, n_paths=N_PATHS, seed=SEED), dtype=np.float64)
        finally:
            np.random.set_state(global_state)
        if history.weekdays is not None:
            mean = paths.mean(axis=0)
            paths = mean + (paths - mean) * _autocorrelation_factor(fitted)
            days = len(history.values) + np.arange(h)
            weekday = (s.start.weekday() + days) % SEASON_LENGTH
            scale = np.exp(center[k] + growth[k] * days + history.weekdays[weekday]) / RELATIVE_UNITS
            paths = np.maximum(paths, 0.0) * scale
            what = f"{_describe(fitted)} of daily spend less weekday effects and growth"
        else:
            if s.values.min() >= 0:
                paths = np.maximum(paths, 0.0)
            what = _describe(fitted)
        out.append((_add_spikes(paths, history), f"{what}, {N_PATHS} simulated paths"))
    return out


def _forecast_series(series_list: list[_Series], as_of: date, level: float) -> list[MonthEndForecast]:
    """The forecasts of many series made on one day: the statistical ones fitted together."""
    _, last = month_bounds(as_of)
    h = (last - as_of).days
    results: list[MonthEndForecast | None] = [None] * len(series_list)
    fit_idx: list[int] = []
    fits: dict[int, _History] = {}
    for i, series in enumerate(series_list):
        if h == 0:
            results[i] = _complete(series, as_of, level)
            continue
        fits[i] = _robust_history(series.values, series.start)
        if len(series.values) < MIN_HISTORY_DAYS:
            fit, note = fits[i].values, fits[i].note
            results[i] = _run_rate(series, fit, as_of, level, "; ".join(filter(None, [_too_short(series), note])))
        else:
            fit_idx.append(i)
    if fit_idx:
        simulated = _simulate_remaining([series_list[i] for i in fit_idx], [fits[i] for i in fit_idx], h)
        for i, (paths, method) in zip(fit_idx, simulated, strict=True):
            s = series_list[i]
            sums = paths.sum(axis=1)
            lo, hi = np.quantile(sums, [(1 - level) / 2, (1 + level) / 2])
            actual = _month_actual(s, as_of)
            results[i] = MonthEndForecast(
                month=f"{as_of:%Y-%m}",
                as_of=as_of,
                actual_to_date=actual,
                forecast_total=actual + float(sums.mean()),
                lower=actual + float(lo),
                upper=actual + float(hi),
                level=level,
                method=method,
                days_of_history=len(s.values),
                days_elapsed=as_of.day,
                days_remaining=h,
                note=fits[i].note,
                scope=s.scope,
                currency=s.currency,
                percentiles=tuple(float(v) for v in actual + np.percentile(sums, np.arange(101))),
            )
    return [r for r in results if r is not None]


def forecast_month_end(
    daily: pd.Series, as_of: date, level: float = 0.8, *, currency: str | None = None
) -> MonthEndForecast:
    """Forecast the total spend of `as_of`'s month from a daily cost series (index: dates, values:
    amounts in one currency, named by `currency` if given; several entries of one day are added)
    known up to and including `as_of`; entries after `as_of` are ignored. See the module docstring
    for the method."""
    as_of = _as_date(as_of, "as_of")
    level = _check_level(level)
    if not isinstance(daily, pd.Series):
        raise BadInputError(f"daily: a pandas Series indexed by date is needed, not {type(daily).__name__}")
    dates = [_as_date(d, f"daily: index entry {k}") for k, d in enumerate(daily.index)]
    values, start = _daily_history(dates, _to_float(daily, "daily"), as_of, "daily")
    return _forecast_series([_Series({}, currency, values, start)], as_of, level)[0]


def forecast_many(
    table: pd.DataFrame,
    scope_columns: Sequence[str],
    as_of: date,
    level: float = 0.8,
    *,
    date_column: str = "date",
    cost_column: str = "cost",
    currency_column: str | None = "currency",
) -> list[MonthEndForecast]:
    """Month-end forecasts of every scope in a long table (one row per scope and day, or several
    rows a day that are added), fitted in one StatsForecast call. `scope_columns` name the scope
    (e.g. ["x_ModelName"] or ["x_Team", "x_Workload"]); a scope's forecast carries them as `scope`.

    When `currency_column` is in the table, each scope must use one currency (amounts in different
    currencies are never added); it is carried as the forecast's `currency`. Scopes with no spend
    on or before `as_of` have nothing to forecast from and are left out. Forecasts come sorted by
    scope."""
    as_of = _as_date(as_of, "as_of")
    level = _check_level(level)
    if not isinstance(table, pd.DataFrame):
        raise BadInputError(f"forecast table: a pandas DataFrame is needed, not {type(table).__name__}")
    scope_columns = list(scope_columns)
    if not scope_columns:
        raise BadInputError("forecast table: name at least one scope column")
    missing = [c for c in [date_column, cost_column, *scope_columns] if c not in table.columns]
    if missing:
        raise BadInputError(f"forecast table: missing column(s) {missing}; it has {list(table.columns)}")
    use_currency = currency_column is not None and currency_column in table.columns
    for column in scope_columns + ([currency_column] if use_currency else []):
        bad = table[column][~table[column].map(lambda v: isinstance(v, str) and v != "")]
        if len(bad):
            raise BadInputError(f"forecast table: row {bad.index[0]}, column {column}: {bad.iloc[0]!r} is not a name")
    costs = _to_float(table[cost_column], f"forecast table, column {cost_column}")
    dates = [_as_date(d, f"forecast table: row {k}, column {date_column}") for k, d in enumerate(table[date_column])]
    frame = table[scope_columns + ([currency_column] if use_currency else [])].copy()
    frame["_date"], frame["_cost"] = dates, costs
    groups = frame.groupby(scope_columns, sort=True)
    if groups.ngroups > MAX_SCOPES:
        raise BadInputError(f"forecast table: {groups.ngroups} scopes, at most {MAX_SCOPES} are forecast at once")
    series_list = []
    for key, group in groups:
        scope = dict(zip(scope_columns, key if isinstance(key, tuple) else (key,), strict=True))
        where = f"forecast table, scope {scope}"
        currency = None
        if use_currency:
            currencies = sorted(set(group[currency_column]))
            if len(currencies) > 1:
                raise BadInputError(f"{where}: spend in several currencies {currencies}; forecast each apart")
            currency = currencies[0]
        if min(group["_date"]) > as_of:
            continue
        values, start = _daily_history(list(group["_date"]), group["_cost"].to_numpy(), as_of, where)
        series_list.append(_Series(scope, currency, values, start))
    return _forecast_series(series_list, as_of, level)


def relative_error(forecast: MonthEndForecast, actual_total: float) -> float:
    """|forecast - actual| / actual: the month's absolute percentage error (as a fraction)."""
    if actual_total == 0:
        return 0.0 if forecast.forecast_total == 0 else math.inf
    return abs(forecast.forecast_total - actual_total) / abs(actual_total)
