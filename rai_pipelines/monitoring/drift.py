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
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.monitoring.drift_floor import EffectFloors

BACKENDS = ("columnar", "alibi-detect")
CORRECTIONS = ("bonferroni", "fdr")
PSI_BINS = 10
_PSI_FLOOR = 1e-4  # share given to an empty bin, so that PSI stays finite


MISSINGNESS = "missingness"


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str  # "numeric" (Kolmogorov-Smirnov), "categorical" (chi-squared) or "missingness" (its missing share)
    p_value: float
    statistic: float  # KS D or chi-squared statistic
    effect_size: float
    effect_metric: str  # "wasserstein_normed" or "jensen_shannon"
    psi: float
    significant: bool  # p-value below the corrected threshold
    drifted: bool  # significant and effect_size >= effect_floor
    unseen_categories: list[str] = field(default_factory=list)
    missing_share: float = 0.0  # of the current window's rows; the tests run on the values present
    reference_missing_share: float = 0.0
    effect_floor: float = 0.0  # min_effect_size, or more where the window is small (drift_floor)

    @property
    def name(self) -> str:
        return f"{self.feature} (missing share)" if self.kind == MISSINGNESS else self.feature


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
    prediction_note: str = ""  # why prediction drift was not computed, when it was not
    score_missing_share: float = 0.0
    prediction_effect_floor: float | None = None

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    @property
    def drift_share(self) -> float:
        """The share of the features whose values or missing share drifted."""
        features = {f.feature for f in self.features}
        drifted = {f.feature for f in self.features if f.drifted}
        return len(drifted) / len(features) if features else 0.0

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


def check_complete(frame: pd.DataFrame, columns: list[str], which: str, optional: Collection[str] = ()) -> None:
    """Every problem of the window at once, each naming its feature: a column that is not there, a
    missing value in a required feature, an optional feature with no value at all (nothing to test),
    an infinite value (it breaks every distance). Optional features are tested on the values present."""
    problems = []
    for column in columns:
        if column not in frame.columns:
            problems.append(f"no column {column}")
            continue
        missing = int(frame[column].isna().sum())
        if missing and column not in optional:
            problems.append(f"feature {column} has {missing} missing value(s) of {len(frame)} and is required")
        elif missing and missing == len(frame):
            problems.append(f"feature {column} has no value in {len(frame)} row(s)")
        if pd.api.types.is_float_dtype(frame[column]):
            infinite = int(np.isinf(frame[column].to_numpy(dtype=np.float64, na_value=np.nan)).sum())
            if infinite:
                problems.append(f"feature {column} has {infinite} infinite value(s)")
    if problems:
        raise BadInputError(f"drift: the {which} window: " + "; ".join(problems))


@dataclass
class _NumericProfile:
    sorted_values: np.ndarray  # the values present
    scale: float  # standard deviation, the unit of the normed Wasserstein distance
    bin_edges: np.ndarray  # inner decile edges, for PSI
    bin_share: np.ndarray
    missing: int = 0  # rows without a value

    @property
    def rows(self) -> int:
        return len(self.sorted_values) + self.missing


