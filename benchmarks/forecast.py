"""Backtest of the month-end spend forecasts made on day 10 of each month (targets: mape at most 0.05,
coverage_80 between 0.75 and 0.85).

    .venv/bin/python benchmarks/forecast.py [--series 30] [--months 12] [--seed 0]

The data is generated with a fixed seed: daily spend of `--series` scopes (models, workloads, teams)
over three months of warm-up and `--months` evaluated months. Each series is what a serving model's
bill looks like: a level between a few tens and a few thousand dollars a day (log-normal across
scopes) that drifts (a random walk in log space plus a monthly growth between -2% and +5%), a
weekly pattern (weekends at 55-95% of weekdays, each weekday a few % apart), day-to-day noise that
carries over to the next day (AR(1) in log space, 3-10% a day), and a batch day now and then (1% of
days cost 1.5 to 3 times as much: a re-scoring or a retraining).

For each evaluated month M and series, the forecast uses the history up to and including day 10 of
M (and all earlier months, at most a year), and predicts M's total = actual to date + forecast of
the remaining days, with the 80% interval of that total, through `forecast_many` (one StatsForecast
call a month for all series). mape = mean |forecast - actual| / actual over all (series, month);
coverage_80 = share of actual month totals inside [lower, upper]. Also printed: the width of the
interval relative to the forecast, the share of actual totals below / above the interval (each
should be near 0.10), the first call's cost (the library's import and first fit) and the seconds of
the measured work. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rai_pipelines.costs.forecast import forecast_many, month_bounds  # noqa: E402

MAPE_MAX = 0.05
COVERAGE = (0.75, 0.85)
FORECAST_DAY = 10
WARMUP_MONTHS = 3


def generate(n_series: int, start: date, end: date, seed: int) -> pd.DataFrame:
    """Daily spend per scope from `start` to `end` inclusive (see the module docstring)."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(start, end, freq="D")
    n = len(days)
    dow = days.dayofweek.to_numpy()
    frames = []
    for s in range(n_series):
        base = float(np.exp(rng.normal(np.log(150.0), 1.0)))
        growth = rng.uniform(-0.02, 0.05)  # a month
        weekly = 1.0 + rng.normal(0.0, 0.03, 7)
        weekly[5:] *= rng.uniform(0.55, 0.95)
        level_sd, noise_sd, phi = rng.uniform(0.003, 0.012), rng.uniform(0.03, 0.10), rng.uniform(0.0, 0.4)
        level = np.cumsum(rng.normal(np.log1p(growth) / 30.0, level_sd, n))
        noise = np.empty(n)
        shocks = rng.normal(0.0, noise_sd * np.sqrt(1 - phi**2), n)
        noise[0] = rng.normal(0.0, noise_sd)
        for t in range(1, n):
            noise[t] = phi * noise[t - 1] + shocks[t]
        batch = np.where(rng.random(n) < 0.01, rng.uniform(1.5, 3.0, n), 1.0)
        cost = base * np.exp(level + noise) * weekly[dow] * batch
        frames.append(pd.DataFrame({"date": days.date, "scope": f"scope-{s:03d}", "cost": np.round(cost, 2)}))
    return pd.concat(frames, ignore_index=True)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=30)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    first_month = date(2024, 1, 1)
    start = _add_months(first_month, -WARMUP_MONTHS)
    end = month_bounds(_add_months(first_month, args.months - 1))[1]
    table = generate(args.series, start, end, args.seed)
    totals = table.assign(month=[f"{d:%Y-%m}" for d in table["date"]]).groupby(["scope", "month"])["cost"].sum()

    started = time.perf_counter()
    forecast_many(table[table["scope"] == table["scope"].iloc[0]], ["scope"], date(2023, 12, FORECAST_DAY))
    first_call = time.perf_counter() - started

    errors, inside, below, above, widths = [], 0, 0, 0, []
    started = time.perf_counter()
    for k in range(args.months):
        as_of = _add_months(first_month, k).replace(day=FORECAST_DAY)
        for f in forecast_many(table, ["scope"], as_of, level=0.8):
            actual = float(totals[(f.scope["scope"], f.month)])
            errors.append(abs(f.forecast_total - actual) / actual)
            if f.lower is None or f.upper is None:
                raise SystemExit(f"no interval for {f.scope} {f.month}: {f.note}")
            widths.append((f.upper - f.lower) / f.forecast_total)
            inside += f.lower <= actual <= f.upper
            below += actual < f.lower
            above += actual > f.upper
    seconds = time.perf_counter() - started
    cases = len(errors)
    figures = {
        "series": args.series,
        "months": args.months,
        "cases": cases,
        "mape": round(float(np.mean(errors)), 4),
        "coverage_80": round(inside / cases, 4),
        "below_interval": round(below / cases, 4),
        "above_interval": round(above / cases, 4),
        "median_relative_width": round(float(np.median(widths)), 4),
        "first_call_s": round(first_call, 2),
        "seconds": round(seconds, 2),
        "seconds_per_forecast": round(seconds / cases, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    for name, value in figures.items():
        print(f"{name}: {value}")
    print(json.dumps(figures))
    missed = []
    if figures["mape"] > MAPE_MAX:
        missed.append(f"mape {figures['mape']} > {MAPE_MAX}")
    if not COVERAGE[0] <= figures["coverage_80"] <= COVERAGE[1]:
        missed.append(f"coverage_80 {figures['coverage_80']} outside {COVERAGE}")
    for line in missed:
        print(f"target missed: {line}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
