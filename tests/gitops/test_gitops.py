"""Manifest edits, kustomize renders and the rollback commit, against a bare repository served by
a real `git daemon` on loopback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from rai_pipelines.core.errors import BadInputError, GitOpsError
from rai_pipelines.core.registry import validate_model_version
from rai_pipelines.demo.world import write_gitops_repo
from rai_pipelines.gitops.git import GitOpsCheckout, remote_head, run_git
from rai_pipelines.gitops.manifests import check_rendered, pin_model_version
from rai_pipelines.gitops.render import kustomize_render
from rai_pipelines.governance.bundle import PolicyBundle
from rai_pipelines.governance.rego import make_engine
from rai_pipelines.governance.rollback import NoCompliantVersion, rollback_model
from rai_pipelines.settings import PROJECT_ROOT

ENGINE = make_engine("opa")

OVERLAY = "apps/credit-scoring-ai/overlays/production"
FACTS = [
    {
        "date": "2023-11-05",
        "model_name": "credit-scoring-ai",
        "model_version": "1.4.2",
        "fairness_applicable": False,
        "estimated_cost_per_inference_usd": 0.0013,
        "inference_count": 3572,
    },
    {
        "date": "2023-11-06",
        "model_name": "credit-scoring-ai",
        "model_version": "2.0.0",
        "fairness_applicable": False,
        "estimated_cost_per_inference_usd": 0.0081,
        "inference_count": 3572,
    },
]


def _rollback(co, specs, bundle, facts, overlay=OVERLAY, decision="d-1"):
    """Roll credit-scoring-ai back from 2.0.0 in checkout `co`."""
    return rollback_model(
        co,
        specs["credit-scoring-ai"],
        overlay,
        "credit-scoring-ai",
        "2.0.0",
        decision,
        make_engine("opa"),
        bundle,
        facts,
    )


def _file_at(remote: Path, rev: str, path: str) -> str:
    return run_git(["--git-dir", str(remote), "show", f"{rev}:{path}"])


@pytest.mark.parametrize("version", ["../../etc", "1.0/2", "1.0;rm -rf /", "$(reboot)", "a b", "", "..", "x" * 64, 3])
def test_unsafe_model_versions_are_refused(version):
    with pytest.raises(BadInputError, match="not a valid model version"):
        validate_model_version(version)


def test_pin_keeps_comments_and_replaces_the_image_automation_marker(remote, specs, tmp_path):
    with GitOpsCheckout(str(remote), "main", str(tmp_path)) as co:
        overlay = co.path / OVERLAY
        pin_model_version(
            overlay,
            "credit-scoring-ai",
            specs["credit-scoring-ai"].versions["1.4.2"].image,
            "1.4.2",
            "decision d-1; 2.0.0 violated policy",
            2,
            "m5.large",
        )
        text = (overlay / "kustomization.yaml").read_text()
        assert "# Production overlay of credit-scoring-ai" in text
        assert '{"$imagepolicy"' not in text and "pinned by rai-pipelines: decision d-1" in text
        assert 'newTag: "1.4.2"' in text
        rendered = check_rendered(
            overlay, "credit-scoring-ai", "registry.example.com/credit-risk/credit-scoring-ai:1.4.2", "1.4.2"
        )
        assert rendered["spec"]["replicas"] == 2
        assert rendered["spec"]["template"]["spec"]["nodeSelector"] == {"node.kubernetes.io/instance-type": "m5.large"}
        assert "# The deployed model version" in (overlay / "model-version.yaml").read_text()


def test_a_render_that_does_not_match_the_pin_is_caught(remote, tmp_path):
    with GitOpsCheckout(str(remote), "main", str(tmp_path)) as co:
        with pytest.raises(GitOpsError, match="expected '1.4.2'"):
            check_rendered(
                co.path / OVERLAY,
                "credit-scoring-ai",
                "registry.example.com/credit-risk/credit-scoring-ai:1.4.2",
                "1.4.2",
            )


def test_rollback_commits_with_trailers_and_pushes(remote, git_daemon, specs, bundle, tmp_path):
    url = git_daemon.url(remote)
    before = remote_head(url, "main")
    with GitOpsCheckout(url, "main", str(tmp_path)) as co:
        result = _rollback(
            co,
            specs,
            bundle,
            FACTS,
            decision="d-42",
        )
    assert result.status == "committed" and result.target_version == "1.4.2"
    assert remote_head(url, "main") == result.commit_sha != before
    message = run_git(["--git-dir", str(remote), "log", "-1", "--format=%B", result.commit_sha])
    trailers = message
    assert "Rai-Decision-Id: d-42" in trailers and "Rai-Bad-Version: 2.0.0" in trailers
    assert 'Flux image automation marker {"$imagepolicy": "flux-system:credit-scoring-ai:tag"}' in message
    assert "Rai-Restored-Version: 1.4.2" in trailers and f"Rai-Policy-Digest: {bundle.digest}" in trailers
    parsed = subprocess.run(
        ["git", "interpret-trailers", "--parse"], input=message, capture_output=True, text=True, check=True
    ).stdout
    assert "Rai-Decision-Id: d-42" in parsed  # git itself reads them as trailers
    assert run_git(["--git-dir", str(remote), "rev-parse", f"{result.commit_sha}^"]).strip() == before
    # The pushed overlay renders to the restored version.
    with GitOpsCheckout(url, "main", str(tmp_path)) as co:
        deployment = next(d for d in kustomize_render(co.path / OVERLAY) if d["kind"] == "Deployment")
    assert deployment["spec"]["template"]["metadata"]["labels"]["model-version"] == "1.4.2"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.4.2")


def test_a_second_rollback_of_the_same_violation_changes_nothing(remote, git_daemon, specs, bundle, tmp_path):
    url = git_daemon.url(remote)
    for expected in ("committed", "already_remediated"):
        with GitOpsCheckout(url, "main", str(tmp_path)) as co:
            result = _rollback(co, specs, bundle, FACTS)
        assert result.status == expected
    assert run_git(["--git-dir", str(remote), "rev-list", "--count", "main"]).strip() == "4"


def test_no_rollback_to_a_version_without_facts_or_in_violation(remote, git_daemon, specs, bundle, tmp_path):
    url = git_daemon.url(remote)
    before = remote_head(url, "main")
    for facts in ([FACTS[1]], [{**FACTS[0], "estimated_cost_per_inference_usd": 0.02}, FACTS[1]]):
        with (
            GitOpsCheckout(url, "main", str(tmp_path)) as co,
            pytest.raises(NoCompliantVersion, match="rollback refused"),
        ):
            _rollback(co, specs, bundle, facts)
    assert remote_head(url, "main") == before


def test_a_remote_that_rejects_the_push_fails_clearly_and_changes_nothing(remote, git_daemon, specs, bundle, tmp_path):
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch: changes need review' >&2\nexit 1\n")
    hook.chmod(0o755)
    url = git_daemon.url(remote)
    before = remote_head(url, "main")
    with GitOpsCheckout(url, "main", str(tmp_path)) as co, pytest.raises(GitOpsError, match="protected branch"):
        _rollback(co, specs, bundle, FACTS)
    assert remote_head(url, "main") == before


def test_a_concurrent_push_is_rebased_over(remote, git_daemon, specs, bundle, tmp_path):
    url = git_daemon.url(remote)
    with GitOpsCheckout(url, "main", str(tmp_path)) as co:
        with GitOpsCheckout(url, "main", str(tmp_path)) as other:  # someone else pushes meanwhile
            (other.path / "README.md").write_text("# GitOps repository\n\nEdited concurrently.\n")
            other.commit("docs: edit README", "concurrent change", {})
            other.push()
        result = _rollback(co, specs, bundle, FACTS, decision="d-7")
    assert result.status == "committed"
    assert remote_head(url, "main") == result.commit_sha
    assert "Edited concurrently" in _file_at(remote, "main", "README.md")
    assert 'newTag: "1.4.2"' in _file_at(remote, "main", f"{OVERLAY}/kustomization.yaml")


def test_an_overlay_path_outside_the_repository_is_refused(remote, specs, bundle, tmp_path):
    with GitOpsCheckout(str(remote), "main", str(tmp_path)) as co, pytest.raises(BadInputError, match="relative path"):
        _rollback(co, specs, bundle, FACTS, overlay="../../etc", decision="d")


def test_a_rollback_whose_violation_is_gone_changes_nothing(remote, git_daemon, specs, bundle, tmp_path):
    """The request is not taken on trust: with corrected facts for 2.0.0, nothing is pushed."""
    url = git_daemon.url(remote)
    before = remote_head(url, "main")
    corrected = [FACTS[0], {**FACTS[1], "estimated_cost_per_inference_usd": 0.004}]
    with GitOpsCheckout(url, "main", str(tmp_path)) as co:
        result = _rollback(co, specs, bundle, corrected)
    assert result.status == "no_longer_violating" and result.commit_sha is None
    assert remote_head(url, "main") == before


RETIRED_NODES = """package apexlogic.ai_governance

