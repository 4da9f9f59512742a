"""Feature snapshots, drift and fairness on the real car-loan and ACS data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.monitoring.drift import make_detector
from rai_pipelines.monitoring.fairness import demographic_parity
from rai_pipelines.monitoring.reports import drift_summary, fairness_summary
from rai_pipelines.monitoring.snapshots import PROTECTED_PREFIX, build_snapshot
from rai_pipelines.settings import PROJECT_ROOT

DATA = PROJECT_ROOT / "rai_pipelines" / "demo" / "data"
KEY = b"0123456789abcdef0123456789abcdef"


def _log(spec, frame: pd.DataFrame, version: str, prefix: str) -> pa.Table:
    out = pd.DataFrame(
        {
            "request_id": [f"{prefix}-{i}" for i in frame["id"]],
            "timestamp": pd.Timestamp("2023-11-01", tz="UTC"),
            "model_version": version,
        }
    )
    for col in list(spec.features) + list(spec.protected_attributes) + [spec.score_column, spec.decision_column]:
        values = frame[col]
        out[col] = values.astype(str) if isinstance(values.dtype, pd.CategoricalDtype) else values.to_numpy()
    return pa.Table.from_pandas(out, preserve_index=False)


@pytest.fixture(scope="module")
def car_loan():
    return {
        name: pd.read_parquet(DATA / "car_loan" / f"{name}.parquet")
        for name in ("reference", "analysis", "analysis_target")
    }


@pytest.fixture(scope="module")
def acs():
    return {name: pd.read_parquet(DATA / "acs_employment_ma" / f"{name}.parquet") for name in ("reference", "analysis")}


def _snapshot(spec, frame, version="1.4.2", prefix="cl", labels=None):
    return build_snapshot(spec, _log(spec, frame, version, prefix), labels, KEY, "log.parquet").to_pandas()


def test_snapshot_pseudonymises_ids_keeps_protected_columns_and_joins_labels(specs, acs):
    spec = specs["employment-screening-ai"]
    frame = acs["analysis"].head(500)
    labels = pa.table({"request_id": [f"acs-{i}" for i in frame["id"].head(100)], "label": [1] * 100})
    snap = _snapshot(spec, frame, "3.1.0", "acs", labels)
    assert len(snap) == 500
    assert not set(snap["request_id"]) & {f"acs-{i}" for i in frame["id"]}
    assert snap["request_id"].str.len().eq(32).all() and snap["request_id"].is_unique
    assert {PROTECTED_PREFIX + "SEX", PROTECTED_PREFIX + "RAC1P"} <= set(snap.columns)
    assert "SEX" not in snap.columns
    assert snap["label"].notna().sum() == 100
    again = _snapshot(spec, frame, "3.1.0", "acs", labels)
    assert list(again["request_id"]) == list(snap["request_id"])  # stable for joins across days


def test_pseudonyms_are_keyed_hmacs_that_change_with_the_key(specs, acs):
    """Without the key a pseudonym must not be computable from the request id: a plain hash of the id
    would let anyone holding the traffic's ids re-identify the snapshot's rows."""
    import hashlib
    import hmac

    spec = specs["employment-screening-ai"]
    frame = acs["analysis"].head(200)
    ids = [f"acs-{i}" for i in frame["id"]]
    snap = build_snapshot(spec, _log(spec, frame, "3.1.0", "acs"), None, KEY, "log.parquet").to_pandas()
    other_key = b"fedcba9876543210fedcba9876543210"
    other = build_snapshot(spec, _log(spec, frame, "3.1.0", "acs"), None, other_key, "log.parquet").to_pandas()
    assert not set(snap["request_id"]) & set(other["request_id"])  # no pseudonym survives a change of key
    unkeyed = {hashlib.sha256(i.encode()).hexdigest()[:32] for i in ids}
    assert not set(snap["request_id"]) & unkeyed
    by_id = {i: hmac.new(KEY, i.encode(), hashlib.sha256).hexdigest()[:32] for i in ids}
    assert set(snap["request_id"]) == set(by_id.values())  # HMAC-SHA256 under the key, 128 bits kept


def test_snapshot_refuses_a_log_missing_a_declared_feature(specs, car_loan):
    spec = specs["credit-scoring-ai"]
    log = _log(spec, car_loan["analysis"].head(10), "1.4.2", "cl").drop_columns(["car_value"])
    with pytest.raises(BadInputError, match=r"log\.parquet: inference log lacks column\(s\) car_value"):
        build_snapshot(spec, log, None, KEY, "log.parquet")


def test_snapshot_refuses_an_unsafe_model_version(specs, car_loan):
    spec = specs["credit-scoring-ai"]
    log = _log(spec, car_loan["analysis"].head(10), "../../etc", "cl")
    with pytest.raises(BadInputError, match="not a valid model version"):
        build_snapshot(spec, log, None, KEY, "log.parquet")


def test_drift_is_flagged_in_the_drifted_period_and_not_in_the_reference(specs, car_loan):
    spec = specs["credit-scoring-ai"]
    reference = _snapshot(spec, car_loan["reference"].head(25_000))
    analysis = car_loan["analysis"].sort_values("timestamp")
    late = _snapshot(spec, analysis.tail(3_500))  # summer 2019: the known shift
    quiet = _snapshot(spec, car_loan["reference"].tail(3_500))  # later part of the reference period
    drifted = drift_summary(spec, reference, late)["versions"]["1.4.2"]
    assert drifted["dataset_drift"] is True
    assert {"car_value", "salary_range", "repaid_loan_on_prev_car", "loan_length"} <= set(drifted["drifted_features"])
    assert drifted["prediction_drift"] is True
    calm = drift_summary(spec, reference, quiet)["versions"]["1.4.2"]
    assert calm["drifted_features"] == [] and calm["dataset_drift"] is False
    assert calm["threshold"] == pytest.approx(0.05 / len(spec.features))


@pytest.mark.parametrize("backend", ["columnar", "alibi-detect"])
def test_a_shift_in_any_one_declared_feature_flags_that_feature_alone(specs, car_loan, backend):
    """Each declared feature in turn, the last of each kind included, shifted in an otherwise quiet
    window: the detector flags that feature and no other."""
    spec = specs["credit-scoring-ai"]
    detector = make_detector(backend, list(spec.numeric_features), list(spec.categorical_features))
    reference = _snapshot(spec, car_loan["reference"].head(10_000))
    quiet = _snapshot(spec, car_loan["reference"].tail(3_000))
    assert detector.detect(reference, quiet).drifted_features == []
    for feature in spec.features:
        current = quiet.copy()
        if feature in spec.numeric_features:
            current[feature] = current[feature] + reference[feature].std()
        else:  # the same levels in other shares: 60% of the rows moved to the rarest level
            rarest = reference[feature].value_counts().idxmin()
            current.loc[current.index[: len(current) * 6 // 10], feature] = rarest
        result = detector.detect(reference, current)
        assert result.drifted_features == [feature], feature
        assert all(f.unseen_categories == [] for f in result.features)  # a shift, not new levels


def test_unseen_categories_are_reported(specs, car_loan):
    spec = specs["credit-scoring-ai"]
    reference = _snapshot(spec, car_loan["reference"].head(5_000))
    current = car_loan["analysis"].head(2_000).copy()
    current.loc[current.index[:300], "salary_range"] = "200K+ €"
    summary = drift_summary(spec, reference, _snapshot(spec, current))["versions"]["1.4.2"]
    salary = next(f for f in summary["features"] if f["feature"] == "salary_range")
    assert salary["unseen_categories"] == ["200K+ €"] and salary["drifted"]


def test_demographic_parity_matches_a_direct_computation(acs):
    frame = acs["analysis"]
    decisions = (frame["predicted_probability"] >= 0.8).astype(int)
    result = demographic_parity(decisions, frame["SEX"], 1, 100, "SEX", True)
    rates = decisions.groupby(frame["SEX"], observed=True).mean()
    assert result.ratio == pytest.approx(rates.min() / rates.max(), abs=1e-12)
    assert result.difference == pytest.approx(rates.max() - rates.min(), abs=1e-12)
    assert result.worst_group == rates.idxmin() == "2"
    assert result.ratio < 0.8  # raising the threshold to 0.8 breaks the four-fifths rule on SEX


def test_small_groups_are_shown_but_not_scored(acs):
    frame = acs["analysis"].head(20_000)
    decisions = (frame["predicted_probability"] >= 0.5).astype(int)
    result = demographic_parity(decisions, frame["RAC1P"], 1, 100, "RAC1P", False)
    small = {g for g, s in result.groups.items() if s["count"] < 100}
    assert small and all(not result.groups[g]["eligible"] for g in small)
    eligible = {g: s["favourable_rate"] for g, s in result.groups.items() if s["eligible"]}
    assert result.ratio == pytest.approx(min(eligible.values()) / max(eligible.values()))


def test_a_single_group_gives_no_ratio_and_says_why():
    result = demographic_parity(pd.Series([1, 0, 1] * 50), pd.Series(["a"] * 150), 1, 100, "X", True)
    assert result.ratio is None and "fewer than two groups" in result.note


def test_fairness_score_uses_enforced_attributes_only(specs, acs):
    spec = specs["employment-screening-ai"]
    frame = acs["analysis"].head(15_000).copy()
    for version, threshold in (("3.1.0", 0.5), ("3.2.0", 0.8)):
        frame["prediction"] = (frame["predicted_probability"] >= threshold).astype(np.int64)
        doc = fairness_summary(spec, _snapshot(spec, frame, version, "acs"))["versions"][version]
        sex = next(a for a in doc["attributes"] if a["attribute"] == "SEX")
        assert doc["fairness_score"] == sex["ratio"] and doc["worst_attribute"] == "SEX"
        if version == "3.1.0":
            assert doc["fairness_score"] > 0.8
        else:
            assert doc["fairness_score"] < 0.8 and doc["worst_group"] == "2"


def test_missing_feature_values_are_refused_naming_the_feature(specs, car_loan):
    spec = specs["credit-scoring-ai"]
    reference = _snapshot(spec, car_loan["reference"].head(5_000))
    current = _snapshot(spec, car_loan["analysis"].head(2_000))
    current.loc[current.index[:3], "car_value"] = np.nan
    with pytest.raises(BadInputError, match="feature car_value has 3 missing value"):
        drift_summary(spec, reference, current)


def test_a_categorical_column_stored_as_float_is_not_read_as_new_levels(specs, acs):
    spec = specs["employment-screening-ai"]
    frame = acs["analysis"].head(3_000)
    reference = _snapshot(spec, acs["reference"].head(5_000), "3.1.0", "acs")
    current = _snapshot(spec, frame, "3.1.0", "acs")
    current["DIS"] = current["DIS"].astype(float)  # a day whose integer codes arrived as floats
    reference["DIS"] = reference["DIS"].astype(int)
    dis = next(
        f for f in drift_summary(spec, reference, current)["versions"]["3.1.0"]["features"] if f["feature"] == "DIS"
    )
    assert dis["unseen_categories"] == []
