"""The Rego policies on both engines (OPA's own evaluator, the default, and regopy): the bundle's own
tests as `opa test` runs them, the golden decision table, the hierarchy of thresholds, and the
refusals (v0 syntax, syntax errors, built-ins that reach outside, policies that error, oversized
inputs, runaway evaluations), each failing closed on either engine."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rai_pipelines.core.errors import PolicyError
from rai_pipelines.governance.bundle import PolicyBundle
from rai_pipelines.governance.policy_tests import run_policy_tests
from rai_pipelines.governance.rego import (
    MAX_INPUT_DEPTH,
    TimeBoundedEngine,
    evaluate_decisions,
    make_engine,
    validate_bundle_compiles,
)
from rai_pipelines.settings import PROJECT_ROOT

UNFAIR = "AI model fairness score below acceptable threshold (0.8)."
EXPENSIVE = "Estimated inference cost exceeds budget (0.005 USD)."
FAIR_AND_CHEAP = {"fairness_score": 0.9, "estimated_cost_per_inference_usd": 0.001}
ENGINE_NAMES = ("opa", "regopy")
ENGINE = make_engine("opa")
ENGINES = {name: make_engine(name) for name in ENGINE_NAMES}
INCOMPLETE = "Governance facts for model version 2.0.0 are incomplete or mistyped: compliance cannot be shown."
TEAM_RULE = """package apexlogic.ai_governance

