"""The main job end to end: `rai-pipelines demo` builds the world, runs the daily partitions, the
Dagster daemon ticks the policy sensor and runs the rollbacks; the printed commits are real. Then
the README's "Add a model" and "Try it on the demo" blocks, as written, add a third model to it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from rai_pipelines.gitops.git import run_git
from rai_pipelines.settings import PROJECT_ROOT


@pytest.mark.slow
def test_demo_prints_real_rollback_commits_made_through_the_daemon(tmp_path):
    # As a user's clone: the demo in .rai-demo beside a models/ folder (a copy, as the README's blocks add to it)
    home = tmp_path / ".rai-demo"
    shutil.copytree(PROJECT_ROOT / "models", tmp_path / "models")
    out = subprocess.run(
        [sys.executable, "-m", "rai_pipelines.cli", "demo", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DAGSTER_HOME": "", "RAI_MODEL_REGISTRY": str(tmp_path / "models")},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    commits = re.findall(r"^rollback commit ([0-9a-f]{40}) in (\S+)$", out.stdout, re.M)
    assert len(commits) == 2
    for sha, repo in commits:
        assert repo == str(home / "gitops.git")
        assert run_git(["--git-dir", repo, "cat-file", "-t", sha]).strip() == "commit"
        assert "Rai-Decision-Id:" in run_git(["--git-dir", repo, "log", "-1", "--format=%B", sha])
    # the GPU version is denied for its estimated cost per inference, and alerts on its budget's burn
    denied = re.search(r"^  policy sensor: credit-scoring-ai 2\.0\.0 denied: (.*) \(decision ", out.stdout, re.M)
    assert denied and "Estimated inference cost exceeds budget (0.005 USD)." in denied[1]
    assert "Budget burning at" in denied[1]
    assert "employment-screening-ai 3.2.0 denied: AI model fairness score below" in out.stdout
    # FinOps: the demo's data transfer is an anomaly with its root cause, and the over-provisioned
    # replicas a recommendation pushed as a branch of the GitOps repository, never merged
    assert re.search(
        r"^  model=employment-screening-ai: 2023-11-11\.\.2023-11-11 .*impact \+81\.00 USD .*"
        r"root cause service=AWS Data Transfer",
        out.stdout,
        re.M,
    ), out.stdout[-3000:]
    branch = re.search(
        r"^  instance_type employment-screening-ai 3\.2\.0: nodeSelector\.instance-type c5\.xlarge -> t3\.medium, "
        r"saves 213\.74 USD/month: (rai-pipelines/recommendation/[0-9a-f]{16})$",
        out.stdout,
        re.M,
    )
    assert branch, out.stdout[-3000:]
    gitops = str(home / "gitops.git")
    proposed = run_git(
        [
            "--git-dir",
            gitops,
            "show",
            f"{branch[1]}:apps/employment-screening-ai/overlays/production/model-version.yaml",
        ]
    )
    assert "node.kubernetes.io/instance-type: t3.medium" in proposed
    assert "t3.medium" not in run_git(
        ["--git-dir", gitops, "show", "main:apps/employment-screening-ai/overlays/production/model-version.yaml"]
    )
    # the attributions of the car-loan model move after the data set's change (from 2023-11-08), not before
    explained = dict(
        re.findall(r"^  (2023-11-\d\d) credit-scoring-ai .* attributions moved \((\S+), ", out.stdout, re.M)
    )
    assert len(explained) == 14 and explained["2023-11-05"] == "-"
    assert "car_value" in explained["2023-11-14"] and "loan_length" in explained["2023-11-14"]
    # The follow-up commands the demo prints work as printed, from any directory.
    follow_ups = re.findall(r"^  (\S+/rai-pipelines (?:audit verify|policy suggest) .+)$", out.stdout, re.M)
    assert len(follow_ups) == 2, out.stdout[-2000:]
    for command in follow_ups:
        done = subprocess.run(command.split(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 0, command + "\n" + done.stdout + done.stderr
    assert "intact" in subprocess.run(follow_ups[0].split(), capture_output=True, text=True, cwd=tmp_path).stdout
    # The runs are in the persistent instance: 14 daily runs, and rollbacks launched by the sensor.
    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    try:
        with dg.DagsterInstance.get() as instance:
            daily = instance.get_run_records(dg.RunsFilter(job_name="daily_governance_job"))
            rollbacks = instance.get_run_records(dg.RunsFilter(job_name="gitops_rollback_job"))
            assert len(daily) == 14 and all(r.dagster_run.is_success for r in daily)
            assert len(rollbacks) == 2
            assert {r.dagster_run.tags.get("dagster/sensor_name") for r in rollbacks} == {"governance_policy_sensor"}
    finally:
        del os.environ["DAGSTER_HOME"]

    # The README's walkthrough gives the demo a model of the user's own, through the Dagster CLI.
    readme = (PROJECT_ROOT / "README.md").read_text()
    add_a_model = readme.split("\n## Add a model", 1)[1].split("\n### Try it on the demo", 1)[0]
    try_it = readme.split("\n### Try it on the demo", 1)[1].split("\n## ", 1)[0]
    blocks = [re.findall(r"```sh\n(.*?)```", section, re.S)[0] for section in (add_a_model, try_it)]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAI_", "DAGSTER_"))} | {"PATH": path}
    done = subprocess.run(
        ["bash", "-ec", "\n".join(blocks)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stderr
    for report in ("feature_snapshots", "drift_report", "fairness_report", "performance_report"):
        assert (home / "lake" / report / "model=fraud-scoring-ai" / "date=2023-11-08").is_dir(), report
    facts_file = home / "lake" / "governance_facts" / "model=fraud-scoring-ai" / "date=2023-11-08" / "data.parquet"
    facts = pq.read_table(facts_file).to_pylist()
    fraud = [row for row in facts if row["model_name"] == "fraud-scoring-ai"]
    assert [row["model_version"] for row in fraud] == ["1.0.0"]
    assert fraud[0]["inference_count"] == 3571 and fraud[0]["drift_share"] > 0.5  # the car-loan shift

    # The README's "Try the gate on the demo": a CI-like checkout of the demo's GitOps repository.
    shutil.copytree(PROJECT_ROOT / "policies", tmp_path / "policies")
    gate_block = re.findall(r"```sh\n(.*?)```", readme.split("\n### Try the gate on the demo", 1)[1], re.S)[0]
    done = subprocess.run(
        ["bash", "-ec", gate_block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    passed, failed = re.findall(r"^\d+ manifests: .*$", done.stdout, re.M)
    assert "2 passed, 0 failed" in passed and "0 passed, 2 failed" in failed
    assert "Estimated inference cost exceeds budget (0.005 USD). [cost, rollback]" in done.stdout
    assert "AI model fairness score below acceptable threshold (0.8). [fairness, rollback]" in done.stdout
    assert "gate exit 1" in done.stdout and "intact: " in done.stdout
    assert re.search(r"^PASS: (\d+)/\1$", done.stdout, re.M)
    sarif = json.loads((tmp_path / "gitops" / "gate.sarif").read_text())
    rules = [r["ruleId"] for r in sarif["runs"][0]["results"]]
    # the responsible-AI findings, and the FinOps ones on the demo's facts (budgets burning, the GPU
    # version's allocated cost per inference above the warning level)
    assert {"cost", "drift", "fairness", "budget", "cost_per_inference"} <= set(rules)
    assert set(rules) <= {"cost", "drift", "fairness", "budget", "cost_per_inference", "cost_anomaly", "explanations"}
