"""Utilisation telemetry of the serving replicas, read into one tidy table for the recommendations.

Two sources: the JSON a Prometheus `query_range` call returns (one file per query, the caller
says which metric the query measures), and Parquet with the columns timestamp, metric, value and
one column per label. Both become rows of (timestamp UTC, model_name, model_version, replica,
metric, value). The label that names the model, its version and the replica is declared by the
caller (`model` on one cluster, `app` on another).

Nothing is filled in: a sample Prometheus reports as NaN or ±Inf stays in the table as NaN (a
missing sample), and `coverage` states the share of the evidence window's steps that have a
sample. The recommendations refuse to recommend below a declared coverage, with the reason.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pydantic

from rai_pipelines.core.errors import BadInputError, validation_problems
from rai_pipelines.core.registry import validate_model_name, validate_model_version

METRICS = ("cpu_cores", "memory_bytes", "gpu_utilisation", "inferences_per_s")
COLUMNS = ["timestamp", "model_name", "model_version", "replica", "metric", "value"]
KEY = ["timestamp", "model_name", "model_version", "replica", "metric"]

MAX_TELEMETRY_BYTES = 256 * 1024 * 1024
MAX_TELEMETRY_ROWS = 20_000_000
MAX_WINDOW_STEPS = 1_000_000
_FIRST_TS, _LAST_TS = 946_684_800, 4_102_444_800  # 2000-01-01 .. 2100-01-01, in unix seconds
# Prometheus formats sample values as Go's strconv.FormatFloat does, with NaN and ±Inf spelled so.
_PROM_FLOAT = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$|^[+-]?Inf$|^NaN$")
_REPLICA = re.compile(r"^[^\x00-\x1f\x7f]{1,253}$")


class LabelMap(pydantic.BaseModel):
    """Which label (or Parquet column) names the model, its version and the replica: the first
    of each list present on a series is used."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True, frozen=True)
    model_name: list[str] = ["model_name", "model", "app"]
    model_version: list[str] = ["model_version", "model-version", "version"]
    replica: list[str] = ["pod", "replica", "instance"]

    @classmethod
    def of(cls, document: dict) -> LabelMap:
        try:
            return cls.model_validate(document)
        except pydantic.ValidationError as exc:
            problems = validation_problems(exc)
            raise BadInputError(f"telemetry label map: {problems}") from None


@dataclass(frozen=True)
class EvidenceWindow:
    """The half-open window [start, end) the evidence is read over, at the step the samples are
    expected (Prometheus' query_range step; the scrape interval for Parquet)."""

    start: datetime
    end: datetime
    step: timedelta

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise BadInputError("evidence window: start and end must carry a time zone (UTC)")
        if self.end <= self.start:
            raise BadInputError(f"evidence window: end {self.end} is not after start {self.start}")
        if self.step <= timedelta(0):
            raise BadInputError(f"evidence window: step {self.step} must be positive")
        if self.steps > MAX_WINDOW_STEPS:
            raise BadInputError(f"evidence window: {self.steps:,} steps, over the limit of {MAX_WINDOW_STEPS:,}")

    @property
    def steps(self) -> int:
        return math.ceil((self.end - self.start) / self.step)

    @property
    def hours(self) -> float:
        return (self.end - self.start) / timedelta(hours=1)


@dataclass(frozen=True)
class Coverage:
    """How much of the window a metric's samples cover: a step counts when at least one replica
    reported a finite sample in it (replicas come and go with scaling; a scrape outage does not)."""

    metric: str
    expected: int  # steps in the window
    present: int  # steps with a finite sample
    samples: int  # finite samples in the window
    largest_gap: timedelta

    @property
    def share(self) -> float:
        return self.present / self.expected if self.expected else 0.0

    def shortfall(self, minimum: float) -> str | None:
        """Why the evidence is not enough, or None when it is."""
        if self.share + 1e-12 >= minimum:
            return None
        return (
            f"{self.metric}: samples in {self.present} of {self.expected} steps ({self.share:.1%}, the minimum is "
            f"{minimum:.0%}); the largest gap is {self.largest_gap}. Gaps are not interpolated"
        )


