"""Daily cost anomalies per monitored scope (a model, a workload, a team), each with its root causes
ranked by cost.

    report = detect_anomalies(costs, scope=["model"], causes=["service", "account", "region", "sku", "tag"],
                              config=AnomalyConfig(min_impact_absolute=50.0), as_of=date(2025, 3, 31),
                              currency="USD")
    report.events       # AnomalyEvent, one per episode: a spike, a level shift until it is the new normal
    report.statuses     # per scope: days of history and why it cannot alarm yet
    report.to_rows()    # flat rows for a markdown table

`costs` is daily cost in long form, one row per day, scope value(s) and cause values: `date`,
`cost` (one currency; the caller splits currencies) and the named scope and cause columns (strings,
null allowed; a tag is a `key=value` string). Amounts are floats: these are statistics, rounded to
the cent in the report; reconciled amounts stay in the ledger. Negative amounts (credits) are
allowed; usage cost (FOCUS ChargeCategory Usage) gives the cleanest signal, since a purchase or a
credit is a one-off of its own.

What is monitored: each scope's total, and within each scope the part each cause value carries (per
service, per account, per region, per SKU, per tag). The parts catch what the total hides (two
services moving in opposite directions) and, with the scope's finest lines, give the root causes
(see `anomaly_root_cause`). A null scope value is a scope of its own (unattributed cost is worth
watching); a null cause value is the value None (shown as "(none)").

The baseline (see `anomaly_baseline`) is a recent robust level times a weekday profile, judged one
day at a time on the days before: robust to weekly seasonality (weekend dips and batch weekends do
not alert) and to past anomalies (flagged days are left out of it). Alerting starts on day
`min_history_days` (3) of a scope's history, where AWS Cost Anomaly Detection needs 10 days and
Azure's 60: until a series has its own weekly profile, its expected cost is the range its profile
may take, from flat to the other scopes' (see `anomaly_baseline`). An event alerts once its total
impact meets both thresholds, `min_impact_absolute` and `min_impact_relative` of its expected cost,
as AWS's alert subscriptions do (ANOMALY_TOTAL_IMPACT_ABSOLUTE and ANOMALY_TOTAL_IMPACT_PERCENTAGE,
both required); see `anomaly_events`. A level shift is one event: after `level_shift_days` flagged
days the new level is the baseline and the event closes. Only increases alert by default
(`direction`), as with AWS; decreases still leave the baseline and appear among root causes.

Days: the calendar runs from the first day in `costs` to `as_of`; rows after `as_of` are not known
yet and are left out, so `detect_anomalies(as_of=d)` sees what it would have seen on day d.
`replay` returns the events as they were raised day by day. A day with no row for any scope is a day
whose data is missing (not judged, not in any baseline); a scope with no row on a day others have
rows cost nothing that day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pydantic

from rai_pipelines.core.errors import BadInputError, validation_problems
from rai_pipelines.costs.anomaly_baseline import DetectorOutput, DetectorParams, run_detector
from rai_pipelines.costs.anomaly_events import LEAF, TOTAL, AnomalyEvent, EventJudge, Panel
from rai_pipelines.costs.anomaly_root_cause import RootCause
from rai_pipelines.costs.values import float_amounts

__all__ = ["AnomalyConfig", "AnomalyEvent", "AnomalyReport", "RootCause", "ScopeStatus", "detect_anomalies", "replay"]

MAX_DAYS = 1_100  # three years of daily history: far more than any baseline window needs
MAX_CELLS = 5_000_000  # series x days held in memory (a few float arrays of this size)
MAX_LABEL = 512  # characters in a scope or cause value
_Positive = Annotated[float, pydantic.Field(gt=0, allow_inf_nan=False)]
_NonNegative = Annotated[float, pydantic.Field(ge=0, allow_inf_nan=False)]


class AnomalyConfig(pydantic.BaseModel):
    """Anomaly detection settings, as declared in YAML: unknown keys and mistyped values are refused
    (a typo must not silently fall back to a default), and every error names its field."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True, frozen=True)

    min_history_days: Annotated[int, pydantic.Field(ge=2, le=366)] = 3
    min_impact_absolute: _NonNegative = 10.0
    min_impact_relative: _NonNegative = 0.2
    direction: Literal["increase", "decrease", "both"] = "increase"
    z_threshold: Annotated[float, pydantic.Field(gt=0, le=100, allow_inf_nan=False)] = 4.0
    min_relative_scale: Annotated[float, pydantic.Field(gt=0, le=10, allow_inf_nan=False)] = 0.05
    level_days: Annotated[int, pydantic.Field(ge=1, le=56)] = 7
    season_weeks: Annotated[int, pydantic.Field(ge=2, le=52)] = 8
    level_shift_days: Annotated[int, pydantic.Field(ge=2, le=90)] = 7
    max_gap_days: Annotated[int, pydantic.Field(ge=0, le=14)] = 2
    max_root_causes: Annotated[int, pydantic.Field(ge=1, le=50)] = 10
    severity_medium_relative: _Positive = 0.3
    severity_high_relative: _Positive = 1.0

    def __init__(self, **data: object) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            raise BadInputError(f"anomaly config: {_problems(exc)}") from None

    @pydantic.model_validator(mode="after")
    def _severity_order(self) -> AnomalyConfig:
        if self.severity_medium_relative > self.severity_high_relative:
            raise ValueError("severity_medium_relative must not exceed severity_high_relative")
        return self

    @classmethod
    def from_mapping(cls, document: Mapping[str, object], where: str = "anomaly config") -> AnomalyConfig:
        """The settings from a YAML mapping; BadInputError naming `where` and the field otherwise."""
        if not isinstance(document, Mapping):
            raise BadInputError(f"{where}: expected a mapping of settings, got {type(document).__name__}")
        try:
            return cls.model_validate(dict(document))
        except pydantic.ValidationError as exc:
            raise BadInputError(f"{where}: {_problems(exc)}") from None

    def detector_params(self) -> DetectorParams:
        return DetectorParams(
            min_history_days=self.min_history_days,
            z_threshold=self.z_threshold,
            min_relative_scale=self.min_relative_scale,
            level_days=self.level_days,
            season_weeks=self.season_weeks,
            level_shift_days=self.level_shift_days,
            max_gap_days=self.max_gap_days,
        )

    def signs(self) -> tuple[int, ...]:
        return {"increase": (1,), "decrease": (-1,), "both": (1, -1)}[self.direction]


