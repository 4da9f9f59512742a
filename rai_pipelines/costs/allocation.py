"""The ledger's cost allocated to model versions, day by day (`model_costs`), and what a version costs
per inference.

Every charge of a ledger day lands on exactly one of four kinds of line (`x_AllocationCategory`), as
OpenCost reports workload, idle and overhead:

- direct: the charge carries model-name and model-version tags; all of it is that version's.
- shared: the charge belongs to a shared pool declared in Git (`allocation_rules`): a GPU node pool,
  a cluster, a shared endpoint. The pool's day is split among the model versions that used it by the
  pool's rule (CPU requests, GPU-hours, inferences, or evenly), from the usage table the caller passes.
- idle: the share of a pool's declared daily capacity no version used; also the whole of a pool's day
  when there is nothing to split it by (no version ran, nobody used the pool, or a candidate's usage is
  unknown: dividing by the versions whose usage is known would charge them for the unknown one), with
  the reason in `x_AllocationNote`.
- untagged: neither tagged nor in a pool, shown on its own line, never dropped.

The allocation is written in FOCUS 1.3's allocation columns: AllocatedMethodId (`direct`, `untagged`,
`shared/<split>`), AllocatedMethodDetails (`{"Elements": [{"AllocatedRatio", "UsageUnit",
"UsageQuantity"}], "x_SharedPool": ...}`: the line's share of each origin charge, and the usage that
set it), AllocatedResourceId and AllocatedResourceName (`<model>/<version>`; null on idle and untagged
lines, which FOCUS calls the unallocated portion), AllocatedTags (the version as `rai/` tags). For every
origin charge the ratios of its lines sum to 1: they are written with at most 15 decimal places and the
last line of a split takes 1 minus the others.

Lines aggregate origin charges: one line per (day, category, model, version, pool, BillingCurrency,
ServiceName, SubAccountId, RegionId, SkuId), with the number of origin charges it holds
(`x_OriginCharges`); every origin charge of a line has the same ratio, so the line's ratio is each
charge's. `by_charge=True` keeps one line per origin charge and allocation instead (with ResourceId and
x_SourceRowHash), for audits of small days. DuckDB does the work over the Parquet lake: one pass reads
only the columns needed and aggregates the charges (that pass is nearly all of the time: decoding the
two DECIMAL(38, 18) money columns alone is about a third of it), then each pool's aggregated cost is
split in Arrow (a few thousand groups a day, not a million charges); nothing is done row by row in
Python. Up to eight days go through one query, and the next days are computed while the caller writes
the last ones.

EffectiveCost (amortised: FOCUS's basis for allocation) is allocated, BilledCost by the same ratios
beside it. Each split amount is the origin cost times the ratio, and the last line of a split takes what
the others leave, so money is conserved exactly: for every day and currency, direct + shared + idle +
untagged equals the ledger's total, checked to the cent (ConservationError otherwise). Currencies are
never added together.

The per-version summary gives, per day and currency: direct, shared and total cost (idle and untagged
are nobody's), inferences, cost per inference and per 1,000 inferences, the rolling 7-day cost per
inference, and, where the usage has token counts (LLM serving), cost per million input tokens and per
million output tokens: each divides the version's whole cost (two views of one cost, not a split of
it; they must not be added). A count that is unknown gives an unknown cost per inference (null, with a
note), never zero or infinity. The rolling figure is the sum of the cost of the 7 days ending that day
over the sum of their inferences, counting only the days whose count is known (`rolling_7d_days` of
them); the window's days not being allocated in the same call are read from the summaries already
in the lake.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rai_pipelines.core.errors import BadInputError, RaiError
from rai_pipelines.core.lake import Lake
from rai_pipelines.costs.allocation_rules import (
    ELEMENT_LINE_COLUMNS,
    USAGE_SCHEMA,
    AllocationRules,
    element_pairs,
    elements_table,
    ledger_columns,
    pool_sql,
    split_shares,
    usage_by_day,
    validate_usage,
)
from rai_pipelines.costs.ledger_schema import LEDGER_SCHEMA, MONEY, duckdb_connection

COST_LEDGER = "cost_ledger"
MODEL_COSTS = "model_costs"
MODEL_COST_SUMMARY = "model_cost_summary"
TOTALS_FILE = "totals.json"

COSTS_SCHEMA = pa.schema(
    [
        ("ChargePeriodStart", pa.timestamp("us", tz="UTC")),
        ("ChargePeriodEnd", pa.timestamp("us", tz="UTC")),
        ("x_AllocationCategory", pa.string()),
        ("x_ModelName", pa.string()),
        ("x_ModelVersion", pa.string()),
        ("x_SharedPool", pa.string()),
        ("BillingCurrency", pa.string()),
        ("EffectiveCost", MONEY),
        ("BilledCost", MONEY),
        ("ServiceName", pa.string()),
        ("SubAccountId", pa.string()),
        ("RegionId", pa.string()),
        ("SkuId", pa.string()),
        ("AllocatedMethodId", pa.string()),
        ("AllocatedMethodDetails", pa.string()),
        ("AllocatedResourceId", pa.string()),
        ("AllocatedResourceName", pa.string()),
        ("AllocatedTags", pa.string()),
        ("x_OriginCharges", pa.int64()),
        ("x_AllocationNote", pa.string()),
        # by_charge only (null when origin charges are aggregated)
        ("ResourceId", pa.string()),
        ("x_SourceRowHash", pa.string()),
    ]
)
SUMMARY_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("BillingCurrency", pa.string()),
        ("direct_cost", MONEY),
        ("shared_cost", MONEY),
        ("total_cost", MONEY),
        ("inferences", pa.int64()),
        ("cost_per_inference", pa.float64()),
        ("cost_per_1000_inferences", pa.float64()),
        ("rolling_7d_cost_per_inference", pa.float64()),
        ("rolling_7d_days", pa.int64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cost_per_million_input_tokens", pa.float64()),
        ("cost_per_million_output_tokens", pa.float64()),
        ("note", pa.string()),
    ]
)
CATEGORIES = ("direct", "shared", "idle", "untagged")
TOTALS_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("BillingCurrency", pa.string()),
        ("ledger_rows", pa.int64()),
        ("ledger_effective_cost", MONEY),
        *((f"{category}_cost", MONEY) for category in CATEGORIES),
        ("allocated_effective_cost", MONEY),
        ("ledger_billed_cost", MONEY),
        ("allocated_billed_cost", MONEY),
        ("conserved", pa.bool_()),
    ]
)
_KEYS = ("BillingCurrency", "ServiceName", "SubAccountId", "RegionId", "SkuId")
_CHARGE_KEYS = ("ResourceId", "x_SourceRowHash")
_ALWAYS_READ = (*_KEYS, "x_ModelName", "x_ModelVersion", "EffectiveCost", "BilledCost")
_LINES_SCHEMA = COSTS_SCHEMA.append(pa.field("day", pa.date32()))
_EPOCH = date(1970, 1, 1)


class ConservationError(RaiError):
    """An allocation whose lines do not add up to the ledger's total: a defect, never published."""


