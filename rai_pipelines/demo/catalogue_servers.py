"""The two price catalogues as small HTTP servers on loopback, for the real clients to talk to: the
demo's catalogue (`demo_aws_catalogue`) and the tests'.

- `GcpCatalogServer` answers the Cloud Billing Catalog API's REST surface that
  `google.cloud.billing_v1.CloudCatalogClient(transport="rest")` calls: GET /v1/services and
  GET /v1/services/{id}/skus, JSON in the API's documented shape (camelCase fields, Money as
  units-as-string + nanos), paged with pageSize / pageToken / nextPageToken and a server-side cap on
  the page size (the real one allows at most 5,000 SKUs a page).
- `AwsPriceListServer` answers the Price List Query API as boto3's `pricing` client speaks it: AWS
  JSON 1.1 (POST /, `X-Amz-Target: AWSPriceListService.GetProducts`), TERM_MATCH filters on the
  product attributes, PriceList items as JSON strings, NextToken paging. Like the real service it
  may return fewer items than MaxResults, even none, with a NextToken: it scans `scan_page` products
  per call, so a client that stops at the first page misses products.

Both record every request so that tests can show pagination and the filters actually used.
`unreachable_endpoint()` gives a loopback URL where nothing listens (connection refused).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

COMPUTE_ENGINE_ID = "6F81-5844-456A"


def unreachable_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _token(kind: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{offset}".encode()).decode()


def _offset(kind: str, token: str) -> int | None:
    try:
        found_kind, _, offset = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        return int(offset) if found_kind == kind else None
    except (ValueError, UnicodeDecodeError):
        return None


class _LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 and a random port; use as a context manager."""

    def __init__(self):
        self.requests: list[dict] = []
        # Set to the arguments of the server's `_error` to answer every request with that error.
        self.fail: tuple | None = None
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                owner._dispatch(self, b"")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                owner._dispatch(self, self.rfile.read(min(length, 1 << 20)))

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _record(self, entry: dict) -> None:
        with self._lock:
            self.requests.append(entry)

    @staticmethod
    def _send(handler, status: int, document: dict, content_type: str = "application/json") -> None:
        payload = json.dumps(document).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _dispatch(self, handler, body: bytes) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


# -- GCP ----------------------------------------------------------------------------------------------


def gcp_sku(
    sku_id: str,
    description: str,
    resource_group: str,
    usage_type: str,
    regions: list[str],
    usage_unit: str,
    tiers: list[tuple[float, int, int]],
    resource_family: str = "Compute",
) -> dict:
    """A Compute Engine SKU as the catalogue returns it; `tiers` are (startUsageAmount, units, nanos)."""
    per_second = {"h": ("s", "second", 3600), "GiBy.h": ("By.s", "byte-second", 3600 * 2**30)}
    base_unit, base_description, factor = per_second.get(usage_unit, (usage_unit, usage_unit, 1))
    return {
        "name": f"services/{COMPUTE_ENGINE_ID}/skus/{sku_id}",
        "skuId": sku_id,
        "description": description,
        "category": {
            "serviceDisplayName": "Compute Engine",
            "resourceFamily": resource_family,
            "resourceGroup": resource_group,
            "usageType": usage_type,
        },
        "serviceRegions": regions,
        "pricingInfo": [
            {
                "summary": "",
                "pricingExpression": {
                    "usageUnit": usage_unit,
                    "displayQuantity": 1,
                    "tieredRates": [
                        {
                            "startUsageAmount": start,
                            "unitPrice": {"currencyCode": "USD", "units": str(units), "nanos": nanos},
                        }
                        for start, units, nanos in tiers
                    ],
                    "usageUnitDescription": {"h": "hour", "GiBy.h": "gibibyte hour"}.get(usage_unit, usage_unit),
                    "baseUnit": base_unit,
                    "baseUnitDescription": base_description,
                    "baseUnitConversionFactor": factor,
                },
                "aggregationInfo": {
                    "aggregationLevel": "ACCOUNT",
                    "aggregationInterval": "DAILY",
                    "aggregationCount": 1,
                },
                "currencyConversionRate": 1,
                "effectiveTime": "2026-11-01T08:00:00.000Z",
            }
        ],
        "serviceProviderName": "Google",
        "geoTaxonomy": {"type": "MULTI_REGIONAL", "regions": regions},
    }


def gcp_service(service_id: str, display_name: str) -> dict:
    return {
        "name": f"services/{service_id}",
        "serviceId": service_id,
        "displayName": display_name,
        "businessEntityName": "businessEntities/GCP",
    }


