"""The shared-cost rules declared in Git: which ledger charges are a shared pool's (a GPU node pool, a
cluster, a shared endpoint), how each pool's cost is split among the model versions that used it, and
how much of it the pool could have offered (its idle share).

    shared_pools:
      - name: gpu-node-pool
        match: {ResourceId: "arn:aws:eks:*:nodegroup/ml-shared/gpu-*"}
        split: gpu_hours          # requests | gpu_hours | inferences | even
        capacity: 192             # GPU-hours a day the pool offers: the unused share is idle
        among: [credit-scoring-ai, employment-screening-ai]   # default: every version in the day's usage
      - name: ml-cluster
        match: {ServiceName: Amazon Elastic Kubernetes Service, tags: {cluster: ml-shared}}
        split: requests

A charge matches a pool when every condition of its `match` holds: a ledger column (or a tag of the
charge's Tags) equal to the pattern, or matching it as a shell-style glob (`*`, `?`, `[...]`); a
missing value matches nothing. Pools are tried in the order declared and the first match wins, so an
overlap is resolved where it is written. Tag keys are normalised as the ledger normalises them
(`user:Node-Pool` and `node_pool` are one key). Unknown keys, a split the allocation does not know, a
capacity that is not a positive number, or a capacity on an even split are refused, naming the field.

The usage the split divides by (USAGE_SCHEMA) is checked here too, and each pool's day becomes its
lines (`pool_elements`): the versions' ratios and, when a declared capacity is not used up, the idle
line, with the usage behind each ratio in FOCUS 1.3's AllocatedMethodDetails shape; each aggregated
charge of a pool is then split into those lines (`element_pairs`, `split_shares`), in Arrow.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pydantic

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.registry import validate_model_name
from rai_pipelines.core.yamlfile import check_yaml_bounds, read_yaml_mapping
from rai_pipelines.costs.ledger_schema import MONEY, tag_key

# Each model version's usage of a day, which the caller builds from inference logs and telemetry; a
# null is unknown (never zero): requests split by cpu_request_core_hours, gpu_hours by gpu_hours,
# inferences by inferences; the token counts only serve cost per million tokens.
USAGE_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("inferences", pa.int64()),
        ("cpu_request_core_hours", pa.float64()),
        ("gpu_hours", pa.float64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
    ]
)
MAX_USAGE_ROWS = 1_000_000


@dataclass(frozen=True)
class Split:
    """What a split rule divides a pool's cost by: the usage table's column and FOCUS's unit for it."""

    usage_column: str | None  # None: an even split, by the number of versions
    unit: str | None


SPLITS = {
    "requests": Split("cpu_request_core_hours", "Core-Hours"),
    "gpu_hours": Split("gpu_hours", "GPU-Hours"),
    "inferences": Split("inferences", "Inferences"),
    "even": Split(None, None),
}

# The ledger columns a pool may be matched on (FOCUS names and the attribution columns): a fixed list,
# so that a rule names a column only through this list and never reaches the SQL as text.
MATCH_COLUMNS = (
    "ResourceId", "ResourceName", "ResourceType", "ServiceName", "ServiceCategory", "ServiceSubcategory",
    "SubAccountId", "SubAccountName", "RegionId", "AvailabilityZone", "SkuId", "ChargeDescription",
    "x_Workload", "x_Team", "x_Environment",
)  # fmt: skip

MAX_POOLS = 200
_GLOB_CHARS = re.compile(r"[*?\[]")
# After the ledger's normalisation, a key Python's JSON writer leaves as it is: found in the Tags text
# as "key", which lets a cheap substring test skip the JSON parse for rows without the key.
_TAG_KEY = re.compile(r"[a-z0-9_./@+=]{1,128}")

Pattern = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=512)]
PoolName = Annotated[str, pydantic.StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]


class _Strict(pydantic.BaseModel):
    # Unknown keys are refused (a misspelt `capacty` must not silently mean "no idle line"), and
    # values are not coerced between types.
    model_config = pydantic.ConfigDict(extra="forbid", strict=True, frozen=True)


