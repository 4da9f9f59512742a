"""Late labels: reading them, and finding the days of traffic they belong to.

Labels arrive days after the predictions (a loan is repaid or not, a candidate is hired or not),
as files of request ids and outcomes under `labels/model=<name>/date=<arrival>/`. A day's snapshot
reads the files that arrived within the model's label delay after it, and records which versions of
them it read (size and modification time). A day is stale when a labels file that holds some of its
requests is not the version its snapshot read; the days a file belongs to are found by looking its
ids up in the inference logs of the days before it arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from rai_pipelines.core import datasets
from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.registry import ModelSpec
from rai_pipelines.monitoring.snapshots import read_inference_log

LABELS_READ = "labels_read.json"  # beside each snapshot: {arrival date: fingerprint} of the files read


@dataclass(frozen=True)
class LabelArrival:
    model: str
    arrival: str  # the labels partition's date
    fingerprint: str
    rows: int
    days: dict[str, int] = field(default_factory=dict)  # traffic day -> labels matched on it
    unmatched: int = 0


def label_partitions(lake, spec: ModelSpec) -> list[dict[str, str]]:
    return [p for p in lake.list_partitions("labels", {"model": spec.name}) if "date" in p]


def read_label_file(lake, partition: dict[str, str]) -> pa.Table:
    """One labels file as (request_id: string, label: int64), or an error naming the file."""
    uri = lake.uri("labels", partition)
    try:
        table = lake.read_table("labels", partition)
    except pa.ArrowException as exc:
        raise BadInputError(f"{uri}: not a readable Parquet file: {exc}") from exc
    if "request_id" not in table.column_names or "label" not in table.column_names:
        raise BadInputError(f"{uri}: a labels file needs the columns request_id and label")
    try:
        label = table.column("label").cast(pa.int64())  # safe cast: 1.0 and True are 1, 0.5 is refused
    except pa.ArrowException as exc:
        raise BadInputError(f"{uri}: column label must hold whole numbers (the outcome codes): {exc}") from exc
    return pa.table({"request_id": table.column("request_id").cast(pa.string()), "label": label})


def labels_for_day(lake, spec: ModelSpec, day: str) -> tuple[pa.Table | None, dict[str, str]]:
    """The labels that can belong to `day`'s traffic (files that arrived from that day up to the
    declared delay after it), and the fingerprint of each file read, taken before reading it."""
    first = date.fromisoformat(day)
    last = (first + timedelta(days=spec.label_max_delay_days)).isoformat()
    tables, read = [], {}
    for partition in label_partitions(lake, spec):
        if not day <= partition["date"] <= last:
            continue
        read[partition["date"]] = lake.fingerprint("labels", partition)
        tables.append(read_label_file(lake, partition))
    return (pa.concat_tables(tables) if tables else None), read


def match_labels(lake, spec: ModelSpec, partition: dict[str, str]) -> LabelArrival:
    fingerprint = lake.fingerprint("labels", partition) or ""
    labels = read_label_file(lake, partition)
    ids = labels.column("request_id")
    arrival = date.fromisoformat(partition["date"])
    found = pa.array([False] * labels.num_rows)
    days: dict[str, int] = {}
    for back in range(spec.label_max_delay_days + 1):
        day = (arrival - timedelta(days=back)).isoformat()
        log = read_inference_log(lake, {"model": spec.name, "date": day}, columns=["request_id"])
        if log is None:
            continue
        served = log[0].column("request_id").cast(pa.string()).combine_chunks()
        hit = pc.is_in(ids, value_set=served)
        matched = pc.sum(pc.and_(hit, pc.invert(found))).as_py() or 0
        if matched:
            days[day] = matched
            found = pc.or_(found, hit)
    return LabelArrival(
        model=spec.name,
        arrival=partition["date"],
        fingerprint=fingerprint,
        rows=labels.num_rows,
        days=dict(sorted(days.items())),
        unmatched=labels.num_rows - (pc.sum(found).as_py() or 0),
    )


def labels_read(lake, spec: ModelSpec, day: str) -> dict[str, str] | None:
    """What the day's snapshot recorded it read; None when the day has no snapshot."""
    partition = {"model": spec.name, "date": day}
    if not lake.exists(datasets.FEATURE_SNAPSHOTS, partition):
        return None
    if not lake.exists(datasets.FEATURE_SNAPSHOTS, partition, LABELS_READ):
        return {}
    return lake.read_json(datasets.FEATURE_SNAPSHOTS, partition, LABELS_READ)
