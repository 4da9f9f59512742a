"""Performance before the labels arrive: confidence-based performance estimation (CBPE, as NannyML
defines it). If the model's scores are calibrated probabilities, the expected number of true
positives among the rows above a threshold is the sum of their scores, so ROC AUC and accuracy can be
estimated from the scores alone. The scores are first calibrated on the labelled reference
(isotonic regression, scikit-learn), when that lowers the expected calibration error in held-out
folds of the reference (NannyML's rule: ten stratified 90/10 splits, equal-count bins); otherwise
they are used as they are. The estimate holds while the relation between features and outcome does
not change (covariate shift only): a concept shift is seen only once labels arrive, which is why
the realised figures are reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rai_pipelines.core.errors import BadInputError

SPLITS = 10
HOLDOUT = 0.1
ECE_BINS = 10


def _equal_count_ece(outcome: np.ndarray, score: np.ndarray, bins: int = ECE_BINS) -> float:
    order = np.argsort(score, kind="stable")
    score, outcome = score[order], outcome[order]
    bins = min(bins, len(score) // 2)
    width = len(score) // bins
    edges = np.arange(0, len(score) + 1, width)
    edges[-1] = len(score)
    total = 0.0
    for left, right in zip(edges[:-1], edges[1:], strict=True):
        total += (right - left) / len(score) * abs(score[left:right].mean() - outcome[left:right].mean())
    return float(total)


@dataclass
class Calibration:
    """The map from the model's scores to calibrated probabilities of the favourable outcome."""

    regressor: object | None  # sklearn IsotonicRegression, or None when the scores are kept as they are
    ece_before: float | None = None
    ece_after: float | None = None

    @property
    def applied(self) -> bool:
        return self.regressor is not None

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return scores if self.regressor is None else self.regressor.predict(scores)

    @classmethod
    def fit(cls, scores: np.ndarray, outcome: np.ndarray, seed: int = 42) -> Calibration:
        from sklearn.isotonic import IsotonicRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedShuffleSplit

        keep = ~np.isnan(scores) & ~np.isnan(outcome)
        scores, outcome = scores[keep], outcome[keep]
        if len(scores) < 2 * ECE_BINS * SPLITS or len(np.unique(outcome)) < 2:
            raise BadInputError(
                f"performance estimation: the reference needs labels of both outcomes on at least "
                f"{2 * ECE_BINS * SPLITS} scored rows; it has {len(scores)}"
            )
        if roc_auc_score(outcome, scores) > 0.999:
            return cls(None)
        held_out, calibrated, truth = [], [], []
        for train, test in StratifiedShuffleSplit(SPLITS, test_size=HOLDOUT, random_state=seed).split(scores, outcome):
            regressor = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(scores[train], outcome[train])
            held_out.append(scores[test])
            calibrated.append(regressor.predict(scores[test]))
            truth.append(outcome[test])
        truth = np.concatenate(truth)
        before = _equal_count_ece(truth, np.concatenate(held_out))
        after = _equal_count_ece(truth, np.concatenate(calibrated))
        if after >= before:
            return cls(None, before, after)
        return cls(IsotonicRegression(out_of_bounds="clip", increasing=True).fit(scores, outcome), before, after)


def estimated_roc_auc(calibrated: np.ndarray, scores: np.ndarray) -> float | None:
    """The ROC curve of expected counts: at each distinct score, from the highest, the expected true
    positives are the sum of the calibrated probabilities of the rows at or above it, the expected
    false positives the rest; the area by the trapezoid rule."""
    if len(scores) < 2:
        return None
    order = np.argsort(-scores, kind="stable")
    scores, calibrated = scores[order], calibrated[order]
    last_of_ties = np.r_[scores[1:] != scores[:-1], True]
    true_positives = np.cumsum(calibrated)[last_of_ties]
    false_positives = (np.arange(1, len(scores) + 1) - np.cumsum(calibrated))[last_of_ties]
    if true_positives[-1] <= 0 or false_positives[-1] <= 0:
        return None  # the calibrated scores expect one outcome only
    tpr = np.r_[0, true_positives / true_positives[-1]]
    fpr = np.r_[0, false_positives / false_positives[-1]]
    return float(np.trapezoid(tpr, fpr) if hasattr(np, "trapezoid") else np.trapz(tpr, fpr))


def estimated_accuracy(calibrated: np.ndarray, favoured: np.ndarray) -> float | None:
    """Expected share of right decisions: p for a favourable decision, 1 - p otherwise."""
    if len(calibrated) == 0:
        return None
    return float(np.mean(np.where(favoured, calibrated, 1 - calibrated)))


def estimate(calibration: Calibration, scores: np.ndarray, favoured: np.ndarray) -> dict:
    present = ~np.isnan(scores)
    calibrated = calibration(scores[present])
    return {
        "estimated_roc_auc": estimated_roc_auc(calibrated, scores[present]),
        "estimated_accuracy": estimated_accuracy(calibrated, favoured[present]),
        "calibrated": calibration.applied,
    }