class PoolMatch(_Strict):
    ResourceId: Pattern | None = None
    ResourceName: Pattern | None = None
    ResourceType: Pattern | None = None
    ServiceName: Pattern | None = None
    ServiceCategory: Pattern | None = None
    ServiceSubcategory: Pattern | None = None
    SubAccountId: Pattern | None = None
    SubAccountName: Pattern | None = None
    RegionId: Pattern | None = None
    AvailabilityZone: Pattern | None = None
    SkuId: Pattern | None = None
    ChargeDescription: Pattern | None = None
    x_Workload: Pattern | None = None
    x_Team: Pattern | None = None
    x_Environment: Pattern | None = None
    tags: Annotated[dict[Annotated[str, pydantic.StringConstraints(min_length=1, max_length=128)], Pattern],
                    pydantic.Field(max_length=32)] = {}  # fmt: skip

    @pydantic.field_validator("tags")
    @classmethod
    def _tag_keys(cls, tags: dict[str, str]) -> dict[str, str]:
        normalised = {}
        for raw, pattern in tags.items():
            key = tag_key(raw)
            if not _TAG_KEY.fullmatch(key):
                raise ValueError(f"tag key {raw!r}: letters, digits and _ . / @ + = - : only")
            if key in normalised:
                raise ValueError(f"tag keys {raw!r} and another one are the same key ({key}) once normalised")
            normalised[key] = pattern
        return normalised

    @pydantic.model_validator(mode="after")
    def _some_condition(self) -> PoolMatch:
        if not self.conditions():
            raise ValueError("match has no condition: it would take every charge")
        return self

    def conditions(self) -> list[tuple[str, str]]:
        """(column, pattern) for each ledger column named, in MATCH_COLUMNS order."""
        return [(column, getattr(self, column)) for column in MATCH_COLUMNS if getattr(self, column) is not None] + [
            (f"tags.{key}", pattern) for key, pattern in sorted(self.tags.items())
        ]


class SharedPool(_Strict):
    name: PoolName
    match: PoolMatch
    split: Literal["requests", "gpu_hours", "inferences", "even"]
    # in the split's unit per day (GPU-hours, CPU request core-hours, inferences)
    capacity: Annotated[float, pydantic.Field(gt=0, allow_inf_nan=False)] | None = None
    among: Annotated[list[str], pydantic.Field(min_length=1, max_length=500)] | None = None

    @pydantic.field_validator("among")
    @classmethod
    def _models(cls, among: list[str]) -> list[str]:
        for name in among:
            validate_model_name(name, "among")
        if len(set(among)) != len(among):
            raise ValueError("names a model twice")
        return among

    @pydantic.model_validator(mode="after")
    def _capacity_has_a_unit(self) -> SharedPool:
        if self.split == "even" and self.capacity is not None:
            raise ValueError("capacity: an even split has no unit to measure a capacity in")
        return self

    @property
    def unit(self) -> Split:
        return SPLITS[self.split]


class AllocationRules(_Strict):
    shared_pools: Annotated[list[SharedPool], pydantic.Field(max_length=MAX_POOLS)] = []

    @pydantic.model_validator(mode="after")
    def _unique_names(self) -> AllocationRules:
        names = [pool.name for pool in self.shared_pools]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"shared pool names must be unique: {', '.join(twice)}")
        return self


def rules_from_mapping(document: object, where: str) -> AllocationRules:
    """Validate a parsed rules document, naming the field of every problem."""
    try:
        return AllocationRules.model_validate(document)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise BadInputError(f"{where}: {problems}") from None


def parse_rules(text: str, where: str) -> AllocationRules:
    """Rules from YAML text (bounded before it is expanded)."""
    from ruamel.yaml import YAML

    check_yaml_bounds(text, where)
    try:
        document = YAML(typ="safe").load(text)
    except Exception as exc:  # ruamel raises many parser error types
        raise BadInputError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise BadInputError(f"{where}: expected a mapping at the top level")
    return rules_from_mapping(document, where)


def load_rules(path: str | Path) -> AllocationRules:
    """Rules from a YAML file in Git (costs/allocation.yaml)."""
    return rules_from_mapping(read_yaml_mapping(path), str(path))


def pool_sql(rules: AllocationRules) -> tuple[str, list[str]]:
    """DuckDB expression numbering each ledger row's allocation: -1 direct (model name and version
    tagged), the index of the first pool it matches, else -2 untagged; and its parameters (every
    pattern travels as a parameter, never as SQL text)."""
    params: list[str] = []
    whens = ["WHEN x_ModelName <> '' AND x_ModelVersion <> '' THEN -1"]
    for index, pool in enumerate(rules.shared_pools):
        terms = []
        for column, pattern in pool.match.conditions():
            operator = "GLOB" if _GLOB_CHARS.search(pattern) else "="
            if column.startswith("tags."):
                key = column[len("tags.") :]
                # The substring test first: the JSON is parsed only where the key is written.
                terms.append(f"(contains(Tags, ?) AND json_extract_string(Tags, ?) {operator} ?)")
                params += [f'"{key}"', f'$."{key}"', pattern]
            else:
                terms.append(f'"{column}" {operator} ?')
                params.append(pattern)
        whens.append(f"WHEN {' AND '.join(terms)} THEN {index}")
    return f"CASE {' '.join(whens)} ELSE -2 END", params


