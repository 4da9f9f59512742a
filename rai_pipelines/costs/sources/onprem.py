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
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.storage import filesystem, scheme_uri
from rai_pipelines.core.yamlfile import read_yaml_mapping
from rai_pipelines.costs.ledger_schema import (
    ATTRIBUTION_TAGS,
    LEDGER_SCHEMA,
    SourceConfig,
    SourceFile,
    SourceKind,
    day_by_day,
    is_focus_unit,
    tag_key,
)
from rai_pipelines.costs.values import decimal_value, utc_instant
from rai_pipelines.costs.witness import CostTotals, DailyTotals, add_total

USAGE_COLUMNS = ("cluster", "node_pool", "resource_id", "usage_start", "usage_end", "quantity", "resource_tags")
COMPONENTS = ("amortised_purchase", "power", "support")


@dataclass(frozen=True)
class NodePool:
    cluster: str
    name: str
    unit: str  # in FOCUS's UnitFormat: "GPU-Hours", "Node-Hours", ...
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


def _non_negative(value, where: str) -> Decimal:
    amount = decimal_value(value, where)
    if amount < 0:
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
            if not is_focus_unit(str(pool["unit"])):
                raise BadInputError(
                    f"{where}.unit: {pool['unit']!r} is not in FOCUS's UnitFormat (time units spelled out: "
                    "'GPU-Hours', 'Node-Hours', 'GB-Months')"
                )
            unknown = sorted(set(pool["rates"]) - set(COMPONENTS))
            if unknown:
                raise BadInputError(f"{where}.rates: unknown component(s) {', '.join(unknown)} (use {COMPONENTS})")
            rates = {c: _non_negative(v, f"{where}.rates.{c}") for c, v in pool["rates"].items()}
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
        begin, finish = (
            utc_instant(start, f"{where}: field usage_start", naive_is_utc=False),
            utc_instant(end, f"{where}: field usage_end", naive_is_utc=False),
        )
        if finish < begin:
            raise BadInputError(f"{where}: usage_end {finish.isoformat()} is before usage_start {begin.isoformat()}")
        labels = {tag_key(k): v for k, v in (tags or []) if v not in (None, "")}
        out.append(
            _Usage(
                row, declared, str(resource), begin, finish, _non_negative(quantity, f"{where}: field quantity"), labels
            )
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
                    "ServiceProviderName": declaration.provider,
                    "HostProviderName": declaration.provider,
                    "ProviderName": declaration.provider,
                    "PublisherName": declaration.provider,
                    "InvoiceIssuerName": declaration.provider,
                    "ServiceName": f"{usage.pool.cluster} {usage.pool.name}",
                    "ServiceCategory": "Compute",
                    "ServiceSubcategory": "Other (Compute)",  # capacity of a node pool, whatever runs on it
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


def onprem_daily_totals(source: SourceFile, declaration: OnPremDeclaration) -> DailyTotals:
    """Cost per day straight from usage and the declared rates, in the declared currency (the
    reconciliation's witness)."""
    totals: DailyTotals = {}
    for usage in _usage(source, declaration):
        per_unit = sum(usage.pool.rates.values(), Decimal(0))
        add_total(totals, usage.start.date().isoformat(), declaration.currency, usage.quantity * per_unit)
    return totals


def onprem_cost_totals(source: SourceFile, declaration: OnPremDeclaration) -> CostTotals:
    """Owned capacity has no list price and no discount: its four costs are the declared cost."""
    totals = onprem_daily_totals(source, declaration)
    return {"BilledCost": totals, "EffectiveCost": totals, "ListCost": totals, "ContractedCost": totals}


@dataclass
class OnPremUsageReader:
    """Measured usage of on-premises or Kubernetes capacity, one Parquet file a day
    (`{root}/date=YYYY-MM-DD/data.parquet`), priced by the rates declared in Git."""

    root: str
    declaration: str  # path of the YAML that declares the node pools' rates

    def __post_init__(self) -> None:
        self.fs, self._base = filesystem(self.root)

    def _path(self, day: date) -> str:
        return f"{self._base}/date={day.isoformat()}/data.parquet"

    def fingerprint(self, day: date) -> list[tuple[str, int, float]]:
        """The usage files of the day's month and the declaration: a restated month or a changed
        rate changes it."""
        first = day.replace(day=1)
        out = []
        for offset in range(31):
            current = first + timedelta(days=offset)
            if current.month != first.month:
                break
            info = self.fs.get_file_info(self._path(current))
            if info.type == pafs.FileType.File:
                out.append((info.path, info.size or 0, info.mtime.timestamp() if info.mtime else 0.0))
        declared = Path(self.declaration).stat()
        return out + [(self.declaration, declared.st_size, declared.st_mtime)]

    def read(self, day: date) -> list[SourceFile]:
        path = self._path(day)
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return []
        uri = scheme_uri(self.root, path)
        with self.fs.open_input_file(path) as f:
            try:
                table = pq.read_table(f)
            except pa.ArrowInvalid as exc:
                raise BadInputError(f"{uri}: not a readable Parquet file: {exc}") from exc
        return [SourceFile(uri, table, first_data_line=1, kind="onprem", context=load_declaration(self.declaration))]


class OnPremUsage(SourceConfig):
    """Measured usage of on-premises or Kubernetes capacity and the Git file declaring its rates."""

    usage_root: str  # {usage_root}/date=YYYY-MM-DD/data.parquet, local or s3://
    declaration: str  # YAML: node pools and their amortised purchase, power and support per unit


SOURCE = SourceKind(
    config=OnPremUsage,
    reader=lambda c: OnPremUsageReader(c.usage_root, c.declaration),
    # The declared rates travel with each usage file (SourceFile.context), read when it is.
    days=day_by_day(lambda source, day: onprem_to_focus(source, source.context, day)),
    daily_totals=lambda source: onprem_daily_totals(source, source.context),
    cost_totals=lambda source: onprem_cost_totals(source, source.context),
)
