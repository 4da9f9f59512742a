"""Governance facts (the policies' data.ai_models) and the GitOps rollback."""

import json

import dagster as dg

from rai_pipelines.core.decision_log import digest
from rai_pipelines.core.errors import BadInputError, RaiError
from rai_pipelines.core.markdown import table
from rai_pipelines.core.registry import ModelSpec, validate_model_version
from rai_pipelines.defs.gitops.resources import GitOpsResource
from rai_pipelines.defs.governance.resources import PolicyResource
from rai_pipelines.defs.partitions import daily_partitions
from rai_pipelines.defs.resources import LakeResource, ModelRegistryResource
from rai_pipelines.gitops.git import redact
from rai_pipelines.governance.decisions import NoCompliantVersion
from rai_pipelines.governance.facts import (
    MODEL_COST_COLUMNS,
    cost_per_inference,
    facts_table,
    model_costs,
    read_all_facts,
    serving_hours,
)
from rai_pipelines.governance.remediation import rollback_model
from rai_pipelines.monitoring.lake_reads import REPORTS, read_snapshot, report_json


def _latest_run_id(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> str | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    )
    return records.records[0].run_id if records.records else None


def model_asset_keys(spec: ModelSpec) -> list[dg.AssetKey]:
    return [dg.AssetKey([spec.asset_prefix, name]) for name in ("feature_snapshots", *REPORTS)]


def build_governance_facts(specs: list[ModelSpec]) -> dg.AssetsDefinition:
    upstream = [dg.AssetKey("cost_ledger")] + [k for s in specs for k in model_asset_keys(s)]

    @dg.asset(
        partitions_def=daily_partitions,
        deps=upstream,
        group_name="governance",
        kinds={"parquet"},
        description="One row per model version and day: fairness, drift, inference count and cost. "
        "The policies read the latest row of each version as data.ai_models.",
    )
    def governance_facts(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        day = context.partition_key
        store = lake.lake()
        ledger = store.read_table("cost_ledger", {"date": day}, columns=list(MODEL_COST_COLUMNS))
        cost = model_costs(ledger, f"cost_ledger {day}")
        run_ids = [context.run.run_id] + [r for k in upstream if (r := _latest_run_id(context.instance, k, day))]
        rows = []
        for spec in specs:
            snapshot = read_snapshot(store, spec, day)
            drift = report_json(store, "drift_report", spec, day)["versions"]
            fairness = report_json(store, "fairness_report", spec, day)["versions"]
            performance = report_json(store, "performance_report", spec, day)["versions"]
            for version, count in snapshot["model_version"].value_counts().sort_index().items():
                validate_model_version(version, f"{spec.name} feature snapshot {day}")
                serving = spec.version(version).serving
                hours = serving_hours(snapshot.loc[snapshot["model_version"] == version, "timestamp"])
                declared = serving.usd_per_hour * serving.replicas * hours
                actual = cost.get((spec.name, version))
                fair = fairness.get(version, {})
                perf = performance.get(version, {})
                low, high = fair.get("fairness_score_ci") or (None, None)
                rows.append(
                    {
                        "date": day,
                        "model_name": spec.name,
                        "model_version": version,
                        "inference_count": int(count),
                        "fairness_applicable": bool(spec.enforced_protected_attributes),
                        "fairness_score": fair.get("fairness_score"),
                        "fairness_worst_attribute": fair.get("worst_attribute"),
                        "fairness_worst_group": fair.get("worst_group"),
                        "fairness_by_attribute": json.dumps(
                            {a["attribute"]: a["ratio"] for a in fair.get("attributes", [])}
                        ),
                        "fairness_score_ci_lower": low,
                        "fairness_score_ci_upper": high,
                        "equalized_odds_ratio": fair.get("equalized_odds_ratio"),
                        "drift_share": drift[version]["drift_share"],
                        "drifted_features": drift[version]["drifted_features"],
                        "drift_max_effect_size": drift[version]["max_effect_size"],
                        "drift_classifier_auc": (drift[version].get("multivariate") or {}).get("auc"),
                        "prediction_drift_p_value": drift[version]["prediction_drift_p_value"],
                        "prediction_drift_effect_size": drift[version]["prediction_drift_effect_size"],
                        "labelled_rows": perf.get("labelled_rows"),
                        "roc_auc": perf.get("roc_auc"),
                        "accuracy": perf.get("accuracy"),
                        "expected_calibration_error": perf.get("expected_calibration_error"),
                        "daily_cost_usd": float(actual) if actual is not None else None,
                        "cost_per_inference_usd": cost_per_inference(actual, int(count)),
                        "serving_hours": hours,
                        "declared_daily_cost_usd": declared,
                        "estimated_cost_per_inference_usd": cost_per_inference(declared, int(count)),
                        "source_run_ids": sorted(set(run_ids)),
                    }
                )
        facts = facts_table(rows)
        uri = store.write_table("governance_facts", {"date": day}, facts)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": facts.num_rows,
                "dagster/uri": uri,
                "facts": dg.MetadataValue.md(
                    table(
                        [
                            "model",
                            "version",
                            "inferences",
                            "fairness",
                            "drift share",
                            "cost/inference",
                            "est. cost/inference",
                        ],
                        [
                            (
                                r["model_name"],
                                r["model_version"],
                                r["inference_count"],
                                r["fairness_score"],
                                r["drift_share"],
                                r["cost_per_inference_usd"],
                                r["estimated_cost_per_inference_usd"],
                            )
                            for r in rows
                        ],
                    )
                ),
            }
        )

    return governance_facts


def review_branch(app: str, bad_version: str) -> str:
    return f"rai-pipelines/rollback/{app}/{bad_version}"


class RollbackConfig(dg.Config):
    """What the policy sensor decided; the asset re-checks all of it before touching Git."""

    app: str
    deployment: str
    overlay: str
    bad_version: str
    decision_id: str
    violations: list[str]  # as the sensor saw them; the asset evaluates again with current facts
    mode: str = "push"  # "push": commit to the GitOps branch; "branch": push a branch for review


@dg.asset(
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
                "type": {"committed": "rollback_commit", "review_branch_pushed": "review_branch"}.get(
                    result.status, "none"
                ),
                "status": result.status,
                "commit": result.commit_sha,
                "restored_version": result.target_version,
                "remote": redact(gitops.remote),
                "branch": result.branch or gitops.branch,
                "considered": result.considered,
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
            "pushed_to_branch": result.branch or gitops.branch,
            "decision_id": config.decision_id,
            "decision_record_digest": record["digest"],
            "diff": dg.MetadataValue.md(f"```diff\n{result.diff}\n```" if result.diff else "(no change)"),
        }
    )


__all__ = ["build_governance_facts", "gitops_rollback", "read_all_facts", "RollbackConfig"]
