"""The price of a model version's declared serving resources, from the catalogue of its cloud,
through the lake's price cache: what the pipeline's `catalogue_prices` asset, the governance facts
and the pre-deployment gate share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from urllib.parse import urlparse

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.prices import (
    CachedPrice,
    Price,
    PriceCache,
    ServingResources,
    estimated_cost_per_inference,
    from_serving,
)


def _loopback(endpoint: str | None) -> bool:
    return bool(endpoint) and urlparse(endpoint).hostname in ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class CatalogueEndpoints:
    """Where the catalogues answer: None is the cloud's public endpoint (AWS's Price List API with
    boto3's usual credentials, GCP's Cloud Billing Catalog API with the application default
    credentials); a loopback URL is a local catalogue (the demo's, the tests'), asked without
    credentials."""

    aws: str | None = None
    gcp: str | None = None


class Catalogues:
    """One catalogue client per provider, connected on first use."""

    def __init__(self, endpoints: CatalogueEndpoints):
        self.endpoints = endpoints
        self._clients: dict[str, object] = {}

    def _client(self, provider: str):
        if provider not in self._clients:
            if provider == "aws":
                from rai_pipelines.costs.prices_aws import AwsCatalogue

                local = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
                kwargs = local if _loopback(self.endpoints.aws) else {}
                self._clients[provider] = AwsCatalogue.connect(self.endpoints.aws, **kwargs)
            elif provider == "gcp":
                from rai_pipelines.costs.prices_gcp import GcpCatalogue

                credentials = None
                if _loopback(self.endpoints.gcp):
                    from google.auth.credentials import AnonymousCredentials

                    credentials = AnonymousCredentials()
                self._clients[provider] = GcpCatalogue.connect(self.endpoints.gcp, credentials=credentials)
            else:
                raise BadInputError(f"no catalogue for provider {provider!r}")
        return self._clients[provider]

    def hourly_price(self, resources: ServingResources) -> Price:
        return self._client(resources.provider).hourly_price(resources)


def serving_price(
    serving, where: str, catalogues: Catalogues, cache: PriceCache | None, today: date, max_age_days: int
) -> CachedPrice:
    """The hourly price of `serving` (a registry `Serving`, all replicas): cached when fresh, else
    from the catalogue (and cached), else the newest cached price with its age when the catalogue
    cannot be reached. Without a cache (the gate in CI) the catalogue is asked directly."""
    resources = from_serving(serving, where)
    if cache is None:
        return CachedPrice(catalogues.hourly_price(resources), 0, "fetched from the catalogue", False)
    return cache.cached_or_fetch(resources, catalogues.hourly_price, today, max_age_days)


def estimated_cost_per_inference_usd(price: Price, serving, where: str, daily_inferences: int | None = None) -> float:
    """The estimate before deployment: the catalogue's hourly price of the declared resources over a
    day, divided by the declared throughput (`expected_inferences_per_day`, or `daily_inferences`)."""
    expected = daily_inferences if daily_inferences is not None else serving.expected_inferences_per_day
    if expected is None:
        raise BadInputError(
            f"{where}: no expected_inferences_per_day declared in its serving resources: the cost per inference "
            "of a version that has never run cannot be estimated"
        )
    return estimated_cost_per_inference(price.usd_per_hour, expected)
