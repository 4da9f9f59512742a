"""Hourly prices of a model version's declared serving resources, from the clouds' own catalogues.

A declared `ServingResources` (provider, region, machine or instance type, GPUs, replicas) is priced
by a catalogue client (`prices_gcp.GcpCatalogue` over the Cloud Billing Catalog API,
`prices_aws.AwsCatalogue` over the AWS Price List API) into a `Price`: USD per hour as an exact
Decimal, with one component per catalogue SKU (its id, unit price and quantity), the source and the
date it was fetched. Nothing here ever prices a resource at zero because a SKU or a machine type is
unknown: that is an error (`UnknownPriceError`).

Prices are kept in the lake (`PriceCache`, dataset `catalogue_prices`, partitioned by provider and
fetch date) so that an unreachable catalogue degrades to the newest cached price, reported with its
age, instead of stopping the estimate; with nothing cached it is a clear error naming the endpoint.

`monthly_cost` turns an hourly price into a month of 730 hours (as Infracost does), applying
Compute Engine's sustained-use discounts where they apply; `estimated_cost_per_inference` turns it
into the `estimated_cost_per_inference_usd` fact from the declared throughput.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Literal, Protocol

import pyarrow as pa
import pydantic

from rai_pipelines.core.errors import BadInputError, RaiError
from rai_pipelines.core.lake import Lake

HOURS_PER_MONTH = Decimal(730)  # 365 × 24 / 12, the month Infracost and the clouds' calculators use
DATASET = "catalogue_prices"


def decimal_text(value: Decimal) -> str:
    """A Decimal as plain text without trailing zeros or an exponent (0.04749975, 2, 0.35)."""
    return format(value.normalize(), "f")


class UnknownPriceError(BadInputError):
    """A declared resource the catalogue has no price for (unknown machine type, SKU or region)."""


class CatalogueError(RaiError):
    """The catalogue answered, but not with something usable (refused request, malformed data)."""


class CatalogueUnavailable(RaiError):
    """The catalogue could not be reached (connection refused, timeout, server error, throttling)."""


# -- the declared resources -------------------------------------------------------------------------

_REGION_RE = r"^[a-z]{2,}(-[a-z]+)+-?[0-9]{1,2}$"  # us-east-1, eu-west-1, europe-west4, us-central1
_TYPE_RE = r"^[a-z0-9][a-z0-9.\-]{0,62}$"  # m5.large, g5.2xlarge, n1-standard-1, a2-highgpu-1g
_Type = Annotated[str, pydantic.StringConstraints(pattern=_TYPE_RE)]


class ServingResources(pydantic.BaseModel):
    """What a model version declares it is served on. AWS names an `instance_type` (its GPUs come
    with it and are not declared), GCP a `machine_type` plus the GPUs each replica carries."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True, frozen=True)

    provider: Literal["aws", "gcp"]
    region: Annotated[str, pydantic.StringConstraints(pattern=_REGION_RE, max_length=32)]
    instance_type: _Type | None = None
    machine_type: _Type | None = None
    gpus: Annotated[int, pydantic.Field(ge=0, le=16)] = 0
    gpu_type: _Type | None = None
    replicas: Annotated[int, pydantic.Field(ge=1, le=10_000)]

    @pydantic.model_validator(mode="after")
    def _one_type_per_provider(self) -> ServingResources:
        if self.provider == "aws" and (self.instance_type is None or self.machine_type is not None):
            raise ValueError("an aws serving resource names instance_type (and no machine_type)")
        if self.provider == "gcp" and (self.machine_type is None or self.instance_type is not None):
            raise ValueError("a gcp serving resource names machine_type (and no instance_type)")
        if (self.gpus == 0) != (self.gpu_type is None):
            raise ValueError("gpus and gpu_type go together: both set, or neither")
        if self.provider == "aws" and self.gpus:
            raise ValueError("an EC2 instance type carries its GPUs: gpus and gpu_type are for GCP machine types")
        return self

    @property
    def machine(self) -> str:
        """The instance type (AWS) or machine type (GCP)."""
        return self.instance_type if self.provider == "aws" else self.machine_type  # type: ignore[return-value]

    @property
    def key(self) -> str:
        """What decides the price of one replica; the cache is keyed on it."""
        gpus = f"+{self.gpus}x{self.gpu_type}" if self.gpus else ""
        return f"{self.provider}/{self.region}/{self.machine}{gpus}"


