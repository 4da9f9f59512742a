"""The GitOps rollback: a job asset that returns a model violating policy to its last compliant
version by a commit to the GitOps repository, which Argo CD or Flux then reconciles; or, for review
(by the policies' severity, or when the environment branch is protected), by a branch and a pull or
merge request. Each materialisation is one remediation, in the decision log with its outcome."""

import dagster as dg

from rai_pipelines.core.decision_log import digest
from rai_pipelines.core.errors import BadInputError, RaiError
from rai_pipelines.core.registry import validate_model_version
from rai_pipelines.defs.gitops.resources import GitOpsResource
from rai_pipelines.defs.governance.alerts import AlertsResource
from rai_pipelines.defs.governance.resources import PolicyResource
from rai_pipelines.defs.keys import GITOPS_ROLLBACK
from rai_pipelines.defs.resources import LakeResource, ModelRegistryResource
from rai_pipelines.gitops.forges import ForgeError, open_or_update_pull_request
from rai_pipelines.gitops.git import redact
from rai_pipelines.governance.facts import read_all_facts
from rai_pipelines.governance.remediation_report import (
    RollbackRequest,
    pull_request_body,
    pull_request_title,
    refusal_alert,
    remediation_alert,
)
from rai_pipelines.governance.rollback import NoCompliantVersion, RollbackResult, review_branch, rollback_model

ACTION_TYPES = {
    "committed": "rollback_commit",
    "review_branch_pushed": "review_branch",
    "dry_run": "dry_run",
}


class RollbackConfig(dg.Config):
    """What the policy sensor decided; the asset re-checks all of it before touching Git."""

    app: str
    deployment: str
    overlay: str
    bad_version: str
    decision_id: str
    violations: list[str]  # as the sensor saw them; the asset evaluates again with current facts
    # "push": commit to the GitOps branch (a review branch and pull request when the branch is
    # protected); "branch": a review branch and, with a forge configured, a pull or merge request
    mode: str = "push"
    # Everything but the push: the diff, the commit message and the target are in the materialisation
    # and the decision log, and nothing leaves the throw-away checkout.
    dry_run: bool = False


def _remediation_record(config: RollbackConfig, run_id: str, action: dict, **extra) -> dict:
    return {
        "decision_id": config.decision_id,
        "kind": "remediation",
        "app": config.app,
        "model_version": config.bad_version,
        **extra,
        "action": action,
        "run_id": run_id,
    }


def _pull_request(
    context: dg.AssetExecutionContext,
    config: RollbackConfig,
    gitops: GitOpsResource,
    request: RollbackRequest,
    result: RollbackResult,
    facts: list[dict],
    log,
) -> dict | None:
    """Open or update the review branch's pull request, when a forge is configured."""
    forge = gitops.forge_config()
    if forge is None or result.status != "review_branch_pushed":
        return None
    try:
        opened = open_or_update_pull_request(
            forge,
            head=result.branch,
            base=gitops.branch,
            title=pull_request_title(request, result),
            body=pull_request_body(request, result, facts),
            labels=tuple(gitops.pull_request_labels),
        )
    except ForgeError as exc:
        reason = redact(str(exc))
        log.append(
            _remediation_record(
                config,
                context.run.run_id,
                {
                    "type": "review_branch",
                    "status": "pull_request_failed",
                    "branch": result.branch,
                    "commit": result.commit_sha,
                    "pushed": True,
                    "reason": reason,
                },
            )
        )
        # the branch is pushed; a retry pushes it again and opens or updates the one request
        retry = exc.status is None or exc.status >= 500 or exc.status == 429
        raise dg.Failure(description=f"review branch {result.branch} pushed, {reason}", allow_retries=retry) from exc
    context.log.info(f"pull request {'opened' if opened.created else 'updated'}: {opened.url}")
    return {"number": opened.number, "url": opened.url, "created": opened.created}


