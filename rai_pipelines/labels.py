"""Late labels: which days of a model's traffic a newly arrived labels file belongs to.

Labels arrive days after the predictions (a loan is repaid or not, a candidate is hired or not),
as files of request ids and outcomes. The days they belong to are found by looking the ids up in
the inference logs of the days before the file arrived, as far back as the model declares labels
can lag; a day is stale when its feature snapshot is older than a labels file that touches it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from rai_pipelines.errors import BadInputError
from rai_pipelines.registry import ModelSpec
from rai_pipelines.snapshots import read_inference_log


@dataclass(frozen=True)
class LabelArrival:
    model: str
    arrival: str  # the labels partition's date
    fingerprint: str
    rows: int
    days: dict[str, int] = field(default_factory=dict)  # traffic day -> labels matched on it
    unmatched: int = 0
    stale_days: list[str] = field(default_factory=list)  # days whose snapshot predates the labels


def label_partitions(lake, spec: ModelSpec) -> list[dict[str, str]]:
    return [p for p in lake.list_partitions("labels", {"model": spec.name}) if "date" in p]


def match_labels(lake, spec: ModelSpec, partition: dict[str, str]) -> LabelArrival:
    uri = lake.uri("labels", partition)
    labels = lake.read_table("labels", partition)
    if "request_id" not in labels.column_names or "label" not in labels.column_names:
        raise BadInputError(f"{uri}: a labels file needs the columns request_id and label")
    ids = labels.column("request_id").cast(pa.string())
    arrival = date.fromisoformat(partition["date"])
    found = pa.array([False] * labels.num_rows)
    days: dict[str, int] = {}
    for back in range(spec.label_max_delay_days + 1):
        day = (arrival - timedelta(days=back)).isoformat()
        log_partition = {"model": spec.name, "date": day}
        log = read_inference_log(lake, log_partition, columns=["request_id"])
        if log is None:
            continue
        served = log[0].column("request_id")
        hit = pc.is_in(ids, value_set=served.cast(pa.string()).combine_chunks())
        matched = pc.sum(pc.and_(hit, pc.invert(found))).as_py() or 0
        if matched:
            days[day] = matched
            found = pc.or_(found, hit)
    snapshot_stale = []
    label_time = lake.modified_ns("labels", partition)
    for day in sorted(days):
        built = lake.modified_ns("feature_snapshots", {"model": spec.name, "date": day})
        if built is not None and built < label_time:
            snapshot_stale.append(day)
    return LabelArrival(
        model=spec.name,
        arrival=partition["date"],
        fingerprint=lake.fingerprint("labels", partition) or "",
        rows=labels.num_rows,
        days=dict(sorted(days.items())),
        unmatched=labels.num_rows - (pc.sum(found).as_py() or 0),
        stale_days=snapshot_stale,
    )
