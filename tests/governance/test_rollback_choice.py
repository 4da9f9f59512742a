"""Which version a rollback restores: the most recently measured one the policies allow, judged on
the Deployment as the pin would leave it, with the shipped policies on OPA."""

from __future__ import annotations

import pytest

from rai_pipelines.governance.bundle import PolicyBundle
from rai_pipelines.governance.rego import make_engine
from rai_pipelines.governance.rollback import NoCompliantVersion, choose_rollback_target
from rai_pipelines.settings import PROJECT_ROOT

MODEL = "credit-scoring-ai"
IMAGES = {v: f"registry.example.com/credit-risk/{MODEL}:{v}" for v in ("1.0.0", "1.1.0", "1.2.0", "1.3.0", "2.0.0")}


def _facts(version: str, day: str, cost: float) -> dict:
    return {
        "date": f"2023-11-{day}",
        "model_name": MODEL,
        "model_version": version,
        "fairness_applicable": False,
        "estimated_cost_per_inference_usd": cost,
        "inference_count": 3572,
    }


# Measured in this order: 1.1.0 is the most recent compliant version, 1.0.0 an older compliant one,
# 1.2.0 the most recent before the bad one but over budget; 1.3.0 is declared but never measured.
FACTS = [
    _facts("1.0.0", "01", 0.0011),
    _facts("1.1.0", "03", 0.0012),
    _facts("1.2.0", "04", 0.0090),
    _facts("2.0.0", "06", 0.0081),
]


def _deployment(version: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": MODEL, "labels": {"app": MODEL, "team": "credit-risk"}},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": MODEL, "model-version": version}},
                "spec": {"containers": [{"name": "model", "image": IMAGES[version]}]},
            }
        },
    }


@pytest.fixture(scope="module")
def bundle():
    return PolicyBundle.load(PROJECT_ROOT / "policies")


def _choose(bundle, facts):
    return choose_rollback_target(make_engine("opa"), bundle, _deployment("2.0.0"), MODEL, "2.0.0", facts, IMAGES)


def test_the_most_recently_measured_compliant_version_is_restored(bundle):
    target, considered = _choose(bundle, FACTS)
    assert target == "1.1.0"
    assert [version for version, _ in considered] == ["1.2.0", "1.1.0"]  # newest first, stops at the first allowed
    assert considered[0][1] == ["Estimated inference cost exceeds budget (0.005 USD)."] and considered[1][1] == []


def test_recency_is_the_last_day_measured_not_the_version_number(bundle):
    measured_again = [*FACTS, _facts("1.0.0", "05", 0.0011)]  # 1.0.0 served again after 1.2.0
    target, _ = _choose(bundle, measured_again)
    assert target == "1.0.0"


def test_a_version_never_measured_is_not_restored(bundle):
    only_unmeasured_left = [_facts("1.2.0", "04", 0.0090), _facts("2.0.0", "06", 0.0081)]
    with pytest.raises(NoCompliantVersion, match="no version other than 2.0.0 is known to comply"):
        _choose(bundle, only_unmeasured_left)
