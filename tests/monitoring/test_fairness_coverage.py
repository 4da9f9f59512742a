"""Fairness scores say which rows they cover: rows without a protected attribute are counted, never
dropped silently, and a score that leaves too much out (an intersection whose worst-off groups are
the small ones) is withheld or flagged, as the model declares."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from rai_pipelines.monitoring.fairness import group_fairness, summarise
from rai_pipelines.monitoring.reports import fairness_summary
from rai_pipelines.monitoring.snapshots import PROTECTED_PREFIX
from rai_pipelines.settings import PROJECT_ROOT

ACS = PROJECT_ROOT / "rai_pipelines" / "demo" / "data" / "acs_employment_ma"


@pytest.fixture(scope="module")
def acs_day():
    """1,000 rows of the census employment traffic, 200 of them without SEX."""
    frame = pd.read_parquet(ACS / "analysis.parquet").sample(1_000, random_state=0).reset_index(drop=True)
    sex = frame["SEX"].astype("string")
    sex.iloc[np.random.default_rng(0).choice(1_000, size=200, replace=False)] = pd.NA
    return frame.assign(SEX=sex)


def test_rows_without_the_attribute_are_counted_not_dropped_silently(acs_day):
    result = group_fairness(acs_day["prediction"], acs_day["SEX"], 1, 100, "SEX", True, min_coverage=0.75)
    assert sum(g["count"] for g in result.groups.values()) == 800
    assert (result.rows, result.rows_without_group, result.coverage) == (1_000, 200, 0.8)
    assert "200 of 1000 rows have no value for SEX and are in no group" in result.note
    assert result.ratio is not None and not result.coverage_warning


def test_below_the_declared_coverage_an_enforced_score_is_withheld_and_the_policies_fail_closed(acs_day):
    withheld = group_fairness(acs_day["prediction"], acs_day["SEX"], 1, 100, "SEX", True, min_coverage=0.9)
    assert withheld.ratio is None and withheld.ratio_ci is None
    assert withheld.note.startswith("the scored groups cover 80.0% of the rows, below the declared 90%: no score")
    summary = summarise([withheld])
    assert summary.score is None and summary.coverage == 0.8


def _intersection_day() -> tuple[pd.Series, pd.Series]:
    """500 rows of sex x age: four groups large enough to score, with favourable rates 0.60-0.63
    (parity 0.952 among them), and two small groups, 15% of the day, favoured at 0.42 and 0.44."""
    sizes = {"F&young": 100, "F&old": 100, "M&young": 120, "M&old": 105, "F&senior": 50, "M&senior": 25}
    favoured = {"F&young": 63, "F&old": 60, "M&young": 75, "M&old": 65, "F&senior": 21, "M&senior": 11}
    groups, decisions = [], []
    for group, n in sizes.items():
        groups += [group] * n
        decisions += [1] * favoured[group] + [0] * (n - favoured[group])
    return pd.Series(decisions), pd.Series(groups)


def test_an_intersection_cannot_look_fair_by_leaving_out_its_worst_off_groups():
    decisions, groups = _intersection_day()
    rates = decisions.groupby(groups).mean()
    assert rates.min() / rates.max() == pytest.approx(0.42 / 0.63, rel=1e-12)  # 0.667 over every group

    flagged = group_fairness(decisions, groups, 1, 100, "SEX&AGE", False, min_coverage=0.9, low_coverage="warn")
    assert flagged.ratio == pytest.approx(0.60 / 0.63, rel=1e-12)  # 0.952 among the four scored
    assert flagged.coverage == pytest.approx(425 / 500) and flagged.coverage_warning
    assert "covers 85.0% of the rows, below the declared 90%" in flagged.note
    assert "75 rows are in groups smaller than 100" in flagged.note

    withheld = group_fairness(decisions, groups, 1, 100, "SEX&AGE", False, min_coverage=0.9)
    assert withheld.ratio is None and "85.0%" in withheld.note


def test_the_fairness_report_carries_each_scores_coverage(specs, acs_day):
    spec = replace(specs["employment-screening-ai"], fairness_min_coverage=0.75)
    snapshot = pd.DataFrame(
        {
            "model_version": "3.1.0",
            "decision": acs_day["prediction"].astype("int64"),
            "label": pd.array([pd.NA] * len(acs_day), dtype="Int64"),
            PROTECTED_PREFIX + "SEX": acs_day["SEX"],
            PROTECTED_PREFIX + "RAC1P": acs_day["RAC1P"].astype("string"),
        }
    )
    doc = fairness_summary(spec, snapshot)["versions"]["3.1.0"]
    by_attribute = {a["attribute"]: a for a in doc["attributes"]}
    assert by_attribute["SEX"]["coverage"] == 0.8 and by_attribute["SEX"]["rows_without_group"] == 200
    assert doc["coverage"] == 0.8  # SEX is the enforced attribute
    assert doc["fairness_score"] == by_attribute["SEX"]["ratio"]
