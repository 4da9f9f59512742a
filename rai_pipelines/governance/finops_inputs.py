"""What the allocation splits shared cost by, per model version and day: its inferences (every
request of the day's inference log), the CPU request core-hours and GPU-hours its declared serving
resources held for the hours it served, and the tokens it read and wrote where the log carries them
(LLM serving). A model without a log for the day has unknown usage: its cost per inference stays
unknown, never zero or infinite."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.registry import ModelSpec
from rai_pipelines.costs.allocation import USAGE_SCHEMA
from rai_pipelines.costs.recommendations import InstanceShape
from rai_pipelines.governance.facts import serving_hours
from rai_pipelines.monitoring.lake_reads import model_partition, traffic_by_version
from rai_pipelines.monitoring.snapshots import read_inference_log

TOKEN_COLUMNS = ("input_tokens", "output_tokens")


def _tokens(store, spec: ModelSpec, day: str) -> dict[str, tuple[int | None, int | None]]:
    found = read_inference_log(store, model_partition(spec, day))
    if found is None:
        return {}
    log, uri = found
    present = [c for c in TOKEN_COLUMNS if c in log.column_names]
    if not present:
        return {}
    for column in present:
        values = log.column(column)
        if not pa.types.is_integer(values.type):
            raise BadInputError(f"{uri}: column {column} is {values.type}, expected whole token counts")
        if pc.any(pc.less(values, 0)).as_py():
            raise BadInputError(f"{uri}: column {column} has negative token counts")
    grouped = log.select(["model_version", *present]).group_by("model_version").aggregate([(c, "sum") for c in present])
    return {row["model_version"]: tuple(row.get(f"{c}_sum") for c in TOKEN_COLUMNS) for row in grouped.to_pylist()}


def day_usage(
    store, specs: list[ModelSpec], day: str, shapes: dict[str, list[InstanceShape]]
) -> tuple[pa.Table, list[str]]:
    """The usage table of the day (costs.allocation.USAGE_SCHEMA) and a note per model whose usage
    is unknown. `shapes` are the instance types declared per model for rightsizing: where the
    version's type is among them, its vCPUs give the CPU request core-hours (one replica a node)."""
    rows, notes = [], []
    for spec in specs:
        try:
            traffic = traffic_by_version(store, spec, day)
        except BadInputError as missing:
            notes.append(f"{spec.name}: usage unknown ({missing})")
            continue
        tokens = _tokens(store, spec, day)
        declared_shapes = {s.name: s for s in shapes.get(spec.name, [])}
        for version, (count, first, last) in sorted(traffic.items()):
            serving = spec.version(version).serving
            hours = serving_hours(first, last)
            shape = declared_shapes.get(serving.instance_type)
            gpus = serving.gpus or (shape.gpus if shape else 0)
            input_tokens, output_tokens = tokens.get(version, (None, None))
            rows.append(
                {
                    "date": date.fromisoformat(day),
                    "model_name": spec.name,
                    "model_version": version,
                    "inferences": int(count),
                    "cpu_request_core_hours": serving.replicas * shape.vcpu * hours if shape else None,
                    "gpu_hours": float(serving.replicas * gpus * hours),
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                }
            )
    return pa.Table.from_pylist(rows, schema=USAGE_SCHEMA), notes
