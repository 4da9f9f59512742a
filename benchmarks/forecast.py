"""Backtest of the month-end spend forecasts made on day 10 of each month (targets: mape at most 0.05,
coverage_80 between 0.75 and 0.85, over all series).

    .venv/bin/python benchmarks/forecast.py [--series 40] [--months 12] [--seed 0] [--plain]

The data is generated with a fixed seed: daily spend of `--series` scopes (models, workloads, teams)
over three months of warm-up and `--months` evaluated months. Each series is what a serving model's
bill looks like: a level between a few tens and a few thousand dollars a day (log-normal across
scopes) that drifts (a random walk in log space plus a monthly growth between -2% and +5%), a
weekly pattern (weekends at 55-95% of weekdays, each weekday a few % apart), day-to-day noise that
carries over to the next day (AR(1) in log space, 3-10% a day), and a batch day now and then (1% of
days cost 1.5 to 3 times as much: a re-scoring or a retraining). Half the series are only that
("steady"); a quarter move once, on a random day after the first six weeks, to a level 1.5 to 6
times higher (7 in 10) or lower ("level shift": another instance type, a scale-down); a quarter
have 2 to 5 one-off charges on random days, each 2 to 10 days' spend ("one-off spikes": a data
transfer, a backfill). Nothing tells the forecast which is which.

For each evaluated month M and series, the forecast uses the history up to and including day 10 of
M (and all earlier months, at most a year), and predicts M's total = actual to date + forecast of
the remaining days, with the 80% interval of that total, through `forecast_many` (one call a month
for all series). mape = mean |forecast - actual| / actual over all (series, month); coverage_80 =
share of actual month totals inside [lower, upper]. Also printed: the width of the interval relative
to the forecast, the share of actual totals below / above the interval (each should be near 0.10),
the same per scenario, and for the level shifts without the months whose shift comes after day 10
(no forecast can know of it); the first call's cost (the library's import and first fit) and the
seconds of the measured work. `--plain` fits the raw history (no level shifts or outliers taken
out, statsforecast's own weekly decomposition), for comparison. The last line is one JSON object.
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

from rai_pipelines.costs import forecast  # noqa: E402
from rai_pipelines.costs.forecast import month_bounds  # noqa: E402

MAPE_MAX = 0.05
COVERAGE = (0.75, 0.85)
FORECAST_DAY = 10
WARMUP_MONTHS = 3
# a quarter of the series move to another level once, a quarter have one-off charges on top
SCENARIOS = ("steady", "level shift", "steady", "one-off spikes")


def generate(
    n_series: int, start: date, end: date, seed: int
) -> tuple[pd.DataFrame, dict[str, tuple[str, date | None]]]:
    """Daily spend per scope from `start` to `end` inclusive, and each scope's scenario with the day
    of its level shift, if it has one (see the module docstring)."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(start, end, freq="D")
    n = len(days)
    dow = days.dayofweek.to_numpy()
    frames, scenarios = [], {}
    for s in range(n_series):
        scope = f"scope-{s:03d}"
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
        scenario = SCENARIOS[s % len(SCENARIOS)]
        if scenario == "level shift":
            # a move to another instance type or a scale-down: a permanent step, up or down
            shift = int(rng.integers(45, n - 20))
            cost[shift:] *= float(np.exp(rng.choice([-1.0, 1.0], p=[0.3, 0.7]) * rng.uniform(np.log(1.5), np.log(6.0))))
        elif scenario == "one-off spikes":
            # one-off charges on top of the usage (a data transfer, a backfill): 2 to 10 days' spend
            for t in rng.choice(n, size=int(rng.integers(2, 6)), replace=False):
                cost[t] += cost[t] * rng.uniform(2.0, 10.0)
        frames.append(pd.DataFrame({"date": days.date, "scope": scope, "cost": np.round(cost, 2)}))
        scenarios[scope] = (scenario, days[shift].date() if scenario == "level shift" else None)
    return pd.concat(frames, ignore_index=True), scenarios


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _summary(cases: list[dict]) -> dict:
    errors = np.array([c["error"] for c in cases])
    return {
        "cases": len(cases),
        "mape": round(float(errors.mean()), 4) if len(cases) else None,
        "coverage_80": round(float(np.mean([c["inside"] for c in cases])), 4) if len(cases) else None,
        "below_interval": round(float(np.mean([c["below"] for c in cases])), 4) if len(cases) else None,
        "above_interval": round(float(np.mean([c["above"] for c in cases])), 4) if len(cases) else None,
        "median_relative_width": round(float(np.median([c["width"] for c in cases])), 4) if len(cases) else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=40)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plain", action="store_true", help="fit the raw history, for comparison")
    args = parser.parse_args()
    if args.plain:
        forecast._robust_history = lambda values, start: forecast._History(values)

    first_month = date(2024, 1, 1)
    start = _add_months(first_month, -WARMUP_MONTHS)
    end = month_bounds(_add_months(first_month, args.months - 1))[1]
    table, scenarios = generate(args.series, start, end, args.seed)
    totals = table.assign(month=[f"{d:%Y-%m}" for d in table["date"]]).groupby(["scope", "month"])["cost"].sum()

    started = time.perf_counter()
    forecast.forecast_many(table[table["scope"] == table["scope"].iloc[0]], ["scope"], date(2023, 12, FORECAST_DAY))
    first_call = time.perf_counter() - started

    cases = []
    started = time.perf_counter()
    for k in range(args.months):
        as_of = _add_months(first_month, k).replace(day=FORECAST_DAY)
        for f in forecast.forecast_many(table, ["scope"], as_of, level=0.8):
            if f.lower is None or f.upper is None:
                raise SystemExit(f"no interval for {f.scope} {f.month}: {f.note}")
            actual = float(totals[(f.scope["scope"], f.month)])
            scenario, shift_day = scenarios[f.scope["scope"]]
            cases.append(
                {
                    "scenario": scenario,
                    # a step after the forecast was made, in the month it forecasts: nobody could see it
                    "unforeseeable": shift_day is not None and as_of < shift_day <= month_bounds(as_of)[1],
                    "error": abs(f.forecast_total - actual) / actual,
                    "width": (f.upper - f.lower) / f.forecast_total,
                    "inside": f.lower <= actual <= f.upper,
                    "below": actual < f.lower,
                    "above": actual > f.upper,
                }
            )
    seconds = time.perf_counter() - started
    figures = {"series": args.series, "months": args.months, **_summary(cases)}
    for scenario in SCENARIOS:
        for name, value in _summary([c for c in cases if c["scenario"] == scenario]).items():
            figures[f"{name}[{scenario}]"] = value
    foreseeable = [c for c in cases if c["scenario"] == "level shift" and not c["unforeseeable"]]
    for name, value in _summary(foreseeable).items():
        figures[f"{name}[level shift, step before the forecast or none]"] = value
    figures |= {
        "first_call_s": round(first_call, 2),
        "seconds": round(seconds, 2),
        "seconds_per_forecast": round(seconds / len(cases), 3),
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
