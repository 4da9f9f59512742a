"""Remediation a platform team lets run unattended, through Dagster: pull requests on a loopback
GitHub-shaped API, the fall-back to review when the environment branch is protected, and alerts to
loopback Slack and JSON webhooks; the GitOps remote is served by a real git daemon."""

from __future__ import annotations

import json
import shutil
import subprocess

import dagster as dg
import pytest

from rai_pipelines.definitions import build_definitions
from rai_pipelines.defs.keys import facts_keys
from rai_pipelines.gitops.git import remote_head, run_git
from rai_pipelines.governance.rollback import review_branch
from tests.conftest import LOOP_DAYS, copy_world, make_world, settings_for
from tests.forge_server import ForgeServer
from tests.webhook_receiver import WebhookReceiver

DAY1, DAY2 = (d.isoformat() for d in LOOP_DAYS)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
TOKEN = "ghp_loopbacktoken0123456789"
CREDIT = "credit-scoring-ai"
OVERLAY = "apps/credit-scoring-ai/overlays/production"
COST = "Estimated inference cost exceeds budget (0.005 USD)."


@pytest.fixture(scope="module")
def built(tmp_path_factory, specs):
    """Two days of the loop materialised once; each test works on a copy of the world."""
    world = make_world(tmp_path_factory.mktemp("remediation") / "world", specs)
    defs = build_definitions(settings_for(world))
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def("daily_governance_job")
        for day in (DAY1, DAY2):
            job.execute_in_process(partition_key=day, instance=instance, run_config=QUIET)
    return world


@pytest.fixture
def forge():
    server = ForgeServer("github", TOKEN, "acme/gitops")
    yield server
    server.stop()


@pytest.fixture
def hooks():
    slack, generic = WebhookReceiver("/services/T000/B000/slacksecret"), WebhookReceiver("/alerts")
    yield slack, generic
    slack.close()
    generic.close()


@pytest.fixture
def setup(built, specs, git_daemon, request, forge, hooks, monkeypatch):
    """A private copy of the world whose GitOps remote is served by the git daemon, the definitions
    configured for the loopback forge and webhooks, and a fresh instance that has seen the facts."""
    world = copy_world(built, git_daemon.base / request.node.name)
    slack, generic = hooks
    for name, value in {
        "RAI_GITOPS_FORGE": "github",
        "RAI_GITOPS_FORGE_API_URL": forge.url,
        "RAI_GITOPS_FORGE_REPOSITORY": "acme/gitops",
        "RAI_GITOPS_FORGE_TOKEN": TOKEN,
        "RAI_ALERT_SLACK_WEBHOOK_URL": slack.url,
        "RAI_ALERT_WEBHOOK_URL": generic.url,
        "RAI_DAGSTER_URL": "http://127.0.0.1:3000",
        "RAI_GITOPS_COMMIT_URL": "https://forge.example.com/acme/gitops/commit/{sha}",
    }.items():
        monkeypatch.setenv(name, value)
    settings = settings_for(world)
    settings = type(settings)(**{**vars(settings), "gitops_remote": git_daemon.url(world.gitops_remote)})
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        for key in facts_keys(list(specs.values())):
            for day in (DAY1, DAY2):
                instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=day))
        yield {"world": world, "defs": defs, "instance": instance, "url": settings.gitops_remote, "forge": forge}


def _tick(setup, cursor=None):
    defs = setup["defs"]
    context = dg.build_sensor_context(
        instance=setup["instance"], cursor=cursor, definitions=defs, resources=defs.resources
    )
    return defs.resolve_sensor_def("governance_policy_sensor").evaluate_tick(context)


def _credit_request(tick):
    return next(r for r in tick.run_requests if r.tags["rai-pipelines/app"] == CREDIT)


