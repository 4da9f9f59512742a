"""The decision records the sensor writes and acts on, field by field: what was decided, on which
policy revision, input and facts, and what is done about it; and the run key that makes one rollback
per violation."""

from __future__ import annotations

import functools
import json
import re
import shutil

import pytest

from rai_pipelines.core.decision_log import decision_id, digest
from rai_pipelines.gitops.render import RenderedDeployment
from rai_pipelines.governance.bundle import PolicyBundle
from rai_pipelines.governance.decisions import evaluate_deployments, rollback_run_key
from rai_pipelines.governance.facts import ai_models_document
from rai_pipelines.governance.rego import engine_safe, make_engine, version_mismatch
from rai_pipelines.governance.rollback import choose_rollback_target
from rai_pipelines.settings import PROJECT_ROOT

QUERY = "data.apexlogic.ai_governance.decision"
REMOTE = "https://rai-bot:ghp_secret@git.example.com/platform/gitops.git"
REDACTED = "https://***@git.example.com/platform/gitops.git"
REVISION = "9f1c2e4b7a0d3c5e8f6a1b2c4d6e8f0a1b3c5d7e"
UNFAIR = "AI model fairness score below acceptable threshold (0.8)."


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return PolicyBundle.load(PROJECT_ROOT / "policies")


@pytest.fixture(scope="module")
def engine():
    return make_engine("opa")


def _deployment(version: str, app: str = "credit-scoring-ai") -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "labels": {"app": app, "team": "credit-risk"}},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": app, "model-version": version}},
                "spec": {"containers": [{"name": "model", "image": f"registry.example.com/{app}:{version}"}]},
            }
        },
    }


def _facts(version: str, fairness: float, run_id: str) -> dict:
    return {
        "date": "2023-11-06",
        "model_name": "credit-scoring-ai",
        "model_version": version,
        "fairness_score": fairness,
        "estimated_cost_per_inference_usd": 0.0012,
        "source_run_ids": [run_id],
    }


ROWS = [_facts("1.4.2", 0.91, "run-fair"), _facts("2.0.0", 0.62, "run-unfair")]


def _decide(engine, bundle, deployments, rows=ROWS):
    return {d.deployment.overlay: d for d in evaluate_deployments(engine, bundle, deployments, rows, REMOTE, REVISION)}


def test_a_violation_is_recorded_with_its_policy_input_facts_and_action(engine, bundle):
    manifest = _deployment("2.0.0")
    decision = _decide(engine, bundle, [RenderedDeployment("apps/credit-scoring-ai", manifest)])[
        "apps/credit-scoring-ai"
    ]
    ai_models = ai_models_document(ROWS)
    record = dict(decision.record)
    metrics, labels = record.pop("metrics"), record.pop("labels")
    assert record == {
        "decision_id": decision_id(bundle.digest, QUERY, digest(manifest), digest(ai_models), "apps/credit-scoring-ai"),
        "path": "apexlogic/ai_governance/decision",
        "bundles": {"policies": {"revision": bundle.revision, "digest": bundle.digest}},
        "input": manifest,
        "input_digest": digest(manifest),
        "facts_digest": digest(ai_models),
        "facts": ai_models["2.0.0"],
        "facts_source_run_ids": ["run-unfair"],
        "gitops": {"remote": REDACTED, "revision": REVISION, "overlay": "apps/credit-scoring-ai"},
        "app": "credit-scoring-ai",
        "model_version": "2.0.0",
        "result": {
            "deny": [UNFAIR],
            "warn": [],
            "violations": [{"rule": "fairness", "msg": UNFAIR, "severity": "rollback"}],
            "allowed": False,
            "remediation": "rollback",
        },
        "action": {"type": "rollback_requested"},
    }
    assert ai_models["2.0.0"]["fairness_score"] == 0.62
    assert metrics["timer_rego_query_eval_ns"] > 0 and labels["engine"] == "opa"
    assert decision.violations == [UNFAIR] and decision.remediation == "rollback" and decision.error is None


