"""Governance facts for a candidate model version before it ships, computed from a validation set:
what the gate needs when no production traffic exists yet."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.registry import ModelSpec
from rai_pipelines.costs.prices import Price, decimal_text
from rai_pipelines.costs.serving_prices import estimated_cost_per_inference_usd
from rai_pipelines.monitoring.fairness import demographic_parity, fairness_score


def candidate_facts(
    spec: ModelSpec,
    validation: pd.DataFrame,
    candidate_version: str,
    candidate_score_column: str,
    price_of: Callable[[], Price],
    daily_inferences: int | None = None,
    baseline_score_column: str | None = None,
    source: str = "validation set",
) -> dict:
    """The candidate's facts: its decisions at its declared threshold give the fairness score on the
    validation set's protected attributes; the catalogue price (`price_of`, asked once the validation
    set is known to be usable) of its declared serving resources
    over a day, divided by the expected daily inferences (`daily_inferences`, else the throughput
    the registry declares), gives the estimated cost per inference; its scores against the
    baseline's on the same rows give the prediction-drift p-value."""
    declared = spec.version(candidate_version)
    where = f"{spec.name} {candidate_version}"
    if daily_inferences is not None and daily_inferences <= 0:
        raise BadInputError("the expected daily inferences must be a positive number")
    needed = [candidate_score_column, *spec.protected_attributes]
    if baseline_score_column:
        needed.append(baseline_score_column)
    missing = [c for c in needed if c not in validation.columns]
    if missing:
        raise BadInputError(f"{source}: no column(s) {', '.join(missing)} for {spec.name} {candidate_version}")
    if validation.empty:
        raise BadInputError(f"{source}: the validation set is empty")
    scores = validation[candidate_score_column]
    if scores.isna().any():
        raise BadInputError(f"{source}: column {candidate_score_column} has {int(scores.isna().sum())} missing scores")
    price = price_of()
    estimate = estimated_cost_per_inference_usd(price, declared.serving, where, daily_inferences)
    daily_inferences = daily_inferences or declared.serving.expected_inferences_per_day
    decisions = (scores >= declared.decision_threshold).astype("int64")
    results = [
        demographic_parity(
            decisions,
            validation[attr],
            spec.favourable_outcome,
            spec.min_group_size,
            attr,
            attr in spec.enforced_protected_attributes,
        )
        for attr in spec.protected_attributes
    ]
    facts: dict = {
        "model_name": spec.name,
        "model_version": candidate_version,
        "inference_count": int(daily_inferences),
        "fairness_applicable": bool(spec.enforced_protected_attributes),
        "estimated_cost_per_inference_usd": estimate,
        "estimated_from": f"{price.source}, fetched {price.fetched_on}: {decimal_text(price.usd_per_hour)} USD/h",
        "evidence": f"{source}: {len(validation)} rows",
    }
    score = fairness_score(results)
    if score is not None:
        facts["fairness_score"] = score
    if baseline_score_column:
        from scipy.stats import ks_2samp

        facts["prediction_drift_p_value"] = float(ks_2samp(scores, validation[baseline_score_column]).pvalue)
    return facts


def read_validation_set(path: str) -> pd.DataFrame:
    file = Path(path)
    if not file.is_file():
        raise BadInputError(f"{path}: validation set not found")
    try:
        frame = pd.read_parquet(file) if file.suffix == ".parquet" else pd.read_csv(file)
    except Exception as exc:
        raise BadInputError(f"{path}: not a readable Parquet or CSV file: {exc}") from exc
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(str)
    return frame
