"""`rai-pipelines gate`: the policies of the loop run on candidate manifests in CI/CD, with
conftest-style exit codes, JUnit XML and SARIF."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from rai_pipelines.cli import main
from rai_pipelines.demo.world import _base_files, overlay_files
from rai_pipelines.settings import PROJECT_ROOT

FACTS = {
    "1.4.2": {"fairness_applicable": False, "estimated_cost_per_inference_usd": 0.0013, "drift_share": 0.0},
    "2.0.0": {
        "fairness_applicable": False,
        "estimated_cost_per_inference_usd": 0.0081,
        "drift_share": 0.57,
        "drifted_features": ["car_value"],
    },
}


def _overlay_maker(tmp_path, spec) -> callable:
    def make(version: str) -> Path:
        root = tmp_path / f"repo-{spec.name}-{version}" / "apps" / spec.name
        for name, text in _base_files(spec).items():
            (root / "base").mkdir(parents=True, exist_ok=True)
            (root / "base" / name).write_text(text)
        for name, text in overlay_files(spec, version).items():
            (root / "overlays" / "production").mkdir(parents=True, exist_ok=True)
            (root / "overlays" / "production" / name).write_text(text)
        return root / "overlays" / "production"

    return make


@pytest.fixture
def overlay(tmp_path, specs) -> callable:
    return _overlay_maker(tmp_path, specs["credit-scoring-ai"])


@pytest.fixture
def facts_file(tmp_path) -> Path:
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(FACTS))
    return path


def gate(*args, tmp_path) -> int:
    return main(["gate", *map(str, args), "--decision-log", str(tmp_path / "log")])


def test_a_compliant_candidate_passes(overlay, facts_file, tmp_path, capsys):
    junit, sarif = tmp_path / "gate.xml", tmp_path / "gate.sarif"
    code = gate(overlay("1.4.2"), "--facts", facts_file, "--junit", junit, "--sarif", sarif, tmp_path=tmp_path)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 manifests: 1 passed, 0 failed, 0 warnings, 1 skipped, 0 errors" in out
    assert "SKIP" in out and "Service/credit-scoring-ai - not a Deployment" in out
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "0", "1")
    assert json.loads(sarif.read_text())["runs"][0]["results"] == []


def test_an_over_budget_candidate_fails_with_junit_and_sarif(overlay, facts_file, tmp_path, capsys):
    junit, sarif = tmp_path / "gate.xml", tmp_path / "gate.sarif"
    code = gate(overlay("2.0.0"), "--facts", facts_file, "--junit", junit, "--sarif", sarif, tmp_path=tmp_path)
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL - " in out and "Estimated inference cost exceeds budget (0.005 USD). [cost, rollback]" in out
    assert "WARN - " in out and "Input drift on 0.57 of the features (car_value), above 0.3." in out
    failure = ET.parse(junit).getroot().find("testcase/failure")
    assert failure.get("type") == "cost" and "budget" in failure.get("message")
    results = json.loads(sarif.read_text())["runs"][0]["results"]
    assert {(r["ruleId"], r["level"]) for r in results} == {("cost", "error"), ("drift", "warning")}
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert uris == {f"{overlay('2.0.0')}/kustomization.yaml"}  # the overlay's file, not its folder


def test_missing_facts_fail_closed(overlay, tmp_path, capsys):
    facts = tmp_path / "other.json"
    facts.write_text(json.dumps({"1.4.2": FACTS["1.4.2"]}))
    assert gate(overlay("2.0.0"), "--facts", facts, tmp_path=tmp_path) == 1
    assert "No governance facts for model version 2.0.0" in capsys.readouterr().out


def test_plain_yaml_files_and_facts_rows_are_accepted(overlay, tmp_path, capsys):
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text(
        (overlay("1.4.2").parent.parent / "base" / "deployment.yaml")
        .read_text()
        .replace("model-version: unset", 'model-version: "2.0.0"')
        .replace("credit-risk/credit-scoring-ai\n", "credit-risk/credit-scoring-ai:2.0.0\n")  # what the label names
    )
    rows = tmp_path / "rows.json"
    rows.write_text(
        json.dumps(
            [
                {
                    "date": "2023-11-05",
                    "model_name": "credit-scoring-ai",
                    "model_version": "2.0.0",
                    "estimated_cost_per_inference_usd": 0.02,
                    "fairness_applicable": False,
                },
                {
                    "date": "2023-11-06",
                    "model_name": "credit-scoring-ai",
                    "model_version": "2.0.0",
                    "estimated_cost_per_inference_usd": 0.001,
                    "fairness_applicable": False,
                },
            ]
        )
    )
    assert gate(manifest, "--facts", rows, tmp_path=tmp_path) == 0  # the latest row of the version counts
    capsys.readouterr()


@pytest.mark.parametrize(
    "content,message",
    [
        ("kind: Deployment\nmetadata: {name: x\n", "not valid YAML"),
        ("- just\n- a list\n", "not a Kubernetes object (a mapping)"),
    ],
)
def test_unreadable_manifests_are_errors_exit_2(tmp_path, facts_file, capsys, content, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    assert gate(bad, "--facts", facts_file, tmp_path=tmp_path) == 2
    out = capsys.readouterr().out
    assert "ERROR - " in out and message in out and "bad.yaml" in out


def test_an_unsafe_version_label_is_an_error(overlay, facts_file, tmp_path, capsys):
    patch = overlay("1.4.2") / "model-version.yaml"
    patch.write_text(patch.read_text().replace('"1.4.2"', '"1.4.2;rm -rf /"'))
    assert gate(patch.parent, "--facts", facts_file, tmp_path=tmp_path) == 2
    assert "not a valid model version" in capsys.readouterr().out


def test_bad_facts_and_bad_bundles_are_errors(overlay, tmp_path, capsys):
    broken = tmp_path / "facts.json"
    broken.write_text('{"1.4.2": {"fairness_score": 0.9,}}')
    assert gate(overlay("1.4.2"), "--facts", broken, tmp_path=tmp_path) == 2
    assert "facts.json:1: facts are not valid JSON" in capsys.readouterr().out
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "old.rego").write_text("package old\n\ndeny[msg] {\n\tmsg := 1\n}\n")
    broken.write_text("{}")
    assert gate(overlay("1.4.2"), "--facts", broken, "--bundle", bundle, tmp_path=tmp_path) == 2
    assert "Rego v0" in capsys.readouterr().err


def test_gate_decisions_are_logged_and_the_log_verifies(overlay, facts_file, tmp_path, capsys):
    gate(overlay("1.4.2"), "--facts", facts_file, tmp_path=tmp_path)
    gate(overlay("2.0.0"), "--facts", facts_file, tmp_path=tmp_path)
    log = tmp_path / "log" / "decisions.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["action"]["type"] for r in records] == ["gate_pass", "gate_fail"]
    assert records[1]["result"]["deny"] == ["Estimated inference cost exceeds budget (0.005 USD)."]
    assert all(r["bundles"]["policies"]["digest"].startswith("sha256:") for r in records)
    capsys.readouterr()
    assert main(["audit", "verify", "--log", str(tmp_path / "log")]) == 0
    assert "intact: 2 record(s)" in capsys.readouterr().out
    tampered = records[0] | {"result": {**records[0]["result"], "allowed": False}}
    log.write_text(json.dumps(tampered, sort_keys=True) + "\n" + log.read_text().split("\n", 1)[1])
    assert main(["audit", "verify", "--log", str(tmp_path / "log")]) == 1
    out = capsys.readouterr().out
    assert "TAMPERED" in out and "line 1 breaks the hash chain" in out


def test_policy_validate_reports_the_hierarchy_and_refuses_conflicts(tmp_path, capsys):
    assert main(["policy", "validate", str(PROJECT_ROOT / "policies")]) == 0
    assert "team people-analytics overrides" in capsys.readouterr().out
    import shutil

    shutil.copytree(PROJECT_ROOT / "policies", tmp_path / "p")
    (tmp_path / "p" / "governance" / "data.json").write_text('{"thresholds": {"fairness_score_min": 0.9}}')
    assert main(["policy", "validate", str(tmp_path / "p")]) == 2
    assert "conflict" in capsys.readouterr().err


@pytest.fixture
def screening_overlay(tmp_path, specs) -> callable:
    return _overlay_maker(tmp_path, specs["employment-screening-ai"])


@pytest.fixture(scope="module")
def validation_set(tmp_path_factory) -> Path:
    """The ACS reference year as a validation set: the shipped scores serve both versions, which
    differ in their declared decision threshold."""
    import pandas as pd

    frame = pd.read_parquet(PROJECT_ROOT / "rai_pipelines/demo/data/acs_employment_ma/reference.parquet")
    frame = frame.assign(candidate=frame["predicted_probability"], baseline=frame["predicted_probability"])
    path = tmp_path_factory.mktemp("validation") / "acs-2015.parquet"
    frame.to_parquet(path)
    return path


@pytest.mark.parametrize("version,expected_code", [("3.1.0", 0), ("3.2.0", 1)])
def test_candidate_facts_are_computed_from_a_validation_set(
    screening_overlay, validation_set, aws_catalogue, tmp_path, capsys, version, expected_code
):
    code = gate(
        screening_overlay(version),
        "--validation-set",
        validation_set,
        "--model",
        "employment-screening-ai",
        "--candidate-version",
        version,
        "--candidate-score-column",
        "candidate",
        "--baseline-score-column",
        "baseline",
        "--daily-inferences",
        "15000",
        "--aws-pricing-endpoint",
        aws_catalogue.endpoint,
        tmp_path=tmp_path,
    )
    out = capsys.readouterr().out
    assert code == expected_code, out
    facts = json.loads(out.split("candidate facts from ", 1)[1].split(": ", 1)[1].splitlines()[0])
    # c5.xlarge in eu-west-1 at the catalogue's 0.192 USD/h, two replicas, over 15,000 inferences a day
    assert facts["estimated_cost_per_inference_usd"] == pytest.approx(0.192 * 2 * 24 / 15000)
    assert facts["estimated_from"].endswith("0.384 USD/h")
    assert any(r["target"] == "AWSPriceListService.GetProducts" for r in aws_catalogue.requests)
    assert facts["prediction_drift_p_value"] == pytest.approx(1.0)
    if version == "3.2.0":
        assert facts["fairness_score"] < 0.8 and "fairness score below acceptable threshold" in out
    else:
        assert facts["fairness_score"] > 0.8


def test_a_validation_set_without_the_protected_attributes_is_an_error(screening_overlay, tmp_path, capsys):
    import pandas as pd

    bad = tmp_path / "no-sex.parquet"
    pd.DataFrame({"candidate": [0.1, 0.9], "RAC1P": ["1", "2"]}).to_parquet(bad)
    code = gate(
        screening_overlay("3.1.0"),
        "--validation-set",
        bad,
        "--model",
        "employment-screening-ai",
        "--candidate-version",
        "3.1.0",
        "--candidate-score-column",
        "candidate",
        "--daily-inferences",
        "100",
        tmp_path=tmp_path,
    )
    assert code == 2  # refused before any catalogue is asked
    assert "no column(s) SEX" in capsys.readouterr().err


def test_a_list_is_expanded_and_a_set_without_deployments_is_an_error(overlay, facts_file, tmp_path, capsys):
    rendered = tmp_path / "list.yaml"
    base = overlay("2.0.0").parent.parent / "base"
    import yaml

    deployment = yaml.safe_load((base / "deployment.yaml").read_text().replace("unset", '"2.0.0"'))
    rendered.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [deployment]}))
    assert gate(rendered, "--facts", facts_file, tmp_path=tmp_path) == 1  # the Deployment inside was judged
    assert "Estimated inference cost exceeds budget" in capsys.readouterr().out
    service = tmp_path / "service.yaml"
    service.write_text((base / "service.yaml").read_text())
    assert gate(service, "--facts", facts_file, tmp_path=tmp_path) == 2
    assert "no Deployment among the manifests" in capsys.readouterr().out


def test_malformed_manifests_and_bundles_fail_closed_with_reports(facts_file, tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata:\nspec:\n  template:\n    metadata:\n")
    junit, sarif = tmp_path / "g.xml", tmp_path / "g.sarif"
    # Null metadata is read as no labels: an ungoverned Deployment, allowed, not a crash.
    assert gate(broken, "--facts", facts_file, "--junit", junit, "--sarif", sarif, tmp_path=tmp_path) == 0
    governed = tmp_path / "governed.yaml"
    governed.write_text(
        broken.read_text().replace(
            "metadata:\nspec:", "metadata:\n  name: m\n  labels: {app: credit-scoring-ai}\nspec:", 1
        )
    )
    assert gate(governed, "--facts", facts_file, tmp_path=tmp_path) == 1
    assert "no model-version label" in capsys.readouterr().out
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "old.rego").write_text("package old\n\nallow {\n\ttrue\n}\n")
    assert (
        gate(broken, "--facts", facts_file, "--bundle", bundle, "--junit", junit, "--sarif", sarif, tmp_path=tmp_path)
        == 2
    )
    assert ET.parse(junit).getroot().find("testcase/error") is not None
    results = json.loads(sarif.read_text())["runs"][0]["results"]
    assert results and all(r["locations"] for r in results)
    capsys.readouterr()


@pytest.mark.parametrize("wrap", ["DeploymentList", "nested List", "List of DeploymentList"])
def test_a_deployment_inside_any_list_kind_is_judged(overlay, facts_file, tmp_path, capsys, wrap):
    """kubectl flattens every *List kind, nested ones included: the gate judges what they hold
    (hardening issue, case 2: a DeploymentList used to pass as 'not a Deployment')."""
    import yaml

    base = overlay("2.0.0").parent.parent / "base"
    deployment = yaml.safe_load((base / "deployment.yaml").read_text().replace("unset", '"2.0.0"'))
    if wrap == "DeploymentList":
        document = {"apiVersion": "apps/v1", "kind": "DeploymentList", "items": [deployment]}
    elif wrap == "nested List":
        document = {
            "apiVersion": "v1",
            "kind": "List",
            "items": [{"apiVersion": "v1", "kind": "List", "items": [deployment]}],
        }
    else:
        document = {
            "apiVersion": "v1",
            "kind": "List",
            "items": [{"apiVersion": "apps/v1", "kind": "DeploymentList", "items": [deployment]}],
        }
    listed = tmp_path / "listed.yaml"
    listed.write_text(yaml.safe_dump(document))
    assert gate(listed, "--facts", facts_file, tmp_path=tmp_path) == 1
    assert "Estimated inference cost exceeds budget" in capsys.readouterr().out


@pytest.mark.parametrize(
    "text, message",
    [
        ("- just\n- a list\n", "not a Kubernetes object"),
        ("kind: Deployment\nmetadata: {name: x}\n", "needs a string apiVersion and kind"),
        ("apiVersion: v1\nkind: List\nitems: {a: 1}\n", "the items of a List must be a list"),
        ("apiVersion: v1\nkind: List\nitems: [1]\n", "not a Kubernetes object"),
    ],
)
def test_what_the_gate_cannot_classify_fails_closed(facts_file, tmp_path, capsys, text, message):
    odd = tmp_path / "odd.yaml"
    odd.write_text(text)
    junit = tmp_path / "g.xml"
    assert gate(odd, "--facts", facts_file, "--junit", junit, tmp_path=tmp_path) == 2
    assert message in capsys.readouterr().out
    assert ET.parse(junit).getroot().find("testcase/error") is not None


@pytest.mark.parametrize(
    "image_tag, label, message",
    [
        ("2.0.0", "1.4.2", "No container runs registry.example.com/credit-risk/credit-scoring-ai:1.4.2"),
        ("3.1.0", "3.1.0", "Model version 3.1.0 is not a version of credit-scoring-ai in the model registry"),
    ],
)
def test_a_model_version_label_that_is_not_what_runs_fails_closed(overlay, tmp_path, capsys, image_tag, label, message):
    """Hardening issue, case 3: a Deployment running :2.0.0 labelled 1.4.2 (compliant facts) used to
    pass, and a credit-scoring Deployment labelled 3.1.0 picked up another model's facts."""
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text(
        (overlay("1.4.2").parent.parent / "base" / "deployment.yaml")
        .read_text()
        .replace("model-version: unset", f'model-version: "{label}"')
        .replace("credit-risk/credit-scoring-ai\n", f"credit-risk/credit-scoring-ai:{image_tag}\n")
    )
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({label: {"fairness_applicable": False, "estimated_cost_per_inference_usd": 0.001}}))
    assert gate(manifest, "--facts", facts, tmp_path=tmp_path) == 1
    out = capsys.readouterr().out
    assert message in out and "[version_mismatch, alert]" in out


