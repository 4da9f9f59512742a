"""Asset keys, named once for the assets, jobs, sensors and the demo that refer to them."""

import dagster as dg

from rai_pipelines.core import datasets
from rai_pipelines.core.registry import ModelSpec

COST_LEDGER = dg.AssetKey(datasets.COST_LEDGER)
GOVERNANCE_DECISIONS = dg.AssetKey("governance_decisions")
CATALOGUE_PRICES = dg.AssetKey("catalogue_prices")
MODEL_COSTS = dg.AssetKey(datasets.MODEL_COSTS)
COST_ANOMALIES = dg.AssetKey(datasets.COST_ANOMALIES)
COST_FORECAST = dg.AssetKey(datasets.COST_FORECAST)
FINOPS_RECOMMENDATIONS = dg.AssetKey(datasets.FINOPS_RECOMMENDATIONS)
FINOPS_INPUTS_OF_FACTS = (MODEL_COSTS, COST_ANOMALIES, COST_FORECAST, CATALOGUE_PRICES)
GITOPS_ROLLBACK = dg.AssetKey("gitops_rollback")
# The rollback job's one op, by name: the policy sensor's run config is addressed to it.
GITOPS_ROLLBACK_OP = GITOPS_ROLLBACK.to_python_identifier()


def model_asset_key(spec: ModelSpec, dataset: str) -> dg.AssetKey:
    """A model's own asset (feature snapshot or report), under the model's prefix."""
    return dg.AssetKey([spec.asset_prefix, dataset])


def model_facts_key(spec: ModelSpec) -> dg.AssetKey:
    """A model's governance facts: one asset per model, so one model's failed day stops only its own."""
    return model_asset_key(spec, datasets.GOVERNANCE_FACTS)


def facts_keys(specs) -> list[dg.AssetKey]:
    return [model_facts_key(spec) for spec in specs]


def model_asset_keys(spec: ModelSpec) -> list[dg.AssetKey]:
    """The model's feature snapshot and its reports."""
    explanations = (datasets.EXPLANATION_REPORT,) if spec.explanations is not None else ()
    names = (datasets.FEATURE_SNAPSHOTS, *datasets.MODEL_REPORTS, *explanations)
    return [model_asset_key(spec, name) for name in names]
