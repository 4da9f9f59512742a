"""Feature snapshots: one day of a model's inference log, checked against the model's declaration,
with request ids pseudonymised and late-arriving labels attached."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rai_pipelines.core import datasets
from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.registry import ModelSpec, validate_model_version

PROTECTED_PREFIX = "protected__"
LOG_COLUMNS = ("request_id", "timestamp", "model_version")
JSONL_FILE = "data.jsonl"


def pseudonymise(values: list[str], key: bytes) -> list[str]:
    """Keyed hash (HMAC-SHA256): stable for joins across days, not reversible without the key."""
    return [hmac.new(key, str(v).encode(), hashlib.sha256).hexdigest()[:32] for v in values]


def read_inference_log(
    lake, partition: dict[str, str], columns: list[str] | None = None
) -> tuple[pa.Table, str] | None:
    """A day's inference log as the serving side wrote it: Parquet (data.parquet) or JSON lines
    (data.jsonl, one request per line, ISO timestamps with a zone offset). Returns (table, uri), or
    None when the day has neither."""
    if lake.exists(datasets.INFERENCE_LOGS, partition):
        return lake.read_table(datasets.INFERENCE_LOGS, partition, columns=columns), lake.uri(
            datasets.INFERENCE_LOGS, partition
        )
    if not lake.exists(datasets.INFERENCE_LOGS, partition, JSONL_FILE):
        return None
    import pyarrow.json as pj

    uri = lake.uri(datasets.INFERENCE_LOGS, partition, JSONL_FILE)
    try:
        with lake.fs.open_input_stream(lake.path(datasets.INFERENCE_LOGS, partition, JSONL_FILE)) as stream:
            table = pj.read_json(stream)
    except pa.ArrowInvalid as exc:
        raise BadInputError(f"{uri}: not valid JSON lines: {exc}") from exc
    if "timestamp" in table.column_names and pa.types.is_string(table.column("timestamp").type):
        try:
            parsed = table.column("timestamp").cast(pa.timestamp("us", "UTC"))  # ISO 8601 with a zone offset
        except pa.ArrowInvalid as exc:
            raise BadInputError(f"{uri}: column timestamp: {exc}") from exc
        table = table.set_column(table.column_names.index("timestamp"), "timestamp", parsed)
    return (table.select(columns) if columns else table), uri


def stratified_sample(table: pa.Table, max_rows: int | None, stratify_by: tuple[str, ...], seed: int) -> pa.Table:
    """At most max_rows rows, each stratum keeping its share (largest remainders), drawn with a fixed
    seed and kept in log order, so that a re-materialised day draws the same rows."""
    if max_rows is None or table.num_rows <= max_rows:
        return table
    strata = table.select(list(stratify_by)).to_pandas().astype("string").fillna("<null>")
    codes = strata.groupby(list(stratify_by), sort=True).ngroup().to_numpy()
    sizes = np.bincount(codes)
    exact = sizes * max_rows / table.num_rows
    quota = np.floor(exact).astype(np.int64)
    short = max_rows - int(quota.sum())
    quota[np.argsort(-(exact - quota), kind="stable")[:short]] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(codes == stratum), size=int(quota[stratum]), replace=False)
        for stratum in range(len(sizes))
    ]
    return table.take(pa.array(np.sort(np.concatenate(chosen))))


def build_snapshot(spec: ModelSpec, log: pa.Table, labels: pa.Table | None, key: bytes, source: str) -> pa.Table:
    """Keep features, score, decision, protected attributes and any labels that have arrived; every
    other column of the log, declared PII among them, is left behind before anything is written."""
    required = list(LOG_COLUMNS) + list(spec.features) + [spec.score_column, spec.decision_column]
    required += list(spec.protected_attributes)
    missing = [c for c in required if c not in log.column_names]
    if missing:
        raise BadInputError(f"{source}: inference log lacks column(s) {', '.join(missing)} declared for {spec.name}")
    strata_missing = [c for c in spec.sampling.stratify_by if c not in log.column_names]
    if strata_missing:
        raise BadInputError(
            f"{source}: sampling.stratify_by names column(s) {', '.join(strata_missing)} not in the log"
        )
    log = stratified_sample(log, spec.sampling.max_rows, spec.sampling.stratify_by, spec.sampling.seed)
    for version in pc.unique(log.column("model_version")).to_pylist():
        validate_model_version(version, f"{source}: column model_version")
    score = log.column(spec.score_column)
    if not pa.types.is_floating(score.type) and not pa.types.is_integer(score.type):
        raise BadInputError(f"{source}: score column {spec.score_column} has type {score.type}, expected a number")

    request_ids = [str(v) for v in log.column("request_id").to_pylist()]
    label_values: list = [None] * log.num_rows
    if labels is not None and spec.label_column:
        if "request_id" not in labels.column_names or "label" not in labels.column_names:
            raise BadInputError(f"labels for {spec.name}: expected columns request_id and label")
        by_id = dict(
            zip(
                (str(v) for v in labels.column("request_id").to_pylist()),
                labels.column("label").to_pylist(),
                strict=False,
            )
        )
        label_values = [by_id.get(rid) for rid in request_ids]

    columns = {
        "request_id": pa.array(pseudonymise(request_ids, key), pa.string()),
        "timestamp": log.column("timestamp"),
        "model_version": log.column("model_version").cast(pa.string()),
    }
    for feature in spec.features:
        columns[feature] = log.column(feature)
    columns["score"] = score.cast(pa.float64())
    columns["decision"] = log.column(spec.decision_column).cast(pa.int64())
    for attr in spec.protected_attributes:
        columns[PROTECTED_PREFIX + attr] = log.column(attr).cast(pa.string())
    columns["label"] = pa.array(label_values, pa.int64())
    return pa.table(columns)