@dataclass(frozen=True)
class DayAllocation:
    """One day's allocation: its lines (model_costs), the per-version summary and the day's totals
    per currency (with the conservation check)."""

    day: date
    costs: pa.Table
    summary: pa.Table
    totals: pa.Table
    ledger_rows: int


# -- reading the ledger -----------------------------------------------------------------------------


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _nulls(metadata: pq.FileMetaData, index: int) -> int | None:
    """How many of a column's values are null, from the file's statistics (None: not recorded)."""
    nulls = 0
    for group in range(metadata.num_row_groups):
        statistics = metadata.row_group(group).column(index).statistics
        if statistics is None or not statistics.has_null_count:
            return None
        nulls += statistics.null_count
    return nulls


def _ledger_source(con, lake: Lake, days: list[date], columns: list[str]) -> tuple[str, bool]:
    """A query over the days' ledger partitions, each row with its day, `columns` only (DuckDB reads
    only those from the Parquet files); and whether the rows must count their missing costs, which
    the files' statistics say for free when they were written with them."""
    selects, count_nulls = [], False
    for index, day in enumerate(days):
        partition = {"date": day.isoformat()}
        uri = lake.uri(COST_LEDGER, partition)
        if not lake.exists(COST_LEDGER, partition):
            raise BadInputError(f"{uri}: no cost ledger for {day} (a day without a ledger is not a zero bill)")
        with lake.fs.open_input_file(lake.path(COST_LEDGER, partition)) as f:
            metadata = pq.read_metadata(f)
        schema = metadata.schema.to_arrow_schema()
        for column in columns:
            if column not in schema.names:
                raise BadInputError(f"{uri}: the ledger has no column {column}")
            expected = LEDGER_SCHEMA.field(column).type
            if column in ("EffectiveCost", "BilledCost") and schema.field(column).type != expected:
                raise BadInputError(f"{uri}: {column} is {schema.field(column).type}, expected {expected}")
        for column in ("BillingCurrency", "EffectiveCost", "BilledCost"):
            nulls = _nulls(metadata, schema.get_field_index(column))
            if nulls:
                raise BadInputError(f"{uri}: {nulls:,} charge(s) with no {column}: their cost cannot be totalled")
            count_nulls |= nulls is None
        listed = ", ".join(f'"{c}"' for c in columns)
        if lake.is_local:
            scan = f"read_parquet({_sql_text(lake.path(COST_LEDGER, partition))})"
        else:
            import pyarrow.dataset as ds

            name = f"ledger_{index}"
            con.register(name, ds.dataset(lake.path(COST_LEDGER, partition), filesystem=lake.fs, format="parquet"))
            scan = name
        selects.append(f"SELECT DATE '{day.isoformat()}' AS date, {listed} FROM {scan}")
    return "\nUNION ALL\n".join(selects), count_nulls


