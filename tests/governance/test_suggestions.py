"""Suggested threshold changes from the governance facts history, proposed as a branch of the
policy repository served by `git daemon`; never merged."""

from __future__ import annotations

import shutil
import subprocess

from rai_pipelines.gitops.git import remote_head, run_git
from rai_pipelines.governance.suggestions import propose_branch, suggest_threshold_changes
from rai_pipelines.settings import PROJECT_ROOT

ORG = {"fairness_score_min": 0.8, "estimated_cost_per_inference_usd_max": 0.005, "drift_share_warn": 0.3}


def rows(model: str, days: int, **fields) -> list[dict]:
    return [
        {"date": f"2023-11-{d + 1:02d}", "model_name": model, "model_version": f"{model}-1", **fields}
        for d in range(days)
    ]


def _policy_repo(git_daemon, tmp_path, name: str):
    """A bare policy repository holding the shipped bundle under policies/, served by git daemon."""
    seed = tmp_path / f"seed-{name}"
    shutil.copytree(PROJECT_ROOT / "policies", seed / "policies")
    remote = git_daemon.base / f"{name}.git"
    for args in (
        ["init", "-q", "-b", "main", str(seed)],
        ["-C", str(seed), "add", "-A"],
        ["-C", str(seed), "-c", "user.name=p", "-c", "user.email=p@p", "commit", "-qm", "policies"],
        ["clone", "-q", "--bare", str(seed), str(remote)],
    ):
        subprocess.run(["git", *args], check=True)
    return remote


def test_a_budget_every_model_exceeds_is_proposed_higher():
    history = rows("a", 10, estimated_cost_per_inference_usd=0.007) + rows(
        "b", 10, estimated_cost_per_inference_usd=0.012
    )
    (cost,) = [s for s in suggest_threshold_changes(history, ORG) if s.key == "estimated_cost_per_inference_usd_max"]
    assert cost.proposed == 0.014 and "every one of the 2 models exceeds" in cost.rationale


def test_a_budget_nobody_comes_near_is_proposed_lower():
    history = rows("a", 5, estimated_cost_per_inference_usd=0.0004) + rows(
        "b", 5, estimated_cost_per_inference_usd=0.0011
    )
    (cost,) = suggest_threshold_changes(history, ORG)
    assert cost.proposed == 0.0022 and "within a quarter" in cost.rationale


def test_a_fairness_threshold_no_model_is_near_is_proposed_stricter_never_laxer():
    fair = rows("a", 5, fairness_score=0.97) + rows("b", 5, fairness_score=0.93)
    (tighter,) = suggest_threshold_changes(fair, ORG)
    assert (tighter.key, tighter.proposed) == ("fairness_score_min", 0.88)
    unfair = rows("a", 5, fairness_score=0.6) + rows("b", 5, fairness_score=0.7)
    (report,) = suggest_threshold_changes(unfair, ORG)
    assert report.proposed is None and "the models, not the threshold, need review" in report.rationale


def test_a_drift_warning_that_always_fires_is_proposed_higher_and_mixed_facts_suggest_nothing():
    drifting = rows("a", 5, drift_share=0.45) + rows("b", 5, drift_share=0.62)
    (warn,) = suggest_threshold_changes(drifting, ORG)
    assert (warn.key, warn.proposed) == ("drift_share_warn", 0.7)
    mixed = rows("a", 5, estimated_cost_per_inference_usd=0.004, fairness_score=0.85, drift_share=0.1) + rows(
        "b", 5, estimated_cost_per_inference_usd=0.006, fairness_score=0.82, drift_share=0.4
    )
    assert suggest_threshold_changes(mixed, ORG) == []


def test_the_proposal_is_a_branch_with_the_rationale_and_main_is_untouched(git_daemon, tmp_path):
    remote = _policy_repo(git_daemon, tmp_path, "policy-repo")
    url = git_daemon.url(remote)
    main_before = remote_head(url, "main")
    history = rows("a", 10, estimated_cost_per_inference_usd=0.007) + rows(
        "b", 10, estimated_cost_per_inference_usd=0.012
    )
    diff, sha = propose_branch(
        url, "rai-pipelines/suggest/test", "policies", suggest_threshold_changes(history, ORG), str(tmp_path / "work")
    )
    assert remote_head(url, "main") == main_before  # never merged
    assert remote_head(url, "rai-pipelines/suggest/test") == sha
    assert (
        "-  estimated_cost_per_inference_usd_max: 0.005" in diff
        and "+  estimated_cost_per_inference_usd_max: 0.014" in diff
    )
    data = run_git(["--git-dir", str(remote), "show", f"{sha}:policies/governance/data.yaml"])
    assert "# four-fifths rule on the favourable outcome" in data  # comments kept
    message = run_git(["--git-dir", str(remote), "log", "-1", "--format=%B", sha])
    assert "every one of the 2 models exceeds the budget" in message


def test_an_existing_proposal_branch_is_never_overwritten(git_daemon, tmp_path):
    import pytest

    from rai_pipelines.core.errors import GitOpsError

    remote = _policy_repo(git_daemon, tmp_path, "policy-repo-2")
    url = git_daemon.url(remote)
    history = rows("a", 5, drift_share=0.45) + rows("b", 5, drift_share=0.62)
    _, sha = propose_branch(
        url, "rai-pipelines/suggest/x", "policies", suggest_threshold_changes(history, ORG), str(tmp_path / "w1")
    )
    other = rows("a", 5, drift_share=0.75) + rows("b", 5, drift_share=0.85)
    with pytest.raises(GitOpsError, match="rejected|failed"):
        propose_branch(
            url, "rai-pipelines/suggest/x", "policies", suggest_threshold_changes(other, ORG), str(tmp_path / "w2")
        )
    assert remote_head(url, "rai-pipelines/suggest/x") == sha
