"""The cost ledger's format, shared by every billing source: the FOCUS columns and their types
(LEDGER_SCHEMA) with the x_ lineage and attribution columns, how tag keys name the attribution
columns, and the export file every source's reader hands to its normalisation (SourceFile)."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pydantic

from rai_pipelines.core.errors import BadInputError

# Costs keep 18 decimal places: providers write costs of 16 decimals (0.0122642774999509) and in
# scientific notation (2.323760000E-9, 1.81E-8), and a bill's total still has 20 integer digits of
# headroom. A value that needs more places is refused, naming its file, line and field, never rounded.
MONEY = pa.decimal128(38, 18)
MONEY_SQL = "DECIMAL(38,18)"
TOO_PRECISE = f"has more decimal places than the ledger keeps ({MONEY.scale}); it is refused rather than rounded"


def too_precise_sql(text: str) -> str:
    """DuckDB condition: the number written in `text` (plain or scientific notation) needs more
    decimal places than MONEY has, so casting it would round it silently."""
    fraction = f"rtrim(regexp_extract({text}, '\\.([0-9]+)', 1), '0')"
    exponent = f"COALESCE(TRY_CAST(NULLIF(regexp_extract({text}, '[eE]([+-]?[0-9]+)$', 1), '') AS INTEGER), 0)"
    return f"(length({fraction}) - {exponent}) > {MONEY.scale}"


# Tag keys (after the provider prefix is dropped and '-' folded to '_') -> attribution column.
ATTRIBUTION_TAGS = {
    "x_ModelName": ("model_name", "model"),
    "x_ModelVersion": ("model_version",),
    "x_Team": ("team", "owner_team"),
    "x_Environment": ("environment", "env"),
    "x_Workload": ("workload", "app", "application"),
}

# FOCUS 1.2's ServiceSubcategory values, each under its one parent ServiceCategory. A service no
# subcategory fits is "Other (<its category>)", as the specification asks.
SERVICE_SUBCATEGORIES = {
    "AI and Machine Learning": ("AI Platforms", "Bots", "Generative AI", "Machine Learning",
                                "Natural Language Processing"),
    "Analytics": ("Analytics Platforms", "Business Intelligence", "Data Processing", "Search", "Streaming Analytics"),
    "Business Applications": ("Productivity and Collaboration",),
    "Compute": ("Containers", "End User Computing", "Quantum Compute", "Serverless Compute", "Virtual Machines"),
    "Databases": ("Caching", "Data Warehouses", "Ledger Databases", "NoSQL Databases", "Relational Databases",
                  "Time Series Databases"),
    "Developer Tools": ("Developer Platforms", "Continuous Integration and Deployment", "Development Environments",
                        "Source Code Management", "Quality Assurance"),
    "Identity": ("Identity and Access Management",),
    "Integration": ("API Management", "Messaging", "Workflow Orchestration"),
    "Internet of Things": ("IoT Analytics", "IoT Platforms"),
    "Management and Governance": ("Architecture", "Compliance", "Cost Management", "Data Governance",
                                  "Disaster Recovery", "Endpoint Management", "Observability", "Support"),
    "Media": ("Content Creation", "Gaming", "Media Streaming", "Mixed Reality"),
    "Migration": ("Data Migration", "Resource Migration"),
    "Mobile": (),
    "Multicloud": ("Multicloud Integration",),
    "Networking": ("Application Networking", "Content Delivery", "Network Connectivity", "Network Infrastructure",
                   "Network Routing", "Network Security"),
    "Security": ("Secret Management", "Security Posture Management", "Threat Detection and Response"),
    "Storage": ("Backup Storage", "Block Storage", "File Storage", "Object Storage", "Storage Platforms"),
    "Web": ("Application Platforms",),
    "Other": (),
}  # fmt: skip
# subcategory -> its parent category, "Other (<category>)" included
SUBCATEGORY_PARENT = {
    sub: category for category, subs in SERVICE_SUBCATEGORIES.items() for sub in (*subs, f"Other ({category})")
}


# FOCUS's UnitFormat: a count or data-size unit, alone ("Requests", "GB"), over a plural time unit
# ("GB-Hours", "GPU-Hours"), per a singular one ("Requests/Second"), or with a block size
# ("1000 Requests"); time units are spelled out ("Hours", never "Hrs" or "hour").
_TIME_SINGULAR = "Year|Month|Day|Hour|Minute|Second"
_TIME_PLURAL = "Years|Months|Days|Hours|Minutes|Seconds"
_COUNT = r"[A-Za-z][A-Za-z0-9]*(?: [A-Za-z][A-Za-z0-9]*)*"
FOCUS_UNIT = re.compile(
    rf"(?:{_COUNT})|(?:{_COUNT})-(?:{_TIME_PLURAL})|(?:{_COUNT})/(?:{_TIME_SINGULAR})|[0-9]+ (?:{_COUNT})"
)
_LOWER_TIME = re.compile(r"(?i)\b(?:years?|months?|days?|hours?|hrs?|minutes?|mins?|seconds?|secs?)$")


def is_focus_unit(unit: str) -> bool:
    """Whether `unit` is written in FOCUS's UnitFormat (time units spelled out and capitalised)."""
    if not FOCUS_UNIT.fullmatch(unit):
        return False
    time_part = re.split(r"[-/ ]", unit)[-1]
    # "GPU-hour" and "Hrs" match the count grammar but are time units FOCUS spells "Hours"
    return not (
        _LOWER_TIME.fullmatch(time_part) and time_part not in (*_TIME_SINGULAR.split("|"), *_TIME_PLURAL.split("|"))
    )


