"""EC2 on-demand prices from AWS's Price List Query API (boto3 `pricing.get_products`).

One product is wanted per declared instance: TERM_MATCH filters on the instance type, the location
(the Price List names regions by location, e.g. "EU (Ireland)"), operatingSystem Linux, tenancy
Shared, preInstalledSw NA (no SQL Server or other licensed software) and capacitystatus Used (not
the zero-priced capacity-reservation rows). Every page is read (NextToken); exactly one product must
match, or it is an error naming the filters. Its price is the one OnDemand term's "Hrs" dimension,
`pricePerUnit.USD`, read as an exact Decimal. Reserved and Savings Plans terms are not read. An EC2
instance type carries its GPUs (g5.2xlarge: one A10G), so its price includes them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from rai_pipelines.costs.prices import (
    CatalogueError,
    CatalogueUnavailable,
    Price,
    PriceComponent,
    ServingResources,
    UnknownPriceError,
)

MAX_PAGES = 50
MAX_ITEM_CHARS = 1_000_000  # one product's JSON; real ones are a few tens of kB

# Region code → the Price List's `location` attribute (the values
# `pricing.get_attribute_values(ServiceCode="AmazonEC2", AttributeName="location")` returns; the
# Price List kept "EU (...)" where the console now says "Europe (...)").
LOCATIONS: dict[str, str] = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "ca-central-1": "Canada (Central)",
    "sa-east-1": "South America (Sao Paulo)",
    "eu-west-1": "EU (Ireland)",
    "eu-west-2": "EU (London)",
    "eu-west-3": "EU (Paris)",
    "eu-central-1": "EU (Frankfurt)",
    "eu-north-1": "EU (Stockholm)",
    "eu-south-1": "EU (Milan)",
    "ap-south-1": "Asia Pacific (Mumbai)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-northeast-2": "Asia Pacific (Seoul)",
    "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
}

FIXED_FILTERS = {"operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}


def location(region: str) -> str:
    try:
        return LOCATIONS[region]
    except KeyError:
        raise UnknownPriceError(
            f"unknown AWS region {region!r} for the Price List (known: {', '.join(sorted(LOCATIONS))})"
        ) from None


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _dig(document, *path: str, where: str):
    for key in path:
        if not isinstance(document, dict) or key not in document:
            raise CatalogueError(f"{where}: product without {'.'.join(path)}")
        document = document[key]
    return document


class AwsCatalogue:
    """Prices declared AWS serving resources (Linux, shared tenancy, on demand) from the Price List.

    `client` is a boto3 `pricing` client; `connect()` builds one with short timeouts and a single
    attempt, so an unreachable endpoint is reported at once rather than retried for minutes."""

    provider = "aws"

    def __init__(
        self,
        client,
        endpoint: str = "https://api.pricing.us-east-1.amazonaws.com",
        today: Callable[[], dt.date] = _utc_today,
    ):
        self.client, self.endpoint, self.today = client, endpoint, today

    @classmethod
    def connect(
        cls,
        endpoint: str | None = None,
        region: str = "us-east-1",
        connect_timeout: float = 2,
        read_timeout: float = 20,
        **client_kwargs,
    ) -> AwsCatalogue:
        """A catalogue on the Price List endpoint of `region` (us-east-1, eu-central-1 or ap-south-1),
        or on `endpoint`; credentials come from boto3's usual chain unless given in `client_kwargs`."""
        import boto3
        from botocore.config import Config

        config = Config(
            retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        client = boto3.client("pricing", region_name=region, endpoint_url=endpoint, config=config, **client_kwargs)
        return cls(client, endpoint=endpoint or client.meta.endpoint_url)

    def filters(self, resources: ServingResources) -> dict[str, str]:
        return {"instanceType": resources.instance_type or "", "location": location(resources.region), **FIXED_FILTERS}

    def _get_products(self, filters: dict[str, str]) -> list[dict]:
        from botocore import exceptions as boto

        request = {
            "ServiceCode": "AmazonEC2",
            "Filters": [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in filters.items()],
            "FormatVersion": "aws_v1",
            "MaxResults": 100,
        }
        products: list[dict] = []
        for _ in range(MAX_PAGES):
            try:
                response = self.client.get_products(**request)
            except (boto.ConnectionError, boto.HTTPClientError) as exc:
                raise CatalogueUnavailable(f"AWS Price List at {self.endpoint} unreachable: {exc}") from exc
            except boto.ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                code = exc.response.get("Error", {}).get("Code", "")
                if status >= 500 or status == 429 or code in {"ThrottlingException", "InternalErrorException"}:
                    raise CatalogueUnavailable(f"AWS Price List at {self.endpoint} failed: {exc}") from exc
                raise CatalogueError(f"AWS Price List at {self.endpoint} refused get_products: {exc}") from exc
            except boto.NoCredentialsError as exc:
                raise CatalogueError(f"AWS Price List at {self.endpoint}: {exc}") from exc
            for item in response.get("PriceList", []):
                if not isinstance(item, str) or len(item) > MAX_ITEM_CHARS:
                    raise CatalogueError(f"{self.endpoint}: a PriceList item is not a product JSON string")
                try:
                    products.append(json.loads(item, parse_float=Decimal))
                except ValueError as exc:
                    raise CatalogueError(f"{self.endpoint}: a PriceList item is not JSON: {exc}") from None
            token = response.get("NextToken")
            if not token:
                return products
            request["NextToken"] = token
        raise CatalogueError(f"{self.endpoint}: get_products did not end within {MAX_PAGES} pages")

    def hourly_price(self, resources: ServingResources) -> Price:
        """The on-demand Linux price of one instance, × replicas in `Price`."""
        if resources.provider != "aws":
            raise UnknownPriceError(f"{resources.key}: not an AWS resource")
        filters = self.filters(resources)
        described = ", ".join(f"{k}={v}" for k, v in filters.items())
        products = self._get_products(filters)
        # The server applied the filters; check them again rather than trust a product that differs.
        matching = [
            p for p in products
            if isinstance(p, dict) and all(
                (p.get("product") or {}).get("attributes", {}).get(k) == v for k, v in filters.items()
            )
        ]  # fmt: skip
        if len(matching) != len(products):
            raise CatalogueError(f"{self.endpoint}: get_products returned products not matching {described}")
        if not matching:
            raise UnknownPriceError(f"no EC2 product in the AWS Price List at {self.endpoint} for {described}")
        if len(matching) > 1:
            skus = ", ".join(str(p["product"].get("sku")) for p in matching)
            raise CatalogueError(f"several EC2 products match {described}: {skus}; refusing to pick one")
        product = matching[0]
        sku = str(_dig(product, "product", "sku", where=self.endpoint))
        where = f"{self.endpoint} product {sku}"
        component = self._on_demand(product, sku, where)
        return Price(
            resources=resources,
            components=(component,),
            source=f"AWS Price List API (AmazonEC2, aws_v1) at {self.endpoint}",
            fetched_on=self.today(),
        )

    @staticmethod
    def _on_demand(product: dict, sku: str, where: str) -> PriceComponent:
        terms = _dig(product, "terms", "OnDemand", where=where)
        if not isinstance(terms, dict) or len(terms) != 1:
            raise CatalogueError(
                f"{where}: expected one OnDemand term, found {len(terms) if isinstance(terms, dict) else terms}"
            )
        (term,) = terms.values()
        dimensions = _dig(term, "priceDimensions", where=where)
        hourly = [d for d in dimensions.values() if isinstance(d, dict) and d.get("unit") == "Hrs"]
        if len(hourly) != 1:
            raise CatalogueError(f"{where}: expected one 'Hrs' price dimension, found {len(hourly)}")
        dimension = hourly[0]
        text = _dig(dimension, "pricePerUnit", "USD", where=where)
        try:
            price = Decimal(str(text))
        except InvalidOperation:
            raise CatalogueError(f"{where}: pricePerUnit.USD {text!r} is not a number") from None
        if not price.is_finite() or price <= 0:
            raise UnknownPriceError(f"{where} has no positive on-demand price ({text!r}); refusing a zero")
        rate_code = str(dimension.get("rateCode", sku))
        return PriceComponent(rate_code, str(dimension.get("description", "")), "Hrs", price, Decimal(1), None)
