"""Recommendations from utilisation telemetry, proposed back to Git: rightsizing of each deployed
version (requests, replicas, instance type, GPUs) priced from the catalogues and pushed as a
branch of the GitOps repository; a tighter cost-per-inference budget proposed to the policy
repository; commitment coverage reported. Never merged: each branch waits for review, with the
gate's verdict on the proposed manifest in its commit message, and is updated in place when the
same recommendation is made again."""

import dataclasses
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pandas as pd

from rai_pipelines.core import datasets
from rai_pipelines.core.errors import BadInputError, GitOpsError
from rai_pipelines.core.markdown import table
from rai_pipelines.core.registry import load_registry
from rai_pipelines.costs.cost_series import read_partitions, version_summaries
from rai_pipelines.costs.prices import PriceCache, UnknownPriceError
from rai_pipelines.costs.recommendations import (
    LEDGER_COLUMNS,
    Recommendation,
    ServingCase,
    ServingProfile,
    Skipped,
    recommend_budget,
    recommend_commitment,
    recommend_serving,
)
from rai_pipelines.costs.serving_prices import serving_price
from rai_pipelines.costs.telemetry import METRICS, EvidenceWindow, combine, read_prometheus_query_range
from rai_pipelines.defs.finops.resources import CatalogueResource, FinOpsResource
from rai_pipelines.defs.gitops.resources import GitOpsResource
from rai_pipelines.defs.governance.resources import PolicyResource
from rai_pipelines.defs.keys import CATALOGUE_PRICES, COST_LEDGER, FINOPS_RECOMMENDATIONS, MODEL_COSTS
from rai_pipelines.defs.resources import LakeResource, ModelRegistryResource
from rai_pipelines.gitops.proposals import edit_policy_data, edit_serving_resources, propose
from rai_pipelines.governance.bundle import PolicyBundle
from rai_pipelines.governance.facts import ai_models_document, read_all_facts
from rai_pipelines.governance.proposal_gate import gate_report
from rai_pipelines.monitoring.lake_reads import traffic_by_version

REPORT = "report.json"


def read_telemetry(root: str, days: list[date], config) -> pd.DataFrame:
    """The saved `query_range` responses of the days (a missing file is a gap, which the evidence's
    coverage shows; it is never filled in)."""
    frames = []
    for day in days:
        for metric in METRICS:
            path = Path(root) / "prometheus" / day.isoformat() / f"{metric}.json"
            if path.is_file():
                scale = config.gpu_utilisation_scale if metric == "gpu_utilisation" else 1.0
                frames.append(read_prometheus_query_range(path, metric, config.labels, scale))
    if config.format == "parquet":
        from rai_pipelines.costs.telemetry import read_parquet_telemetry

        for day in days:
            path = Path(root) / "parquet" / f"{day.isoformat()}.parquet"
            if path.is_file():
                frames.append(read_parquet_telemetry(path, config.labels))
    return combine(frames)


def _ensure_model_data(checkout: Path, relative: str) -> list[str]:
    path = checkout / relative
    if path.exists():
        return []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Thresholds of this model (override the team's and the organisation's).\nthresholds: {}\n")
    return [relative]


