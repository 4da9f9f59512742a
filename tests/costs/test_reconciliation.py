"""The reconciliation, on its own: the ledger's billed total per export file against the file's own
total computed by the witness, to the cent, on the real (anonymised) CUR."""

from __future__ import annotations

import gzip
from datetime import date
from decimal import Decimal

import pytest

from rai_pipelines.costs.ledger import LedgerSummary
from rai_pipelines.costs.ledger_schema import SourceFile
from rai_pipelines.costs.reconciliation import reconcile
from rai_pipelines.costs.sources.aws_cur import cur_to_focus, read_cur_csv
from rai_pipelines.costs.sources.aws_cur_witness import source_daily_totals
from tests.conftest import SHARED_CUR

DAY = date(2023, 11, 13)  # the CUR's largest day: 0.2046 USD over many line items
URI = "s3://billing/cur/rai-cur-1.csv"
OTHER_URI = "s3://billing/cur/rai-cur-2.csv"


@pytest.fixture(scope="module")
def source() -> SourceFile:
    return SourceFile(URI, read_cur_csv(gzip.decompress(SHARED_CUR.read_bytes()), URI))


@pytest.fixture(scope="module")
def billed(source) -> Decimal:
    """The day's billed total as the ledger carries it, from the FOCUS normalisation."""
    summary = LedgerSummary()
    summary.add(cur_to_focus(source, DAY))
    assert set(summary.billed_by_source[URI]) == {"USD"}
    return summary.billed_by_source[URI]["USD"]


def _unreadable(uri: str) -> SourceFile:
    """A file the reconciliation must not read: its totals come from the witness passed in."""
    return SourceFile(uri, None)


def test_the_normalised_ledger_reconciles_with_the_exports_own_total(source, billed):
    expected = source_daily_totals(source)[DAY.isoformat()]["USD"]
    assert expected > Decimal("0.2")  # a real day of the CUR, not an empty one
    result = reconcile(DAY, {URI: {"USD": billed}}, [source])
    assert result.passed is True
    assert result.day == DAY
    assert result.mismatched == []
    assert result.rows == [(URI, "USD", f"{expected:.6f}", f"{billed:.6f}", "ok")]


@pytest.mark.parametrize(
    ("difference", "status"),
    [
        (Decimal("0.004999"), "ok"),
        (Decimal("-0.004999"), "ok"),
        (Decimal("0.005"), "MISMATCH"),  # half a cent is already a cent off
        (Decimal("-0.005"), "MISMATCH"),
        (Decimal("1"), "MISMATCH"),
    ],
)
def test_the_ledger_must_agree_with_the_export_to_the_cent(source, billed, difference, status):
    witness = {URI: source_daily_totals(source)}
    result = reconcile(DAY, {URI: {"USD": billed + difference}}, [_unreadable(URI)], witness)
    expected = witness[URI][DAY.isoformat()]["USD"]
    assert result.rows == [(URI, "USD", f"{expected:.6f}", f"{billed + difference:.6f}", status)]
    assert result.passed is (status == "ok")
    assert result.mismatched == ([] if status == "ok" else [URI])


def test_a_file_whose_lines_the_ledger_lost_entirely_is_a_mismatch(source, billed):
    witness = {URI: source_daily_totals(source), OTHER_URI: {DAY.isoformat(): {"USD": Decimal("12.5")}}}
    result = reconcile(DAY, {URI: {"USD": billed}}, [_unreadable(URI), _unreadable(OTHER_URI)], witness)
    assert result.passed is False
    assert result.mismatched == [OTHER_URI]
    assert result.rows[1] == (OTHER_URI, "USD", "12.500000", "0.000000", "MISMATCH")


def test_ledger_rows_from_a_file_no_longer_in_the_export_are_a_mismatch(source, billed):
    witness = {URI: source_daily_totals(source)}
    ledger_totals = {URI: {"USD": billed}, OTHER_URI: {"USD": Decimal("3.25")}}
    result = reconcile(DAY, ledger_totals, [_unreadable(URI)], witness)
    assert result.passed is False
    assert result.mismatched == [OTHER_URI]
    assert result.rows == [
        (URI, "USD", f"{billed:.6f}", f"{billed:.6f}", "ok"),
        (OTHER_URI, "USD", "0.000000", "3.250000", "MISMATCH"),
    ]
    assert ledger_totals == {URI: {"USD": billed}, OTHER_URI: {"USD": Decimal("3.25")}}  # left alone


def test_a_day_no_export_file_covers_is_missing_not_a_zero_bill():
    result = reconcile(DAY, {}, [])
    assert result.passed is False
    assert result.mismatched == []
    assert result.rows == [("(no export file covers this day)", "–", "–", "–", "MISSING")]
    assert result.day == DAY
    assert result.covered is False


def test_a_day_after_the_exports_last_line_item_is_not_covered_yet():
    day_after = date(2023, 11, 15)
    witness = {URI: {"2023-11-13": {"USD": Decimal("250.75")}, "2023-11-14": {"USD": Decimal("0.009")}}}
    result = reconcile(day_after, {}, [_unreadable(URI)], witness)
    assert result.passed is False and result.covered is False and result.day == day_after
    assert result.mismatched == []
    assert result.rows == [
        (URI, "–", "0.000000", "0.000000", "ok"),
        (
            "(the export files do not reach this day yet: their last line item is on 2023-11-14)",
            "–",
            "–",
            "–",
            "MISSING",
        ),
    ]


