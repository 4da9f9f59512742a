"""Google Cloud Billing export to BigQuery (standard and detailed usage cost) -> FOCUS 1.2 ledger rows.

Google writes a billing account's costs into `gcp_billing_export_v1_<ACCOUNT>` (standard usage cost)
and `gcp_billing_export_resource_v1_<ACCOUNT>` (detailed: the same fields plus `resource`), one row
per service, SKU, project, location, label set and hour, with nested fields: `service`, `sku`,
`project` (with `labels`), `location`, `usage`, `invoice`, `price`, `adjustment_info` are records;
`labels`, `system_labels`, `tags` and `credits` are repeated records. `cost` is the gross cost in the
billing currency; the credits of the row (sustained use, committed use, promotions, free tier...) are
negative amounts beside it.

The work happens in two steps, each one place:

1. `bigquery_day_sql` (run where the export lives) or `flatten_export` (DuckDB, on the same export
   copied to Cloud Storage as Parquet by `EXPORT DATA`) turn the nested rows into one flat row each:
   struct fields become columns (`service.description` -> `service_description`), the credits are
   unnested and summed into `credits_total` (NUMERIC), and labels, project labels, system labels,
   tags and the credits themselves stay key/value arrays. Both are generated from the fields the
   table actually has, so a field Google adds later is ignored and an optional field that an older
   export lacks becomes NULL.
2. `gcp_to_focus` maps the flat rows of one day to the ledger's FOCUS columns.

The mapping follows the FOCUS BigQuery view Google publishes for these exports (its FOCUS guide):

- credits are netted on their own row, not emitted as Credit rows: BilledCost = EffectiveCost =
  cost + SUM(credits.amount); ContractedCost = cost; ListCost = cost_at_list (cost when absent);
- ChargeCategory from cost_type: regular -> Usage, tax -> Tax, adjustment and rounding_error ->
  Adjustment; ChargeClass = Correction when adjustment_info is set;
- the committed use discount credit (COMMITTED_USAGE_DISCOUNT -> Usage,
  COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE -> Spend) gives the CommitmentDiscount columns and makes the
  PricingCategory Committed (also for "Commitment..." SKUs), otherwise Standard;
- BillingPeriodStart is the invoice month's start in America/Los_Angeles (Google invoices on Pacific
  time); BillingPeriodEnd is the next month's start there (the view uses the month's last day, but
  FOCUS makes the end exclusive);
- ProviderName and HostProviderName "Google Cloud", PublisherName and ServiceProviderName the seller for
  marketplace rows, SkuId and pricing quantities only on regular rows, ResourceType derived from
  resource.global_name as the view does.

Where this differs from the view, on purpose: SubAccountId/Name are the project (the view repeats
the billing account); PricingQuantity/PricingUnit are usage.amount_in_pricing_units/pricing_unit (the
view's price.pricing_unit_quantity is the size of the price's unit block, not the quantity charged);
ServiceCategory comes from a table of service names (the view joins the pricing export's taxonomy);
ListUnitPrice stays empty (it needs the pricing export).

Tags: the view keeps every label with its origin; the ledger's Tags is one JSON object, so resource
labels keep their key (normalised by `ledger_schema.tag_key`, as for AWS tags), and the others carry their
origin as a prefix: `project_label:<key>`, `system_label:<key>` (e.g. `system_label:goog-k8s-cluster-name`),
`tag:<key>` (Resource Manager tags). Attribution (x_ModelName, x_Team, ...) reads the resource labels
first, then the project's labels (which every resource of the project inherits).

A charge belongs to the UTC day its usage_start_time falls on, like the other sources' ledger days.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.ledger_schema import (
    ATTRIBUTION_TAGS,
    LEDGER_SCHEMA,
    MONEY,
    SourceFile,
    other_subcategory,
    tag_key,
)
from rai_pipelines.costs.sources.gcp_services import SERVICE_CATEGORY, SERVICE_SUBCATEGORY
from rai_pipelines.costs.values import decimal_value, optional_decimal, utc_instant
from rai_pipelines.costs.witness import CostTotals, DailyTotals, add_total

PROVIDER = "gcp"

# Export fields, by their dotted path in the export schema.
REQUIRED_FIELDS = (
    "billing_account_id",
    "service.id",
    "service.description",
    "sku.id",
    "sku.description",
    "usage_start_time",
    "usage_end_time",
    "cost",
    "currency",
    "cost_type",
    "invoice.month",
)
OPTIONAL_FIELDS = (
    "project.id",
    "project.number",
    "project.name",
    "location.location",
    "location.country",
    "location.region",
    "location.zone",
    "resource.name",  # detailed export only
    "resource.global_name",  # detailed export only
    "export_time",
    "currency_conversion_rate",
    "usage.amount",
    "usage.unit",
    "usage.amount_in_pricing_units",
    "usage.pricing_unit",
    "adjustment_info.id",
    "adjustment_info.description",
    "adjustment_info.type",
    "adjustment_info.mode",
    "price.effective_price",
    "price.tier_start_amount",
    "price.unit",
    "price.pricing_unit_quantity",
    "cost_at_list",
    "transaction_type",
    "seller_name",
    "subscription.instance_id",
)
# Repeated records, kept as arrays of structs.
ARRAY_FIELDS = ("labels", "system_labels", "project.labels", "tags", "credits")
FLAT_COLUMNS = tuple(p.replace(".", "_") for p in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS, *ARRAY_FIELDS)) + (
    "credits_total",
)
TIMESTAMP_FIELDS = ("usage_start_time", "usage_end_time")

CHARGE_CATEGORY = {"regular": "Usage", "tax": "Tax", "adjustment": "Adjustment", "rounding_error": "Adjustment"}
CHARGE_FREQUENCY = {
    "regular": "Usage-Based",
    "tax": "Recurring",
    "adjustment": "One-Time",
    "rounding_error": "One-Time",
}
CUD_CATEGORY = {"COMMITTED_USAGE_DISCOUNT": "Usage", "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE": "Spend"}
INVOICE_TIME_ZONE = ZoneInfo("America/Los_Angeles")
PROVIDER_NAME = "Google Cloud"

REGION_NAMES = {
    "africa-south1": "Johannesburg",
    "asia-east1": "Taiwan",
    "asia-east2": "Hong Kong",
    "asia-northeast1": "Tokyo",
    "asia-northeast2": "Osaka",
    "asia-northeast3": "Seoul",
    "asia-south1": "Mumbai",
    "asia-south2": "Delhi",
    "asia-southeast1": "Singapore",
    "asia-southeast2": "Jakarta",
    "australia-southeast1": "Sydney",
    "australia-southeast2": "Melbourne",
    "europe-central2": "Warsaw",
    "europe-north1": "Finland",
    "europe-southwest1": "Madrid",
    "europe-west1": "Belgium",
    "europe-west2": "London",
    "europe-west3": "Frankfurt",
    "europe-west4": "Netherlands",
    "europe-west6": "Zurich",
    "europe-west8": "Milan",
    "europe-west9": "Paris",
    "europe-west10": "Berlin",
    "europe-west12": "Turin",
    "me-central1": "Doha",
    "me-central2": "Dammam",
    "me-west1": "Tel Aviv",
    "northamerica-northeast1": "Montréal",
    "northamerica-northeast2": "Toronto",
    "southamerica-east1": "São Paulo",
    "southamerica-west1": "Santiago",
    "us-central1": "Iowa",
    "us-east1": "South Carolina",
    "us-east4": "Northern Virginia",
    "us-east5": "Columbus",
    "us-south1": "Dallas",
    "us-west1": "Oregon",
    "us-west2": "Los Angeles",
    "us-west3": "Salt Lake City",
    "us-west4": "Las Vegas",
}
# resource.global_name ("//compute.googleapis.com/projects/p/zones/z/instances/1") -> "compute.instances":
# drop the scheme, the API domain, the project/location path segments and every resource id.
_RESOURCE_TYPE_NOISE = re.compile(
    r"(//)|(googleapis\.com/)|(projects/[^/]+/)|(project_commitments/[^/]+/)|(locations/[^/]+/)"
    r"|(regions/[^/]+/)|(zones/[^/]+/)|(global/)|(/[^/]+)"
)
_CURRENCY = re.compile(r"[A-Z]{3}")
_INVOICE_MONTH = re.compile(r"(\d{4})(0[1-9]|1[0-2])")
# BigQuery writes cost as FLOAT64: read at its shortest decimal, digits below the ledger's scale
# (binary noise of a double) are rounded.
_QUANTUM = Decimal(1).scaleb(-MONEY.scale)


def flat_name(path: str) -> str:
    return path.replace(".", "_")


# --- the export's schema -------------------------------------------------------------------


def check_export_fields(paths: dict[str, str], where: str) -> None:
    """Refuse an export without the fields the ledger needs, naming them."""
    missing = [p for p in REQUIRED_FIELDS if p not in paths]
    if missing:
        raise BadInputError(f"{where}: missing required billing export field(s) {', '.join(missing)}")


# --- one day out of the export, flattened ------------------------------------------------------


def select_list(paths: dict[str, str], dialect: str) -> list[str]:
    text = "STRING" if dialect == "bigquery" else "VARCHAR"
    cols = []
    for path in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS, *ARRAY_FIELDS):
        if path in paths:
            cols.append(f"e.{path} AS {flat_name(path)}")
        else:
            cols.append(f"CAST(NULL AS {text}) AS {flat_name(path)}")
    if "credits.amount" in paths:
        if dialect == "bigquery":
            # NUMERIC(38, 9) is BigQuery's NUMERIC, spelled out: bqemulator 1.4.0 translates a bare
            # NUMERIC to DuckDB's DECIMAL(18, 3) and would round every credit to a tenth of a cent.
            total = "IFNULL((SELECT SUM(CAST(c.amount AS NUMERIC(38, 9))) FROM UNNEST(e.credits) AS c), 0)"
        else:
            total = "COALESCE(list_sum(list_transform(e.credits, lambda c: TRY_CAST(c.amount AS DECIMAL(38, 9)))), 0)"
    else:
        total = "CAST(0 AS NUMERIC(38, 9))" if dialect == "bigquery" else "CAST(0 AS DECIMAL(38, 9))"
    cols.append(f"{total} AS credits_total")
    return cols


# --- the ledger ------------------------------------------------------------------------------


def _billing_period(month, where: str) -> tuple[datetime, datetime]:
    match = _INVOICE_MONTH.fullmatch(str(month or ""))
    if not match:
        raise BadInputError(f"{where}: field invoice.month = {month!r} is not a YYYYMM month")
    year, number = int(match[1]), int(match[2])
    start = datetime(year, number, 1, tzinfo=INVOICE_TIME_ZONE)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=INVOICE_TIME_ZONE)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def _pairs(entries) -> list[tuple[str, str]]:
    return [
        (str(e["key"]), str(e["value"])) for e in entries or [] if e.get("key") and e.get("value") not in (None, "")
    ]


def _tags(labels, project_labels, system_labels, tags) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    resource = {tag_key(k): v for k, v in _pairs(labels)}
    project = {tag_key(k): v for k, v in _pairs(project_labels)}
    merged = dict(resource)
    merged.update({f"project_label:{k}": v for k, v in project.items()})
    merged.update({f"system_label:{k}": v for k, v in _pairs(system_labels)})
    merged.update({f"tag:{k}": v for k, v in _pairs(tags)})
    return merged, resource, project


def _resource_type(global_name: str | None) -> str | None:
    if not global_name or not global_name.startswith("//"):
        return None
    return _RESOURCE_TYPE_NOISE.sub("", global_name) or None


def _columns(source: SourceFile) -> dict[str, list]:
    table = source.table
    if "service_id" not in table.column_names and "service" in table.column_names:
        table = flatten_export(table, source.uri)  # export rows as read, not flattened yet
    names = set(table.column_names)
    missing = [p for p in REQUIRED_FIELDS if flat_name(p) not in names]
    if missing:
        raise BadInputError(f"{source.uri}: missing required billing export field(s) {', '.join(missing)}")
    n = table.num_rows
    return {c: table.column(c).to_pylist() if c in names else [None] * n for c in FLAT_COLUMNS}


def gcp_to_focus(source: SourceFile, day: date) -> pa.Table:
    """The FOCUS ledger rows of `day` (by the UTC date of usage_start_time) in flat export rows."""
    expected = source.context  # the billing account the reader was configured for
    if not isinstance(expected, str) or not expected:
        raise ValueError(
            f"{source.uri}: no expected billing account id in SourceFile.context; "
            "the reader must be configured with the account the export belongs to"
        )
    cols = _columns(source)
    rows = []
    tags_cache: dict[str, tuple] = {}
    for i, line in enumerate(source.row_numbers()):
        where = f"{source.uri} row {line}"
        v = {name: values[i] for name, values in cols.items()}
        account = v["billing_account_id"]
        if account != expected:
            raise BadInputError(
                f"{where}: field billing_account_id = {account!r} is not the configured billing account {expected!r}"
            )
        start = utc_instant(v["usage_start_time"], f"{where}: field usage_start_time", naive_is_utc=True)
        end = utc_instant(v["usage_end_time"], f"{where}: field usage_end_time", naive_is_utc=True)
        cost = decimal_value(v["cost"], f"{where}: field cost")
        currency = v["currency"]
        if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
            raise BadInputError(f"{where}: field currency = {currency!r} is not an ISO 4217 currency code")
        cost_type = v["cost_type"]
        if cost_type not in CHARGE_CATEGORY:
            raise BadInputError(
                f"{where}: field cost_type = {cost_type!r} is not a known cost type ({', '.join(CHARGE_CATEGORY)})"
            )
        credits = v["credits"] or []
        for credit in credits:
            decimal_value(credit.get("amount"), f"{where}: field credits.amount")
        credits_total = decimal_value(
            v["credits_total"] if v["credits_total"] is not None else 0, f"{where}: field credits"
        )
        period_start, period_end = _billing_period(v["invoice_month"], where)
        if end < start:
            raise BadInputError(f"{where}: usage_end_time {end.isoformat()} is before usage_start_time")
        if start.date() != day:
            continue
        key = json.dumps([v["labels"], v["project_labels"], v["system_labels"], v["tags"]], sort_keys=True, default=str)
        if key not in tags_cache:
            merged, resource, project = _tags(v["labels"], v["project_labels"], v["system_labels"], v["tags"])
            attribution = {
                column: next((labels[k] for labels in (resource, project) for k in keys if k in labels), None)
                for column, keys in ATTRIBUTION_TAGS.items()
            }
            tags_cache[key] = (json.dumps(merged, sort_keys=True), attribution)
        tags_json, attribution = tags_cache[key]
        net = (cost + credits_total).quantize(_QUANTUM)
        list_cost = optional_decimal(v["cost_at_list"], f"{where}: field cost_at_list")
        regular = cost_type == "regular"
        cud = next((c for c in credits if c.get("type") in CUD_CATEGORY), None)
        commitment_id = (v["subscription_instance_id"] or (cud or {}).get("id")) if cud else None
        sku_description = v["sku_description"] or ""
        adjusted = any(v[f"adjustment_info_{f}"] is not None for f in ("id", "description", "type", "mode"))
        region = v["location_region"]
        publisher = v["seller_name"] if v["transaction_type"] not in (None, "GOOGLE") and v["seller_name"] else None
        tier = v["price_tier_start_amount"]
        row_hash = hashlib.sha256(
            "|".join(
                str(x)
                for x in (
                    source.uri,
                    line,
                    account,
                    v["project_id"],
                    v["sku_id"],
                    start.isoformat(),
                    cost,
                    credits_total,
                    cost_type,
                    v["export_time"],
                    tags_json,
                )
            ).encode()
        ).hexdigest()
        rows.append(
            {
                "BillingAccountId": account,
                "BillingAccountName": None,  # the export carries no account name
                "SubAccountId": v["project_id"],
                "SubAccountName": v["project_name"],
                "BillingCurrency": currency,
                "BillingPeriodStart": period_start,
                "BillingPeriodEnd": period_end,
                "ChargePeriodStart": start,
                "ChargePeriodEnd": end,
                "ChargeCategory": CHARGE_CATEGORY[cost_type],
                "ChargeClass": "Correction" if adjusted else None,
                "ChargeFrequency": CHARGE_FREQUENCY[cost_type],
                "ChargeDescription": v["sku_description"] or v["adjustment_info_description"],
                "BilledCost": net,
                "EffectiveCost": net,
                "ListCost": (list_cost if list_cost is not None else cost).quantize(_QUANTUM),
                "ContractedCost": cost.quantize(_QUANTUM),
                "ListUnitPrice": None,
                "ContractedUnitPrice": optional_decimal(
                    v["price_effective_price"], f"{where}: field price.effective_price"
                )
                if regular
                else None,
                "PricingQuantity": optional_decimal(
                    v["usage_amount_in_pricing_units"], f"{where}: field usage.amount_in_pricing_units"
                )
                if regular
                else None,
                "PricingUnit": v["usage_pricing_unit"] if regular else None,
                "PricingCategory": (
                    ("Committed" if cud or sku_description.lower().startswith("commitment") else "Standard")
                    if regular
                    else None
                ),
                "ConsumedQuantity": optional_decimal(v["usage_amount"], f"{where}: field usage.amount")
                if regular
                else None,
                "ConsumedUnit": v["usage_unit"] if regular else None,
                # FOCUS 1.3: a Marketplace charge is its seller's service, run on Google Cloud
                "ServiceProviderName": publisher or PROVIDER_NAME,
                "HostProviderName": PROVIDER_NAME,
                "ProviderName": PROVIDER_NAME,
                "PublisherName": publisher or PROVIDER_NAME,
                "InvoiceIssuerName": PROVIDER_NAME,
                "InvoiceId": None,  # the export names the invoice month, not the invoice
                "ServiceName": v["service_description"],
                "ServiceCategory": SERVICE_CATEGORY.get(v["service_description"], "Other"),
                "ServiceSubcategory": SERVICE_SUBCATEGORY.get(v["service_description"])
                or other_subcategory(SERVICE_CATEGORY.get(v["service_description"], "Other")),
                "RegionId": region,
                "RegionName": REGION_NAMES.get(region) if region else None,
                "AvailabilityZone": v["location_zone"],
                "ResourceId": v["resource_global_name"],
                "ResourceName": v["resource_name"],
                "ResourceType": _resource_type(v["resource_global_name"]),
                "SkuId": v["sku_id"] if regular else None,
                "SkuPriceId": f"{v['sku_id']}:{tier}" if regular and tier is not None else None,
                "CommitmentDiscountId": commitment_id,
                "CommitmentDiscountCategory": CUD_CATEGORY[cud["type"]] if cud else None,
                "CommitmentDiscountName": (cud.get("full_name") or cud.get("name")) if cud else None,
                "CommitmentDiscountStatus": "Used" if cud and regular else None,
                "CommitmentDiscountType": "Committed Use Discount" if cud else None,
                "Tags": tags_json,
                "x_SourceProvider": PROVIDER,
                "x_SourceUri": source.uri,
                "x_SourceRowNumber": line,
                "x_SourceRowHash": row_hash,
                "x_LineItemType": cost_type,
                **attribution,
            }
        )
    return pa.Table.from_pylist(rows, schema=LEDGER_SCHEMA)


def gcp_daily_totals(source: SourceFile) -> DailyTotals:
    """Net cost (cost plus its credits) per UTC usage day and currency straight from the raw values: plain
    Decimal arithmetic on `cost` and each credit's `amount`, apart from the SQL's `credits_total` and
    from `gcp_to_focus`, so that the reconciliation has an independent witness."""
    table = source.table
    for column in ("usage_start_time", "cost", "currency"):
        if column not in table.column_names:
            raise BadInputError(f"{source.uri}: missing required billing export field {column}")
    starts = table.column("usage_start_time").to_pylist()
    costs = table.column("cost").to_pylist()
    currencies = table.column("currency").to_pylist()
    credits = table.column("credits").to_pylist() if "credits" in table.column_names else [None] * len(costs)
    totals: DailyTotals = {}
    for line, start, cost, currency, row_credits in zip(
        source.row_numbers(), starts, costs, currencies, credits, strict=True
    ):
        try:
            moment = start if isinstance(start, datetime) else datetime.fromisoformat(str(start).replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            amount = Decimal(str(cost)) + sum((Decimal(str(c["amount"])) for c in row_credits or []), Decimal(0))
        except (ArithmeticError, ValueError, TypeError, KeyError) as exc:
            raise BadInputError(
                f"{source.uri} row {line}: unreadable usage_start_time, cost or credits ({exc})"
            ) from exc
        add_total(totals, moment.astimezone(timezone.utc).date().isoformat(), str(currency or ""), amount)
    return totals


def gcp_cost_totals(source: SourceFile) -> CostTotals:
    """The four costs per UTC usage day and currency from the raw values, in plain Decimal arithmetic
    apart from the normalisation: BilledCost and EffectiveCost are the net cost (cost plus its
    credits, as `gcp_daily_totals`), ContractedCost the gross cost, ListCost `cost_at_list` (the
    gross cost where the export has none)."""
    net = gcp_daily_totals(source)
    table = source.table
    starts = table.column("usage_start_time").to_pylist()
    costs = table.column("cost").to_pylist()
    currencies = table.column("currency").to_pylist()
    at_list = table.column("cost_at_list").to_pylist() if "cost_at_list" in table.column_names else costs
    gross: DailyTotals = {}
    listed: DailyTotals = {}
    for line, start, cost, listed_cost, currency in zip(
        source.row_numbers(), starts, costs, at_list, currencies, strict=True
    ):
        moment = start if isinstance(start, datetime) else datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        day = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).date()
        try:
            amount = Decimal(str(cost))
            list_amount = amount if listed_cost is None else Decimal(str(listed_cost))
        except ArithmeticError as exc:
            raise BadInputError(f"{source.uri} row {line}: unreadable cost or cost_at_list ({exc})") from exc
        add_total(gross, day.isoformat(), str(currency or ""), amount)
        add_total(listed, day.isoformat(), str(currency or ""), list_amount)
    return {"BilledCost": net, "EffectiveCost": net, "ListCost": listed, "ContractedCost": gross}


def client_kwargs(endpoint: str | None) -> dict:
    if not endpoint:
        return {}
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    return {"credentials": AnonymousCredentials(), "client_options": ClientOptions(api_endpoint=endpoint)}


def arrow_paths(schema: pa.Schema) -> dict[str, str]:
    """Dotted path -> type of every field of an Arrow schema (records are walked, arrays are leaves)."""
    out: dict[str, str] = {}

    def walk(prefix: str, fields) -> None:
        for field in fields:
            path = f"{prefix}{field.name}"
            if pa.types.is_struct(field.type):
                out[path] = "RECORD"
                walk(f"{path}.", list(field.type))
            elif pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
                out[path] = "REPEATED"
                item = field.type.value_type
                if pa.types.is_struct(item):
                    walk(f"{path}.", list(item))
            elif pa.types.is_timestamp(field.type):
                out[path] = "TIMESTAMP"
            elif pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
                out[path] = "STRING"
            else:
                out[path] = str(field.type)

    walk("", schema)
    return out


def flatten_export(table: pa.Table, uri: str) -> pa.Table:
    """The same flat rows as `bigquery_day_sql`, from export rows read from Parquet (every day in
    the file: the day is chosen by `gcp_to_focus`), in the file's row order."""
    paths = arrow_paths(table.schema)
    check_export_fields(paths, uri)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("export", table)
    select = ",\n  ".join(select_list(paths, "duckdb"))
    try:
        return con.sql(f"SELECT\n  {select}\nFROM export AS e").to_arrow_table()
    except duckdb.Error as exc:
        raise BadInputError(f"{uri}: cannot read the billing export rows: {exc}") from exc
