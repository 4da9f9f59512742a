"""Cost anomaly detection on generated ledgers with injected anomalies of known size and cause
(targets: event-level precision and recall each at least 0.9, mean detection delay at most 1 day,
root cause top-1 at least 0.9).

    .venv/bin/python benchmarks/anomalies.py [--scopes 48] [--days 120] [--seeds 7 11 23] [--verbose]

The ledgers (one per seed, the figures pooled over them). Each scope (a model) has 3 to 18 cost
lines, one per (service, SKU, account, region, tag), over 3 to 6 services, 1 to 3 accounts, regions
and tags (some lines untagged); scope totals range from about 40 to 3,000 USD a day. A line's daily
cost is its base x the scope's trend (-0.2% to +0.5% a day) x a weekly profile (three scopes in four
dip to 55-80% at weekends, the others are flat) x lognormal noise (4% to 10% a day, per line). A
sixth of the scopes start late (between day 30 and 80), and their first anomaly falls 3 to 13 days
into their history; the others' first anomaly falls on day 3 to 39 of the ledger.

The injected anomalies: one or two per scope, 25 to 44 days apart; the size u is a share of the
scope's daily cost at the time (before its weekly profile and noise):
- spike: 1 to 3 days, u from 0.35 to 1.5, on the lines of one cause value (scaled up together);
- level shift: from its day to the end, u from 0.3 to 0.8, on one cause value;
- new service: a service the scope never had, from its day to the end, u from 0.3 to 1.0;
- opposite changes: the scope's largest service falls by u (0.3 to 0.6, at most 80% of it) and
  another one rises by the same amount, for 2 to 5 days or to the end: the total does not move.
The cause value of a spike or level shift is drawn among the scope's services, SKUs, accounts,
regions and tags whose lines are a strict part of the scope and not exactly the lines of another
value (else two values would be one cause under two names).

Matching. An injected event's window is its days, or, for a change that lasts to the end, its first
7 days (`level_shift_days`: after that the configuration says it is the new normal). A detected
event (an alert of `replay`: raised day by day, each day seeing only the days up to it) matches an
injected event when it is in the same scope and both its first day and the day it was raised fall
between the injected event's first day and one day after its window. Each injected event is matched
at most once, by the earliest such alert; every other alert is a false alarm (a second alert for
one level shift is one).

Figures. precision = matched alerts / alerts; recall = matched injected events / injected events;
detection_delay_days = mean over matched events of (day raised - injected first day), with its
maximum beside it; root_cause_top1 = share of matched events whose top-ranked root cause (dimension,
value) is the injected one (for opposite changes: the two services are the first two causes, in
either order). Detection runs with the default `AnomalyConfig` (10 USD and 20% impact thresholds).
`seconds` is the replays' time, `seconds_50x400` the time of one `detect_anomalies` over 50 scopes
and 400 days of the same generator. The figures print as `name: value`, then as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rai_pipelines.costs.anomalies import AnomalyConfig, detect_anomalies, replay  # noqa: E402

START = date(2025, 1, 6)
CAUSES = ["service", "account", "region", "sku", "tag"]
SERVICES = [
    "AmazonEC2",
    "AmazonSageMaker",
    "AmazonS3",
    "AWSLambda",
    "AmazonCloudWatch",
    "AmazonDynamoDB",
    "AmazonEKS",
    "AmazonBedrock",
    "AmazonECR",
    "AWSDataTransfer",
]
NEW_SERVICES = ["AmazonOpenSearch", "AmazonKinesis", "AmazonRDS", "AmazonEFS"]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1"]
TAGS = ["team=risk", "team=growth", "env=prod", "env=staging", None]
TARGETS = {"precision": 0.9, "recall": 0.9, "detection_delay_days": 1.0, "root_cause_top1": 0.9}


@dataclass
class Line:
    service: str
    sku: str
    account: str
    region: str
    tag: str | None
    base: float
    noise: float

    def value(self, dim: str) -> str | None:
        return getattr(self, dim)


@dataclass
class Injected:
    scope: str
    kind: str
    start: int
    end: int  # last day of the window (inclusive)
    causes: tuple[tuple[str, str | None], ...]


def _scope_lines(rng: np.random.Generator) -> tuple[list[Line], float]:
    """A scope's cost lines, and its mean daily cost."""
    accounts = [f"{rng.integers(10**11, 10**12)}" for _ in range(rng.integers(1, 4))]
    regions = list(rng.choice(REGIONS, size=rng.integers(1, 4), replace=False))
    tags = [TAGS[i] for i in rng.choice(len(TAGS), size=rng.integers(1, 4), replace=False)]
    services = list(rng.choice(SERVICES, size=rng.integers(3, 7), replace=False))
    scale = float(np.exp(rng.uniform(np.log(40), np.log(3000))))
    lines: list[Line] = []
    seen = set()
    for service in services:
        for k in range(rng.integers(1, 4)):
            key = (service, f"{service}:usage-{k}", str(rng.choice(accounts)), str(rng.choice(regions)))
            tag = tags[rng.integers(len(tags))]
            if key + (tag,) in seen:
                continue
            seen.add(key + (tag,))
            lines.append(Line(*key, tag, float(rng.lognormal(0, 0.8)), float(rng.uniform(0.04, 0.10))))
    total = sum(line.base for line in lines)
    for line in lines:
        line.base *= scale / total
    return lines, scale