# -- reading -----------------------------------------------------------------------------------------
def _check_size(path: Path, max_bytes: int) -> None:
    if not path.is_file():
        raise BadInputError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size > max_bytes:
        raise BadInputError(f"{path}: {size:,} bytes of telemetry, over the limit of {max_bytes:,}; refused unread")


def _check_metric(metric: str, where: str) -> None:
    if metric not in METRICS:
        raise BadInputError(f"{where}: metric {metric!r} is not one of {', '.join(METRICS)}")


def _pick(labels: dict, names: list[str], what: str, where: str) -> str:
    for name in names:
        value = labels.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise BadInputError(f"{where}: label {name} is {type(value).__name__}, expected a string")
            return value
    raise BadInputError(f"{where}: none of the labels {names} (the {what}) is present; labels are {sorted(labels)}")


def _check_values(values: np.ndarray, metric: str, where: str) -> None:
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() < 0:
        raise BadInputError(f"{where}: negative {metric} ({finite.min()}); usage cannot be negative")
    if metric == "gpu_utilisation" and finite.size and finite.max() > 1 + 1e-9:
        raise BadInputError(
            f"{where}: gpu_utilisation {finite.max()} above 1; it is a share (0..1): scale percentages by 0.01"
        )


def prometheus_frame(
    document: object, metric: str, labels: LabelMap, where: str = "prometheus", scale: float = 1.0
) -> pd.DataFrame:
    """The tidy table of one Prometheus `query_range` response (already parsed JSON)."""
    _check_metric(metric, where)
    if not isinstance(document, dict):
        raise BadInputError(f"{where}: expected a JSON object (a Prometheus API response)")
    unknown = set(document) - {"status", "data", "errorType", "error", "warnings", "infos"}
    if unknown:
        raise BadInputError(f"{where}: unknown keys {sorted(unknown)} in a Prometheus API response")
    if document.get("status") != "success":
        raise BadInputError(
            f"{where}: Prometheus answered status {document.get('status')!r} "
            f"({document.get('errorType', '?')}: {str(document.get('error', ''))[:500]})"
        )
    data = document.get("data")
    if not isinstance(data, dict) or set(data) - {"resultType", "result", "stats"}:
        raise BadInputError(f"{where}: `data` must be an object with resultType and result")
    if data.get("resultType") != "matrix":
        raise BadInputError(
            f"{where}: resultType {data.get('resultType')!r}; a query_range result (matrix) is needed, "
            "not an instant query"
        )
    result = data.get("result")
    if not isinstance(result, list):
        raise BadInputError(f"{where}: data.result must be a list of series")
    parts = []
    for i, series in enumerate(result):
        at = f"{where}: series {i}"
        if not isinstance(series, dict) or set(series) - {"metric", "values"}:
            extra = sorted(set(series) - {"metric", "values"}) if isinstance(series, dict) else "not an object"
            raise BadInputError(f"{at}: expected an object with metric and values (found {extra})")
        series_labels, values = series.get("metric", {}), series.get("values")
        if not isinstance(series_labels, dict) or not isinstance(values, list):
            raise BadInputError(f"{at}: metric must be an object of labels and values a list of [time, value]")
        name = validate_model_name(_pick(series_labels, labels.model_name, "model name", at), f"{at}: model name")
        version = validate_model_version(
            _pick(series_labels, labels.model_version, "model version", at), f"{at}: model version"
        )
        replica = _pick(series_labels, labels.replica, "replica", at)
        if not _REPLICA.match(replica):
            raise BadInputError(f"{at}: replica label {replica[:80]!r} is not a printable name of at most 253 chars")
        ts = np.empty(len(values), dtype=np.int64)
        vals = np.empty(len(values), dtype=np.float64)
        for j, pair in enumerate(values):
            if not isinstance(pair, list) or len(pair) != 2:
                raise BadInputError(f'{at}, sample {j}: expected [unix_time, "value"], found {str(pair)[:80]}')
            t, v = pair
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not _FIRST_TS <= t <= _LAST_TS:
                raise BadInputError(f"{at}, sample {j}: time {t!r} is not a unix time between 2000 and 2100")
            if not isinstance(v, str) or not _PROM_FLOAT.match(v):
                raise BadInputError(f"{at}, sample {j}: value {str(v)[:40]!r} is not a Prometheus sample string")
            ts[j] = round(t * 1000)
            vals[j] = float(v) * scale
        vals[~np.isfinite(vals)] = np.nan  # NaN and ±Inf are missing samples, kept as such
        _check_values(vals, metric, at)
        parts.append(
            pd.DataFrame(
                {
                    "timestamp": pd.to_datetime(ts, unit="ms", utc=True),
                    "model_name": name,
                    "model_version": version,
                    "replica": replica,
                    "metric": metric,
                    "value": vals,
                }
            )
        )
    return combine(parts)


