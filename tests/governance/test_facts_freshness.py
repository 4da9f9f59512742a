"""Governance facts are per model: one model's failed day leaves the other models' facts current,
and the policies see how far behind each version's facts are (`facts_age_days`)."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from rai_pipelines.core.lake import Lake
from rai_pipelines.definitions import build_definitions
from rai_pipelines.governance.facts import ai_models_document, read_all_facts
from tests.conftest import make_world, settings_for
from tests.monitoring.test_assets import DAYS, QUIET

FIRST, SECOND = (d.isoformat() for d in DAYS[:2])


def test_facts_age_is_how_far_the_models_newest_facts_are_behind_any_models():
    rows = [
        {"date": "2023-11-04", "model_name": "a", "model_version": "1.0"},
        {"date": "2023-11-06", "model_name": "a", "model_version": "1.0"},
        {"date": "2023-11-04", "model_name": "b", "model_version": "2.0"},
        {"date": "2023-11-05", "model_name": "b", "model_version": "2.1"},
    ]
    document = ai_models_document(rows)
    # b's newest facts are a day behind a's; b 2.0 stopped serving earlier, which is not staleness
    assert {v: e["facts_age_days"] for v, e in document.items()} == {"1.0": 0, "2.0": 1, "2.1": 1}


@pytest.fixture(scope="module")
def world(tmp_path_factory, specs):
    return make_world(tmp_path_factory.mktemp("freshness") / "world", specs, days=DAYS[:2])


def _day(defs, instance, day):
    return defs.resolve_job_def("daily_governance_job").execute_in_process(
        partition_key=day, instance=instance, run_config=QUIET, raise_on_error=False
    )


def test_one_models_failed_day_stops_only_its_own_facts_and_they_age(world):
    lake = Lake(str(world.lake_root))
    for built in ("feature_snapshots", "governance_facts"):
        shutil.rmtree(world.lake_root / built, ignore_errors=True)
    defs = build_definitions(settings_for(world))
    with dg.instance_for_test() as instance:
        assert _day(defs, instance, FIRST).success
        broken = {"model": "credit-scoring-ai", "date": SECOND}
        lake.write_table(
            "inference_logs", broken, lake.read_table("inference_logs", broken).drop_columns(["car_value"])
        )
        second = _day(defs, instance, SECOND)
    assert not second.success
    materialised = {e.asset_key.to_user_string() for e in second.get_asset_materialization_events()}
    assert "employment_screening_ai/governance_facts" in materialised
    assert "credit_scoring_ai/governance_facts" not in materialised
    assert lake.exists("governance_facts", {"model": "employment-screening-ai", "date": SECOND})
    assert not lake.exists("governance_facts", {"model": "credit-scoring-ai", "date": SECOND})

    document = ai_models_document(read_all_facts(lake))
    ages = {entry["model_name"]: entry["facts_age_days"] for entry in document.values()}
    assert ages == {"credit-scoring-ai": 1, "employment-screening-ai": 0}
    credit = [e for e in document.values() if e["model_name"] == "credit-scoring-ai"]
    assert {e["date"] for e in credit} == {FIRST}  # yesterday's facts, and the policies can see it
