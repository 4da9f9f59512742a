"""The policies' view of the deployments now: every overlay of the GitOps repository rendered (only
what changed since the last render) and evaluated with the current governance facts. Shared by the
policy sensor and the check that verifies rollbacks."""

from dataclasses import dataclass

from rai_pipelines.defs.gitops.resources import GitOpsResource
from rai_pipelines.defs.governance.resources import PolicyResource
from rai_pipelines.defs.resources import LakeResource
from rai_pipelines.gitops.render import RenderCache, RenderFailure, rendered_deployments
from rai_pipelines.gitops.sources import rendered_other_sources
from rai_pipelines.governance.bundle import PolicyBundle
from rai_pipelines.governance.decisions import Decision, evaluate_deployments
from rai_pipelines.governance.facts import ai_models_document, read_all_facts


@dataclass(frozen=True)
class CurrentEvaluation:
    revision: str
    decisions: list[Decision]
    render_failures: list[RenderFailure]
    facts_conflicts: list[str]
    facts_rows: list[dict]


def evaluate_current_deployments(
    lake: LakeResource,
    gitops: GitOpsResource,
    policy: PolicyResource,
    bundle: PolicyBundle,
    renders: RenderCache,
    revision: str,
) -> CurrentEvaluation:
    """`revision`: the GitOps branch's head as last seen; a clone is made only when `renders` does
    not hold that revision yet."""
    rendered = renders.get(revision, gitops.overlay_glob)
    others = renders.other_sources.get(gitops.source_glob or "")
    if rendered is None or (gitops.source_glob and (others is None or others[0] != revision)):
        with gitops.checkout() as checkout:
            revision = checkout.head
            rendered = rendered_deployments(checkout.path, gitops.overlay_glob, revision, renders)
            other_deployments, other_failures = rendered_other_sources(
                checkout.path, gitops.source_glob, gitops.source_options()
            )
        rendered = (rendered[0] + other_deployments, rendered[1] + other_failures)
        if gitops.source_glob and not other_failures:  # a failed render may be transient: never kept
            renders.other_sources[gitops.source_glob] = (revision, other_deployments)
    elif others is not None:
        rendered = (rendered[0] + others[1], rendered[1])
    deployments, render_failures = rendered
    facts_rows = read_all_facts(lake.lake())
    conflicts: list[str] = []
    ai_models_document(facts_rows, conflicts)
    decisions = evaluate_deployments(
        policy.policy_engine(), bundle, deployments, facts_rows, gitops.remote, revision, policy.package
    )
    return CurrentEvaluation(revision, decisions, render_failures, conflicts, facts_rows)
