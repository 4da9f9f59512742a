"""Data and prediction drift behind one interface, with an effect size beside every p-value.

Two backends give the same tests (two-sided Kolmogorov-Smirnov for numeric features, chi-squared
on the contingency table for categorical ones, Bonferroni or Benjamini-Hochberg correction):

- ``columnar`` (default): NumPy and SciPy on columns. The reference is profiled once (sorted numeric
  columns, category counts), so a day's report sorts only the day's data. Its p-values equal
  scipy's ``ks_2samp(method="asymp")`` and ``chi2_contingency``, which is what alibi-detect calls.
- ``alibi-detect``: alibi-detect's TabularDrift and KSDrift (BSL 1.1 licence). It is imported inside
  the detector: its import costs about 3 s and 290 MB, which the Dagster definitions must not pay
  (SciPy is imported where it is used for the same reason).

A p-value alone raises alarms on trivial shifts in large samples, so a feature is reported as
drifted only when its test is significant after correction *and* its effect size reaches
``min_effect_size``: the Wasserstein distance divided by the reference's standard deviation for
numeric features, the Jensen-Shannon distance (base 2, in [0, 1]) for categorical ones. The
population stability index is reported beside both, for those used to reading it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rai_pipelines.core.errors import BadInputError

BACKENDS = ("columnar", "alibi-detect")
CORRECTIONS = ("bonferroni", "fdr")
PSI_BINS = 10
_PSI_FLOOR = 1e-4  # share given to an empty bin, so that PSI stays finite


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str  # "numeric" (Kolmogorov-Smirnov) or "categorical" (chi-squared)
    p_value: float
    statistic: float  # KS D or chi-squared statistic
    effect_size: float
    effect_metric: str  # "wasserstein_normed" or "jensen_shannon"
    psi: float
    significant: bool  # p-value below the corrected threshold
    drifted: bool  # significant and effect_size >= min_effect_size
    unseen_categories: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DriftResult:
    features: list[FeatureDrift]
    threshold: float  # per-feature p-value threshold after correction
    correction: str
    min_effect_size: float
    dataset_drift: bool
    prediction_p_value: float | None
    prediction_effect_size: float | None
    prediction_drift: bool | None
    reference_rows: int
    current_rows: int
    backend: str

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    @property
    def drift_share(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def max_effect_size(self) -> float:
        return max((f.effect_size for f in self.features), default=0.0)


# -- the statistics ---------------------------------------------------------------------------------
def corrected_threshold(p_values: np.ndarray, p_value: float, correction: str) -> float:
    """The per-feature threshold (a p-value below it is significant). FDR is Benjamini-Hochberg with
    alibi-detect's strict inequality; when no p-value passes, nothing can, and the threshold is 0."""
    n = len(p_values)
    if n == 0:
        return p_value
    if correction == "bonferroni":
        return p_value / n
    steps = p_value * np.arange(1, n + 1) / n
    passing = np.flatnonzero(np.sort(p_values) < steps)
    return float(steps[passing.max()]) if len(passing) else 0.0