def _run_rollback(setup, request, **overrides):
    config = {**request.run_config["ops"]["gitops_rollback"]["config"], **overrides}
    # the forge hosts the GitOps repository: it knows the branches pushed to it
    setup["forge"].branches.add(review_branch(config["app"], config["bad_version"], config["overlay"]))
    return (
        setup["defs"]
        .resolve_job_def("gitops_rollback_job")
        .execute_in_process(
            run_config={"ops": {"gitops_rollback": {"config": config}}},
            instance=setup["instance"],
            tags=request.tags,
            raise_on_error=False,
        )
    )


def _remediations(setup):
    from rai_pipelines.core.decision_log import DecisionLog

    return [r for r in DecisionLog(setup["world"].home / "decision_log").records() if r.get("kind") == "remediation"]


def test_a_review_rollback_opens_one_pull_request_and_updates_it_when_run_again(setup, forge):
    request = _credit_request(_tick(setup))
    before = remote_head(setup["url"], "main")
    first = _run_rollback(setup, request, mode="branch")
    assert first.success
    metadata = first.asset_materializations_for_node("gitops_rollback")[0].metadata
    assert metadata["status"].value == "review_branch_pushed"
    [(number, pull)] = forge.pulls.items()
    assert metadata["pull_request"].value.endswith(f"/acme/gitops/pull/{number}")
    assert pull["head"] == review_branch(CREDIT, "2.0.0", OVERLAY) and pull["base"] == "main"
    assert pull["title"] == "rollback(credit-scoring-ai): pin 1.4.2, 2.0.0 violates policy"
    body = pull["body"]
    decision_id = request.tags["rai-pipelines/decision-id"]
    assert f"decision id: `{decision_id}`" in body and f"denied: `{COST}`" in body
    assert f"| 2.0.0 | {DAY2} |" in body and f"| 1.4.2 | {DAY1} |" in body  # the facts, with their dates
    assert '+        model-version: "1.4.2"' in body  # the diff
    assert "valid against the Kubernetes 1.31.0 schemas (strict)" in body  # the checks before the commit
    assert "rai-pipelines rollback --dry-run --app credit-scoring-ai --bad-version 2.0.0" in body
    assert remote_head(setup["url"], "main") == before  # the environment branch is untouched

    second = _run_rollback(setup, request, mode="branch")
    assert second.success and len(forge.pulls) == 1
    writes = [(c.method, c.path) for c in forge.calls if c.method != "GET"]
    assert writes == [
        ("POST", "/repos/acme/gitops/pulls"),
        ("POST", f"/repos/acme/gitops/issues/{number}/labels"),
        ("PATCH", f"/repos/acme/gitops/pulls/{number}"),
        ("POST", f"/repos/acme/gitops/issues/{number}/labels"),
    ]
    assert all(c.headers["authorization"] == f"Bearer {TOKEN}" for c in forge.calls)
    records = _remediations(setup)
    assert [r["action"]["type"] for r in records] == ["pull_request", "pull_request"]
    assert records[0]["action"]["pull_request"]["created"] and not records[1]["action"]["pull_request"]["created"]


def test_configured_for_review_every_rollback_is_a_pull_request(setup, forge, monkeypatch):
    _rebuild(setup, monkeypatch, RAI_GITOPS_REMEDIATION_MODE="review")
    request = _credit_request(_tick(setup))
    assert request.run_config["ops"]["gitops_rollback"]["config"]["mode"] == "push"  # the policies said rollback
    before = remote_head(setup["url"], "main")
    result = _run_rollback(setup, request)
    assert result.success and remote_head(setup["url"], "main") == before
    [pull] = forge.pulls.values()
    assert pull["head"] == review_branch(CREDIT, "2.0.0", OVERLAY)
    [record] = _remediations(setup)
    assert record["action"]["type"] == "pull_request" and record["action"]["fallback_reason"] == ""