violation contains finding("cost", "Credit-risk models may not run on GPU nodes.") if {
	governed
	team == "credit-risk"
	startswith(input.spec.template.spec.nodeSelector["node.kubernetes.io/instance-type"], "g")
}
"""


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return PolicyBundle.load(PROJECT_ROOT / "policies")


def deployment(app="credit-scoring-ai", version="2.0.0", kind="Deployment", labels=None, team="credit-risk"):
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": app, "labels": {"app": app, "team": team, **(labels or {})}},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": app, "model-version": version}},
                "spec": {"containers": [{"name": "model", "image": f"registry.example.com/{app}:{version}"}]},
            }
        },
    }


def decide(bundle, manifest, facts, engine=ENGINE):
    return evaluate_decisions(engine, bundle, [manifest], facts)[0]


@pytest.fixture(params=ENGINE_NAMES)
def engine(request):
    return ENGINES[request.param]


def test_the_bundles_own_rego_tests_pass_and_cover_every_line(bundle):
    report = run_policy_tests(bundle, coverage=True)
    source = "".join(
        (PROJECT_ROOT / "policies" / name).read_text() for name in ("ai_governance_test.rego", "finops_test.rego")
    )
    declared = [line.split(" ", 1)[0] for line in source.splitlines() if line.startswith("test_")]
    assert sorted(r.name for r in report.results) == sorted(declared) and len(declared) >= 30
    assert [r.name for r in report.results if not r.passed] == []
    assert report.coverage_percent("ai_governance.rego") == 100.0 and report.coverage_percent("finops.rego") == 100.0
    assert report.coverage_percent() == 100.0
    assert "with input as" in source and "with data.ai_models as" in source  # as `opa test` users write them


def test_a_failing_rego_test_is_reported_as_failed_with_its_location(tmp_path):
    copy = _copy_bundle(tmp_path)
    (copy / "extra_test.rego").write_text(
        "package apexlogic.extra_test\n\nimport data.apexlogic.ai_governance\n\n"
        "test_wrong_expectation if {\n\tcount(ai_governance.violation) == 1 with input as {}\n}\n"
    )
    report = run_policy_tests(PolicyBundle.load(copy))
    results = {r.name: r for r in report.results}
    assert results["test_wrong_expectation"].passed is False
    assert results["test_wrong_expectation"].location == "extra_test.rego:5"
    assert results["test_compliant_model_is_allowed"].passed is True
    assert "data.apexlogic.extra_test.test_wrong_expectation: FAIL" in report.verbose_text()
    assert "extra_test.rego:5" in report.verbose_text()


GOVERNED = {"rai-pipelines.io/governed": "true"}
# The golden table: (manifest, data.ai_models, expected deny messages, expected remediation).
GOLDEN = [
    (
        deployment(version="1.4.2"),
        {"1.4.2": {"fairness_score": 0.93, "estimated_cost_per_inference_usd": 0.0013}},
        [],
        "none",
    ),
    (
        deployment(),
        {"2.0.0": {"fairness_score": 0.79, "estimated_cost_per_inference_usd": 0.001}},
        [UNFAIR],
        "rollback",
    ),
    (
        deployment(),
        {"2.0.0": {"fairness_score": 0.95, "estimated_cost_per_inference_usd": 0.0081}},
        [EXPENSIVE],
        "rollback",
    ),
    (
        deployment(),
        {"2.0.0": {"fairness_score": 0.1, "estimated_cost_per_inference_usd": 0.02}},
        [UNFAIR, EXPENSIVE],
        "rollback",
    ),
    (deployment(), {"2.0.0": {"fairness_score": 0.8, "estimated_cost_per_inference_usd": 0.005}}, [], "none"),
    (deployment(kind="StatefulSet"), {"2.0.0": {"fairness_score": 0.1}}, [], "none"),
    (deployment(app="recommender"), {"2.0.0": {"fairness_score": 0.1}}, [], "none"),
    (
        deployment(app="employment-screening-ai", version="3.2.0", labels=GOVERNED, team="people-analytics"),
        {"3.2.0": {"fairness_score": 0.671, "estimated_cost_per_inference_usd": 0.00055}},
        [UNFAIR],
        "rollback",
    ),
    # Facts of another version never apply; facts missing for the deployed one are not a pass.
    (
        deployment(),
        {"1.4.2": {"fairness_score": 0.1}},
        ["No governance facts for model version 2.0.0: compliance cannot be shown."],
        "alert",
    ),
    (
        deployment(app="employment-screening-ai", version="3.2.0", labels=GOVERNED),
        {"3.2.0": {"fairness_applicable": True, "estimated_cost_per_inference_usd": 0.0005}},
        ["Fairness score missing for a model with protected attributes: compliance cannot be shown."],
        "alert",
    ),
    (deployment(), {"2.0.0": {"fairness_applicable": False, "estimated_cost_per_inference_usd": 0.001}}, [], "none"),
    (deployment(), {"2.0.0": {}}, [INCOMPLETE], "alert"),
    (deployment(), {"2.0.0": {"fairness_score": 0.9, "estimated_cost_per_inference_usd": None}}, [INCOMPLETE], "alert"),
    # hardening issue, case 3: a label that is not what runs is an alert, even over unfair facts
    (
        {
            **deployment(version="1.4.2"),
            "spec": deployment(version="2.0.0")["spec"]
            | {
                "template": {
                    "metadata": {"labels": {"app": "credit-scoring-ai", "model-version": "1.4.2"}},
                    "spec": {
                        "containers": [{"name": "model", "image": "registry.example.com/credit-scoring-ai:2.0.0"}]
                    },
                }
            },
        },
        {"1.4.2": {"fairness_score": 0.5, "estimated_cost_per_inference_usd": 0.001}},
        [UNFAIR, "No container image is tagged 1.4.2, the model-version label: the label is not what runs."],
        "alert",
    ),
    # hardening issue, case 9: a negative cost or a ratio outside [0, 1] is no measurement
    (
        deployment(),
        {"2.0.0": {"fairness_score": 0.9, "estimated_cost_per_inference_usd": -0.01}},
        [INCOMPLETE],
        "alert",
    ),
    (
        deployment(),
        {"2.0.0": {"fairness_score": -0.3, "estimated_cost_per_inference_usd": 0.001}},
        [INCOMPLETE],
        "alert",
    ),
    (
        deployment(),
        {"2.0.0": {"fairness_score": "0.5", "estimated_cost_per_inference_usd": 0.001}},
        [INCOMPLETE],
        "alert",
    ),
    (
        {**deployment(), "spec": {"template": {"metadata": {"labels": {"app": "credit-scoring-ai"}}}}},
        {},
        ["Governed Deployment has no model-version label on its pod template: compliance cannot be shown."],
        "alert",
    ),
    ({**deployment(app="redis"), "spec": {}}, {}, [], "none"),  # not governed, no label: allowed, not an error
    (
        deployment(),
        {"2.0.0": {"fairness_score": 0.93, "estimated_cost_per_inference_usd": 0.0013, "facts_age_days": 2}},
        [],
        "none",
    ),
    (  # reordered attributions warn, never block
        deployment(),
        {"2.0.0": {"fairness_score": 0.93, "estimated_cost_per_inference_usd": 0.0013, "attribution_ndcg": 0.8}},
        [],
        "none",
    ),
    (
        deployment(),
        {"2.0.0": {"fairness_score": 0.93, "estimated_cost_per_inference_usd": 0.0013, "facts_age_days": 4}},
        ["Governance facts are 4 days behind the newest (limit 3): compliance is not current."],
        "alert",
    ),
    (  # FinOps: allocated cost per inference above the limit asks for review
        deployment(),
        {
            "2.0.0": {
                "fairness_score": 0.93,
                "estimated_cost_per_inference_usd": 0.0013,
                "cost_per_inference_7d_usd": 0.02,
            }
        },
        ["Allocated cost per inference over 7 days is 0.02 USD, above the limit of 0.01 USD."],
        "review",
    ),
    (  # a budget burning too fast alerts; with an unfair model the rollback wins
        deployment(),
        {"2.0.0": {"fairness_score": 0.5, "estimated_cost_per_inference_usd": 0.0013, "budget_burn_rate": 2}},
        [UNFAIR, "Budget burning at 2 times the planned rate (limit 1.5)."],
        "rollback",
    ),
    (
        deployment(),
        {"2.0.0": {"fairness_score": 0.93, "estimated_cost_per_inference_usd": 0.0013, "budget_burn_rate": 1.2}},
        [],
        "none",
    ),
    (
        deployment(),
        {
            "2.0.0": {
                "fairness_score": 0.93,
                "estimated_cost_per_inference_usd": 0.0013,
                "cost_anomaly_open_count": 1,
                "cost_anomaly_impact_usd": 640,
                "cost_anomaly_root_cause": "ServiceName=Amazon Elastic Compute Cloud",
            }
        },
        [
            "Open cost anomaly with an impact of 640 USD (limit 500 USD); root cause: "
            "ServiceName=Amazon Elastic Compute Cloud."
        ],
        "alert",
    ),
    (  # a mistyped FinOps fact fails closed
        deployment(),
        {"2.0.0": {"fairness_score": 0.93, "estimated_cost_per_inference_usd": 0.0013, "budget_burn_rate": True}},
        ["Governance fact budget_burn_rate is not a number: compliance cannot be shown."],
        "alert",
    ),
]


@pytest.mark.parametrize("manifest,facts,expected,remediation", GOLDEN)
def test_golden_decisions_on_both_engines(bundle, engine, manifest, facts, expected, remediation):
    decision = decide(bundle, manifest, facts, engine)
    assert decision.deny == sorted(expected)
    assert decision.remediation == remediation
    assert decision.allowed is (not expected)


def test_the_brief_denies_and_allows_exactly_as_it_describes(bundle, engine):
    """DESIGN.md's reference policy: credit-scoring-ai is denied below a 0.8 fairness score and
    above 0.005 USD estimated per inference, with the brief's own messages, and nothing else."""
    for fairness in (0.0, 0.5, 0.79, 0.7999, 0.8, 0.81, 1.0):
        for cost in (0.0, 0.001, 0.005, 0.0050001, 0.1):
            facts = {"9.9.9": {"fairness_score": fairness, "estimated_cost_per_inference_usd": cost}}
            expected = ([UNFAIR] if fairness < 0.8 else []) + ([EXPENSIVE] if cost > 0.005 else [])
            assert decide(bundle, deployment(version="9.9.9"), facts, engine).deny == sorted(expected), (fairness, cost)