def ks_wasserstein(reference_sorted: np.ndarray, current_sorted: np.ndarray) -> tuple[float, float, float]:
    """Two-sided two-sample KS statistic, its asymptotic p-value (as scipy's ks_2samp with
    method="asymp") and the first Wasserstein distance, from one merge of the sorted samples."""
    n1, n2 = len(reference_sorted), len(current_sorted)
    merged = np.concatenate([reference_sorted, current_sorted])
    # two sorted runs: timsort merges them in linear time (any sort gives the same counts at the
    # end of each run of ties, so mutating the kind is an equivalent mutant)
    order = np.argsort(merged, kind="stable")  # pragma: no mutate
    merged = merged[order]
    last_of_ties = np.empty(len(merged), dtype=bool)
    np.not_equal(merged[1:], merged[:-1], out=last_of_ties[:-1])
    last_of_ties[-1] = True
    # Both empirical CDFs at the end of each run of equal values: the reference's from the count of
    # its values seen so far, the current's from the rest.
    ref_seen = np.cumsum(order < n1)[last_of_ties]
    seen = np.flatnonzero(last_of_ties) + 1
    gap = ref_seen / n1 - (seen - ref_seen) / n2
    d = float(max(gap.max(), -gap.min(), 0.0))  # pragma: no mutate (the last gap is 0: d >= 0 anyway)
    values = merged[last_of_ties]
    wasserstein = float(np.dot(np.abs(gap[:-1]), np.diff(values)))
    from scipy import stats

    m, n = sorted([float(n1), float(n2)], reverse=True)  # pragma: no mutate (m*n/(m+n) is symmetric)
    p = float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0.0, 1.0))  # pragma: no mutate (sf in [0, 1])
    return d, p, wasserstein


