"""Prices of declared serving resources from the clouds' catalogues, through the real clients
(`google-cloud-billing`'s CloudCatalogClient on its REST transport, boto3's `pricing` client) talking
to loopback servers that answer in each API's documented shape (rai_pipelines/demo/catalogue_servers.py).

The prices below are the fixtures' figures, modelled on the public on-demand list prices (GCP
us-central1 "Americas" SKUs, AWS eu-west-1); every expected figure is worked out by hand in a comment.
"""

from __future__ import annotations

import json
import socket
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pytest
from google.auth.credentials import AnonymousCredentials

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.lake import Lake
from rai_pipelines.core.registry import Serving
from rai_pipelines.costs.prices import (
    CatalogueError,
    CatalogueUnavailable,
    PriceCache,
    ServingResources,
    UnknownPriceError,
    estimated_cost_per_inference,
    from_serving,
    hourly_price,
    monthly_cost,
    serving_resources,
    sustained_use_hours,
)
from rai_pipelines.costs.prices_aws import AwsCatalogue
from rai_pipelines.costs.prices_gcp import GcpCatalogue, money, rate_at
from rai_pipelines.demo.catalogue_servers import (
    COMPUTE_ENGINE_ID,
    AwsPriceListServer,
    GcpCatalogServer,
    ec2_product,
    gcp_service,
    gcp_sku,
    unreachable_endpoint,
)

AMERICAS = ["us-central1", "us-east1", "us-west2"]
N1_CORE, N1_RAM, T4 = "2E27-4F75-95CD", "6C71-E2D4-2C6E", "0788-4B57-1A3C"

# Decoys first: a client that reads only the first page, or matches on descriptions, picks them.
GCP_SKUS = [
    gcp_sku("DEC1-PRE-0001", "N1 Predefined Instance Core running in Americas", "N1Standard", "Preemptible",
            AMERICAS, "h", [(0, 0, 6_655_000)]),
    gcp_sku("DEC2-CUD-0001", "N1 Predefined Instance Core running in Americas", "CPU", "Commit1Yr",
            AMERICAS, "h", [(0, 0, 19_915_000)]),
    gcp_sku("DEC3-NL-00001", "N1 Predefined Instance Core running in Netherlands", "N1Standard", "OnDemand",
            ["europe-west4"], "h", [(0, 0, 34_806_000)]),
    gcp_sku("DEC4-N2C-0001", "N2 Custom Instance Core running in Americas", "CPU", "OnDemand",
            ["us-central1"], "h", [(0, 0, 33_174_000)]),
    gcp_sku("DEC5-SPOT-001", "Nvidia Tesla T4 GPU attached to Spot Preemptible VMs running in Americas", "GPU",
            "Preemptible", ["us-central1"], "h", [(0, 0, 110_000_000)]),
    gcp_sku("DEC6-A80-0001", "Nvidia Tesla A100 80GB GPU running in Americas", "GPU", "OnDemand",
            ["us-central1"], "h", [(0, 3, 928_280_000)]),
    gcp_sku("DEC7-PD-00001", "Storage PD Capacity", "PDStandard", "OnDemand", ["us-central1"], "GiBy.mo",
            [(0, 0, 40_000_000)], resource_family="Storage"),
    gcp_sku("ZERO-CORE-001", "N1 Predefined Instance Core running in Northern Virginia", "N1Standard", "OnDemand",
            ["us-east4"], "h", [(0, 0, 0)]),
    gcp_sku("ZERO-RAM-0001", "N1 Predefined Instance Ram running in Northern Virginia", "N1Standard", "OnDemand",
            ["us-east4"], "GiBy.h", [(0, 0, 4_763_000)]),
    # The on-demand SKUs: us-west2 has N1 RAM but only decoy N1 cores.
    gcp_sku(N1_CORE, "N1 Predefined Instance Core running in Americas", "N1Standard", "OnDemand",
            ["us-central1", "us-east1"], "h", [(0, 0, 31_611_000)]),
    gcp_sku(N1_RAM, "N1 Predefined Instance Ram running in Americas", "N1Standard", "OnDemand",
            AMERICAS, "GiBy.h", [(0, 0, 4_237_000)]),
    gcp_sku("CF4E-A0C7-E3BF", "E2 Instance Core running in Americas", "CPU", "OnDemand", AMERICAS, "h",
            [(0, 0, 21_811_000)]),
    gcp_sku("F449-33EC-A5EF", "E2 Instance Ram running in Americas", "RAM", "OnDemand", AMERICAS, "GiBy.h",
            [(0, 0, 2_923_000)]),
    gcp_sku("0C5C-D8E4-38C1", "N2 Instance Core running in Americas", "CPU", "OnDemand", AMERICAS, "h",
            [(0, 0, 31_611_000)]),
    gcp_sku("8A2B-6E1F-2C3D", "N2 Instance Ram running in Americas", "RAM", "OnDemand", AMERICAS, "GiBy.h",
            [(0, 0, 4_237_000)]),
    gcp_sku("A2C0-0000-0001", "A2 Instance Core running in Americas", "CPU", "OnDemand", AMERICAS, "h",
            [(0, 0, 31_611_000)]),
    gcp_sku("A2R0-0000-0001", "A2 Instance Ram running in Americas", "RAM", "OnDemand", AMERICAS, "GiBy.h",
            [(0, 0, 4_237_000)]),
    gcp_sku(T4, "Nvidia Tesla T4 GPU running in Americas", "GPU", "OnDemand", AMERICAS, "h",
            [(0, 0, 350_000_000)]),
    gcp_sku("A100-0000-0001", "Nvidia Tesla A100 GPU running in Americas", "GPU", "OnDemand", AMERICAS, "h",
            [(0, 2, 933_908_000)]),
]  # fmt: skip
GCP_SERVICES = [
    gcp_service("95FF-2EF5-5EA1", "Cloud Storage"),
    gcp_service("24E6-581D-38E5", "BigQuery"),
    gcp_service("152E-C115-5142", "Cloud Run"),
    gcp_service(COMPUTE_ENGINE_ID, "Compute Engine"),
    gcp_service("C7E2-9256-1C43", "Vertex AI"),
]
PAGE = 4  # the fake catalogue's largest page, so every listing takes several pages