def test_a_yaml_alias_bomb_is_refused_before_it_is_expanded(facts_file, tmp_path, capsys):
    from tests.conftest import alias_bomb

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    assert len(bomb.read_bytes()) < 1000
    junit = tmp_path / "g.xml"
    assert gate(bomb, "--facts", facts_file, "--junit", junit, tmp_path=tmp_path) == 2
    assert "refused before it is expanded" in capsys.readouterr().out
    assert ET.parse(junit).getroot().find("testcase/error") is not None


def test_a_plain_deny_of_a_team_module_is_reported_everywhere(overlay, facts_file, tmp_path, capsys):
    """Hardening issue, case 12: a `deny` message without a violation made the gate exit 1 with no
    FAIL line, no JUnit failure and no SARIF result."""
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(PROJECT_ROOT / "policies", bundle)
    (bundle / "team.rego").write_text(
        'package apexlogic.ai_governance\n\ndeny contains "Credit models need a second approver." if governed\n'
    )
    junit, sarif = tmp_path / "g.xml", tmp_path / "g.sarif"
    code = gate(
        overlay("1.4.2"), "--facts", facts_file, "--bundle", bundle, "--junit", junit, "--sarif", sarif,
        tmp_path=tmp_path,
    )  # fmt: skip
    assert code == 1
    assert (
        "FAIL - " in (out := capsys.readouterr().out) and "Credit models need a second approver. [deny, alert]" in out
    )
    failure = ET.parse(junit).getroot().find("testcase/failure")
    assert failure is not None and "second approver" in failure.get("message")
    results = json.loads(sarif.read_text())["runs"][0]["results"]
    assert [r["ruleId"] for r in results if "second approver" in r["message"]["text"]] == ["deny"]


