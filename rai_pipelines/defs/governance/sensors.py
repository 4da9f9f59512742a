"""The policy sensor: evaluates the Rego policies on every deployed model and requests a GitOps
rollback for each violation, with a run key derived from the decision so that a restart or a
second tick never launches the same remediation twice."""

import json

import dagster as dg

from rai_pipelines.defs.gitops.resources import GitOpsResource
from rai_pipelines.defs.gitops.verification import check_evaluation, recent_remediations
from rai_pipelines.defs.governance.alerts import AlertsResource
from rai_pipelines.defs.governance.evaluation import evaluate_current_deployments
from rai_pipelines.defs.governance.resources import PolicyResource
from rai_pipelines.defs.keys import GITOPS_ROLLBACK_OP, GOVERNANCE_DECISIONS
from rai_pipelines.defs.resources import LakeResource
from rai_pipelines.gitops.render import RenderCache
from rai_pipelines.governance.decisions import rollback_run_key
from rai_pipelines.governance.remediation_report import verification_alert, violation_alert
from rai_pipelines.governance.verification import verification_record, verify_remediation

SETTLED_KEPT = 1000  # decisions whose rollback is verified (or superseded), remembered in the cursor


def _observation(record: dict) -> dg.AssetObservation:
    result = record.get("result", {})
    return dg.AssetObservation(
        asset_key=GOVERNANCE_DECISIONS,
        metadata={
            "decision_id": record.get("decision_id") or "",
            "app": record.get("app") or record.get("gitops", {}).get("overlay", ""),
            "model_version": record.get("model_version") or "",
            "allowed": bool(result.get("allowed", False)),
            "remediation": result.get("remediation") or record.get("action", {}).get("type", ""),
            "deny": dg.MetadataValue.json(result.get("deny", [])),
            "warn": dg.MetadataValue.json(result.get("warn", [])),
            "error": result.get("error") or "",
            "record_digest": record["digest"],
            "sequence": record["sequence"],
        },
    )


def _send_alerts(context, alerts: AlertsResource, decisions, verifications) -> None:
    """Each violation once (its rollback run key names it across evaluations), each settled verification once.
    A webhook that fails is not tried again in the same tick: one time-out per tick, not one per alert."""
    unreachable: set[str] = set()
    for decision in decisions:
        if decision.error or not decision.violations:
            continue
        deployment = decision.deployment
        violation = rollback_run_key(deployment.app, deployment.overlay, deployment.model_version, deployment.manifest)
        alerts.send(violation_alert(decision.record, violation), context.log, unreachable)
    for verification in verifications:
        if verification.status in ("verified", "still_violating"):
            alerts.send(verification_alert(verification), context.log, unreachable)


