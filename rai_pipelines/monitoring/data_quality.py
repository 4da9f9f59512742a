"""Great Expectations suites for a day's feature snapshot, derived from the model's declaration and
its reference window.

Two suites, because they call for different actions:

- ``complete``: the day has rows, every declared column is there, required features, score and
  decision have no missing values, each optional feature is missing from no more than its declared
  share of the rows, scores are probabilities. A failure means the reports would be computed on
  garbage, so it blocks them.
- ``like_reference``: numeric features stay within the reference's range, categorical features
  within its levels, each protected attribute has more than one group. A failure is a finding to
  read (the drift report shows the same shift with its size), not a reason to stop monitoring.
"""

from __future__ import annotations

import pandas as pd

from rai_pipelines.core.quality import SuiteResult, run_suite
from rai_pipelines.core.registry import ModelSpec
from rai_pipelines.monitoring.drift import ReferenceProfile, as_levels
from rai_pipelines.monitoring.snapshots import PROTECTED_PREFIX

RANGE_MOSTLY = 0.99
FINITE = 1.7e308  # share of a day's values that must fall in the reference's range


def _expectations(spec: ModelSpec, reference: ReferenceProfile | None, suite: str) -> list:
    import great_expectations as gx

    e = gx.expectations
    if suite == "complete":
        required = ["request_id", "model_version", *spec.features, "score", "decision"]
        out = [e.ExpectTableRowCountToBeBetween(min_value=1)]
        out += [
            e.ExpectColumnToExist(column=c)
            for c in required + [PROTECTED_PREFIX + a for a in spec.protected_attributes]
        ]
        required_values = [c for c in spec.features if c not in spec.missing_tolerance]
        out += [
            e.ExpectColumnValuesToNotBeNull(column=c) for c in [*required_values, "score", "decision", "model_version"]
        ]
        out += [
            e.ExpectColumnValuesToNotBeNull(
                column=c, mostly=1 - spec.missing_tolerance[c], meta={"missing_tolerance": spec.missing_tolerance[c]}
            )
            for c in spec.optional_features
        ]
        out.append(e.ExpectColumnValuesToBeBetween(column="score", min_value=0, max_value=1))
        # Infinite values are not missing, but they break every distance and effect size.
        out += [
            e.ExpectColumnValuesToBeBetween(column=c, min_value=-FINITE, max_value=FINITE, meta={"finite": True})
            for c in spec.numeric_features
        ]
        return out
    out = []
    if reference is not None:
        for column in spec.numeric_features:
            values = reference.numeric[column].sorted_values
            out.append(
                e.ExpectColumnValuesToBeBetween(
                    column=column, min_value=float(values[0]), max_value=float(values[-1]), mostly=RANGE_MOSTLY
                )
            )
        for column in spec.categorical_features:
            levels = sorted(str(level) for level in reference.categorical[column].counts.index)
            out.append(
                e.ExpectColumnValuesToBeInSet(
                    column=column, value_set=levels, meta={"allowed": "the reference's levels"}
                )
            )
    out += [
        e.ExpectColumnUniqueValueCountToBeBetween(column=PROTECTED_PREFIX + a, min_value=2)
        for a in spec.protected_attributes
    ]
    return out


def _comparable(snapshot: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """Categorical levels as text, as the reference's levels are: 1 and 1.0 are the same level."""
    frame = snapshot.copy()
    for column in spec.categorical_features:
        if column in frame:
            frame[column] = as_levels(frame[column]).astype(object)
    return frame


def validate_snapshot(
    snapshot: pd.DataFrame, spec: ModelSpec, reference: ReferenceProfile | None, suite: str
) -> SuiteResult:
    result = run_suite(_comparable(snapshot, spec), f"{spec.name}.{suite}", _expectations(spec, reference, suite))
    return SuiteResult(suite, result.evaluated, result.findings)
