"""From flagged days to anomaly events: one event per scope and episode, its alerting decision on
total impact, and its root causes ranked by cost.

An event gathers the runs of flagged days (see `anomaly_baseline`) of one scope's series in the
alerting direction: its total and the parts its cause values carry (each service, account, region,
SKU, tag of the model). A run joins the scope's current event when that event is still open on the
run's first day, so a spike seen in the total, its service and its SKU is one event, and a level
shift is one event until the new level is accepted. Watching the parts finds what the total hides:
two services moving in opposite directions leave the total flat, but each of them moves.

A flag counts for the events only when the day's deviation is material for the scope: at least half
of `min_impact_relative` of the scope's expected cost that day. With two dozen series per scope, some
part of it is unusual on some day by chance; a small SKU's noise flag cannot make a scope alert, and
it must not start an event a day early, join it to a later one, or keep it open. An event's run
closes `max_gap_days` after its last material flag.

Alerting follows AWS Cost Anomaly Detection's subscription thresholds: the event's total impact
(actual minus expected cost, summed over its days so far) must reach both `min_impact_absolute` and
`min_impact_relative` of the scope's expected cost over those days. The impact that counts is the
scope total's or, for a change the total hides, the cost that moved between the values of one
dimension in which a flagged part rose (half the sum of the values' |impact|: 250 moving from one
service to another is 250, whatever the total did). It is always measured against the scope's
expected cost: an alert is about the model's spend, and one part's noise does not make a scope
alert. An event is raised on the first day its impact so far meets both thresholds; the event is
the same from then on (its `event_id` is its scope, first day and direction).

Root causes come from the scope's finest lines (see `anomaly_root_cause`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np

from rai_pipelines.costs.anomaly_baseline import DetectorOutput, SeriesRun
from rai_pipelines.costs.anomaly_root_cause import RootCause, rank_root_causes

if TYPE_CHECKING:
    from rai_pipelines.costs.anomalies import AnomalyConfig

TOTAL = -1  # the dimension index of a scope's total series
LEAF = -2  # ... and of a scope's finest lines (one per combination of cause values), for root causes
MATERIALITY = 0.5  # a flagged day counts for a scope's event when it moves the scope by half the threshold


@dataclass(frozen=True)
class Panel:
    """The series of one currency, dense over the calendar: scopes' totals first, then each (scope,
    cause dimension, value), then each scope's lines (which only serve the root causes)."""

    first_date: date
    values: np.ndarray  # (series, days) daily cost; NaN before the scope's first day or on missing days
    series_scope: np.ndarray  # (series,) index into scopes
    series_dim: np.ndarray  # (series,) index into causes, TOTAL for a scope's total, LEAF for a line
    series_value: list  # a cause value (str or None); for a line, the tuple of its cause values
    scopes: list[dict[str, str | None]]
    scope_first_day: np.ndarray  # (scopes,) first day index with a cost row
    causes: list[str]
    currency: str

    def day(self, index: int) -> date:
        return self.first_date + timedelta(days=int(index))

    def label(self, series: int) -> str:
        dim = int(self.series_dim[series])
        return "total" if dim == TOTAL else f"{self.causes[dim]}={_show(self.series_value[series])}"


def _show(value: str | None) -> str:
    return "(none)" if value is None else value