def test_the_decision_id_changes_with_the_input_the_facts_and_the_policies(engine, bundle, tmp_path):
    def decision_id_of(bundle, manifest, rows):
        (decision,) = evaluate_deployments(engine, bundle, [RenderedDeployment("apps/c", manifest)], rows, REMOTE, "r")
        return decision.decision_id

    first = decision_id_of(bundle, _deployment("1.4.2"), ROWS)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", first)
    assert decision_id_of(bundle, _deployment("1.4.2"), ROWS) == first
    assert decision_id_of(bundle, _deployment("2.0.0"), ROWS) != first
    # the same Deployment in another environment's overlay is another decision
    elsewhere = evaluate_deployments(
        engine,
        bundle,
        [RenderedDeployment("apps/credit-scoring-ai/overlays/prod-eu", _deployment("1.4.2"))],
        ROWS,
        REMOTE,
        REVISION,
    )
    assert elsewhere[0].decision_id != first
    assert decision_id_of(bundle, _deployment("1.4.2"), [*ROWS, _facts("1.5.0", 0.95, "run-new")]) != first
    shutil.copytree(PROJECT_ROOT / "policies", tmp_path / "policies")
    rule = tmp_path / "policies" / "ai_governance.rego"
    rule.write_text(rule.read_text() + "\n# a comment is a new revision of the policies\n")
    assert decision_id_of(PolicyBundle.load(tmp_path / "policies"), _deployment("1.4.2"), ROWS) != first


def test_a_compliant_deployment_is_recorded_as_allowed_with_nothing_to_do(engine, bundle):
    decision = _decide(engine, bundle, [RenderedDeployment("apps/credit", _deployment("1.4.2"))])["apps/credit"]
    assert decision.record["result"]["allowed"] is True and decision.record["result"]["deny"] == []
    assert decision.record["action"] == {"type": "none"} and decision.remediation == "none"
    assert decision.record["facts_source_run_ids"] == ["run-fair"]


def test_an_unsafe_model_version_label_is_an_alert_that_keeps_the_input_and_names_the_overlay(engine, bundle):
    manifest = _deployment("../../etc/passwd")
    fair = RenderedDeployment("apps/fair", _deployment("1.4.2"))
    decisions = _decide(engine, bundle, [RenderedDeployment("apps/bad", manifest), fair])
    record = decisions["apps/bad"].record
    assert record["result"]["error"].startswith("apps/bad: label model-version")
    assert decisions["apps/bad"].remediation == "alert" and decisions["apps/bad"].violations == []
    assert record["input"] == manifest and record["input_digest"] == digest(manifest)
    assert record["action"] == {"type": "alert"}
    assert record["path"] == "apexlogic/ai_governance/decision"
    assert record["bundles"] == {"policies": {"revision": bundle.revision, "digest": bundle.digest}}
    assert record["gitops"] == {"remote": REDACTED, "revision": REVISION, "overlay": "apps/bad"}
    assert record["app"] == "credit-scoring-ai"
    assert record["decision_id"] == decision_id(
        bundle.digest, QUERY, digest(manifest), digest(ai_models_document(ROWS)), "apps/bad"
    )
    assert decisions["apps/fair"].record["result"]["allowed"] is True  # the others are still decided


def test_an_oversized_input_is_an_alert_that_names_the_overlay_and_is_not_copied_into_the_log(engine, bundle):
    manifest = _deployment("1.4.2")
    manifest["metadata"]["annotations"] = {"blob": "x" * 1_100_000}
    (decision,) = evaluate_deployments(
        engine, bundle, [RenderedDeployment("apps/huge", manifest)], ROWS, REMOTE, REVISION
    )
    assert decision.error.startswith("apps/huge: Deployment: input of")
    assert decision.record["input"] is None and decision.record["input_digest"] == digest(manifest)