def ledger_read_columns(rules: AllocationRules, by_charge: bool = False) -> list[str]:
    """The ledger columns an allocation by `rules` reads (the others are never decoded)."""
    return list(dict.fromkeys([*_ALWAYS_READ, *(_CHARGE_KEYS if by_charge else ()), *ledger_columns(rules)]))


def _aggregate(con, lake: Lake, days: list[date], rules: AllocationRules, by_charge: bool) -> None:
    """alloc_groups: the days' charges summed per line (day, pool, model tags of a direct charge and
    the keys), numbered (`gid`) in day order. The model tags are grouped as they are (cheaper than a
    CASE per row), then dropped from the charges that are not direct and their groups merged: on a few
    thousand groups a day, not a million charges."""
    keys = ", ".join(f'"{k}"' for k in (*_KEYS, *(_CHARGE_KEYS if by_charge else ())))
    source, count_nulls = _ledger_source(con, lake, days, ledger_read_columns(rules, by_charge))
    case, params = pool_sql(rules)
    known = "count(EffectiveCost)" if count_nulls else "count(*)"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE alloc_groups AS
        WITH charges AS (
            SELECT date, pool, x_ModelName, x_ModelVersion, {keys},
                   sum(EffectiveCost) AS EffectiveCost, sum(BilledCost) AS BilledCost, count(*) AS origin_charges,
                   {known} AS effective_rows, {known.replace("EffectiveCost", "BilledCost")} AS billed_rows
            FROM (SELECT *, {case} AS pool FROM ({source}))
            GROUP BY ALL
        )
        SELECT row_number() OVER (ORDER BY date, pool) AS gid, *
        FROM (
            SELECT date, pool, CASE WHEN pool = -1 THEN x_ModelName END AS model,
                   CASE WHEN pool = -1 THEN x_ModelVersion END AS version, {keys},
                   sum(EffectiveCost) AS EffectiveCost, sum(BilledCost) AS BilledCost,
                   sum(origin_charges) AS origin_charges, sum(effective_rows) AS effective_rows,
                   sum(billed_rows) AS billed_rows
            FROM charges GROUP BY ALL
        )
        ORDER BY gid
        """,
        params,
    )


def _check_ledger(con, lake: Lake) -> dict[tuple[date, str], dict]:
    """Each day's ledger totals per currency (every charge is in one group: GROUP BY keeps null keys);
    a charge without a currency or a cost is refused (when the files' statistics could not say)."""
    totals = {}
    rows = con.execute(
        """SELECT date, BillingCurrency, sum(EffectiveCost), sum(BilledCost), sum(origin_charges),
                  sum(effective_rows), sum(billed_rows)
           FROM alloc_groups GROUP BY ALL ORDER BY date, BillingCurrency"""
    ).fetchall()
    for day, currency, effective, billed, count, effective_rows, billed_rows in rows:
        uri = lake.uri(COST_LEDGER, {"date": day.isoformat()})
        if currency in (None, ""):
            raise BadInputError(f"{uri}: {count:,} charge(s) with no BillingCurrency: their cost cannot be totalled")
        for column, known in (("EffectiveCost", effective_rows), ("BilledCost", billed_rows)):
            if known != count:
                raise BadInputError(f"{uri}: {count - known:,} {currency} charge(s) with no {column}")
        totals[(day, currency)] = {"rows": count, "effective": effective, "billed": billed}
    return totals


# -- the split --------------------------------------------------------------------------------------


_DIRECT_DETAILS = '{"Elements": [{"AllocatedRatio": 1}]}'


def _by_day(table: pa.Table) -> pa.Table:
    """`table` in day order (a stable sort, where DuckDB did not already give it so), so that each
    day's rows are a slice of it."""
    day = table.column("day")
    if len(day) < 2 or pc.all(pc.less_equal(day[:-1], day[1:])).as_py():
        return table
    return table.take(pc.sort_indices(day))


def _fetch_groups(con, by_charge: bool) -> tuple[pa.Table, pa.Table]:
    """The aggregated groups of the days in Arrow, in day order: those of a pool (to be split), and
    the direct and untagged ones as their lines (their text columns written by DuckDB)."""
    version_tags = "CAST(json_object('rai/model_name', model, 'rai/model_version', version) AS VARCHAR)"
    charges = ", ".join(c if by_charge else f"NULL AS {c}" for c in _CHARGE_KEYS)
    # The periods are written as TIMESTAMP and labelled UTC in Arrow, which moves no value (DuckDB's
    # cast from DATE to TIMESTAMPTZ costs some 200 ns a value).
    common = f"""CAST(date AS TIMESTAMP) AS ChargePeriodStart, CAST(date + 1 AS TIMESTAMP) AS ChargePeriodEnd,
                 {", ".join(f'"{k}"' for k in _KEYS)}, origin_charges AS x_OriginCharges, {charges}, date AS day,
                 EffectiveCost, BilledCost"""
    pooled = con.sql(f"SELECT {common}, gid, pool FROM alloc_groups WHERE pool >= 0").to_arrow_table()
    category = "CASE WHEN pool = -1 THEN 'direct' ELSE 'untagged' END"
    whole = con.sql(
        f"""
        SELECT {common}, {category} AS x_AllocationCategory, model AS x_ModelName, version AS x_ModelVersion,
               NULL AS x_SharedPool, {category} AS AllocatedMethodId, '{_DIRECT_DETAILS}' AS AllocatedMethodDetails,
               CASE WHEN pool = -1 THEN model || '/' || version END AS AllocatedResourceId,
               AllocatedResourceId AS AllocatedResourceName,
               CASE WHEN pool = -1 THEN {version_tags} END AS AllocatedTags, NULL AS x_AllocationNote
        FROM alloc_groups WHERE pool < 0
        """
    ).to_arrow_table()
    return pooled, whole


def _lines(pooled: pa.Table, whole: pa.Table, elements: pa.Table) -> tuple[pa.Table, pa.Table]:
    """The allocation lines of the days, in COSTS_SCHEMA plus `day`, each table in day order: the
    shares of the pools' groups (`pooled`, split by `elements`, the pools' lines), and the direct and
    untagged lines (`whole`). A split line is its group's columns and its element's, both taken in
    Arrow; the groups come in (day, pool) order and each (day, pool)'s elements are consecutive."""
    group, element = element_pairs(pooled, elements)
    # The groups' costs as doubles, for the ratios: cast once a group, not once a line.
    for money in ("EffectiveCost", "BilledCost"):
        pooled = pooled.append_column(f"{money}_double", pooled.column(money).cast(pa.float64()))
    split = pooled.take(group)
    last = pc.take(elements.column("last"), element)
    ratio = pc.take(elements.column("ratio"), element)
    for money in ("EffectiveCost", "BilledCost"):
        shares = split_shares(split.column(money), split.column(f"{money}_double"), ratio, last, split.column("gid"))
        split = split.set_column(split.schema.get_field_index(money), money, shares)
    taken = {}  # the element's text columns, each taken once (the resource is the line's id and name)
    for name, column in ELEMENT_LINE_COLUMNS.items():
        if column not in taken:
            taken[column] = pc.take(elements.column(column), element)
        split = split.append_column(name, taken[column])
    return tuple(
        pa.Table.from_arrays([table.column(f.name).cast(f.type) for f in _LINES_SCHEMA], schema=_LINES_SCHEMA)
        for table in (_by_day(split), _by_day(whole))
    )


def _day_slices(tables: tuple[pa.Table, ...], days: list[date]) -> dict[date, pa.Table]:
    """Each day's lines (without `day`) from tables in day order: slices, nothing is copied."""
    slices = {day: [] for day in days}
    for table in tables:
        ordinals = table.column("day").cast(pa.int32()).to_numpy()
        bounds = np.searchsorted(ordinals, [(day - _EPOCH).days for day in [*days, days[-1] + timedelta(days=1)]])
        costs = table.drop_columns(["day"])
        for i, day in enumerate(days):
            slices[day].append(costs.slice(bounds[i], bounds[i + 1] - bounds[i]))
    return {day: pa.concat_tables(parts) for day, parts in slices.items()}


# -- summaries ------------------------------------------------------------------------------------


def _category_sums(lines: pa.Table) -> dict[tuple, tuple[Decimal, Decimal]]:
    """(day, category, model, version, currency) -> (EffectiveCost, BilledCost), summed in Arrow."""
    keys = ["day", "x_AllocationCategory", "x_ModelName", "x_ModelVersion", "BillingCurrency"]
    grouped = lines.group_by(keys).aggregate([("EffectiveCost", "sum"), ("BilledCost", "sum")])
    columns = [grouped.column(name).to_pylist() for name in [*keys, "EffectiveCost_sum", "BilledCost_sum"]]
    return {tuple(row[:5]): (row[5], row[6]) for row in zip(*columns, strict=True)}


def cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def totals_table(day: date, sums: dict[tuple, tuple], ledger: dict[str, dict], where: str) -> pa.Table:
    """The day's totals per currency, each category beside the ledger's total; ConservationError
    unless direct + shared + idle + untagged is the ledger's total to the cent (EffectiveCost and
    BilledCost both)."""
    rows = []
    zero = Decimal(0)
    for currency in sorted({key[3] for key in sums} | set(ledger)):
        figures = ledger.get(currency, {"rows": 0, "effective": zero, "billed": zero})
        row = {"date": day, "BillingCurrency": currency, "ledger_rows": figures["rows"]}
        row["ledger_effective_cost"] = figures["effective"]
        for category in CATEGORIES:
            row[f"{category}_cost"] = sum(
                (v[0] for k, v in sums.items() if k[0] == category and k[3] == currency), zero
            )
        row["allocated_effective_cost"] = sum((row[f"{c}_cost"] for c in CATEGORIES), zero)
        row["ledger_billed_cost"] = figures["billed"]
        row["allocated_billed_cost"] = sum((v[1] for k, v in sums.items() if k[3] == currency), zero)
        row["conserved"] = cents(row["allocated_effective_cost"]) == cents(figures["effective"]) and cents(
            row["allocated_billed_cost"]
        ) == cents(figures["billed"])
        if not row["conserved"]:
            raise ConservationError(
                f"{where}: the {currency} allocation does not add up to the ledger: effective "
                f"{row['allocated_effective_cost']} against {figures['effective']}, billed "
                f"{row['allocated_billed_cost']} against {figures['billed']}"
            )
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=TOTALS_SCHEMA)