@dataclass(frozen=True)
class AnomalyEvent:
    """One cost anomaly of one scope, as seen on `as_of`. Amounts are in `currency`, summed over the
    event's days (`start` to `last_day`, its last flagged day). `impact` (actual - expected) and
    `relative_impact` (impact / expected) are the scope total's; `detected_in` names the series whose
    impact met the thresholds ("total", or a cause value such as "service=AmazonS3" when the total
    hides the change) and `alert_impact` is that impact. `severity` grades |alert_impact| / expected:
    high from `severity_high_relative`, medium from `severity_medium_relative`, else low. `raised_on`
    is the first day the event met both thresholds; `event_id` is stable from that day on."""

    event_id: str
    scope: dict[str, str | None]
    currency: str
    start: date
    last_day: date
    raised_on: date
    as_of: date
    status: str  # open | closed
    days: int
    expected_cost: float
    actual_cost: float
    impact: float
    relative_impact: float | None
    detected_in: str
    alert_impact: float
    severity: str
    root_causes: tuple[RootCause, ...]
    days_of_history: int
    note: str

    def to_dict(self) -> dict:
        """A JSON-ready form (dates as ISO strings, root causes as a list of dicts)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "root_causes"}
        for key in ("start", "last_day", "raised_on", "as_of"):
            out[key] = out[key].isoformat()
        out["scope"] = dict(self.scope)
        out["root_causes"] = [
            {
                "dimension": c.dimension,
                "value": c.value,
                "impact": c.impact,
                "share": c.share,
                "expected": c.expected,
                "actual": c.actual,
            }
            for c in self.root_causes
        ]
        return out

    def to_row(self, top: int = 3) -> dict[str, str]:
        """One flat row of strings for a markdown table: the scope's columns, then the event."""
        causes = "; ".join(f"{c.label()} {c.impact:+,.2f} ({c.share:+.0%})" for c in self.root_causes[:top])
        relative = "n/a" if self.relative_impact is None else f"{self.relative_impact:+.0%}"
        return {
            **{k: _show(v) for k, v in self.scope.items()},
            "start": self.start.isoformat(),
            "last day": self.last_day.isoformat(),
            "raised on": self.raised_on.isoformat(),
            "status": self.status,
            "severity": self.severity,
            "expected": f"{self.expected_cost:,.2f} {self.currency}",
            "actual": f"{self.actual_cost:,.2f} {self.currency}",
            "impact": f"{self.impact:+,.2f} {self.currency}",
            "impact %": relative,
            "detected in": f"{self.detected_in} {self.alert_impact:+,.2f}",
            "root causes": causes,
            "note": self.note,
        }


@dataclass(frozen=True)
class EventRun:
    """A run of the detector seen by the events: from its first to its last material flagged day."""

    series: int
    sign: int
    start: int
    last: int
    closed_on: int  # the first day it is no longer open
    reason: str


def material_flags(panel: Panel, output: DetectorOutput, materiality: float) -> np.ndarray:
    """The flags of totals and cause values whose day's deviation is at least `materiality` of the
    scope's expected cost that day; the rest (a small SKU's noise) cannot make a scope's alert and
    must not start or stretch its events."""
    totals = np.flatnonzero(panel.series_dim == TOTAL)
    scope_expected = output.expected[totals][panel.series_scope]
    deviation = np.abs(panel.values - output.expected)
    with np.errstate(invalid="ignore"):
        material = (deviation >= materiality * np.abs(scope_expected)) & (panel.series_dim != LEAF)[:, None]
    return np.where(material, output.flags, 0).astype(np.int8)


def _event_runs(runs: list[SeriesRun], flags: np.ndarray, gap: int) -> list[EventRun]:
    """The detector's runs cut to their material flags: a run whose material flags are more than
    `gap` days apart is two event runs, and an event run closes `gap` days after its last material
    flag (or when its level was accepted), whatever small flags the detector's run still sees."""
    out = []
    for run in runs:
        days = run.start + np.flatnonzero(flags[run.series, run.start : run.last + 1] == run.sign)
        if not days.size:
            continue
        groups = np.split(days, np.flatnonzero(np.diff(days) > gap + 1) + 1)
        for i, group in enumerate(groups):
            start, last = int(group[0]), int(group[-1])
            closed_on, reason = last + gap + 1, "baseline"
            if i == len(groups) - 1 and run.closed_on is not None and run.closed_on <= closed_on:
                closed_on, reason = run.closed_on, run.reason
            out.append(EventRun(run.series, run.sign, start, last, closed_on, reason))
    return out


@dataclass
class EventDraft:
    """The runs of one scope and sign that make one event."""

    scope: int
    sign: int
    members: list[EventRun] = field(default_factory=list)

    @property
    def start(self) -> int:
        return self.members[0].start

    def joins(self, run: EventRun) -> bool:
        return any(m.start <= run.start <= m.closed_on for m in self.members)

    def last_flag(self, flags: np.ndarray, day: int) -> int:
        """The event's last flagged day on or before `day`."""
        last = self.start
        for m in self.members:
            if m.start <= day:
                hits = np.flatnonzero(flags[m.series, m.start : min(m.last, day) + 1] == self.sign)
                last = max(last, m.start + int(hits[-1]))
        return last

    def flag_days(self, flags: np.ndarray) -> list[int]:
        days: set[int] = set()
        for m in self.members:
            days.update((m.start + np.flatnonzero(flags[m.series, m.start : m.last + 1] == self.sign)).tolist())
        return sorted(days)


