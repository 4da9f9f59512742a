"""The decision step of the loop, without Dagster: evaluate deployments against the policies with
the governance facts, build decision records, pick the version a rollback returns to."""

from __future__ import annotations

from dataclasses import dataclass

from rai_pipelines.core.decision_log import decision_id, digest
from rai_pipelines.core.errors import BadInputError, PolicyError
from rai_pipelines.core.registry import validate_model_version
from rai_pipelines.gitops.git import redact
from rai_pipelines.gitops.render import RenderedDeployment
from rai_pipelines.governance.bundle import DEFAULT_PACKAGE, PolicyBundle
from rai_pipelines.governance.facts import ai_models_document
from rai_pipelines.governance.rego import (
    PolicyEngine,
    check_input,
    decision_log_labels,
    decision_query,
    evaluate_decisions,
)


@dataclass(frozen=True)
class Decision:
    record: dict
    deployment: RenderedDeployment

    @property
    def violations(self) -> list[str]:
        return self.record["result"].get("deny", [])

    @property
    def remediation(self) -> str:
        return self.record["result"].get("remediation", "alert" if self.error else "none")

    @property
    def error(self) -> str | None:
        return self.record["result"].get("error")

    @property
    def decision_id(self) -> str:
        return self.record["decision_id"]


def evaluate_deployments(
    engine: PolicyEngine,
    bundle: PolicyBundle,
    deployments: list[RenderedDeployment],
    facts_rows: list[dict],
    gitops_remote: str,
    gitops_revision: str,
    package: str = DEFAULT_PACKAGE,
) -> list[Decision]:
    """One decision per deployment. A manifest whose model-version label is missing or unsafe is
    not evaluated: its decision is an error with an alert, so bad data never drives a rollback."""
    conflicts: list[str] = []
    ai_models = ai_models_document(facts_rows, conflicts)
    facts_digest = digest(ai_models)
    query = decision_query(package)
    valid, decisions = [], []
    for deployment in deployments:
        try:
            check_input(deployment.manifest, f"{deployment.overlay}: Deployment")
            if deployment.model_version is not None:
                validate_model_version(deployment.model_version, f"{deployment.overlay}: label model-version")
            valid.append(deployment)
        except (BadInputError, PolicyError) as exc:
            input_digest = digest(deployment.manifest)
            decisions.append(
                Decision(
                    {
                        "decision_id": decision_id(
                            bundle.digest, query, input_digest, facts_digest, deployment.overlay
                        ),
                        "path": query.removeprefix("data.").replace(".", "/"),
                        "bundles": {"policies": {"revision": bundle.revision, "digest": bundle.digest}},
                        # an oversized input is not copied into the log; its digest identifies it
                        "input": None if isinstance(exc, PolicyError) else deployment.manifest,
                        "input_digest": input_digest,
                        "gitops": {
                            "remote": redact(gitops_remote),
                            "revision": gitops_revision,
                            "overlay": deployment.overlay,
                        },
                        "app": deployment.app,
                        "result": {"error": str(exc)},
                        "action": {"type": "alert"},
                    },
                    deployment,
                )
            )
    results = evaluate_decisions(engine, bundle, [d.manifest for d in valid], ai_models, package) if valid else []
    for deployment, decision in zip(valid, results, strict=True):
        input_digest = digest(deployment.manifest)
        facts = ai_models.get(deployment.model_version)
        record = {
            "decision_id": decision_id(bundle.digest, query, input_digest, facts_digest, deployment.overlay),
            "path": query.removeprefix("data.").replace(".", "/"),
            "bundles": {"policies": {"revision": bundle.revision, "digest": bundle.digest}},
            "input": deployment.manifest,
            "input_digest": input_digest,
            "facts_digest": facts_digest,
            "facts": facts,
            "facts_source_run_ids": (facts or {}).get("source_run_ids", []),
            "gitops": {"remote": redact(gitops_remote), "revision": gitops_revision, "overlay": deployment.overlay},
            "app": deployment.app,
            "model_version": deployment.model_version,
            "result": decision.as_dict(),
            "metrics": decision.metrics,
            "labels": decision_log_labels(decision.engine),
            "action": {"type": ACTIONS[decision.remediation]},
        }
        decisions.append(Decision(record, deployment))
    return decisions


ACTIONS = {"rollback": "rollback_requested", "review": "review_requested", "alert": "alert", "none": "none"}


def rollback_run_key(app: str, overlay: str, bad_version: str, rendered_manifest: dict) -> str:
    """The same violation maps to one run key: the app's overlay rendering this Deployment with
    this bad version. A second tick, a restart, fresher facts or a commit elsewhere in the GitOps
    repository never launch a second rollback for it; a changed Deployment is a new violation."""
    return "rollback-" + digest([app, overlay, bad_version, digest(rendered_manifest)]).split(":")[1][:24]
