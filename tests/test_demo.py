"""The main job end to end: `rai-pipelines demo` builds the world, runs the daily partitions, the
Dagster daemon ticks the policy sensor and runs the rollbacks; the printed commits are real."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import dagster as dg
import pytest

from rai_pipelines.gitops.git import run_git


@pytest.mark.slow
def test_demo_prints_real_rollback_commits_made_through_the_daemon(tmp_path):
    home = tmp_path / "demo"
    out = subprocess.run(
        [sys.executable, "-m", "rai_pipelines.cli", "demo", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DAGSTER_HOME": ""},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    commits = re.findall(r"^rollback commit ([0-9a-f]{40}) in (\S+)$", out.stdout, re.M)
    assert len(commits) == 2
    for sha, repo in commits:
        assert repo == str(home / "gitops.git")
        assert run_git(["--git-dir", repo, "cat-file", "-t", sha]).strip() == "commit"
        assert "Rai-Decision-Id:" in run_git(["--git-dir", repo, "log", "-1", "--format=%B", sha])
    assert "credit-scoring-ai 2.0.0 denied: Estimated inference cost exceeds budget" in out.stdout
    assert "employment-screening-ai 3.2.0 denied: AI model fairness score below" in out.stdout
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