def test_a_protected_environment_branch_gets_a_pull_request_instead(setup, forge):
    hook = setup["world"].gitops_remote / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\nwhile read old new ref; do\n"
        '  if [ "$ref" = refs/heads/main ]; then\n'
        '    echo "GH006: Protected branch update failed for refs/heads/main." >&2; exit 1\n'
        "  fi\ndone\n"
    )
    hook.chmod(0o755)
    before = remote_head(setup["url"], "main")
    result = _run_rollback(setup, _credit_request(_tick(setup)))
    assert result.success and remote_head(setup["url"], "main") == before
    branch = review_branch(CREDIT, "2.0.0", OVERLAY)
    assert remote_head(setup["url"], branch)
    [pull] = forge.pulls.values()
    assert pull["head"] == branch
    assert "main refused the push (GH006: Protected branch update failed" in pull["body"]
    [record] = _remediations(setup)
    assert record["action"]["status"] == "review_branch_pushed" and record["action"]["pushed"]
    assert "GH006" in record["action"]["fallback_reason"]


def test_a_forge_that_refuses_the_token_fails_the_run_and_the_log_says_what_was_done(setup, forge):
    forge.token = "another-token"  # the API answers 401 to ours
    result = _run_rollback(setup, _credit_request(_tick(setup)), mode="branch")
    assert not result.success
    failure = result.failure_data_for_node("gitops_rollback")
    assert "401" in failure.error.message and TOKEN not in failure.error.message
    [record] = _remediations(setup)
    assert record["action"]["status"] == "pull_request_failed" and record["action"]["pushed"] is True
    assert "401" in record["action"]["reason"] and TOKEN not in json.dumps(record)
    # the review branch is there for a person (or the retry) to open the request from
    assert remote_head(setup["url"], review_branch(CREDIT, "2.0.0", OVERLAY)) == record["action"]["commit"]


def test_violations_and_remediations_are_alerted_once_each(setup, hooks):
    slack, generic = hooks
    tick = _tick(setup)
    kinds = sorted((b["kind"], b["app"]) for b in generic.bodies())
    assert kinds == [("violation", CREDIT), ("violation", "employment-screening-ai")]
    assert len(slack.bodies()) == 2 and all("blocks" in b for b in slack.bodies())
    # evaluated again (a restart without cursor, new decision ids from the same facts): no second alert
    _tick(setup)
    assert len(generic.bodies()) == 2

    result = _run_rollback(setup, _credit_request(tick))
    assert result.success
    remediation = generic.bodies()[-1]
    assert (
        remediation["kind"] == "remediation"
        and remediation["decision_id"] == _credit_request(tick).tags["rai-pipelines/decision-id"]
    )
    assert remediation["summary"].startswith("rolled back to 1.4.2: commit ")
    assert '+        model-version: "1.4.2"' in remediation["diff"]
    sha = result.asset_materializations_for_node("gitops_rollback")[0].metadata["commit_sha"].value
    assert remediation["links"] == [
        {"label": "Dagster run", "url": f"http://127.0.0.1:3000/runs/{result.run_id}"},
        {"label": "Commit", "url": f"https://forge.example.com/acme/gitops/commit/{sha}"},
    ]
    slack_text = json.dumps(slack.bodies()[-1])
    assert "rolled back to 1.4.2" in slack_text and "slacksecret" not in json.dumps(generic.bodies())
    [record] = _remediations(setup)
    assert len(record["alerts"]["sent"]) == 2 and record["alerts"]["failed"] == []


def test_a_failed_rollback_run_is_alerted_by_the_run_failure_sensor_once(setup, hooks):
    _, generic = hooks
    request = _credit_request(_tick(setup))
    result = _run_rollback(setup, request, overlay="apps/credit-scoring-ai/overlays/missing")
    assert not result.success
    sensor = setup["defs"].resolve_sensor_def("rollback_run_failure_alerts")
    run = setup["instance"].get_run_by_id(result.run_id)
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    for _ in range(2):
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_instance=setup["instance"],
            dagster_run=run,
            dagster_event=failure,
            resources=setup["defs"].resources,
        ).for_run_failure()
        sensor(context)
    failures = [b for b in generic.bodies() if b["kind"] == "run_failure"]
    assert len(failures) == 1
    assert failures[0]["decision_id"] == request.tags["rai-pipelines/decision-id"] and failures[0]["app"] == CREDIT
    assert "apps/credit-scoring-ai/overlays/missing" in failures[0]["details"][0]


