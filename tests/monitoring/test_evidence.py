"""Evidence that the monitoring numbers are right, on data no one here wrote: NannyML's car-loan
data (a step change at analysis row 25,000 in car_value, loan_length, salary_range and
repaid_loan_on_prev_car, and a drop in ROC AUC after it) and the ACS employment data, whose fairness
numbers must equal fairlearn's."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rai_pipelines.monitoring.drift import corrected_threshold, ks_wasserstein, make_detector
from rai_pipelines.monitoring.fairness import group_fairness, group_labels, summarise
from rai_pipelines.monitoring.performance import performance
from rai_pipelines.settings import PROJECT_ROOT

DATA = PROJECT_ROOT / "rai_pipelines" / "demo" / "data"
DRIFTED = {"car_value", "loan_length", "salary_range", "repaid_loan_on_prev_car"}


def _text_categories(frame: pd.DataFrame) -> pd.DataFrame:
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(str)
    return frame


@pytest.fixture(scope="module")
def detector(specs):
    spec = specs["credit-scoring-ai"]
    return make_detector("columnar", list(spec.numeric_features), list(spec.categorical_features))


def test_drift_is_flagged_on_exactly_the_features_that_drifted_and_only_after_the_change(car_loan, detector):
    reference, analysis = car_loan
    for chunk in range(10):
        current = analysis.iloc[chunk * 5_000 : (chunk + 1) * 5_000]
        result = detector.detect(reference, current, score_column="y_pred_proba")
        if chunk < 5:
            assert result.drifted_features == [], f"chunk {chunk} (before the change)"
            assert result.prediction_drift is False, f"chunk {chunk} (before the change)"
        else:
            assert set(result.drifted_features) == DRIFTED, f"chunk {chunk} (after the change)"
            assert result.prediction_drift is True, f"chunk {chunk}: the scores moved with the features"


def test_false_alarm_rate_over_fifty_windows_without_drift_is_at_most_five_percent(car_loan, specs):
    reference, _ = car_loan
    spec = specs["credit-scoring-ai"]
    # The windows are cut from the later half of the reference period; the earlier half is the
    # reference, so no window is compared with itself.
    base, later = reference.iloc[:25_000], reference.iloc[25_000:]
    detector = make_detector("columnar", list(spec.numeric_features), list(spec.categorical_features))
    windows = [later.iloc[i * 500 : (i + 1) * 500] for i in range(50)]
    alarms = [detector.detect(base, w, score_column="y_pred_proba").dataset_drift for w in windows]
    assert len(windows) == 50
    assert sum(alarms) / len(alarms) <= 0.05
    # Without the effect-size floor the tests alone still hold their level on these windows.
    bare = make_detector("columnar", list(spec.numeric_features), list(spec.categorical_features), min_effect_size=0)
    assert sum(bare.detect(base, w, score_column="y_pred_proba").dataset_drift for w in windows) / 50 <= 0.05


def test_the_columnar_backend_gives_alibi_detects_p_values(car_loan, detector, specs):
    spec = specs["credit-scoring-ai"]
    reference, analysis = car_loan
    alibi = make_detector("alibi-detect", list(spec.numeric_features), list(spec.categorical_features))
    for current in (analysis.iloc[:3_000], analysis.iloc[30_000:33_000]):
        ours = detector.detect(reference, current, score_column="y_pred_proba")
        theirs = alibi.detect(reference, current, score_column="y_pred_proba")
        for a, b in zip(ours.features, theirs.features, strict=True):
            assert a.feature == b.feature
            if b.p_value > 1e-30:  # alibi-detect keeps p-values as float32
                assert a.p_value == pytest.approx(b.p_value, rel=1e-5), a.feature
            else:
                assert a.p_value < 1e-30, a.feature
            assert a.statistic == pytest.approx(b.statistic, rel=1e-5), a.feature
        assert ours.drifted_features == theirs.drifted_features


@pytest.mark.parametrize("values", ["continuous", "ties"])
def test_ks_and_wasserstein_equal_scipys(values):
    rng = np.random.default_rng(7)
    if values == "continuous":
        a, b = rng.normal(0, 1, 4_000), rng.normal(0.1, 1.2, 15_000)
    else:
        a, b = rng.integers(0, 6, 4_000).astype(float), rng.integers(0, 7, 15_000).astype(float)
    d, p, w = ks_wasserstein(np.sort(a), np.sort(b))
    expected = stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9)
    assert w == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)


def test_fdr_threshold_is_benjamini_hochberg_as_alibi_detect_computes_it():
    from alibi_detect.utils.statstest import fdr

    p_values = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    _, expected = fdr(p_values, q_val=0.05)
    assert corrected_threshold(p_values, 0.05, "fdr") == pytest.approx(float(expected))
    assert corrected_threshold(np.array([0.5, 0.9]), 0.05, "fdr") == 0.0  # nothing significant
    assert corrected_threshold(p_values, 0.05, "bonferroni") == pytest.approx(0.005)


def test_performance_tracks_the_late_labels_and_drops_after_the_change(car_loan):
    _, analysis = car_loan
    auc = []
    for chunk in range(10):
        rows = analysis.iloc[chunk * 5_000 : (chunk + 1) * 5_000]
        labels = rows["repaid"].to_numpy(dtype=np.int64)
        metrics = performance(labels, rows["y_pred_proba"].to_numpy(), rows["y_pred"].to_numpy(dtype=np.int64), 1)
        assert metrics["labelled_rows"] == 5_000
        assert 0 <= metrics["expected_calibration_error"] < 0.1
        auc.append(metrics["roc_auc"])
    # NannyML's published realised ROC AUC for these chunks (to 6 decimals).
    published = [0.970962, 0.970248, 0.976282, 0.967721, 0.969886, 0.960050, 0.958530, 0.959041, 0.963094, 0.957556]
    assert auc == pytest.approx(published, abs=5e-7)
    assert min(auc[:5]) > max(auc[5:])


@pytest.fixture(scope="module")
def acs():
    folder = DATA / "acs_employment_ma"
    frame = pd.read_parquet(folder / "analysis.parquet").merge(
        pd.read_parquet(folder / "analysis_target.parquet"), on="id", validate="one_to_one"
    )
    return _text_categories(frame)


@pytest.mark.parametrize("attributes", [["SEX"], ["RAC1P"], ["SEX", "RAC1P"]])
def test_fairness_numbers_equal_fairlearns(acs, attributes):
    import fairlearn.metrics as fairlearn  # a test dependency: the README's claim is never skipped

    y_true, y_pred = acs["employed"].astype(int), acs["prediction"].astype(int)
    sensitive = acs[attributes] if len(attributes) > 1 else acs[attributes[0]]
    ours = group_fairness(
        y_pred, group_labels(acs, attributes), 1, 0, "&".join(attributes), True, labels=acs["employed"]
    )
    kwargs = {"sensitive_features": sensitive}
    assert abs(ours.ratio - fairlearn.demographic_parity_ratio(y_true, y_pred, **kwargs)) <= 1e-9
    assert abs(ours.difference - fairlearn.demographic_parity_difference(y_true, y_pred, **kwargs)) <= 1e-9
    assert abs(ours.equalized_odds_ratio - fairlearn.equalized_odds_ratio(y_true, y_pred, **kwargs)) <= 1e-9
    assert abs(ours.equalized_odds_difference - fairlearn.equalized_odds_difference(y_true, y_pred, **kwargs)) <= 1e-9
    rates = y_pred.groupby(group_labels(acs, attributes)).mean()
    assert ours.worst_group == rates.idxmin()


def test_bootstrap_intervals_cover_the_estimate_and_are_wide_for_small_groups():
    def groups(n):
        decisions = pd.Series([1] * (n // 2) + [0] * (n - n // 2) + [1] * (3 * n // 8) + [0] * (n - 3 * n // 8))
        return decisions, pd.Series(["a"] * n + ["b"] * n)

    small = group_fairness(*groups(120), 1, 100, "X", True)
    large = group_fairness(*groups(12_000), 1, 100, "X", True)
    assert small.ratio == pytest.approx(0.75) and large.ratio == pytest.approx(0.75)
    assert small.ratio_ci[0] < 0.75 < small.ratio_ci[1]
    assert small.ratio_ci[1] > 0.8 > large.ratio_ci[1]  # noise for 120 rows, evidence for 12,000
    assert summarise([small]).score_ci == small.ratio_ci
    again = group_fairness(*groups(120), 1, 100, "X", True)
    assert again.ratio_ci == small.ratio_ci  # a fixed seed: re-materialising gives the same report


def test_a_domain_classifier_finds_the_change_and_not_the_noise(car_loan, specs):
    from rai_pipelines.monitoring.drift_multivariate import classifier_drift

    spec = specs["credit-scoring-ai"]
    reference, analysis = car_loan
    numeric, categorical = list(spec.numeric_features), list(spec.categorical_features)
    after = classifier_drift(reference.iloc[:25_000], analysis.iloc[30_000:35_000], numeric, categorical)
    before = classifier_drift(reference.iloc[:25_000], reference.iloc[25_000:30_000], numeric, categorical)
    assert after.drifted and after.auc > 0.7
    assert not before.drifted and before.auc < 0.55


def test_categorical_levels_no_row_has_are_ignored(car_loan):
    reference, analysis = car_loan
    current = analysis.iloc[:2_000].copy()
    ref = reference.copy()
    ref["salary_range"] = pd.Categorical(
        ref["salary_range"].astype(str), categories=[*sorted(ref["salary_range"].astype(str).unique()), "unused level"]
    )
    result = make_detector("columnar", ["car_value"], ["salary_range"]).detect(ref, current, score_column=None)
    salary = next(f for f in result.features if f.feature == "salary_range")
    assert np.isfinite(salary.p_value) and salary.unseen_categories == []


def test_a_stored_reference_profile_gives_the_same_report(car_loan, detector, specs):
    from rai_pipelines.monitoring.drift import ReferenceProfile

    spec = specs["credit-scoring-ai"]
    reference, analysis = car_loan
    profile = ReferenceProfile.from_frame(
        reference, list(spec.numeric_features), list(spec.categorical_features), "y_pred_proba"
    )
    restored = ReferenceProfile.from_bytes(profile.to_bytes())
    current = analysis.iloc[27_000:30_000]
    direct = detector.detect(reference, current, score_column="y_pred_proba")
    stored = detector.detect(None, current, score_column="y_pred_proba", profile=restored)
    assert stored == direct


def test_categorical_drift_equals_scipys_chi_squared_fisher_and_base_2_jensen_shannon(car_loan):
    from scipy.spatial import distance

    from rai_pipelines.monitoring.drift import ReferenceProfile, categorical_drift

    reference, analysis = car_loan
    current = analysis["salary_range"].iloc[25_000:27_000].astype(str).copy()
    current.iloc[:1] = "200K+ €"  # a level seen once, in the current window only
    ref_levels = reference["salary_range"].astype(str)
    levels = sorted(set(ref_levels) | set(current))
    ref_counts = ref_levels.value_counts().reindex(levels, fill_value=0).to_numpy(dtype=float)
    cur_counts = current.value_counts().reindex(levels, fill_value=0).to_numpy(dtype=float)
    profile = ReferenceProfile.from_frame(reference, [], ["salary_range"], None).categorical["salary_range"]
    chi2, p, js, psi_value, unseen = categorical_drift(profile, current)
    # chi-squared over the reference's levels; the unseen row by Fisher's exact test; Bonferroni of the two
    known = np.array([level != "200K+ €" for level in levels])
    expected = stats.chi2_contingency(np.vstack([ref_counts[known], cur_counts[known]]))
    unseen_p = stats.fisher_exact([[1, 1_999], [0, int(ref_counts.sum())]], alternative="greater").pvalue
    assert chi2 == pytest.approx(expected[0], rel=1e-12)
    assert p == pytest.approx(min(1.0, 2 * min(expected[1], unseen_p)), rel=1e-9)
    assert js == pytest.approx(distance.jensenshannon(ref_counts, cur_counts, base=2), rel=1e-12)
    ref_share, cur_share = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
    floor = np.maximum(ref_share, 1e-4), np.maximum(cur_share, 1e-4)
    assert psi_value == pytest.approx(float(np.sum((floor[1] - floor[0]) * np.log(floor[1] / floor[0]))), rel=1e-12)
    assert unseen == ["200K+ €"]


def test_effect_sizes_are_on_their_documented_scales():
    from rai_pipelines.monitoring.drift import jensen_shannon, psi

    assert jensen_shannon(np.array([40.0, 0.0]), np.array([0.0, 25.0])) == pytest.approx(1.0)  # disjoint: 1 bit
    assert jensen_shannon(np.array([40.0, 10.0]), np.array([8.0, 2.0])) == pytest.approx(0.0, abs=1e-12)
    # PSI of a quarter of the population moving from one half to the other: 0.25 * ln 3
    assert psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])) == pytest.approx(0.25 * np.log(3), rel=1e-12)


def test_a_window_with_one_level_in_both_windows_has_not_drifted():
    from rai_pipelines.monitoring.drift import ReferenceProfile, categorical_drift

    profile = ReferenceProfile.from_frame(pd.DataFrame({"channel": ["web"] * 500}), [], ["channel"], None).categorical[
        "channel"
    ]
    assert categorical_drift(profile, pd.Series(["web"] * 120)) == (0.0, 1.0, 0.0, 0.0, [])


def test_a_constant_reference_measures_the_shift_in_the_features_own_units():
    from rai_pipelines.monitoring.drift import ReferenceProfile, numeric_drift

    profile = ReferenceProfile.from_frame(pd.DataFrame({"term": [36.0] * 400}), ["term"], [], None).numeric["term"]
    assert profile.scale == 0.0
    d, p, effect, _ = numeric_drift(profile, np.full(300, 48.0))
    assert d == 1.0 and p < 1e-100
    assert effect == pytest.approx(12.0)  # no spread to norm by: the Wasserstein distance itself


def test_each_feature_is_tested_by_its_kind_with_its_own_effect_metric(car_loan, detector):
    reference, analysis = car_loan
    result = detector.detect(reference, analysis.iloc[30_000:35_000], score_column="y_pred_proba")
    kinds = {f.feature: (f.kind, f.effect_metric) for f in result.features}
    assert kinds == {
        **{c: ("numeric", "wasserstein_normed") for c in detector.numeric},
        **{c: ("categorical", "jensen_shannon") for c in detector.categorical},
    }


def test_an_effect_exactly_at_the_minimum_counts_as_drift(car_loan, specs):
    """The effect size threshold is inclusive: a feature whose effect equals min_effect_size drifts."""
    spec = specs["credit-scoring-ai"]
    reference, analysis = car_loan
    current = analysis.iloc[30_000:35_000]
    numeric, categorical = list(spec.numeric_features), list(spec.categorical_features)
    first = make_detector("columnar", numeric, categorical, min_effect_size=0.0).detect(reference, current, None)
    car_value = next(f for f in first.features if f.feature == "car_value")
    assert car_value.significant
    at = make_detector("columnar", numeric, categorical, min_effect_size=car_value.effect_size)
    above = make_detector("columnar", numeric, categorical, min_effect_size=np.nextafter(car_value.effect_size, 1.0))
    assert "car_value" in at.detect(reference, current, None).drifted_features
    assert "car_value" not in above.detect(reference, current, None).drifted_features


def test_prediction_drift_is_tested_only_when_both_windows_carry_the_score(car_loan, detector):
    reference, analysis = car_loan
    current = analysis.iloc[30_000:35_000]
    scored = detector.detect(
        reference.rename(columns={"y_pred_proba": "score"}), current.rename(columns={"y_pred_proba": "score"})
    )
    assert scored.prediction_p_value is not None and scored.prediction_drift is not None  # "score" by default
    unscored_current = detector.detect(reference, current.drop(columns=["y_pred_proba"]), score_column="y_pred_proba")
    unscored_reference = detector.detect(reference.drop(columns=["y_pred_proba"]), current, score_column="y_pred_proba")
    off = detector.detect(reference, current, score_column=None)
    for result in (unscored_current, unscored_reference, off):
        assert (result.prediction_p_value, result.prediction_effect_size, result.prediction_drift) == (None, None, None)


def test_benjamini_hochberg_is_strict_at_each_step_and_a_single_test_is_not_corrected():
    from alibi_detect.utils.statstest import fdr

    on_the_step = np.array([0.025, 0.5])  # 0.025 equals its step 0.05 * 1/2: not below it
    assert corrected_threshold(on_the_step, 0.05, "fdr") == 0.0
    assert fdr(on_the_step, q_val=0.05)[0] == 0  # alibi-detect finds nothing significant there either
    assert corrected_threshold(np.array([0.2]), 0.05, "fdr") == 0.0
    assert corrected_threshold(np.array([0.01]), 0.05, "fdr") == 0.05
    assert corrected_threshold(np.array([]), 0.05, "fdr") == 0.05
    assert corrected_threshold(np.array([]), 0.05, "bonferroni") == 0.05


def test_a_drift_result_records_how_it_was_decided(car_loan, specs):
    spec = specs["credit-scoring-ai"]
    reference, analysis = car_loan
    current = analysis.iloc[30_000:34_000]
    detector = make_detector(
        "columnar", list(spec.numeric_features), list(spec.categorical_features), correction="fdr", min_effect_size=0.2
    )
    result = detector.detect(reference, current, score_column="y_pred_proba")
    assert (result.correction, result.min_effect_size, result.backend) == ("fdr", 0.2, "columnar")
    assert (result.reference_rows, result.current_rows) == (len(reference), 4_000)
    assert result.prediction_effect_size is not None and result.prediction_effect_size >= 0
    for feature in result.features:
        assert feature.psi >= 0 and feature.significant == (feature.p_value < result.threshold)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda ref, cur: (ref.drop(columns=["car_value", "loan_length"]), cur),
            "reference profile has no column(s) car_value, loan_length",
        ),
        (lambda ref, cur: (ref, cur.iloc[:0]), "drift: the current window is empty"),
        (
            lambda ref, cur: (ref, cur.assign(car_value=np.nan)),
            "drift: the current window: feature car_value has 1000 missing value(s) of 1000 and is required",
        ),
    ],
)
def test_a_window_that_cannot_be_tested_is_refused_saying_why(car_loan, specs, change, message):
    from rai_pipelines.core.errors import BadInputError

    spec = specs["credit-scoring-ai"]
    reference, analysis = car_loan
    ref, cur = change(reference, analysis.iloc[30_000:31_000])
    detector = make_detector("columnar", list(spec.numeric_features), list(spec.categorical_features))
    profile = None
    if "reference profile" in message:
        from rai_pipelines.monitoring.drift import ReferenceProfile

        profile = ReferenceProfile.from_frame(
            ref, [c for c in spec.numeric_features if c in ref], list(spec.categorical_features), None
        )
    with pytest.raises(BadInputError, match=re.escape(message)):
        detector.detect(None if profile else ref, cur, score_column=None, profile=profile)


def test_without_a_reference_or_its_profile_the_detector_says_what_it_needs(car_loan, detector):
    with pytest.raises(ValueError, match="drift: give the reference frame or its profile"):
        detector.detect(None, car_loan[1].iloc[:100])