def build_finops_recommendations(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=FINOPS_RECOMMENDATIONS,
        partitions_def=partitions_def,
        deps=[MODEL_COSTS, CATALOGUE_PRICES, COST_LEDGER],
        group_name="finops",
        kinds={"git", "prometheus"},
        description="Rightsizing from utilisation telemetry (CPU requests at the 95th percentile and memory at "
        "the peak + 15% as krr does, replicas, a cheaper instance type that still carries the measured "
        "throughput, idle or under-used GPUs), each with its evidence window and monthly savings at 730 h; "
        "pushed as a branch of the GitOps repository (never merged) with the gate's verdict in the commit.",
    )
    def finops_recommendations(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        registry: ModelRegistryResource,
        catalogue: CatalogueResource,
        finops: FinOpsResource,
        gitops: GitOpsResource,
        policy: PolicyResource,
    ) -> dg.MaterializeResult:
        day = date.fromisoformat(context.partition_key)
        store = lake.lake()
        config = finops.config()
        sizing = config.rightsizing
        days = [day - timedelta(days=i) for i in range(sizing.window_days - 1, -1, -1)]
        start = datetime.combine(days[0], time.min, tzinfo=timezone.utc)
        window = EvidenceWindow(
            start, start + timedelta(days=len(days)), timedelta(seconds=config.telemetry.step_seconds)
        )
        telemetry = read_telemetry(finops.telemetry_root, days, config.telemetry)
        catalogues, cache = catalogue.catalogues(), PriceCache(store)
        today = datetime.now(timezone.utc).date()
        made: list[Recommendation] = []
        skipped: list[Skipped] = []
        specs = registry.models()
        for spec in specs.values():
            shapes = sizing.instance_types.get(spec.name)
            try:
                serving_today = traffic_by_version(store, spec, day.isoformat())
            except BadInputError as exc:
                skipped.append(Skipped("replicas", spec.name, None, str(exc)))
                continue
            for version in sorted(serving_today):
                serving = spec.version(version).serving
                if not shapes:
                    skipped.append(Skipped("instance_type", spec.name, version, "no instance types declared"))
                    continue

                def price_of(instance_type: str, serving=serving, where=f"{spec.name} {version}") -> Decimal:
                    candidate = dataclasses.replace(serving, instance_type=instance_type, replicas=1)
                    try:
                        found = serving_price(candidate, where, catalogues, cache, today, config.prices.max_age_days)
                    except UnknownPriceError as exc:
                        raise LookupError(str(exc)) from exc
                    return found.price.usd_per_hour

                profile = ServingProfile(
                    model=spec.name,
                    version=version,
                    instance_type=serving.instance_type,
                    replicas=serving.replicas,
                    min_replicas=sizing.min_replicas.get(spec.name, 1),
                    candidates=shapes,
                )
                case = ServingCase(telemetry, profile, window, price_of, settings=sizing.settings)
                found, missed = recommend_serving(case)
                made += found
                skipped += missed
        summaries = version_summaries(store, days[0], day)
        bundle = policy.bundle()
        limit = bundle.data.get("governance", {}).get("thresholds", {}).get("estimated_cost_per_inference_usd_max")
        if not summaries.empty and limit is not None:
            usd = summaries[summaries["BillingCurrency"] == "USD"]
            for (model, version), rows in usd.groupby(["model_name", "model_version"]):
                per_day = {d: Decimal(str(v)) for d, v in zip(rows["date"], rows["cost_per_inference"], strict=True)
                           if pd.notna(v)}  # fmt: skip
                outcome = recommend_budget(model, version, per_day, days[0], day, Decimal(str(limit)),
                                           margin=sizing.budget_margin)  # fmt: skip
                (made if isinstance(outcome, Recommendation) else skipped).append(outcome)
        if sizing.commitment_discount_rate is not None:
            ledger = read_partitions(store, datasets.COST_LEDGER, days[0], day, list(LEDGER_COLUMNS))
            if ledger is None:
                skipped.append(Skipped("commitment_coverage", None, None, "no cost ledger in the window"))
            else:
                rate = Decimal(str(sizing.commitment_discount_rate))
                outcome = recommend_commitment(ledger.to_pandas(), window.start, window.end, rate)
                (made if isinstance(outcome, Recommendation) else skipped).append(outcome)
        proposals = _propose(context, made, sizing, gitops, finops, policy, bundle, store)
        document = {
            "as_of": day.isoformat(),
            "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
            "recommendations": [{**r.as_dict(), "proposal": proposals.get(r.id)} for r in made],
            "skipped": [dataclasses.asdict(s) for s in skipped],
        }
        uri = store.write_json(datasets.FINOPS_RECOMMENDATIONS, {"date": day.isoformat()}, REPORT, document)
        return dg.MaterializeResult(
            metadata={
                "dagster/uri": uri,
                "recommendations": dg.MetadataValue.md(
                    table(
                        ["kind", "model", "version", "change", "current", "proposed", "USD/month", "proposal"],
                        [
                            (
                                r.kind,
                                r.model,
                                r.version,
                                r.target_field,
                                r.current,
                                r.proposed,
                                r.monthly_savings,
                                (proposals.get(r.id) or {}).get("branch")
                                or (proposals.get(r.id) or {}).get("note", "–"),
                            )
                            for r in made
                        ],
                    )  # fmt: skip
                    if made
                    else "none"
                ),
                "not_recommended": dg.MetadataValue.md(
                    table(
                        ["kind", "model", "version", "why"],
                        [(s.kind, s.model, s.version or "–", s.reason) for s in skipped],
                    )
                    if skipped
                    else "none"
                ),
                "monthly_savings_usd": float(sum((r.monthly_savings for r in made), Decimal(0))),
            }
        )

    return finops_recommendations