class Rolling:
    """Each (model, version, currency)'s cost and inference count of recent days, for 7-day figures."""

    WINDOW = 7

    def __init__(self, history: pa.Table | None):
        self._days: dict[tuple, dict[date, tuple[Decimal, int | None]]] = {}
        if history is not None and history.num_rows:
            names = ["date", "model_name", "model_version", "BillingCurrency", "total_cost", "inferences"]
            for day, model, version, currency, cost, inferences in zip(
                *(history.column(n).to_pylist() for n in names), strict=True
            ):
                self.add(day, (model, version, currency), cost, inferences)

    def add(self, day: date, key: tuple, cost: Decimal, inferences: int | None) -> None:
        self._days.setdefault(key, {})[day] = (cost, inferences)

    def window(self, day: date, key: tuple) -> tuple[Decimal, int, int]:
        """(cost, inferences, days) over the window's days whose inference count is known."""
        start = day - timedelta(days=self.WINDOW - 1)
        kept = {d: v for d, v in self._days.get(key, {}).items() if d >= start}
        self._days[key] = kept  # older days are never asked for again: days come in order
        known = [(cost, n) for d, (cost, n) in kept.items() if d <= day and n is not None]
        return sum((c for c, _ in known), Decimal(0)), sum(n for _, n in known), len(known)


