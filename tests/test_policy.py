"""The Rego policies and the embedded engine: unit tests of the bundle, the reference policy's
decisions, and the refusals (v0 syntax, syntax errors, outside-reaching built-ins)."""

from __future__ import annotations

import shutil

import pytest

from rai_pipelines.errors import PolicyError
from rai_pipelines.policy import PolicyBundle, RegopyEngine, evaluate_deny, run_policy_tests, validate_bundle_compiles
from rai_pipelines.settings import PROJECT_ROOT

UNFAIR = "AI model fairness score below acceptable threshold (0.8)."
EXPENSIVE = "Estimated inference cost exceeds budget (0.005 USD)."


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return PolicyBundle.load(PROJECT_ROOT / "policies")


def deployment(app="credit-scoring-ai", version="2.0.0", kind="Deployment", labels=None):
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": app, "labels": {"app": app, **(labels or {})}},
        "spec": {"template": {"metadata": {"labels": {"app": app, "model-version": version}}}},
    }


def test_the_bundles_own_rego_tests_pass(bundle):
    results = run_policy_tests(bundle)
    assert len(results) == 9
    failed = [r.name for r in results if not r.passed]
    assert failed == []


def test_a_failing_rego_test_is_reported_as_failed(bundle, tmp_path):
    shutil.copytree(PROJECT_ROOT / "policies", tmp_path / "p")
    (tmp_path / "p" / "extra_test.rego").write_text(
        "package apexlogic.extra_test\n\nimport data.apexlogic.ai_governance\n\n"
        "test_wrong_expectation if {\n\tcount(ai_governance.violations({}, {})) == 1\n}\n"
    )
    results = {r.name: r.passed for r in run_policy_tests(PolicyBundle.load(tmp_path / "p"))}
    assert results["test_wrong_expectation"] is False
    assert results["test_compliant_model_is_allowed"] is True


# The golden table of the reference policy: (manifest, facts, expected deny set).
GOLDEN = [
    (deployment(version="1.4.2"), {"1.4.2": {"fairness_score": 0.93, "estimated_cost_per_inference_usd": 0.0013}}, []),
    (deployment(), {"2.0.0": {"fairness_score": 0.79, "estimated_cost_per_inference_usd": 0.001}}, [UNFAIR]),
    (deployment(), {"2.0.0": {"fairness_score": 0.95, "estimated_cost_per_inference_usd": 0.0081}}, [EXPENSIVE]),
    (deployment(), {"2.0.0": {"fairness_score": 0.1, "estimated_cost_per_inference_usd": 0.02}}, [UNFAIR, EXPENSIVE]),
    (deployment(), {"2.0.0": {"fairness_score": 0.8, "estimated_cost_per_inference_usd": 0.005}}, []),
    (deployment(kind="StatefulSet"), {"2.0.0": {"fairness_score": 0.1}}, []),
    (deployment(app="recommender"), {"2.0.0": {"fairness_score": 0.1}}, []),
    (
        deployment(app="employment-screening-ai", version="3.2.0", labels={"rai-pipelines.io/governed": "true"}),
        {"3.2.0": {"fairness_score": 0.671, "estimated_cost_per_inference_usd": 0.00055}},
        [UNFAIR],
    ),
    (deployment(), {"1.4.2": {"fairness_score": 0.1}}, []),  # facts of another version never apply
]


@pytest.mark.parametrize("manifest,facts,expected", GOLDEN)
def test_reference_policy_golden_decisions(bundle, manifest, facts, expected):
    assert evaluate_deny(RegopyEngine(), bundle, [manifest], facts) == [sorted(expected)]


def test_many_inputs_are_evaluated_with_one_compiled_bundle(bundle):
    manifests = [m for m, _, _ in GOLDEN]
    facts = {
        "2.0.0": {"fairness_score": 0.5, "estimated_cost_per_inference_usd": 0.01},
        "1.4.2": {"fairness_score": 0.9, "estimated_cost_per_inference_usd": 0.001},
        "3.2.0": {"fairness_score": 0.9},
    }
    results = evaluate_deny(RegopyEngine(), bundle, manifests, facts)
    assert results[0] == [] and results[1] == sorted([UNFAIR, EXPENSIVE]) and results[5] == []


def _bundle_with(tmp_path, name: str, source: str) -> PolicyBundle:
    shutil.copytree(PROJECT_ROOT / "policies", tmp_path / "p", dirs_exist_ok=True)
    (tmp_path / "p" / name).write_text(source)
    return PolicyBundle.load(tmp_path / "p")


def test_old_syntax_is_refused_with_how_to_convert(tmp_path):
    brief = (
        "package apexlogic.ai_governance\n\nimport data.ai_models\n\ndeny[msg] {\n"
        '\tinput.kind == "Deployment"\n\tmsg := "x"\n}\n'
    )
    with pytest.raises(PolicyError) as err:
        _bundle_with(tmp_path, "old.rego", brief)
    message = str(err.value)
    assert "old.rego:5" in message and "Rego v0" in message
    assert "deny contains msg if {" in message


def test_a_syntax_error_names_file_and_line(tmp_path):
    bundle = _bundle_with(tmp_path, "broken.rego", "package broken\n\nallow if {\n\tinput.a ==\n}\n")
    with pytest.raises(PolicyError, match=r"broken\.rego:4:\d+: Invalid boolean operator"):
        validate_bundle_compiles(bundle)


@pytest.mark.parametrize(
    "call", ['http.send({"method": "get", "url": "http://x"})', 'net.lookup_ip_addr("x")', "opa.runtime()"]
)
def test_builtins_that_reach_outside_are_refused(tmp_path, call):
    with pytest.raises(PolicyError, match=r"leak\.rego:4: built-in .* not allowed"):
        _bundle_with(tmp_path, "leak.rego", f"package leak\n\nx := y if {{\n\ty := {call}\n}}\n")


def test_tests_using_with_are_refused_before_they_crash_the_engine(tmp_path):
    bundle = _bundle_with(
        tmp_path,
        "w_test.rego",
        "package w_test\n\nimport data.apexlogic.ai_governance\n\n"
        "test_x if {\n\tcount(ai_governance.deny) == 0 with input as {}\n}\n",
    )
    with pytest.raises(PolicyError, match=r"w_test\.rego:6: `with \.\.\. as` crashes"):
        run_policy_tests(bundle)


def test_an_undefined_decision_is_an_error_not_compliance(bundle):
    with pytest.raises(PolicyError, match="undefined"):
        evaluate_deny(RegopyEngine(), bundle, [deployment()], {}, package="no.such.package")


def test_bundle_digest_changes_with_content(tmp_path, bundle):
    other = _bundle_with(tmp_path, "extra.rego", "package extra\n\nx := 1\n")
    assert other.digest != bundle.digest and bundle.digest.startswith("sha256:")


def test_policy_test_command_exit_codes(tmp_path, capsys):
    from rai_pipelines.cli import main

    assert main(["policy", "test", str(PROJECT_ROOT / "policies")]) == 0
    assert "PASS: 9/9" in capsys.readouterr().out
    _bundle_with(tmp_path, "extra_test.rego", "package extra_test\n\ntest_fails if {\n\t1 == 2\n}\n")
    assert main(["policy", "test", str(tmp_path / "p")]) == 1
    (tmp_path / "p" / "old.rego").write_text("package old\n\nallow {\n\ttrue\n}\n")
    assert main(["policy", "test", str(tmp_path / "p")]) == 2
