"""Recommendations proposed as branches, pushed to a real `git daemon` on loopback: one branch per
recommendation, updated in place, the gate's verdict in the commit message, the base never touched."""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from rai_pipelines.core.errors import BadInputError, GitOpsError
from rai_pipelines.costs.recommendations import Recommendation
from rai_pipelines.costs.telemetry import Evidence
from rai_pipelines.gitops.git import remote_head, run_git
from rai_pipelines.gitops.proposals import (
    BRANCH_PREFIX,
    edit_policy_data,
    edit_serving_resources,
    propose,
)

OVERLAY = "apps/fraud-model/overlays/production"
POLICY_DATA = "policies/governance/data.yaml"
FILES = {
    "apps/fraud-model/base/kustomization.yaml": "resources:\n  - deployment.yaml\n",
    "apps/fraud-model/base/deployment.yaml": """apiVersion: apps/v1
kind: Deployment
metadata:
  name: fraud-model
spec:
  replicas: 1
  selector:
    matchLabels: {app: fraud-model}
  template:
    metadata:
      labels: {app: fraud-model, model-version: unset}
    spec:
      containers:
        - name: model
          image: registry.example.com/fraud-model:1.0.0
""",
    f"{OVERLAY}/kustomization.yaml": """# Production overlay of fraud-model.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
patches:
  - path: model-version.yaml
""",
    f"{OVERLAY}/model-version.yaml": """# The deployed model version and its serving resources.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: fraud-model
spec:
  replicas: 4 # sized for the launch
  template:
    metadata:
      labels:
        model-version: "1.0.0"
    spec:
      nodeSelector:
        node.kubernetes.io/instance-type: m5.xlarge
""",
    POLICY_DATA: """# Organisation-wide thresholds (data.governance).
thresholds:
  fairness_score_min: 0.8                       # four-fifths rule
  estimated_cost_per_inference_usd_max: 0.005   # the reference policy's budget
""",
}
EVIDENCE = Evidence(
    datetime(2024, 3, 1, tzinfo=timezone.utc), datetime(2024, 3, 8, tzinfo=timezone.utc), 60.0, 20160, 0.993
)


def _recommendation(kind="replicas", field="spec.replicas", current=4, proposed=2, savings="280.32", **kw):
    target = kw.pop("target", "gitops")
    model = kw.pop("model", "fraud-model")
    return Recommendation(
        kind, model, "1.0.0" if model else None, target, field, EVIDENCE, current, proposed, Decimal(savings), "USD",
        kw.pop("rationale", "peak 180.00 inferences/s + 20% needs 2"),
    )  # fmt: skip


def _seed(work: Path) -> None:
    for path, text in FILES.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)


def _git(*args, cwd=None) -> str:
    return run_git(list(args), cwd=cwd)


