"""The reconciliation's witness: each export's billed cost per ledger day, computed from the raw
values with Arrow compute, sharing nothing with the DuckDB normalisations it checks."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.ledger_schema import MONEY


def _instants(values: pa.Array, uri: str, field: str, rows: pa.Array, what: str = "row") -> pa.Array:
    if pa.types.is_timestamp(values.type):
        return values if values.type.tz else pc.assume_timezone(values, "UTC")
    text = pc.replace_substring_regex(pc.utf8_trim_whitespace(pc.cast(values, pa.string())), r"Z$", "+00:00")
    try:
        return pc.cast(text, pa.timestamp("us", tz="UTC"))
    except pa.ArrowInvalid:
        pass
    # Not one format Arrow parses in bulk (an offset other than UTC, say): row by row, naming the
    # first value that is no date-time at all.
    parsed = []
    for value, row in zip(values.to_pylist(), rows.to_pylist(), strict=True):
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadInputError(f"{uri} {what} {row}: field {field} = {value!r} is not a date-time") from None
        parsed.append(moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))
    return pa.array(parsed, pa.timestamp("us", tz="UTC"))


def _amounts(values: pa.Array, uri: str, field: str, rows: pa.Array, what: str = "row") -> pa.Array:
    if pa.types.is_floating(values.type):
        # A double is read as the shortest decimal that gives it back (771.015811, not the binary
        # 771.01581099999999913...), as DuckDB's normalisation reads it; digits of it below the
        # ledger's 18th place are binary noise and are rounded. A non-zero cost too small to keep
        # any digit is refused rather than rounded to 0.
        text = pc.cast(values, pa.string())
        try:
            # Most costs fit as they are; Arrow refuses a cast that would drop a digit, so a batch
            # that casts needed no rounding (and a non-zero double never reads as 0).
            return pc.cast(text, MONEY)
        except pa.ArrowInvalid:
            pass  # digits below the 18th place, NaN, infinity: rounded or named below
        try:
            wide = pc.cast(text, pa.decimal256(76, 40))
        except pa.ArrowInvalid:
            pass  # NaN, infinity or a value under 1e-40: named below
        else:
            amounts = pc.cast(pc.round(wide, ndigits=MONEY.scale, round_mode="half_to_even"), MONEY)
            lost = pc.and_(pc.not_equal(values, 0), pc.equal(amounts, pa.scalar(0, MONEY)))
            if not pc.any(lost).as_py():
                return amounts
            first = pc.index(lost, True).as_py()
            raise BadInputError(
                f"{uri} {what} {rows[first].as_py()}: field {field} = {values[first].as_py()!r} is smaller than "
                f"the ledger's {MONEY.scale} decimal places can hold; it is refused rather than rounded to 0"
            )
    if pa.types.is_integer(values.type) or pa.types.is_decimal(values.type):
        try:
            return pc.cast(values, MONEY)
        except pa.ArrowInvalid:
            text = pc.cast(values, pa.string())
    elif not pa.types.is_floating(values.type):
        # Surrounding blanks are not part of a number (" 12.5 "), as the normalisation reads them too.
        trimmed = pc.utf8_trim_whitespace(pc.cast(values, pa.string()))
        text = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
        try:
            return pc.cast(text, MONEY)
        except pa.ArrowInvalid:
            pass
    # Arrow names no row: find the first value that is no number, or one the ledger's decimal cannot
    # hold exactly, and name it.
    for value, row in zip(text.to_pylist(), rows.to_pylist(), strict=True):
        if value is None:
            continue
        try:
            amount = Decimal(value)
        except ArithmeticError:
            raise BadInputError(f"{uri} {what} {row}: field {field} = {value!r} is not a number") from None
        if not amount.is_finite():
            raise BadInputError(f"{uri} {what} {row}: field {field} = {value!r} is not a finite number")
        if amount != amount.quantize(Decimal(1).scaleb(-MONEY.scale), rounding="ROUND_DOWN"):
            raise BadInputError(
                f"{uri} {what} {row}: field {field} = {value!r} has more decimal places than the ledger keeps "
                f"({MONEY.scale}); it is refused rather than rounded"
            )
        if abs(amount) >= Decimal(10) ** (MONEY.precision - MONEY.scale):
            raise BadInputError(f"{uri} {what} {row}: field {field} = {value!r} is too large for the ledger")
    raise BadInputError(f"{uri}: field {field} holds a value the ledger's decimal cannot hold")


# Each export file's billed total per ledger day and per billing currency: day -> currency -> total.
DailyTotals = dict[str, dict[str, Decimal]]
# The four FOCUS costs, each reconciled: cost column -> DailyTotals.
COSTS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
CostTotals = dict[str, DailyTotals]


def _currencies(values: pa.Array, uri: str, field: str, rows: pa.Array, what: str = "row") -> pa.Array:
    return pc.fill_null(pc.utf8_trim_whitespace(pc.cast(values, pa.string())), "")


def amounts(values: pa.Array, uri: str, field: str, rows: pa.Array, what: str = "row") -> pa.Array:
    """Raw cost values as the ledger's decimals, or an error naming the file, row and field."""
    return _amounts(values, uri, field, rows, what)