def read_prometheus_query_range(
    path: str | Path, metric: str, labels: LabelMap, scale: float = 1.0, max_bytes: int = MAX_TELEMETRY_BYTES
) -> pd.DataFrame:
    """Read a saved `query_range` response measuring `metric` (cpu_cores, memory_bytes,
    gpu_utilisation or inferences_per_s); values are multiplied by `scale` (0.01 for DCGM's
    GPU utilisation in percent). The file's size is checked before it is read."""
    path = Path(path)
    _check_size(path, max_bytes)
    try:
        document = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: not JSON: {exc}") from None
    return prometheus_frame(document, metric, labels, str(path), scale)


def _timestamps(column, where: str) -> pd.Series:
    import pyarrow as pa

    if pa.types.is_timestamp(column.type):
        if column.type.tz is None:
            raise BadInputError(f"{where}: column timestamp has no time zone; write it as UTC")
        series = column.to_pandas().dt.tz_convert(timezone.utc)
    elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        seconds = column.to_numpy(zero_copy_only=False).astype("float64")
        bad = ~((seconds >= _FIRST_TS) & (seconds <= _LAST_TS))
        if bad.any():
            raise BadInputError(
                f"{where}, row {int(np.argmax(bad))}: timestamp is not a unix time between 2000 and 2100"
            )
        series = pd.Series(pd.to_datetime(np.round(seconds * 1000).astype("int64"), unit="ms", utc=True))
    else:
        raise BadInputError(f"{where}: column timestamp is {column.type}, expected a timestamp or unix seconds")
    if series.isna().any():
        raise BadInputError(f"{where}, row {int(series.isna().to_numpy().argmax())}: timestamp is empty")
    return series.astype("datetime64[ns, UTC]").reset_index(drop=True)


