"""Real traffic has gaps: a feature declared optional is monitored on the values present and its
missing share is a signal of its own; a required feature, or missingness beyond its tolerance,
blocks the day; a missing score never turns prediction drift off silently; a bad reference is
refused once, naming every column, before anything of the day is written."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.lake import Lake
from rai_pipelines.core.registry import load_model_spec
from rai_pipelines.definitions import build_definitions
from rai_pipelines.monitoring.data_quality import validate_snapshot
from rai_pipelines.monitoring.drift import make_detector
from rai_pipelines.monitoring.reports import drift_summary
from rai_pipelines.monitoring.snapshots import build_snapshot
from tests.conftest import copy_world, make_world, settings_for
from tests.monitoring.test_assets import DAYS, QUIET, _declaration

CREDIT = "credit-scoring-ai"
TOLERANCE = {"debt_to_income_ratio": 0.25, "salary_range": 0.25}


def with_gaps(frame: pd.DataFrame, column: str, share: float, seed: int = 0) -> pd.DataFrame:
    """The frame with exactly `share` of the column's rows missing, at random rows."""
    out = frame.copy()
    rows = np.random.default_rng(seed).choice(len(out), size=round(share * len(out)), replace=False)
    out[column] = out[column].astype("float64" if column != "salary_range" else "object")
    out.iloc[rows, out.columns.get_loc(column)] = np.nan if column != "salary_range" else None
    return out


@pytest.fixture(scope="module")
def windows(car_loan):
    reference, _ = car_loan
    ref = with_gaps(with_gaps(reference.iloc[:25_000], "debt_to_income_ratio", 0.10), "salary_range", 0.05, 1)
    stable = with_gaps(reference.iloc[25_000:30_000], "salary_range", 0.05, 4)
    return ref, stable


def _detector(spec, optional=tuple(TOLERANCE)):
    return make_detector("columnar", list(spec.numeric_features), list(spec.categorical_features), optional=optional)


def test_an_optional_feature_is_tested_on_its_values_present(specs, windows):
    ref, stable = windows
    current = with_gaps(stable, "debt_to_income_ratio", 0.10, 2)
    result = _detector(specs[CREDIT]).detect(ref, current, score_column=None)
    values = next(f for f in result.features if f.feature == "debt_to_income_ratio" and f.kind == "numeric")
    expected = stats.ks_2samp(
        ref["debt_to_income_ratio"].dropna(), current["debt_to_income_ratio"].dropna(), method="asymp"
    )
    assert values.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert values.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert (values.missing_share, values.reference_missing_share) == (pytest.approx(0.10), pytest.approx(0.10))


def test_a_rise_in_missingness_is_reported_as_drift_of_the_missing_share(specs, windows):
    ref, stable = windows
    detector = _detector(specs[CREDIT])
    steady = detector.detect(ref, with_gaps(stable, "debt_to_income_ratio", 0.10, 2), score_column=None)
    risen = detector.detect(ref, with_gaps(stable, "debt_to_income_ratio", 0.22, 2), score_column=None)

    def missingness(result):
        return next(f for f in result.features if f.feature == "debt_to_income_ratio" and f.kind == "missingness")

    assert not missingness(steady).drifted and "debt_to_income_ratio (missing share)" not in steady.drifted_features
    assert missingness(risen).drifted and missingness(risen).missing_share == pytest.approx(0.22)
    assert "debt_to_income_ratio (missing share)" in risen.drifted_features
    # the values present did not move: only the missing share did
    assert "debt_to_income_ratio" not in risen.drifted_features
    # one feature whose missing share drifted, of seven
    assert risen.drift_share == pytest.approx(1 / 7)
    # only optional features have a missing share to test, and it joins the multiple-test correction
    assert {f.feature for f in risen.features if f.kind == "missingness"} == set(TOLERANCE)
    assert risen.threshold == pytest.approx(0.05 / (7 + 2))