def add_total(totals: DailyTotals, day: str, currency: str, amount: Decimal) -> None:
    by_currency = totals.setdefault(day, {})
    by_currency[currency] = by_currency.get(currency, Decimal(0)) + amount


def add_totals(totals: CostTotals, more: CostTotals) -> None:
    """Adds `more` into `totals`, cost by cost, day by day and currency by currency."""
    for cost, by_day in more.items():
        for day, by_currency in by_day.items():
            for currency, amount in by_currency.items():
                add_total(totals.setdefault(cost, {}), day, currency, amount)


def witness_batch(
    columns: list[pa.Array], fields: list[str], uri: str, rows: pa.Array, what: str, totals: DailyTotals
) -> None:
    """Add one batch's billed cost per ledger day and currency to `totals`, from its raw charge
    start, cost, billing period start and end and billing currency (named `fields` in the file, for
    errors): the reconciliation's witness, Arrow compute on raw values, sharing nothing with the
    DuckDB normalisations. Amounts of different currencies are never added together."""
    start, cost, period_start, period_end, currency = columns
    costs = {"BilledCost": _amounts(cost, uri, fields[1], rows, what)}
    by_cost: CostTotals = {"BilledCost": totals}
    witness_costs(
        [start, period_start, period_end, currency], [fields[0], *fields[2:]], costs, uri, rows, what, by_cost
    )


def witness_costs(
    columns: list[pa.Array],
    fields: list[str],
    costs: dict[str, pa.Array],
    uri: str,
    rows: pa.Array,
    what: str,
    totals: CostTotals,
) -> None:
    """Add one batch's costs (cost column -> the ledger's decimals, already converted from the raw
    values) per ledger day and currency to `totals`, given the raw charge start, billing period start
    and end and billing currency (`columns`, named `fields` in the file). The day rule is the
    ledger's: the UTC day of the charge start, or the billing period's first day for a charge that
    starts outside its period."""
    conversions = (_instants, _instants, _instants, _currencies)
    start, period_start, period_end, currency = (
        convert(values, uri, field, rows, what)
        for values, field, convert in zip(columns, fields, conversions, strict=True)
    )
    within = pc.and_(pc.greater_equal(start, period_start), pc.less(start, period_end))
    day = pc.cast(pc.if_else(within, start, period_start), pa.date32())
    zero = pa.scalar(Decimal(0), MONEY)
    names = list(costs)
    sums = pa.table({"day": day, "currency": currency, **{n: pc.fill_null(costs[n], zero) for n in names}})
    grouped = sums.group_by(["day", "currency"]).aggregate([(n, "sum") for n in names])
    for row in grouped.to_pylist():
        for name in names:
            add_total(totals.setdefault(name, {}), row["day"].isoformat(), row["currency"], row[f"{name}_sum"])