@dg.asset(
    name=GITOPS_ROLLBACK.path[-1],
    group_name="remediation",
    kinds={"git", "kustomize"},
    description="Returns a model that violates policy to its last compliant version by a commit to the "
    "GitOps repository (image tag and model-version label pinned in the overlay), which Argo CD or "
    "Flux then reconciles; or proposes it as a pull request. Each materialisation is one remediation.",
)
def gitops_rollback(
    context: dg.AssetExecutionContext,
    config: RollbackConfig,
    lake: LakeResource,
    gitops: GitOpsResource,
    policy: PolicyResource,
    registry: ModelRegistryResource,
    alerts: AlertsResource,
) -> dg.MaterializeResult:
    validate_model_version(config.bad_version, "rollback config: bad_version")
    if config.mode not in ("push", "branch"):
        raise BadInputError(f"rollback config: mode must be 'push' or 'branch', not {config.mode!r}")
    if gitops.remediation_mode not in ("push", "review"):
        raise BadInputError(f"RAI_GITOPS_REMEDIATION_MODE must be 'push' or 'review', not {gitops.remediation_mode!r}")
    for_review = config.mode == "branch" or gitops.remediation_mode == "review"
    models = registry.models()
    if config.app not in models:
        raise BadInputError(f"rollback config: app {config.app!r} is not a model in the registry")
    spec = models[config.app]
    bundle = policy.bundle()
    facts = read_all_facts(lake.lake())
    log = lake.decision_log()
    request = RollbackRequest(
        config.app, config.overlay, config.deployment, config.bad_version, config.decision_id, bundle.revision or ""
    )
    branch_for_review = review_branch(config.app, config.bad_version, config.overlay)
    run_links = alerts.run_link(context.run.run_id)
    with gitops.checkout() as checkout:
        try:
            result = rollback_model(
                checkout,
                spec,
                config.overlay,
                config.deployment,
                config.bad_version,
                config.decision_id,
                policy.policy_engine(),
                bundle,
                facts,
                review_branch=branch_for_review if for_review else None,
                dry_run=config.dry_run,
                fallback_branch=branch_for_review,
                source_options=gitops.source_options(),
            )
        except RaiError as exc:
            # Every outcome is in the audit trail, failures included. No compliant version is final
            # (a retry would find none either); a failed push or render may be retried by Dagster.
            final = isinstance(exc, NoCompliantVersion)
            reason = redact(str(exc))
            delivery = alerts.send(refusal_alert(request, reason, run_links), context.log) if final else None
            log.append(
                _remediation_record(
                    config,
                    context.run.run_id,
                    {"type": "alert" if final else "rollback_failed", "reason": reason, "pushed": False},
                    **({"alerts": delivery} if delivery else {}),
                )
            )
            raise dg.Failure(description=reason, allow_retries=not final) from exc
    pull_request = _pull_request(context, config, gitops, request, result, facts, log)
    pushed = result.status in ("committed", "review_branch_pushed")
    delivery = None
    if pushed:
        links = run_links + gitops.commit_link(result.commit_sha)
        links += (("Pull request", pull_request["url"]),) if pull_request else ()
        delivery = alerts.send(remediation_alert(request, result, links), context.log)
    record = log.append(
        _remediation_record(
            config,
            context.run.run_id,
            {
                "type": "pull_request" if pull_request else ACTION_TYPES.get(result.status, "none"),
                "status": result.status,
                "commit": result.commit_sha,
                "restored_version": result.target_version,
                "remote": redact(gitops.remote),
                "branch": result.branch or gitops.branch,
                "considered": result.considered,
                "signed": checkout.signed,
                "pushed": pushed,
                "checks": result.checks,
                "fallback_reason": result.fallback_reason,
                "pull_request": pull_request,
            },
            bundles={"policies": {"revision": bundle.revision, "digest": bundle.digest}},
            facts_digest=digest(facts),
            **({"alerts": delivery} if delivery else {}),
        )
    )
    context.log.info(f"{config.app}: {result.status}, target {result.target_version}, commit {result.commit_sha}")
    return dg.MaterializeResult(
        metadata={
            "status": result.status,
            "app": config.app,
            "bad_version": config.bad_version,
            "restored_version": result.target_version,
            "commit_sha": result.commit_sha or "",
            "gitops_remote": redact(gitops.remote),
            "overlay": config.overlay,
            # what the verification after the rollback waits for: the restored version's facts newer than these
            "violation_facts_date": max(
                (r["date"] for r in facts if (r["model_name"], r["model_version"]) == (config.app, config.bad_version)),
                default="",
            ),
            "pushed_to_branch": result.branch or gitops.branch,
            "pull_request": pull_request["url"] if pull_request else "",
            "fallback_reason": result.fallback_reason,
            "dry_run": config.dry_run,
            "commit_message": dg.MetadataValue.text(result.commit_message),
            "decision_id": config.decision_id,
            "decision_record_digest": record["digest"],
            "diff": dg.MetadataValue.md(f"```diff\n{result.diff}\n```" if result.diff else "(no change)"),
        }
    )