def build_drafts(
    panel: Panel, output: DetectorOutput, flags: np.ndarray, signs: tuple[int, ...], gap: int
) -> list[EventDraft]:
    """Chain each scope's runs of one sign into events: a run joins the scope's current event when
    one of its runs is still open on the run's first (material) day."""
    by_key: dict[tuple[int, int], list[EventRun]] = {}
    for run in _event_runs(output.runs, flags, gap):
        if run.sign in signs:
            by_key.setdefault((int(panel.series_scope[run.series]), run.sign), []).append(run)
    drafts: list[EventDraft] = []
    for (scope, sign), runs in sorted(by_key.items()):
        current: EventDraft | None = None
        for run in sorted(runs, key=lambda r: (r.start, r.series)):
            if current is None or not current.joins(run):
                current = EventDraft(scope, sign)
                drafts.append(current)
            current.members.append(run)
    return drafts


def _window_sums(panel: Panel, expected: np.ndarray, rows: np.ndarray, a: int, b: int) -> tuple[np.ndarray, ...]:
    """Actual, expected and their difference per series over days a..b (days with data only)."""
    x = panel.values[rows, a : b + 1]
    e = expected[rows, a : b + 1]
    ok = ~np.isnan(x) & ~np.isnan(e)
    actual = np.where(ok, x, 0.0).sum(axis=1)
    exp = np.where(ok, e, 0.0).sum(axis=1)
    return actual, exp, actual - exp


@dataclass(frozen=True)
class _Check:
    passed: bool
    series: int  # the series whose impact counts: the scope's total, or a part that rose
    impact: float  # the total's impact, or the cost that moved between the part's dimension values