def from_serving(serving, where: str) -> ServingResources:
    """The resources of a registry `Serving` declaration (`core.registry.Serving`: provider, region,
    instance_type — the machine type on GCP —, replicas, gpus, gpu_type)."""
    document = {
        "provider": serving.provider,
        "region": serving.region,
        "instance_type" if serving.provider == "aws" else "machine_type": serving.instance_type,
        "replicas": serving.replicas,
        "gpus": serving.gpus,
        "gpu_type": serving.gpu_type,
    }
    return serving_resources(document, where)


def serving_resources(document: Mapping, where: str) -> ServingResources:
    """A `ServingResources` from a parsed YAML/JSON mapping; bad input names `where` and the field."""
    try:
        return ServingResources.model_validate(dict(document))
    except (pydantic.ValidationError, TypeError) as exc:
        raise BadInputError(f"{where}: invalid serving resources: {exc}") from None


# -- prices -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceComponent:
    """One catalogue SKU in the price of one replica: `quantity` units (vCPUs, GiB, GPUs, instances)
    at `unit_price_usd` per unit-hour. `sustained_use` names the sustained-use discount table that
    applies to it (see `SUSTAINED_USE`), None when none does."""

    sku_id: str
    description: str
    unit: str
    unit_price_usd: Decimal
    quantity: Decimal
    sustained_use: str | None = None

    @property
    def usd_per_hour(self) -> Decimal:
        return self.unit_price_usd * self.quantity


@dataclass(frozen=True)
class Price:
    """The hourly price of a declared serving resource, all replicas included."""

    resources: ServingResources
    components: tuple[PriceComponent, ...]
    source: str
    fetched_on: date
    currency: str = "USD"

    @property
    def usd_per_replica_hour(self) -> Decimal:
        return sum((c.usd_per_hour for c in self.components), Decimal(0))

    @property
    def usd_per_hour(self) -> Decimal:
        return self.usd_per_replica_hour * self.resources.replicas

    def to_document(self) -> dict:
        return {
            "resources": self.resources.model_dump(),
            "key": self.resources.key,
            "components": [
                {
                    **dataclasses.asdict(c),
                    "unit_price_usd": decimal_text(c.unit_price_usd),
                    "quantity": decimal_text(c.quantity),
                }
                for c in self.components
            ],
            "source": self.source,
            "fetched_on": self.fetched_on.isoformat(),
            "currency": self.currency,
            "usd_per_hour": decimal_text(self.usd_per_hour),
        }

    @classmethod
    def from_document(cls, document: Mapping, where: str) -> Price:
        try:
            components = tuple(
                PriceComponent(
                    sku_id=str(c["sku_id"]),
                    description=str(c["description"]),
                    unit=str(c["unit"]),
                    unit_price_usd=Decimal(c["unit_price_usd"]),
                    quantity=Decimal(c["quantity"]),
                    sustained_use=c.get("sustained_use"),
                )
                for c in document["components"]
            )
            price = cls(
                resources=serving_resources(document["resources"], where),
                components=components,
                source=str(document["source"]),
                fetched_on=date.fromisoformat(document["fetched_on"]),
                currency=str(document["currency"]),
            )
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise BadInputError(f"{where}: not a cached catalogue price: {exc!r}") from None
        for c in components:
            if not (
                c.unit_price_usd.is_finite() and c.unit_price_usd > 0 and c.quantity.is_finite() and c.quantity > 0
            ):
                raise BadInputError(f"{where}: SKU {c.sku_id} without a positive price and quantity")
            if c.sustained_use is not None and c.sustained_use not in SUSTAINED_USE:
                raise BadInputError(f"{where}: SKU {c.sku_id} names unknown sustained-use table {c.sustained_use!r}")
        if not components or price.currency != "USD":
            raise BadInputError(f"{where}: a cached catalogue price needs USD components")
        return price

    def with_replicas(self, replicas: int) -> Price:
        return dataclasses.replace(self, resources=self.resources.model_copy(update={"replicas": replicas}))


class Catalogue(Protocol):
    """A cloud's price catalogue: prices one replica of the declared resources, all replicas in `Price`."""

    provider: str
    endpoint: str

    def hourly_price(self, resources: ServingResources) -> Price: ...


def hourly_price(resources: ServingResources, catalogue: Catalogue) -> Price:
    """The hourly price of `resources` (all replicas) from `catalogue`, never zero."""
    if catalogue.provider != resources.provider:
        raise BadInputError(
            f"{resources.key}: a {resources.provider} resource cannot be priced from the {catalogue.provider} catalogue"
        )
    price = catalogue.hourly_price(resources)
    if not price.components or price.usd_per_replica_hour <= 0:  # a catalogue bug must not become a free model
        raise UnknownPriceError(f"{resources.key}: the catalogue at {catalogue.endpoint} gave no positive price")
    return price