def read_parquet_telemetry(
    path: str | Path,
    labels: LabelMap,
    scale: dict[str, float] | None = None,
    max_bytes: int = MAX_TELEMETRY_BYTES,
    max_rows: int = MAX_TELEMETRY_ROWS,
) -> pd.DataFrame:
    """Read Parquet telemetry: columns timestamp (UTC, or unix seconds), metric (one of METRICS),
    value, and label columns named as in `labels`. A null value is a missing sample."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    where = str(path)
    _check_size(path, max_bytes)
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise BadInputError(f"{path}: not Parquet: {exc}") from None
    if parquet.metadata.num_rows > max_rows:
        raise BadInputError(f"{path}: {parquet.metadata.num_rows:,} rows, over the limit of {max_rows:,}")
    names = parquet.schema_arrow.names
    chosen = {}
    for what, candidates in (
        ("model_name", labels.model_name),
        ("model_version", labels.model_version),
        ("replica", labels.replica),
    ):
        found = next((c for c in candidates if c in names), None)
        if found is None:
            raise BadInputError(f"{path}: none of the columns {candidates} (the {what}) is present")
        chosen[what] = found
    missing = [c for c in ("timestamp", "metric", "value") if c not in names]
    if missing:
        raise BadInputError(f"{path}: missing columns {missing}")
    table = parquet.read(columns=["timestamp", "metric", "value", *dict.fromkeys(chosen.values())])
    value_type = table.schema.field("value").type
    if not (pa.types.is_floating(value_type) or pa.types.is_integer(value_type) or pa.types.is_decimal(value_type)):
        raise BadInputError(f"{path}: column value is {value_type}, expected a number")
    frame = pd.DataFrame({"timestamp": _timestamps(table.column("timestamp"), where)})
    for what, column in [("metric", "metric"), *chosen.items()]:
        if not pa.types.is_string(table.schema.field(column).type):
            raise BadInputError(f"{path}: column {column} is {table.schema.field(column).type}, expected strings")
        values = table.column(column).to_pandas()
        if values.isna().any():
            raise BadInputError(f"{path}, row {int(values.isna().to_numpy().argmax())}: column {column} is empty")
        frame[what] = values.to_numpy(dtype=object)
    for name in frame["metric"].unique():
        _check_metric(name, f"{path}, row {int((frame['metric'] == name).to_numpy().argmax())}")
    for name in frame["model_name"].unique():
        validate_model_name(name, f"{path}: column {chosen['model_name']}")
    for version in frame["model_version"].unique():
        validate_model_version(version, f"{path}: column {chosen['model_version']}")
    for replica in frame["replica"].unique():
        if not _REPLICA.match(replica):
            raise BadInputError(f"{path}: replica {replica[:80]!r} is not a printable name of at most 253 chars")
    values = table.column("value").cast(pa.float64()).to_numpy(zero_copy_only=False).astype("float64")
    values[~np.isfinite(values)] = np.nan
    for name, factor in (scale or {}).items():
        _check_metric(name, f"{path}: scale")
        values[(frame["metric"] == name).to_numpy()] *= factor
    frame["value"] = values
    for name in frame["metric"].unique():
        _check_values(values[(frame["metric"] == name).to_numpy()], name, f"{path}: metric {name}")
    return combine([frame[COLUMNS]])


def combine(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One table from several reads. A sample read twice is kept once; two different finite
    values for the same replica, metric and time are a conflict, refused rather than averaged."""
    frames = [f for f in frames if len(f)]
    if not frames:
        types = {"timestamp": "datetime64[ns, UTC]", "value": "float64"}
        return pd.DataFrame({c: pd.Series(dtype=types.get(c, "object")) for c in COLUMNS})
    table = pd.concat(frames, ignore_index=True)[COLUMNS]
    table["value"] = table["value"].astype("float64")
    finite = table[table["value"].notna()]
    repeated = finite[finite.duplicated(KEY, keep=False)]
    if len(repeated):
        spread = repeated.groupby(KEY, observed=True)["value"].nunique()
        conflicts = spread[spread > 1]
        if len(conflicts):
            key = dict(zip(KEY, conflicts.index[0], strict=True))
            raise BadInputError(f"telemetry: conflicting values for the same sample {key}")
    # a finite value wins over a missing one read elsewhere for the same sample
    table = table.sort_values("value", na_position="last", kind="stable").drop_duplicates(KEY, keep="first")
    return table.sort_values(KEY, kind="stable").reset_index(drop=True)