def test_warnings_do_not_block(bundle, engine):
    facts = {
        "2.0.0": {
            "fairness_score": 0.9,
            "estimated_cost_per_inference_usd": 0.001,
            "drift_share": 0.57,
            "drifted_features": ["car_value", "loan_length"],
        }
    }
    decision = decide(bundle, deployment(), facts, engine)
    assert decision.allowed and decision.remediation == "none"
    assert decision.warn == ["Input drift on 0.57 of the features (car_value, loan_length), above 0.3."]


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_one_compiled_bundle_serves_many_inputs_and_is_cached(bundle, name):
    engine = make_engine(name)
    manifests = [m for m, _, _, _ in GOLDEN]
    facts = {
        "2.0.0": {"fairness_score": 0.5, "estimated_cost_per_inference_usd": 0.01},
        "1.4.2": {"fairness_score": 0.9, "estimated_cost_per_inference_usd": 0.001},
        "3.2.0": {"fairness_score": 0.9},
    }
    first = evaluate_decisions(engine, bundle, manifests, facts)
    assert first[0].allowed and first[1].deny == sorted([UNFAIR, EXPENSIVE]) and first[5].allowed
    assert len(engine._cache) == 1
    assert evaluate_decisions(engine, bundle, manifests, facts) == first
    assert len(engine._cache) == 1  # same bundle digest and data: compiled once
    evaluate_decisions(engine, bundle, manifests, {**facts, "1.4.2": {"fairness_score": 0.1}})
    assert len(engine._cache) == 2


def _copy_bundle(tmp_path) -> Path:
    shutil.copytree(PROJECT_ROOT / "policies", tmp_path / "p", dirs_exist_ok=True)
    return tmp_path / "p"


def _bundle_with(tmp_path, name: str, text: str) -> PolicyBundle:
    copy = _copy_bundle(tmp_path)
    (copy / name).parent.mkdir(parents=True, exist_ok=True)
    (copy / name).write_text(text)
    return PolicyBundle.load(copy)


def test_model_data_overrides_team_and_organisation(tmp_path, engine):
    bundle = _bundle_with(
        tmp_path,
        "governance/models/credit-scoring-ai/data.yaml",
        "thresholds:\n  estimated_cost_per_inference_usd_max: 0.01\nseverity:\n  cost: review\n",
    )
    facts = {"2.0.0": {"fairness_score": 0.9, "estimated_cost_per_inference_usd": 0.0081}}
    assert decide(bundle, deployment(), facts, engine).allowed  # 0.0081 is within this model's own budget
    facts = {"2.0.0": {"fairness_score": 0.9, "estimated_cost_per_inference_usd": 0.02}}
    decision = decide(bundle, deployment(), facts, engine)
    assert decision.deny == ["Estimated inference cost exceeds budget (0.01 USD)."]
    assert decision.remediation == "review"
    other = deployment(app="employment-screening-ai", labels=GOVERNED, team="people-analytics")
    facts = {"2.0.0": {"fairness_score": 0.9, "estimated_cost_per_inference_usd": 0.0081}}
    assert decide(bundle, other, facts, engine).deny == [EXPENSIVE]


def test_two_files_of_one_level_disagreeing_is_a_conflict(tmp_path):
    with pytest.raises(
        PolicyError,
        match=r"conflict: .*data\.json and .*data\.yaml both set "
        r"thresholds\.fairness_score_min at the same level, to 0\.75 and 0\.8",
    ):
        _bundle_with(tmp_path, "governance/data.json", '{"thresholds": {"fairness_score_min": 0.75}}')