def ledger_columns(rules: AllocationRules) -> list[str]:
    """The ledger columns the rules read, besides those every allocation reads."""
    columns = {column for pool in rules.shared_pools for column, _ in pool.match.conditions()}
    wanted = [column for column in MATCH_COLUMNS if column in columns]
    if any(column.startswith("tags.") for column in columns):
        wanted.append("Tags")
    return wanted


# -- the usage a pool is split by --------------------------------------------------------------------


def validate_usage(usage: pa.Table | None) -> pa.Table:
    """The usage table in USAGE_SCHEMA: unknown columns, wrong types, negative or non-finite values
    and a version twice in a day are refused, naming the row; a missing optional column is unknown."""
    if usage is None:
        return USAGE_SCHEMA.empty_table()
    if not isinstance(usage, pa.Table):
        raise BadInputError(f"usage: expected a pyarrow Table, got {type(usage).__name__}")
    if usage.num_rows > MAX_USAGE_ROWS:
        raise BadInputError(f"usage: {usage.num_rows:,} rows, over the limit of {MAX_USAGE_ROWS:,}")
    unknown = sorted(set(usage.column_names) - set(USAGE_SCHEMA.names))
    if unknown:
        raise BadInputError(f"usage: unknown column(s) {', '.join(unknown)}; expected {', '.join(USAGE_SCHEMA.names)}")
    columns = []
    for field in USAGE_SCHEMA:
        if field.name not in usage.column_names:
            if field.name in ("date", "model_name", "model_version"):
                raise BadInputError(f"usage: missing column {field.name}")
            columns.append(pa.nulls(usage.num_rows, field.type))
            continue
        column = usage.column(field.name)
        kind = column.type
        allowed = {
            "date": pa.types.is_date(kind),
            "model_name": pa.types.is_string(kind) or pa.types.is_large_string(kind),
            "model_version": pa.types.is_string(kind) or pa.types.is_large_string(kind),
            "inferences": pa.types.is_integer(kind),
            "input_tokens": pa.types.is_integer(kind),
            "output_tokens": pa.types.is_integer(kind),
        }.get(field.name, pa.types.is_integer(kind) or pa.types.is_floating(kind))
        if not (allowed or pa.types.is_null(kind)):
            raise BadInputError(f"usage: column {field.name} is {kind}, expected {field.type}")
        try:
            columns.append(column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise BadInputError(f"usage: column {field.name}: {exc}") from None
    table = pa.Table.from_arrays(columns, schema=USAGE_SCHEMA)
    seen: set[tuple] = set()
    for number, row in enumerate(table.to_pylist(), start=1):
        where = f"usage row {number}"
        for name in ("date", "model_name", "model_version"):
            if row[name] in (None, ""):
                raise BadInputError(f"{where}: {name} is missing")
        where += f" ({row['model_name']} {row['model_version']} {row['date']})"
        for name in USAGE_SCHEMA.names[3:]:
            value = row[name]
            if value is not None and not (0 <= value < float("inf")):
                raise BadInputError(f"{where}: {name} {value} is not a finite number at least 0")
        key = (row["date"], row["model_name"], row["model_version"])
        if key in seen:
            raise BadInputError(f"{where}: the version's usage is given twice for that day")
        seen.add(key)
    return table


def usage_by_day(usage: pa.Table) -> dict[date, dict[tuple[str, str], dict]]:
    """day -> (model, version) -> that version's usage row (a validated usage table)."""
    by_day: dict[date, dict[tuple[str, str], dict]] = {}
    for row in usage.to_pylist():
        by_day.setdefault(row["date"], {})[(row["model_name"], row["model_version"])] = row
    return by_day


# -- how a pool's day is split ----------------------------------------------------------------------

RATIO_PLACES = Decimal("1e-15")  # at most 15 significant digits: a JSON number that reads back exactly


@dataclass(frozen=True)
class Element:
    """One line of a pool's split: a version's share (category shared) or the idle share."""

    category: str  # shared | idle
    model: str | None
    version: str | None
    ratio: Decimal
    last: bool  # takes what the other lines leave of each origin charge, so that money is conserved
    details: str  # AllocatedMethodDetails
    note: str | None = None


def _number(value: float | int | Decimal) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _details(pool: SharedPool, ratio: Decimal, quantity: Decimal | None, used: Decimal | None) -> str:
    element: dict = {"AllocatedRatio": float(ratio)}
    if quantity is not None:
        element |= {"UsageUnit": pool.unit.unit, "UsageQuantity": float(quantity)}
    document: dict = {"Elements": [element], "x_SharedPool": pool.name, "x_Split": pool.split}
    if used is not None:
        document["x_PoolUsageQuantity"] = float(used)
    if pool.capacity is not None:
        document["x_PoolCapacity"] = pool.capacity
    return json.dumps(document)


def _idle(pool: SharedPool, note: str) -> list[Element]:
    return [Element("idle", None, None, Decimal(1), True, _details(pool, Decimal(1), None, None), note)]


def pool_elements(pool: SharedPool, usage: dict[tuple[str, str], dict], day: date) -> list[Element]:
    """How the pool's cost on `day` is split, from the day's usage per (model, version): each version's
    share is its usage over the pool's (or over the declared capacity, when that is not used up: the
    rest is idle). The ratios sum to 1 exactly as decimals: the idle line, or else the largest share,
    takes 1 minus the others. With nothing to split by, the whole day is one idle line saying why; it is
    never divided by zero."""
    candidates = sorted(key for key in usage if pool.among is None or key[0] in pool.among)
    who = f"among {', '.join(pool.among)}" if pool.among else "of any model"
    if not candidates:
        return _idle(pool, f"no version {who} reported usage on {day}: the pool's cost is idle")
    column = pool.unit.usage_column
    if column is None:
        quantities = {key: Decimal(1) for key in candidates}
    else:
        unknown = [f"{m}/{v}" for m, v in candidates if usage[(m, v)].get(column) is None]
        if unknown:
            return _idle(
                pool,
                f"{column} unknown on {day} for {', '.join(unknown)}: the pool's cost is not split "
                "(splitting it among the others would charge them for it) and is shown as idle",
            )
        quantities = {key: _number(usage[key][column]) for key in candidates}
    used = sum(quantities.values(), Decimal(0))
    if used == 0:
        return _idle(pool, f"no {pool.unit.unit} used {who} on {day}: the pool's cost is idle")
    capacity = None if pool.capacity is None else _number(pool.capacity)
    spare = capacity is not None and used < capacity
    note = None
    if capacity is not None and used > capacity:
        note = f"{used} {pool.unit.unit} used, above the declared capacity of {capacity}: nothing is idle"
    denominator = capacity if spare else used
    shares = {key: (q / denominator).quantize(RATIO_PLACES) for key, q in quantities.items()}
    shares = {key: ratio for key, ratio in shares.items() if ratio > 0}
    idle = Decimal(1) - sum(shares.values(), Decimal(0))
    taker = None
    if not (spare and idle > 0):
        # No idle line: the largest share takes the rounding (its relative change is the smallest).
        taker = max(shares, key=lambda key: (shares[key], key))
        shares[taker] += idle
    measured = column is not None
    elements = [
        Element(
            "shared",
            model,
            version,
            ratio,
            (model, version) == taker,
            _details(pool, ratio, quantities[(model, version)] if measured else None, used if measured else None),
            note,
        )
        for (model, version), ratio in shares.items()
    ]
    if taker is None:
        elements.append(Element("idle", None, None, idle, True, _details(pool, idle, capacity - used, used)))
    return elements


ELEMENTS_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("pool", pa.int32()),
        ("ordinal", pa.int32()),
        ("category", pa.string()),
        ("model", pa.string()),
        ("version", pa.string()),
        ("ratio", pa.float64()),
        ("last", pa.bool_()),
        ("method_id", pa.string()),
        ("details", pa.string()),
        ("note", pa.string()),
        ("pool_name", pa.string()),
        ("tags", pa.string()),  # AllocatedTags of a version's share
        ("resource", pa.string()),  # AllocatedResourceId of a version's share: <model>/<version>
    ]
)