def test_a_symlinked_manifest_is_refused_and_its_target_never_quoted(facts_file, tmp_path, capsys):
    """Hardening issue, case 13: the gate followed a symlink out of the tree and quoted the target's
    lines into its output, JUnit and SARIF."""
    secret = tmp_path / "outside" / "credentials"
    secret.parent.mkdir()
    secret.write_text("aws_secret_access_key: s3cr3t-value\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "deployment.yaml").symlink_to(secret)
    junit, sarif = tmp_path / "g.xml", tmp_path / "g.sarif"
    assert (
        gate(repo / "deployment.yaml", "--facts", facts_file, "--junit", junit, "--sarif", sarif, tmp_path=tmp_path)
        == 2
    )
    captured = capsys.readouterr()
    assert "a symbolic link" in captured.out + captured.err
    assert "s3cr3t" not in captured.out + captured.err + junit.read_text() + sarif.read_text()


@pytest.mark.parametrize(
    "module",
    [
        "rt := opa.runtime\n\t()\n",  # the call on the next line, which line matching let through
        "rt := opa.runtime()\n",
    ],
)
def test_a_team_module_cannot_publish_the_pipelines_environment(
    overlay, facts_file, tmp_path, capsys, monkeypatch, module
):
    """Hardening issue, case 1: a team rule that put opa.runtime().env.GIT_TOKEN in a message got
    it into the gate's output, JUnit, SARIF and the decision log. The module never loads."""
    import shutil

    monkeypatch.setenv("GIT_TOKEN", "ghp_leaked_if_you_see_this")
    bundle = tmp_path / "bundle"
    shutil.copytree(PROJECT_ROOT / "policies", bundle)
    (bundle / "leak.rego").write_text(
        "package apexlogic.ai_governance\n\n"
        + module
        + '\nviolation contains finding("cost", sprintf("%v", [rt.env.GIT_TOKEN])) if governed\n'
    )
    junit, sarif, log = tmp_path / "g.xml", tmp_path / "g.sarif", tmp_path / "log"
    code = main(
        ["gate", str(overlay("2.0.0")), "--facts", str(facts_file), "--bundle", str(bundle), "--junit", str(junit),
         "--sarif", str(sarif), "--decision-log", str(log)]
    )  # fmt: skip
    assert code == 2
    captured = capsys.readouterr()
    written = captured.out + captured.err + junit.read_text() + sarif.read_text()
    assert "leak.rego" in written and "ghp_leaked_if_you_see_this" not in written
    assert not (log / "decisions.jsonl").exists() or "ghp_leaked" not in (log / "decisions.jsonl").read_text()


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ((), "give the candidate's facts (--facts) or a validation set"),
        (("--validation-set", "holdout.parquet", "--model", "credit-scoring-ai"), "--validation-set needs --model"),
    ],
)
def test_a_gate_that_cannot_decide_still_writes_junit_and_sarif(overlay, tmp_path, capsys, extra, reason):
    junit, sarif = tmp_path / "gate.xml", tmp_path / "gate.sarif"
    code = gate(overlay("1.4.2"), *extra, "--junit", junit, "--sarif", sarif, tmp_path=tmp_path)
    assert code == 2
    assert reason in capsys.readouterr().err
    suite = ET.parse(junit).getroot()
    assert suite.get("errors") == "1" and reason in suite.find("testcase/error").get("message")
    (result,) = json.loads(sarif.read_text())["runs"][0]["results"]
    assert result["ruleId"] == "gate-error" and result["level"] == "error" and reason in result["message"]["text"]


def test_sarif_names_the_rule_of_each_warning(overlay, tmp_path, capsys):
    facts = tmp_path / "facts.json"
    facts.write_text(
        json.dumps(
            {
                "1.4.2": {
                    "fairness_score": 0.74,
                    "fairness_score_ci_upper": 0.86,
                    "estimated_cost_per_inference_usd": 0.0013,
                    "drift_share": 0.57,
                    "drifted_features": ["car_value"],
                }
            }
        )
    )
    sarif = tmp_path / "gate.sarif"
    code = gate(overlay("1.4.2"), "--facts", facts, "--sarif", sarif, tmp_path=tmp_path)
    assert code == 0, capsys.readouterr().out  # warnings do not block
    results = json.loads(sarif.read_text())["runs"][0]["results"]
    assert sorted((r["ruleId"], r["level"]) for r in results) == [("drift", "warning"), ("fairness", "warning")]
    fairness = next(r for r in results if r["ruleId"] == "fairness")
    assert "95% interval reaches 0.86" in fairness["message"]["text"]