def test_agreeing_files_of_one_level_are_not_a_conflict(tmp_path):
    copy = _copy_bundle(tmp_path)
    (copy / "governance/teams/credit-risk").mkdir(parents=True)
    (copy / "governance/teams/credit-risk/data.json").write_text('{"thresholds": {"drift_share_warn": 0.4}}')
    (copy / "governance/teams/credit-risk/data.yaml").write_text("thresholds:\n  drift_share_warn: 0.4\n")
    bundle = PolicyBundle.load(copy)
    assert bundle.data["governance"]["teams"]["credit-risk"]["thresholds"] == {"drift_share_warn": 0.4}


def test_the_bundle_is_laid_out_as_an_opa_bundle(bundle):
    manifest = json.loads((PROJECT_ROOT / "policies" / ".manifest").read_text())
    assert manifest["roots"] == ["apexlogic", "governance"] and manifest["rego_version"] == 1
    assert bundle.roots == ("apexlogic", "governance")
    # data files are named as OPA's bundle loader reads them, their folder being their path in data
    data_files = sorted(
        p.relative_to(PROJECT_ROOT / "policies").as_posix() for p in (PROJECT_ROOT / "policies").rglob("data.*")
    )
    assert data_files == ["governance/data.yaml", "governance/teams/people-analytics/data.yaml"]
    assert bundle.data["governance"]["thresholds"]["fairness_score_min"] == 0.8
    assert bundle.data["governance"]["teams"]["people-analytics"]["thresholds"] == {"drift_share_warn": 0.5}


@pytest.mark.parametrize(
    "name,text,message",
    [
        (".manifest", '{"roots": ["apexlogic/ai_governance"]}', "package apexlogic.ai_governance_test is outside"),
        (".manifest", '{"roots": ["apexlogic"]}', "the roots must include governance"),
        (".manifest", '{"roots": "apexlogic"}', "roots must be a list of strings"),
        (".manifest", '{"roots": [""], "signatures": []}', "unknown manifest key"),
        (".manifest", "{roots:", "the bundle manifest is not valid JSON"),
        (".manifest", '{"rego_version": 0}', "rego_version must be 1"),
    ],
)
def test_a_bad_manifest_is_refused(tmp_path, name, text, message):
    with pytest.raises(PolicyError, match=message):
        _bundle_with(tmp_path, name, text)


@pytest.mark.parametrize(
    "name,text,message",
    [
        (
            "governance/data.yaml",
            "thresholds:\n  drift_share_warn: 0.3\nseverity: {fairness: rollback, cost: rollback, "
            "facts_missing: alert}\n",
            "must set thresholds attribution_ndcg_warn, budget_burn_rate_max, budget_burn_rate_warn, "
            "cost_anomaly_impact_usd_max, cost_per_inference_usd_max, cost_per_inference_usd_warn, "
            "estimated_cost_per_inference_usd_max, facts_age_days_max, facts_age_days_warn, fairness_score_min",
        ),
        (
            "governance/teams/x/data.yaml",
            "thresholds:\n  fairnes_score_min: 0.9\n",
            "fairnes_score_min not set at the organisation",
        ),
        (
            "governance/teams/x/data.yaml",
            "severity:\n  cost: page-someone\n",
            "severity.cost must be one of rollback, review, alert",
        ),
        ("governance/teams/x/data.yaml", "threshold:\n  cost: 1\n", "unknown policy data key"),
        # budgets: checked strictly, and declared once, by the organisation
        (
            "governance/data.yaml",
            "budgets: {by_model: {a: {monthly: -5, currency: USD}}}\n",
            r"budgets: by_model\.a\.monthly",
        ),
        ("governance/data.yaml", "budgets: {by_modle: {}}\n", r"budgets: by_modle"),
        (
            "governance/teams/x/data.yaml",
            "budgets: {by_model: {a: {monthly: 5, currency: USD}}}\n",
            "budgets are declared once, at the organisation level",
        ),
        ("governance/teams/x/data.yaml", "thresholds:\n  fairness_score_min: high\n", "must be a number"),
        ("misc/data.yaml", "thresholds: {}\n", "must sit in governance/"),
        ("teams/x/data.yaml", "thresholds: {}\n", "must sit in governance/"),
        ("governance/budget.yaml", "thresholds: {}\n", "OPA reads policy data only from files named"),
    ],
)
def test_bad_policy_data_is_refused_naming_the_file(tmp_path, name, text, message):
    with pytest.raises(PolicyError, match=message):
        _bundle_with(tmp_path, name, text)


def test_old_syntax_is_refused_with_how_to_convert(tmp_path):
    brief = (
        "package apexlogic.ai_governance\n\nimport data.ai_models\n\n"
        'deny[msg] {\n\tinput.kind == "Deployment"\n\tmsg := "x"\n}\n'
    )
    with pytest.raises(PolicyError) as err:
        _bundle_with(tmp_path, "old.rego", brief)
    assert "old.rego:5" in str(err.value) and "Rego v0" in str(err.value)
    assert "deny contains msg if {" in str(err.value)