def _per(cost: Decimal, count: int | None, scale: int) -> float | None:
    return None if not count else float(cost) * scale / count


def summary_table(day: date, sums: dict[tuple, tuple], usage: dict[tuple[str, str], dict], rolling: Rolling):
    """One row per (model, version, currency) with direct or shared cost on `day`."""
    zero = Decimal(0)
    costs: dict[tuple, dict[str, Decimal]] = {}
    for (category, model, version, currency), (effective, _) in sums.items():
        if category in ("direct", "shared"):
            costs.setdefault((model, version, currency), {"direct": zero, "shared": zero})[category] += effective
    rows = []
    for (model, version, currency), cost in sorted(costs.items()):
        seen = usage.get((model, version), {})
        total = cost["direct"] + cost["shared"]
        inferences = seen.get("inferences")
        rolling.add(day, (model, version, currency), total, inferences)
        window_cost, window_inferences, window_days = rolling.window(day, (model, version, currency))
        notes = []
        if not seen:
            notes.append("no usage reported for this version: its cost per inference is unknown")
        elif inferences is None:
            notes.append("inference count unknown: cost per inference not computed")
        elif inferences == 0:
            notes.append("no inferences: cost per inference undefined")
        rows.append(
            {
                "date": day,
                "model_name": model,
                "model_version": version,
                "BillingCurrency": currency,
                "direct_cost": cost["direct"],
                "shared_cost": cost["shared"],
                "total_cost": total,
                "inferences": inferences,
                "cost_per_inference": _per(total, inferences, 1),
                "cost_per_1000_inferences": _per(total, inferences, 1000),
                "rolling_7d_cost_per_inference": _per(window_cost, window_inferences, 1),
                "rolling_7d_days": window_days,
                "input_tokens": seen.get("input_tokens"),
                "output_tokens": seen.get("output_tokens"),
                "cost_per_million_input_tokens": _per(total, seen.get("input_tokens"), 1_000_000),
                "cost_per_million_output_tokens": _per(total, seen.get("output_tokens"), 1_000_000),
                "note": "; ".join(notes) or None,
            }
        )
    return pa.Table.from_pylist(rows, schema=SUMMARY_SCHEMA)