# -- sustained use and months -----------------------------------------------------------------------

# Compute Engine's sustained-use discounts: the share of the base rate charged for each incremental
# quarter of the month a resource runs (https://cloud.google.com/compute/docs/sustained-use-discounts,
# "Eligible resources and discount percentages"). N1 (and GPUs attached to N1 VMs) earn up to 30%
# (100/80/60/40% → 70% over a full month), N2/N2D/C2 up to 20%; E2, A2, G2 and the A100/L4 GPUs none.
SUSTAINED_USE: dict[str, tuple[Decimal, Decimal, Decimal, Decimal]] = {
    "n1": (Decimal("1"), Decimal("0.8"), Decimal("0.6"), Decimal("0.4")),
    "n2": (Decimal("1"), Decimal("0.8678"), Decimal("0.733"), Decimal("0.6")),
}


def sustained_use_hours(hours: Decimal, table: str, month_hours: Decimal = HOURS_PER_MONTH) -> Decimal:
    """The hours billed at the base rate for `hours` of use in a month of `month_hours`: each quarter
    of the month is charged at its share of the base rate (N1 full month: 730 h → 511 h, i.e. 70%)."""
    rates = SUSTAINED_USE[table]
    quarter = month_hours / 4
    billed = Decimal(0)
    for i, rate in enumerate(rates):
        used = min(max(hours - quarter * i, Decimal(0)), quarter)
        billed += used * rate
    return billed


def monthly_cost(price: Price, hours: float | int | Decimal = HOURS_PER_MONTH, sustained_use: bool = True) -> Decimal:
    """USD for running all replicas `hours` in a month of 730 hours, with sustained-use discounts on
    the components that earn them (each replica runs the hours, so each earns its own discount)."""
    if isinstance(hours, bool) or not isinstance(hours, int | float | Decimal):
        raise BadInputError(f"monthly hours must be a number, not {type(hours).__name__}")
    hours = Decimal(str(hours)) if isinstance(hours, float) else Decimal(hours)
    if not hours.is_finite() or hours < 0 or hours > HOURS_PER_MONTH:
        raise BadInputError(f"monthly hours must be between 0 and {HOURS_PER_MONTH}, not {hours}")
    total = Decimal(0)
    for component in price.components:
        billed = hours
        if sustained_use and component.sustained_use is not None:
            billed = sustained_use_hours(hours, component.sustained_use)
        total += component.usd_per_hour * billed
    return total * price.resources.replicas


def estimated_cost_per_inference(price_per_hour: Decimal, expected_inferences_per_day: int) -> float:
    """USD per inference: the hourly price of all replicas × 24 over the declared daily throughput."""
    if not isinstance(price_per_hour, Decimal) or not price_per_hour.is_finite() or price_per_hour <= 0:
        raise BadInputError(f"hourly price must be a positive Decimal, not {price_per_hour!r}")
    if isinstance(expected_inferences_per_day, bool) or not isinstance(expected_inferences_per_day, int):
        raise BadInputError(
            f"expected_inferences_per_day must be an integer, not {type(expected_inferences_per_day).__name__}"
        )
    if expected_inferences_per_day <= 0:
        raise BadInputError(f"expected_inferences_per_day must be positive, not {expected_inferences_per_day}")
    return float(price_per_hour * 24 / expected_inferences_per_day)


# -- the cache in the lake --------------------------------------------------------------------------

_CACHE_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("provider", pa.string()),
        ("region", pa.string()),
        ("machine", pa.string()),
        ("fetched_on", pa.date32()),
        ("usd_per_replica_hour", pa.string()),  # exact Decimal text; the document has the breakdown
        ("document", pa.string()),
    ]
)
_PROVIDER_RE = re.compile(r"^(aws|gcp)$")


@dataclass(frozen=True)
class CachedPrice:
    """A price with how old it is: `age_days` 0 when fetched today; `note` says where it came from."""

    price: Price
    age_days: int
    note: str
    from_cache: bool