def test_a_syntax_error_names_file_line_and_column(tmp_path):
    with pytest.raises(PolicyError, match=r"broken\.rego:5:1: rego_parse_error: unexpected } token"):
        _bundle_with(tmp_path, "broken.rego", "package broken\n\nallow if {\n\tinput.a ==\n}\n")
    with pytest.raises(PolicyError, match=r"broken\.rego:4:11: rego_parse_error: unexpected \) token"):
        _bundle_with(tmp_path, "broken.rego", "package broken\n\nallow if {\n\tx := 1 + )\n}\n")


def test_a_compile_error_names_file_and_line(tmp_path):
    bundle = _bundle_with(tmp_path, "unsafe.rego", "package apexlogic.unsafe\n\nallow if {\n\tx > 1\n}\n")
    with pytest.raises(PolicyError, match=r"unsafe\.rego:4.*var x is unsafe"):
        validate_bundle_compiles(bundle)


@pytest.mark.parametrize(
    "call",
    [
        'http.send({"method": "get", "url": "http://x"})',
        'net.lookup_ip_addr("x")',
        "opa.runtime()",
        'object.get({"a": `#`}, "a", http.send({}))',  # a '#' inside a raw string is no comment
        'net.cidr_contains("10.0.0.0/8", "10.1.2.3")',
        'http.send({"method": "get",\n\t\t"url": "http://x"})',  # a call split over lines
    ],
)
def test_builtins_that_reach_outside_are_refused_on_the_parsed_module(tmp_path, call):
    with pytest.raises(PolicyError, match=r"leak\.rego:4: built-in .* not allowed"):
        _bundle_with(tmp_path, "leak.rego", f"package leak\n\nx := y if {{\n\ty := {call}\n}}\n")


@pytest.mark.parametrize(
    "source",
    [
        # the environment through opa.runtime, called on the next line: OPA's parser refuses it
        "rt := opa.runtime\n\t()\n",
        # a forbidden built-in replaced in a test, in an else branch, in a function
        "test_x if {\n\ttrue with http.send as {}\n}\n",
        "x := 1 if {\n\tfalse\n} else := v if {\n\tv := opa.runtime().env\n}\n",
        'f(u) := http.send({"url": u})\n',
    ],
)
def test_hostile_built_in_uses_never_load(tmp_path, source):
    with pytest.raises(PolicyError, match=r"not allowed|rego_parse_error"):
        _bundle_with(tmp_path, "leak_test.rego", f"package leak_test\n\n{source}")


def test_regopy_refuses_policies_with_with_before_it_crashes_and_opa_evaluates_them(tmp_path):
    bundle = _bundle_with(
        tmp_path, "pinned.rego", 'package apexlogic.pinned\n\nx := v if {\n\tv := input.a with input as {"a": 2}\n}\n'
    )
    assert "pinned.rego" in bundle.modules_with
    assert ENGINES["opa"].evaluate(bundle, "data.apexlogic.pinned.x", [{"a": 1}], {}) == [2]
    with pytest.raises(PolicyError, match=r"pinned\.rego use `with`, which crashes regopy"):
        ENGINES["regopy"].evaluate(bundle, "data.apexlogic.pinned.x", [{"a": 1}], {})
    # the shipped tests use `with` and run on OPA; the shipped policies do not, so regopy evaluates them
    assert PolicyBundle.load(PROJECT_ROOT / "policies").modules_with == {"ai_governance_test.rego", "finops_test.rego"}