def test_a_missing_value_in_a_required_feature_is_refused_naming_every_such_feature(specs, windows):
    ref, stable = windows
    current = with_gaps(with_gaps(stable, "car_value", 0.01), "loan_length", 0.02, 1)
    with pytest.raises(BadInputError) as caught:
        _detector(specs[CREDIT]).detect(ref, current, score_column=None)
    assert "feature car_value has 50 missing value(s) of 5000 and is required" in str(caught.value)
    assert "feature loan_length has 100 missing value(s) of 5000 and is required" in str(caught.value)


def test_the_day_is_blocked_only_on_required_features_and_missingness_beyond_tolerance(specs, world):
    spec = replace(specs[CREDIT], missing_tolerance=TOLERANCE)
    log = Lake(str(world.lake_root)).read_table("inference_logs", {"model": CREDIT, "date": DAYS[0].isoformat()})
    frame = build_snapshot(spec, log, None, b"k" * 32, "log").to_pandas()
    within = with_gaps(frame, "debt_to_income_ratio", 0.20)
    assert validate_snapshot(within, spec, None, "complete").passed
    beyond = validate_snapshot(with_gaps(frame, "debt_to_income_ratio", 0.30), spec, None, "complete")
    assert not beyond.passed
    assert [f.column for f in beyond.findings] == ["debt_to_income_ratio"]
    required = validate_snapshot(with_gaps(frame, "car_value", 0.001), spec, None, "complete")
    assert [f.column for f in required.findings] == ["car_value"]
    # without a declaration, every feature is required, as before
    assert not validate_snapshot(within, specs[CREDIT], None, "complete").passed


def test_the_declaration_is_checked(specs, tmp_path):
    spec = specs[CREDIT]
    features = lambda **extra: {  # noqa: E731
        "numeric": list(spec.numeric_features),
        "categorical": list(spec.categorical_features),
        **extra,
    }
    declared = load_model_spec(_declaration(tmp_path, spec, features=features(missing_tolerance=TOLERANCE)))
    assert declared.missing_tolerance == TOLERANCE
    assert declared.optional_features == ("debt_to_income_ratio", "salary_range")
    with pytest.raises(BadInputError, match="missing_tolerance names income, not declared features"):
        load_model_spec(_declaration(tmp_path, spec, features=features(missing_tolerance={"income": 0.1})))
    with pytest.raises(BadInputError, match="features.missing_tolerance.car_value: Input should be less than 1"):
        load_model_spec(_declaration(tmp_path, spec, features=features(missing_tolerance={"car_value": 1.0})))
    alibi = {"backend": "alibi-detect"}
    with pytest.raises(BadInputError, match="missing_tolerance needs drift.backend columnar"):
        load_model_spec(_declaration(tmp_path, spec, features=features(missing_tolerance=TOLERANCE), drift=alibi))


# -- the score ---------------------------------------------------------------------------------------------
def test_missing_scores_do_not_turn_prediction_drift_off(specs, windows):
    ref, stable = windows
    reference = with_gaps(ref.rename(columns={"y_pred_proba": "score"}), "score", 0.05)
    current = stable.rename(columns={"y_pred_proba": "score"})
    current["score"] = np.clip(current["score"] + 0.3, 0, 1)
    current = with_gaps(current, "score", 0.05, 3)
    result = _detector(specs[CREDIT]).detect(reference, current)
    assert result.prediction_drift is True and result.prediction_p_value < 1e-20
    assert result.score_missing_share == pytest.approx(0.05) and result.prediction_note == ""
    unscored = _detector(specs[CREDIT]).detect(reference, current.assign(score=np.nan))
    assert unscored.prediction_drift is None and unscored.prediction_note == "no score in the current window"


def test_the_drift_report_is_strict_json_and_says_why_prediction_drift_is_missing(specs, windows, tmp_path):
    ref, stable = windows
    spec = replace(specs[CREDIT], missing_tolerance=TOLERANCE, drift_multivariate="none")
    snapshot = stable.rename(columns={"y_pred_proba": "score"}).assign(model_version="1.4.2")
    snapshot.loc[snapshot.index[:10], "score"] = np.nan
    summary = drift_summary(spec, ref, snapshot)  # the training data names its score y_pred_proba
    doc = summary["versions"]["1.4.2"]
    assert doc["prediction_drift"] is None
    assert doc["prediction_drift_note"] == "the reference has no model score (no column score or y_pred_proba)"
    json.loads(json.dumps(summary, allow_nan=False))  # no NaN token anywhere
    assert doc["missing_share"]["debt_to_income_ratio"] == 0.0

    lake = Lake(str(tmp_path))
    with pytest.raises(ValueError, match=r"drift_report/model=m/date=d/report.json: Out of range float"):
        lake.write_json("drift_report", {"model": "m", "date": "d"}, "report.json", {"effect": float("nan")})


