"""The sensors: the policy sensor evaluates every deployed model against the policies whenever the
facts, the GitOps repository or the policies change, and requests a rollback for each violation;
the late-labels sensor re-materialises the days that newly arrived labels belong to; the
restatement sensor rebuilds the ledger days whose billing files a provider rewrote."""

import json
from datetime import date, timedelta

import dagster as dg

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.defs.costs.assets import EXPORT_FINGERPRINT
from rai_pipelines.defs.costs.resources import BillingExportsResource
from rai_pipelines.defs.gitops.resources import GitOpsResource
from rai_pipelines.defs.governance.assets import model_asset_keys
from rai_pipelines.defs.governance.resources import PolicyResource
from rai_pipelines.defs.resources import LakeResource
from rai_pipelines.gitops.git import cached_render, rendered_deployments
from rai_pipelines.governance.decisions import evaluate_deployments, rollback_run_key
from rai_pipelines.governance.facts import ai_models_document, read_all_facts
from rai_pipelines.monitoring.labels import label_partitions, labels_read, match_labels

FACTS_KEY = dg.AssetKey("governance_facts")
LEDGER_KEY = dg.AssetKey("cost_ledger")
DECISIONS_KEY = dg.AssetKey("governance_decisions")

# The decision log as an asset of its own: each evaluation is an observation of it, so the Dagster
# UI shows every decision (allowed, denied, alerted) beside the assets it was made from.
governance_decisions = dg.AssetSpec(
    DECISIONS_KEY,
    group_name="governance",
    kinds={"rego"},
    description="Policy decisions on the deployed models, one observation per evaluation by the policy "
    "sensor; the full records are in the hash-chained decision log ($RAI_HOME/decision_log).",
)


def _observation(record: dict) -> dg.AssetObservation:
    result = record.get("result", {})
    return dg.AssetObservation(
        asset_key=DECISIONS_KEY,
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
        },
    )


def build_policy_sensor(rollback_job, minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    @dg.sensor(
        job=rollback_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Evaluates the Rego policies on each deployed model (its rendered Deployment as input, "
        "governance facts as data.ai_models) and requests a GitOps rollback for every violation.",
    )
    def governance_policy_sensor(
        context: dg.SensorEvaluationContext, lake: LakeResource, gitops: GitOpsResource, policy: PolicyResource
    ):
        latest = context.instance.fetch_materializations(FACTS_KEY, limit=1).records
        if not latest:
            return dg.SkipReason("no governance facts have been materialised yet")
        bundle = policy.bundle()
        state = {
            "facts_storage_id": latest[0].storage_id,
            "gitops_revision": gitops.head(),
            "policy_digest": bundle.digest,
        }
        if context.cursor and json.loads(context.cursor) == state:
            return dg.SkipReason("facts, GitOps revision and policies unchanged since the last evaluation")

        store = lake.lake()
        revision = state["gitops_revision"]
        rendered = cached_render(revision, gitops.overlay_glob)
        if rendered is None:
            with gitops.checkout() as checkout:
                revision = checkout.head
                rendered = rendered_deployments(checkout.path, gitops.overlay_glob, revision)
        deployments, render_failures = rendered
        facts_rows = read_all_facts(store)
        conflicts: list[str] = []
        ai_models_document(facts_rows, conflicts)
        decisions = evaluate_deployments(
            policy.policy_engine(), bundle, deployments, facts_rows, gitops.remote, revision, policy.package
        )
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
        # One lock and one fsync for the whole tick.
        appended = lake.decision_log().append_many(records + [d.record for d in decisions])
        observations = [_observation(r) for r in appended]
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
                            "gitops_rollback": {
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
                        # A failed push or render is retried by the daemon (run_retries in dagster.yaml);
                        # the asset marks "no compliant version" as final.
                        "dagster/max_retries": "2",
                    },
                )
            )
        state["gitops_revision"] = revision
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