def _version_tags(element: Element, pool: SharedPool) -> str:
    """AllocatedTags of a version's share: the version and the pool, under the `rai/` prefix."""
    tags = {"rai/model_name": element.model, "rai/model_version": element.version, "rai/shared_pool": pool.name}
    return json.dumps(tags, separators=(",", ":"))


def elements_table(present: list[tuple[date, int]], rules: AllocationRules, usage_by_day: dict) -> pa.Table:
    """The split of each (day, pool index) in `present`, one row per line it yields (ELEMENTS_SCHEMA)."""
    rows = []
    for day, index in sorted(present):
        pool = rules.shared_pools[index]
        for ordinal, element in enumerate(pool_elements(pool, usage_by_day.get(day, {}), day)):
            rows.append(
                {
                    "date": day,
                    "pool": index,
                    "ordinal": ordinal,
                    "category": element.category,
                    "model": element.model,
                    "version": element.version,
                    "ratio": float(element.ratio),
                    "last": element.last,
                    "method_id": f"shared/{pool.split}",
                    "details": element.details,
                    "note": element.note,
                    "pool_name": pool.name,
                    "tags": None if element.model is None else _version_tags(element, pool),
                    "resource": None if element.category != "shared" else f"{element.model}/{element.version}",
                }
            )
    return pa.Table.from_pylist(rows, schema=ELEMENTS_SCHEMA)