def test_a_training_reference_that_names_the_score_as_the_log_does_gives_prediction_drift(specs, world, tmp_path):
    from rai_pipelines.monitoring.lake_reads import reference_profile

    spec = specs[CREDIT]
    lake = Lake(str(tmp_path / "lake"))
    reference = Lake(str(world.lake_root)).read_table("reference", {"model": CREDIT})
    training = reference.rename_columns([spec.score_column if n == "score" else n for n in reference.column_names])
    lake.write_table("reference", {"model": CREDIT}, training)
    profile = reference_profile(lake, spec)
    assert np.array_equal(
        profile.numeric["score"].sorted_values, np.sort(reference.column("score").to_numpy(zero_copy_only=False))
    )


# -- in Dagster ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory, specs):
    return make_world(tmp_path_factory.mktemp("missing") / "world", specs, days=DAYS[:2])


def _gappy_log(lake: Lake, day: str, column: str, share: float) -> None:
    partition = {"model": CREDIT, "date": day}
    log = lake.read_table("inference_logs", partition).to_pandas()
    lake.write_table(
        "inference_logs", partition, pa.Table.from_pandas(with_gaps(log, column, share), preserve_index=False)
    )


def _materialise(settings, instance, day):
    defs = build_definitions(settings)
    keys = [dg.AssetKey(["credit_scoring_ai", a]) for a in ("feature_snapshots", "drift_report")]
    return defs.resolve_job_def("late_labels_job").execute_in_process(
        partition_key=day, instance=instance, run_config=QUIET, asset_selection=keys, raise_on_error=False
    )


def test_a_day_with_tolerated_gaps_is_monitored_and_one_beyond_them_is_rejected(specs, world, tmp_path):
    private = copy_world(world, tmp_path / "world")
    lake = Lake(str(private.lake_root))
    registry = tmp_path / "registry"
    registry.mkdir()
    spec = specs[CREDIT]
    features = {
        "numeric": list(spec.numeric_features),
        "categorical": list(spec.categorical_features),
        "missing_tolerance": TOLERANCE,
    }
    shutil.move(_declaration(tmp_path, spec, features=features), registry / f"{CREDIT}.yaml")
    settings = replace(settings_for(private), model_registry_dir=str(registry))
    first, second = (d.isoformat() for d in DAYS[:2])
    _gappy_log(lake, first, "debt_to_income_ratio", 0.20)
    _gappy_log(lake, second, "debt_to_income_ratio", 0.30)
    with dg.instance_for_test() as instance:
        monitored = _materialise(settings, instance, first)
        assert monitored.success
        report = lake.read_json("drift_report", {"model": CREDIT, "date": first}, "report.json")
        version = next(iter(report["versions"].values()))
        assert version["missing_share"]["debt_to_income_ratio"] == pytest.approx(0.20, abs=0.01)
        assert "debt_to_income_ratio (missing share)" in version["drifted_features"]
        # the day's plot shows every feature over time, and the missing share of the gappy one
        from rai_pipelines.monitoring.lake_reads import drift_history

        history = drift_history(lake, load_model_spec(registry / f"{CREDIT}.yaml"), first, report)
        assert set(history.loc[history["kind"] == "numeric", "feature"]) == set(spec.numeric_features)
        gappy = history[(history["feature"] == "debt_to_income_ratio") & (history["kind"] == "numeric")]
        assert gappy["missing_share"].iloc[0] == pytest.approx(0.20, abs=0.01)
        with open(report["plots"]["drift_over_time.png"], "rb") as png:
            assert png.read(8) == b"\x89PNG\r\n\x1a\n"

        rejected = _materialise(settings, instance, second)
        checks = {c.check_name: c for c in rejected.get_asset_check_evaluations()}
        assert checks["snapshot_is_complete"].passed is False
        assert "debt_to_income_ratio" in checks["snapshot_is_complete"].metadata["failed"].value
        assert not lake.exists("feature_snapshots", {"model": CREDIT, "date": second})