def _restructure(setup, tmp_path, change) -> None:
    """Commit `change(work_tree)` to the GitOps remote, as a platform team would."""
    work = tmp_path / "restructure"
    run_git(["clone", "--quiet", setup["url"], str(work)])
    run_git(["config", "user.email", "platform@example.com"], cwd=work)
    run_git(["config", "user.name", "Platform"], cwd=work)
    change(work)
    run_git(["add", "--all"], cwd=work)
    run_git(["commit", "--quiet", "-m", "restructure"], cwd=work)
    run_git(["push", "--quiet", "origin", "HEAD:main"], cwd=work)


def _rebuild(setup, monkeypatch, **env) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = settings_for(setup["world"])
    setup["defs"] = build_definitions(type(settings)(**{**vars(settings), "gitops_remote": setup["url"]}))


def test_a_plain_deployment_manifest_is_governed_and_pinned(setup, tmp_path, monkeypatch):
    overlay = "apps/credit-scoring-ai/overlays/production"

    def to_plain(work):
        rendered = subprocess.run(["kubectl", "kustomize", str(work / overlay)], capture_output=True, text=True)
        (work / "plain").mkdir()
        (work / "plain/credit-scoring-ai.yaml").write_text("# credit-scoring-ai, as applied\n" + rendered.stdout)
        shutil.rmtree(work / overlay)

    _restructure(setup, tmp_path, to_plain)
    _rebuild(setup, monkeypatch, RAI_GITOPS_SOURCE_GLOB="plain/*.yaml")
    request = _credit_request(_tick(setup))
    config = request.run_config["ops"]["gitops_rollback"]["config"]
    assert config["overlay"] == "plain/credit-scoring-ai.yaml" and config["bad_version"] == "2.0.0"
    assert _run_rollback(setup, request).success
    text = run_git(["--git-dir", str(setup["world"].gitops_remote), "show", "main:plain/credit-scoring-ai.yaml"])
    assert text.startswith("# credit-scoring-ai, as applied\n")
    assert "image: registry.example.com/credit-risk/credit-scoring-ai:1.4.2" in text
    assert "model-version: 1.4.2" in text or 'model-version: "1.4.2"' in text
    assert "kind: Service" in text  # the other documents of the file are kept
    # the GitOps repository changed: evaluated again, the pinned manifest complies
    assert all(r.tags["rai-pipelines/app"] != CREDIT for r in _tick(setup).run_requests)


ARGO_APPLICATION = """\
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: credit-scoring-ai
  namespace: argocd
  annotations:
    argocd-image-updater.argoproj.io/image-list: model=registry.example.com/credit-risk/credit-scoring-ai
    argocd-image-updater.argoproj.io/model.update-strategy: semver
spec:
  project: default
  source:
    repoURL: {url}
    targetRevision: main
    path: apps/credit-scoring-ai/overlays/argo
    kustomize:
      images:
        - registry.example.com/credit-risk/credit-scoring-ai:2.0.0  # bumped by the image updater
      patches:
        - target: {{kind: Deployment, name: credit-scoring-ai}}
          patch: |-
            - op: replace
              path: /spec/template/metadata/labels/model-version
              value: "2.0.0"
  destination:
    server: https://kubernetes.default.svc
    namespace: ml-production
"""