def psi(reference_share: np.ndarray, current_share: np.ndarray) -> float:
    ref = np.maximum(reference_share, _PSI_FLOOR)
    cur = np.maximum(current_share, _PSI_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def jensen_shannon(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    from scipy.spatial import distance

    return float(distance.jensenshannon(reference_counts, current_counts, base=2))


# -- the reference profile ------------------------------------------------------------------------------
def as_levels(series: pd.Series) -> pd.Series:
    """Category labels as text, the same whatever the storage type: a whole-number float column
    (an integer column that held a null on one day) gives "1", not "1.0"."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(series.cat.categories.dtype)
    if pd.api.types.is_float_dtype(series):
        # Value by value, so that 1.0 is "1" whichever other values the window holds.
        text = series.astype("string")
        whole = series.notna() & (series % 1 == 0)
        text[whole] = series[whole].astype("int64").astype("string")
        return text
    return series.astype("string")


def _level_counts(series: pd.Series) -> pd.Series:
    if isinstance(series.dtype, pd.CategoricalDtype):
        counts = series.value_counts(sort=False)
        counts.index = as_levels(pd.Series(counts.index)).to_numpy()
        return counts.groupby(level=0).sum()
    return as_levels(series).value_counts(sort=False)


def check_complete(frame: pd.DataFrame, columns: list[str], which: str) -> None:
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
        if pd.api.types.is_float_dtype(frame[column]):
            infinite = int(np.isinf(frame[column].to_numpy()).sum())
            if infinite:
                raise BadInputError(f"drift: feature {column} has {infinite} infinite value(s) in the {which} window")


@dataclass
class _NumericProfile:
    sorted_values: np.ndarray
    scale: float  # standard deviation, the unit of the normed Wasserstein distance
    bin_edges: np.ndarray  # inner decile edges, for PSI
    bin_share: np.ndarray


@dataclass
class _CategoricalProfile:
    counts: pd.Series  # level -> count


def _sorted_quantiles(sorted_values: np.ndarray, q: np.ndarray) -> np.ndarray:
    """np.quantile's default (linear) on values already sorted, without copying them again."""
    position = q * (len(sorted_values) - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, len(sorted_values) - 1)
    return sorted_values[below] + (position - below) * (sorted_values[above] - sorted_values[below])


def _numeric_bins(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    positions = np.searchsorted(sorted_values, edges, side="right")
    return np.diff(np.concatenate([[0], positions, [len(sorted_values)]])) / len(sorted_values)


class ReferenceProfile:
    """What the tests need of the reference window (sorted numeric columns, level counts),
    computed once per reference and storable, so a day's report does not sort the reference again."""

    FORMAT = 1

    def __init__(self, rows: int, numeric: dict[str, _NumericProfile], categorical: dict[str, _CategoricalProfile]):
        self.rows, self.numeric, self.categorical = rows, numeric, categorical

    @classmethod
    def from_frame(
        cls, reference: pd.DataFrame, numeric: list[str], categorical: list[str], score_column: str | None
    ) -> ReferenceProfile:
        check_complete(reference, numeric + categorical, "reference")
        if len(reference) == 0:
            raise BadInputError("drift: the reference window is empty")
        profiles = {}
        for column in numeric + ([score_column] if score_column and score_column in reference else []):
            values = np.sort(reference[column].to_numpy(dtype=np.float64))
            edges = np.unique(_sorted_quantiles(values, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
            profiles[column] = _NumericProfile(values, float(np.std(values)), edges, _numeric_bins(values, edges))
        levels = {c: _CategoricalProfile(_level_counts(reference[c])) for c in categorical}
        return cls(len(reference), profiles, levels)

    def to_bytes(self) -> bytes:
        arrays = {"format": np.array([self.FORMAT]), "rows": np.array([self.rows])}
        for i, (column, p) in enumerate(self.numeric.items()):
            arrays[f"n{i}_name"] = np.array([column])
            arrays[f"n{i}_values"], arrays[f"n{i}_edges"] = p.sorted_values, p.bin_edges
            arrays[f"n{i}_share"], arrays[f"n{i}_scale"] = p.bin_share, np.array([p.scale])
        for i, (column, p) in enumerate(self.categorical.items()):
            arrays[f"c{i}_name"] = np.array([column])
            arrays[f"c{i}_levels"] = p.counts.index.to_numpy(dtype=str)
            arrays[f"c{i}_counts"] = p.counts.to_numpy(dtype=np.int64)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> ReferenceProfile:
        with np.load(io.BytesIO(payload), allow_pickle=False) as data:
            if int(data["format"][0]) != cls.FORMAT:
                raise BadInputError(f"drift: reference profile format {int(data['format'][0])} is not {cls.FORMAT}")
            numeric, categorical, i = {}, {}, 0
            while f"n{i}_name" in data:
                numeric[str(data[f"n{i}_name"][0])] = _NumericProfile(
                    data[f"n{i}_values"], float(data[f"n{i}_scale"][0]), data[f"n{i}_edges"], data[f"n{i}_share"]
                )
                i += 1
            i = 0
            while f"c{i}_name" in data:
                counts = pd.Series(data[f"c{i}_counts"], index=data[f"c{i}_levels"].astype(object))
                categorical[str(data[f"c{i}_name"][0])] = _CategoricalProfile(counts)
                i += 1
            return cls(int(data["rows"][0]), numeric, categorical)


def numeric_drift(profile: _NumericProfile, current: np.ndarray) -> tuple[float, float, float, float]:
    """(KS D, p-value, normed Wasserstein, PSI) of one numeric column against its profile."""
    current = np.sort(current)
    d, p, wasserstein = ks_wasserstein(profile.sorted_values, current)
    scale = profile.scale if profile.scale > 0 else 1.0
    current_share = _numeric_bins(current, profile.bin_edges)
    return d, p, wasserstein / scale, psi(profile.bin_share, current_share)


def categorical_drift(profile: _CategoricalProfile, current: pd.Series) -> tuple[float, float, float, float, list]:
    """(chi-squared, p-value, Jensen-Shannon distance, PSI, unseen levels); a level never seen in
    the reference is a column of its own, so the test sees it instead of dropping it."""
    counts = _level_counts(current)
    levels = profile.counts.index.union(counts.index)
    ref = profile.counts.reindex(levels, fill_value=0).to_numpy(dtype=np.float64)
    cur = counts.reindex(levels, fill_value=0).to_numpy(dtype=np.float64)
    seen = (ref + cur) > 0  # a categorical dtype keeps levels no row has; they carry no evidence
    levels, ref, cur = levels[seen], ref[seen], cur[seen]
    unseen = sorted(str(v) for v in counts.index.difference(profile.counts.index))
    if len(levels) < 2:
        chi2, p = 0.0, 1.0  # one level in both windows: nothing can have moved
    else:
        from scipy import stats

        chi2, p, _, _ = stats.chi2_contingency(np.vstack([ref, cur]))
    return float(chi2), float(p), jensen_shannon(ref, cur), psi(ref / ref.sum(), cur / cur.sum()), unseen


# -- the detectors ------------------------------------------------------------------------------------
class DriftDetector:
    """The interface every backend implements: `detect` against a reference frame or its stored
    profile; a backend supplies the per-feature p-values and statistics."""

    backend = ""

    def __init__(
        self,
        numeric: list[str],
        categorical: list[str],
        p_value: float = 0.05,
        correction: str = "bonferroni",
        min_effect_size: float = 0.1,
    ):
        if correction not in CORRECTIONS:
            raise ValueError(f"drift correction must be 'bonferroni' or 'fdr', not {correction!r}")
        if not 0 < p_value < 1:
            raise ValueError(f"drift p_value must be in (0, 1), not {p_value}")
        if min_effect_size < 0:
            raise ValueError(f"drift min_effect_size must be >= 0, not {min_effect_size}")
        self.numeric, self.categorical = list(numeric), list(categorical)
        self.p_value, self.correction, self.min_effect_size = p_value, correction, min_effect_size
        self._profile: tuple[int, ReferenceProfile] | None = None

    def profile(self, reference: pd.DataFrame, score_column: str | None) -> ReferenceProfile:
        """The reference profile, kept while the same reference frame is passed again (one report
        runs the detector once per model version against one reference)."""
        if self._profile is None or self._profile[0] != id(reference):
            self._profile = (
                id(reference),
                ReferenceProfile.from_frame(reference, self.numeric, self.categorical, score_column),
            )
        return self._profile[1]

    def _p_values_and_statistics(
        self, reference: pd.DataFrame, current: pd.DataFrame, profile: ReferenceProfile, raw: dict
    ) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def detect(
        self,
        reference: pd.DataFrame | None,
        current: pd.DataFrame,
        score_column: str | None = "score",
        profile: ReferenceProfile | None = None,
    ) -> DriftResult:
        """Compare `current` with the reference, given as a frame, or as its stored profile (the
        columnar backend needs no more; alibi-detect needs the frame)."""
        columns = self.numeric + self.categorical
        if profile is None:
            if reference is None:
                raise ValueError("drift: give the reference frame or its profile")
            profile = self.profile(reference, score_column)
        missing = [c for c in columns if c not in profile.numeric and c not in profile.categorical]
        if missing:
            raise BadInputError(f"drift: the reference profile has no column(s) {', '.join(missing)}")
        check_complete(current, columns, "current")
        if len(current) == 0:
            raise BadInputError("drift: the current window is empty")
        raw = {}
        for column in self.numeric:
            raw[column] = numeric_drift(profile.numeric[column], current[column].to_numpy(dtype=np.float64))
        for column in self.categorical:
            raw[column] = categorical_drift(profile.categorical[column], current[column])
        p_values, statistics = self._p_values_and_statistics(reference, current, profile, raw)
        if not np.all(np.isfinite(p_values)):
            bad = [columns[i] for i in np.flatnonzero(~np.isfinite(p_values))]
            raise BadInputError(f"drift: no valid p-value for feature(s) {', '.join(bad)}")
        threshold = corrected_threshold(p_values, self.p_value, self.correction)
        features = []
        for i, column in enumerate(columns):
            numeric = column in profile.numeric and column not in self.categorical
            effect, psi_value = raw[column][2], raw[column][3]
            significant = bool(p_values[i] < threshold)
            features.append(
                FeatureDrift(
                    feature=column,
                    kind="numeric" if numeric else "categorical",
                    p_value=float(p_values[i]),
                    statistic=float(statistics[i]),
                    effect_size=float(effect),
                    effect_metric="wasserstein_normed" if numeric else "jensen_shannon",
                    psi=float(psi_value),
                    significant=significant,
                    drifted=significant and effect >= self.min_effect_size,
                    unseen_categories=[] if numeric else raw[column][4],
                )
            )
        prediction_p = prediction_effect = prediction_drift = None
        if score_column and score_column in profile.numeric and score_column in current:
            _, prediction_p, prediction_effect, _ = numeric_drift(
                profile.numeric[score_column], current[score_column].to_numpy(dtype=np.float64)
            )
            prediction_drift = bool(prediction_p < self.p_value and prediction_effect >= self.min_effect_size)
        return DriftResult(
            features=features,
            threshold=threshold,
            correction=self.correction,
            min_effect_size=self.min_effect_size,
            dataset_drift=any(f.drifted for f in features),
            prediction_p_value=prediction_p,
            prediction_effect_size=prediction_effect,
            prediction_drift=prediction_drift,
            reference_rows=profile.rows,
            current_rows=len(current),
            backend=self.backend,
        )


class ColumnarDrift(DriftDetector):
    backend = "columnar"

    def _p_values_and_statistics(self, reference, current, profile, raw):
        columns = self.numeric + self.categorical
        return np.array([raw[c][1] for c in columns]), np.array([raw[c][0] for c in columns])


class AlibiTabularDrift(DriftDetector):
    """alibi-detect's TabularDrift for the per-feature tests; effect sizes as in the columnar backend."""

    backend = "alibi-detect"

    def _p_values_and_statistics(self, reference, current, profile, raw):
        from alibi_detect.cd import TabularDrift

        if reference is None:
            raise ValueError("drift: the alibi-detect backend needs the reference frame, not only its profile")

        ref_cols, cur_cols, categories = [], [], {}
        for i, column in enumerate(self.numeric + self.categorical):
            if column in self.categorical:
                levels = as_levels(reference[column])
                index = {level: code for code, level in enumerate(sorted(levels.unique()))}
                for level in raw[column][4]:  # unseen levels get codes of their own
                    index[level] = len(index)
                categories[i] = len(index)
                ref_cols.append(levels.map(index).to_numpy(dtype=np.float64))
                cur_cols.append(as_levels(current[column]).map(index).to_numpy(dtype=np.float64))
            else:
                ref_cols.append(reference[column].to_numpy(dtype=np.float64))
                cur_cols.append(current[column].to_numpy(dtype=np.float64))
        detector = TabularDrift(
            np.column_stack(ref_cols), p_val=self.p_value, categories_per_feature=categories, correction=self.correction
        )
        out = detector.predict(np.column_stack(cur_cols), drift_type="batch", return_p_val=True, return_distance=True)
        return out["data"]["p_val"].astype(np.float64), out["data"]["distance"].astype(np.float64)


def make_detector(
    backend: str,
    numeric: list[str],
    categorical: list[str],
    p_value: float = 0.05,
    correction: str = "bonferroni",
    min_effect_size: float = 0.1,
) -> DriftDetector:
    detectors = {"columnar": ColumnarDrift, "alibi-detect": AlibiTabularDrift}
    if backend not in detectors:
        raise ValueError(f"drift backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    return detectors[backend](numeric, categorical, p_value, correction, min_effect_size)


# -- multivariate drift ------------------------------------------------------------------------------
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
) -> ClassifierDriftResult:
    """Multivariate drift that per-feature tests miss (a changed relation between features): a
    gradient-boosted classifier (scikit-learn) learns to tell the windows apart, cross-validated."""
    from scipy.stats import mannwhitneyu
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    columns = list(numeric) + list(categorical)
    check_complete(reference, columns, "reference")
    check_complete(current, columns, "current")
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
        features[column] = np.concatenate([ref[column].to_numpy(np.float64), cur[column].to_numpy(np.float64)])
    for column in categorical:
        levels = pd.concat([as_levels(ref[column]), as_levels(cur[column])], ignore_index=True)
        features[column] = pd.Categorical(levels).codes.astype(np.float64)
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
