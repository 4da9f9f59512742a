"""Governance facts, the policies' data.ai_models (per model: one row per version and day), and the
decision log as an asset of its own."""

import dagster as dg

from rai_pipelines.core import datasets
from rai_pipelines.core.markdown import table
from rai_pipelines.core.registry import ModelSpec
from rai_pipelines.defs.keys import FINOPS_INPUTS_OF_FACTS, GOVERNANCE_DECISIONS, model_asset_keys, model_facts_key
from rai_pipelines.defs.resources import LakeResource
from rai_pipelines.governance.facts import day_facts, facts_table

# The decision log as an asset of its own: each evaluation is an observation of it, so the Dagster
# UI shows every decision (allowed, denied, alerted) beside the assets it was made from.
governance_decisions = dg.AssetSpec(
    GOVERNANCE_DECISIONS,
    group_name="governance",
    kinds={"rego"},
    description="Policy decisions on the deployed models, one observation per evaluation by the policy "
    "sensor; the full records are in the hash-chained decision log ($RAI_HOME/decision_log).",
)


def _latest_run_id(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> str | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    )
    return records.records[0].run_id if records.records else None


def build_governance_facts(spec: ModelSpec, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """A model's facts, from its own reports and the day's FinOps assets (allocated cost, catalogue
    prices, budgets, anomalies): a model whose day failed leaves every other model's facts current,
    and its own facts age (the policies see `facts_age_days`)."""
    upstream = [*FINOPS_INPUTS_OF_FACTS, *model_asset_keys(spec)]

    @dg.asset(
        key=model_facts_key(spec),
        partitions_def=partitions_def,
        deps=upstream,
        group_name="governance",
        kinds={"parquet"},
        tags={"model": spec.name},
        owners=[f"team:{spec.team}"] if spec.team else None,
        description=f"{spec.name}: one row per model version and day: fairness, drift, inference count, cost per "
        "inference (allocated and estimated from the catalogue), budget burn and open cost anomalies. "
        "The policies read the latest row of each version as data.ai_models.",
    )
    def governance_facts(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        day = context.partition_key
        store = lake.lake()
        run_ids = [context.run.run_id] + [r for k in upstream if (r := _latest_run_id(context.instance, k, day))]
        rows = day_facts(store, [spec], day, run_ids)
        facts = facts_table(rows)
        uri = store.write_table(datasets.GOVERNANCE_FACTS, {"model": spec.name, "date": day}, facts)
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