def test_a_deployment_without_a_model_version_label_is_decided_by_the_policies(engine, bundle):
    manifest = _deployment("1.4.2")
    del manifest["spec"]["template"]["metadata"]["labels"]["model-version"]
    (decision,) = evaluate_deployments(engine, bundle, [RenderedDeployment("apps/c", manifest)], ROWS, REMOTE, "r")
    assert decision.error is None  # not refused before evaluation: the policies' own violation
    assert decision.record["model_version"] is None and decision.record["facts"] is None
    assert decision.record["facts_source_run_ids"] == []
    assert decision.record["result"]["allowed"] is False


def test_one_rollback_run_key_per_app_overlay_version_and_rendered_deployment():
    manifest = _deployment("2.0.0")
    key = rollback_run_key("credit-scoring-ai", "apps/credit", "2.0.0", manifest)
    assert re.fullmatch(r"rollback-[0-9a-f]{24}", key)
    expected = digest(["credit-scoring-ai", "apps/credit", "2.0.0", digest(manifest)]).removeprefix("sha256:")[:24]
    assert key == f"rollback-{expected}"
    assert rollback_run_key("credit-scoring-ai", "apps/credit", "2.0.0", _deployment("2.0.0")) == key
    changed = _deployment("2.0.0")
    changed["spec"]["replicas"] = 3
    others = {
        rollback_run_key("employment-screening-ai", "apps/credit", "2.0.0", manifest),
        rollback_run_key("credit-scoring-ai", "apps/credit-eu", "2.0.0", manifest),
        rollback_run_key("credit-scoring-ai", "apps/credit", "2.0.1", manifest),
        rollback_run_key("credit-scoring-ai", "apps/credit", "2.0.0", changed),
    }
    assert len(others) == 4 and key not in others


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (1e-320, 0.0),  # a p-value rego-cpp cannot read: as good as zero for any threshold
        (-5e-310, -1e-300),  # still negative: a fairness ratio below zero is no measurement, never a 0
        (1e-300, 1e-300),
        (0.0, 0.0),
        (0.62, 0.62),
        (1e308, 1e300),
        (-1e308, -1e300),
    ],
)
def test_facts_are_sent_to_the_engine_with_extreme_floats_clamped(value, sent):
    assert engine_safe({"facts": [{"p_value": value}]}) == {"facts": [{"p_value": sent}]}


REGISTRY = {"credit-scoring-ai": {"2.0.0": "registry.example.com:5000/credit-scoring-ai:2.0.0"}}


@pytest.mark.parametrize(
    ("image", "mismatch"),
    [
        ("registry.example.com:5000/credit-scoring-ai:2.0.0", None),
        ("registry.example.com:5000/credit-scoring-ai:1.4.2", "No container runs"),
        ("evil.example.com/credit-scoring-ai:2.0.0", "No container runs"),  # the right tag, another image
    ],
)
def test_with_the_model_in_the_registry_a_container_must_run_the_versions_image(image, mismatch):
    manifest = _deployment("2.0.0")
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = image
    found = version_mismatch(manifest, REGISTRY)
    assert found is None if mismatch is None else found.startswith(mismatch)


@pytest.mark.parametrize(
    ("image", "mismatch"),
    [
        ("registry.example.com:5000/team/scorer:2.0.0", False),
        (f"registry.example.com:5000/team/scorer:2.0.0@sha256:{'c' * 64}", False),
        (f"registry.example.com:5000/team/scorer@sha256:{'c' * 64}", True),  # no tag at all
        ("registry.example.com:5000/team/scorer", True),  # the port is not a tag
        ("registry.example.com/team/scorer:2.0.0-rc1", True),
        ("registry.example.com/2.0.0/scorer:latest", True),  # a path segment is not a tag
    ],
)
def test_without_the_model_in_the_registry_an_image_must_be_tagged_with_the_label(image, mismatch):
    manifest = _deployment("2.0.0", app="scorer")
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = image
    found = version_mismatch(manifest, REGISTRY)
    assert (found is not None) is mismatch
    if mismatch:
        assert found == "No container image is tagged 2.0.0, the model-version label: the label is not what runs."


