"""Compute Engine prices from GCP's Cloud Billing Catalog API (`google-cloud-billing`'s
`CloudCatalogClient`: `list_services`, then `list_skus` of Compute Engine, every page).

A machine type is priced from its shape, never from a per-machine SKU (there is none): vCPUs × the
family's on-demand core SKU + GiB × its RAM SKU, plus each attached GPU's own SKU.

How SKUs are matched. The catalogue's category fields select: `category.service_display_name`
"Compute Engine", `resource_family` "Compute", `usage_type` "OnDemand" (so Preemptible/Spot and
Commit1Yr/Commit3Yr SKUs with otherwise identical descriptions are never picked), the region in
`service_regions`, and the family's `resource_group` with the pricing expression's `usage_unit`:

- N1 predefined cores and RAM share the N1-only group "N1Standard"; core and RAM differ in no
  category field, so the unit tells them apart: "h" (per vCPU-hour) is the core SKU, "GiBy.h" the
  RAM SKU. The description is not read.
- Other families (N2, E2, A2, G2) share the groups "CPU" (unit "h") and "RAM" (unit "GiBy.h") with
  every other family, and GPUs share "GPU" (unit "h"): the v1 catalogue has no category field for
  the machine family or the accelerator model. Among the SKUs the category fields select, the family
  is read from the fixed start of the description ("E2 Instance " in "E2 Instance Core running in
  Americas"; "Nvidia Tesla T4 GPU " for a T4), anchored, never searched for as a substring, so
  "N2 Custom Instance Core" or "Nvidia Tesla A100 80GB GPU" are not taken for N2 or the 40 GB A100.

Exactly one SKU must remain for each component; none is `UnknownPriceError`, several is an error
listing their ids, never a silent pick or a zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from rai_pipelines.costs.prices import (
    CatalogueError,
    CatalogueUnavailable,
    Price,
    PriceComponent,
    ServingResources,
    UnknownPriceError,
)

COMPUTE_ENGINE = "Compute Engine"
CORE_UNIT, RAM_UNIT, GPU_UNIT = "h", "GiBy.h", "h"
MAX_PAGES = 400  # the real Compute Engine listing is tens of thousands of SKUs, up to 5,000 a page


@dataclass(frozen=True)
class Family:
    """A machine family's SKU groups, the description start that names it in shared groups (None
    where its group is its own), and its sustained-use discount table (None: not eligible)."""

    core_group: str
    ram_group: str
    description_start: str | None
    sustained_use: str | None


FAMILIES: dict[str, Family] = {
    "n1": Family("N1Standard", "N1Standard", None, "n1"),
    "n2": Family("CPU", "RAM", "N2 Instance ", "n2"),
    "e2": Family("CPU", "RAM", "E2 Instance ", None),
    "a2": Family("CPU", "RAM", "A2 Instance ", None),
    "g2": Family("CPU", "RAM", "G2 Instance ", None),
}


@dataclass(frozen=True)
class Gpu:
    description_start: str
    sustained_use: str | None  # GPUs attached to N1 VMs earn N1's discounts; A100 and L4 none
    n1_counts: tuple[int, ...]  # how many may be attached to an N1 VM (empty: not attachable)


# Accelerator names as `gcloud compute accelerator-types list` gives them.
GPUS: dict[str, Gpu] = {
    "nvidia-tesla-t4": Gpu("Nvidia Tesla T4 GPU ", "n1", (1, 2, 4)),
    "nvidia-tesla-v100": Gpu("Nvidia Tesla V100 GPU ", "n1", (1, 2, 4, 8)),
    "nvidia-tesla-a100": Gpu("Nvidia Tesla A100 GPU ", None, ()),
    "nvidia-l4": Gpu("Nvidia L4 GPU ", None, ()),
}


@dataclass(frozen=True)
class MachineShape:
    vcpus: int
    memory_gib: Decimal
    gpus: int = 0  # accelerators that come with the machine type (A2, G2)
    gpu_type: str | None = None


def _series(family: str, gib_per_vcpu: str, sizes: Iterable[int]) -> dict[str, MachineShape]:
    return {f"{family}-standard-{n}": MachineShape(n, Decimal(gib_per_vcpu) * n) for n in sizes}


# Predefined shapes (vCPUs, memory in GiB — the docs' "GB" is binary), from
# https://cloud.google.com/compute/docs/general-purpose-machines (N1: 3.75 GB per vCPU; N2 and E2:
# 4 GB per vCPU) and https://cloud.google.com/compute/docs/accelerator-optimized-machines (A2, G2).
MACHINE_SHAPES: dict[str, MachineShape] = {
    **_series("n1", "3.75", (1, 2, 4, 8, 16, 32, 64, 96)),
    **_series("n2", "4", (2, 4, 8, 16, 32, 48, 64, 80, 96, 128)),
    **_series("e2", "4", (2, 4, 8, 16, 32)),
    "a2-highgpu-1g": MachineShape(12, Decimal(85), 1, "nvidia-tesla-a100"),
    "a2-highgpu-2g": MachineShape(24, Decimal(170), 2, "nvidia-tesla-a100"),
    "a2-highgpu-4g": MachineShape(48, Decimal(340), 4, "nvidia-tesla-a100"),
    "a2-highgpu-8g": MachineShape(96, Decimal(680), 8, "nvidia-tesla-a100"),
    "g2-standard-4": MachineShape(4, Decimal(16), 1, "nvidia-l4"),
    "g2-standard-8": MachineShape(8, Decimal(32), 1, "nvidia-l4"),
    "g2-standard-12": MachineShape(12, Decimal(48), 1, "nvidia-l4"),
    "g2-standard-16": MachineShape(16, Decimal(64), 1, "nvidia-l4"),
    "g2-standard-24": MachineShape(24, Decimal(96), 2, "nvidia-l4"),
    "g2-standard-32": MachineShape(32, Decimal(128), 1, "nvidia-l4"),
    "g2-standard-48": MachineShape(48, Decimal(192), 4, "nvidia-l4"),
    "g2-standard-96": MachineShape(96, Decimal(384), 8, "nvidia-l4"),
}


def machine_shape(machine_type: str) -> tuple[Family, MachineShape]:
    """The family and shape of a predefined machine type; an unknown one is an error."""
    shape = MACHINE_SHAPES.get(machine_type)
    if shape is None:
        raise UnknownPriceError(
            f"unknown GCP machine type {machine_type!r}: known are the predefined {', '.join(sorted(FAMILIES))} "
            "types listed in rai_pipelines.costs.prices_gcp.MACHINE_SHAPES"
        )
    return FAMILIES[machine_type.split("-", 1)[0]], shape


def money(units: int | str, nanos: int, where: str) -> Decimal:
    """A google.type.Money amount exactly: units + nanos × 10⁻⁹ (both of one sign)."""
    units = int(units)
    if not -999_999_999 <= nanos <= 999_999_999 or (units > 0 and nanos < 0) or (units < 0 and nanos > 0):
        raise CatalogueError(f"{where}: invalid money amount units={units} nanos={nanos}")
    return Decimal(units) + Decimal(nanos).scaleb(-9)


def rate_at(tiers: list[tuple[Decimal, Decimal]], usage: Decimal, where: str) -> Decimal:
    """The unit price of the tier that applies at `usage` units: the last tier starting at or below
    it (tiers ascend by start; usage 0 gives the first tier)."""
    if not tiers:
        raise CatalogueError(f"{where}: SKU without tiered rates")
    starts = [start for start, _ in tiers]
    if starts != sorted(starts) or starts[0] != 0:
        raise CatalogueError(f"{where}: tiered rates must ascend from 0, got starts {starts}")
    applicable = [price for start, price in tiers if start <= usage]
    return applicable[-1]


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class GcpCatalogue:
    """Prices declared GCP serving resources from the Cloud Billing Catalog API.

    `client` is a `google.cloud.billing_v1.CloudCatalogClient`; `connect()` builds one on the REST
    transport. The Compute Engine SKUs are listed once per instance and kept (on-demand Compute ones
    only), so pricing several resources reads the catalogue once. `tier_usage` is the monthly usage
    (in each SKU's unit) whose tier is priced; 0 prices the first tier."""

    provider = "gcp"

    def __init__(
        self,
        client,
        endpoint: str = "https://cloudbilling.googleapis.com",
        timeout: float = 30.0,
        page_size: int = 5000,
        tier_usage: Decimal = Decimal(0),
        today: Callable[[], dt.date] = _utc_today,
    ):
        self.client, self.endpoint, self.timeout, self.page_size = client, endpoint, timeout, page_size
        self.tier_usage, self.today = tier_usage, today
        self._service: str | None = None
        self._skus: list | None = None

    @classmethod
    def connect(cls, endpoint: str | None = None, credentials=None, **kwargs) -> GcpCatalogue:
        """A catalogue over the REST transport; `endpoint` (e.g. http://127.0.0.1:PORT) replaces
        cloudbilling.googleapis.com, `credentials` the application default credentials."""
        from google.api_core.client_options import ClientOptions
        from google.cloud import billing_v1

        options = ClientOptions(api_endpoint=endpoint) if endpoint else None
        client = billing_v1.CloudCatalogClient(transport="rest", client_options=options, credentials=credentials)
        return cls(client, endpoint=endpoint or "https://cloudbilling.googleapis.com", **kwargs)

    # -- reading the catalogue ------------------------------------------------------------------
    def _call(self, what: str, call):
        import requests
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth

        try:
            return call()
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise CatalogueUnavailable(
                f"GCP Cloud Billing Catalog at {self.endpoint} unreachable ({what}): {exc}"
            ) from exc
        except (api.ServerError, api.TooManyRequests) as exc:
            raise CatalogueUnavailable(f"GCP Cloud Billing Catalog at {self.endpoint} failed ({what}): {exc}") from exc
        except (api.GoogleAPICallError, auth.GoogleAuthError) as exc:
            raise CatalogueError(f"GCP Cloud Billing Catalog at {self.endpoint} refused {what}: {exc}") from exc

    def _pages(self, what: str, pager) -> Iterable:
        pages = iter(pager.pages)
        for count in range(MAX_PAGES + 1):
            page = self._call(what, lambda: next(pages, None))
            if page is None:
                return
            if count == MAX_PAGES:
                raise CatalogueError(f"{self.endpoint}: {what} did not end within {MAX_PAGES} pages")
            yield page

    def service_name(self) -> str:
        """Compute Engine's resource name ("services/6F81-5844-456A" in the real catalogue)."""
        if self._service is None:
            from google.cloud import billing_v1

            request = billing_v1.ListServicesRequest(page_size=self.page_size)
            pager = self._call(
                "list_services", lambda: self.client.list_services(request=request, retry=None, timeout=self.timeout)
            )
            found = [
                s.name for page in self._pages("list_services", pager) for s in page.services
                if s.display_name == COMPUTE_ENGINE
            ]  # fmt: skip
            if len(found) != 1:
                raise CatalogueError(f"{self.endpoint}: expected one {COMPUTE_ENGINE!r} service, found {found}")
            self._service = found[0]
        return self._service

    def skus(self) -> list:
        """Compute Engine's on-demand Compute SKUs (every page read)."""
        if self._skus is None:
            from google.cloud import billing_v1

            request = billing_v1.ListSkusRequest(
                parent=self.service_name(), currency_code="USD", page_size=self.page_size
            )
            pager = self._call(
                "list_skus", lambda: self.client.list_skus(request=request, retry=None, timeout=self.timeout)
            )
            self._skus = [
                sku
                for page in self._pages("list_skus", pager)
                for sku in page.skus
                if sku.category.resource_family == "Compute" and sku.category.usage_type == "OnDemand"
            ]
        return self._skus

    # -- matching -------------------------------------------------------------------------------
    def _match(self, region: str, group: str, unit: str, description_start: str | None, what: str):
        found = []
        for sku in self.skus():
            category = sku.category
            if (
                category.service_display_name == COMPUTE_ENGINE
                and category.resource_family == "Compute"
                and category.usage_type == "OnDemand"
                and category.resource_group == group
                and region in sku.service_regions
                and sku.pricing_info
                and sku.pricing_info[-1].pricing_expression.usage_unit == unit
                and (description_start is None or sku.description.startswith(description_start))
            ):
                found.append(sku)
        criteria = f"resource_group {group!r}, usage_unit {unit!r}, OnDemand, region {region}"
        if description_start:
            criteria += f", description starting {description_start!r}"
        if not found:
            raise UnknownPriceError(f"no {what} SKU in the catalogue at {self.endpoint} ({criteria})")
        if len(found) > 1:
            ids = ", ".join(s.sku_id for s in found)
            raise CatalogueError(f"several {what} SKUs match ({criteria}): {ids}; refusing to pick one")
        return found[0]

    def _component(self, sku, quantity: Decimal, sustained_use: str | None) -> PriceComponent:
        where = f"{self.endpoint} SKU {sku.sku_id}"
        expression = sku.pricing_info[-1].pricing_expression  # the timeline's latest entry
        tiers = []
        for tier in expression.tiered_rates:
            price = tier.unit_price
            if price.currency_code != "USD":
                raise CatalogueError(f"{where}: price in {price.currency_code!r}, expected USD")
            start = Decimal(repr(tier.start_usage_amount))
            tiers.append((start, money(price.units, price.nanos, where)))
        unit_price = rate_at(tiers, self.tier_usage, where)
        if unit_price <= 0:
            raise UnknownPriceError(f"{where} ({sku.description!r}) has no positive price; refusing a zero")
        return PriceComponent(sku.sku_id, sku.description, expression.usage_unit, unit_price, quantity, sustained_use)

    def hourly_price(self, resources: ServingResources) -> Price:
        """vCPUs × core SKU + GiB × RAM SKU + GPUs × GPU SKU, per replica; `Price` has all replicas."""
        if resources.provider != "gcp":
            raise UnknownPriceError(f"{resources.key}: not a GCP resource")
        family, shape = machine_shape(resources.machine_type or "")
        region = resources.region
        core = self._match(region, family.core_group, CORE_UNIT, family.description_start, "vCPU")
        ram = self._match(region, family.ram_group, RAM_UNIT, family.description_start, "RAM")
        components = [
            self._component(core, Decimal(shape.vcpus), family.sustained_use),
            self._component(ram, shape.memory_gib, family.sustained_use),
        ]
        gpu_type, gpus = self._accelerators(resources, family, shape)
        if gpus:
            gpu = GPUS[gpu_type]
            sku = self._match(region, "GPU", GPU_UNIT, gpu.description_start, f"{gpu_type} GPU")
            sustained_use = gpu.sustained_use if family is FAMILIES["n1"] else None
            components.append(self._component(sku, Decimal(gpus), sustained_use))
        return Price(
            resources=resources,
            components=tuple(components),
            source=f"GCP Cloud Billing Catalog API {self.service_name()} at {self.endpoint}",
            fetched_on=self.today(),
        )

    @staticmethod
    def _accelerators(resources: ServingResources, family: Family, shape: MachineShape) -> tuple[str | None, int]:
        """The GPUs each replica carries: those built into A2/G2 types (which must be declared as
        they are), or those attached to an N1 VM in a count GCP allows."""
        declared = (resources.gpu_type, resources.gpus)
        if shape.gpus:
            if declared != (shape.gpu_type, shape.gpus):
                raise UnknownPriceError(
                    f"{resources.key}: {resources.machine_type} comes with {shape.gpus} × {shape.gpu_type}; "
                    f"declare gpus: {shape.gpus} and gpu_type: {shape.gpu_type}"
                )
            return declared
        if not resources.gpus:
            return None, 0
        gpu = GPUS.get(resources.gpu_type or "")
        if gpu is None:
            raise UnknownPriceError(f"{resources.key}: unknown GPU type {resources.gpu_type!r} (known: {sorted(GPUS)})")
        if family is not FAMILIES["n1"] or resources.gpus not in gpu.n1_counts:
            raise UnknownPriceError(
                f"{resources.key}: {resources.gpus} × {resources.gpu_type} cannot be attached to "
                f"{resources.machine_type} (attachable to N1 machine types in counts {gpu.n1_counts or 'none'})"
            )
        return declared