def test_an_argo_cd_application_is_governed_and_pinned_and_its_image_updater_neutralised(setup, tmp_path, monkeypatch):
    def to_argo(work):
        (work / "apps/credit-scoring-ai/overlays/production").rename(work / "apps/credit-scoring-ai/overlays/argo")
        (work / "clusters/production/credit-scoring-ai.yaml").write_text(ARGO_APPLICATION.format(url=setup["url"]))

    _restructure(setup, tmp_path, to_argo)
    _rebuild(setup, monkeypatch, RAI_GITOPS_SOURCE_GLOB="clusters/production/*.yaml")
    tick = _tick(setup)
    request = _credit_request(tick)
    assert (
        request.run_config["ops"]["gitops_rollback"]["config"]["overlay"]
        == "clusters/production/credit-scoring-ai.yaml"
    )
    result = _run_rollback(setup, request)
    assert result.success
    sha = result.asset_materializations_for_node("gitops_rollback")[0].metadata["commit_sha"].value
    remote = str(setup["world"].gitops_remote)
    application = run_git(["--git-dir", remote, "show", f"{sha}:clusters/production/credit-scoring-ai.yaml"])
    assert "registry.example.com/credit-risk/credit-scoring-ai:1.4.2" in application
    assert 'value: "1.4.2"' in application or "value: 1.4.2" in application
    assert "argocd-image-updater" not in application
    message = run_git(["--git-dir", remote, "log", "-1", "--format=%B", sha])
    assert "Image automation neutralised:" in message and "argocd-image-updater.argoproj.io/image-list" in message
    # the overlay the Application points at is not edited: the Application's override decides
    assert run_git(["--git-dir", remote, "diff", "--stat", f"{sha}~1", sha]).count("|") == 1


def test_each_environment_of_a_model_gets_its_own_decision_remediation_and_review_branch(setup, tmp_path, monkeypatch):
    """credit-scoring-ai in staging and prod-eu runs the violating 2.0.0, in prod-us the compliant 1.4.2."""
    overlays = "apps/credit-scoring-ai/overlays"

    def three_environments(work):
        production = work / overlays / "production"
        for environment in ("staging", "prod-eu", "prod-us"):
            shutil.copytree(production, work / overlays / environment)
        for name in ("kustomization.yaml", "model-version.yaml"):
            us = work / overlays / "prod-us" / name
            us.write_text(us.read_text().replace("2.0.0", "1.4.2"))
        shutil.rmtree(production)

    _restructure(setup, tmp_path, three_environments)
    _rebuild(setup, monkeypatch, RAI_GITOPS_OVERLAY_GLOB="apps/*/overlays/*")
    tick = _tick(setup)
    credit = {
        r.run_config["ops"]["gitops_rollback"]["config"]["overlay"]: r
        for r in tick.run_requests
        if r.tags["rai-pipelines/app"] == CREDIT
    }
    assert sorted(credit) == [f"{overlays}/prod-eu", f"{overlays}/staging"]
    assert {r.tags["rai-pipelines/remediation-target"] for r in credit.values()} == set(credit)
    assert len({r.run_key for r in credit.values()}) == 2
    assert len({r.tags["rai-pipelines/decision-id"] for r in credit.values()}) == 2
    remote = str(setup["world"].gitops_remote)
    us_before = run_git(["--git-dir", remote, "show", f"main:{overlays}/prod-us/kustomization.yaml"])
    for overlay, request in sorted(credit.items()):
        result = _run_rollback(setup, request, mode="branch")
        assert result.success
        head = review_branch(CREDIT, "2.0.0", overlay)
        changed = run_git(["--git-dir", remote, "diff", "--name-only", "main", head]).split()
        assert changed and all(path.startswith(f"{overlay}/") for path in changed)  # only its own overlay
    heads = run_git(["--git-dir", remote, "for-each-ref", "--format=%(refname:short)", "refs/heads/rai-pipelines"])
    assert sorted(heads.split()) == sorted(review_branch(CREDIT, "2.0.0", o) for o in credit)
    assert run_git(["--git-dir", remote, "show", f"main:{overlays}/prod-us/kustomization.yaml"]) == us_before
