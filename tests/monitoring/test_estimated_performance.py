"""Performance before the labels arrive (CBPE): the estimate is the ROC curve of expected counts, so
with the true outcomes in place of the calibrated scores it is the realised ROC AUC exactly; on the
car-loan data it tracks the realised figures chunk by chunk and sees the drop after the change."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.monitoring.estimated_performance import (
    Calibration,
    estimate,
    estimated_accuracy,
    estimated_roc_auc,
)
from rai_pipelines.monitoring.reports import performance_summary, reference_calibration


def test_with_the_outcomes_as_probabilities_the_estimate_is_the_realised_figure(car_loan):
    _, analysis = car_loan
    chunk = analysis.iloc[:5_000]
    scores = chunk["y_pred_proba"].to_numpy(float)
    outcomes = chunk["repaid"].to_numpy(float)
    assert estimated_roc_auc(outcomes, scores) == pytest.approx(roc_auc_score(outcomes, scores), rel=1e-12)
    tied = np.round(scores, 2)  # ties are one point of the curve, as in sklearn's roc_curve
    assert estimated_roc_auc(outcomes, tied) == pytest.approx(roc_auc_score(outcomes, tied), rel=1e-12)
    favoured = chunk["y_pred"].to_numpy() == 1
    assert estimated_accuracy(outcomes, favoured) == pytest.approx(np.mean(favoured == (outcomes == 1)))


def test_the_estimate_tracks_the_realised_figures_and_sees_the_change(car_loan):
    reference, analysis = car_loan
    calibration = Calibration.fit(reference["y_pred_proba"].to_numpy(float), reference["repaid"].to_numpy(float))
    assert calibration.applied and calibration.ece_after < calibration.ece_before  # NannyML's rule decides
    estimated, realised = [], []
    for start in range(0, 50_000, 5_000):
        chunk = analysis.iloc[start : start + 5_000]
        found = estimate(calibration, chunk["y_pred_proba"].to_numpy(float), chunk["y_pred"].to_numpy() == 1)
        estimated.append(found["estimated_roc_auc"])
        realised.append(roc_auc_score(chunk["repaid"], chunk["y_pred_proba"]))
    assert np.mean(np.abs(np.array(estimated) - realised)) < 0.005
    assert min(estimated[:5]) > max(estimated[5:]) + 0.005  # the analysis period's change, from row 25,000
    # NannyML 0.13's CBPE on these chunks (benchmarks/cbpe.py runs it): 0.9707 for the first, 0.9613 for the last
    assert estimated[0] == pytest.approx(0.97071, abs=1e-4) and estimated[-1] == pytest.approx(0.96132, abs=1e-4)


def test_without_labelled_reference_the_report_says_why_there_is_no_estimate(specs, car_loan):
    spec = specs["credit-scoring-ai"]
    _, analysis = car_loan
    snapshot = pd.DataFrame(
        {
            "model_version": "1.4.2",
            "score": analysis["y_pred_proba"].iloc[:2_000].to_numpy(float),
            "decision": analysis["y_pred"].iloc[:2_000].to_numpy(),
            "label": pd.array([pd.NA] * 2_000, dtype="Int64"),
        }
    )
    calibration, note = reference_calibration(spec, snapshot.assign(label=pd.NA))
    assert calibration is None and note.startswith("the reference has no labels")
    doc = performance_summary(spec, snapshot, calibration, note)["versions"]["1.4.2"]
    assert doc["estimated_roc_auc"] is None and doc["estimation_note"] == note and doc["roc_auc"] is None
    with pytest.raises(BadInputError, match="needs labels of both outcomes"):
        Calibration.fit(np.linspace(0, 1, 500), np.ones(500))