def gcp(machine_type: str, region: str = "us-central1", replicas: int = 1, **gpus) -> ServingResources:
    return ServingResources(provider="gcp", region=region, machine_type=machine_type, replicas=replicas, **gpus)


def aws(instance_type: str, region: str = "eu-west-1", replicas: int = 1, **gpus) -> ServingResources:
    return ServingResources(provider="aws", region=region, instance_type=instance_type, replicas=replicas, **gpus)


@pytest.fixture
def gcp_server():
    with GcpCatalogServer(GCP_SERVICES, GCP_SKUS, max_page_size=PAGE) as server:
        yield server


@pytest.fixture
def gcp_catalogue(gcp_server):
    return GcpCatalogue.connect(gcp_server.endpoint, credentials=AnonymousCredentials(), timeout=5)


IRELAND = "EU (Ireland)"
AWS_PRODUCTS = [
    ec2_product("WIN0000000001", "m5.large", "eu-west-1", IRELAND, "0.1990000000", operating_system="Windows"),
    ec2_product("DED0000000001", "m5.large", "eu-west-1", IRELAND, "0.1180000000", tenancy="Dedicated"),
    ec2_product("SQL0000000001", "m5.large", "eu-west-1", IRELAND, "0.5870000000", pre_installed_sw="SQL Std"),
    ec2_product("UCR0000000001", "m5.large", "eu-west-1", IRELAND, "0.1070000000",
                capacity_status="UnusedCapacityReservation"),
    ec2_product("ACR0000000001", "m5.large", "eu-west-1", IRELAND, "0.0000000000",
                capacity_status="AllocatedCapacityReservation"),
    ec2_product("USE0000000001", "m5.large", "us-east-1", "US East (N. Virginia)", "0.0960000000"),
    ec2_product("DUP0000000001", "c5.xlarge", "eu-west-1", IRELAND, "0.1920000000", vcpu=4),
    ec2_product("DUP0000000002", "c5.xlarge", "eu-west-1", IRELAND, "0.1930000000", vcpu=4),
    ec2_product("G5X0000000001", "g5.2xlarge", "eu-west-1", IRELAND, "1.3620000000", vcpu=8, memory="32 GiB", gpu=1),
    ec2_product("M5L0000000001", "m5.large", "eu-west-1", IRELAND, "0.1070000000"),
]  # fmt: skip


