"""The code location: it validates, loads without the heavy libraries, and wires every part."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter

import dagster as dg

from rai_pipelines.settings import PROJECT_ROOT


def _env(tmp_path) -> dict[str, str]:
    return {**os.environ, "RAI_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster_home")}


def test_dagster_definitions_validate_passes_without_warnings(tmp_path):
    (tmp_path / "dagster_home").mkdir()
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster_home" / "dagster.yaml")
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", str(PROJECT_ROOT / "workspace.yaml")],
        cwd=PROJECT_ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    # Dagster 1.13 warns that the `definitions validate` command itself is superseded by `dg check
    # defs` (a separate package); that line is about the CLI, not about this code location.
    lines = [
        line
        for line in (out.stdout + out.stderr).splitlines()
        if "definitions_validate_command" not in line and "return callback(*args, **kwargs)" not in line
    ]
    text = "\n".join(lines)
    assert "Validation successful for code location rai_pipelines" in text
    assert "WARNING" not in text and "Warning" not in text, text


def test_loading_definitions_does_not_import_heavy_libraries(tmp_path):
    code = (
        "import sys, rai_pipelines.definitions as d; "
        "print(sorted(m for m in ('alibi_detect', 'great_expectations', 'google.cloud.billing', 'regopy', "
        "'sklearn', 'tensorflow', 'torch', 'google.cloud.bigquery', 'google.cloud.storage', 'azure.storage.blob', "
        "'statsforecast', 'boto3', 'matplotlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_definitions_hold_every_part_of_the_loop():
    from rai_pipelines.definitions import defs as load

    defs = load()
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {
        "cost_ledger",
        "credit_scoring_ai/governance_facts",
        "employment_screening_ai/governance_facts",
        "gitops_rollback",
        "governance_decisions",
        "credit_scoring_ai/feature_snapshots",
        "credit_scoring_ai/drift_report",
        "credit_scoring_ai/fairness_report",
        "employment_screening_ai/feature_snapshots",
        "employment_screening_ai/drift_report",
        "employment_screening_ai/fairness_report",
        "credit_scoring_ai/performance_report",
        "credit_scoring_ai/explanation_report",  # the credit model declares explanations
        "employment_screening_ai/performance_report",
        # the FinOps layer
        "catalogue_prices",
        "model_costs",
        "cost_anomalies",
        "cost_forecast",
        "finops_recommendations",
    }
    finops = defs.resolve_assets_def("model_costs")
    assert finops.group_names_by_key[dg.AssetKey("model_costs")] == "finops"
    facts = defs.resolve_assets_def(dg.AssetKey(["employment_screening_ai", "governance_facts"]))
    upstream = {
        k.to_user_string() for k in facts.asset_deps[dg.AssetKey(["employment_screening_ai", "governance_facts"])]
    }
    assert {"model_costs", "cost_anomalies", "cost_forecast", "catalogue_prices"} <= upstream
    sensor = defs.resolve_sensor_def("governance_policy_sensor")
    schedule = defs.resolve_schedule_def("daily_governance_job_schedule")
    assert sensor.default_status.value == "RUNNING" and schedule.default_status.value == "RUNNING"
    assert schedule.cron_schedule == "0 3 * * *"
    check_keys = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    assert check_keys == {
        "reconciles_with_export",
        "focus_conformance",
        "conserves_money",  # model_costs: the allocation adds up to the ledger
        "snapshot_is_complete",
        "snapshot_matches_reference",
        "restored_version_complies",  # gitops_rollback: judged as the restored version's next facts arrive
    }
    rollback_job = defs.resolve_job_def("gitops_rollback_job")
    # the sensor's job materialises the rollback asset and nothing else
    assert [k.to_user_string() for k in rollback_job.asset_layer.executable_asset_keys] == ["gitops_rollback"]
    assert rollback_job.tags["rai-pipelines/remediation"] == "rollback"
    assert rollback_job.executor_def.name == "in_process"  # one step: no second process loading the code
    assert sensor.job_name == "gitops_rollback_job"


BILLING_SOURCES = """
aws_cur:
  - {root: s3://payer-cur, layout: cur2, billing_account_id: "123456789012"}
aws_focus:
  - {root: s3://payer-focus, billing_account_id: "123456789012"}
azure_focus:
  - billing_account_id: /providers/Microsoft.Billing/billingAccounts/8611537
    export_name: focus-cost
    directory: exports
    container: billing
    connection_string: {env: RAI_TEST_AZURE_CONNECTION}
gcp_bigquery:
  - {project: billing-prj, dataset: billing, billing_account_id: 01ABCD-234567-89EFGH, detailed: true}
gcp_storage:
  - {root: /tmp/gcp-billing-copy, billing_account_id: 01ABCD-234567-89EFGH}
"""


def test_billing_sources_declared_in_yaml_reach_the_resource(tmp_path, monkeypatch):
    from rai_pipelines.costs.sources import load_billing_sources

    path = tmp_path / "billing.yaml"
    path.write_text(BILLING_SOURCES)
    monkeypatch.setenv("RAI_TEST_AZURE_CONNECTION", "DefaultEndpointsProtocol=http;AccountName=x;AccountKey=eA==")
    declared = load_billing_sources(path)
    assert {k: len(v) for k, v in declared.items()} == {
        "aws_cur": 1, "aws_focus": 1, "azure_focus": 1, "gcp_bigquery": 1, "gcp_storage": 1
    }  # fmt: skip
    assert declared["azure_focus"][0].connection_string.startswith("DefaultEndpointsProtocol=http")
    assert declared["aws_cur"][0].billing_account_id == "123456789012"

    from rai_pipelines.definitions import _billing
    from rai_pipelines.settings import Settings

    monkeypatch.setenv("RAI_HOME", str(tmp_path))
    monkeypatch.setenv("RAI_BILLING_SOURCES", str(path))
    billing = _billing(Settings.from_env())
    kinds = Counter(source.kind for source in billing.sources)
    assert (kinds["aws_cur"], kinds["aws_focus"], kinds["gcp_bigquery"], kinds["onprem"]) == (3, 1, 1, 1)


def test_bad_billing_source_declarations_name_file_source_and_field(tmp_path, monkeypatch):
    import pytest

    from rai_pipelines.core.errors import BadInputError
    from rai_pipelines.costs.sources import load_billing_sources

    monkeypatch.delenv("RAI_TEST_AZURE_CONNECTION", raising=False)
    path = tmp_path / "billing.yaml"
    for text, message in [
        ("oracle_cloud: []", r"unknown source kind\(s\) oracle_cloud"),
        ("aws_focus:\n  - {root: s3://x}", r"aws_focus\[0\]: missing field\(s\) billing_account_id"),
        (
            "aws_focus:\n  - {root: s3://x, billing_account_id: '1', bucket: y}",
            r"aws_focus\[0\]: unknown field\(s\) bucket",
        ),
        (
            "gcp_bigquery:\n  - {project: p, dataset: d, billing_account_id: a, detailed: maybe}",
            r"detailed: Input should",
        ),
        (BILLING_SOURCES, r"azure_focus\[0\]\.connection_string: environment variable RAI_TEST_AZURE_CONNECTION"),
    ]:
        path.write_text(text)
        with pytest.raises(BadInputError, match=message):
            load_billing_sources(path)


def test_a_bad_model_file_leaves_that_model_out_and_is_reported_while_the_others_load(tmp_path, monkeypatch):
    import dagster as dg
    import pytest

    from rai_pipelines.core.errors import BadInputError
    from rai_pipelines.core.registry import load_registry
    from rai_pipelines.definitions import build_definitions
    from rai_pipelines.settings import Settings

    registry = tmp_path / "models"
    shutil.copytree(PROJECT_ROOT / "models", registry)
    # a model file named .yml is read like .yaml
    (registry / "employment-screening-ai.yaml").rename(registry / "employment-screening-ai.yml")
    credit = (registry / "credit-scoring-ai.yaml").read_text()
    broken = credit.replace("name: credit-scoring-ai", "name: fraud-scoring-ai").replace(
        "correction: bonferroni", "correction: bonferoni"
    )
    assert broken.count("fraud-scoring-ai") == 1 and "bonferoni" in broken
    (registry / "fraud-scoring-ai.yaml").write_text(broken)
    (registry / "README.md").write_text("not a model file")
    monkeypatch.setenv("RAI_MODEL_REGISTRY", str(registry))
    monkeypatch.setenv("RAI_HOME", str(tmp_path / "home"))

    defs = build_definitions(Settings.from_env())
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "credit_scoring_ai/drift_report" in keys and "employment_screening_ai/drift_report" in keys
    assert not any(k.startswith("fraud_scoring_ai/") for k in keys)
    sensor = defs.resolve_sensor_def("model_registry_sensor")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
        with pytest.raises(Exception, match=r"fraud-scoring-ai\.yaml.*correction") as failure:
            sensor.evaluate_tick(context)
        assert "1 model file(s) left out" in str(failure.value)
    # what decides reads the registry strictly: the policies fail closed on the bad file
    with pytest.raises(BadInputError, match=r"fraud-scoring-ai\.yaml"):
        load_registry(registry)
    (registry / "fraud-scoring-ai.yaml").unlink()
    assert set(load_registry(registry)) == {"credit-scoring-ai", "employment-screening-ai"}
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources)
        assert "all 2 model files are valid" in str(sensor.evaluate_tick(context).skip_message)


def test_the_embedded_instance_limits_remediations_per_deployment_not_globally(tmp_path):
    """A hundred violations in a hundred deployments must not queue behind one another: the limit
    is one run per value of the remediation-target tag (an overlay), as Dagster reads dagster.yaml."""
    from dagster._core.instance import InstanceRef

    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path)))
    limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert limits == [
        {"key": "rai-pipelines/remediation-target", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]
    # a rollback run lasts seconds: the queue is looked at every second, not Dagster's default 5
    assert instance.run_coordinator.dequeue_interval_seconds == 1
