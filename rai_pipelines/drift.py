"""Data drift behind a small interface, so that alibi-detect (BSL 1.1) can be swapped out.

alibi-detect is imported inside the detector: its import costs about 3 s and 290 MB, which the
Dagster definitions must not pay at load time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from rai_pipelines.errors import BadInputError


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str  # "numeric" (Kolmogorov-Smirnov) or "categorical" (chi-squared)
    p_value: float
    statistic: float
    drifted: bool
    unseen_categories: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DriftResult:
    features: list[FeatureDrift]
    threshold: float  # per-feature p-value threshold after correction
    correction: str
    dataset_drift: bool
    prediction_p_value: float | None
    prediction_drift: bool | None
    reference_rows: int
    current_rows: int

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    @property
    def drift_share(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0


class DriftDetector(Protocol):
    def detect(self, reference: pd.DataFrame, current: pd.DataFrame) -> DriftResult: ...


def _as_levels(series: pd.Series) -> pd.Series:
    """Category labels as text, the same whatever the storage type: a whole-number float column
    (an integer column that held a null on one day) gives "1", not "1.0"."""
    if pd.api.types.is_float_dtype(series) and (series.dropna() % 1 == 0).all():
        series = series.astype("Int64")
    return series.astype("string")


def _encode(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray, int, list[str]]:
    """Integer codes from the reference's levels; a level never seen in the reference gets its own
    code, so the chi-squared test sees it instead of dropping it."""
    reference, current = _as_levels(reference), _as_levels(current)
    levels = sorted(reference.dropna().unique())
    index = {level: i for i, level in enumerate(levels)}
    unseen = sorted(set(current.dropna().unique()) - set(levels))
    for level in unseen:
        index[level] = len(index)
    ref = reference.map(index).to_numpy(dtype=np.float64)
    cur = current.map(index).to_numpy(dtype=np.float64)
    return ref, cur, len(index), unseen


def _check_complete(frame: pd.DataFrame, columns: list[str], which: str) -> None:
    """Missing values would make KS return NaN (read as "no drift") or break chi-squared: refuse
    them, naming the feature, rather than report on them."""
    for column in columns:
        if column not in frame.columns:
            raise BadInputError(f"drift: the {which} window has no feature column {column}")
        missing = int(frame[column].isna().sum())
        if missing:
            raise BadInputError(
                f"drift: feature {column} has {missing} missing value(s) of {len(frame)} in the {which} window; "
                "drift is not computed on incomplete data"
            )


class AlibiTabularDrift:
    """alibi-detect TabularDrift (KS for numeric, chi-squared for categorical features, with
    Bonferroni or FDR correction) plus KS on the model score for prediction drift."""

    def __init__(
        self, numeric: list[str], categorical: list[str], p_value: float = 0.05, correction: str = "bonferroni"
    ):
        if correction not in ("bonferroni", "fdr"):
            raise ValueError(f"drift correction must be 'bonferroni' or 'fdr', not {correction!r}")
        self.numeric, self.categorical = list(numeric), list(categorical)
        self.p_value, self.correction = p_value, correction

    def detect(self, reference: pd.DataFrame, current: pd.DataFrame, score_column: str | None = "score") -> DriftResult:
        from alibi_detect.cd import KSDrift, TabularDrift

        columns = self.numeric + self.categorical
        _check_complete(reference, columns, "reference")
        _check_complete(current, columns, "current")
        if len(current) == 0:
            raise BadInputError("drift: the current window is empty")
        ref_cols, cur_cols, categories, unseen = [], [], {}, {}
        for i, col in enumerate(columns):
            if col in self.categorical:
                r, c, n_levels, new = _encode(reference[col], current[col])
                categories[i] = n_levels
                unseen[col] = new
            else:
                r = reference[col].to_numpy(dtype=np.float64)
                c = current[col].to_numpy(dtype=np.float64)
            ref_cols.append(r)
            cur_cols.append(c)
        x_ref = np.column_stack(ref_cols).astype(np.float32)
        x_cur = np.column_stack(cur_cols).astype(np.float32)
        detector = TabularDrift(
            x_ref, p_val=self.p_value, categories_per_feature=categories, correction=self.correction
        )
        out = detector.predict(x_cur, drift_type="batch", return_p_val=True, return_distance=True)["data"]
        p_values, distances, threshold = out["p_val"], out["distance"], float(out["threshold"])
        if not np.all(np.isfinite(p_values)):
            bad = [columns[i] for i in np.flatnonzero(~np.isfinite(p_values))]
            raise BadInputError(f"drift: no valid p-value for feature(s) {', '.join(bad)}")
        features = [
            FeatureDrift(
                feature=col,
                kind="categorical" if col in self.categorical else "numeric",
                p_value=float(p_values[i]),
                statistic=float(distances[i]),
                drifted=bool(p_values[i] < threshold),
                unseen_categories=unseen.get(col, []),
            )
            for i, col in enumerate(columns)
        ]
        prediction_p, prediction_drift = None, None
        if score_column and score_column in reference and score_column in current:
            ks = KSDrift(reference[score_column].to_numpy(dtype=np.float32), p_val=self.p_value)
            pred = ks.predict(current[score_column].to_numpy(dtype=np.float32), return_p_val=True)["data"]
            prediction_p = float(np.atleast_1d(pred["p_val"])[0])
            prediction_drift = bool(pred["is_drift"])
        return DriftResult(
            features=features,
            threshold=threshold,
            correction=self.correction,
            dataset_drift=bool(out["is_drift"]),
            prediction_p_value=prediction_p,
            prediction_drift=prediction_drift,
            reference_rows=len(reference),
            current_rows=len(current),
        )