class PriceCache:
    """Catalogue prices in the lake: dataset `catalogue_prices`, partitions provider=…/date=<fetch date>,
    one row per priced resource (per replica), the full price document (breakdown, source, fetch date)
    in the row. Rewriting a day's partition replaces it whole (the lake's atomic write)."""

    def __init__(self, lake: Lake):
        self.lake = lake

    def _partition(self, provider: str, day: date) -> dict[str, str]:
        return {"provider": provider, "date": day.isoformat()}

    def _read(self, provider: str, day: date) -> pa.Table | None:
        partition = self._partition(provider, day)
        if not self.lake.exists(DATASET, partition):
            return None
        table = self.lake.read_table(DATASET, partition)
        if not table.schema.equals(_CACHE_SCHEMA):
            raise BadInputError(f"{self.lake.uri(DATASET, partition)}: unexpected schema {table.schema}")
        return table

    def store(self, price: Price) -> str:
        """Keep `price` (per replica) under its fetch date, replacing an earlier price of that day."""
        provider, day = price.resources.provider, price.fetched_on
        per_replica = price.with_replicas(1)
        row = {
            "key": [price.resources.key],
            "provider": [provider],
            "region": [price.resources.region],
            "machine": [price.resources.machine],
            "fetched_on": [day],
            "usd_per_replica_hour": [decimal_text(price.usd_per_replica_hour)],
            "document": [json.dumps(per_replica.to_document(), sort_keys=True)],
        }
        new = pa.table(row, schema=_CACHE_SCHEMA)
        old = self._read(provider, day)
        if old is not None:
            keep = [k != price.resources.key for k in old.column("key").to_pylist()]
            new = pa.concat_tables([old.filter(pa.array(keep, pa.bool_())), new])
        return self.lake.write_table(DATASET, self._partition(provider, day), new.sort_by("key"))

    def newest(self, resources: ServingResources, today: date, oldest: date | None = None) -> Price | None:
        """The most recently fetched price of `resources` fetched on or before `today` (and not before
        `oldest`), with the replicas of `resources`; None when there is none."""
        if not _PROVIDER_RE.match(resources.provider):
            raise BadInputError(f"unknown provider {resources.provider!r}")
        days = []
        for partition in self.lake.list_partitions(DATASET, {"provider": resources.provider}):
            try:
                day = date.fromisoformat(partition.get("date", ""))
            except ValueError:
                continue  # not a partition this cache wrote
            if day <= today and (oldest is None or day >= oldest):
                days.append(day)
        for day in sorted(days, reverse=True):
            table = self._read(resources.provider, day)
            if table is None:
                continue
            for key, document in zip(
                table.column("key").to_pylist(), table.column("document").to_pylist(), strict=True
            ):
                if key == resources.key:
                    where = self.lake.uri(DATASET, self._partition(resources.provider, day))
                    return Price.from_document(json.loads(document), where).with_replicas(resources.replicas)
        return None

    def cached_or_fetch(
        self,
        resources: ServingResources,
        fetch: Callable[[ServingResources], Price],
        today: date,
        max_age_days: int,
    ) -> CachedPrice:
        """A price for `resources`: a cached one at most `max_age_days` old; else `fetch`ed from the
        catalogue, stored with `today` as its fetch date; else, when the catalogue is unreachable, the
        newest cached price whatever its age (with the age and the reason in `note`). With nothing
        cached, an unreachable catalogue raises `CatalogueUnavailable`. Unknown SKUs, machine types
        and refused requests are raised as they are, never answered from an old price."""
        if isinstance(max_age_days, bool) or not isinstance(max_age_days, int) or max_age_days < 0:
            raise BadInputError(f"max_age_days must be a non-negative integer, not {max_age_days!r}")
        fresh = self.newest(resources, today, oldest=today - timedelta(days=max_age_days))
        if fresh is not None:
            age = (today - fresh.fetched_on).days
            return CachedPrice(fresh, age, f"cached price fetched on {fresh.fetched_on} ({age} days old)", True)
        try:
            price = fetch(resources)
        except CatalogueUnavailable as exc:
            stale = self.newest(resources, today)
            if stale is None:
                raise CatalogueUnavailable(f"{exc}; and no cached price for {resources.key}") from exc
            age = (today - stale.fetched_on).days
            note = f"catalogue unreachable ({exc}); using the price fetched on {stale.fetched_on} ({age} days old)"
            return CachedPrice(stale, age, note, True)
        if price.resources != resources:
            raise CatalogueError(f"{resources.key}: the catalogue priced {price.resources.key} instead")
        price = dataclasses.replace(price, fetched_on=today)
        self.store(price)
        return CachedPrice(price, 0, f"fetched from {price.source} on {today}", False)