STRICT_PACKAGE = """package acme.strict

violations contains {"rule": "strict", "msg": "acme.strict refuses version 1.2.0", "severity": "rollback"} if {
	input.spec.template.metadata.labels["model-version"] == "1.2.0"
}

deny contains v.msg if some v in violations

decision := {"deny": deny, "warn": set(), "violations": violations}
"""


@pytest.fixture(scope="module")
def bundle_with_a_second_package(tmp_path_factory) -> PolicyBundle:
    copy = tmp_path_factory.mktemp("bundle") / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", copy)
    manifest = json.loads((copy / ".manifest").read_text())
    (copy / ".manifest").write_text(json.dumps({**manifest, "roots": [*manifest["roots"], "acme"]}))
    (copy / "acme").mkdir()
    (copy / "acme" / "strict.rego").write_text(STRICT_PACKAGE)
    return PolicyBundle.load(copy)


def test_the_package_asked_for_is_the_one_that_decides(engine, bundle_with_a_second_package):
    bundle = bundle_with_a_second_package
    unfair = [RenderedDeployment("apps/credit", _deployment("2.0.0"))]
    (default,) = evaluate_deployments(engine, bundle, unfair, ROWS, REMOTE, REVISION)
    (strict,) = evaluate_deployments(engine, bundle, unfair, ROWS, REMOTE, REVISION, package="acme.strict")
    assert default.violations == [UNFAIR]
    assert strict.violations == [] and strict.record["path"] == "acme/strict/decision"
    assert strict.decision_id != default.decision_id


def test_the_rollback_target_is_chosen_by_the_package_asked_for(engine, bundle_with_a_second_package):
    facts = [
        {**_facts("1.1.0", 0.91, "r1"), "date": "2023-11-03"},
        {**_facts("1.2.0", 0.91, "r2"), "date": "2023-11-04"},
        {**_facts("2.0.0", 0.62, "r3"), "date": "2023-11-06"},
    ]
    images = {v: f"registry.example.com/credit-scoring-ai:{v}" for v in ("1.1.0", "1.2.0", "2.0.0")}
    choose = functools.partial(
        choose_rollback_target,
        engine,
        bundle_with_a_second_package,
        _deployment("2.0.0"),
        "credit-scoring-ai",
        "2.0.0",
        facts,
        images,
    )
    assert choose()[0] == "1.2.0"
    target, considered = choose(package="acme.strict")
    assert target == "1.1.0" and considered[0] == ("1.2.0", ["acme.strict refuses version 1.2.0"])


def test_a_plain_warn_message_without_a_rule_is_still_reported():
    from rai_pipelines.governance.rego import PolicyDecision

    drift = {"rule": "drift", "msg": "Input drift on 0.57 of the features (car_value), above 0.3."}
    decision = PolicyDecision([], [drift["msg"], "Team module: GPU nodes are expensive."], [], warnings=[drift])
    assert decision.warning_findings == [drift, {"rule": "warn", "msg": "Team module: GPU nodes are expensive."}]


@pytest.mark.parametrize("warnings", [{"rule": "drift"}, [{"rule": "drift"}], [{"rule": 3, "msg": "m"}], ["m"]])
def test_malformed_warnings_make_the_decision_an_error_not_a_pass(tmp_path, engine, warnings):
    from rai_pipelines.core.errors import PolicyError

    copy = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", copy)
    rego = copy / "ai_governance.rego"
    text = rego.read_text().replace('"warnings": warning}', f'"warnings": {json.dumps(warnings)}}}')
    assert text != rego.read_text()
    rego.write_text(text)
    (copy / "ai_governance_test.rego").unlink()
    with pytest.raises(PolicyError, match="warnings must be objects with a rule and a msg"):
        evaluate_deployments(
            engine, PolicyBundle.load(copy), [RenderedDeployment("apps/c", _deployment("1.4.2"))], ROWS, REMOTE, "r"
        )
