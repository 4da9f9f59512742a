"""On-premises and Kubernetes cost: infrastructure whose cost no provider bills line by line.

The cost is declared in Git, per node pool: what a unit of capacity (a GPU-hour, a node-hour)
costs in amortised purchase, power and support. Measured usage (per pod or per node, from the
cluster's metrics) times the declared rates gives FOCUS rows in the same ledger as the cloud bills,
one row per usage record and cost component, attributed by the workload's labels.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pyarrow as pa

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.yamlfile import read_yaml_mapping
from rai_pipelines.costs.sources.aws_cur import ATTRIBUTION_TAGS, LEDGER_SCHEMA, SourceFile, tag_key

USAGE_COLUMNS = ("cluster", "node_pool", "resource_id", "usage_start", "usage_end", "quantity", "resource_tags")
COMPONENTS = ("amortised_purchase", "power", "support")


@dataclass(frozen=True)
class NodePool:
    cluster: str
    name: str
    unit: str  # "GPU-hour", "node-hour", ...
    region: str
    rates: dict[str, Decimal]  # component -> cost per unit


@dataclass(frozen=True)
class OnPremDeclaration:
    source: str
    currency: str
    provider: str
    billing_account: str
    pools: dict[tuple[str, str], NodePool]

    @property
    def digest(self) -> str:
        return hashlib.sha256(Path(self.source).read_bytes()).hexdigest()[:16]


def _decimal(value, where: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise BadInputError(f"{where}: {value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise BadInputError(f"{where}: {value!r} must be a finite, non-negative number")
    return amount


def load_declaration(path: str | Path) -> OnPremDeclaration:
    path = Path(path)
    doc = read_yaml_mapping(path)
    currency = str(doc.get("currency", ""))
    if len(currency) != 3 or not currency.isupper():
        raise BadInputError(f"{path}: currency must be an ISO 4217 code, not {currency!r}")
    pools = {}
    for i, cluster in enumerate(doc.get("clusters") or []):
        for j, pool in enumerate(cluster.get("node_pools") or []):
            where = f"{path}: clusters[{i}].node_pools[{j}]"
            for key in ("name", "unit", "rates"):
                if not pool.get(key):
                    raise BadInputError(f"{where}: missing {key}")
            unknown = sorted(set(pool["rates"]) - set(COMPONENTS))
            if unknown:
                raise BadInputError(f"{where}.rates: unknown component(s) {', '.join(unknown)} (use {COMPONENTS})")
            rates = {c: _decimal(v, f"{where}.rates.{c}") for c, v in pool["rates"].items()}
            key = (str(cluster["name"]), str(pool["name"]))
            if key in pools:
                raise BadInputError(f"{where}: node pool {key[1]} of cluster {key[0]} is declared twice")
            pools[key] = NodePool(key[0], key[1], str(pool["unit"]), str(cluster.get("region", "")), rates)
    if not pools:
        raise BadInputError(f"{path}: declares no node pool")
    return OnPremDeclaration(
        str(path),
        currency,
        str(doc.get("provider", "On-premises")),
        str(doc.get("billing_account", "on-premises")),
        pools,
    )


def _utc(value, where: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise BadInputError(f"{where}: {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise BadInputError(f"{where}: {value!r} has no time zone")
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class _Usage:
    row: int
    pool: NodePool
    resource_id: str
    start: datetime
    end: datetime
    quantity: Decimal
    tags: dict[str, str]


def _usage(source: SourceFile, declaration: OnPremDeclaration) -> list[_Usage]:
    missing = [c for c in USAGE_COLUMNS if c not in source.table.column_names]
    if missing:
        raise BadInputError(f"{source.uri}: missing usage column(s) {', '.join(missing)}")
    columns = [source.table.column(c).to_pylist() for c in USAGE_COLUMNS]
    out = []
    for row, (cluster, pool, resource, start, end, quantity, tags) in zip(
        source.row_numbers(), zip(*columns, strict=True), strict=True
    ):
        where = f"{source.uri} row {row}"
        declared = declaration.pools.get((str(cluster), str(pool)))
        if declared is None:
            raise BadInputError(
                f"{where}: node pool {pool!r} of cluster {cluster!r} has no declared cost in {declaration.source}"
            )
        begin, finish = _utc(start, f"{where}: field usage_start"), _utc(end, f"{where}: field usage_end")
        if finish < begin:
            raise BadInputError(f"{where}: usage_end {finish.isoformat()} is before usage_start {begin.isoformat()}")
        labels = {tag_key(k): v for k, v in (tags or []) if v not in (None, "")}
        out.append(
            _Usage(row, declared, str(resource), begin, finish, _decimal(quantity, f"{where}: field quantity"), labels)
        )
    return out


def _month(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, 1, tzinfo=timezone.utc)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def onprem_to_focus(source: SourceFile, declaration: OnPremDeclaration, day: date) -> pa.Table:
    """FOCUS rows of `day` (by the UTC date the usage started): one per usage record and component."""
    rows = []
    for usage in _usage(source, declaration):
        if usage.start.date() != day:
            continue
        period_start, period_end = _month(usage.start.date())
        for component, rate in sorted(usage.pool.rates.items()):
            cost = (usage.quantity * rate).quantize(Decimal("1e-12"))
            attribution = {
                column: next((usage.tags[k] for k in keys if k in usage.tags), None)
                for column, keys in ATTRIBUTION_TAGS.items()
            }
            row_hash = hashlib.sha256(
                f"{source.uri}:{usage.row}:{component}:{usage.quantity}:{rate}".encode()
            ).hexdigest()
            rows.append(
                {
                    "BillingAccountId": declaration.billing_account,
                    "BillingAccountName": declaration.billing_account,
                    "BillingCurrency": declaration.currency,
                    "BillingPeriodStart": period_start,
                    "BillingPeriodEnd": period_end,
                    "ChargePeriodStart": usage.start,
                    "ChargePeriodEnd": usage.end,
                    "ChargeCategory": "Usage",
                    "ChargeFrequency": "Usage-Based",
                    "ChargeDescription": f"{usage.pool.unit} of {usage.pool.cluster}/{usage.pool.name}: "
                    f"{component.replace('_', ' ')}",
                    "BilledCost": cost,
                    "EffectiveCost": cost,
                    "ListCost": cost,
                    "ContractedCost": cost,
                    "ListUnitPrice": rate,
                    "ContractedUnitPrice": rate,
                    "PricingQuantity": usage.quantity,
                    "PricingUnit": usage.pool.unit,
                    "PricingCategory": "Standard",
                    "ConsumedQuantity": usage.quantity,
                    "ConsumedUnit": usage.pool.unit,
                    "ProviderName": declaration.provider,
                    "PublisherName": declaration.provider,
                    "InvoiceIssuerName": declaration.provider,
                    "ServiceName": f"{usage.pool.cluster} {usage.pool.name}",
                    "ServiceCategory": "Compute",
                    "RegionId": usage.pool.region or None,
                    "RegionName": usage.pool.region or None,
                    "ResourceId": usage.resource_id,
                    "SkuId": f"{usage.pool.cluster}/{usage.pool.name}/{component}",
                    "Tags": json.dumps(dict(sorted(usage.tags.items()))),
                    "x_SourceProvider": "onprem",
                    "x_SourceUri": source.uri,
                    "x_SourceRowNumber": usage.row,
                    "x_SourceRowHash": row_hash,
                    "x_LineItemType": component,
                    **attribution,
                }
            )
    return pa.Table.from_pylist(rows, schema=LEDGER_SCHEMA)


def onprem_daily_totals(source: SourceFile, declaration: OnPremDeclaration) -> dict[str, Decimal]:
    """Cost per day straight from usage and the declared rates (the reconciliation's witness)."""
    totals: dict[str, Decimal] = {}
    for usage in _usage(source, declaration):
        key = usage.start.date().isoformat()
        per_unit = sum(usage.pool.rates.values(), Decimal(0))
        totals[key] = totals.get(key, Decimal(0)) + usage.quantity * per_unit
    return totals