def build_policy_sensor(
    rollback_job, facts: list[dg.AssetKey], minimum_interval_seconds: int = 30
) -> dg.SensorDefinition:
    """`facts`: every model's governance facts asset; a new materialisation of any is a reason to evaluate."""
    # The rendered overlays, kept between ticks (and on disk under the GitOps work folder, for a
    # restarted code server): only a new commit clones and renders, and then only the overlays whose
    # Git trees changed.
    caches: dict[str, RenderCache] = {}

    @dg.sensor(
        job=rollback_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Evaluates the Rego policies on each deployed model (its rendered Deployment as input, "
        "governance facts as data.ai_models) and requests a GitOps rollback for every violation.",
    )
    def governance_policy_sensor(
        context: dg.SensorEvaluationContext,
        lake: LakeResource,
        gitops: GitOpsResource,
        policy: PolicyResource,
        alerts: AlertsResource,
    ):
        latest = [r for key in facts for r in context.instance.fetch_materializations(key, limit=1).records]
        if not latest:
            return dg.SkipReason("no governance facts have been materialised yet")
        bundle = policy.bundle()
        state = {
            "facts_storage_id": max(r.storage_id for r in latest),
            "gitops_revision": gitops.head(),
            "policy_digest": bundle.digest,
        }
        previous = json.loads(context.cursor) if context.cursor else {}
        if {key: previous.get(key) for key in state} == state:
            return dg.SkipReason("facts, GitOps revision and policies unchanged since the last evaluation")

        renders = caches.setdefault(str(gitops.workdir), RenderCache(gitops.render_cache_dir()))
        current = evaluate_current_deployments(lake, gitops, policy, bundle, renders, state["gitops_revision"])
        revision, decisions, render_failures = current.revision, current.decisions, current.render_failures
        conflicts = current.facts_conflicts
        records = [
            {
                "kind": "render_error",
                "gitops": {"revision": revision, "overlay": f.overlay},
                "result": {"error": f.error},
                "action": {"type": "alert"},
            }
            for f in render_failures
        ] + [{"kind": "facts_conflict", "result": {"error": c}, "action": {"type": "alert"}} for c in conflicts]
        for record in records:
            context.log.error(f"ALERT: {record['result']['error']}")
        # The rollbacks pushed earlier, judged as their restored versions' new facts arrive.
        settled = list(previous.get("settled", []))
        unrendered = {f.overlay for f in render_failures}
        verifications = [
            v
            for remediation in recent_remediations(context.instance, set(settled))
            if (v := verify_remediation(remediation, decisions, current.facts_rows, unrendered)).settled
        ]
        for verification in verifications:
            (context.log.info if verification.status != "still_violating" else context.log.error)(
                f"rollback {verification.remediation.decision_id}: {verification.status}: {verification.reason}"
            )
        evaluated = records + [d.record for d in decisions]
        # One lock and one fsync for the whole tick.
        appended = lake.decision_log().append_many(
            evaluated + [verification_record(v, revision) for v in verifications]
        )
        observations = [_observation(r) for r in appended[: len(evaluated)]] + [
            check_evaluation(v) for v in verifications if v.status in ("verified", "still_violating")
        ]
        state["settled"] = (settled + [v.remediation.decision_id for v in verifications])[-SETTLED_KEPT:]
        run_requests = []
        for decision in decisions:
            deployment = decision.deployment
            if decision.error:
                context.log.error(f"{deployment.overlay}: not evaluated: {decision.error}")
                continue
            warnings = decision.record["result"].get("warn", [])
            (context.log.info if decision.violations or warnings else context.log.debug)(
                f"{deployment.app} {deployment.model_version}: {'; '.join(decision.violations) or 'allowed'}"
                f"{' (warnings: ' + '; '.join(warnings) + ')' if warnings else ''} (decision {decision.decision_id})"
            )
            if decision.remediation == "alert":
                # Alert-only violations (missing facts, for instance) change nothing in Git; they stay
                # in the decision log and in the tick's log, and the sensor evaluates again on change.
                context.log.warning(
                    f"ALERT {deployment.app} {deployment.model_version}: {'; '.join(decision.violations)}"
                )
            if decision.remediation not in ("rollback", "review"):
                continue
            run_requests.append(
                dg.RunRequest(
                    run_key=rollback_run_key(
                        deployment.app, deployment.overlay, deployment.model_version, deployment.manifest
                    ),
                    run_config=dg.RunConfig(
                        ops={
                            GITOPS_ROLLBACK_OP: {
                                "config": {
                                    "app": deployment.app,
                                    "deployment": deployment.manifest["metadata"]["name"],
                                    "overlay": deployment.overlay,
                                    "bad_version": deployment.model_version,
                                    "decision_id": decision.decision_id,
                                    "violations": decision.violations,
                                    "mode": "push" if decision.remediation == "rollback" else "branch",
                                }
                            }
                        }
                    ),
                    tags={
                        "rai-pipelines/decision-id": decision.decision_id,
                        "rai-pipelines/app": deployment.app,
                        "rai-pipelines/remediation": decision.remediation,
                        # dagster.yaml limits runs per unique value: one remediation at a time per
                        # deployment (an overlay is one application in one environment).
                        "rai-pipelines/remediation-target": deployment.overlay,
                        # A failed push or render is retried by the daemon (run_retries in dagster.yaml);
                        # the asset marks "no compliant version" as final.
                        "dagster/max_retries": "2",
                    },
                )
            )
        state["gitops_revision"] = revision
        _send_alerts(context, alerts, decisions, verifications)
        if not run_requests:
            allowed = sum(1 for d in decisions if not d.error and not d.violations)
            return dg.SensorResult(
                cursor=json.dumps(state),
                asset_events=observations,
                skip_reason=dg.SkipReason(
                    f"{allowed} of {len(decisions)} deployment(s) comply at GitOps revision {revision[:12]}"
                    + ("; the others are alerts in the decision log" if allowed < len(decisions) else "")
                ),
            )
        return dg.SensorResult(run_requests=run_requests, cursor=json.dumps(state), asset_events=observations)

    return governance_policy_sensor
