"""Explanations of the car-loan model's scores: additive TreeSHAP attributions, their drift after
the data set's documented change and not before, fidelity that gates their use, the model's own
LightGBM file read safely, and nDCG as SageMaker Clarify defines it."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.registry import load_model_spec
from rai_pipelines.monitoring.explanations import (
    attribution_drift,
    explanation_summary,
    fit_surrogate,
    load_tree_model,
    ndcg,
    reference_attributions,
)
from tests.monitoring.test_assets import _declaration

CREDIT = "credit-scoring-ai"


def _text(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(str)
    return frame.rename(columns={"y_pred_proba": "score"})


@pytest.fixture(scope="module")
def loans(car_loan):
    reference, analysis = car_loan
    return _text(reference), _text(analysis)


@pytest.fixture(scope="module")
def surrogate(specs, loans):
    spec = specs[CREDIT]
    return fit_surrogate(loans[0], spec.numeric_features, spec.categorical_features)


def test_attributions_are_additive_and_the_surrogate_is_faithful(surrogate, loans):
    assert surrogate.holdout_fidelity > 0.95
    x = surrogate.coding.matrix(loans[1].iloc[:10_000])
    values, expected, error = surrogate.attributions(x)
    assert values.shape == (10_000, 7) and error < 1e-6
    assert np.allclose(values.sum(axis=1) + expected, surrogate.predicted_scores(x), atol=1e-6)


def test_attributions_drift_after_the_documented_change_and_not_before(surrogate, loans):
    reference = reference_attributions(surrogate, loans[0], 10_000)
    before = explanation_summary(
        surrogate, reference, loans[1].iloc[20_000:25_000].assign(model_version="1"), 0.8, 10_000
    )
    after = explanation_summary(
        surrogate, reference, loans[1].iloc[30_000:35_000].assign(model_version="1"), 0.8, 10_000
    )
    before, after = before["versions"]["1"], after["versions"]["1"]
    assert before["usable"] and after["usable"]
    assert before["drifted_features"] == []
    # NannyML documents car_value, loan_length, salary_range and repaid_loan_on_prev_car as drifted
    assert {"car_value", "loan_length", "repaid_loan_on_prev_car"} <= set(after["drifted_features"])
    assert before["ndcg"] == pytest.approx(1.0) and not before["ndcg_alarm"]


def test_low_fidelity_gates_the_attributions(surrogate, loans):
    reference = reference_attributions(surrogate, loans[0], 10_000)
    window = loans[1].iloc[30_000:35_000].assign(model_version="1")
    window["score"] = np.random.default_rng(0).random(len(window))  # scores the explainer cannot reproduce
    doc = explanation_summary(surrogate, reference, window, 0.8, 10_000)["versions"]["1"]
    assert doc["fidelity"] < 0.8 and not doc["usable"]
    assert doc["drifted_features"] == [] and doc["ndcg"] is None
    assert "explain the explainer, not the model" in doc["note"]


def _explained(path, spec, loans, score, rows: int = 2_000, reference_rows: int = 5_000) -> dict:
    """The day's explanation of a model's own file, its logged scores given by `score(window)`."""
    reference, analysis = loans
    explainer = load_tree_model(str(path), reference, spec.numeric_features, spec.categorical_features)
    window = analysis.iloc[:rows].assign(model_version="1")
    window["score"] = score(explainer.coding.matrix(window))
    summary = explanation_summary(
        explainer, reference_attributions(explainer, reference, reference_rows), window, 0.8, 10_000
    )
    return {"output": explainer.output, **summary["versions"]["1"]}


def test_ndcg_is_clarifys_definition():
    reference = np.array([0.5, 0.3, 0.15, 0.05])  # the baseline's global mean |SHAP|, feature by feature
    assert ndcg(reference, reference * 2) == pytest.approx(1.0)  # same ranking
    # the two most important features swap places: DCG = 0.3/log2(2) + 0.5/log2(3) + 0.15/2 + 0.05/log2(5)
    dcg = 0.3 + 0.5 / np.log2(3) + 0.15 / 2 + 0.05 / np.log2(5)
    ideal = 0.5 + 0.3 / np.log2(3) + 0.15 / 2 + 0.05 / np.log2(5)
    assert ndcg(reference, np.array([0.3, 0.5, 0.15, 0.05])) == pytest.approx(dcg / ideal, rel=1e-12)
    assert ndcg(reference, np.array([0.05, 0.15, 0.3, 0.5])) < 0.9  # reversed: Clarify's alarm


def test_the_models_own_lightgbm_file_explains_its_own_scores(specs, loans, tmp_path):
    import lightgbm as lgb

    spec = specs[CREDIT]
    reference, analysis = loans
    from rai_pipelines.monitoring.explanations import FeatureCoding

    coding = FeatureCoding.from_reference(reference, spec.numeric_features, spec.categorical_features)
    params = {"objective": "binary", "num_threads": 1, "verbose": -1, "seed": 0, "deterministic": True}
    data = lgb.Dataset(coding.matrix(reference), reference["repaid"].to_numpy(), categorical_feature=[4, 5, 6])
    booster = lgb.train(params, data, num_boost_round=50)
    path = tmp_path / "credit.txt"
    booster.save_model(str(path))
    doc = _explained(path, spec, loans, booster.predict)  # the scores this model logged
    assert doc["output"] == "log-odds"
    assert doc["fidelity"] == pytest.approx(1.0, abs=1e-9) and doc["additivity_error"] < 1e-6

    pickled = tmp_path / "credit.pkl"
    pickled.write_bytes(pickle.dumps(booster))
    with pytest.raises(BadInputError, match="pickled models are refused"):
        load_tree_model(str(pickled), reference, spec.numeric_features, spec.categorical_features)
    with pytest.raises(BadInputError, match="the model reads 7 features, the registry declares 6"):
        load_tree_model(str(path), reference, spec.numeric_features[:3], spec.categorical_features)


def test_an_xgboost_json_model_explains_its_own_scores(specs, loans, tmp_path):
    import xgboost as xgb

    from rai_pipelines.monitoring.explanations import FeatureCoding

    spec = specs[CREDIT]
    reference, analysis = loans
    coding = FeatureCoding.from_reference(reference, spec.numeric_features, spec.categorical_features)
    data = xgb.DMatrix(coding.matrix(reference), label=reference["repaid"].to_numpy(), missing=np.nan)
    params = {"objective": "binary:logistic", "max_depth": 4, "nthread": 1, "seed": 0}
    booster = xgb.train(params, data, num_boost_round=40)
    path = tmp_path / "credit.json"
    booster.save_model(str(path))
    doc = _explained(path, spec, loans, lambda x: booster.predict(xgb.DMatrix(x, missing=np.nan)))
    assert doc["output"] == "log-odds"
    # XGBoost computes in float32: its contributions add up to its margin within float32 precision (2.2e-6
    # here on log-odds up to about 8), not the 1e-15 of LightGBM's float64
    assert doc["fidelity"] == pytest.approx(1.0, abs=1e-6) and doc["additivity_error"] < 1e-5
    (tmp_path / "junk.json").write_text('{"learner": 1}')
    with pytest.raises(BadInputError, match="not a readable XGBoost JSON model"):
        load_tree_model(str(tmp_path / "junk.json"), reference, spec.numeric_features, spec.categorical_features)


def test_a_model_file_outside_the_registry_folder_is_refused(specs, tmp_path):
    registry = tmp_path / "models"
    registry.mkdir()
    path = _declaration(registry, specs[CREDIT], explanations={"model": "../../etc/passwd"})
    with pytest.raises(BadInputError, match="explanations.model ../../etc/passwd is outside the registry folder"):
        load_model_spec(path)
    inside = load_model_spec(_declaration(registry, specs[CREDIT], explanations={"model": "credit.txt"}))
    assert inside.explanations.model == str((registry / "credit.txt").resolve())


def test_attribution_drift_compares_each_features_attributions(surrogate, loans):
    reference = reference_attributions(surrogate, loans[0], 10_000)
    drift, ranking = attribution_drift(surrogate.coding.features, reference, reference[:5_000], 0.05, 0.1)
    assert [d.feature for d in drift] == list(surrogate.coding.features)
    assert not any(d.drifted for d in drift) and ranking == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["forest", "histogram boosting"])
def test_a_scikit_learn_tree_ensemble_saved_with_skops_explains_its_own_scores(specs, loans, tmp_path, kind):
    import skops.io as sio
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

    from rai_pipelines.monitoring.explanations import FeatureCoding

    spec = specs[CREDIT]
    reference, analysis = loans
    coding = FeatureCoding.from_reference(reference, spec.numeric_features, spec.categorical_features)
    model = (
        RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0)
        if kind == "forest"
        else HistGradientBoostingClassifier(max_iter=50, random_state=0)
    )
    model.fit(coding.matrix(reference.iloc[:20_000]), reference["repaid"].iloc[:20_000])
    path = tmp_path / "credit.skops"
    sio.dump(model, path)
    doc = _explained(path, spec, loans, lambda x: model.predict_proba(x)[:, 1], rows=1_000, reference_rows=2_000)
    assert doc["output"] == ("probability" if kind == "forest" else "log-odds")
    assert doc["fidelity"] == pytest.approx(1.0, abs=1e-9) and doc["additivity_error"] < 1e-6


def test_a_skops_file_with_a_type_that_could_run_code_is_refused(specs, loans, tmp_path):
    import os

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    spec = specs[CREDIT]
    path = tmp_path / "evil.skops"
    sio.dump(FunctionTransformer(func=os.system), path)
    with pytest.raises(BadInputError, match="types that are not trusted: .*system"):
        load_tree_model(str(path), loans[0], spec.numeric_features, spec.categorical_features)


def test_an_onnx_model_is_explained_model_agnostically_and_additively(specs, loans, tmp_path):
    from skl2onnx import to_onnx
    from sklearn.ensemble import HistGradientBoostingClassifier

    from rai_pipelines.monitoring.explanations import ONNX_MAX_ROWS, FeatureCoding

    spec = specs[CREDIT]
    reference, analysis = loans
    coding = FeatureCoding.from_reference(reference, spec.numeric_features, spec.categorical_features)
    x = coding.matrix(reference.iloc[:20_000]).astype(np.float32)
    model = HistGradientBoostingClassifier(max_iter=50, random_state=0).fit(x, reference["repaid"].iloc[:20_000])
    path = tmp_path / "credit.onnx"
    path.write_bytes(to_onnx(model, x[:1], options={"zipmap": False}).SerializeToString())
    score = lambda x: model.predict_proba(x.astype(np.float32))[:, 1]  # noqa: E731
    doc = _explained(path, spec, loans, score, rows=3_000, reference_rows=10_000)
    assert doc["rows_explained"] == ONNX_MAX_ROWS  # model-agnostic attributions cost more: fewer rows
    assert doc["fidelity"] > 0.999999 and doc["additivity_error"] < 1e-6
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07not a graph")
    with pytest.raises(BadInputError, match="not a readable ONNX model"):
        load_tree_model(str(tmp_path / "broken.onnx"), reference, spec.numeric_features, spec.categorical_features)