def test_a_policy_that_errors_fails_closed_on_both_engines(tmp_path, engine):
    bundle = _bundle_with(
        tmp_path,
        "conflict.rego",
        "package apexlogic.ai_governance\n\nlimit := 1 if governed\n\nlimit := 2 if governed\n\n"
        'violation contains finding("cost", sprintf("limit %v", [limit])) if governed\n',
    )
    with pytest.raises(PolicyError, match=r"conflict|error") as failed:
        decide(bundle, deployment(), {"2.0.0": FAIR_AND_CHEAP}, engine)
    # the engine's own words: never a Python repr (hardening issue, case 11)
    assert "bound method" not in str(failed.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_facts_json_cannot_carry_are_refused_on_both_engines(bundle, engine, bad):
    with pytest.raises(PolicyError, match="JSON cannot carry"):
        decide(
            bundle, deployment(), {"2.0.0": {"fairness_score": bad, "estimated_cost_per_inference_usd": 0.001}}, engine
        )


@pytest.mark.parametrize(
    "source",
    [
        'deny[msg] { msg := "x" }',
        "allow { input.a == 1 }",
        "f(x) := y {\n\ty := x\n}",
        "deny contains msg {\n\tmsg := 1\n}",
    ],
)
def test_one_line_and_function_v0_heads_are_refused(tmp_path, source):
    with pytest.raises(PolicyError, match="Rego v0"):
        _bundle_with(tmp_path, "old.rego", f"package old\n\n{source}\n")


def test_an_undefined_decision_is_an_error_not_compliance(bundle, engine):
    with pytest.raises(PolicyError, match="undefined"):
        evaluate_decisions(engine, bundle, [deployment()], {}, package="no.such.package")


def test_huge_and_deep_inputs_are_refused_before_evaluation(bundle, engine):
    huge = deployment(labels={"blob": "x" * 1_100_000})
    with pytest.raises(PolicyError, match="exceeds the limit"):
        evaluate_decisions(engine, bundle, [huge], {})
    deep: dict = {}
    node = deep
    for _ in range(MAX_INPUT_DEPTH + 5):
        node["n"] = {}
        node = node["n"]
    with pytest.raises(PolicyError, match="nested deeper"):
        evaluate_decisions(engine, bundle, [{**deployment(), "extra": deep}], {})


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_a_runaway_evaluation_is_stopped(tmp_path, bundle, name):
    slow = _bundle_with(
        tmp_path, "slow.rego", "package apexlogic.slow\n\nn := count({x | some x in numbers.range(1, 200000000)})\n"
    )
    used = make_engine(name)
    evaluate_decisions(used, bundle, [deployment()], {})  # holds a compiled engine now
    engine = TimeBoundedEngine(used, timeout_s=2)
    with pytest.raises(PolicyError, match="exceeded 2 s and was stopped"):
        engine.evaluate(slow, "data.apexlogic.slow.n", [{}], {})
    assert evaluate_decisions(
        engine,
        bundle,
        [deployment(version="1.4.2")],
        {"1.4.2": {"fairness_score": 0.9, "estimated_cost_per_inference_usd": 0.001}},
    )[0].allowed


facts_strategy = st.fixed_dictionaries(
    {},
    optional={
        "fairness_score": st.one_of(
            st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5)
        ),
        "estimated_cost_per_inference_usd": st.one_of(
            st.none(), st.floats(allow_nan=False, allow_infinity=False), st.integers(-10, 10)
        ),
        "fairness_applicable": st.one_of(st.booleans(), st.none(), st.integers(0, 1)),
        "drift_share": st.one_of(st.none(), st.floats(0, 1)),
        "drifted_features": st.one_of(st.lists(st.text(alphabet="abc_", max_size=6), max_size=3), st.none()),
        "cost_per_inference_7d_usd": st.one_of(st.none(), st.floats(0, 0.05), st.text(max_size=3)),
        "budget_burn_rate": st.one_of(st.none(), st.floats(0, 3), st.booleans()),
        "budget_projected_overrun_date": st.one_of(st.none(), st.just("2026-12-19")),
        "budget_days_until_exhausted": st.one_of(st.none(), st.integers(0, 31)),
        "cost_anomaly_open_count": st.one_of(st.none(), st.integers(0, 3)),
        "cost_anomaly_impact_usd": st.one_of(st.none(), st.floats(0, 2000)),
        "cost_anomaly_root_cause": st.one_of(st.none(), st.just("ServiceName=AmazonEC2")),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(facts=facts_strategy, version=st.sampled_from(["2.0.0", "1.4.2"]))
# each way facts can be incomplete, with the rest of them complete and compliant
@example(facts={"estimated_cost_per_inference_usd": -0.001, "fairness_applicable": False}, version="2.0.0")
@example(
    facts={"estimated_cost_per_inference_usd": 0.001, "fairness_applicable": 1, "fairness_score": 0.9}, version="2.0.0"
)
@example(facts={"estimated_cost_per_inference_usd": 0.001, "fairness_score": 1.5}, version="2.0.0")
@example(facts={"estimated_cost_per_inference_usd": 0.001, "fairness_score": -0.2}, version="2.0.0")
@example(facts={"estimated_cost_per_inference_usd": 0.001}, version="2.0.0")
@example(facts={"estimated_cost_per_inference_usd": 0.001, "fairness_applicable": True}, version="2.0.0")
@example(facts={"estimated_cost_per_inference_usd": "0.001", "fairness_applicable": False}, version="2.0.0")
@example(facts={"fairness_score": 0.9}, version="2.0.0")
@example(facts={}, version="2.0.0")
def test_random_facts_never_crash_the_engine_and_never_pass_silently(bundle, facts, version):
    decision = decide(bundle, deployment(version="2.0.0"), {version: facts})
    if version != "2.0.0":
        assert decision.remediation == "alert"  # no facts for the deployed version
    score, cost = facts.get("fairness_score"), facts.get("estimated_cost_per_inference_usd")
    if isinstance(score, float) and 0 <= score < 0.8:  # a negative ratio is mistyped: an alert
        assert version != "2.0.0" or UNFAIR in decision.deny
    if isinstance(cost, float | int) and not isinstance(cost, bool) and cost > 0.005 and version == "2.0.0":
        assert EXPENSIVE in decision.deny
    if version == "2.0.0" and not _complete(facts):
        assert not decision.allowed and "facts_missing" in {v["rule"] for v in decision.violations}, facts


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _complete(facts: dict) -> bool:
    """What the policy's `complete` asks, written out apart from it: a cost that is a number not below
    zero; `fairness_applicable` absent or a boolean; a fairness ratio in [0, 1], or none when the facts
    say whether fairness applies and it does not."""
    cost, applicable, score = (
        facts.get(k) for k in ("estimated_cost_per_inference_usd", "fairness_applicable", "fairness_score")
    )
    if not (_number(cost) and cost >= 0) or not (applicable is None or isinstance(applicable, bool)):
        return False
    if _number(score):
        return 0 <= score <= 1
    return applicable is False


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    facts=facts_strategy,
    version=st.sampled_from(["2.0.0", "1.4.2"]),
    app=st.sampled_from(["credit-scoring-ai", "employment-screening-ai"]),
    team=st.sampled_from(["credit-risk", "people-analytics", ""]),
)
def test_both_engines_give_the_same_decision_on_random_facts(bundle, facts, version, app, team):
    """The golden table beyond its rows: whatever the facts, OPA and regopy decide alike."""
    manifest = deployment(app=app, version="2.0.0", labels=GOVERNED, team=team)
    opa, regopy = (decide(bundle, manifest, {version: facts}, ENGINES[name]) for name in ENGINE_NAMES)
    assert (opa.deny, opa.violations, opa.remediation) == (regopy.deny, regopy.violations, regopy.remediation)
    # A known regopy edge (README): it computes in doubles, so a rounded share it formats can show
    # binary noise (0.5600000000000001 where OPA, in decimals, writes 0.56).
    assert [_round_floats(w) for w in opa.warn] == [_round_floats(w) for w in regopy.warn]


def _round_floats(text: str) -> str:
    return re.sub(r"\d+\.\d{7,}", lambda m: f"{float(m.group()):.6g}", text)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000))
