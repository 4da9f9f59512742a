"""The daily detector behind the cost anomalies: a robust expected cost per series and day, and the
runs of unusual days, computed one day at a time so that a day is judged only on the days before it.

One array row is one series (a scope's total, the part of a scope one cause value carries, or one of
its finest lines), one column one calendar day. All series move through the days together: the loop
is over days (hundreds) and each step is numpy over all series (thousands).

The expected cost of a day is a level times a weekday factor:

- Weekday factors: per weekday, the median over the last `season_weeks` weeks of each day's cost
  over the median of the 7 days centred on it (7 consecutive days hold each weekday once, so that
  median is the same rank of the week every week, a slow trend cancels, and a spike of up to 3 days
  does not move it), normalised to a mean of 1. A series uses its own factors once every weekday
  has 3 such ratios (their median outvotes the one week a spike or a level shift distorts).
- Until then its weekly profile is not known, and its expected cost is a range over the profiles
  it may have: flat; the weekly profile of all scopes together, and that profile as deep as the
  deepest mature scopes' (90th percentile); in its first week, a business week (weekend at a third)
  and a batch week (weekend at three times a weekday); and its own cost on the same weekday last
  week. A profile stays in the range only while it explains the series' recent days about as well
  as the best one (their deseasoned spread within 0.1 of the best). A day is unusual only outside
  the whole range: a young flat series is not flagged for missing the others' weekend dip, nor a
  young dipping one for having it. That is what lets a scope alert from day 3 of its history; its
  weekends are judged loosely until it has seen them.
- The level: the median of the last `level_days` usable days of the current regime, each divided by
  its weekday factor.

Robustness to past anomalies: a flagged day is not usable for the level nor for the noise scale, so
an anomaly does not drag the baseline towards itself and a level shift stays visible until it is
accepted. A run of flagged days of one sign goes on through gaps of up to `max_gap_days` unflagged
days, and, once open, on days that deviate the same way by half the band (hysteresis: a shift whose
weekend is less visible is still one run). After `level_shift_days` flagged days the run is accepted
as the new level: the series' regime restarts at the run's first day (its days become usable, older
days no longer are), the run closes, and the next day is judged against the new level. One event
per level shift, not one per day.

The noise scale is the median absolute one-day-ahead relative error over the last 28 unflagged
days, times 1.4826 (the MAD's factor for a normal scale), floored at `min_relative_scale`. After a
level shift the errors start afresh (a new mix of costs has a new noise), and until the new regime
has a week of them the scale is at least 1.5 times the old one. A day is flagged when it lies more
than `z_threshold` scales beyond the expected cost (beyond the range's end for a young series) and
by more than a cent. A series whose expected cost is zero (a new service, a new SKU) is flagged on
any cost above a cent: the events' thresholds decide whether it matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCALE_WINDOW_DAYS = 28
MIN_SCALE_RESIDUALS = 3
# Three ratios per weekday before a series trusts its own profile: their median outvotes the one
# week a spike or a level shift distorts.
MIN_RATIOS_PER_WEEKDAY = 3
HYSTERESIS = 0.5  # an open run goes on while its days deviate the same way by half the band
MAX_PROFILE_DEPTH = 4.0  # a borrowed weekly profile is at most this many times as deep as the shared one
MIN_FACTOR = 0.05  # a deepened profile's floor: a weekday never costs nothing
NEW_REGIME_MARGIN = 1.5  # a new regime's noise scale starts at the old one's times this
# Weekly shapes a series may have before it has seen each weekday (normalised to a mean of 1):
# business days with the weekend at a third, and a batch weekend at three times a weekday.
BUSINESS_WEEK = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1 / 3, 1 / 3]) / ((5 + 2 / 3) / 7)
BATCH_WEEK = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0]) / (11 / 7)
SHAPE_TOLERANCE = 0.1  # a profile is kept while its days' relative spread is within this of the best one
MAD_TO_SIGMA = 1.4826
ABS_FLOOR = 0.01  # a cent: deviations below it are rounding, not cost


@dataclass(frozen=True)
class DetectorParams:
    min_history_days: int
    z_threshold: float
    min_relative_scale: float
    level_days: int
    season_weeks: int
    level_shift_days: int
    max_gap_days: int


@dataclass
class SeriesRun:
    """Flagged days of one series and one sign, with gaps of at most `max_gap_days` unflagged days.
    Open on day d when start <= d < closed_on (closed_on None: still open on the last day)."""

    series: int
    sign: int
    start: int
    last: int  # the last flagged day
    flagged_days: int
    closed_on: int | None = None
    reason: str = "open"  # open | baseline (back to normal) | accepted (new level) | reversed


@dataclass(frozen=True)
class DetectorOutput:
    expected: np.ndarray  # (series, days): the expected cost of each judged day, NaN otherwise
    flags: np.ndarray  # (series, days) int8: +1 above, -1 below the expected cost, 0 otherwise
    runs: list[SeriesRun]
    own_profile: np.ndarray  # (series,) bool: the last day used the series' own weekday factors


def masked_median(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Median along the last axis over the valid entries; NaN where none is valid."""
    if values.shape[-1] == 0:
        return np.full(values.shape[:-1], np.nan)
    filled = np.where(valid, values, np.inf)
    filled.sort(axis=-1)
    count = valid.sum(axis=-1)
    low = np.clip((count - 1) // 2, 0, None)
    high = np.clip(count // 2, 0, filled.shape[-1] - 1)
    a = np.take_along_axis(filled, low[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(filled, high[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore"):
        out = (a + b) / 2
    return np.where(count > 0, out, np.nan)


def _last_valid(valid: np.ndarray, k: int) -> np.ndarray:
    """The last k valid entries of each row."""
    from_right = np.cumsum(valid[:, ::-1], axis=1)[:, ::-1]
    return valid & (from_right <= k)


class _Profiles:
    """Each row's weekly profile from the weekday ratios of the last `season` days, kept per
    weekday: a day adds one ratio and drops one, so only those weekdays' medians are recomputed."""

    def __init__(self, ratios: np.ndarray, season: int, first_weekday: int, needed: int) -> None:
        self.ratios, self.season, self.first_weekday, self.needed = ratios, season, first_weekday, needed
        rows = ratios.shape[0]
        self.medians = np.full((rows, 7), np.nan)
        self.counts = np.zeros((rows, 7), dtype=np.int64)
        self.dirty = np.ones(rows, dtype=bool)  # rows to recompute in full (all, on the first day)

    def _weekday(self, t: int, weekday: int, rows: np.ndarray | slice) -> None:
        # the block is days t - season .. t - 1, stored at columns t .. t + season - 1
        offset = (weekday - (self.first_weekday + t - self.season)) % 7
        columns = self.ratios[rows, t + offset : t + self.season : 7]
        valid = ~np.isnan(columns)
        self.medians[rows, weekday] = masked_median(columns, valid)
        self.counts[rows, weekday] = valid.sum(axis=1)

    def factors(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """The factors by weekday (Monday 0) for day t, and whether each row has its own profile."""
        if t == 0:
            changed = []
        else:
            # since yesterday: day t - 4's ratio arrived, day t - 1 - season left the block
            changed = sorted({(self.first_weekday + t - 4) % 7, (self.first_weekday + t - 1 - self.season) % 7})
        for weekday in changed:
            self._weekday(t, weekday, slice(None))
        dirty = np.flatnonzero(self.dirty)
        if dirty.size:
            for weekday in range(7):
                self._weekday(t, weekday, dirty)
            self.dirty[:] = False
        enough = (self.counts >= self.needed).all(axis=1)
        mean = np.where(enough, np.nan_to_num(self.medians).mean(axis=1), 0.0)
        ok = enough & (mean > 0)
        factors = np.ones_like(self.medians)
        factors[ok] = np.clip(self.medians[ok] / mean[ok, None], 0.0, None)
        return factors, ok


def _profile_depth(factors: np.ndarray, shared: np.ndarray) -> float:
    """How much deeper than the shared weekly profile the series' own profiles run: the 90th
    percentile of their projections on it (1 when they look like it, 0 when flat), at least 1."""
    direction = shared - 1.0
    norm = float(direction @ direction)
    if norm < 1e-6 or not len(factors):
        return 1.0
    depth = (factors - 1.0) @ direction / norm
    return float(np.clip(np.quantile(depth, 0.9), 1.0, MAX_PROFILE_DEPTH))


def _deseasoned(values: np.ndarray, usable: np.ndarray, factors: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """Each day's cost over its weekday factor, and which of them are the last k usable days."""
    with np.errstate(invalid="ignore", divide="ignore"):
        deseasoned = values / np.where(factors > 0, factors, 1.0)
    return deseasoned, _last_valid(usable & (factors > 0), k)


def _level(values: np.ndarray, usable: np.ndarray, factors: np.ndarray, k: int) -> np.ndarray:
    """The median of the last k usable days' cost over their weekday factor."""
    return masked_median(*_deseasoned(values, usable, factors, k))


def _level_and_spread(values: np.ndarray, usable: np.ndarray, factors: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """The level (see `_level`), and the median absolute deviation of those days' deseasoned cost
    from it, relative to it: how well the weekly profile explains the days."""
    deseasoned, chosen = _deseasoned(values, usable, factors, k)
    level = masked_median(deseasoned, chosen)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = masked_median(np.abs(deseasoned - level[:, None]), chosen) / level
    return level, spread


def _young_options(
    window: np.ndarray,
    usable: np.ndarray,
    weekdays: np.ndarray,
    today: int,
    shapes: list[np.ndarray | None],
    first_week: np.ndarray,
    last_week: np.ndarray,
    params: DetectorParams,
) -> np.ndarray:
    """The expected costs of series with no weekly profile of their own yet, one per profile they may
    have (flat, the shared one, the shared one deepened, and in their first week a business week and
    a batch week), keeping the profiles that explain their days about as well as the best one does,
    plus their own cost on the same weekday last week."""
    rows = window.shape[0]
    out = np.full((len(shapes) + 1, rows), np.nan)
    spreads = np.full((len(shapes), rows), np.nan)
    for k, profile in enumerate(shapes):
        if profile is None:
            continue
        rows_k = np.flatnonzero(first_week) if k >= 3 else np.arange(rows)  # the canonical weeks: first week only
        per_day = np.broadcast_to(profile[weekdays], (rows_k.size, weekdays.size))
        level, spreads[k, rows_k] = _level_and_spread(window[rows_k], usable[rows_k], per_day, params.level_days)
        out[k, rows_k] = level * profile[today]
    best = np.fmin.reduce(np.where(np.isnan(spreads), np.inf, spreads), axis=0)
    out[:-1][spreads > best + SHAPE_TOLERANCE] = np.nan
    out[-1] = last_week
    return out


def _week_ratio(values: np.ndarray, day: int) -> np.ndarray:
    """The day's cost over the median of the 7 days centred on it (known 3 days later), where those
    7 days all have data. The median of 7 consecutive days is the same weekday rank every week, so
    the ratios keep the weekly profile's proportions, and a spike of up to 3 days does not move it."""
    week = values[:, day - 3 : day + 4]
    ok = ~np.isnan(week).any(axis=1)
    middle = np.where(ok, np.median(np.nan_to_num(week), axis=1), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok & (middle > 0), values[:, day] / middle, np.nan)


class _Runs:
    """The open run of each series, and every run so far."""

    def __init__(self, n: int) -> None:
        self.open: list[SeriesRun | None] = [None] * n
        self.sign = np.zeros(n, dtype=np.int8)  # the sign of each series' open run, 0 for none
        self.all: list[SeriesRun] = []

    def close(self, s: int, day: int, reason: str) -> SeriesRun:
        run = self.open[s]
        run.closed_on, run.reason = day, reason
        self.open[s] = None
        self.sign[s] = 0
        return run

    def flag(self, s: int, sign: int, day: int) -> SeriesRun:
        run = self.open[s]
        if run is not None and run.sign != sign:
            self.close(s, day, "reversed")
            run = None
        if run is None:
            run = self.open[s] = SeriesRun(s, sign, day, day, 0)
            self.sign[s] = sign
            self.all.append(run)
        run.last = day
        run.flagged_days += 1
        return run


def run_detector(
    values: np.ndarray,
    first_day: np.ndarray,
    first_weekday: int,
    shared: np.ndarray,
    profile_rows: np.ndarray,
    params: DetectorParams,
) -> DetectorOutput:
    """Judge every series on every day from `min_history_days` of its history on.

    `values` (series, days) holds the daily cost, NaN before the series' scope started and on days
    with no data at all; `first_day` (series,) is the index of the scope's first day; `shared`
    (days,) the sum of all scopes, whose weekday profile stands in for a series' own until it has one;
    `profile_rows` marks the series (the scopes' totals) whose own profiles say how deep a borrowed
    one may run; `first_weekday` is the weekday (Monday 0) of column 0."""
    n, days = values.shape
    season = params.season_weeks * 7
    level_window = max(4 * params.level_days, 14)
    weekday_of = (first_weekday + np.arange(days)) % 7
    expected = np.full((n, days), np.nan)
    flags = np.zeros((n, days), dtype=np.int8)
    residuals = np.full((n, days), np.nan)
    ratios = np.full((n, season + days), np.nan)  # column season + d: day d's weekday ratio
    shared_ratios = np.full((1, season + days), np.nan)
    shared_values = shared[None, :].astype(np.float64)
    usable = ~np.isnan(values)  # for the level: not flagged, or flagged and accepted as a new level
    regime_start = first_day.astype(np.int64).copy()
    step_day = np.full(n, -(10**9))  # the first day of each series' last accepted level shift
    runs = _Runs(n)
    prior_scale = np.zeros(n)  # the scale a series' new regime starts from
    profiles = _Profiles(ratios, season, first_weekday, MIN_RATIOS_PER_WEEKDAY)
    shared_profile = _Profiles(shared_ratios, season, first_weekday, 1)
    own = np.zeros(n, dtype=bool)

    for t in range(days):
        x = values[:, t]
        today = weekday_of[t]
        factors, own = profiles.factors(t)
        shared_factors, shared_ok = shared_profile.factors(t)
        lo = max(0, t - level_window)
        window = values[:, lo:t]
        window_usable = usable[:, lo:t] & (np.arange(lo, t)[None, :] >= regime_start[:, None])
        wd = weekday_of[lo:t]
        e_own = _level(window, window_usable, factors[:, wd], params.level_days) * factors[:, today]
        options = np.full((6, n), np.nan)  # the expected costs the series' weekly profile allows
        options[0] = e_own
        young = np.flatnonzero(~own)
        if young.size:
            shapes = [np.ones(7), None, None, BUSINESS_WEEK, BATCH_WEEK]
            if shared_ok[0]:
                depth = _profile_depth(factors[own & profile_rows], shared_factors[0])
                shapes[1:3] = [np.clip(1.0 + a * (shared_factors[0] - 1.0), MIN_FACTOR, None) for a in (1.0, depth)]
            last_week = np.full(young.size, np.nan)
            if t >= 7:  # its own cost on the same weekday last week, in the current regime
                seen = ~np.isnan(values[young, t - 7]) & (regime_start[young] <= t - 7)
                last_week = np.where(seen, values[young, t - 7], np.nan)
            options[:, young] = _young_options(
                window[young], window_usable[young], wd, today, shapes, t - first_day[young] < 7, last_week, params
            )
        low, high = np.fmin.reduce(options, axis=0), np.fmax.reduce(options, axis=0)

        r_lo = max(0, t - SCALE_WINDOW_DAYS)
        recent = residuals[:, r_lo:t]
        r_valid = ~np.isnan(recent)
        scale = np.nan_to_num(MAD_TO_SIGMA * masked_median(np.abs(recent), r_valid))
        count = r_valid.sum(axis=1)
        scale = np.where(count >= MIN_SCALE_RESIDUALS, scale, 0.0)
        # a new regime's noise is not known yet: until it has a week of residuals, at least the
        # old regime's, with a margin
        scale = np.where(count < 7, np.fmax(scale, prior_scale), scale)
        scale = np.fmax(scale, params.min_relative_scale)

        judged = ~np.isnan(x) & ~np.isnan(low) & (t - first_day >= params.min_history_days - 1)
        xj, lo_j, hi_j = (np.where(judged, a, 0.0) for a in (x, low, high))
        z_up = np.where(runs.sign > 0, HYSTERESIS * params.z_threshold, params.z_threshold)
        z_down = np.where(runs.sign < 0, HYSTERESIS * params.z_threshold, params.z_threshold)
        up = judged & (xj - hi_j > z_up * scale * np.abs(hi_j)) & (xj - hi_j > ABS_FLOOR)
        down = judged & (lo_j - xj > z_down * scale * np.abs(lo_j)) & (lo_j - xj > ABS_FLOOR) & (lo_j > 0)
        sign = up.astype(np.int8) - down.astype(np.int8)
        closest = np.argmin(np.where(np.isnan(options), np.inf, np.abs(options - xj[None, :])), axis=0)
        nearest = np.take_along_axis(options, closest[None, :], axis=0)[0]
        e = np.where(up, high, np.where(down, low, nearest))
        dev = np.where(judged, xj - np.nan_to_num(e), 0.0)
        expected[:, t] = np.where(judged, e, np.nan)
        flags[:, t] = sign

        for s in np.flatnonzero(sign != 0):
            runs.flag(int(s), int(sign[s]), t)
        for s in np.flatnonzero(judged & (sign == 0) & (runs.sign != 0)):
            if t - runs.open[s].last > params.max_gap_days:
                runs.close(int(s), t, "baseline")

        flagged = sign != 0
        usable[:, t] = ~np.isnan(x) & ~flagged
        for s in np.flatnonzero(flagged):
            run = runs.open[s]
            if run is not None and run.flagged_days >= params.level_shift_days:
                runs.close(int(s), t, "accepted")
                prior_scale[s] = NEW_REGIME_MARGIN * scale[s]
                residuals[s, : t + 1] = np.nan
                regime_start[s] = run.start
                usable[s, run.start : t + 1] = ~np.isnan(values[s, run.start : t + 1])
                # the weekday ratios whose week straddles the shift describe the step, not the week
                step_day[s] = run.start
                ratios[s, season + max(run.start - 3, 0) : season + run.start + 3] = np.nan
                profiles.dirty[s] = True

        ok = judged & ~flagged & (np.abs(np.nan_to_num(e)) > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            residuals[:, t] = np.where(ok, dev / np.abs(np.where(ok, e, 1.0)), np.nan)
        day = t - 3  # the day whose centred week is now complete
        if day >= 3:
            ratio = _week_ratio(values[:, : t + 1], day)
            ratio[(step_day > day - 3) & (step_day <= day + 3)] = np.nan
            ratios[:, season + day] = ratio
            shared_ratios[:, season + day] = _week_ratio(shared_values[:, : t + 1], day)

    return DetectorOutput(expected=expected, flags=flags, runs=runs.all, own_profile=own)
