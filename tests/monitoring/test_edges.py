"""Edge cases found in review: each names the defect it guards against."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.governance.facts import ai_models_document
from rai_pipelines.monitoring.drift import as_levels, make_detector
from rai_pipelines.monitoring.fairness import group_fairness, summarise


def test_an_enforced_attribute_that_cannot_be_scored_leaves_no_score():
    decisions = pd.Series([1, 0] * 300)
    scored = group_fairness(decisions, pd.Series(["a", "b", "c"] * 200), 1, 100, "RACE", True)
    unscored = group_fairness(decisions, pd.Series(["x"] * 600), 1, 100, "SEX", True)
    assert scored.ratio is not None and unscored.ratio is None
    assert summarise([scored, unscored]).score is None  # not RACE's score standing in for both
    assert summarise([scored, replace(unscored, enforced=False)]).score == scored.ratio


def test_the_equalized_odds_worst_group_follows_the_binding_rate():
    # Equal true-positive rates; group b gets the favourable decision far more often when it should not.
    labels = pd.Series([1] * 200 + [0] * 200 + [1] * 200 + [0] * 200)
    decisions = pd.Series([1] * 180 + [0] * 20 + [1] * 20 + [0] * 180 + [1] * 180 + [0] * 20 + [1] * 100 + [0] * 100)
    groups = pd.Series(["a"] * 400 + ["b"] * 400)
    result = group_fairness(decisions, groups, 1, 100, "G", True, labels=labels)
    assert result.equalized_odds_ratio == pytest.approx(0.2)  # FPR 0.1 against 0.5
    assert result.equalized_odds_worst_group == "b"


def test_whole_floats_are_the_same_level_whatever_else_the_window_holds():
    assert list(as_levels(pd.Series([0.0, 0.5, 1.0]))) == ["0", "0.5", "1"]
    assert list(as_levels(pd.Series([0.0, 1.0]))) == ["0", "1"]
    reference = pd.DataFrame({"x": [0.0, 0.5, 1.0] * 200})
    current = pd.DataFrame({"x": [0.0, 1.0] * 300})
    result = make_detector("columnar", [], ["x"]).detect(reference, current, score_column=None)
    assert result.features[0].unseen_categories == []


def test_infinite_feature_values_are_refused_naming_the_feature():
    reference = pd.DataFrame({"x": np.arange(500, dtype=float)})
    current = pd.DataFrame({"x": np.r_[np.arange(499, dtype=float), np.inf]})
    with pytest.raises(BadInputError, match="feature x has 1 infinite value"):
        make_detector("columnar", ["x"], []).detect(reference, current, score_column=None)


def test_small_groups_are_counted_but_their_rates_are_not_published():
    decisions = pd.Series([1, 0] * 150 + [0, 0, 1])
    groups = pd.Series(["big"] * 300 + ["tiny"] * 3)
    result = group_fairness(decisions, groups, 1, 100, "G", True, labels=pd.Series([1] * 303))
    assert result.groups["tiny"] == {
        "count": 3,
        "favourable_rate": None,
        "eligible": False,
        "labelled": None,
        "tpr": None,
        "fpr": None,
    }
    assert result.groups["big"]["favourable_rate"] == 0.5


def test_a_protected_attribute_may_not_be_declared_as_a_feature(specs, tmp_path):
    from ruamel.yaml import YAML

    from rai_pipelines.core.registry import load_model_spec

    yaml = YAML(typ="safe")
    doc = yaml.load(open(specs["employment-screening-ai"].source).read())
    doc["features"]["categorical"].append("SEX")
    path = tmp_path / "m.yaml"
    with open(path, "w") as out:
        yaml.dump(doc, out)
    with pytest.raises(BadInputError, match="protected attribute\\(s\\) SEX are also declared as features"):
        load_model_spec(path)


def test_the_policies_see_the_latest_labelled_performance_not_a_null():
    rows = [
        {"date": "2023-11-05", "model_name": "m", "model_version": "1", "roc_auc": 0.96, "accuracy": 0.93},
        {"date": "2023-11-06", "model_name": "m", "model_version": "1", "roc_auc": 0.95, "accuracy": 0.92},
        {"date": "2023-11-08", "model_name": "m", "model_version": "1", "roc_auc": None, "fairness_score": 0.9},
    ]
    document = ai_models_document(rows)["1"]
    assert document["roc_auc"] == 0.95 and document["performance_date"] == "2023-11-06"
    assert document["date"] == "2023-11-08" and document["fairness_score"] == 0.9


def test_the_classifier_skips_a_window_too_small_to_train_on(specs):
    from rai_pipelines.monitoring.reports import drift_summary

    spec = replace(specs["credit-scoring-ai"], drift_multivariate="classifier")
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            **{c: rng.normal(size=n) for c in spec.numeric_features},
            **{c: rng.choice(["a", "b"], n) for c in spec.categorical_features},
            "score": rng.random(n),
            "model_version": ["1.4.2"] * (n - 5) + ["2.0.0"] * 5,  # a rollout at the end of the day
        }
    )
    doc = drift_summary(spec, frame, frame)["versions"]
    assert "skipped" in doc["2.0.0"]["multivariate"] and "auc" in doc["1.4.2"]["multivariate"]