class GcpCatalogServer(_LoopbackServer):
    """GET /v1/services and GET /v1/services/{id}/skus over the given services and SKUs."""

    def __init__(self, services: list[dict], skus: list[dict], max_page_size: int = 5000):
        self.services, self.skus, self.max_page_size = services, skus, max_page_size
        super().__init__()

    def _page(self, handler, kind: str, items: list[dict], field: str, query: dict) -> None:
        try:
            size = int(query.get("pageSize", ["0"])[0]) or self.max_page_size
        except ValueError:
            return self._error(handler, 400, "INVALID_ARGUMENT", "pageSize is not an integer")
        size = min(size, self.max_page_size)
        token = query.get("pageToken", [""])[0]
        start = _offset(kind, token) if token else 0
        if start is None:
            return self._error(handler, 400, "INVALID_ARGUMENT", f"invalid pageToken {token!r}")
        page = {field: items[start : start + size]}
        # The real API always sends nextPageToken, empty on the last page.
        page["nextPageToken"] = _token(kind, start + size) if start + size < len(items) else ""
        self._send(handler, 200, page)

    def _error(self, handler, code: int, status: str, message: str) -> None:
        self._send(handler, code, {"error": {"code": code, "message": message, "status": status}})

    def _dispatch(self, handler, body: bytes) -> None:
        url = urlsplit(handler.path)
        query = parse_qs(url.query)
        self._record({"method": handler.command, "path": url.path, "query": query})
        if self.fail:
            return self._error(handler, *self.fail)
        if handler.command != "GET":
            return self._error(handler, 405, "METHOD_NOT_ALLOWED", handler.command)
        if url.path == "/v1/services":
            return self._page(handler, "services", self.services, "services", query)
        parts = url.path.split("/")
        if len(parts) == 5 and parts[:3] == ["", "v1", "services"] and parts[4] == "skus":
            if not any(s["serviceId"] == parts[3] for s in self.services):
                return self._error(handler, 404, "NOT_FOUND", f"service {parts[3]} not found")
            skus = self.skus if parts[3] == COMPUTE_ENGINE_ID else []
            return self._page(handler, f"skus-{parts[3]}", skus, "skus", query)
        self._error(handler, 404, "NOT_FOUND", url.path)


# -- AWS ----------------------------------------------------------------------------------------------


def ec2_product(
    sku: str,
    instance_type: str,
    region_code: str,
    location: str,
    usd_per_hour: str,
    operating_system: str = "Linux",
    tenancy: str = "Shared",
    pre_installed_sw: str = "NA",
    capacity_status: str = "Used",
    vcpu: int = 2,
    memory: str = "8 GiB",
    gpu: int | None = None,
) -> dict:
    """An EC2 product of the Price List (aws_v1) with its OnDemand term and a Reserved term that
    must not be read."""
    on_demand, rate = f"{sku}.JRTCKXETXF", f"{sku}.JRTCKXETXF.6YS6EN2CT7"
    attributes = {
        "servicecode": "AmazonEC2",
        "servicename": "Amazon Elastic Compute Cloud",
        "instanceType": instance_type,
        "instanceFamily": "GPU instance" if gpu else "General purpose",
        "location": location,
        "locationType": "AWS Region",
        "regionCode": region_code,
        "operatingSystem": operating_system,
        "tenancy": tenancy,
        "preInstalledSw": pre_installed_sw,
        "capacitystatus": capacity_status,
        "licenseModel": "No License required",
        "marketoption": "OnDemand",
        "operation": "RunInstances",
        "usagetype": f"EU-BoxUsage:{instance_type}",
        "vcpu": str(vcpu),
        "memory": memory,
        "currentGeneration": "Yes",
        "processorArchitecture": "64-bit",
    }
    if gpu is not None:
        attributes["gpu"] = str(gpu)
    return {
        "product": {"productFamily": "Compute Instance", "attributes": attributes, "sku": sku},
        "serviceCode": "AmazonEC2",
        "terms": {
            "OnDemand": {
                on_demand: {
                    "priceDimensions": {
                        rate: {
                            "unit": "Hrs",
                            "endRange": "Inf",
                            "description": (
                                f"${usd_per_hour} per On Demand {operating_system} {instance_type} Instance Hour"
                            ),
                            "appliesTo": [],
                            "rateCode": rate,
                            "beginRange": "0",
                            "pricePerUnit": {"USD": usd_per_hour},
                        }
                    },
                    "sku": sku,
                    "effectiveDate": "2026-11-01T00:00:00Z",
                    "offerTermCode": "JRTCKXETXF",
                    "termAttributes": {},
                }
            },
            "Reserved": {
                f"{sku}.4NA7Y494T4": {
                    "priceDimensions": {
                        f"{sku}.4NA7Y494T4.6YS6EN2CT7": {
                            "unit": "Hrs",
                            "description": "Linux/UNIX (Amazon VPC), 1 year, No Upfront",
                            "rateCode": f"{sku}.4NA7Y494T4.6YS6EN2CT7",
                            "pricePerUnit": {"USD": "0.0010000000"},
                        }
                    },
                    "sku": sku,
                    "offerTermCode": "4NA7Y494T4",
                    "termAttributes": {"LeaseContractLength": "1yr", "PurchaseOption": "No Upfront"},
                }
            },
        },
        "version": "20261101000000",
        "publicationDate": "2026-11-01T00:00:00Z",
    }