def _problems(exc: pydantic.ValidationError) -> str:
    return validation_problems(exc)


@dataclass(frozen=True)
class ScopeStatus:
    """Whether a scope can alarm yet, and on what baseline."""

    scope: dict[str, str | None]
    first_day: date
    days_of_history: int
    alerting: bool
    open_events: int
    note: str


@dataclass(frozen=True)
class AnomalyReport:
    """The anomalies of one currency's costs as seen on `as_of`, and every scope's status."""

    as_of: date
    currency: str
    events: tuple[AnomalyEvent, ...]
    statuses: tuple[ScopeStatus, ...]

    def to_rows(self, top_causes: int = 3) -> list[dict[str, str]]:
        """One flat row of strings per event (newest first), for a markdown table."""
        return [e.to_row(top_causes) for e in sorted(self.events, key=lambda e: (e.start, e.event_id), reverse=True)]

    def to_dict(self) -> dict:
        """A JSON-ready form, for run metadata or an alert's payload."""
        return {
            "as_of": self.as_of.isoformat(),
            "currency": self.currency,
            "events": [e.to_dict() for e in self.events],
            "statuses": [
                {**asdict(s), "first_day": s.first_day.isoformat(), "scope": dict(s.scope)} for s in self.statuses
            ],
        }

    def markdown(self, top_causes: int = 3) -> str:
        """The events as a markdown table, and the scopes that cannot alarm yet below it."""
        rows = self.to_rows(top_causes)
        lines: list[str] = []
        if rows:
            header = list(rows[0])
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(r[h].replace("|", "\\|") for h in header) + " |" for r in rows]
        else:
            lines.append(f"No cost anomaly ({self.currency}) up to {self.as_of.isoformat()}.")
        waiting = [s for s in self.statuses if not s.alerting]
        if waiting:
            lines.append("")
            lines += [f"- {', '.join(f'{k}={v}' for k, v in s.scope.items())}: {s.note}" for s in waiting]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- input


def _as_date(value: object, where: str) -> date:
    if isinstance(value, datetime | pd.Timestamp):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise BadInputError(f"{where}: {value!r} is not a date (YYYY-MM-DD)")


