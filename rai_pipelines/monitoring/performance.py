"""Model performance once labels have arrived: ranking (ROC AUC), decisions (accuracy) and
calibration (Brier score, expected calibration error over ten equal-width score bins)."""

from __future__ import annotations

import numpy as np

from rai_pipelines.core.errors import BadInputError

CALIBRATION_BINS = 10


def expected_calibration_error(outcome: np.ndarray, score: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Mean gap between predicted and observed rates, weighted by the share of rows in each bin."""
    index = np.clip((score * bins).astype(np.int64), 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    gap = np.abs(
        np.bincount(index, weights=score, minlength=bins) - np.bincount(index, weights=outcome, minlength=bins)
    )
    return float(gap.sum() / count.sum())


def performance(labels: np.ndarray, score: np.ndarray, decision: np.ndarray, favourable: int) -> dict:
    """Metrics of the labelled rows; the score is read as the probability of the favourable outcome."""
    outcome = (labels == favourable).astype(np.float64)
    result = {
        "labelled_rows": int(len(labels)),
        "roc_auc": None,
        "accuracy": None,
        "brier_score": None,
        "expected_calibration_error": None,
        "favourable_label_rate": None,
        "note": "",
    }
    if len(labels) == 0:
        result["note"] = "no labels yet"
        return result
    if np.any((score < 0) | (score > 1)):
        raise BadInputError(
            f"performance: {int(np.sum((score < 0) | (score > 1)))} score(s) outside [0, 1]; the score column is read "
            "as a probability for calibration"
        )
    result.update(
        accuracy=float(np.mean(decision == labels)),
        brier_score=float(np.mean((score - outcome) ** 2)),
        expected_calibration_error=expected_calibration_error(outcome, score),
        favourable_label_rate=float(outcome.mean()),
    )
    from sklearn.metrics import roc_auc_score

    if outcome.min() == outcome.max():
        result["note"] = "labels of one outcome only: ROC AUC not defined"
    else:
        result["roc_auc"] = float(roc_auc_score(outcome, score))
    return result