def test_the_decision_does_not_depend_on_the_order_of_the_policies(tmp_path_factory, seed):
    root = tmp_path_factory.mktemp("bundle")
    shutil.copytree(PROJECT_ROOT / "policies", root / "p")
    (root / "p" / "governance" / "teams" / "credit-risk").mkdir(parents=True)
    (root / "p" / "governance" / "teams" / "credit-risk" / "gpu.rego").write_text(TEAM_RULE)
    bundle = PolicyBundle.load(root / "p")
    assert len(bundle.policy_modules) == 3
    modules = list(bundle.modules.items())
    random.Random(seed).shuffle(modules)
    shuffled = PolicyBundle(
        bundle.root, dict(modules), bundle.data, f"{bundle.digest}-{seed}", bundle.revision, bundle.roots
    )
    gpu = deployment(version="1.4.2")
    gpu["spec"]["template"]["spec"]["nodeSelector"] = {"node.kubernetes.io/instance-type": "g5.2xlarge"}
    for manifest, facts, _, _ in [
        *GOLDEN,
        (gpu, {"1.4.2": {"fairness_score": 0.9, "estimated_cost_per_inference_usd": 0.001}}, [], ""),
    ]:
        assert evaluate_decisions(ENGINE, shuffled, [manifest], facts) == evaluate_decisions(
            ENGINE, bundle, [manifest], facts
        )


def test_a_team_module_adds_violations_to_the_decision(tmp_path, engine):
    bundle = _bundle_with(tmp_path, "governance/teams/credit-risk/gpu.rego", TEAM_RULE)
    gpu = deployment(version="1.4.2")
    gpu["spec"]["template"]["spec"]["nodeSelector"] = {"node.kubernetes.io/instance-type": "g5.2xlarge"}
    decision = decide(
        bundle, gpu, {"1.4.2": {"fairness_score": 0.9, "estimated_cost_per_inference_usd": 0.001}}, engine
    )
    assert decision.deny == ["Credit-risk models may not run on GPU nodes."]
    assert decision.remediation == "rollback"