def _frame(costs: object) -> pd.DataFrame:
    if isinstance(costs, pa.Table):
        if "cost" in costs.column_names and pa.types.is_decimal(costs.schema.field("cost").type):
            costs = costs.set_column(costs.column_names.index("cost"), "cost", costs["cost"].cast(pa.float64()))
        return costs.to_pandas()
    if isinstance(costs, pd.DataFrame):
        return costs.reset_index(drop=True)
    raise BadInputError(f"costs: expected a pyarrow Table or a pandas DataFrame, got {type(costs).__name__}")


def _days(column: pd.Series) -> np.ndarray:
    """Dates (date objects, YYYY-MM-DD strings or midnight timestamps) as numpy days;
    BadInputError naming the first row that is not a date."""
    if not len(column):
        return np.empty(0, dtype="datetime64[D]")
    codes, uniques = pd.factorize(column)  # a ledger has few distinct days: convert those
    if (codes < 0).any():
        row = int(np.argmax(codes < 0))
        raise BadInputError(f"costs row {row}: date is missing")
    distinct = pd.Series(uniques)
    kind = pd.api.types.infer_dtype(distinct, skipna=False)
    if pd.api.types.is_datetime64_any_dtype(distinct.dtype) or kind == "datetime":
        stamps = pd.to_datetime(distinct, errors="coerce")
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_localize(None)
        bad = (stamps.isna() | (stamps != stamps.dt.normalize())).to_numpy()
        problem = "has a time of day"
    elif kind == "date":
        stamps, bad, problem = pd.to_datetime(distinct), np.zeros(len(distinct), dtype=bool), ""
    elif kind == "string":
        stamps = pd.to_datetime(distinct, format="%Y-%m-%d", errors="coerce")
        bad = stamps.isna().to_numpy()
        problem = "is not a date (YYYY-MM-DD)"
    else:
        bad = np.array([not isinstance(v, date) for v in distinct.tolist()])
        stamps, problem = None, "is not a date"
    if bad.any():
        row = int(np.argmax(np.isin(codes, np.flatnonzero(bad))))
        raise BadInputError(f"costs row {row}: date {column.iloc[row]!r} {problem}")
    return stamps.to_numpy().astype("datetime64[D]")[codes]


def _amounts(column: pd.Series) -> np.ndarray:
    out = float_amounts(column, "costs")
    bad = ~np.isfinite(out)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise BadInputError(
            f"costs row {row}: cost is {out[row]!r} ({int(bad.sum())} rows with a NaN or infinite cost)"
        )
    return out


def _labels(column: pd.Series, name: str) -> np.ndarray:
    """A scope or cause column as an object array of str or None; BadInputError naming the first
    row that holds anything else."""
    column = column.astype(object)
    present = column.notna().to_numpy()
    if pd.api.types.infer_dtype(column, skipna=True) not in ("string", "empty"):
        values = column.tolist()
        row = next(i for i, v in enumerate(values) if present[i] and not isinstance(v, str))
        raise BadInputError(f"costs row {row}: {name} {values[row]!r} is not a string")
    long = [v for v in pd.unique(column[present]) if len(v) > MAX_LABEL]
    if long:
        row = int(np.argmax((column == long[0]).to_numpy()))
        raise BadInputError(f"costs row {row}: {name} is longer than {MAX_LABEL} characters")
    return column.where(present, None).to_numpy()