@pytest.fixture
def remote(git_daemon, request) -> tuple[Path, str]:
    bare = git_daemon.base / f"{request.node.name}.git"
    _git("init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "w"
        _git("clone", "--quiet", str(bare), str(work))
        _git("checkout", "--quiet", "-b", "main", cwd=work)
        _seed(work)
        _commit_all(work, "seed")
        _git("push", "--quiet", "origin", "main", cwd=work)
    return bare, git_daemon.url(bare)


def _commit_all(work: Path, subject: str) -> None:
    _git("add", "--all", cwd=work)
    _git("-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "--quiet", "-m", subject, cwd=work)


def _heads(bare: Path) -> dict[str, str]:
    out = _git("--git-dir", str(bare), "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
    return dict(line.split() for line in out.splitlines())


def _file(bare: Path, rev: str, path: str) -> str:
    return _git("--git-dir", str(bare), "show", f"{rev}:{path}")


def _serving_edit(rec):
    return lambda checkout: edit_serving_resources(checkout, OVERLAY, rec)


def _verdict(text="0 manifests failed: fraud-model passes (policies test)"):
    return lambda checkout: text


def _push_to_main(url: str, path: str, text: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "w"
        _git("clone", "--quiet", "--branch", "main", url, str(work))
        (work / path).write_text(text)
        _commit_all(work, "someone else's change")
        _git("push", "--quiet", "origin", "main", cwd=work)
        return _git("rev-parse", "HEAD", cwd=work).strip()


def test_first_proposal_creates_the_branch_with_the_verdict_and_leaves_the_base_alone(remote):
    bare, url = remote
    base = remote_head(url, "main")
    rec = _recommendation()
    result = propose(rec, url, "main", _serving_edit(rec), _verdict("PASS - fraud-model (gate verdict text)"))
    assert result.status == "created" and result.branch == f"{BRANCH_PREFIX}{rec.id}"
    heads = _heads(bare)
    assert heads["main"] == base and heads[result.branch] == result.commit_sha
    assert _git("--git-dir", str(bare), "rev-parse", f"{result.commit_sha}^").strip() == base
    message = _git("--git-dir", str(bare), "log", "-1", "--format=%B", result.commit_sha)
    subject = message.splitlines()[0]
    assert subject == "replicas(fraud-model): spec.replicas 4 -> 2, saves 280.32 USD a month"
    assert "PASS - fraud-model (gate verdict text)" in message
    assert "Evidence window: 2024-03-01T00:00:00Z to 2024-03-08T00:00:00Z" in message
    assert "20,160 samples, coverage 99.3%" in message and "Change: spec.replicas: 4 -> 2" in message
    assert f"Recommendation-Id: {rec.id}" in message and "never merged automatically" in message
    patch = _file(bare, result.commit_sha, f"{OVERLAY}/model-version.yaml")
    assert "replicas: 2 # sized for the launch" in patch  # the comment is kept
    assert patch.startswith("# The deployed model version and its serving resources.")
    changed = _git("--git-dir", str(bare), "diff", "--name-only", base, result.commit_sha).split()
    assert changed == [f"{OVERLAY}/model-version.yaml"]


def test_the_same_recommendation_again_updates_the_same_branch_in_place(remote):
    bare, url = remote
    rec = _recommendation()
    first = propose(rec, url, "main", _serving_edit(rec), _verdict())
    again = propose(rec, url, "main", _serving_edit(rec), _verdict())
    assert (again.status, again.commit_sha, again.branch) == ("unchanged", first.commit_sha, first.branch)
    # the base moves on: the branch is rebuilt from it and force-pushed, still one branch
    new_base = _push_to_main(url, "README.md", "# GitOps\n")
    updated = propose(rec, url, "main", _serving_edit(rec), _verdict())
    assert updated.status == "updated" and updated.branch == first.branch and updated.commit_sha != first.commit_sha
    assert _git("--git-dir", str(bare), "rev-parse", f"{updated.commit_sha}^").strip() == new_base
    heads = _heads(bare)
    assert heads["main"] == new_base
    assert [h for h in heads if h.startswith(BRANCH_PREFIX)] == [first.branch]
    # a different gate verdict on the same tree updates the message
    reverdict = propose(rec, url, "main", _serving_edit(rec), _verdict("FAIL - fraud-model - cost over budget"))
    assert reverdict.status == "updated"
    assert "FAIL - fraud-model - cost over budget" in _git(
        "--git-dir", str(bare), "log", "-1", "--format=%B", first.branch
    )
    assert _heads(bare)["main"] == new_base


def test_a_different_recommendation_gets_its_own_branch(remote):
    bare, url = remote
    replicas = _recommendation()
    instance = _recommendation("instance_type", "nodeSelector.instance-type", "m5.xlarge", "c5.xlarge", "122.64")
    cpu = _recommendation("cpu_request", "resources.requests.cpu", "2000m", "951m", "61.26")
    results = [propose(r, url, "main", _serving_edit(r), _verdict()) for r in (replicas, instance, cpu)]
    assert [r.status for r in results] == ["created"] * 3 and len({r.branch for r in results}) == 3
    assert len([h for h in _heads(bare) if h.startswith(BRANCH_PREFIX)]) == 3
    node = _file(bare, results[1].commit_sha, f"{OVERLAY}/model-version.yaml")
    assert "node.kubernetes.io/instance-type: c5.xlarge" in node and "replicas: 4" in node
    requests = _file(bare, results[2].commit_sha, f"{OVERLAY}/model-version.yaml")
    assert "- name: model\n          resources:\n            requests:\n              cpu: 951m" in requests


def test_the_gate_verdict_on_the_proposed_manifest_is_the_real_gate(remote, tmp_path):
    from rai_pipelines.governance.bundle import PolicyBundle
    from rai_pipelines.governance.gate import report_text, run_gate
    from rai_pipelines.governance.rego import make_engine
    from rai_pipelines.settings import PROJECT_ROOT

    bare, url = remote
    bundle, engine = PolicyBundle.load(PROJECT_ROOT / "policies"), make_engine("opa")
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"1.0.0": {"fairness_applicable": False, "estimated_cost_per_inference_usd": 0.001}}))
    seen = []

    def gate(checkout: Path) -> str:
        result = run_gate(engine, bundle, [str(checkout / OVERLAY)], str(facts))
        seen.append(result.items[0].manifest["spec"]["replicas"])
        return report_text(result, bundle)

    rec = _recommendation()
    result = propose(rec, url, "main", _serving_edit(rec), gate)
    assert seen == [2]  # the gate judged the proposed render, not the base
    message = _git("--git-dir", str(bare), "log", "-1", "--format=%B", result.commit_sha)
    assert "Gate verdict on the proposed manifest:" in message and "1 manifests: 1 passed" in message


def test_a_reviewers_commit_on_the_branch_is_never_overwritten(remote):
    bare, url = remote
    rec = _recommendation()
    first = propose(rec, url, "main", _serving_edit(rec), _verdict())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "w"
        _git("clone", "--quiet", "--branch", first.branch, url, str(work))
        (work / "NOTES.md").write_text("reviewed\n")
        _commit_all(work, "reviewer's note")
        _git("push", "--quiet", "origin", first.branch, cwd=work)
        reviewed = _git("rev-parse", "HEAD", cwd=work).strip()
    with pytest.raises(GitOpsError, match="holds commits other than"):
        propose(rec, url, "main", _serving_edit(rec), _verdict("changed"))
    assert _heads(bare)[first.branch] == reviewed


def test_a_push_made_in_between_is_not_overwritten_thanks_to_the_lease(remote):
    bare, url = remote
    rec = _recommendation()
    branch = f"{BRANCH_PREFIX}{rec.id}"

    def racing_edit(checkout: Path) -> list[str]:
        # another run creates the branch after this clone looked for it
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "w"
            _git("clone", "--quiet", "--branch", "main", url, str(work))
            (work / "RACE").write_text("1")
            _commit_all(work, "another run")
            _git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
        return edit_serving_resources(checkout, OVERLAY, rec)

    with pytest.raises(GitOpsError, match="stale info|rejected"):
        propose(rec, url, "main", racing_edit, _verdict())
    assert "RACE" in _git("--git-dir", str(bare), "ls-tree", "--name-only", branch)


def test_a_stale_recommendation_and_one_already_applied(remote):
    bare, url = remote
    stale = _recommendation(current=9, proposed=2)
    with pytest.raises(GitOpsError, match="spec.replicas is 4, not 9.*stale"):
        propose(stale, url, "main", _serving_edit(stale), _verdict())
    done = _recommendation(current=2, proposed=4)
    result = propose(done, url, "main", _serving_edit(done), _verdict())
    assert (result.status, result.commit_sha) == ("already_applied", None)
    assert list(_heads(bare)) == ["main"]


def test_a_budget_proposed_to_the_policy_repository_keeps_its_comments(remote):
    bare, url = remote
    rec = _recommendation(
        "budget", "thresholds.estimated_cost_per_inference_usd_max", Decimal("0.005"), Decimal("0.0025"), "0.00",
        target="policy",
    )  # fmt: skip
    edit = lambda checkout: edit_policy_data(checkout, POLICY_DATA, rec.target_field, rec.proposed)  # noqa: E731
    result = propose(rec, url, "main", edit, _verdict("policy tests: 42 passed"))
    data = _file(bare, result.commit_sha, POLICY_DATA)
    assert re.search(r"\n  estimated_cost_per_inference_usd_max: 0\.0025 +# the reference policy's budget\n", data)
    assert "fairness_score_min: 0.8                       # four-fifths rule" in data
    assert data.startswith("# Organisation-wide thresholds")


def test_edits_stay_inside_the_checkout(tmp_path):
    checkout = tmp_path / "repo"
    for path, text in FILES.items():
        (checkout / path).parent.mkdir(parents=True, exist_ok=True)
        (checkout / path).write_text(text)
    outside = tmp_path / "secret.yaml"
    outside.write_text("thresholds: {}\n")
    os.symlink(outside, checkout / "policies" / "link.yaml")
    for bad in ("../secret.yaml", "/etc/passwd", "policies/link.yaml", "policies/../../secret.yaml"):
        with pytest.raises(BadInputError, match="inside the repository|symbolic link"):
            edit_policy_data(checkout, bad, "thresholds.x", 1)
    with pytest.raises(BadInputError, match="dotted names"):
        edit_policy_data(checkout, POLICY_DATA, "thresholds..x", 1)
    with pytest.raises(BadInputError, match="inside the repository"):
        edit_serving_resources(checkout, "../elsewhere", _recommendation())
    with pytest.raises(BadInputError, match="not a Kubernetes quantity"):
        edit_serving_resources(checkout, OVERLAY, _recommendation("cpu_request", "resources.requests.cpu", "1", "1;x"))
    assert outside.read_text() == "thresholds: {}\n"


def test_an_edit_that_touches_files_it_does_not_report_is_refused(remote):
    bare, url = remote
    rec = _recommendation()

    def sneaky(checkout: Path) -> list[str]:
        (checkout / "EXTRA").write_text("x")
        return edit_serving_resources(checkout, OVERLAY, rec)

    with pytest.raises(GitOpsError, match="did not report.*EXTRA"):
        propose(rec, url, "main", sneaky, _verdict())
    assert list(_heads(bare)) == ["main"]
