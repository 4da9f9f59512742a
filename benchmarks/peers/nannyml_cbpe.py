"""NannyML's CBPE on the car-loan data; run with the peer venv's python (see benchmarks/peers.py).

    python nannyml_cbpe.py --reference reference.parquet --analysis analysis.parquet --chunk-size 5000

Fits CBPE (ROC AUC and accuracy, isotonic calibration when it helps, NannyML's defaults) on the
reference and estimates the analysis period in chunks of --chunk-size rows, in file order. The last
stdout line is one JSON object: {"nannyml_version": ..., "chunks": [{"start": i, "end": j,
"roc_auc": ..., "accuracy": ...}, ...]}.
"""

from __future__ import annotations

import argparse
import json

import nannyml as nml
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reference", required=True)
    parser.add_argument("--analysis", required=True)
    parser.add_argument("--chunk-size", type=int, default=5000)
    args = parser.parse_args()
    reference = pd.read_parquet(args.reference)
    analysis = pd.read_parquet(args.analysis)
    estimator = nml.CBPE(
        y_pred_proba="y_pred_proba",
        y_pred="y_pred",
        y_true="repaid",
        problem_type="classification_binary",
        metrics=["roc_auc", "accuracy"],
        chunk_size=args.chunk_size,
    )
    estimator.fit(reference)
    frame = estimator.estimate(analysis).filter(period="analysis").to_df()
    chunks = [
        {
            "start": int(row[("chunk", "start_index")]),
            "end": int(row[("chunk", "end_index")]) + 1,
            "roc_auc": float(row[("roc_auc", "value")]),
            "accuracy": float(row[("accuracy", "value")]),
        }
        for _, row in frame.iterrows()
    ]
    print(
        json.dumps(
            {"nannyml_version": nml.__version__, "calibrated": bool(estimator.needs_calibration), "chunks": chunks}
        )
    )


if __name__ == "__main__":
    main()
