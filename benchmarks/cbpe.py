"""Performance before the labels arrive: the estimated ROC AUC and accuracy per chunk of the
car-loan analysis period against NannyML 0.13's CBPE on the same data (target: at most 0.01 apart),
and against the realised figures once the labels are joined.

    .venv/bin/python benchmarks/cbpe.py [--chunk-size 5000]

The data is NannyML's car-loan set (the demo's): the estimator is fitted on the labelled 50,000-row
reference (isotonic calibration when it lowers the held-out calibration error, as NannyML decides)
and estimates the 50,000-row analysis period in chunks of 5,000 rows in file order; NannyML runs in its
own virtual environment (benchmarks/peers.py) on the same files and chunks. The analysis period's
change (from row 25,000) lowers the realised ROC AUC; the estimate sees the covariate part of it. The
last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peers import NANNYML_REQUIREMENTS, PEERS_DIR, peer_python, run_peer  # noqa: E402

from rai_pipelines.monitoring.estimated_performance import Calibration, estimate  # noqa: E402
from rai_pipelines.settings import PROJECT_ROOT  # noqa: E402

DATA = PROJECT_ROOT / "rai_pipelines" / "demo" / "data" / "car_loan"
MAX_DIFF = 0.01


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunk-size", type=int, default=5_000)
    args = parser.parse_args()
    from sklearn.metrics import roc_auc_score

    reference = pd.read_parquet(DATA / "reference.parquet")
    analysis = pd.read_parquet(DATA / "analysis.parquet")
    labels = pd.read_parquet(DATA / "analysis_target.parquet")
    labelled = analysis.merge(labels, on="id", how="left", validate="one_to_one")
    calibration = Calibration.fit(reference["y_pred_proba"].to_numpy(float), reference["repaid"].to_numpy(float))

    python = peer_python("nannyml", NANNYML_REQUIREMENTS)
    peer = run_peer(
        python,
        PEERS_DIR / "nannyml_cbpe.py",
        "--reference",
        DATA / "reference.parquet",
        "--analysis",
        DATA / "analysis.parquet",
        "--chunk-size",
        str(args.chunk_size),
        timeout=1800,
    )
    rows, auc_gaps, accuracy_gaps = [], [], []
    for chunk in peer["chunks"]:
        part = labelled.iloc[chunk["start"] : chunk["end"]]
        ours = estimate(calibration, part["y_pred_proba"].to_numpy(float), part["y_pred"].to_numpy() == 1)
        realised_auc = float(roc_auc_score(part["repaid"], part["y_pred_proba"]))
        realised_accuracy = float(np.mean(part["y_pred"] == part["repaid"]))
        auc_gaps.append(abs(ours["estimated_roc_auc"] - chunk["roc_auc"]))  # unrounded
        accuracy_gaps.append(abs(ours["estimated_accuracy"] - chunk["accuracy"]))
        rows.append(
            {
                "start": chunk["start"],
                "estimated_roc_auc": round(ours["estimated_roc_auc"], 5),
                "nannyml_roc_auc": round(chunk["roc_auc"], 5),
                "realised_roc_auc": round(realised_auc, 5),
                "estimated_accuracy": round(ours["estimated_accuracy"], 5),
                "nannyml_accuracy": round(chunk["accuracy"], 5),
                "realised_accuracy": round(realised_accuracy, 5),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    auc_diff, accuracy_diff = max(auc_gaps), max(accuracy_gaps)
    figures = {
        "chunks": len(rows),
        "chunk_size": args.chunk_size,
        "nannyml_version": peer["nannyml_version"],
        "calibrated": calibration.applied,
        "nannyml_calibrated": peer["calibrated"],
        "max_abs_diff_vs_nannyml": float(f"{auc_diff:.3g}"),
        "max_abs_diff_vs_nannyml_accuracy": float(f"{accuracy_diff:.3g}"),
        "mae_vs_realised": round(
            float(np.mean([abs(r["estimated_roc_auc"] - r["realised_roc_auc"]) for r in rows])), 5
        ),
        "mae_vs_realised_accuracy": round(
            float(np.mean([abs(r["estimated_accuracy"] - r["realised_accuracy"]) for r in rows])), 5
        ),
    }
    figures["met"] = auc_diff <= MAX_DIFF
    print(json.dumps(figures))
    return 0 if figures["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