# -- selection and coverage --------------------------------------------------------------------------
def samples(table: pd.DataFrame, model: str, version: str, metric: str, window: EvidenceWindow) -> pd.DataFrame:
    """The finite samples of one model version's metric inside the window, with the index of the
    window step each falls in (`step`), and the replica."""
    _check_metric(metric, "telemetry")
    start, end = pd.Timestamp(window.start), pd.Timestamp(window.end)
    rows = table[
        (table["model_name"] == model)
        & (table["model_version"] == version)
        & (table["metric"] == metric)
        & (table["timestamp"] >= start)
        & (table["timestamp"] < end)
        & table["value"].notna()
    ]
    offset = (rows["timestamp"] - start) // pd.Timedelta(window.step)
    return pd.DataFrame(
        {
            "step": offset.to_numpy(dtype="int64"),
            "replica": rows["replica"].to_numpy(),
            "value": rows["value"].to_numpy(),
        }
    )


def coverage_of(selected: pd.DataFrame, metric: str, window: EvidenceWindow) -> Coverage:
    present = np.unique(selected["step"].to_numpy())
    edges = np.concatenate(([-1], present, [window.steps]))
    largest = int(np.max(np.diff(edges)) - 1) if len(edges) > 1 else window.steps
    return Coverage(metric, window.steps, int(len(present)), int(len(selected)), largest * window.step)


def coverage(table: pd.DataFrame, model: str, version: str, metric: str, window: EvidenceWindow) -> Coverage:
    """The share of the window's steps with a finite sample of the metric (see Coverage)."""
    return coverage_of(samples(table, model, version, metric, window), metric, window)


def utc(text: str) -> datetime:
    """A UTC datetime from ISO 8601 text (a convenience for declared windows)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise BadInputError(f"{text!r}: a time without a time zone")
    return value.astimezone(timezone.utc)


# -- the evidence a recommendation rests on ----------------------------------------------------------
@dataclass(frozen=True)
class Evidence:
    start: datetime
    end: datetime
    step_seconds: float
    samples: int
    coverage: float  # the lowest share of the window's steps covered among the metrics used

    def describe(self) -> str:
        start, end = self.start.astimezone(timezone.utc), self.end.astimezone(timezone.utc)
        return (
            f"{start:%Y-%m-%dT%H:%M:%SZ} to {end:%Y-%m-%dT%H:%M:%SZ} at {self.step_seconds:g} s steps, "
            f"{self.samples:,} samples, coverage {self.coverage:.1%}"
        )


@dataclass(frozen=True)
class Usage:
    """Statistics of one model version's metrics over the window, from the finite samples only."""

    selected: dict[str, pd.DataFrame]
    evidence: Evidence

    def per_replica_percentile(self, metric: str, q: float) -> float:
        """As krr: the percentile of each replica's samples, the largest across replicas (linear
        interpolation, as Prometheus' quantile_over_time)."""
        return float(self.selected[metric].groupby("replica")["value"].quantile(q / 100).max())

    def peak(self, metric: str) -> float:
        return float(self.selected[metric]["value"].max())

    def summed(self, metric: str) -> pd.Series:
        """Per window step with samples, the sum across replicas (each replica's mean in the step)."""
        frame = self.selected[metric]
        return frame.groupby(["step", "replica"])["value"].mean().groupby(level="step").sum()


def summarise_usage(
    table: pd.DataFrame,
    model: str,
    version: str,
    metrics: list[str],
    window: EvidenceWindow,
    min_coverage: float,
    min_samples: int,
) -> Usage | str:
    """The usage of the metrics over the window, or why the evidence is not enough (a metric
    covering less than `min_coverage` of the steps, or with fewer than `min_samples` samples)."""
    selected, shares, count = {}, [], 0
    for metric in metrics:
        chosen = samples(table, model, version, metric, window)
        cov = coverage_of(chosen, metric, window)
        reason = cov.shortfall(min_coverage)
        if reason is None and cov.samples < min_samples:
            reason = f"{metric}: {cov.samples} samples, fewer than the {min_samples} required"
        if reason:
            return reason
        selected[metric], count = chosen, count + cov.samples
        shares.append(cov.share)
    return Usage(selected, Evidence(window.start, window.end, window.step.total_seconds(), count, min(shares)))
