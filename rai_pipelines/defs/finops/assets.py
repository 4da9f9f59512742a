"""The FinOps layer's daily assets that the others build on: the catalogue price of every declared
serving resource, and the ledger allocated to model versions (cost per inference). The work is in
plain modules (costs.serving_prices, costs.allocation, governance.finops_inputs)."""

from datetime import date, datetime, timezone

import dagster as dg

from rai_pipelines.core import datasets
from rai_pipelines.core.markdown import table
from rai_pipelines.costs.allocation import ConservationError, allocate_day, write_allocation
from rai_pipelines.costs.prices import PriceCache, decimal_text, monthly_cost
from rai_pipelines.costs.serving_prices import serving_price
from rai_pipelines.defs.finops.resources import CatalogueResource, FinOpsResource
from rai_pipelines.defs.keys import CATALOGUE_PRICES, COST_LEDGER, MODEL_COSTS
from rai_pipelines.defs.resources import LakeResource, ModelRegistryResource
from rai_pipelines.governance.facts import SERVING_PRICES_FILE
from rai_pipelines.governance.finops_inputs import day_usage

CONSERVES = "conserves_money"


def _today() -> date:
    """The wall-clock day: a price is cached under the day it was fetched, whatever partition asks."""
    return datetime.now(timezone.utc).date()


def build_catalogue_prices(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=CATALOGUE_PRICES,
        partitions_def=partitions_def,
        group_name="finops",
        kinds={"aws", "gcp"},
        description="The hourly price of every model version's declared serving resources (instance or machine "
        "type, GPUs, replicas, region) from AWS's Price List API and GCP's Cloud Billing Catalog API, cached in "
        "the lake with the date it was fetched; an unreachable catalogue falls back to the newest cached price "
        "with its age, an unknown type is an error (never a zero).",
    )
    def catalogue_prices(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        registry: ModelRegistryResource,
        catalogue: CatalogueResource,
        finops: FinOpsResource,
    ) -> dg.MaterializeResult:
        store = lake.lake()
        cache = PriceCache(store)
        catalogues = catalogue.catalogues()
        max_age = finops.config().prices.max_age_days
        document: dict[str, dict] = {}
        rows = []
        for spec in registry.models().values():
            for version, declared in spec.versions.items():
                where = f"{spec.name} {version} serving"
                found = serving_price(declared.serving, where, catalogues, cache, _today(), max_age)
                price = found.price
                document.setdefault(spec.name, {})[version] = {
                    "usd_per_hour": decimal_text(price.usd_per_hour),
                    "usd_per_month_730h": decimal_text(monthly_cost(price)),
                    "fetched_on": price.fetched_on.isoformat(),
                    "age_days": found.age_days,
                    "note": found.note,
                    "source": price.source,
                    "price": price.to_document(),
                }
                rows.append(
                    (
                        spec.name,
                        version,
                        price.resources.key,
                        price.resources.replicas,
                        decimal_text(price.usd_per_hour),
                        decimal_text(monthly_cost(price)),
                        f"{price.fetched_on} ({found.age_days} d)",
                    )
                )
                if found.age_days > max_age:
                    context.log.warning(f"{where}: {found.note}")
        uri = store.write_json(datasets.SERVING_PRICES, {"date": context.partition_key}, SERVING_PRICES_FILE, document)
        return dg.MaterializeResult(
            metadata={
                "dagster/uri": uri,
                "prices": dg.MetadataValue.md(
                    table(["model", "version", "resources", "replicas", "USD/h", "USD/month (730 h)", "fetched"], rows)
                ),
                "oldest_price_days": max((v["age_days"] for m in document.values() for v in m.values()), default=0),
            }
        )

    return catalogue_prices


def build_model_costs(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=MODEL_COSTS,
        partitions_def=partitions_def,
        deps=[COST_LEDGER],
        group_name="finops",
        kinds={"duckdb", "parquet"},
        description="The day's ledger allocated to model versions in FOCUS 1.3's allocation columns: direct cost "
        "by attribution tags, shared pools split by the rule declared in Git (requests, GPU-hours, inferences, "
        "even), idle and untagged cost on their own lines; cost per inference, per 1,000 inferences, rolling "
        "7-day and per million tokens (model_cost_summary).",
        check_specs=[
            dg.AssetCheckSpec(
                CONSERVES,
                asset=MODEL_COSTS,
                blocking=True,
                description="For every billing currency, direct + shared + idle + untagged equals the ledger's "
                "total to the cent (an allocation that does not is never published).",
            )
        ],
    )
    def model_costs(
        context: dg.AssetExecutionContext,
        lake: LakeResource,
        registry: ModelRegistryResource,
        finops: FinOpsResource,
    ):
        day = context.partition_key
        store = lake.lake()
        config = finops.config()
        specs = list(registry.models().values())
        usage, notes = day_usage(store, specs, day, config.rightsizing.instance_types)
        try:
            allocation = allocate_day(store, date.fromisoformat(day), config.allocation, usage)
        except ConservationError as broken:
            raise dg.Failure(description=str(broken)) from broken
        uris = write_allocation(store, allocation)
        totals = allocation.totals.to_pylist()
        summary = allocation.summary.to_pylist()
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": allocation.costs.num_rows,
                "dagster/uri": uris[datasets.MODEL_COSTS],
                "ledger_rows": allocation.ledger_rows,
                "rules": config.source,
                "usage_notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in notes) or "none"),
                "totals": dg.MetadataValue.md(
                    table(
                        ["currency", "ledger", "direct", "shared", "idle", "untagged"],
                        [
                            (
                                t["BillingCurrency"],
                                f"{t['ledger_effective_cost']:.2f}",
                                f"{t['direct_cost']:.2f}",
                                f"{t['shared_cost']:.2f}",
                                f"{t['idle_cost']:.2f}",
                                f"{t['untagged_cost']:.2f}",
                            )
                            for t in totals
                        ],
                    )
                ),
                "cost_per_inference": dg.MetadataValue.md(
                    table(
                        ["model", "version", "currency", "cost", "inferences", "per inference", "per 1,000", "7-day"],
                        [
                            (
                                s["model_name"],
                                s["model_version"],
                                s["BillingCurrency"],
                                f"{s['total_cost']:.2f}",
                                s["inferences"] if s["inferences"] is not None else "unknown",
                                _figure(s["cost_per_inference"]),
                                _figure(s["cost_per_1000_inferences"]),
                                _figure(s["rolling_7d_cost_per_inference"]),
                            )
                            for s in summary
                        ],
                    )
                ),
            }
        )
        yield dg.AssetCheckResult(
            check_name=CONSERVES,
            passed=all(t["conserved"] for t in totals),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"currencies": len(totals)},
        )

    return model_costs


def _figure(value) -> str:
    return "unknown" if value is None else f"{value:.6f}"
