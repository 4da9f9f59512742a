"""Which version a rollback restores: the most recently measured one the policies allow, judged on
the Deployment as the pin would leave it, with the shipped policies on OPA."""

from __future__ import annotations

import pytest

from rai_pipelines.governance.bundle import PolicyBundle
from rai_pipelines.governance.rego import make_engine
from rai_pipelines.governance.rollback import NoCompliantVersion, _pin_image, choose_rollback_target
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


def test_recency_does_not_depend_on_the_order_of_the_facts_rows(bundle):
    measured_again_listed_first = [_facts("1.0.0", "05", 0.0011), *FACTS]
    target, considered = _choose(bundle, measured_again_listed_first)
    assert target == "1.0.0" and [version for version, _ in considered] == ["1.0.0"]


def test_the_deployment_given_is_not_changed_by_trying_candidates(bundle):
    manifest = _deployment("2.0.0")
    choose_rollback_target(make_engine("opa"), bundle, manifest, MODEL, "2.0.0", FACTS, IMAGES)
    assert manifest == _deployment("2.0.0")


def test_without_any_measured_candidate_the_refusal_says_so(bundle):
    with pytest.raises(NoCompliantVersion, match=r"considered: none with governance facts\)"):
        _choose(bundle, [_facts("2.0.0", "06", 0.0081)])


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        (
            "registry.example.com/credit-risk/credit-scoring-ai:1.1.0",
            "registry.example.com/credit-risk/credit-scoring-ai",
        ),
        (
            "registry.example.com:5000/credit-risk/credit-scoring-ai:1.1.0",
            "registry.example.com:5000/credit-risk/credit-scoring-ai",
        ),
        (
            "registry.example.com:5000/credit-risk/credit-scoring-ai",
            "registry.example.com:5000/credit-risk/credit-scoring-ai",
        ),
        (
            f"registry.example.com:5000/credit-risk/credit-scoring-ai@sha256:{'a' * 64}",
            "registry.example.com:5000/credit-risk/credit-scoring-ai",
        ),
        (
            f"registry.example.com/credit-risk/credit-scoring-ai:1.1.0@sha256:{'b' * 64}",
            "registry.example.com/credit-risk/credit-scoring-ai",
        ),
        ("credit-scoring-ai", "credit-scoring-ai"),
    ],
)
def test_the_pin_recognises_the_models_image_with_any_tag_digest_or_registry_port(image, repository):
    pinned = f"{repository}:1.1.0"
    manifest = _deployment("2.0.0")
    containers = manifest["spec"]["template"]["spec"]["containers"]
    containers[0]["image"] = image
    containers.append({"name": "proxy", "image": "registry.example.com:5000/envoy:1.31"})
    containers.append("not a container")
    _pin_image(manifest, pinned)
    assert containers[0]["image"] == pinned
    assert containers[1:] == [{"name": "proxy", "image": "registry.example.com:5000/envoy:1.31"}, "not a container"]


def test_a_container_without_an_image_is_left_alone():
    manifest = _deployment("2.0.0")
    manifest["spec"]["template"]["spec"]["containers"].insert(0, {"name": "init"})
    _pin_image(manifest, IMAGES["1.1.0"])
    assert manifest["spec"]["template"]["spec"]["containers"] == [
        {"name": "init"},
        {"name": "model", "image": IMAGES["1.1.0"]},
    ]