@dataclass
class _CategoricalProfile:
    counts: pd.Series  # level -> count
    missing: int = 0

    @property
    def rows(self) -> int:
        return int(self.counts.sum()) + self.missing


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

    FORMAT = 2

    def __init__(self, rows: int, numeric: dict[str, _NumericProfile], categorical: dict[str, _CategoricalProfile]):
        self.rows, self.numeric, self.categorical = rows, numeric, categorical

    @classmethod
    def from_frame(
        cls,
        reference: pd.DataFrame,
        numeric: list[str],
        categorical: list[str],
        score_column: str | None,
        optional: Collection[str] = (),
    ) -> ReferenceProfile:
        """Checked once, when it is built, naming every incomplete column. A score with missing
        values is profiled on the scores present; a score with none is not profiled."""
        if len(reference) == 0:
            raise BadInputError("drift: the reference window is empty")
        check_complete(reference, numeric + categorical, "reference", optional)
        profiles = {}
        score = (
            [score_column]
            if score_column and score_column in reference and reference[score_column].notna().any()
            else []
        )
        for column in numeric + score:
            present = reference[column].dropna()
            values = np.sort(present.to_numpy(dtype=np.float64))
            edges = np.unique(_sorted_quantiles(values, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
            profiles[column] = _NumericProfile(
                values, float(np.std(values)), edges, _numeric_bins(values, edges), len(reference) - len(present)
            )
        levels = {
            c: _CategoricalProfile(_level_counts(reference[c]), int(reference[c].isna().sum())) for c in categorical
        }
        return cls(len(reference), profiles, levels)

    def to_bytes(self) -> bytes:
        arrays = {"format": np.array([self.FORMAT]), "rows": np.array([self.rows])}
        for i, (column, p) in enumerate(self.numeric.items()):
            arrays[f"n{i}_name"] = np.array([column])
            arrays[f"n{i}_values"], arrays[f"n{i}_edges"] = p.sorted_values, p.bin_edges
            arrays[f"n{i}_share"], arrays[f"n{i}_scale"] = p.bin_share, np.array([p.scale])
            arrays[f"n{i}_missing"] = np.array([p.missing])
        for i, (column, p) in enumerate(self.categorical.items()):
            arrays[f"c{i}_name"] = np.array([column])
            arrays[f"c{i}_levels"] = p.counts.index.to_numpy(dtype=str)
            arrays[f"c{i}_counts"] = p.counts.to_numpy(dtype=np.int64)
            arrays[f"c{i}_missing"] = np.array([p.missing])
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
                    data[f"n{i}_values"],
                    float(data[f"n{i}_scale"][0]),
                    data[f"n{i}_edges"],
                    data[f"n{i}_share"],
                    int(data[f"n{i}_missing"][0]),
                )
                i += 1
            i = 0
            while f"c{i}_name" in data:
                counts = pd.Series(data[f"c{i}_counts"], index=data[f"c{i}_levels"].astype(object))
                categorical[str(data[f"c{i}_name"][0])] = _CategoricalProfile(counts, int(data[f"c{i}_missing"][0]))
                i += 1
            return cls(int(data["rows"][0]), numeric, categorical)


def numeric_drift(profile: _NumericProfile, current: np.ndarray) -> tuple[float, float, float, float]:
    """(KS D, p-value, normed Wasserstein, PSI) of one numeric column against its profile."""
    current = np.sort(current)
    d, p, wasserstein = ks_wasserstein(profile.sorted_values, current)
    scale = profile.scale if profile.scale > 0 else 1.0
    current_share = _numeric_bins(current, profile.bin_edges)
    return d, p, wasserstein / scale, psi(profile.bin_share, current_share)


def missingness_drift(
    reference_missing: int, reference_rows: int, missing: int, rows: int
) -> tuple[float, float, float, float]:
    """(chi-squared, p-value, Jensen-Shannon distance, PSI) of the missing share: the 2x2 table of
    missing and present rows in both windows, tested as any categorical signal."""
    ref = np.array([reference_missing, reference_rows - reference_missing], dtype=np.float64)
    cur = np.array([missing, rows - missing], dtype=np.float64)
    if (ref + cur).min() == 0:
        return 0.0, 1.0, 0.0, 0.0  # nothing missing in either window (or nothing present): nothing moved
    from scipy import stats

    chi2, p, _, _ = stats.chi2_contingency(np.vstack([ref, cur]))
    return float(chi2), float(p), jensen_shannon(ref, cur), psi(ref / ref.sum(), cur / cur.sum())


def categorical_drift(profile: _CategoricalProfile, current: pd.Series) -> tuple[float, float, float, float, list]:
    """(chi-squared, p-value, Jensen-Shannon distance, PSI, unseen levels).

    Chi-squared compares the reference's levels only: a level the reference never saw would be a
    cell expected to hold about nothing, and one row of it would read as p = 1e-123. The rows of
    unseen levels are tested on their own instead (Fisher's exact test of their share against the
    reference's none) and the two p-values are combined (Bonferroni); the effect size and PSI count
    the unseen rows as a level of their own."""
    from scipy import stats

    counts = _level_counts(current)
    levels = profile.counts.index.union(counts.index)
    ref = profile.counts.reindex(levels, fill_value=0).to_numpy(dtype=np.float64)
    cur = counts.reindex(levels, fill_value=0).to_numpy(dtype=np.float64)
    seen = (ref + cur) > 0  # a categorical dtype keeps levels no row has; they carry no evidence
    levels, ref, cur = levels[seen], ref[seen], cur[seen]
    known = levels.isin(profile.counts.index)
    unseen = sorted(str(v) for v in levels[~known])
    if known.sum() < 2 or cur[known].sum() == 0:
        chi2, p = 0.0, 1.0  # one known level, or no known row: nothing to compare among them
    else:
        chi2, p, _, _ = stats.chi2_contingency(np.vstack([ref[known], cur[known]]))
    unseen_rows = int(cur[~known].sum())
    if unseen_rows:
        table = [[unseen_rows, int(cur.sum()) - unseen_rows], [0, int(ref.sum())]]
        p = min(1.0, 2 * min(p, float(stats.fisher_exact(table, alternative="greater").pvalue)))
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
        optional: Collection[str] = (),
    ):
        """`optional`: features that may be missing (the snapshot's checks bound how often); they are
        tested on the values present, and their missing share is tested as a signal of its own."""
        if correction not in CORRECTIONS:
            raise ValueError(f"drift correction must be 'bonferroni' or 'fdr', not {correction!r}")
        if not 0 < p_value < 1:
            raise ValueError(f"drift p_value must be in (0, 1), not {p_value}")
        if min_effect_size < 0:
            raise ValueError(f"drift min_effect_size must be >= 0, not {min_effect_size}")
        self.numeric, self.categorical = list(numeric), list(categorical)
        self.p_value, self.correction, self.min_effect_size = p_value, correction, min_effect_size
        self.optional = frozenset(optional) & set(self.numeric + self.categorical)
        self._profile: tuple[int, ReferenceProfile] | None = None
        self._floors: tuple[ReferenceProfile, EffectFloors] | None = None

    def profile(self, reference: pd.DataFrame, score_column: str | None) -> ReferenceProfile:
        """The reference profile, kept while the same reference frame is passed again (one report
        runs the detector once per model version against one reference)."""
        if self._profile is None or self._profile[0] != id(reference):
            self._profile = (
                id(reference),
                ReferenceProfile.from_frame(reference, self.numeric, self.categorical, score_column, self.optional),
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
        if len(current) == 0:
            raise BadInputError("drift: the current window is empty")
        check_complete(current, columns, "current", self.optional)
        raw = {}
        for column in self.numeric:
            raw[column] = numeric_drift(profile.numeric[column], current[column].dropna().to_numpy(dtype=np.float64))
        for column in self.categorical:
            raw[column] = categorical_drift(profile.categorical[column], current[column])
        p_values, statistics = self._p_values_and_statistics(reference, current, profile, raw)
        if not np.all(np.isfinite(p_values)):
            bad = [columns[i] for i in np.flatnonzero(~np.isfinite(p_values))]
            raise BadInputError(f"drift: no valid p-value for feature(s) {', '.join(bad)}")
        tests = []  # (feature, kind, p, statistic, effect, psi, unseen, missing share, reference missing share)
        for i, column in enumerate(columns):
            ref = profile.numeric[column] if column in self.numeric else profile.categorical[column]
            kind = "numeric" if column in self.numeric else "categorical"
            effect, psi_value, unseen = raw[column][2], raw[column][3], ([] if kind == "numeric" else raw[column][4])
            shares = float(current[column].isna().mean()), ref.missing / ref.rows
            tests.append((column, kind, p_values[i], statistics[i], effect, psi_value, unseen, *shares))
        for column in columns:
            if column in self.optional:
                ref = profile.numeric[column] if column in self.numeric else profile.categorical[column]
                absent = int(current[column].isna().sum())
                chi2, p, effect, psi_value = missingness_drift(ref.missing, ref.rows, absent, len(current))
                tests.append(
                    (column, MISSINGNESS, p, chi2, effect, psi_value, [], absent / len(current), ref.missing / ref.rows)
                )
        threshold = corrected_threshold(np.array([t[2] for t in tests]), self.p_value, self.correction)
        floors = self._effect_floors(profile)
        # A window drawn from the reference clears any floor (the score's among them) with probability
        # at most p_value: each floor is the effect such windows exceed with p_value / signals.
        signals = len(tests) + int(bool(score_column) and score_column in profile.numeric)
        level = 1 - self.p_value / signals
        features = []
        for column, kind, p, statistic, effect, psi_value, unseen, share, reference_share in tests:
            significant = bool(p < threshold)
            rows = len(current) if kind == MISSINGNESS else int(current[column].notna().sum())
            if kind == "numeric":
                ref = profile.numeric[column]
                floor = floors.numeric(column, ref.sorted_values, ref.scale, rows, level)
            elif kind == "categorical":
                floor = floors.shares(column, profile.categorical[column].counts.to_numpy(), rows, level)
            else:
                ref = profile.numeric[column] if column in self.numeric else profile.categorical[column]
                floor = floors.shares(f"{column} (missing)", [ref.missing, ref.rows - ref.missing], rows, level)
            features.append(
                FeatureDrift(
                    feature=column,
                    kind=kind,
                    p_value=float(p),
                    statistic=float(statistic),
                    effect_size=float(effect),
                    effect_metric="wasserstein_normed" if kind == "numeric" else "jensen_shannon",
                    psi=float(psi_value),
                    significant=significant,
                    drifted=significant and effect >= floor,
                    unseen_categories=unseen,
                    missing_share=share,
                    reference_missing_share=reference_share,
                    effect_floor=floor,
                )
            )
        prediction = self._prediction_drift(profile, current, score_column, floors, level)
        return DriftResult(
            features=features,
            threshold=threshold,
            correction=self.correction,
            min_effect_size=self.min_effect_size,
            dataset_drift=any(f.drifted for f in features),
            reference_rows=profile.rows,
            current_rows=len(current),
            backend=self.backend,
            **prediction,
        )

    def _effect_floors(self, profile: ReferenceProfile) -> EffectFloors:
        if self._floors is None or self._floors[0] is not profile:
            self._floors = (profile, EffectFloors(self.min_effect_size))
        return self._floors[1]

    def _prediction_drift(
        self,
        profile: ReferenceProfile,
        current: pd.DataFrame,
        score_column: str | None,
        floors: EffectFloors,
        level: float,
    ) -> dict:
        """KS on the scores present in both windows, with the reason when it cannot be computed: a
        verdict of "no prediction drift" must mean the scores were compared and did not move."""
        out = {"prediction_p_value": None, "prediction_effect_size": None, "prediction_drift": None}
        if not score_column:
            return {**out, "prediction_note": "no score column given"}
        if score_column not in profile.numeric:
            return {**out, "prediction_note": f"the reference has no value in a score column named {score_column}"}
        if score_column not in current:
            return {**out, "prediction_note": f"the current window has no score column {score_column}"}
        scores = current[score_column].to_numpy(dtype=np.float64, na_value=np.nan)
        present = scores[~np.isnan(scores)]
        share = 1 - len(present) / len(scores)
        if len(present) == 0:
            return {**out, "prediction_note": "no score in the current window", "score_missing_share": share}
        reference = profile.numeric[score_column]
        _, p, effect, _ = numeric_drift(reference, present)
        floor = floors.numeric(score_column, reference.sorted_values, reference.scale, len(present), level)
        return {
            "prediction_p_value": p,
            "prediction_effect_size": effect,
            "prediction_drift": bool(p < self.p_value and effect >= floor),
            "score_missing_share": share,
            "prediction_effect_floor": floor,
        }


class ColumnarDrift(DriftDetector):
    backend = "columnar"

    def _p_values_and_statistics(self, reference, current, profile, raw):
        columns = self.numeric + self.categorical
        return np.array([raw[c][1] for c in columns]), np.array([raw[c][0] for c in columns])


class AlibiTabularDrift(DriftDetector):
    """alibi-detect's TabularDrift for the per-feature tests; effect sizes as in the columnar backend."""

    backend = "alibi-detect"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.optional:
            # TabularDrift tests one matrix: a missing value would become a NaN p-value, read as no drift.
            raise ValueError(
                "drift: the alibi-detect backend tests complete features only; optional feature(s) "
                f"{', '.join(sorted(self.optional))} need the columnar backend"
            )

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
    optional: Collection[str] = (),
) -> DriftDetector:
    detectors = {"columnar": ColumnarDrift, "alibi-detect": AlibiTabularDrift}
    if backend not in detectors:
        raise ValueError(f"drift backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    return detectors[backend](numeric, categorical, p_value, correction, min_effect_size, optional)