def build_late_labels_sensor(
    specs, refresh_job, lookback_days: int = 62, minimum_interval_seconds: int = 60
) -> dg.SensorDefinition:
    """Watches each model's labels files and re-materialises exactly the days that hold requests of
    a labels file whose current version their snapshot did not read. The cursor caches, per file
    version, the days it belongs to (found once, by request id); staleness is checked every tick
    against what each snapshot recorded, so a failed rebuild is requested again."""

    @dg.sensor(
        job=refresh_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Late labels: finds the traffic days that newly arrived labels belong to and re-materialises "
        "those days' feature snapshots, reports and governance facts.",
    )
    def late_labels_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
        store = lake.lake()
        cached = json.loads(context.cursor) if context.cursor else {}
        cursor: dict[str, dict] = {}
        stale: dict[tuple[str, str], list[str]] = {}
        for spec in specs:
            partitions = label_partitions(store, spec)
            if not partitions:
                continue
            horizon = (date.fromisoformat(partitions[-1]["date"]) - timedelta(days=lookback_days)).isoformat()
            recorded: dict[str, dict | None] = {}
            for partition in (p for p in partitions if p["date"] >= horizon):
                key, fingerprint = f"{spec.name}/{partition['date']}", store.fingerprint("labels", partition)
                entry = cached.get(key)
                if entry is None or entry.get("fingerprint") != fingerprint:
                    try:
                        arrival = match_labels(store, spec, partition)
                    except BadInputError as exc:  # the file stays as it is; it is read again once rewritten
                        context.log.error(f"late labels: {exc}")
                        cursor[key] = {"fingerprint": fingerprint, "days": [], "error": str(exc)}
                        continue
                    if arrival.unmatched:
                        window = f"the {spec.label_max_delay_days} days before {arrival.arrival}"
                        context.log.warning(
                            f"{store.uri('labels', partition)}: {arrival.unmatched} of {arrival.rows} labels match "
                            f"no request of {spec.name} in {window}"
                        )
                    entry = {"fingerprint": arrival.fingerprint, "days": list(arrival.days)}
                cursor[key] = entry
                for day in entry["days"]:
                    if day not in recorded:
                        recorded[day] = labels_read(store, spec, day)
                    read = recorded[day]
                    if read is not None and read.get(partition["date"]) != entry["fingerprint"]:
                        stale.setdefault((spec.name, day), []).append(f"{partition['date']}:{entry['fingerprint']}")
        by_name = {spec.name: spec for spec in specs}
        requests = [
            dg.RunRequest(
                run_key=f"late-labels:{model}:{day}:{','.join(versions)}",
                partition_key=day,
                asset_selection=[*model_asset_keys(by_name[model]), FACTS_KEY],
                tags={"rai-pipelines/model": model, "rai-pipelines/labels-arrived": ",".join(versions)},
            )
            for (model, day), versions in sorted(stale.items())
        ]
        return dg.SensorResult(
            run_requests=requests,
            cursor=json.dumps(cursor, sort_keys=True),
            skip_reason=None if requests else "every snapshot has read the current version of its labels",
        )

    return late_labels_sensor


def build_restatement_sensor(job, lookback_days: int = 62, minimum_interval_seconds: int = 300) -> dg.SensorDefinition:
    """Providers rewrite the current (and, until it closes, the previous) month's billing files
    several times a day. Each ledger partition records the digest of the export files it was built
    from; a day whose billing-period files now have another digest is re-materialised. Rebuilding a
    day replaces its partition, so a restatement never double-counts."""

    @dg.sensor(
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Billing restatements: re-materialises the cost ledger (and the day's governance facts) of "
        "every recent day whose billing export files changed since the day was built.",
    )
    def billing_restatement_sensor(context: dg.SensorEvaluationContext, billing: BillingExportsResource):
        built = sorted(context.instance.get_materialized_partitions(LEDGER_KEY))
        if not built:
            return dg.SkipReason("no cost ledger partition has been materialised yet")
        horizon = (date.fromisoformat(built[-1]) - timedelta(days=lookback_days)).isoformat()
        recent = [d for d in built if d >= horizon]
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=LEDGER_KEY, asset_partitions=recent), limit=len(recent) * 4
        ).records
        recorded: dict[str, str | None] = {}
        for record in records:  # newest first: keep each day's latest materialisation
            materialisation = record.asset_materialization
            if materialisation.partition in recorded:
                continue
            value = materialisation.metadata.get(EXPORT_FINGERPRINT)
            value = value.value if value is not None else None
            if isinstance(value, dict):  # a backfill run of several days records each day's digest
                value = value.get(materialisation.partition)
            recorded[materialisation.partition] = value
        requests = []
        for day in recent:
            period = day[:7]
            # Per day: a CUR's digest covers its billing period, a BigQuery export's only the day.
            now = billing.export_fingerprint(date.fromisoformat(day))
            if recorded.get(day) != now:
                requests.append(
                    dg.RunRequest(
                        run_key=f"restated:{day}:{now}",
                        partition_key=day,
                        asset_selection=[LEDGER_KEY, FACTS_KEY],
                        tags={"rai-pipelines/restated-billing-period": period},
                    )
                )
        if not requests:
            return dg.SkipReason(f"the export files of the last {len(recent)} built day(s) are unchanged")
        context.log.info(f"billing restated: rebuilding {', '.join(r.partition_key for r in requests)}")
        return requests

    return billing_restatement_sensor
