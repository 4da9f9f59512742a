"""Evidently's DataDriftPreset on two Parquet files; run with the peer venv's python (see benchmarks/peers.py).

    python evidently_drift.py --reference ref.parquet --current cur.parquet --numeric a,b,c --categorical x,y

Only the report computation is timed (time.perf_counter): wrapping the two DataFrames in Evidently
Datasets with the column types, and Report([DataDriftPreset()]).run(current, reference). Neither the
imports nor the Parquet reads nor the read-out of the results count. Evidently picks each column's
test itself (over 1,000 rows: normed Wasserstein distance for numerical columns, Jensen-Shannon
distance for categorical ones, both with threshold 0.1). The last stdout line is one JSON object:
{"seconds": ..., "evidently_version": "...", "drifted_columns": N, "columns": M}.
"""

from __future__ import annotations

import argparse
import json
import time

import evidently
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

DRIFTED_COLUMNS_COUNT = "evidently:metric_v2:DriftedColumnsCount"
VALUE_DRIFT = "evidently:metric_v2:ValueDrift"


def column_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="Parquet file of the reference data")
    parser.add_argument("--current", required=True, help="Parquet file of the current data")
    parser.add_argument("--numeric", type=column_list, default=[], help="numerical columns, comma-separated")
    parser.add_argument("--categorical", type=column_list, default=[], help="categorical columns, comma-separated")
    args = parser.parse_args()
    columns = args.numeric + args.categorical
    if not columns:
        parser.error("give at least one column with --numeric or --categorical")

    reference = pd.read_parquet(args.reference, columns=columns)
    current = pd.read_parquet(args.current, columns=columns)

    started = time.perf_counter()
    definition = DataDefinition(numerical_columns=args.numeric, categorical_columns=args.categorical)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    seconds = time.perf_counter() - started

    metrics = snapshot.dict()["metrics"]
    counts = [m["value"] for m in metrics if m["config"]["type"] == DRIFTED_COLUMNS_COUNT]
    checked = [m for m in metrics if m["config"]["type"] == VALUE_DRIFT]
    if len(counts) != 1:
        raise SystemExit(f"expected one DriftedColumnsCount metric in the snapshot, found {len(counts)}")
    result = {
        "seconds": round(seconds, 4),
        "evidently_version": evidently.__version__,
        "drifted_columns": int(counts[0]["count"]),
        "columns": len(checked),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