def test_policy_test_command_reports_as_opa_test_does(tmp_path, capsys):
    from rai_pipelines.cli import main

    shipped = str(PROJECT_ROOT / "policies")
    assert main(["policy", "test", shipped, "--coverage", "--threshold", "100"]) == 0
    out = capsys.readouterr().out
    assert "data.apexlogic.ai_governance_test.test_compliant_model_is_allowed: PASS" in out
    assert "PASS: 39/39" in out
    coverage = json.loads(out[out.index("\n{") :])
    assert coverage["coverage"] == 100.0 and coverage["files"]["ai_governance.rego"]["not_covered_lines"] == 0
    copy = _copy_bundle(tmp_path)
    (copy / "apexlogic").mkdir()
    (copy / "apexlogic" / "extra_test.rego").write_text(
        "package apexlogic.extra_test\n\ntest_fails if {\n\t1 == 2\n}\n"
    )
    assert main(["policy", "test", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "data.apexlogic.extra_test.test_fails: FAIL" in out and "apexlogic/extra_test.rego:3" in out
    (copy / "apexlogic" / "extra_test.rego").unlink()
    (copy / "apexlogic" / "untested.rego").write_text("package apexlogic.untested\n\nx := 1 if {\n\tinput.a\n}\n")
    assert main(["policy", "test", str(copy), "--threshold", "100"]) == 2  # coverage short of the threshold
    assert "Code coverage threshold not met" in capsys.readouterr().err
    (copy / "old.rego").write_text("package apexlogic.old\n\nallow {\n\ttrue\n}\n")
    assert main(["policy", "test", str(copy)]) == 2


def test_one_bad_deployment_or_ambiguous_version_never_stops_the_others(bundle):
    from rai_pipelines.gitops.render import RenderedDeployment
    from rai_pipelines.governance.decisions import evaluate_deployments

    huge = RenderedDeployment("apps/huge", deployment(app="huge", labels={"blob": "x" * 1_100_000}))
    unfair = RenderedDeployment("apps/credit", deployment(version="2.0.0"))
    shared = RenderedDeployment("apps/shared", deployment(app="shared", version="9.9.9", labels=GOVERNED))
    rows = [
        {
            "date": "2023-11-06",
            "model_name": "credit-scoring-ai",
            "model_version": "2.0.0",
            "fairness_score": 0.5,
            "estimated_cost_per_inference_usd": 0.001,
        },
        {
            "date": "2023-11-06",
            "model_name": "a",
            "model_version": "9.9.9",
            "fairness_score": 0.9,
            "estimated_cost_per_inference_usd": 0.001,
        },
        {
            "date": "2023-11-06",
            "model_name": "b",
            "model_version": "9.9.9",
            "fairness_score": 0.9,
            "estimated_cost_per_inference_usd": 0.001,
        },
    ]
    decisions = {
        d.deployment.overlay: d
        for d in evaluate_deployments(
            ENGINE, bundle, [huge, unfair, shared], rows, "https://u:token@git.example/x.git", "abc"
        )
    }
    assert "exceeds the limit" in decisions["apps/huge"].error and decisions["apps/huge"].record["input"] is None
    assert decisions["apps/credit"].violations == [UNFAIR] and decisions["apps/credit"].remediation == "rollback"
    # 9.9.9 belongs to two models: it has no facts, so its deployment is alerted, never allowed
    assert decisions["apps/shared"].remediation == "alert"
    assert "token" not in json.dumps(decisions["apps/credit"].record)


def test_the_registry_not_the_manifest_decides_whose_thresholds_apply(bundle, specs):
    """people-analytics warns on drift above 0.5 (its own data), the organisation above 0.3. A
    Deployment of the people-analytics model that labels itself another team still gets
    people-analytics's thresholds, with a warning about the label; without the registry, the label
    is all there is."""
    governed = {"rai-pipelines.io/governed": "true"}
    manifest = deployment(app="employment-screening-ai", version="3.1.0", team="credit-risk", labels=governed)
    facts = {
        "3.1.0": {
            "fairness_score": 0.9,
            "estimated_cost_per_inference_usd": 0.001,
            "drift_share": 0.4,
            "drifted_features": ["AGEP"],
        }
    }
    with_registry = bundle.with_registry(specs)
    assert with_registry.digest != bundle.digest
    decision = decide(with_registry, manifest, facts)
    assert not any("Input drift" in w for w in decision.warn)  # 0.4 is under people-analytics's 0.5
    assert any("differs from the model registry's team people-analytics" in w for w in decision.warn)
    label_only = decide(bundle, manifest, facts)
    assert any("Input drift" in w for w in label_only.warn)  # credit-risk has no override: the org's 0.3
    honest = deployment(app="employment-screening-ai", version="3.1.0", team="people-analytics", labels=governed)
    assert not any("differs" in w for w in decide(with_registry, honest, facts).warn)


def test_decision_records_name_their_fields_as_opa_decision_logs_do(bundle, tmp_path):
    from rai_pipelines.core.decision_log import DecisionLog
    from rai_pipelines.gitops.render import RenderedDeployment
    from rai_pipelines.governance.decisions import evaluate_deployments

    rows = [{"date": "2023-11-06", "model_name": "credit-scoring-ai", "model_version": "2.0.0", **FAIR_AND_CHEAP}]
    (decision,) = evaluate_deployments(
        ENGINE, bundle, [RenderedDeployment("apps/credit", deployment())], rows, "/srv/gitops.git", "abc"
    )
    (record,) = DecisionLog(tmp_path).append_many([decision.record])
    assert record["path"] == "apexlogic/ai_governance/decision"
    assert record["input"] == deployment() and record["result"]["allowed"] is True
    assert record["bundles"]["policies"]["revision"] == bundle.revision and record["timestamp"]
    assert (
        isinstance(record["metrics"]["timer_rego_query_eval_ns"], int)
        and record["metrics"]["timer_rego_query_eval_ns"] > 0
    )
    assert record["labels"]["engine"] == "opa" and record["labels"]["id"] == "rai-pipelines"
    assert len(record["decision_id"]) == 36


def test_a_missing_opa_engine_is_an_error_that_says_how_to_install_it(monkeypatch, bundle):
    import sys

    monkeypatch.setitem(sys.modules, "opa_bindings", None)  # as if the package were not installed
    with pytest.raises(PolicyError, match="--ignore-requires-python opa-golib-python-bindings==0.4.4"):
        make_engine("opa")
    regopy = make_engine("regopy")  # the other engine only when chosen, never as a fall-back
    assert decide(bundle, deployment(version="1.4.2"), {"1.4.2": FAIR_AND_CHEAP}, regopy).allowed