def _codes(values: np.ndarray) -> np.ndarray:
    """Codes of str-or-None values, in sorted order of the values (None first)."""
    codes, uniques = pd.factorize(values)  # None is -1
    order = sorted(range(len(uniques)), key=lambda i: uniques[i])
    rank = np.empty(len(uniques) + 1, dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(1, len(order) + 1)
    rank[-1] = 0  # code -1: None
    return rank[codes]


def _groups(columns: list[np.ndarray], within: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The distinct combinations of the columns' values (within each group of `within`, when given),
    in sorted order: each row's combination, and one row holding each combination."""
    key = np.zeros(len(columns[0]), dtype=np.int64) if within is None else within
    for column in columns:
        codes = _codes(column)
        # re-coded after each column, so the key stays below the number of rows (no overflow)
        key = np.unique(key * (int(codes.max(initial=0)) + 1) + codes, return_inverse=True)[1].ravel()
    _, rows = np.unique(key, return_index=True)
    return key, rows


def _check_names(frame: pd.DataFrame, scope: Sequence[str], causes: Sequence[str]) -> tuple[list[str], list[str]]:
    for name, names in (("scope", scope), ("causes", causes)):
        if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
            raise BadInputError(f"{name}: expected a list of column names, got {names!r}")
    scope, causes = list(scope), list(causes)
    if not scope:
        raise BadInputError("scope: name at least one scope column (model, workload, team ...)")
    clash = (set(scope) & set(causes)) | ({"date", "cost"} & set(scope + causes))
    if clash or len(set(scope)) < len(scope) or len(set(causes)) < len(causes):
        raise BadInputError(f"scope {scope} and causes {causes}: a column is named twice or is date/cost")
    missing = [c for c in ["date", "cost", *scope, *causes] if c not in frame.columns]
    if missing:
        raise BadInputError(f"costs: missing column(s) {', '.join(missing)} (has {', '.join(map(str, frame.columns))})")
    return scope, causes


def build_panel(
    costs: object, scope: Sequence[str], causes: Sequence[str], as_of: date | str | None, currency: str
) -> tuple[Panel, date]:
    """Validate the input and lay it out as dense daily series (scope totals, then scope x cause value)."""
    if not isinstance(currency, str) or not 1 <= len(currency) <= 16:
        raise BadInputError(f"currency: {currency!r} is not a currency code")
    frame = _frame(costs)
    scope, causes = _check_names(frame, scope, causes)
    days = _days(frame["date"])
    amounts = _amounts(frame["cost"])
    labels = {name: _labels(frame[name], name) for name in [*scope, *causes]}
    keyed = pd.DataFrame({"date": days, **labels})
    duplicated = keyed.duplicated(keep="first").to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise BadInputError(
            f"costs row {row}: duplicate of an earlier row for date, {', '.join(scope + causes)} "
            f"({keyed.iloc[row].to_dict()}): aggregate to one row per day, scope and causes"
        )
    if as_of is None:
        if not len(days):
            raise BadInputError("costs: no rows, and no as_of date to report on")
        as_of = days.max().astype(object)
    as_of = _as_date(as_of, "as_of")
    keep = days <= np.datetime64(as_of, "D")
    days, amounts = days[keep], amounts[keep]
    labels = {k: v[keep] for k, v in labels.items()}
    first = days.min().astype(object) if len(days) else as_of
    n_days = (as_of - first).days + 1
    if n_days > MAX_DAYS:
        raise BadInputError(f"costs: {n_days} days from {first} to {as_of}; pass at most {MAX_DAYS} days of history")
    day_index = (days - np.datetime64(first, "D")).astype(np.int64)

    scope_code, scope_rows = _groups([labels[name] for name in scope])
    scopes = [{name: labels[name][row] for name in scope} for row in scope_rows]
    n_scopes = len(scopes)
    series_scope, series_dim, series_value = list(range(n_scopes)), [TOTAL] * n_scopes, [None] * n_scopes
    row_series: list[np.ndarray] = [scope_code]
    for dim, name in enumerate(causes):
        code, rows = _groups([labels[name]], scope_code)
        row_series.append(len(series_scope) + code)
        series_scope += scope_code[rows].tolist()
        series_dim += [dim] * len(rows)
        series_value += labels[name][rows].tolist()
    if causes:  # each scope's lines (one per combination of cause values), for the root causes
        code, rows = _groups([labels[name] for name in causes], scope_code)
        row_series.append(len(series_scope) + code)
        series_scope += scope_code[rows].tolist()
        series_dim += [LEAF] * len(rows)
        series_value += [tuple(labels[name][row] for name in causes) for row in rows]
    n_series = len(series_scope)
    if n_series * n_days > MAX_CELLS:
        raise BadInputError(
            f"costs: {n_series} series over {n_days} days exceed {MAX_CELLS:,} cells; monitor fewer scopes or "
            "coarser causes (for example usage type families rather than SKUs), or fewer days"
        )
    values = np.zeros(n_series * n_days)
    for rows_to_series in row_series:
        values += np.bincount(rows_to_series * n_days + day_index, weights=amounts, minlength=n_series * n_days)
    values = values.reshape(n_series, n_days)
    series_scope_arr = np.asarray(series_scope, dtype=np.int64)
    scope_first = np.full(n_scopes, n_days, dtype=np.int64)
    np.minimum.at(scope_first, scope_code, day_index)
    has_data = np.zeros(n_days, dtype=bool)
    has_data[day_index] = True
    not_started = np.arange(n_days)[None, :] < scope_first[series_scope_arr][:, None]
    values[not_started | ~has_data[None, :]] = np.nan
    panel = Panel(
        first_date=first,
        values=values,
        series_scope=series_scope_arr,
        series_dim=np.asarray(series_dim, dtype=np.int64),
        series_value=series_value,
        scopes=scopes,
        scope_first_day=scope_first,
        causes=causes,
        currency=currency,
    )
    return panel, as_of


def _config(config: AnomalyConfig | Mapping[str, object] | None) -> AnomalyConfig:
    if config is None:
        return AnomalyConfig()
    if isinstance(config, AnomalyConfig):
        return config
    return AnomalyConfig.from_mapping(config)


def _detect(panel: Panel, config: AnomalyConfig) -> DetectorOutput:
    totals = panel.values[panel.series_dim == TOTAL]
    shared = np.where(np.isnan(totals).all(axis=0), np.nan, np.nansum(totals, axis=0))
    return run_detector(
        panel.values,
        panel.scope_first_day[panel.series_scope],
        panel.first_date.weekday(),
        shared,
        panel.series_dim == TOTAL,
        config.detector_params(),
    )


def _statuses(
    panel: Panel, output: DetectorOutput, events: list[AnomalyEvent], as_of_index: int, config: AnomalyConfig
) -> list[ScopeStatus]:
    out = []
    for index, scope in enumerate(panel.scopes):
        first = int(panel.scope_first_day[index])
        history = as_of_index - first + 1
        total = int(np.flatnonzero((panel.series_scope == index) & (panel.series_dim == TOTAL))[0])
        open_events = sum(1 for e in events if e.scope == scope and e.status == "open")
        if history < config.min_history_days:
            note = (
                f"no alarm yet: {history} day{'s' * (history != 1)} of history, "
                f"alerting needs {config.min_history_days}"
            )
        elif output.own_profile[total]:
            note = f"monitored: {history} days of history, on its own weekly profile"
        else:
            note = (
                f"monitored: {history} days of history; its weekly profile is not known yet (3 weeks), so its "
                "expected cost is the range of the profiles it may have (flat, other scopes', last week's)"
            )
        out.append(
            ScopeStatus(dict(scope), panel.day(first), history, history >= config.min_history_days, open_events, note)
        )
    return out


def detect_anomalies(
    costs: pa.Table | pd.DataFrame,
    scope: Sequence[str],
    causes: Sequence[str],
    config: AnomalyConfig | Mapping[str, object] | None = None,
    as_of: date | str | None = None,
    currency: str = "USD",
    since: date | str | None = None,
) -> AnomalyReport:
    """The cost anomalies of each scope as seen on `as_of` (default: the last day in `costs`): every
    event raised up to then (those whose last day is on or after `since`, when given), open or
    closed, and the status of every scope."""
    config = _config(config)
    panel, as_of = build_panel(costs, scope, causes, as_of, currency)
    output = _detect(panel, config)
    last = panel.values.shape[1] - 1
    since_index = -1 if since is None else (_as_date(since, "since") - panel.first_date).days
    judge = EventJudge(panel, output, config)
    events = []
    for draft in judge.drafts():
        raised = judge.raised_day(draft)
        if raised is not None:
            event = judge.summarise(draft, raised, last)
            if (event.last_day - panel.first_date).days >= since_index:
                events.append(event)
    statuses = _statuses(panel, output, events, last, config)
    return AnomalyReport(as_of, currency, tuple(events), tuple(statuses))


def replay(
    costs: pa.Table | pd.DataFrame,
    scope: Sequence[str],
    causes: Sequence[str],
    config: AnomalyConfig | Mapping[str, object] | None = None,
    start: date | str | None = None,
    end: date | str | None = None,
    currency: str = "USD",
) -> list[AnomalyEvent]:
    """The alerts as they would have been raised by running detection every day from `start` to
    `end` (default: the whole calendar): each event once, on its `raised_on` day, as it was seen that
    day. Detection is causal (a day is judged on the days before it), so this equals running
    `detect_anomalies(as_of=day)` on every day and keeping the new events."""
    config = _config(config)
    panel, end = build_panel(costs, scope, causes, end, currency)
    start = panel.first_date if start is None else _as_date(start, "start")
    if start > end:
        raise BadInputError(f"start {start} is after end {end}")
    output = _detect(panel, config)
    start_index = (start - panel.first_date).days
    judge = EventJudge(panel, output, config)
    raised_events = []
    for draft in judge.drafts():
        raised = judge.raised_day(draft)
        if raised is not None and raised >= start_index:
            raised_events.append(judge.summarise(draft, raised, raised))
    return sorted(raised_events, key=lambda e: (e.raised_on, e.start, e.event_id))