def _candidates(lines: list[Line]) -> list[tuple[str, str | None]]:
    """Cause values whose lines are a strict part of the scope and the lines of no other value."""
    sets: dict[tuple[str, str | None], frozenset[int]] = {}
    for dim in CAUSES:
        for i, line in enumerate(lines):
            sets[(dim, line.value(dim))] = sets.get((dim, line.value(dim)), frozenset()) | {i}
    return [
        key
        for key, members in sets.items()
        if len(members) < len(lines) and not any(k != key and m == members for k, m in sets.items())
    ]


class _Scope:
    """One generated scope: its lines' noise-free cost (base x trend x weekly profile) times the
    injected changes (`mult`), times noise."""

    def __init__(self, rng: np.random.Generator, name: str, days: int, first: int) -> None:
        self.rng, self.name, self.days, self.first = rng, name, days, first
        self.lines, _ = _scope_lines(rng)
        t = np.arange(days)
        weekday = (START.weekday() + t) % 7
        self.trend = (1 + rng.uniform(-0.002, 0.005)) ** t
        if rng.random() < 0.75:
            weekend = rng.uniform(0.55, 0.8)
            self.profile = np.where(weekday >= 5, weekend, 1.0) * np.where(weekday == 0, 1.05, 1.0)
        else:
            self.profile = np.ones(days)
        self.noise = np.array([rng.lognormal(-(line.noise**2) / 2, line.noise, days) for line in self.lines])
        self.base = np.array([line.base for line in self.lines])
        self.mult = np.ones((len(self.lines), days))

    def cost_of(self, members: list[int], day: int) -> float:
        """The members' daily cost on `day` before trend, weekly profile and noise."""
        return float(self.base[members] @ self.mult[members, day])

    def by_service(self, day: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for i, line in enumerate(self.lines):
            out[line.service] = out.get(line.service, 0.0) + self.cost_of([i], day)
        return out

    def inject(self, start: int) -> Injected:
        rng, days = self.rng, self.days
        kind = str(rng.choice(["spike", "spike", "level", "new", "cancel"], p=[0.25, 0.2, 0.25, 0.15, 0.15]))
        size = self.cost_of(list(range(len(self.lines))), start)  # the scope's daily cost then
        if kind == "cancel" and 0.8 * max(self.by_service(start).values()) < 0.3 * size:
            kind = "spike"  # no service is big enough to fall by 30% of the scope
        options = _candidates(self.lines)
        if kind in ("spike", "level") and not options:
            kind = "new"  # no cause value is a strict part of the scope under one name only
        ramp = np.zeros(days)
        if kind == "spike":
            length = int(rng.integers(1, 4))
            end = min(start + length, days) - 1
        else:
            persistent = kind != "cancel" or rng.random() < 0.5
            length = days - start if persistent else int(rng.integers(2, 6))
            end = min(start + (7 if persistent else length), days) - 1
        ramp[start : start + length] = 1.0
        if kind in ("spike", "level"):
            u = rng.uniform(0.35, 1.5) if kind == "spike" else rng.uniform(0.3, 0.8)
            dim, value = options[rng.integers(len(options))]
            members = [i for i, line in enumerate(self.lines) if line.value(dim) == value]
            self.mult[members] *= 1 + ramp * u * size / self.cost_of(members, start)
            return Injected(self.name, kind, start, end, ((dim, value),))
        if kind == "new":
            template = self.lines[rng.integers(len(self.lines))]
            taken = {line.service for line in self.lines}
            service = str(rng.choice([s for s in NEW_SERVICES if s not in taken]))
            new = Line(service, f"{service}:usage-0", template.account, template.region, template.tag, 0.0, 0.06)
            self.lines.append(new)
            self.base = np.append(self.base, rng.uniform(0.3, 1.0) * size)
            self.mult = np.vstack([self.mult, ramp])
            self.noise = np.vstack([self.noise, rng.lognormal(-(0.06**2) / 2, 0.06, days)])
            return Injected(self.name, kind, start, end, (("service", service),))
        shares = self.by_service(start)
        ranked = sorted(shares, key=shares.get, reverse=True)
        down, up = ranked[0], ranked[int(rng.integers(1, len(ranked)))]
        delta = min(rng.uniform(0.3, 0.6) * size, 0.8 * shares[down])  # at least 0.3 x size
        for i, line in enumerate(self.lines):
            if line.service in (down, up):
                self.mult[i] *= 1 + ramp * delta / shares[line.service] * (1 if line.service == up else -1)
        return Injected(self.name, "opposite", start, end, (("service", up), ("service", down)))

    def rows(self) -> list[pd.DataFrame]:
        costs = self.base[:, None] * self.trend * self.profile * self.noise * self.mult
        t = np.arange(self.days)
        frames = []
        for line, series in zip(self.lines, costs, strict=True):
            keep = (t >= self.first) & (series > 0)
            columns = {c: line.value(c) for c in CAUSES}
            dates = [START + timedelta(days=int(d)) for d in t[keep]]
            frames.append(
                pd.DataFrame({"date": dates, "model": self.name, **columns, "cost": np.round(series[keep], 4)})
            )
        return frames


def generate(scopes: int, days: int, seed: int, inject: bool = True) -> tuple[pd.DataFrame, list[Injected]]:
    """The ledger (one row per day and line) and the injected events, from a fixed seed."""
    rng = np.random.default_rng(seed)
    frames, injected = [], []
    for index in range(scopes):
        first = int(rng.integers(30, 81)) if index % 6 == 5 else 0
        scope = _Scope(rng, f"model-{index:02d}", days, first)
        if inject:
            start = first + int(rng.integers(3, 14)) if first else int(rng.integers(3, 40))
            while start < days - 3 and len([i for i in injected if i.scope == scope.name]) < 2:
                injected.append(scope.inject(start))
                start += int(rng.integers(25, 45))
        frames += scope.rows()
    return pd.concat(frames, ignore_index=True), injected


@dataclass
class Score:
    alerts: int = 0
    injected: int = 0
    matched: int = 0
    delays: list[int] = field(default_factory=list)
    top1: list[bool] = field(default_factory=list)
    misses: list[Injected] = field(default_factory=list)
    false_alarms: list[object] = field(default_factory=list)

    def add(self, alerts, injected: list[Injected]) -> None:
        """Match one ledger's alerts (raised day by day) to its injected events."""
        matched: dict[int, object] = {}
        for alert in sorted(alerts, key=lambda a: (a.raised_on, a.start)):
            start, raised = (alert.start - START).days, (alert.raised_on - START).days
            hit = next(
                (
                    i
                    for i, inj in enumerate(injected)
                    if i not in matched
                    and inj.scope == alert.scope["model"]
                    and inj.start <= start <= inj.end + 1
                    and inj.start <= raised <= inj.end + 1
                ),
                None,
            )
            if hit is None:
                self.false_alarms.append(alert)
            else:
                matched[hit] = alert
        for i, alert in matched.items():
            inj = injected[i]
            self.delays.append((alert.raised_on - START).days - inj.start)
            ranked = [(c.dimension, c.value) for c in alert.root_causes]
            if len(inj.causes) == 1:
                self.top1.append(bool(ranked) and ranked[0] == inj.causes[0])
            else:  # opposite changes: the two services first, in either order
                self.top1.append(len(ranked) >= 2 and set(ranked[:2]) == set(inj.causes))
        self.misses += [inj for i, inj in enumerate(injected) if i not in matched]
        self.alerts += len(alerts)
        self.injected += len(injected)
        self.matched += len(matched)

    def figures(self) -> dict:
        return {
            "injected_events": self.injected,
            "alerts": self.alerts,
            "false_alarms": len(self.false_alarms),
            "precision": round(self.matched / max(self.alerts, 1), 4),
            "recall": round(self.matched / max(self.injected, 1), 4),
            "detection_delay_days": round(float(np.mean(self.delays)) if self.delays else float("nan"), 3),
            "detection_delay_days_max": max(self.delays, default=-1),
            "root_cause_top1": round(float(np.mean(self.top1)) if self.top1 else 0.0, 4),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scopes", type=int, default=48)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 23], help="one ledger per seed, pooled")
    parser.add_argument("--verbose", action="store_true", help="list the misses and the false alarms")
    args = parser.parse_args()

    config = AnomalyConfig()
    score, rows, kinds, seconds = Score(), 0, Counter(), 0.0
    for seed in args.seeds:
        ledger, injected = generate(args.scopes, args.days, seed)
        started = time.perf_counter()
        alerts = replay(ledger, scope=["model"], causes=CAUSES, config=config)
        seconds += time.perf_counter() - started
        score.add(alerts, injected)
        rows += len(ledger)
        kinds.update(inj.kind for inj in injected)
    figures = {
        "ledgers": len(args.seeds),
        "scopes": args.scopes,
        "days": args.days,
        **{f"injected_{kind}": count for kind, count in sorted(kinds.items())},
        **score.figures(),
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
    }
    perf, _ = generate(50, 400, 1, inject=False)
    started = time.perf_counter()
    detect_anomalies(perf, scope=["model"], causes=CAUSES, config=config)
    figures["seconds_50x400"] = round(time.perf_counter() - started, 2)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    figures["met"] = (
        figures["precision"] >= TARGETS["precision"]
        and figures["recall"] >= TARGETS["recall"]
        and figures["detection_delay_days"] <= TARGETS["detection_delay_days"]
        and figures["root_cause_top1"] >= TARGETS["root_cause_top1"]
    )
    if args.verbose:
        for inj in score.misses:
            print(f"missed: {inj}")
        for alert in score.false_alarms:
            causes = [(c.label(), c.impact) for c in alert.root_causes[:3]]
            print(f"false alarm: {alert.scope} {alert.start} raised {alert.raised_on}: {alert.note} {causes}")
    for name, value in figures.items():
        print(f"{name}: {value}")
    print(json.dumps(figures))
    return 0 if figures["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
