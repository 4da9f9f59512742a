"""Root causes of a cost anomaly: which cause values (service, account, region, SKU, tag) moved the
scope's cost, ranked by cost impact, each named once.

The input is the scope's finest lines (one per combination of cause values that has cost, each with
its own robust baseline), with their actual and expected cost over the event's days. A candidate
cause is one dimension value: the set of lines that carry it. Causes are picked greedily:

1. Each candidate's impact is the sum of (actual - expected) over its lines not yet explained, and
   its score is impact^2 / (expected + |impact|): Pearson's (O - E)^2 / E in currency, kept finite
   for a value that had no cost (a new service scores its whole impact). Among values carrying the
   same change, it prefers the one with the least cost that did not change: the SKU that spiked
   before its service, the service before the account that holds it and other, quiet services, and
   the model's only account (all of its cost, most of it unchanged) last.
2. The best candidate is a root cause; its lines leave the pool, so a value holding the same lines
   (the SKU of a one-SKU service, the account of that service) has nothing left to explain and is
   not listed twice, and a second, different change is ranked on its own: when two services move in
   opposite directions, the second cause is the other service, not an account that contains the
   first.
3. Repeat until `limit` causes or until what is left is below 5% of the alerting impact.

Each cause's `impact` (and `expected`, `actual`) is the part not explained by the causes above it,
so the impacts of the list add up to the change of the lines it covers, as AWS's root causes carry
an estimated amount each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rai_pipelines.costs.anomaly_baseline import ABS_FLOOR

MIN_CAUSE_SHARE = 0.05  # a cause explaining less than this share of the alerting impact is not listed
SPREAD = 0.25  # no value moves more than this share of the impact beyond its usual mix: a spread change


@dataclass(frozen=True)
class RootCause:
    """One cause value's part in an event: `impact` is actual minus expected cost over the event's
    days of the lines this value carries and no cause ranked above it does; `share` is that impact
    over the event's alerting impact (negative for a value that fell)."""

    dimension: str
    value: str | None
    impact: float
    share: float
    expected: float
    actual: float

    def label(self) -> str:
        return f"{self.dimension}={'(none)' if self.value is None else self.value}"


def rank_root_causes(
    actual: np.ndarray,
    expected: np.ndarray,
    line_values: Sequence[Sequence[str | None]],
    dimensions: Sequence[str],
    alert_impact: float,
    limit: int,
) -> tuple[list[RootCause], bool]:
    """The ranked causes of a change over a scope's lines, and whether the change is spread over
    the scope in its usual mix (every value moved in proportion to its cost: volume, not a cause).

    `actual` and `expected` (lines,) are each line's cost over the event's days; `line_values[i][d]`
    is line i's value of dimension d."""
    if not len(actual) or not dimensions:
        return [], False
    impact = actual - expected
    keys: list[tuple[int, str | None]] = []
    rows: list[np.ndarray] = []
    for d in range(len(dimensions)):
        column = [values[d] for values in line_values]
        for value in sorted(set(column), key=lambda v: (v is not None, v or "")):
            keys.append((d, value))
            rows.append(np.fromiter((v == value for v in column), dtype=bool, count=len(column)))
    member = np.array(rows, dtype=np.float64)  # (candidates, lines)

    spread = _spread(member, keys, impact, expected, alert_impact)
    floor = max(MIN_CAUSE_SHARE * abs(alert_impact), ABS_FLOOR)
    pool = np.ones(len(actual))
    taken = np.zeros(len(keys), dtype=bool)
    denominator = alert_impact if alert_impact else 1.0
    causes: list[RootCause] = []
    while len(causes) < limit:
        d = member @ (impact * pool)
        e = np.clip(member @ (expected * pool), 0.0, None)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(np.abs(d) > 0, d * d / (e + np.abs(d)), 0.0)
        score[taken] = -1.0
        best = int(np.argmax(score))  # ties (the same lines under two names): the earlier dimension
        if taken[best] or abs(d[best]) < floor:
            break
        dim, value = keys[best]
        causes.append(
            RootCause(
                dimension=dimensions[dim],
                value=value,
                impact=round(float(d[best]), 2),
                share=round(float(d[best] / denominator), 4),
                expected=round(float(member[best] @ (expected * pool)), 2),
                actual=round(float(member[best] @ (actual * pool)), 2),
            )
        )
        taken[best] = True
        pool[member[best] > 0] = 0.0
    return causes, spread


def _spread(member, keys, impact, expected, alert_impact) -> bool:
    """True when no value moved more than SPREAD x the alerting impact beyond its share of its
    dimension's expected cost times the scope's change."""
    d = member @ impact
    e = member @ expected
    dims = np.array([k[0] for k in keys])
    move = 0.0
    for dim in np.unique(dims):
        in_dim = dims == dim
        total_expected = e[in_dim].sum()
        share = e[in_dim] / total_expected if total_expected > 0 else np.zeros(in_dim.sum())
        move = max(move, float(np.abs(d[in_dim] - share * d[in_dim].sum()).max()))
    return move < SPREAD * abs(alert_impact)
