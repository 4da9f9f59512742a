"""The reconciliation: each export file's billed total for a day, computed by its independent
witness, against the ledger's, to the cent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from rai_pipelines.costs.ledger import daily_totals
from rai_pipelines.costs.ledger_schema import SourceFile

HALF_CENT = Decimal("0.005")


@dataclass(frozen=True)
class Reconciliation:
    day: date
    rows: list[tuple[str, str, str, str]]  # (source, export total, ledger total, status)
    mismatched: list[str]
    passed: bool


def reconcile(
    day: date,
    ledger_totals: dict[str, Decimal],
    sources: list[SourceFile],
    witness: dict[str, dict[str, Decimal]] | None = None,
) -> Reconciliation:
    """Compare the ledger's billed total per source file with the export's own total for the day,
    to the cent. A day with no export file at all fails: a missing or misplaced export is not a zero
    bill. `witness` holds the export totals already computed per file (every day of a file at once)."""
    ledger_totals_in, ledger_totals = ledger_totals, dict(ledger_totals)
    witness = {} if witness is None else witness
    rows, mismatched = [], []
    for source in sources:
        if source.uri not in witness:
            witness[source.uri] = daily_totals(source)
        expected = witness[source.uri].get(day.isoformat(), Decimal(0))
        got = ledger_totals.pop(source.uri, Decimal(0))
        ok = abs(expected - got) < HALF_CENT
        rows.append((source.uri, f"{expected:.6f}", f"{got:.6f}", "ok" if ok else "MISMATCH"))
        if not ok:
            mismatched.append(source.uri)
    for uri, got in ledger_totals.items():  # ledger rows whose source is no longer in the export
        rows.append((uri, "0", f"{got:.6f}", "MISMATCH"))
        mismatched.append(uri)
    if not sources:
        rows.append(("(no export file covers this day)", "–", "–", "MISSING"))
    # Export files that hold no line item at all for the day: a day cut out of the export, not a
    # zero bill (an account's bill has charges every day; a month starting later has no file yet).
    empty = bool(sources) and not ledger_totals_in
    if empty:
        rows.append(("(the export files hold no line item for this day)", "–", "–", "EMPTY"))
    return Reconciliation(day, rows, mismatched, bool(sources) and not mismatched and not empty)