def other_subcategory(category: str | None) -> str:
    """The subcategory of a service no FOCUS subcategory fits: "Other (<category>)"."""
    return f"Other ({category if category in SERVICE_SUBCATEGORIES else 'Other'})"


def other_subcategory_sql(category_sql: str) -> str:
    """DuckDB: "Other (<category>)" for a category expression."""
    return f"'Other (' || COALESCE({category_sql}, 'Other') || ')'"


LEDGER_SCHEMA = pa.schema(
    [
        ("BillingAccountId", pa.string()),
        ("BillingAccountName", pa.string()),
        ("SubAccountId", pa.string()),
        ("SubAccountName", pa.string()),
        ("BillingCurrency", pa.string()),
        ("BillingPeriodStart", pa.timestamp("us", tz="UTC")),
        ("BillingPeriodEnd", pa.timestamp("us", tz="UTC")),
        ("ChargePeriodStart", pa.timestamp("us", tz="UTC")),
        ("ChargePeriodEnd", pa.timestamp("us", tz="UTC")),
        ("ChargeCategory", pa.string()),
        ("ChargeClass", pa.string()),
        ("ChargeFrequency", pa.string()),
        ("ChargeDescription", pa.string()),
        ("BilledCost", MONEY),
        ("EffectiveCost", MONEY),
        ("ListCost", MONEY),
        ("ContractedCost", MONEY),
        ("ListUnitPrice", MONEY),
        ("ContractedUnitPrice", MONEY),
        ("PricingQuantity", pa.decimal128(38, 12)),
        ("PricingUnit", pa.string()),
        ("PricingCategory", pa.string()),
        ("ConsumedQuantity", pa.decimal128(38, 12)),
        ("ConsumedUnit", pa.string()),
        # FOCUS 1.3 names who provides a service and who hosts it; ProviderName and PublisherName,
        # which 1.3 deprecates, are kept for FOCUS 1.2 readers.
        ("ServiceProviderName", pa.string()),
        ("HostProviderName", pa.string()),
        ("ProviderName", pa.string()),
        ("PublisherName", pa.string()),
        ("InvoiceIssuerName", pa.string()),
        ("InvoiceId", pa.string()),
        ("ServiceName", pa.string()),
        ("ServiceCategory", pa.string()),
        ("ServiceSubcategory", pa.string()),
        ("RegionId", pa.string()),
        ("RegionName", pa.string()),
        ("AvailabilityZone", pa.string()),
        ("ResourceId", pa.string()),
        ("ResourceName", pa.string()),
        ("ResourceType", pa.string()),
        ("SkuId", pa.string()),
        ("SkuPriceId", pa.string()),
        ("CommitmentDiscountId", pa.string()),
        ("CommitmentDiscountCategory", pa.string()),
        ("CommitmentDiscountName", pa.string()),
        ("CommitmentDiscountStatus", pa.string()),
        ("CommitmentDiscountType", pa.string()),
        # FOCUS 1.1 and 1.2 columns a provider's FOCUS export carries and the CUR has no source for
        ("CommitmentDiscountQuantity", pa.decimal128(38, 12)),
        ("CommitmentDiscountUnit", pa.string()),
        ("BillingAccountType", pa.string()),
        ("SubAccountType", pa.string()),
        ("CapacityReservationId", pa.string()),
        ("CapacityReservationStatus", pa.string()),
        ("PricingCurrency", pa.string()),
        ("PricingCurrencyContractedUnitPrice", MONEY),
        ("PricingCurrencyEffectiveCost", MONEY),
        ("PricingCurrencyListUnitPrice", MONEY),
        ("SkuMeter", pa.string()),
        ("SkuPriceDetails", pa.string()),
        # FOCUS 1.3: the contract commitments a charge counts towards, and the allocation columns
        # (JSON objects as text where FOCUS has an object)
        ("ContractApplied", pa.string()),
        ("AllocatedMethodId", pa.string()),
        ("AllocatedMethodDetails", pa.string()),
        ("AllocatedResourceId", pa.string()),
        ("AllocatedResourceName", pa.string()),
        ("AllocatedTags", pa.string()),
        ("Tags", pa.string()),
        ("x_SourceProvider", pa.string()),
        ("x_SourceUri", pa.string()),
        ("x_SourceRowNumber", pa.int64()),
        ("x_SourceRowHash", pa.string()),
        ("x_LineItemType", pa.string()),
        ("x_Workload", pa.string()),
        ("x_ModelName", pa.string()),
        ("x_ModelVersion", pa.string()),
        ("x_Team", pa.string()),
        ("x_Environment", pa.string()),
        # the export's own x_ columns (x_BilledCostInUsd, x_Discounts, ...), as one JSON object per row
        ("x_ProviderColumns", pa.string()),
    ]
)
# The FOCUS columns above that only a FOCUS export fills (a CUR, a GCP export or on-premises rates
# leave them empty), and the ledger's types for them.
FOCUS_EXPORT_ONLY = (
    "CommitmentDiscountQuantity", "CommitmentDiscountUnit", "BillingAccountType", "SubAccountType",
    "CapacityReservationId", "CapacityReservationStatus", "PricingCurrency", "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice", "SkuMeter", "SkuPriceDetails",
    "ContractApplied", "AllocatedMethodId", "AllocatedMethodDetails", "AllocatedResourceId", "AllocatedResourceName",
    "AllocatedTags",
)  # fmt: skip