# -- the days ---------------------------------------------------------------------------------------


def _chunks(days: list[date], size: int) -> Iterator[list[date]]:
    for start in range(0, len(days), size):
        yield days[start : start + size]


def read_history(lake: Lake, days: list[date]) -> pa.Table | None:
    """The summaries already in the lake of the days the rolling windows of `days` reach back to and
    that are not being allocated now."""
    window = {day - timedelta(days=back) for day in days for back in range(1, Rolling.WINDOW)} - set(days)
    partitions = [{"date": day.isoformat()} for day in sorted(window)]
    tables = [lake.read_table(MODEL_COST_SUMMARY, p) for p in partitions if lake.exists(MODEL_COST_SUMMARY, p)]
    return pa.concat_tables(tables, promote_options="default") if tables else None


def allocate_days(
    lake: Lake,
    days: Iterable[date],
    rules: AllocationRules,
    usage: pa.Table | None,
    *,
    history: pa.Table | None = None,
    by_charge: bool = False,
    threads: int | None = None,
    memory_limit: str = "1GB",
    days_per_query: int = 8,
) -> Iterator[DayAllocation]:
    """Allocate each day's ledger (lake dataset cost_ledger) in day order, yielding each day's
    allocation as soon as it is done. Up to `days_per_query` days are read by one DuckDB query, so
    memory stays bounded however many days are asked for, and the next days are computed while the
    caller handles (writes) the ones yielded. `history`: earlier days' summaries for the rolling
    figures (by default read from the lake)."""
    days = sorted(set(days))
    if not days:
        return
    usage_of = usage_by_day(validate_usage(usage))
    rolling = Rolling(read_history(lake, days) if history is None else history)
    con = duckdb_connection(threads)

    def aggregate(chunk: list[date]) -> tuple:
        # DuckDB is only ever used from this one worker thread; it releases the GIL while it runs.
        _aggregate(con, lake, chunk, rules, by_charge)
        present = con.execute("SELECT DISTINCT date, pool FROM alloc_groups WHERE pool >= 0").fetchall()
        return _check_ledger(con, lake), present, *_fetch_groups(con, by_charge)

    chunks = list(_chunks(days, max(1, days_per_query)))
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="allocation")
    try:
        con.execute(f"SET memory_limit = {_sql_text(memory_limit)}")
        # Kept (DuckDB's default): a day-ordered table is read back in day order, so each day's lines
        # are a slice of the days' lines.
        con.execute("SET preserve_insertion_order = true")
        pending = worker.submit(aggregate, chunks[0])
        for number, chunk in enumerate(chunks):
            ledger, present, pooled, whole = pending.result()
            if number + 1 < len(chunks):
                pending = worker.submit(aggregate, chunks[number + 1])
            # The split and the summaries run here, while DuckDB reads and aggregates the next days.
            lines = _lines(pooled, whole, elements_table(present, rules, usage_of))
            sums = _category_sums(pa.concat_tables(lines))
            for day, costs in _day_slices(lines, chunk).items():
                day_sums = {key[1:]: value for key, value in sums.items() if key[0] == day}
                day_ledger = {currency: figures for (d, currency), figures in ledger.items() if d == day}
                totals = totals_table(day, day_sums, day_ledger, lake.uri(COST_LEDGER, {"date": day.isoformat()}))
                summary = summary_table(day, day_sums, usage_of.get(day, {}), rolling)
                yield DayAllocation(day, costs, summary, totals, sum(f["rows"] for f in day_ledger.values()))
    finally:
        worker.shutdown(wait=True, cancel_futures=True)
        con.close()