def test_an_incomplete_reference_is_refused_naming_every_column_before_the_day_is_written(world, tmp_path):
    private = copy_world(world, tmp_path / "world")
    lake = Lake(str(private.lake_root))
    shutil.rmtree(private.lake_root / "reference_profile", ignore_errors=True)
    shutil.rmtree(private.lake_root / "feature_snapshots", ignore_errors=True)
    reference = lake.read_table("reference", {"model": CREDIT}).to_pandas()
    broken = with_gaps(with_gaps(reference, "car_value", 0.001), "loan_length", 0.002, 1)
    lake.write_table("reference", {"model": CREDIT}, pa.Table.from_pandas(broken, preserve_index=False))
    day = DAYS[0].isoformat()
    with dg.instance_for_test() as instance:
        result = _materialise(settings_for(private), instance, day)
    assert not result.success
    error = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.to_string()
    assert "reference/model=credit-scoring-ai" in error
    assert "feature car_value has 20 missing value(s)" in error and "feature loan_length has 40 missing" in error
    assert not lake.exists("feature_snapshots", {"model": CREDIT, "date": day})
    assert not lake.exists("feature_snapshots_rejected", {"model": CREDIT, "date": day})


# -- small windows and new categories --------------------------------------------------------------------------
def test_one_row_of_a_level_never_seen_is_reported_not_read_as_overwhelming_drift(specs, car_loan):
    from scipy import stats as scipy_stats

    reference, _ = car_loan  # 50,000 rows; a small window of 100 holds one row of a new level
    window = reference.iloc[-100:].copy()
    window["salary_range"] = window["salary_range"].astype(str)
    window.iloc[0, window.columns.get_loc("salary_range")] = "200K+ €"
    result = _detector(specs[CREDIT], optional=()).detect(reference, window, score_column=None)
    salary = next(f for f in result.features if f.feature == "salary_range")
    assert salary.unseen_categories == ["200K+ €"]
    # with the unseen level as a column of its own, chi-squared reads the empty reference cell as overwhelming
    levels = pd.concat([reference["salary_range"].astype(str), window["salary_range"]]).to_numpy()
    with_the_empty_cell = scipy_stats.chi2_contingency(pd.crosstab(np.r_[np.zeros(50_000), np.ones(100)], levels))
    assert with_the_empty_cell.pvalue < 1e-100
    # Fisher's exact test of the unseen row: about 100 / 50,100, doubled for the two tests combined
    assert salary.p_value == pytest.approx(2 * 100 / 50_100, rel=0.01)
    assert not salary.drifted


def test_the_effect_floor_rises_as_windows_shrink_and_never_falls_below_the_declared_one(specs, car_loan):
    reference, _ = car_loan
    detector = _detector(specs[CREDIT], optional=())
    floors = {}
    for rows in (100, 300, 10_000):
        result = detector.detect(reference.iloc[:25_000], reference.iloc[25_000 : 25_000 + rows], score_column=None)
        floors[rows] = {f.feature: f.effect_floor for f in result.features}
    assert all(floors[100][f] >= floors[300][f] >= 0.1 for f in floors[100])
    rising = [f for f in floors[100] if floors[300][f] > 0.1]  # still above the declared floor at 300 rows
    assert len(rising) >= 4 and all(floors[100][f] > floors[300][f] for f in rising)
    assert min(floors[100].values()) > 0.1 and set(floors[10_000].values()) == {0.1}
    # the floor of car_value at 100 rows: the 1 - 0.05/7 quantile of the normed Wasserstein distance of
    # 100-row windows drawn from the reference, which is about 2.6 / sqrt(100)
    assert 0.2 < floors[100]["car_value"] < 0.35