class AwsPriceListServer(_LoopbackServer):
    """POST / with X-Amz-Target AWSPriceListService.GetProducts over the given products."""

    TARGET = "AWSPriceListService.GetProducts"

    def __init__(self, products: list[dict], scan_page: int = 100):
        self.products, self.scan_page = products, scan_page
        super().__init__()

    def _error(self, handler, status: int, kind: str, message: str) -> None:
        self._send(handler, status, {"__type": kind, "message": message}, "application/x-amz-json-1.1")

    def _dispatch(self, handler, body: bytes) -> None:
        target = handler.headers.get("X-Amz-Target", "")
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        self._record({"method": handler.command, "target": target, "body": request})
        if self.fail:
            return self._error(handler, *self.fail)
        if handler.command != "POST" or target != self.TARGET:
            return self._error(handler, 400, "UnknownOperationException", f"unknown operation {target!r}")
        if not isinstance(request, dict) or request.get("ServiceCode") != "AmazonEC2":
            return self._error(handler, 400, "InvalidParameterException", "ServiceCode AmazonEC2 expected")
        filters = request.get("Filters", [])
        if any(f.get("Type") != "TERM_MATCH" for f in filters):
            return self._error(handler, 400, "InvalidParameterException", "only TERM_MATCH filters here")
        max_results = request.get("MaxResults", 100)
        if not isinstance(max_results, int) or not 1 <= max_results <= 100:
            return self._error(handler, 400, "InvalidParameterException", "MaxResults must be 1..100")
        start = 0
        if "NextToken" in request:
            start = _offset("products", request["NextToken"])
            if start is None:
                return self._error(handler, 400, "InvalidNextTokenException", "invalid NextToken")
        window = self.products[start : start + min(self.scan_page, max_results)]
        found = [
            p for p in window
            if all(p["product"]["attributes"].get(f["Field"]) == f["Value"] for f in filters)
        ]  # fmt: skip
        response: dict = {
            "FormatVersion": request.get("FormatVersion", "aws_v1"),
            "PriceList": [json.dumps(p) for p in found],
        }
        end = start + len(window)
        if end < len(self.products):
            response["NextToken"] = _token("products", end)
        self._send(handler, 200, response, "application/x-amz-json-1.1")


# The demo world's models run on these EC2 instances in eu-west-1 (Linux, shared tenancy, on-demand
# USD per hour as AWS listed them for EU (Ireland) in 2023); the demo bills them at these rates and
# its pipeline prices them from this catalogue through boto3.
DEMO_EC2 = (
    ("DEMOM5LARGE01", "m5.large", "0.1070000000", 2, "8 GiB", None),
    ("DEMOC5XLARGE1", "c5.xlarge", "0.1920000000", 4, "8 GiB", None),
    ("DEMOG52XLARG1", "g5.2xlarge", "1.3620000000", 8, "32 GiB", 1),
    ("DEMOG5XLARGE1", "g5.xlarge", "1.1230000000", 4, "16 GiB", 1),
    ("DEMOM5XLARGE1", "m5.xlarge", "0.2140000000", 4, "16 GiB", None),
    ("DEMOT3MEDIUM1", "t3.medium", "0.0456000000", 2, "4 GiB", None),
)


def demo_ec2_rate(instance_type: str) -> float:
    """The demo catalogue's on-demand hourly rate of an instance type (what the demo bill charges)."""
    for _, name, rate, *_ in DEMO_EC2:
        if name == instance_type:
            return float(rate)
    raise KeyError(f"{instance_type} is not in the demo catalogue")


def demo_aws_catalogue() -> AwsPriceListServer:
    """The demo's AWS Price List on loopback (not started: use it as a context manager)."""
    products = [
        ec2_product(sku, name, "eu-west-1", "EU (Ireland)", rate, vcpu=vcpu, memory=memory, gpu=gpu)
        for sku, name, rate, vcpu, memory, gpu in DEMO_EC2
    ]
    return AwsPriceListServer(products)
