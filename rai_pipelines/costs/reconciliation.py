"""The reconciliation: each export file's billed total for a day, computed by its independent
witness, against the ledger's, to the cent."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from rai_pipelines.costs.ledger import OTHER_COSTS, cost_totals, daily_totals
from rai_pipelines.costs.ledger_schema import SourceFile

HALF_CENT = Decimal("0.005")


@dataclass(frozen=True)
class Reconciliation:
    day: date
    rows: list[tuple[str, str, str, str, str]]  # (source, currency, export total, ledger total, status)
    mismatched: list[str]
    passed: bool
    # False when no export file reaches this day: not a zero bill, a day not exported (yet)
    covered: bool = True
    # (source, cost column, currency, export total, ledger total, status) for EffectiveCost,
    # ListCost and ContractedCost, each reconciled as BilledCost is
    cost_rows: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)


def compared_rows(
    uri: str, labels: tuple, expected: dict[str, Decimal], got: dict[str, Decimal], mismatched: list, empty=None
) -> list[tuple]:
    """(uri, *labels, currency, export total, ledger total, status) per currency, to the half cent;
    a mismatching uri is added to `mismatched`. `empty` names the row of a file with no amount."""
    rows = []
    for currency in sorted(set(expected) | set(got)) or ([empty] if empty else []):
        want, have = expected.get(currency, Decimal(0)), got.get(currency, Decimal(0))
        ok = abs(want - have) < HALF_CENT
        rows.append((uri, *labels, currency, f"{want:.6f}", f"{have:.6f}", "ok" if ok else "MISMATCH"))
        if not ok and uri not in mismatched:
            mismatched.append(uri)
    return rows


def reconcile(
    day: date,
    ledger_totals: dict[str, dict[str, Decimal]],
    sources: list[SourceFile],
    witness: dict[str, dict[str, dict[str, Decimal]]] | None = None,
) -> Reconciliation:
    """Compare the ledger's billed total per source file and currency with the export's own total
    for the day, to the cent; amounts in different currencies are compared apart, never added.
    `witness` holds the export totals already computed per file (every day of a file at once).

    A day the exports do not cover fails: no export file at all (a missing or misplaced export), or
    files whose line items all end before the day (the provider has not exported it yet). A day
    before the files' last line item with no line item of its own is covered and has no charge: a
    valid, empty partition."""
    ledger_totals_in, ledger_totals = ledger_totals, {uri: dict(t) for uri, t in ledger_totals.items()}
    witness = {} if witness is None else witness
    rows, mismatched = [], []

    def compare(uri: str, expected: dict[str, Decimal], got: dict[str, Decimal]) -> None:
        rows.extend(compared_rows(uri, (), expected, got, mismatched, empty="–"))

    for source in sources:
        if source.uri not in witness:
            witness[source.uri] = daily_totals(source)
        compare(source.uri, witness[source.uri].get(day.isoformat(), {}), ledger_totals.pop(source.uri, {}))
    for uri, got in ledger_totals.items():  # ledger rows whose source is no longer in the export
        compare(uri, {}, got)
    if not sources:
        rows.append(("(no export file covers this day)", "–", "–", "–", "MISSING"))
        return Reconciliation(day, rows, mismatched, False, covered=False)
    charged_days = {d for source in sources for d in witness[source.uri]}
    if day.isoformat() not in charged_days and not ledger_totals_in:
        last = max(charged_days, default=None)
        if last is None or last < day.isoformat():
            reach = f"their last line item is on {last}" if last else "they hold no line item"
            rows.append((f"(the export files do not reach this day yet: {reach})", "–", "–", "–", "MISSING"))
            return Reconciliation(day, rows, mismatched, False, covered=False)
        rows.append((f"(no charge on this day; the export files run to {last})", "–", "0", "0", "NO CHARGE"))
    return Reconciliation(day, rows, mismatched, not mismatched)


def reconcile_all(
    day: date,
    ledger_costs: dict[str, dict[str, dict[str, Decimal]]],
    sources: list[SourceFile],
    witness: dict[str, dict[str, dict[str, dict[str, Decimal]]]],
) -> Reconciliation:
    """`reconcile` on BilledCost, then EffectiveCost, ListCost and ContractedCost the same way: per
    source file and currency, to the cent, each against the export's own total computed apart.
    `ledger_costs` is source -> cost column -> currency -> total; `witness` caches each file's
    cost column -> day -> currency -> total (every cost of a file in one pass)."""
    for source in sources:
        if source.uri not in witness:
            witness[source.uri] = cost_totals(source)
    billed = {uri: costs.get("BilledCost", {}) for uri, costs in ledger_costs.items()}
    result = reconcile(day, billed, sources, {uri: costs["BilledCost"] for uri, costs in witness.items()})
    if not result.covered:
        return result
    rows, mismatched = [], list(result.mismatched)
    uris = [s.uri for s in sources] + sorted(set(ledger_costs) - {s.uri for s in sources})
    for uri in uris:
        exported = witness.get(uri, {})
        for column in OTHER_COSTS:
            if column not in exported and uri in witness:
                continue  # a source kind that witnesses its billed cost only
            expected = exported.get(column, {}).get(day.isoformat(), {})
            got = ledger_costs.get(uri, {}).get(column, {})
            rows.extend(compared_rows(uri, (column,), expected, got, mismatched))
    return replace(
        result,
        cost_rows=rows,
        mismatched=mismatched,
        passed=result.passed and not any(row[5] == "MISMATCH" for row in rows),
    )