def test_export_files_without_any_line_item_cover_no_day():
    result = reconcile(DAY, {}, [_unreadable(URI)], {URI: {}})
    assert result.passed is False and result.covered is False
    assert result.rows[-1] == (
        "(the export files do not reach this day yet: they hold no line item)",
        "–",
        "–",
        "–",
        "MISSING",
    )


def test_a_covered_day_without_charges_is_a_valid_empty_day():
    quiet_day = date(2023, 11, 11)  # a weekend without usage, between two charged days
    witness = {
        URI: {"2023-11-10": {"USD": Decimal("0.154942")}, "2023-11-12": {"USD": Decimal("0.182384")}},
        OTHER_URI: {"2023-11-13": {"USD": Decimal("0.2")}},
    }
    result = reconcile(quiet_day, {}, [_unreadable(URI), _unreadable(OTHER_URI)], witness)
    assert result.passed is True and result.covered is True
    assert result.rows == [
        (URI, "–", "0.000000", "0.000000", "ok"),
        (OTHER_URI, "–", "0.000000", "0.000000", "ok"),
        ("(no charge on this day; the export files run to 2023-11-13)", "–", "0", "0", "NO CHARGE"),
    ]


def test_a_ledger_with_rows_on_a_day_the_export_has_none_is_a_mismatch_not_an_empty_day():
    witness = {URI: {"2023-11-10": {"USD": Decimal("0.154942")}, "2023-11-12": {"USD": Decimal("0.182384")}}}
    result = reconcile(date(2023, 11, 11), {URI: {"USD": Decimal("0.02")}}, [_unreadable(URI)], witness)
    assert result.passed is False and result.covered is True
    assert result.rows == [(URI, "USD", "0.000000", "0.020000", "MISMATCH")]


def test_each_file_is_read_by_the_witness_once_and_kept_for_the_other_days(source):
    witness: dict = {}
    first = reconcile(DAY, {URI: {"USD": Decimal(0)}}, [source], witness)
    assert set(witness) == {URI}
    assert witness[URI] == source_daily_totals(source)
    assert first.mismatched == [URI]  # the day's charges are missing from this ledger
    # The next day is reconciled from the totals kept: the file is not read again.
    next_day = date(2023, 11, 12)
    second = reconcile(next_day, {URI: witness[URI][next_day.isoformat()]}, [_unreadable(URI)], witness)
    assert second.passed is True


def test_currencies_are_reconciled_apart_never_added():
    """A file billing in USD and CAD: a ledger whose USD and CAD totals are swapped adds up to the
    same mixed sum, and must still fail; each currency is a row of its own."""
    witness = {URI: {DAY.isoformat(): {"USD": Decimal("120.50"), "CAD": Decimal("80.25")}}}
    honest = reconcile(DAY, {URI: {"USD": Decimal("120.50"), "CAD": Decimal("80.25")}}, [_unreadable(URI)], witness)
    assert honest.passed is True
    assert honest.rows == [
        (URI, "CAD", "80.250000", "80.250000", "ok"),
        (URI, "USD", "120.500000", "120.500000", "ok"),
    ]
    swapped = reconcile(DAY, {URI: {"USD": Decimal("80.25"), "CAD": Decimal("120.50")}}, [_unreadable(URI)], witness)
    assert swapped.passed is False and swapped.mismatched == [URI]
    assert [row[4] for row in swapped.rows] == ["MISMATCH", "MISMATCH"]
    relabelled = reconcile(DAY, {URI: {"USD": Decimal("200.75")}}, [_unreadable(URI)], witness)
    assert relabelled.passed is False
    assert relabelled.rows == [
        (URI, "CAD", "80.250000", "0.000000", "MISMATCH"),
        (URI, "USD", "120.500000", "200.750000", "MISMATCH"),
    ]


def test_effective_list_and_contracted_costs_are_reconciled_like_billed_cost(source):
    """Each of the other three FOCUS costs is compared per file and currency with the export's own
    total, computed apart (the CUR's line item types, on-demand and net costs in Arrow): the real
    day reconciles, and a ledger whose EffectiveCost is a cent off does not, while its BilledCost
    still does."""
    from rai_pipelines.costs.reconciliation import reconcile_all

    summary = LedgerSummary()
    summary.add(cur_to_focus(source, DAY))
    witness: dict = {}
    honest = reconcile_all(DAY, summary.costs(), [source], witness)
    assert honest.passed and honest.rows[0][4] == "ok"
    assert [(row[1], row[2], row[5]) for row in honest.cost_rows] == [
        ("EffectiveCost", "USD", "ok"),
        ("ListCost", "USD", "ok"),
        ("ContractedCost", "USD", "ok"),
    ]
    assert all(row[3] == row[4] for row in honest.cost_rows)  # to the last decimal on this day
    off = summary.costs()
    off[URI]["EffectiveCost"]["USD"] += Decimal("0.01")
    tampered = reconcile_all(DAY, off, [_unreadable(URI)], witness)
    assert not tampered.passed and tampered.mismatched == [URI]
    assert tampered.rows[0][4] == "ok"  # BilledCost still agrees
    assert [row[5] for row in tampered.cost_rows] == ["MISMATCH", "ok", "ok"]