# -- the lines of a split ----------------------------------------------------------------------------

_PART = pa.decimal128(38, 12)
_WIDE = pa.decimal256(39, 18)
# The columns of a split line that are its element's (the pool's line it is a share of).
ELEMENT_LINE_COLUMNS = {
    "x_AllocationCategory": "category",
    "x_ModelName": "model",
    "x_ModelVersion": "version",
    "x_SharedPool": "pool_name",
    "AllocatedMethodId": "method_id",
    "AllocatedMethodDetails": "details",
    "AllocatedResourceId": "resource",
    "AllocatedResourceName": "resource",
    "AllocatedTags": "tags",
    "x_AllocationNote": "note",
}


def split_shares(total: pa.Array, double: pa.Array, ratio: pa.Array, last: pa.Array, gid: pa.Array) -> pa.Array:
    """Each split line's share of its group's cost `total` (`double`: the same as a double): the cost
    times the ratio (a double, exact to about 1e-16 of the cost) kept to 12 places, so that it carries
    no digits the double did not have; the group's last line takes what the others leave, exactly.
    Arrow rounds the double exactly (half to even), and some ten times faster than DuckDB's casts from
    DOUBLE to DECIMAL. `last` says which line of each group (`gid`) takes the rest."""
    part = pc.multiply(double, ratio).cast(_PART).cast(MONEY)
    taken = pa.table({"gid": gid, "part": part}).filter(pc.invert(last)).group_by("gid").aggregate([("part", "sum")])
    lasts = pa.table({"gid": gid, "total": total}).filter(last)
    others = pc.take(taken.column("part_sum"), pc.index_in(lasts.column("gid"), value_set=taken.column("gid")))
    # Through decimal256: DECIMAL(38, 18) minus DECIMAL(38, 18) is typed DECIMAL(39, 18) by Arrow.
    rest = pc.subtract(lasts.column("total").cast(_WIDE), pc.coalesce(others, pa.scalar(0, MONEY)).cast(_WIDE))
    return pc.replace_with_mask(_whole(part), _whole(last), _whole(rest.cast(MONEY)))


def _whole(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def element_pairs(groups: pa.Table, elements: pa.Table) -> tuple[pa.Array, pa.Array]:
    """(group, element) row numbers of every group of a pool and every element of its (day, pool):
    an equi-join of groups in (day, pool) order with elements whose (day, pool)s are consecutive."""

    def key(table: pa.Table, day: str) -> np.ndarray:
        days = table.column(day).cast(pa.int32()).to_numpy().astype(np.int64)
        return days * (MAX_POOLS + 1) + table.column("pool").to_numpy()

    element_keys, first, count = np.unique(key(elements, "date"), return_index=True, return_counts=True)
    group_keys = key(groups, "day")
    where = np.searchsorted(element_keys, group_keys)
    if len(group_keys) and (where.max() >= len(element_keys) or (element_keys[where] != group_keys).any()):
        raise RuntimeError("a pool's day has charges and no split")  # present is taken from the groups
    repeat = count[where]
    group = np.repeat(np.arange(len(group_keys)), repeat)
    offset = np.arange(len(group)) - np.repeat(np.cumsum(repeat) - repeat, repeat)
    return pa.array(group), pa.array(np.repeat(first[where], repeat) + offset)