def _propose(context, made, sizing, gitops: GitOpsResource, finops: FinOpsResource, policy, bundle, store) -> dict:
    """Push each recommendation as its branch; what happened to each, by id."""
    if not sizing.propose:
        return {r.id: {"note": "proposals switched off (rightsizing.propose: false)"} for r in made}
    engine = policy.policy_engine()
    facts = ai_models_document(read_all_facts(store))
    out: dict[str, dict] = {}
    for rec in made:
        if rec.kind == "commitment_coverage":
            out[rec.id] = {"note": "reported for a purchase decision: a commitment is bought, not committed to Git"}
            continue
        try:
            if rec.target == "gitops":
                overlay = sizing.overlay.format(model=rec.model)
                result = propose(
                    rec,
                    gitops.remote,
                    gitops.branch,
                    edit=lambda checkout, rec=rec, overlay=overlay: edit_serving_resources(checkout, overlay, rec),
                    gate_verdict=lambda checkout, overlay=overlay: gate_report(
                        engine, bundle, [checkout / overlay], facts
                    ),
                    author=gitops.author,
                    token=gitops.token,
                    workdir=gitops.workdir,
                )
            elif finops.policy_remote:
                data = f"{sizing.policy_bundle_path}/governance/models/{rec.model}/data.yaml"
                key = rec.target_field

                def edit(checkout: Path, data=data, key=key, rec=rec) -> list[str]:
                    created = _ensure_model_data(checkout, data)
                    return sorted(set(created + edit_policy_data(checkout, data, key, rec.proposed)))

                def verdict(checkout: Path, rec=rec) -> str:
                    proposed = PolicyBundle.load(checkout / sizing.policy_bundle_path)
                    if policy.registry_dir:
                        proposed = proposed.with_registry(load_registry(policy.registry_dir))
                    with gitops.checkout() as deployed:
                        overlay = deployed.path / sizing.overlay.format(model=rec.model)
                        return gate_report(engine, proposed, [overlay], facts)

                result = propose(rec, finops.policy_remote, finops.policy_branch, edit, verdict, token=None,
                                 workdir=gitops.workdir)  # fmt: skip
            else:
                out[rec.id] = {"note": "no policy repository configured (RAI_POLICY_REMOTE): not proposed"}
                continue
            out[rec.id] = {"branch": result.branch, "commit": result.commit_sha, "status": result.status}
            context.log.info(f"recommendation {rec.id} ({rec.kind} {rec.model} {rec.version}): {result.status}")
        except (GitOpsError, BadInputError) as exc:
            out[rec.id] = {"note": f"not proposed: {exc}"}
            context.log.warning(f"recommendation {rec.id} not proposed: {exc}")
    return out