@functools.lru_cache(maxsize=65_536)
def tag_key(raw: str) -> str:
    """Normalise a resource tag key across export formats: `user:model-name`, `user_model_name`
    and `model-name` all become `model_name`; AWS-generated `aws:` keys keep their prefix."""
    key = raw
    for prefix in ("resource_tags_", "resourceTags/"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    if key.startswith("user:"):
        key = key[5:]
    elif key.startswith("user_"):
        key = key[5:]
    return key.replace("-", "_").replace(":", "_").lower()


# Rows per batch of the streamed normalisation: large enough that DuckDB's per-query overhead is
# noise, small enough for the CPU caches (measured: Parquet decodes a 64k batch fastest).
BATCH_ROWS = 65_536


@dataclass(frozen=True)
class ParquetInput:
    """A Parquet export file read batch by batch, with only the columns the ledger needs."""

    filesystem: pafs.FileSystem
    path: str
    uri: str

    def _file(self):
        import pyarrow.parquet as pq

        try:
            # Buffered page reads, not whole column chunks: a row group of a million rows would
            # otherwise be held decoded at once (measured: 690 MB against 410 MB, and slower).
            return pq.ParquetFile(self.filesystem.open_input_file(self.path), buffer_size=1 << 20, pre_buffer=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BadInputError(f"{self.uri}: not a readable Parquet file: {exc}") from exc

    # The footer is read once: layout, witness and row numbers all ask for it.
    @functools.cached_property
    def schema(self) -> pa.Schema:
        return self._file().schema_arrow

    @functools.cached_property
    def num_rows(self) -> int:
        return self._file().metadata.num_rows

    def batches(self, columns: list[str], batch_size: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        reader = self._file()
        try:
            yield from reader.iter_batches(batch_size=batch_size, columns=columns, use_threads=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BadInputError(f"{self.uri}: not a readable Parquet file: {exc}") from exc


@dataclass(frozen=True)
class SourceFile:
    """One export file: where it is and its rows, either read (`table`) or streamed (`parquet`)."""

    uri: str
    table: pa.Table | None
    first_data_line: int = 2  # CSV: line 1 is the header. Parquet: row numbers start at 1.
    kind: str = "aws_cur"  # which normalisation reads it: "aws_cur" or "onprem"
    # What that normalisation needs besides the file: the declared rates (on-prem), the billing
    # account the export must belong to (cloud exports).
    context: object = None
    # CSV only: the physical line of each row, when blank lines or quoted line breaks make it
    # differ from first_data_line + row index.
    row_lines: list[int] | None = None
    parquet: ParquetInput | None = None

    @classmethod
    def streamed(cls, parquet: ParquetInput, kind: str = "aws_cur", context: object = None) -> SourceFile:
        return cls(parquet.uri, None, first_data_line=1, kind=kind, context=context, parquet=parquet)

    @property
    def schema(self) -> pa.Schema:
        return self.parquet.schema if self.parquet is not None else self.table.schema

    def row_numbers(self) -> list[int]:
        if self.row_lines is not None:
            return self.row_lines
        return list(range(self.first_data_line, self.first_data_line + self.num_rows))

    @property
    def num_rows(self) -> int:
        return self.parquet.num_rows if self.parquet is not None else self.table.num_rows

    def batches(self, columns: list[str], batch_size: int = BATCH_ROWS) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
        """(batch, the row number of each of its rows), `columns` only, in file order."""
        if self.parquet is not None:
            offset = self.first_data_line
            for batch in self.parquet.batches(columns, batch_size):
                yield batch, pa.array(np.arange(offset, offset + batch.num_rows, dtype=np.int64))
                offset += batch.num_rows
            return
        table = self.table.select(columns)
        lines = pa.array(self.row_numbers(), pa.int64())
        start = 0
        for batch in table.to_batches(max_chunksize=batch_size):
            yield batch, lines.slice(start, batch.num_rows)
            start += batch.num_rows


def duckdb_connection(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection in UTC; `threads` caps its threads (one per worker when batches already
    run on every core: more would only contend for them)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    return con


class WorkerCursors:
    """One DuckDB database for a file's worker threads and a cursor (connection) for each, in UTC:
    one buffer pool for the file, not one a thread; a cursor is never shared across threads."""

    def __init__(self) -> None:
        self.database = duckdb_connection(threads=1)
        self._local = threading.local()

    def get(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self.database.cursor()
            cursor.execute("SET TimeZone = 'UTC'")
        return cursor

    def close(self) -> None:
        self.database.close()


def split_by_day(result: pa.Table, wanted: set[date]) -> Iterator[tuple[date, pa.Table]]:
    """The rows of each wanted day, without the ledger_day column."""
    if not result.num_rows:
        return
    days = result.column("ledger_day")
    rows = result.drop_columns(["ledger_day"])
    distinct = pc.unique(days).to_pylist()
    if len(distinct) == 1:
        if distinct[0] in wanted:
            yield distinct[0], rows
        return
    for ledger_day in sorted(d for d in distinct if d in wanted):
        yield ledger_day, rows.filter(pc.equal(days, pa.scalar(ledger_day, pa.date32())))


def empty_ledger() -> pa.Table:
    return LEDGER_SCHEMA.empty_table()


def first_bad_rows_sql(conditions: list[str], table: str) -> str:
    """One pass over a batch for every check: the first source row each condition finds bad."""
    firsts = ", ".join(f"min(CASE WHEN {condition} THEN source_row_number END)" for condition in conditions)
    return f"SELECT {firsts} FROM {table}"


class SourceConfig(pydantic.BaseModel):
    """How one billing source is declared (a YAML entry, or the resource's config): unknown fields
    are refused, so a misspelt field is an error rather than a default silently used."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class SourceKind:
    """What a billing source kind supplies, one entry of `costs.sources.SOURCE_KINDS`: how it is
    declared, the reader that finds its files (`fingerprint(day)`, `read(day)`), how one of those
    files becomes ledger rows (`days`: (day, batch) pairs of the days asked for, in one pass), and
    its independent witness of each day's billed total (`daily_totals`) and of all four costs
    (`cost_totals`)."""

    config: type[SourceConfig]
    reader: Callable[[Any], Any]
    days: Callable[[SourceFile, list[date]], Iterator[tuple[date, pa.RecordBatch]]]
    daily_totals: Callable[[SourceFile], dict[str, dict[str, Decimal]]]  # day -> currency -> billed
    # cost column -> day -> currency -> total, for BilledCost, EffectiveCost, ListCost and
    # ContractedCost, in one pass: the witness of every reconciled cost
    cost_totals: Callable[[SourceFile], dict[str, dict[str, dict[str, Decimal]]]] | None = None


def day_by_day(to_focus: Callable[[SourceFile, date], pa.Table]):
    """`SourceKind.days` for a normalisation that builds one day's table at a time."""

    def days(source: SourceFile, wanted: list[date]) -> Iterator[tuple[date, pa.RecordBatch]]:
        for day in sorted(wanted):
            for batch in to_focus(source, day).to_batches():
                yield day, batch

    return days