violation contains finding("cost", "m5 nodes are retired: move the model to m6i.") if {
	governed
	input.spec.template.spec.nodeSelector["node.kubernetes.io/instance-type"] == "m5.large"
}
"""


def test_a_pinned_render_the_policies_deny_is_not_pushed(remote, git_daemon, specs, tmp_path):
    """1.4.2 is allowed as judged on today's Deployment (still on 2.0.0's GPU nodes), but the pin also
    restores 1.4.2's declared m5.large nodes, which a team rule denies: the render of the pinned
    overlay is evaluated again, and the rollback is refused with nothing pushed."""
    policies = tmp_path / "policies"
    subprocess.run(["cp", "-r", str(PROJECT_ROOT / "policies"), str(policies)], check=True)
    (policies / "retired_nodes.rego").write_text(RETIRED_NODES)
    bundle = PolicyBundle.load(policies)
    url = git_daemon.url(remote)
    before = remote_head(url, "main")
    with (
        GitOpsCheckout(url, "main", str(tmp_path / "work")) as co,
        pytest.raises(NoCompliantVersion, match="pinned to 1.4.2 renders a Deployment the policies deny.*m5 nodes"),
    ):
        _rollback(co, specs, bundle, FACTS)
    assert remote_head(url, "main") == before


def test_commit_message_states_the_violation_found_now(remote, git_daemon, specs, bundle, tmp_path):
    url = git_daemon.url(remote)
    with GitOpsCheckout(url, "main", str(tmp_path)) as co:
        result = _rollback(co, specs, bundle, FACTS)
    body = run_git(["--git-dir", str(remote), "log", "-1", "--format=%B", result.commit_sha])
    assert "- Estimated inference cost exceeds budget (0.005 USD)." in body
    assert result.violations == ["Estimated inference cost exceeds budget (0.005 USD)."]


def test_credentials_in_remote_urls_are_redacted():
    from rai_pipelines.gitops.git import redact

    text = "git push https://bot:ghp_secret@git.example.com/ops/gitops.git failed"
    assert redact(text) == "git push https://***@git.example.com/ops/gitops.git failed"
    with pytest.raises(GitOpsError) as err:
        run_git(["ls-remote", "https://bot:ghp_secret@127.0.0.1:9/none.git"], timeout=10)
    assert "ghp_secret" not in str(err.value)


def _commit_a_pin_to_1_4_2(co) -> None:
    """A commit that changes one overlay only: credit-scoring-ai pinned to 1.4.2."""
    pin_model_version(
        co.path / OVERLAY,
        "credit-scoring-ai",
        "registry.example.com/credit-risk/credit-scoring-ai:1.4.2",
        "1.4.2",
        "test",
        2,
        "m5.large",
    )
    co.commit("pin", "test", {})


def _counting_renders(monkeypatch) -> list[str]:
    """The overlays each kustomize call renders, recorded around the real renderer."""
    from rai_pipelines.gitops import render

    rendered: list[str] = []
    original_together, original_one = render._render_together, render.kustomize_render

    def together(checkout, overlays):
        rendered.extend(overlays)
        return original_together(checkout, overlays)

    def one(directory):
        if ".rai-render-" not in str(directory):  # not the wrapper of overlays rendered together
            rendered.append(str(directory))
        return original_one(directory)

    monkeypatch.setattr(render, "_render_together", together)
    monkeypatch.setattr(render, "kustomize_render", one)
    return rendered


def test_a_new_commit_renders_again_only_what_changed(remote, tmp_path, monkeypatch):
    from rai_pipelines.gitops.render import RenderCache, rendered_deployments

    glob = "apps/*/overlays/production"
    cache = RenderCache()
    rendered = _counting_renders(monkeypatch)
    with GitOpsCheckout(str(remote), "main", str(tmp_path)) as co:
        first, _ = rendered_deployments(co.path, glob, co.head, cache)
        assert len(first) == 2 and rendered
        rendered.clear()
        _commit_a_pin_to_1_4_2(co)
        second, failures = rendered_deployments(co.path, glob, co.head, cache)
    assert len(rendered) == 1 and rendered[0].endswith(OVERLAY)
    versions = {d.app: d.model_version for d in second}
    assert failures == [] and versions == {"credit-scoring-ai": "1.4.2", "employment-screening-ai": "3.2.0"}
    untouched = [d for d in second if d.app == "employment-screening-ai"]
    assert untouched[0].manifest == next(d for d in first if d.app == "employment-screening-ai").manifest
    cached = cache.renders[glob].overlays
    assert cached[OVERLAY][0] is not None  # the overlay's Git trees are known, so it can be reused


def test_renders_kept_on_disk_serve_a_restarted_process(remote, tmp_path, monkeypatch):
    """A new RenderCache over the same folder (a restarted code server) renders nothing for an
    unchanged commit, only the changed overlay after a commit, and never trusts a damaged entry."""
    from rai_pipelines.gitops.render import RenderCache, rendered_deployments

    glob, folder = "apps/*/overlays/production", tmp_path / "render-cache"
    rendered = _counting_renders(monkeypatch)
    with GitOpsCheckout(str(remote), "main", str(tmp_path / "a")) as co:
        first, _ = rendered_deployments(co.path, glob, co.head, RenderCache(folder))
    assert len(rendered) == 2 and len(list(folder.glob("*.json"))) == 2
    rendered.clear()
    with GitOpsCheckout(str(remote), "main", str(tmp_path / "b")) as co:
        again, failures = rendered_deployments(co.path, glob, co.head, RenderCache(folder))
        assert rendered == [] and failures == []
        assert sorted(d.manifest["metadata"]["name"] for d in again) == sorted(
            d.manifest["metadata"]["name"] for d in first
        )
        _commit_a_pin_to_1_4_2(co)
        after, _ = rendered_deployments(co.path, glob, co.head, RenderCache(folder))
        assert len(rendered) == 1 and OVERLAY in rendered[0]
        assert {d.app: d.model_version for d in after}["credit-scoring-ai"] == "1.4.2"
        for entry in folder.glob("*.json"):
            entry.write_text('[{"kind": "Deployment", "metadata": {"name": "forged"}}]'[:-3])  # torn
        rendered.clear()
        rebuilt, _ = rendered_deployments(co.path, glob, co.head, RenderCache(folder))
    assert len(rendered) == 2 and "forged" not in json.dumps([d.manifest for d in rebuilt])


def test_an_overlay_holding_an_alias_bomb_is_an_alert_and_the_others_render(remote, tmp_path):
    """Hardening issue, case 4: kustomize expanded a 564-byte alias bomb to 22 GB. The overlay's
    inputs are bounded before any render, and it alone becomes a render failure (an alert)."""
    from rai_pipelines.gitops.render import RenderCache, rendered_deployments
    from tests.conftest import alias_bomb

    with GitOpsCheckout(str(remote), "main", str(tmp_path)) as co:
        overlay = co.path / OVERLAY
        (overlay / "bomb.yaml").write_text(alias_bomb())
        kustomization = overlay / "kustomization.yaml"
        kustomization.write_text(kustomization.read_text().replace("resources:\n", "resources:\n  - bomb.yaml\n", 1))
        co.commit("bomb", "test", {})
        found, failures = rendered_deployments(co.path, "apps/*/overlays/production", co.head, RenderCache())
    assert [f.overlay for f in failures] == [OVERLAY] and "refused before it is expanded" in failures[0].error
    assert [d.app for d in found] == ["employment-screening-ai"]


def test_each_render_runs_under_a_memory_limit(tmp_path):
    """What the input bounds cannot see (a generator, a file of another kind) still cannot take the
    machine: kustomize runs under an address-space limit and fails, naming it."""
    from rai_pipelines.gitops.render import RENDER_MEMORY_MB, kustomize_render
    from tests.conftest import alias_bomb

    (tmp_path / "bomb.yaml").write_text(alias_bomb())
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - bomb.yaml\n")
    with pytest.raises(GitOpsError, match=f"more than {RENDER_MEMORY_MB} MB"):
        kustomize_render(tmp_path)


def test_a_token_reaches_git_only_through_the_credential_helper(git_daemon, specs, tmp_path, monkeypatch, capsys):
    """Hardening issue, case 7: a token in RAI_GITOPS_REMOTE was stored in Dagster's repository
    snapshot (the gitops resource's configured values) and shown in the UI. The token now comes from
    RAI_GITOPS_TOKEN as an EnvVar, and git reads it through a credential helper: a remote that asks
    for it (smart HTTP with Basic auth, on loopback) is cloned, read and pushed to."""
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster_shared.serdes import serialize_value

    from rai_pipelines.definitions import build_definitions
    from rai_pipelines.settings import Settings
    from tests.git_http import GitHttpServer

    token = "ghp_Sup3rSecretValue"
    root = tmp_path / "served"
    repo = root / "ops" / "gitops.git"
    write_gitops_repo(repo, list(specs.values()))
    server = GitHttpServer(root, token)
    try:
        url = server.url(repo)
        with pytest.raises(GitOpsError):  # the remote asks for the token: no token, no access
            remote_head(url, "main")
        monkeypatch.setenv("RAI_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("RAI_GITOPS_REMOTE", url.replace("http://", f"http://bot:{token}@"))
        with pytest.raises(BadInputError, match="carries credentials.*RAI_GITOPS_TOKEN") as refused:
            build_definitions(Settings.from_env())
        assert token not in str(refused.value)
        monkeypatch.setenv("RAI_GITOPS_REMOTE", url)
        monkeypatch.setenv("RAI_GITOPS_TOKEN", token)
        defs = build_definitions(Settings.from_env())
        snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
        assert token not in snapshot and "RAI_GITOPS_TOKEN" in snapshot
        gitops = defs.resources["gitops"].process_config_and_initialize()  # as Dagster hands it to a sensor
        assert gitops.head() == remote_head(url, "main", token)
        with gitops.checkout() as co:
            (co.path / "NOTES.md").write_text("pushed with the token from the credential helper\n")
            run_git(["add", "NOTES.md"], cwd=co.path)
            pushed = co.commit("notes", "test", {})
            co.push()
        assert gitops.head() == pushed
        with GitOpsCheckout(url, "main", str(tmp_path / "c"), token=token) as again:
            assert (again.path / "NOTES.md").exists()
            assert token not in (again.path / ".git" / "config").read_text()
    finally:
        server.stop()
    sent = [headers for _, path, headers in server.requests]
    assert all(token not in path for _, path, _ in server.requests)
    assert any("Authorization" in h for h in sent)
    captured = capsys.readouterr()
    assert token not in captured.out + captured.err


def test_a_pinned_render_that_is_not_valid_kubernetes_is_never_pushed(remote, git_daemon, specs, bundle, tmp_path):
    """A misspelt field in the base (kubectl would refuse it, Argo CD would show the app degraded):
    the pin renders, the policies might allow it, but the schema check refuses the commit."""
    url = git_daemon.url(remote)
    with GitOpsCheckout(url, "main", str(tmp_path)) as co:
        base = co.path / "apps/credit-scoring-ai/base/deployment.yaml"
        base.write_text(
            base.read_text().replace("          ports:\n", "          imagePullPolice: Always\n          ports:\n")
        )
        co.commit("base: a typo", "", {})
        co.push()
    before = remote_head(url, "main")
    with GitOpsCheckout(url, "main", str(tmp_path)) as co, pytest.raises(GitOpsError) as refused:
        _rollback(co, specs, bundle, FACTS)
    assert "the pinned render is not valid Kubernetes" in str(refused.value)
    assert "Deployment/credit-scoring-ai: spec.template.spec.containers[0].imagePullPolice" in str(refused.value)
    assert remote_head(url, "main") == before


def test_the_commit_lists_what_was_checked_before_it(remote, git_daemon, specs, bundle, tmp_path):
    with GitOpsCheckout(git_daemon.url(remote), "main", str(tmp_path)) as co:
        result = _rollback(co, specs, bundle, FACTS)
    assert result.checks == [
        "the rendered Deployment credit-scoring-ai runs registry.example.com/credit-risk/credit-scoring-ai:1.4.2 "
        "with model-version=1.4.2",
        "2 rendered document(s) valid against the Kubernetes 1.31.0 schemas (strict)",
        f"the policies ({bundle.revision}) allow the pinned render",
    ]
    assert "Checked before this commit:\n- the rendered Deployment" in result.commit_message


def test_a_remote_down_at_push_time_fails_clearly_and_is_not_taken_for_a_protected_branch(specs, bundle, tmp_path):
    """The clone worked, then the server went away: the push fails naming the remote, no review
    branch is tried in its place (that is for a remote that refuses), and nothing is left behind."""
    from tests.conftest import GitDaemon

    (tmp_path / "served").mkdir()
    daemon = GitDaemon(tmp_path / "served")
    remote = tmp_path / "served" / "gitops.git"
    write_gitops_repo(remote, list(specs.values()))
    try:
        with GitOpsCheckout(daemon.url(remote), "main", str(tmp_path / "work")) as co:
            daemon.stop()
            with pytest.raises(GitOpsError) as failed:
                rollback_model(
                    co,
                    specs["credit-scoring-ai"],
                    OVERLAY,
                    "credit-scoring-ai",
                    "2.0.0",
                    "d-down",
                    ENGINE,
                    bundle,
                    FACTS,
                    fallback_branch="rai-pipelines/rollback/credit-scoring-ai/production/2.0.0",
                )
    finally:
        if daemon.proc.poll() is None:
            daemon.stop()
    assert f"pushing to git://127.0.0.1:{daemon.port}/gitops.git branch main" in str(failed.value)
    assert "Connection refused" in str(failed.value)
    heads = run_git(["--git-dir", str(remote), "for-each-ref", "--format=%(refname)"]).split()
    assert heads == ["refs/heads/main"]  # no review branch, main where it was
    assert len(run_git(["--git-dir", str(remote), "rev-list", "main"]).split()) == 3
