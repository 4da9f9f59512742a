"""The GitOps rollback: a job asset that returns a model violating policy to its last compliant
version by a commit to the GitOps repository, which Argo CD or Flux then reconciles. Each
materialisation is one remediation, in the decision log with its outcome."""

import dagster as dg

from rai_pipelines.core.decision_log import digest
from rai_pipelines.core.errors import BadInputError, RaiError
from rai_pipelines.core.registry import validate_model_version
from rai_pipelines.defs.gitops.resources import GitOpsResource
from rai_pipelines.defs.governance.resources import PolicyResource
from rai_pipelines.defs.keys import GITOPS_ROLLBACK
from rai_pipelines.defs.resources import LakeResource, ModelRegistryResource
from rai_pipelines.gitops.git import redact
from rai_pipelines.governance.facts import read_all_facts
from rai_pipelines.governance.rollback import NoCompliantVersion, review_branch, rollback_model


class RollbackConfig(dg.Config):
    """What the policy sensor decided; the asset re-checks all of it before touching Git."""

    app: str
    deployment: str
    overlay: str
    bad_version: str
    decision_id: str
    violations: list[str]  # as the sensor saw them; the asset evaluates again with current facts
    mode: str = "push"  # "push": commit to the GitOps branch; "branch": push a branch for review
    # Everything but the push: the diff, the commit message and the target are in the materialisation
    # and the decision log, and nothing leaves the throw-away checkout.
    dry_run: bool = False


@dg.asset(
    name=GITOPS_ROLLBACK.path[-1],
    group_name="remediation",
    kinds={"git", "kustomize"},
    description="Returns a model that violates policy to its last compliant version by a commit to the "
    "GitOps repository (image tag and model-version label pinned in the overlay), which Argo CD or "
    "Flux then reconciles. Each materialisation is one remediation.",
)
def gitops_rollback(
    context: dg.AssetExecutionContext,
    config: RollbackConfig,
    lake: LakeResource,
    gitops: GitOpsResource,
    policy: PolicyResource,
    registry: ModelRegistryResource,
) -> dg.MaterializeResult:
    validate_model_version(config.bad_version, "rollback config: bad_version")
    if config.mode not in ("push", "branch"):
        raise BadInputError(f"rollback config: mode must be 'push' or 'branch', not {config.mode!r}")
    models = registry.models()
    if config.app not in models:
        raise BadInputError(f"rollback config: app {config.app!r} is not a model in the registry")
    spec = models[config.app]
    store = lake.lake()
    bundle = policy.bundle()
    facts = read_all_facts(store)
    log = lake.decision_log()
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
                review_branch=review_branch(config.app, config.bad_version) if config.mode == "branch" else None,
                dry_run=config.dry_run,
            )
        except RaiError as exc:
            # Every outcome is in the audit trail, failures included. No compliant version is final
            # (a retry would find none either); a failed push or render may be retried by Dagster.
            final = isinstance(exc, NoCompliantVersion)
            log.append(
                {
                    "decision_id": config.decision_id,
                    "kind": "remediation",
                    "app": config.app,
                    "model_version": config.bad_version,
                    "action": {"type": "alert" if final else "rollback_failed", "reason": redact(str(exc))},
                    "run_id": context.run.run_id,
                }
            )
            raise dg.Failure(description=redact(str(exc)), allow_retries=not final) from exc
    record = log.append(
        {
            "decision_id": config.decision_id,
            "kind": "remediation",
            "app": config.app,
            "model_version": config.bad_version,
            "bundles": {"policies": {"revision": bundle.revision, "digest": bundle.digest}},
            "facts_digest": digest(facts),
            "action": {
                "type": {
                    "committed": "rollback_commit",
                    "review_branch_pushed": "review_branch",
                    "dry_run": "dry_run",
                }.get(result.status, "none"),
                "status": result.status,
                "commit": result.commit_sha,
                "restored_version": result.target_version,
                "remote": redact(gitops.remote),
                "branch": result.branch or gitops.branch,
                "considered": result.considered,
                "signed": checkout.signed,
                "pushed": result.status in ("committed", "review_branch_pushed"),
            },
            "run_id": context.run.run_id,
        }
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
            "dry_run": config.dry_run,
            "commit_message": dg.MetadataValue.text(result.commit_message),
            "decision_id": config.decision_id,
            "decision_record_digest": record["digest"],
            "diff": dg.MetadataValue.md(f"```diff\n{result.diff}\n```" if result.diff else "(no change)"),
        }
    )