class EventJudge:
    """Decides and describes the events of one detection run."""

    def __init__(self, panel: Panel, output: DetectorOutput, config: AnomalyConfig) -> None:
        self.panel, self.output, self.config = panel, output, config
        self.flags = material_flags(panel, output, MATERIALITY * config.min_impact_relative)
        self.total_of = np.flatnonzero(panel.series_dim == TOTAL)  # scopes' totals come first, in order
        rows: dict[tuple[int, int], list[int]] = {}
        for row in np.flatnonzero(panel.series_dim >= 0):
            rows.setdefault((int(panel.series_scope[row]), int(panel.series_dim[row])), []).append(int(row))
        self.dim_rows = {key: np.array(value) for key, value in rows.items()}  # (scope, dimension): its values

    def drafts(self) -> list[EventDraft]:
        return build_drafts(self.panel, self.output, self.flags, self.config.signs(), self.config.max_gap_days)

    def check(self, draft: EventDraft, day: int) -> _Check:
        """Whether the event, seen on `day`, meets both thresholds, each against the scope's
        expected cost: through the scope total's impact, or, for a change the total hides, through
        the cost that moved between the values of a dimension where a flagged part rose (half the
        sum of their |impact|: 250 moved from one service to another is 250)."""
        total = int(self.total_of[draft.scope])
        last = draft.last_flag(self.flags, day)
        _, expected, impact = _window_sums(self.panel, self.output.expected, np.array([total]), draft.start, last)
        scope_expected, net = float(expected[0]), float(impact[0])
        best = _Check(self._passes(net * draft.sign, scope_expected), total, net)
        if best.passed:
            return best
        parts = sorted({m.series for m in draft.members if m.start <= day and m.series != total})
        for dim in sorted({int(self.panel.series_dim[p]) for p in parts}):
            rows = self.dim_rows[(draft.scope, dim)]
            _, _, impacts = _window_sums(self.panel, self.output.expected, rows, draft.start, last)
            flagged = np.isin(rows, parts) & (impacts * draft.sign > 0)
            moved = float(np.abs(impacts).sum() / 2)
            if flagged.any() and self._passes(moved, scope_expected) and moved > abs(best.impact):
                part = int(rows[flagged][np.argmax(impacts[flagged] * draft.sign)])
                best = _Check(True, part, moved * draft.sign)
        return best

    def _passes(self, impact: float, scope_expected: float) -> bool:
        config = self.config
        return (
            impact > 0
            and impact >= config.min_impact_absolute
            and impact >= config.min_impact_relative * scope_expected
        )

    def raised_day(self, draft: EventDraft) -> int | None:
        """The first day the event met the thresholds, judged with what was known that day."""
        for day in draft.flag_days(self.flags):
            if self.check(draft, day).passed:
                return day
        return None

    def summarise(self, draft: EventDraft, raised: int, seen: int) -> AnomalyEvent:
        """The event as seen on day `seen` (its flags, runs and impacts up to that day)."""
        panel, config = self.panel, self.config
        last = draft.last_flag(self.flags, seen)
        check = self.check(draft, seen)
        total = np.array([self.total_of[draft.scope]])
        actual, expected, impact = (
            float(v[0]) for v in _window_sums(panel, self.output.expected, total, draft.start, last)
        )
        lines = np.flatnonzero((panel.series_scope == draft.scope) & (panel.series_dim == LEAF))
        line_actual, line_expected, _ = _window_sums(panel, self.output.expected, lines, draft.start, last)
        causes, spread = rank_root_causes(
            line_actual,
            line_expected,
            [panel.series_value[i] for i in lines],
            panel.causes,
            check.impact,
            config.max_root_causes,
        )
        members = [m for m in draft.members if m.start <= seen]
        is_open = any(m.closed_on > seen for m in members)
        accepted = any(m.reason == "accepted" and m.closed_on <= seen for m in members)
        relative_alert = abs(check.impact) / expected if expected > 0 else float("inf")
        scope = panel.scopes[draft.scope]
        return AnomalyEvent(
            event_id=event_id(scope, panel.day(draft.start), draft.sign),
            scope=dict(scope),
            currency=panel.currency,
            start=panel.day(draft.start),
            last_day=panel.day(last),
            raised_on=panel.day(raised),
            as_of=panel.day(seen),
            status="open" if is_open else "closed",
            days=last - draft.start + 1,
            expected_cost=round(expected, 2),
            actual_cost=round(actual, 2),
            impact=round(impact, 2),
            relative_impact=round(impact / expected, 4) if expected > 0 else None,
            detected_in=panel.label(check.series),
            alert_impact=round(check.impact, 2),
            severity=_severity(relative_alert, config),
            root_causes=tuple(causes),
            days_of_history=seen - int(panel.scope_first_day[draft.scope]) + 1,
            note=self._note(draft, check, impact, causes, spread, is_open, accepted, last),
        )

    def _note(self, draft, check, impact, causes, spread, is_open, accepted, last) -> str:
        panel = self.panel
        days = last - draft.start + 1
        direction = "increase" if draft.sign > 0 else "decrease"
        if accepted:
            parts = [f"level shift ({direction}): the new level became the baseline after {days} days"]
        elif is_open:
            parts = [f"open: {days} day{'s' * (days > 1)} of {direction} so far"]
        else:
            kind = ("spike" if draft.sign > 0 else "dip") if days == 1 else direction
            parts = [f"{days}-day {kind}, back to baseline"]
        if panel.series_dim[check.series] != TOTAL:
            rose = [c for c in causes if np.sign(c.impact) == draft.sign]
            offset = [c for c in causes if np.sign(c.impact) == -draft.sign]
            detail = f"{abs(check.impact):,.2f} moved within it"
            if rose and offset:
                detail += f": {rose[0].impact:+,.2f} in {rose[0].label()} offset by {offset[0].impact:+,.2f} in "
                detail += offset[0].label()
            parts.append(f"the scope's total moved {impact:+,.2f} only; {detail}")
        new = [c for c in causes[:3] if c.expected == 0 and c.actual != 0]
        if new:
            parts.append("new: " + ", ".join(c.label() for c in new) + " had no cost in the baseline")
        if causes and spread:
            parts.append("the change is spread over the scope in its usual mix (volume), no single cause stands out")
        return "; ".join(parts)


def _severity(relative: float, config: AnomalyConfig) -> str:
    if relative >= config.severity_high_relative:
        return "high"
    if relative >= config.severity_medium_relative:
        return "medium"
    return "low"


def event_id(scope: dict[str, str | None], start: date, sign: int) -> str:
    """A stable identifier of the event (scope, first day, direction): the same on every later day,
    for a sensor's run_key or a notification's de-duplication."""
    key = json.dumps([sorted(scope.items()), start.isoformat(), sign])
    return hashlib.sha256(key.encode()).hexdigest()[:16]
