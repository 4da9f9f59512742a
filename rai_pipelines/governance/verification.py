"""Verification after a rollback: once the restored version's next facts arrive (facts measured
after the ones that condemned the bad version), the same policies must allow the deployment again.
Without Dagster: the remediations come in as plain records, the current decisions as evaluated by
the policy sensor."""

from __future__ import annotations

from dataclasses import dataclass, field

from rai_pipelines.governance.decisions import Decision

# what a rollback run reports that leaves a version to verify: pushed to the branch Argo CD or Flux
# reconcile, or proposed for review (verified once a person has merged it and it is deployed)
VERIFIABLE_STATUSES = ("committed", "review_branch_pushed")


@dataclass(frozen=True)
class Remediation:
    """A rollback that was pushed, as its run recorded it."""

    decision_id: str
    app: str
    overlay: str
    bad_version: str
    restored_version: str
    violation_facts_date: str  # the latest day of facts of the bad version when it was rolled back
    commit: str

    @classmethod
    def from_metadata(cls, metadata: dict) -> Remediation | None:
        """From a rollback run's materialisation metadata (plain values); None when the run pushed
        nothing to verify (a dry run, already remediated, no longer violating) or predates the fields."""
        if metadata.get("status") not in VERIFIABLE_STATUSES:
            return None
        fields = ("decision_id", "app", "overlay", "bad_version", "restored_version", "violation_facts_date")
        values = {name: metadata.get(name) for name in fields}
        if not all(isinstance(v, str) and v for v in values.values()):
            return None
        return cls(**values, commit=str(metadata.get("commit_sha") or ""))


@dataclass(frozen=True)
class Verification:
    remediation: Remediation
    # "verified": the restored version's new facts comply; "still_violating": they do not;
    # "waiting": no facts of the restored version newer than the violation's yet, or not deployed
    # yet (a review branch not merged); "superseded": the deployment now runs another version or is gone
    status: str
    reason: str
    facts_date: str | None = None
    deny: list[str] = field(default_factory=list)

    @property
    def settled(self) -> bool:
        return self.status != "waiting"


def verify_remediation(
    remediation: Remediation,
    decisions: list[Decision],
    facts_rows: list[dict],
    unrendered_overlays: frozenset[str] | set[str] = frozenset(),
) -> Verification:
    """Judge one remediation against the sensor's current decisions and the facts they were made
    with. An overlay that does not render now, or whose Deployment could not be evaluated, is not
    judged: that is alerted on its own, and the verification waits until it can be evaluated."""
    if remediation.overlay in unrendered_overlays:
        return Verification(remediation, "waiting", f"{remediation.overlay} does not render now")
    here = [d for d in decisions if d.deployment.overlay == remediation.overlay]
    if not here:
        return Verification(remediation, "superseded", f"{remediation.overlay} is no longer in the GitOps repository")
    decision = here[0]
    if decision.error:
        return Verification(remediation, "waiting", f"{remediation.overlay} not evaluated: {decision.error}")
    deployed = decision.deployment.model_version
    if deployed == remediation.bad_version:
        # a review branch not merged yet, or Argo CD / Flux not reconciled from Git yet: Git still says bad
        return Verification(remediation, "waiting", f"{remediation.overlay} still deploys {deployed}")
    if deployed != remediation.restored_version:
        return Verification(
            remediation,
            "superseded",
            f"{remediation.overlay} now deploys {deployed}, not the restored {remediation.restored_version}",
        )
    newer = [
        r["date"]
        for r in facts_rows
        if r["model_name"] == remediation.app
        and r["model_version"] == remediation.restored_version
        and r["date"] > remediation.violation_facts_date
    ]
    if not newer:
        return Verification(
            remediation,
            "waiting",
            f"no facts of {remediation.restored_version} after {remediation.violation_facts_date} yet",
        )
    facts_date = max(newer)
    if decision.violations:
        return Verification(
            remediation,
            "still_violating",
            f"{remediation.app} {remediation.restored_version} violates policy again with its facts of {facts_date}",
            facts_date,
            list(decision.violations),
        )
    return Verification(
        remediation,
        "verified",
        f"{remediation.app} {remediation.restored_version} complies with its facts of {facts_date}",
        facts_date,
    )


def verification_record(verification: Verification, gitops_revision: str) -> dict:
    """The decision log's account of a verification, under the remediated decision's id."""
    remediation = verification.remediation
    return {
        "decision_id": remediation.decision_id,
        "kind": "verification",
        "app": remediation.app,
        "model_version": remediation.restored_version,
        "gitops": {"revision": gitops_revision, "overlay": remediation.overlay, "rollback_commit": remediation.commit},
        "result": {
            "status": verification.status,
            "reason": verification.reason,
            "facts_date": verification.facts_date,
            "deny": verification.deny,
        },
        "action": {"type": "alert" if verification.status == "still_violating" else "none"},
    }
