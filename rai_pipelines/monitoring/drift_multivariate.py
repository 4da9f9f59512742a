"""Multivariate drift that per-feature tests miss (a changed relation between features): a domain
classifier learns to tell the reference's rows from the current window's."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.monitoring.drift import as_levels, check_complete


@dataclass(frozen=True)
class ClassifierDriftResult:
    """A domain classifier told reference rows from current rows this well (out-of-fold ROC AUC);
    0.5 means it could not. The p-value is the Mann-Whitney test of that AUC against 0.5."""

    auc: float
    p_value: float
    drifted: bool
    reference_rows: int
    current_rows: int
    min_auc: float


def classifier_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    p_value: float = 0.05,
    min_auc: float = 0.55,
    max_rows: int = 10_000,
    folds: int = 5,
    seed: int = 0,
    optional: Collection[str] = (),
) -> ClassifierDriftResult:
    """Multivariate drift that per-feature tests miss (a changed relation between features): a
    gradient-boosted classifier (scikit-learn) learns to tell the windows apart, cross-validated."""
    from scipy.stats import mannwhitneyu
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    columns = list(numeric) + list(categorical)
    # Gradient boosting learns from a missing value (a shift in missingness is drift it may find).
    check_complete(reference, columns, "reference", optional)
    check_complete(current, columns, "current", optional)
    rng = np.random.default_rng(seed)

    def sample(frame: pd.DataFrame) -> pd.DataFrame:
        if len(frame) <= max_rows:
            return frame
        return frame.iloc[np.sort(rng.choice(len(frame), size=max_rows, replace=False))]

    ref, cur = sample(reference), sample(current)
    if min(len(ref), len(cur)) < folds * 2:
        raise BadInputError(f"drift: classifier drift needs at least {folds * 2} rows in each window")
    features = {}
    for column in numeric:
        features[column] = np.concatenate(
            [ref[column].to_numpy(np.float64, na_value=np.nan), cur[column].to_numpy(np.float64, na_value=np.nan)]
        )
    for column in categorical:
        levels = pd.concat([as_levels(ref[column]), as_levels(cur[column])], ignore_index=True)
        codes = pd.Categorical(levels).codes.astype(np.float64)
        features[column] = np.where(codes < 0, np.nan, codes)  # a missing level is NaN, not a category -1
    x = pd.DataFrame(features)
    y = np.concatenate([np.zeros(len(ref), dtype=np.int64), np.ones(len(cur), dtype=np.int64)])
    model = HistGradientBoostingClassifier(
        max_iter=100, categorical_features=[c in categorical for c in columns], random_state=seed
    )
    from threadpoolctl import threadpool_limits

    # One thread: Dagster runs steps in parallel processes, and OpenMP threads on top of them
    # oversubscribe the cores (1.9 s on one thread against 90 s contended, measured here).
    with threadpool_limits(limits=1):
        probability = cross_val_predict(
            model, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed), method="predict_proba"
        )[:, 1]
    auc = float(roc_auc_score(y, probability))
    p = float(mannwhitneyu(probability[y == 1], probability[y == 0], alternative="greater").pvalue)
    return ClassifierDriftResult(auc, p, bool(p < p_value and auc >= min_auc), len(ref), len(cur), min_auc)