def allocate_day(lake: Lake, day: date, rules: AllocationRules, usage: pa.Table | None, **options) -> DayAllocation:
    """One day's allocation (see allocate_days)."""
    days = allocate_days(lake, [day], rules, usage, **options)
    try:
        return next(days)
    finally:
        days.close()


def write_allocation(lake: Lake, allocation: DayAllocation) -> dict[str, str]:
    """Publish a day: its lines (model_costs), its summary and totals (model_cost_summary, with
    totals.json beside the summary); each file atomically. Returns their URIs."""
    partition = {"date": allocation.day.isoformat()}
    totals = [
        {key: (str(value) if isinstance(value, Decimal) else value) for key, value in row.items()}
        for row in allocation.totals.to_pylist()
    ]
    return {
        MODEL_COSTS: lake.write_table(MODEL_COSTS, partition, allocation.costs),
        MODEL_COST_SUMMARY: lake.write_table(MODEL_COST_SUMMARY, partition, allocation.summary),
        TOTALS_FILE: lake.write_json(MODEL_COST_SUMMARY, partition, TOTALS_FILE, {"totals": totals}),
    }


__all__ = [
    "COSTS_SCHEMA",
    "MODEL_COSTS",
    "MODEL_COST_SUMMARY",
    "SUMMARY_SCHEMA",
    "TOTALS_SCHEMA",
    "USAGE_SCHEMA",
    "ConservationError",
    "DayAllocation",
    "allocate_day",
    "allocate_days",
    "ledger_read_columns",
    "read_history",
    "validate_usage",
    "write_allocation",
]