@pytest.fixture
def aws_server():
    with AwsPriceListServer(AWS_PRODUCTS, scan_page=3) as server:
        yield server


def aws_catalogue(endpoint: str, **kwargs) -> AwsCatalogue:
    return AwsCatalogue.connect(endpoint, aws_access_key_id="testing", aws_secret_access_key="testing", **kwargs)


# -- GCP ----------------------------------------------------------------------------------------------


def test_n1_standard_1_worked_example_with_sustained_use(gcp_server, gcp_catalogue):
    price = hourly_price(gcp("n1-standard-1"), gcp_catalogue)
    # vCPU 0.031611 × 1 + RAM 0.004237 × 3.75 GiB = 0.031611 + 0.01588875 = 0.04749975 USD/h,
    # which GCP's price list rounds to 0.0475.
    assert price.usd_per_hour == Decimal("0.04749975")
    assert price.usd_per_hour.quantize(Decimal("0.0001")) == Decimal("0.0475")
    assert [(c.sku_id, c.unit, c.unit_price_usd, c.quantity) for c in price.components] == [
        (N1_CORE, "h", Decimal("0.031611"), Decimal(1)),
        (N1_RAM, "GiBy.h", Decimal("0.004237"), Decimal("3.75")),
    ]
    assert COMPUTE_ENGINE_ID in price.source and gcp_server.endpoint in price.source
    # A full month of 730 h under N1's sustained use: 182.5 h each at 100%, 80%, 60%, 40% = 511 h
    # billed, 70% of 730. 0.04749975 × 511 = 24.27237225 USD, i.e. 0.033249825 USD/h ≈ 0.03325.
    month = monthly_cost(price)
    assert month == Decimal("24.27237225")
    assert (month / 730).quantize(Decimal("0.00001")) == Decimal("0.03325")
    # Without the discount: 0.04749975 × 730 = 34.6748175.
    assert monthly_cost(price, sustained_use=False) == Decimal("34.6748175")

    # Both listings were followed to their last page, asking for USD.
    services = [r for r in gcp_server.requests if r["path"] == "/v1/services"]
    skus = [r for r in gcp_server.requests if r["path"] == f"/v1/services/{COMPUTE_ENGINE_ID}/skus"]
    assert len(services) == -(-len(GCP_SERVICES) // PAGE) and "pageToken" in services[-1]["query"]
    assert len(skus) == -(-len(GCP_SKUS) // PAGE) and all(r["query"]["currencyCode"] == ["USD"] for r in skus)
    assert ["pageToken" in r["query"] for r in skus] == [False] + [True] * (len(skus) - 1)


def test_decoys_with_the_n1_description_are_not_picked(gcp_catalogue):
    # us-west2 has only the Preemptible and Commit1Yr "N1 Predefined Instance Core" SKUs: no price.
    with pytest.raises(UnknownPriceError, match="no vCPU SKU.*'N1Standard'.*OnDemand.*us-west2"):
        hourly_price(gcp("n1-standard-1", region="us-west2"), gcp_catalogue)
    # europe-west4's on-demand N1 core is not offered in us-central1, and vice versa.
    with pytest.raises(UnknownPriceError, match="no RAM SKU.*europe-west4"):
        hourly_price(gcp("n1-standard-1", region="europe-west4"), gcp_catalogue)
    # A zero-priced SKU is refused, never used.
    with pytest.raises(UnknownPriceError, match="ZERO-CORE-001.*refusing a zero"):
        hourly_price(gcp("n1-standard-1", region="us-east4"), gcp_catalogue)


def test_n1_with_a_t4_is_exact_in_decimal(gcp_catalogue):
    price = hourly_price(gcp("n1-standard-4", replicas=2, gpus=1, gpu_type="nvidia-tesla-t4"), gcp_catalogue)
    # Per replica: 4 × 0.031611 + 15 × 0.004237 + 1 × 0.35 = 0.126444 + 0.063555 + 0.35 = 0.539999;
    # two replicas 1.079998 exactly (in binary floats the sum is 1.0799980000000002).
    assert price.usd_per_replica_hour == Decimal("0.539999")
    assert price.usd_per_hour == Decimal("1.079998")
    gpu = price.components[-1]
    assert (gpu.sku_id, gpu.unit_price_usd, gpu.quantity, gpu.sustained_use) == (T4, Decimal("0.35"), 1, "n1")


def test_a2_with_its_built_in_a100_and_not_the_80gb_card(gcp_catalogue):
    price = hourly_price(gcp("a2-highgpu-1g", gpus=1, gpu_type="nvidia-tesla-a100"), gcp_catalogue)
    # 12 × 0.031611 + 85 × 0.004237 + 2.933908 = 0.379332 + 0.360145 + 2.933908 = 3.673385 USD/h
    # (units 2 + nanos 933908000 for the A100, not the 80 GB card's 3.92828).
    assert price.usd_per_hour == Decimal("3.673385")
    assert price.components[-1].sku_id == "A100-0000-0001"
    assert all(c.sustained_use is None for c in price.components)  # A2 and A100 earn none
    with pytest.raises(UnknownPriceError, match="comes with 1 × nvidia-tesla-a100"):
        hourly_price(gcp("a2-highgpu-1g"), gcp_catalogue)


def test_e2_earns_no_sustained_use_and_n2_its_own_table(gcp_catalogue):
    e2 = hourly_price(gcp("e2-standard-2"), gcp_catalogue)
    # 2 × 0.021811 + 8 × 0.002923 = 0.043622 + 0.023384 = 0.067006; a month: × 730 = 48.91438.
    assert e2.usd_per_hour == Decimal("0.067006")
    assert monthly_cost(e2) == monthly_cost(e2, sustained_use=False) == Decimal("48.91438")
    n2 = hourly_price(gcp("n2-standard-2"), gcp_catalogue)
    # 2 × 0.031611 + 8 × 0.004237 = 0.063222 + 0.033896 = 0.097118 (not the N2 Custom core decoy);
    # a month billed 182.5 × (1 + 0.8678 + 0.733 + 0.6) = 584.146 h: 0.097118 × 584.146 = 56.731091228.
    assert n2.usd_per_hour == Decimal("0.097118")
    assert n2.components[0].sku_id == "0C5C-D8E4-38C1"
    assert monthly_cost(n2) == Decimal("56.731091228")


def test_sustained_use_accrues_by_quarter_of_the_month():
    assert sustained_use_hours(Decimal("182.5"), "n1") == Decimal("182.5")  # the first quarter at 100%
    assert sustained_use_hours(Decimal(365), "n1") == Decimal("328.5")  # 182.5 + 182.5 × 0.8
    assert sustained_use_hours(Decimal(730), "n1") == Decimal(511)  # 70% of the month
    assert sustained_use_hours(Decimal(0), "n2") == 0


def test_monthly_hours_are_bounded(gcp_catalogue):
    price = hourly_price(gcp("e2-standard-2"), gcp_catalogue)
    assert monthly_cost(price, hours=100) == Decimal("6.7006")  # 0.067006 × 100
    for bad in (-1, 731, float("nan"), True, "730"):
        with pytest.raises(BadInputError, match="monthly hours"):
            monthly_cost(price, hours=bad)


def test_tiered_rates_take_the_tier_that_applies(gcp_server):
    e2_tiered = gcp_sku("CF4E-A0C7-E3BF", "E2 Instance Core running in Americas", "CPU", "OnDemand",
                        AMERICAS, "h", [(0, 0, 21_811_000), (500, 0, 20_000_000)])  # fmt: skip
    gcp_server.skus = [e2_tiered if s["skuId"] == "CF4E-A0C7-E3BF" else s for s in GCP_SKUS]
    first = GcpCatalogue.connect(gcp_server.endpoint, credentials=AnonymousCredentials())
    assert hourly_price(gcp("e2-standard-2"), first).usd_per_hour == Decimal("0.067006")
    beyond = GcpCatalogue.connect(gcp_server.endpoint, credentials=AnonymousCredentials(), tier_usage=Decimal(600))
    # 2 × 0.02 (the tier from 500 units) + 8 × 0.002923 = 0.04 + 0.023384 = 0.063384.
    assert hourly_price(gcp("e2-standard-2"), beyond).usd_per_hour == Decimal("0.063384")
    tiers = [(Decimal(0), Decimal("0.5")), (Decimal(10), Decimal("0.4"))]
    assert [rate_at(tiers, Decimal(u), "t") for u in (0, 9, 10, 11)] == [Decimal("0.5")] * 2 + [Decimal("0.4")] * 2
    with pytest.raises(CatalogueError, match="ascend from 0"):
        rate_at(list(reversed(tiers)), Decimal(0), "t")


def test_money_is_units_plus_nanos_exactly():
    assert money("1", 234_567_891, "m") == Decimal("1.234567891")
    assert money(0, 31_611_000, "m") == Decimal("0.031611")
    assert money("-2", -500_000_000, "m") == Decimal("-2.5")
    for units, nanos in ((1, -1), (-1, 1), (0, 1_000_000_000)):
        with pytest.raises(CatalogueError, match="invalid money"):
            money(units, nanos, "m")


def test_unknown_machine_and_gpu_types_are_errors_not_zero(gcp_catalogue):
    for machine in ("n1-standard-3", "c3-standard-4", "n1-highmem-2"):
        with pytest.raises(UnknownPriceError, match=f"unknown GCP machine type '{machine}'"):
            hourly_price(gcp(machine), gcp_catalogue)
    with pytest.raises(UnknownPriceError, match="unknown GPU type 'nvidia-h100'"):
        hourly_price(gcp("n1-standard-4", gpus=1, gpu_type="nvidia-h100"), gcp_catalogue)
    with pytest.raises(UnknownPriceError, match="cannot be attached to e2-standard-2"):
        hourly_price(gcp("e2-standard-2", gpus=1, gpu_type="nvidia-tesla-t4"), gcp_catalogue)
    with pytest.raises(UnknownPriceError, match="3 × nvidia-tesla-t4 cannot be attached"):
        hourly_price(gcp("n1-standard-4", gpus=3, gpu_type="nvidia-tesla-t4"), gcp_catalogue)
    with pytest.raises(BadInputError, match="cannot be priced from the gcp catalogue"):
        hourly_price(aws("m5.large"), gcp_catalogue)


# -- AWS ----------------------------------------------------------------------------------------------


def test_aws_on_demand_m5_large_worked_example(aws_server):
    catalogue = aws_catalogue(aws_server.endpoint)
    price = hourly_price(aws("m5.large", replicas=3), catalogue)
    # The one Linux / Shared / NA / Used product: 0.107 USD/h (the Windows, Dedicated, SQL Std,
    # capacity-reservation and us-east-1 rows and the Reserved term's 0.001 are not read);
    # 3 replicas: 0.321 USD/h; a 730-hour month: 0.321 × 730 = 234.33 USD, no sustained use on AWS.
    assert price.usd_per_hour == Decimal("0.321")
    (component,) = price.components
    assert (component.sku_id, component.unit, component.unit_price_usd) == (
        "M5L0000000001.JRTCKXETXF.6YS6EN2CT7",
        "Hrs",
        Decimal("0.107"),
    )
    assert monthly_cost(price) == monthly_cost(price, sustained_use=False) == Decimal("234.33")
    calls = aws_server.requests
    assert {c["target"] for c in calls} == {"AWSPriceListService.GetProducts"}
    assert {(f["Type"], f["Field"], f["Value"]) for f in calls[0]["body"]["Filters"]} == {
        ("TERM_MATCH", "instanceType", "m5.large"),
        ("TERM_MATCH", "location", "EU (Ireland)"),
        ("TERM_MATCH", "operatingSystem", "Linux"),
        ("TERM_MATCH", "tenancy", "Shared"),
        ("TERM_MATCH", "preInstalledSw", "NA"),
        ("TERM_MATCH", "capacitystatus", "Used"),
    }
    # The product is on the last of 4 pages (3 products scanned per call): NextToken was followed.
    assert len(calls) == 4 and ["NextToken" in c["body"] for c in calls] == [False, True, True, True]


def test_aws_gpus_come_with_the_instance_type(aws_server):
    catalogue = aws_catalogue(aws_server.endpoint)
    price = hourly_price(aws("g5.2xlarge"), catalogue)
    assert price.usd_per_hour == Decimal("1.362")  # the fixture's g5.2xlarge (one A10G), eu-west-1
    with pytest.raises(BadInputError, match="an EC2 instance type carries its GPUs"):
        serving_resources({"provider": "aws", "region": "eu-west-1", "instance_type": "g5.2xlarge", "replicas": 1,
                           "gpus": 1, "gpu_type": "nvidia-a10g"}, "models/x.yaml")  # fmt: skip


def test_resources_from_the_registry_declaration():
    aws_serving = Serving(provider="aws", region="eu-west-1", instance_type="m5.large", replicas=2)
    assert from_serving(aws_serving, "v1") == aws("m5.large", replicas=2)
    gcp_serving = Serving(
        provider="gcp",
        region="us-central1",
        instance_type="n1-standard-4",
        replicas=1,
        gpus=1,
        gpu_type="nvidia-tesla-t4",
    )
    assert from_serving(gcp_serving, "v2") == gcp("n1-standard-4", gpus=1, gpu_type="nvidia-tesla-t4")
    with pytest.raises(BadInputError, match="v3: invalid serving resources"):
        from_serving(Serving(provider="gcp", region="us-central1", instance_type="N1 STANDARD", replicas=1), "v3")


def test_aws_none_or_several_matches_and_unknown_regions(aws_server):
    catalogue = aws_catalogue(aws_server.endpoint)
    with pytest.raises(UnknownPriceError, match=r"instanceType=m5.large, location=EU \(Paris\), operatingSystem=Linux"):
        hourly_price(aws("m5.large", region="eu-west-3"), catalogue)
    with pytest.raises(CatalogueError, match="several EC2 products.*DUP0000000001, DUP0000000002"):
        hourly_price(aws("c5.xlarge"), catalogue)
    with pytest.raises(UnknownPriceError, match="unknown AWS region 'eu-west-9'"):
        hourly_price(aws("m5.large", region="eu-west-9"), catalogue)


# -- unreachable catalogues and the cache -----------------------------------------------------------


def test_unreachable_catalogues_raise_naming_the_endpoint():
    down = unreachable_endpoint()
    with pytest.raises(CatalogueUnavailable, match=f"Price List at {down} unreachable"):
        hourly_price(aws("m5.large"), aws_catalogue(down))
    with pytest.raises(CatalogueUnavailable, match=f"Catalog at {down} unreachable"):
        hourly_price(gcp("n1-standard-1"), GcpCatalogue.connect(down, credentials=AnonymousCredentials()))


def test_server_errors_and_throttling_are_unavailability_refusals_are_errors(gcp_server, aws_server):
    gcp_server.fail = (503, "UNAVAILABLE", "backend overloaded")
    with pytest.raises(CatalogueUnavailable, match="failed.*503"):
        hourly_price(
            gcp("n1-standard-1"), GcpCatalogue.connect(gcp_server.endpoint, credentials=AnonymousCredentials())
        )
    gcp_server.fail = (403, "PERMISSION_DENIED", "Cloud Billing API has not been used in project")
    with pytest.raises(CatalogueError, match="refused list_services.*403"):
        hourly_price(
            gcp("n1-standard-1"), GcpCatalogue.connect(gcp_server.endpoint, credentials=AnonymousCredentials())
        )
    catalogue = aws_catalogue(aws_server.endpoint)
    aws_server.fail = (400, "ThrottlingException", "Rate exceeded")
    with pytest.raises(CatalogueUnavailable, match="ThrottlingException"):
        hourly_price(aws("m5.large"), catalogue)
    aws_server.fail = (400, "AccessDeniedException", "not authorized to perform pricing:GetProducts")
    with pytest.raises(CatalogueError, match="refused get_products.*AccessDenied"):
        hourly_price(aws("m5.large"), catalogue)


def test_a_silent_catalogue_times_out_quickly():
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(CatalogueUnavailable, match="unreachable"):
            hourly_price(aws("m5.large"), aws_catalogue(endpoint, read_timeout=0.5))
        gcp_silent = GcpCatalogue.connect(endpoint, credentials=AnonymousCredentials(), timeout=0.5)
        with pytest.raises(CatalogueUnavailable, match="unreachable"):
            hourly_price(gcp("n1-standard-1"), gcp_silent)


def test_cache_serves_fresh_prices_and_stale_ones_only_when_unreachable(tmp_path, aws_server):
    cache = PriceCache(Lake(str(tmp_path / "lake")))
    resources = aws("m5.large", replicas=2)
    catalogue = aws_catalogue(aws_server.endpoint)
    first = cache.cached_or_fetch(resources, catalogue.hourly_price, today=date(2026, 11, 2), max_age_days=7)
    assert (first.from_cache, first.age_days, first.price.fetched_on) == (False, 0, date(2026, 11, 2))
    assert first.price.usd_per_hour == Decimal("0.214")
    assert cache.lake.exists("catalogue_prices", {"provider": "aws", "date": "2026-11-02"})

    calls = len(aws_server.requests)
    # Within max_age: from the lake, with the replicas asked for now, and no call to the catalogue.
    again = cache.cached_or_fetch(aws("m5.large", replicas=5), catalogue.hourly_price, date(2026, 11, 5), 7)
    assert (again.from_cache, again.age_days, again.price.usd_per_hour) == (True, 3, Decimal("0.535"))
    assert again.price.components == first.price.components and len(aws_server.requests) == calls

    # Too old and the catalogue is down: the newest cached price, with its age and why.
    down = aws_catalogue(unreachable_endpoint())
    stale = cache.cached_or_fetch(resources, down.hourly_price, today=date(2026, 12, 2), max_age_days=7)
    assert (stale.from_cache, stale.age_days, stale.price.usd_per_hour) == (True, 30, Decimal("0.214"))
    assert "catalogue unreachable" in stale.note and "2026-11-02 (30 days old)" in stale.note

    # Too old and the catalogue is up: fetched again and stored beside the old one.
    fresh = cache.cached_or_fetch(resources, catalogue.hourly_price, today=date(2026, 12, 2), max_age_days=7)
    assert (fresh.from_cache, fresh.age_days) == (False, 0)
    assert [p["date"] for p in cache.lake.list_partitions("catalogue_prices")] == ["2026-11-02", "2026-12-02"]

    # Nothing cached for this resource and the catalogue down: a clear error naming the endpoint.
    with pytest.raises(CatalogueUnavailable, match=r"unreachable.*no cached price for aws/eu-west-1/g5.2xlarge"):
        cache.cached_or_fetch(aws("g5.2xlarge"), down.hourly_price, date(2026, 12, 2), 7)
    # An unknown resource is an error even with the catalogue up, never an old or a zero price.
    with pytest.raises(UnknownPriceError):
        cache.cached_or_fetch(aws("m5.large", region="eu-west-3"), catalogue.hourly_price, date(2026, 12, 2), 7)


def test_cache_keeps_several_resources_a_day_and_their_breakdown(tmp_path, gcp_catalogue):
    cache = PriceCache(Lake(str(tmp_path / "lake")))
    day = date(2026, 11, 2)
    for resources in (gcp("n1-standard-1"), gcp("n1-standard-4", gpus=1, gpu_type="nvidia-tesla-t4")):
        cache.cached_or_fetch(resources, gcp_catalogue.hourly_price, today=day, max_age_days=0)
    table = cache.lake.read_table("catalogue_prices", {"provider": "gcp", "date": "2026-11-02"})
    assert table.column("key").to_pylist() == [
        "gcp/us-central1/n1-standard-1",
        "gcp/us-central1/n1-standard-4+1xnvidia-tesla-t4",
    ]
    assert table.column("usd_per_replica_hour").to_pylist() == ["0.04749975", "0.539999"]
    cached = cache.newest(gcp("n1-standard-4", replicas=3, gpus=1, gpu_type="nvidia-tesla-t4"), today=day)
    assert cached is not None and cached.fetched_on == day
    assert cached.usd_per_hour == Decimal("1.619997")  # 0.539999 × 3
    assert [c.sku_id for c in cached.components] == [N1_CORE, N1_RAM, T4]


# -- declared resources and the estimate ------------------------------------------------------------


def test_estimated_cost_per_inference_from_price_and_throughput():
    # 0.04749975 USD/h × 24 h / 1,000 inferences a day = 0.001139994 USD per inference.
    assert estimated_cost_per_inference(Decimal("0.04749975"), 1000) == pytest.approx(0.001139994, rel=1e-12)
    for bad in (0, -5, True, 1.5):
        with pytest.raises(BadInputError, match="expected_inferences_per_day"):
            estimated_cost_per_inference(Decimal("0.04749975"), bad)
    for bad_price in (Decimal(0), Decimal("-1"), Decimal("NaN"), 0.0475):
        with pytest.raises(BadInputError, match="hourly price"):
            estimated_cost_per_inference(bad_price, 1000)


@pytest.mark.parametrize(
    "document, message",
    [
        ({"provider": "gcp", "region": "us-central1", "machine_type": "n1-standard-1", "replicas": "2"}, "replicas"),
        ({"provider": "gcp", "region": "us-central1", "machine_type": "n1-standard-1", "replicas": 1, "cpu": 2}, "cpu"),
        ({"provider": "aws", "region": "eu-west-1", "machine_type": "m5.large", "replicas": 1}, "instance_type"),
        ({"provider": "gcp", "region": "us-central1", "machine_type": "n1-standard-1", "replicas": 1, "gpus": 1},
         "gpu_type"),
        ({"provider": "azure", "region": "westeurope", "instance_type": "x", "replicas": 1}, "provider"),
        ({"provider": "gcp", "region": "../etc", "machine_type": "n1-standard-1", "replicas": 1}, "region"),
        ({"provider": "gcp", "region": "us-central1", "machine_type": "n1-standard-1", "replicas": 0}, "replicas"),
    ],
)  # fmt: skip
def test_declared_resources_are_strict(document, message):
    with pytest.raises(BadInputError, match=f"(?s)models/credit.yaml: invalid serving resources.*{message}"):
        serving_resources(document, "models/credit.yaml")


def test_a_tampered_cached_price_is_refused_not_used(tmp_path, gcp_catalogue):
    cache = PriceCache(Lake(str(tmp_path / "lake")))
    day, partition = date(2026, 11, 2), {"provider": "gcp", "date": "2026-11-02"}
    cache.cached_or_fetch(gcp("n1-standard-1"), gcp_catalogue.hourly_price, today=day, max_age_days=0)
    table = cache.lake.read_table("catalogue_prices", partition)
    document = json.loads(table.column("document")[0].as_py())
    document["components"][0]["unit_price_usd"] = "0"
    tampered = table.set_column(table.schema.get_field_index("document"), "document", pa.array([json.dumps(document)]))
    cache.lake.write_table("catalogue_prices", partition, tampered)
    with pytest.raises(
        BadInputError, match=f"catalogue_prices/provider=gcp/date=2026-11-02.*{N1_CORE} without a positive"
    ):
        cache.newest(gcp("n1-standard-1"), today=day)
