"""Verification after a rollback, in Dagster: the rollbacks pushed (the gitops_rollback asset's
materialisations) are judged by the policy sensor as the restored versions' new facts arrive, and
each outcome is an evaluation of the asset check `restored_version_complies`. Run by hand from the
UI, the check judges every recent rollback against the current facts and GitOps revision."""

import dagster as dg

from rai_pipelines.defs.gitops.resources import GitOpsResource
from rai_pipelines.defs.governance.evaluation import evaluate_current_deployments
from rai_pipelines.defs.governance.resources import PolicyResource
from rai_pipelines.defs.keys import GITOPS_ROLLBACK
from rai_pipelines.defs.resources import LakeResource
from rai_pipelines.gitops.render import RenderCache
from rai_pipelines.governance.verification import Remediation, Verification, verify_remediation

RESTORED_VERSION_COMPLIES = "restored_version_complies"
RECENT_ROLLBACKS = 200  # rollback materialisations looked at per evaluation


def recent_remediations(instance: dg.DagsterInstance, settled: set[str] = frozenset()) -> list[Remediation]:
    """The rollbacks pushed recently, newest first, one per decision, leaving out those already settled."""
    remediations, seen = [], set(settled)
    for record in instance.fetch_materializations(GITOPS_ROLLBACK, limit=RECENT_ROLLBACKS).records:
        materialization = record.asset_materialization
        if materialization is None:
            continue
        metadata = {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}
        remediation = Remediation.from_metadata(metadata)
        if remediation is not None and remediation.decision_id not in seen:
            seen.add(remediation.decision_id)
            remediations.append(remediation)
    return remediations


def check_evaluation(verification: Verification) -> dg.AssetCheckEvaluation:
    remediation = verification.remediation
    return dg.AssetCheckEvaluation(
        asset_key=GITOPS_ROLLBACK,
        check_name=RESTORED_VERSION_COMPLIES,
        passed=verification.status == "verified",
        severity=dg.AssetCheckSeverity.ERROR,
        description=verification.reason,
        metadata={
            "decision_id": remediation.decision_id,
            "app": remediation.app,
            "overlay": remediation.overlay,
            "restored_version": remediation.restored_version,
            "rollback_commit": remediation.commit,
            "status": verification.status,
            "facts_date": verification.facts_date or "",
            "deny": dg.MetadataValue.json(verification.deny),
        },
    )


@dg.asset_check(
    asset=GITOPS_ROLLBACK,
    name=RESTORED_VERSION_COMPLIES,
    description="Each rollback's restored version complies again once its next governance facts arrive. "
    "The policy sensor records this for every rollback as the facts come; run by hand, the check judges "
    "every recent rollback now and fails if a restored version violates policy again.",
)
def restored_version_complies(
    context: dg.AssetCheckExecutionContext, lake: LakeResource, gitops: GitOpsResource, policy: PolicyResource
) -> dg.AssetCheckResult:
    remediations = recent_remediations(context.instance)
    bundle = policy.bundle()
    current = evaluate_current_deployments(lake, gitops, policy, bundle, RenderCache(), gitops.head())
    unrendered = {f.overlay for f in current.render_failures}
    verifications = [verify_remediation(r, current.decisions, current.facts_rows, unrendered) for r in remediations]
    failing = [v for v in verifications if v.status == "still_violating"]
    return dg.AssetCheckResult(
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(v.reason for v in failing) or f"{len(verifications)} recent rollback(s), none violating",
        metadata={
            "rollbacks": dg.MetadataValue.json(
                [
                    {
                        "decision_id": v.remediation.decision_id,
                        "app": v.remediation.app,
                        "restored_version": v.remediation.restored_version,
                        "status": v.status,
                        "reason": v.reason,
                    }
                    for v in verifications
                ]
            ),
            "gitops_revision": current.revision,
        },
    )
