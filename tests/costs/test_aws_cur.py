"""FOCUS normalisation of a real, anonymised AWS CUR (FinOps Foundation test data)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pyarrow as pa
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.ledger_schema import LEDGER_SCHEMA, SourceFile, tag_key
from rai_pipelines.costs.sources.aws_cur import canonical_cur_name, cur_to_focus, read_cur_csv
from rai_pipelines.costs.sources.aws_cur_witness import source_daily_totals
from tests.conftest import SHARED_CUR, one_currency

DAYS = [date(2023, 11, d) for d in range(1, 15)]
FOCUS_MANDATORY = [
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "BillingAccountId",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeDescription",
    "ProviderName",
    "PublisherName",
    "InvoiceIssuerName",
    "ServiceName",
    "ServiceCategory",
]


@pytest.fixture(scope="module")
def raw_csv() -> bytes:
    return gzip.decompress(SHARED_CUR.read_bytes())


@pytest.fixture(scope="module")
def source(raw_csv) -> SourceFile:
    return SourceFile("s3://billing/cur/rai-cur-1.csv", read_cur_csv(raw_csv, "s3://billing/cur/rai-cur-1.csv"))


@pytest.fixture(scope="module")
def ledgers(source) -> dict[date, pa.Table]:
    return {day: cur_to_focus(source, day) for day in DAYS}


def _csv_rows(raw: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(raw.decode())))


def test_every_line_item_lands_in_exactly_one_day(ledgers, raw_csv):
    rows = _csv_rows(raw_csv)
    assert sum(t.num_rows for t in ledgers.values()) == len(rows) == 1281
    numbers = [n for t in ledgers.values() for n in t.column("x_SourceRowNumber").to_pylist()]
    assert sorted(numbers) == list(range(2, 2 + len(rows)))


def test_one_pass_over_the_file_gives_every_days_ledger(source, ledgers):
    from rai_pipelines.costs.sources.aws_cur import cur_to_focus_days

    by_day: dict[date, list] = {}
    for day, batch in cur_to_focus_days(source, DAYS[2:9]):  # a backfill of seven days
        by_day.setdefault(day, []).append(batch)
    assert sorted(by_day) == DAYS[2:9]
    for day, batches in by_day.items():
        assert pa.Table.from_batches(batches).equals(ledgers[day])


def test_daily_totals_equal_the_export_to_the_cent(ledgers, raw_csv, source):
    by_day: dict[str, Decimal] = Counter()
    for row in _csv_rows(raw_csv):
        by_day[row["lineItem/UsageStartDate"][:10]] += Decimal(row["lineItem/UnblendedCost"])
    assert one_currency(source_daily_totals(source)) == by_day
    for day, ledger in ledgers.items():
        billed = sum(ledger.column("BilledCost").to_pylist(), Decimal(0))
        assert billed == by_day[day.isoformat()], day  # exact: decimals, not floats


def test_ledger_has_focus_columns_types_and_allowed_values(ledgers):
    ledger = pa.concat_tables(ledgers.values())
    assert ledger.schema == LEDGER_SCHEMA
    for column in FOCUS_MANDATORY:
        assert column in ledger.column_names
    assert pa.types.is_decimal(ledger.schema.field("BilledCost").type)
    assert ledger.schema.field("ChargePeriodStart").type == pa.timestamp("us", tz="UTC")
    assert set(ledger.column("ChargeCategory").to_pylist()) == {"Usage", "Tax"}
    assert set(ledger.column("ProviderName").to_pylist()) == {"AWS"}
    custom = [c for c in ledger.column_names if c[0].islower()]
    assert custom and all(c.startswith("x_") for c in custom)
    assert ledger.column("x_SourceRowHash").null_count == 0
    assert len(set(ledger.column("x_SourceRowHash").to_pylist())) == ledger.num_rows


def test_units_subcategories_and_regions_are_written_as_focus_1_2_has_them(ledgers, raw_csv):
    """AWS's pricing units in FOCUS's UnitFormat (time units spelled out), each service under a
    FOCUS ServiceSubcategory of its category, and no RegionName ("Any") without a RegionId."""
    from rai_pipelines.costs.ledger_schema import SUBCATEGORY_PARENT

    ledger = pa.concat_tables(ledgers.values()).to_pylist()
    raw_units = {r["pricing/unit"] for r in _csv_rows(raw_csv)} - {""}
    assert {"GB-Mo", "Obj-Month"} <= raw_units  # what the real CUR writes
    units = {r["PricingUnit"] for r in ledger} - {None}
    assert {"GB-Months", "Obj-Months"} <= units and not units & {"Hrs", "GB-Mo", "Obj-Month"}
    assert {r["ConsumedUnit"] for r in ledger} - {None} <= units
    pairs = {(r["ServiceCategory"], r["ServiceSubcategory"]) for r in ledger}
    assert all(SUBCATEGORY_PARENT[sub] == category for category, sub in pairs)
    by_service = {r["ServiceName"]: r["ServiceSubcategory"] for r in ledger}
    assert by_service["Amazon Simple Storage Service"] == "Object Storage"
    assert by_service["Amazon Simple Queue Service"] == "Messaging"
    assert by_service["AWS CloudShell"] == "Development Environments"
    assert all(r["RegionName"] is None for r in ledger if r["RegionId"] is None)
    assert any(r["product/location"] == "Any" and not r["product/regionCode"] for r in _csv_rows(raw_csv))


def test_tax_lines_keep_their_category_and_land_on_the_first_day(ledgers, raw_csv):
    taxes = [r for r in _csv_rows(raw_csv) if r["lineItem/LineItemType"] == "Tax"]
    first = ledgers[date(2023, 11, 1)].to_pylist()
    ledger_taxes = [r for r in first if r["ChargeCategory"] == "Tax"]
    assert len(ledger_taxes) == len(taxes) == 12
    assert {r["ServiceName"] for r in ledger_taxes} >= {"AWS CloudTrail"}


def test_lineage_points_to_the_source_line(ledgers, raw_csv):
    rows = _csv_rows(raw_csv)
    for record in ledgers[date(2023, 11, 7)].to_pylist()[:25]:
        source = rows[record["x_SourceRowNumber"] - 2]
        assert record["x_SourceUri"] == "s3://billing/cur/rai-cur-1.csv"
        assert record["BilledCost"] == Decimal(source["lineItem/UnblendedCost"])
        assert record["ChargePeriodStart"] == datetime.fromisoformat(
            source["lineItem/UsageStartDate"].replace("Z", "+00:00")
        ).astimezone(timezone.utc)
        assert record["ServiceName"] == source["product/ProductName"]


def test_canonical_names_follow_cur2():
    assert canonical_cur_name("lineItem/UnblendedCost") == "line_item_unblended_cost"
    assert canonical_cur_name("bill/PayerAccountId") == "bill_payer_account_id"
    assert canonical_cur_name("savingsPlan/SavingsPlanEffectiveCost") == "savings_plan_savings_plan_effective_cost"
    assert canonical_cur_name("line_item_usage_start_date") == "line_item_usage_start_date"


@pytest.mark.parametrize(
    "raw,key",
    [
        ("user:model-name", "model_name"),
        ("user_model_version", "model_version"),
        ("resourceTags/user:Team", "team"),
        ("aws:createdBy", "aws_createdby"),
    ],
)
def test_tag_keys_are_normalised_across_formats(raw, key):
    assert tag_key(raw) == key


def _with_tags(raw_csv: bytes, n: int = 3) -> bytes:
    lines = raw_csv.decode().splitlines()
    header = lines[0] + ",resourceTags/user:model-name,resourceTags/user:model-version,resourceTags/user:team"
    body = [line + (",credit-scoring-ai,1.4.2,credit-risk" if i < n else ",,,") for i, line in enumerate(lines[1:])]
    return "\n".join([header, *body]).encode()


def test_attribution_comes_from_resource_tags(raw_csv):
    tagged = read_cur_csv(_with_tags(raw_csv), "cur.csv")
    ledger = cur_to_focus(SourceFile("cur.csv", tagged), date(2023, 11, 1))
    rows = [r for r in ledger.to_pylist() if r["x_SourceRowNumber"] in (2, 3, 4)]
    assert {(r["x_ModelName"], r["x_ModelVersion"], r["x_Team"]) for r in rows} == {
        ("credit-scoring-ai", "1.4.2", "credit-risk")
    }
    assert '"model_name": "credit-scoring-ai"' in rows[0]["Tags"]
    others = [r for r in ledger.to_pylist() if r["x_SourceRowNumber"] > 4]
    assert all(r["x_ModelName"] is None and r["Tags"] == "{}" for r in others)


def test_cur2_map_tags_are_attributed():
    table = pa.table(
        {
            "bill_payer_account_id": ["1"],
            "bill_billing_period_start_date": ["2023-11-01T00:00:00Z"],
            "bill_billing_period_end_date": ["2023-12-01T00:00:00Z"],
            "line_item_usage_account_id": ["1"],
            "line_item_line_item_type": ["Usage"],
            "line_item_usage_start_date": ["2023-11-02T03:00:00Z"],
            "line_item_usage_end_date": ["2023-11-02T04:00:00Z"],
            "line_item_product_code": ["AmazonEC2"],
            "line_item_unblended_cost": [0.096],
            "line_item_currency_code": ["USD"],
            "resource_tags": pa.array(
                [[("user_model_name", "m"), ("user_model_version", "2.0.0")]], pa.map_(pa.string(), pa.string())
            ),
        }
    )
    row = cur_to_focus(SourceFile("x.parquet", table, 1), date(2023, 11, 2)).to_pylist()[0]
    assert (row["x_ModelName"], row["x_ModelVersion"], row["ServiceCategory"]) == ("m", "2.0.0", "Compute")
    assert row["BilledCost"] == Decimal("0.096")


def _replace_field(raw: bytes, line_number: int, column: str, value: str) -> bytes:
    rows = list(csv.reader(io.StringIO(raw.decode())))
    rows[line_number - 1][rows[0].index(column)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def test_non_numeric_cost_names_file_line_and_field(raw_csv):
    bad = _replace_field(raw_csv, 40, "lineItem/UnblendedCost", "12,5O")
    with pytest.raises(
        BadInputError, match=r"bad\.csv line 40: field lineItem/UnblendedCost = '12,5O' is not a number"
    ):
        cur_to_focus(SourceFile("bad.csv", read_cur_csv(bad, "bad.csv")), date(2023, 11, 1))


def test_unparseable_date_names_file_line_and_field(raw_csv):
    bad = _replace_field(raw_csv, 7, "lineItem/UsageStartDate", "2023-13-45T00:00:00Z")
    with pytest.raises(
        BadInputError,
        match=r"bad\.csv line 7: field lineItem/UsageStartDate = '2023-13-45T00:00:00Z' is not a date-time",
    ):
        cur_to_focus(SourceFile("bad.csv", read_cur_csv(bad, "bad.csv")), date(2023, 11, 1))


def test_missing_column_names_file_and_column(raw_csv):
    table = read_cur_csv(raw_csv, "bad.csv").drop_columns(["lineItem/UnblendedCost"])
    with pytest.raises(BadInputError, match=r"bad\.csv: missing required CUR column\(s\) line_item_unblended_cost"):
        cur_to_focus(SourceFile("bad.csv", table), date(2023, 11, 1))


def test_unknown_line_item_type_is_refused(raw_csv):
    bad = _replace_field(raw_csv, 3, "lineItem/LineItemType", "Mystery")
    with pytest.raises(
        BadInputError, match=r"line 3: field lineItem/LineItemType = 'Mystery' is not a known line item type"
    ):
        cur_to_focus(SourceFile("bad.csv", read_cur_csv(bad, "bad.csv")), date(2023, 11, 1))


def test_a_corrupt_gzip_export_is_named():
    with pytest.raises(BadInputError, match=r"cur-1\.csv\.gz: not a readable gzip file"):
        read_cur_csv(b"not gzip at all", "cur-1.csv.gz")


def test_line_numbers_count_blank_lines_and_quoted_line_breaks(raw_csv):
    from rai_pipelines.costs.sources.export_files import physical_lines

    rows = list(csv.reader(io.StringIO(raw_csv.decode())))
    rows[3][rows[0].index("lineItem/LineItemDescription")] = "first line\nsecond line"
    rows[10][rows[0].index("lineItem/UnblendedCost")] = "oops"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows[:6])
    out.write("\n")  # a blank line
    csv.writer(out, lineterminator="\n").writerows(rows[6:])
    data = out.getvalue().encode()
    # data row 10 is file line 11, plus one for the quoted line break and one for the blank line
    source = SourceFile("bad.csv", read_cur_csv(data, "bad.csv"), row_lines=physical_lines(data))
    with pytest.raises(BadInputError, match=r"bad\.csv line 13: field lineItem/UnblendedCost = 'oops'"):
        cur_to_focus(source, date(2023, 11, 1))


def test_a_line_break_inside_a_quoted_field_is_counted_without_blank_lines(raw_csv):
    from rai_pipelines.costs.sources.export_files import physical_lines

    rows = list(csv.reader(io.StringIO(raw_csv.decode())))
    rows[3][rows[0].index("lineItem/LineItemDescription")] = "first\nsecond"  # no quote next to the break
    rows[10][rows[0].index("lineItem/UnblendedCost")] = "oops"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    data = out.getvalue().encode()
    source = SourceFile("bad.csv", read_cur_csv(data, "bad.csv"), row_lines=physical_lines(data))
    with pytest.raises(BadInputError, match=r"bad\.csv line 12: field lineItem/UnblendedCost = 'oops'"):
        cur_to_focus(source, date(2023, 11, 1))


@pytest.mark.parametrize("column", ["lineItem/UnblendedCost", "bill/PayerAccountId", "lineItem/CurrencyCode"])
def test_empty_mandatory_fields_are_refused(raw_csv, column):
    bad = _replace_field(raw_csv, 9, column, "")
    with pytest.raises(BadInputError, match=rf"bad\.csv line 9: field {column} is empty"):
        cur_to_focus(SourceFile("bad.csv", read_cur_csv(bad, "bad.csv")), date(2023, 11, 1))


def test_an_unknown_currency_is_refused(raw_csv):
    bad = _replace_field(raw_csv, 12, "lineItem/CurrencyCode", "usd$")
    with pytest.raises(BadInputError, match=r"line 12: field lineItem/CurrencyCode = 'usd\$' is not an ISO 4217"):
        cur_to_focus(SourceFile("bad.csv", read_cur_csv(bad, "bad.csv")), date(2023, 11, 1))


def _cur2_row(line_type: str, cost: float, start: str = "2023-11-02T03:00:00Z", **extra) -> dict:
    row = {
        "bill_payer_account_id": "1",
        "bill_billing_period_start_date": "2023-11-01T00:00:00Z",
        "bill_billing_period_end_date": "2023-12-01T00:00:00Z",
        "line_item_usage_account_id": "1",
        "line_item_line_item_type": line_type,
        "line_item_usage_start_date": start,
        "line_item_usage_end_date": start,
        "line_item_product_code": "AmazonEC2",
        "line_item_unblended_cost": str(cost),
        "line_item_currency_code": "USD",
    }
    return {**row, **extra}


def _table(rows: list[dict]) -> pa.Table:
    keys = sorted({k for row in rows for k in row})
    return pa.Table.from_pylist([{k: row.get(k) for k in keys} for row in rows])


def test_commitment_rows_follow_aws_focus_semantics():
    arn = "arn:aws:ec2:eu-west-1:1:reserved-instances/abc"
    rows = [
        _cur2_row("Fee", 1000.0, reservation_reservation_a_r_n=arn),  # RI upfront: amortised into usage
        _cur2_row("DiscountedUsage", 0.0, reservation_effective_cost="0.12", reservation_reservation_a_r_n=arn),
        _cur2_row("SavingsPlanCoveredUsage", 0.2, savings_plan_savings_plan_effective_cost="0.14"),
        _cur2_row("SavingsPlanNegation", -0.2),
        _cur2_row("Credit", -5.0),
        _cur2_row("Fee", 30.0),  # a fee that is not a reservation: effective as billed
    ]
    table = _table(rows)
    ledger = cur_to_focus(SourceFile("x.parquet", table, 1), date(2023, 11, 2)).to_pylist()
    effective = [r["EffectiveCost"] for r in ledger]
    assert effective == [Decimal(0), Decimal("0.12"), Decimal("0.14"), Decimal(0), Decimal(-5), Decimal(30)]
    assert [r["ChargeCategory"] for r in ledger] == ["Purchase", "Usage", "Usage", "Usage", "Credit", "Purchase"]
    assert [r["PricingCategory"] for r in ledger][:3] == [None, "Committed", "Committed"]
    billed = sum(r["BilledCost"] for r in ledger)
    assert (
        billed
        == Decimal("1025.0")
        == one_currency(source_daily_totals(SourceFile("x.parquet", table, 1)))["2023-11-02"]
    )
    # the witness computes every cost apart from the SQL, and agrees with it row type by row type
    from rai_pipelines.costs.sources.aws_cur_witness import source_cost_totals

    witnessed = source_cost_totals(SourceFile("x.parquet", table, 1))
    for cost in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
        assert one_currency(witnessed[cost])["2023-11-02"] == sum(r[cost] for r in ledger), cost
    assert one_currency(witnessed["EffectiveCost"])["2023-11-02"] == Decimal("25.26")


def test_a_charge_for_an_earlier_period_lands_on_the_first_day_of_the_file():
    rows = [_cur2_row("Credit", -7.5, start="2023-10-20T00:00:00Z"), _cur2_row("Usage", 1.0)]
    source = SourceFile("x.parquet", _table(rows), 1)
    first = cur_to_focus(source, date(2023, 11, 1)).to_pylist()
    assert [r["BilledCost"] for r in first] == [Decimal("-7.5")]
    assert one_currency(source_daily_totals(source)) == {"2023-11-01": Decimal("-7.5"), "2023-11-02": Decimal("1.0")}
    # a charge for October in November's bill corrects an earlier billing period (FOCUS ChargeClass)
    assert [r["ChargeClass"] for r in first] == ["Correction"]
    assert [r["ChargeClass"] for r in cur_to_focus(source, date(2023, 11, 2)).to_pylist()] == [None]
    from rai_pipelines.costs.conformance import validate_ledger

    assert validate_ledger(cur_to_focus(source, date(2023, 11, 1))).passed  # the rule on early charges holds


def test_model_cost_in_another_currency_is_refused_naming_the_row(tmp_path):
    """A version billed in EUR is allocated in EUR (never added to USD), and the facts, whose budgets
    are in USD, refuse it naming the version and the currency rather than convert it silently."""
    from rai_pipelines.core.lake import Lake
    from rai_pipelines.costs.allocation import allocate_day, write_allocation
    from rai_pipelines.costs.allocation_rules import AllocationRules
    from rai_pipelines.governance.facts import allocated_costs

    tags = {"resource_tags": [("user_model_name", "credit-scoring-ai"), ("user_model_version", "2.0.0")]}
    rows = [_cur2_row("Usage", 1.5, **tags), _cur2_row("Usage", 2.0, line_item_currency_code="EUR", **tags)]
    table = _table(rows)
    table = table.set_column(
        table.column_names.index("resource_tags"),
        "resource_tags",
        pa.array([r["resource_tags"] for r in rows], pa.map_(pa.string(), pa.string())),
    )
    day = date(2023, 11, 2)
    ledger = cur_to_focus(SourceFile("x.parquet", table, 1), day)
    assert ledger.column("BillingCurrency").to_pylist() == ["USD", "EUR"]
    lake = Lake(str(tmp_path / "lake"))
    lake.write_table("cost_ledger", {"date": day.isoformat()}, ledger)
    allocation = allocate_day(lake, day, AllocationRules(), None)
    totals = {t["BillingCurrency"]: t["direct_cost"] for t in allocation.totals.to_pylist()}
    assert totals == {"USD": Decimal("1.5"), "EUR": Decimal("2.0")}
    write_allocation(lake, allocation)
    with pytest.raises(BadInputError, match=r"credit-scoring-ai 2\.0\.0 is billed in EUR, not USD"):
        allocated_costs(lake, day.isoformat())


def test_ledgers_conform_to_focus_and_violations_name_the_column(raw_csv):
    from rai_pipelines.costs.conformance import validate_ledger

    ledger = cur_to_focus(SourceFile("cur.csv", read_cur_csv(raw_csv, "cur.csv")), date(2023, 11, 1))
    assert ledger.num_rows > 0 and validate_ledger(ledger).passed
    n = ledger.num_rows
    bad = ledger.set_column(
        ledger.column_names.index("ChargeCategory"), "ChargeCategory", pa.array(["Usage"] * (n - 1) + ["Refund"])
    )
    bad = bad.set_column(bad.column_names.index("BillingCurrency"), "BillingCurrency", pa.array(["usd"] * n))
    bad = bad.append_column("CostCenter", pa.array(["cc"] * n))
    found = {(f.column, f.detail.split(":")[0]) for f in validate_ledger(bad).findings}
    assert ("ChargeCategory", "1 value(s) outside FOCUS 1.2's allowed values for ChargeCategory") in found
    # The partition is validated through its distinct values: one wrong currency code, however many rows.
    assert ("BillingCurrency", "1 value(s) not matching ^[A-Z]{3}$") in found
    assert ("CostCenter", "not a FOCUS column and not prefixed x_") in found


def test_a_profile_gathered_batch_by_batch_catches_one_bad_row_among_many(raw_csv):
    from rai_pipelines.costs.conformance import LedgerProfile, validate_ledger

    ledger = cur_to_focus(SourceFile("cur.csv", read_cur_csv(raw_csv, "cur.csv")), date(2023, 11, 1))
    n = ledger.num_rows
    billed = ledger.column("BilledCost").to_pylist()
    ends = ledger.column("ChargePeriodEnd").to_pylist()
    starts = ledger.column("ChargePeriodStart").to_pylist()
    bad = ledger.set_column(
        ledger.column_names.index("BilledCost"),
        "BilledCost",
        pa.array(billed[:-1] + [None], ledger.schema.field("BilledCost").type),
    )
    ends[n // 2] = starts[n // 2] - (ends[n // 2] - starts[n // 2]) - timedelta(hours=1)  # ends before it starts
    bad = bad.set_column(
        bad.column_names.index("ChargePeriodEnd"),
        "ChargePeriodEnd",
        pa.array(ends, ledger.schema.field("ChargePeriodEnd").type),
    )
    profile = LedgerProfile(bad.schema)
    for batch in bad.to_batches(max_chunksize=7):  # many small batches, as the asset streams them
        profile.add(batch)
    assert profile.rows == n
    found = {(f.column, f.detail.split(" (")[0]) for f in validate_ledger(profile).findings}
    assert found == {
        ("BilledCost", "missing in at least one row"),
        ("ChargePeriodEnd", "1 row(s) where ChargePeriodEnd is before ChargePeriodStart"),
    }


def test_tax_rows_have_no_pricing_quantity_and_commitments_say_what_they_are():
    arn_sp, arn_ri = "arn:aws:savingsplans::1:savingsplan/x", "arn:aws:ec2:eu-west-1:1:reserved-instances/y"
    rows = [
        _cur2_row("Tax", 2.0, line_item_usage_amount="1", pricing_unit="Tax"),
        _cur2_row("SavingsPlanCoveredUsage", 0.2, savings_plan_savings_plan_a_r_n=arn_sp, line_item_usage_amount="3"),
        _cur2_row("DiscountedUsage", 0.0, reservation_reservation_a_r_n=arn_ri, reservation_effective_cost="0.1"),
        _cur2_row("Fee", 100.0, reservation_reservation_a_r_n=arn_ri),
        _cur2_row("Usage", 1.0, bill_payer_account_name="Payer Ltd", line_item_usage_account_name="ml-prod"),
    ]
    ledger = cur_to_focus(SourceFile("x.parquet", _table(rows), 1), date(2023, 11, 2)).to_pylist()
    tax, covered, discounted, fee, usage = ledger
    assert tax["PricingQuantity"] is None and tax["PricingUnit"] is None and tax["ContractedUnitPrice"] is None
    assert covered["PricingQuantity"] == Decimal(3)
    assert (covered["CommitmentDiscountType"], covered["CommitmentDiscountCategory"]) == ("Savings Plan", "Spend")
    assert (discounted["CommitmentDiscountType"], discounted["CommitmentDiscountCategory"]) == (
        "Reserved Instance",
        "Usage",
    )
    assert covered["CommitmentDiscountStatus"] == discounted["CommitmentDiscountStatus"] == "Used"
    assert fee["CommitmentDiscountStatus"] is None  # a purchase, not a consumption of the commitment
    assert usage["CommitmentDiscountStatus"] is None and usage["CommitmentDiscountType"] is None
    assert (usage["BillingAccountName"], usage["SubAccountName"]) == ("Payer Ltd", "ml-prod")


def test_cur2_product_attributes_come_from_the_product_map():
    rows = [_cur2_row("Usage", 1.0), _cur2_row("Usage", 2.0)]
    table = _table(rows).append_column(
        "product",
        pa.array(
            [[("product_name", "Amazon Elastic Compute Cloud"), ("region_code", "eu-west-1")], None],
            pa.map_(pa.string(), pa.string()),
        ),
    )
    ledger = cur_to_focus(SourceFile("x.parquet", table, 1), date(2023, 11, 2)).to_pylist()
    assert [r["ServiceName"] for r in ledger] == ["Amazon Elastic Compute Cloud", "AmazonEC2"]
    assert [r["RegionId"] for r in ledger] == ["eu-west-1", None]


@pytest.mark.parametrize("with_separator", [False, True])
def test_map_tags_become_the_same_json_whatever_their_shape(with_separator):
    from rai_pipelines.costs.ledger_schema import ATTRIBUTION_TAGS
    from rai_pipelines.costs.sources.aws_cur_tags import TagSets, map_tag_columns

    value = "a\x1fb" if with_separator else "search"
    maps = [
        [("user_model_name", "m"), ("user:team", value), ("user_env", None)],
        None,
        [],
        [("user_team", "x"), ("user:team", "y")],  # two raw keys, one normalised key: the larger value wins
        [("user_model_name", "m"), ("user:team", value), ("user_env", None)],
    ]
    kind = pa.map_(pa.string(), pa.string())
    sets = TagSets()
    chunks = [map_tag_columns(pa.array(part, kind), sets) for part in (maps[:2], maps[2:])]
    texts = [t for chunk in chunks for t in chunk[0].to_pylist()]
    expected = []
    for entries in maps:
        row = sorted((tag_key(k), v) for k, v in (entries or []) if v not in (None, ""))
        expected.append(json.dumps(dict(row), sort_keys=True))
    assert texts == expected
    assert expected[0] == json.dumps({"model_name": "m", "team": value}, sort_keys=True) and expected[1] == "{}"
    attribution = {c: [v for chunk in chunks for v in chunk[1 + i].to_pylist()] for i, c in enumerate(ATTRIBUTION_TAGS)}
    assert attribution["x_ModelName"] == ["m", None, None, None, "m"]
    assert attribution["x_Team"] == [value, None, None, "y", value]


def test_an_export_of_the_wrong_account_is_refused_naming_the_row():
    rows = [_cur2_row("Usage", 1.0, bill_payer_account_id="111122223333"), _cur2_row("Usage", 2.0)]
    source = SourceFile("x.parquet", _table(rows), 1, context="111122223333")
    with pytest.raises(BadInputError, match=r"x\.parquet row 2: field bill_payer_account_id = '1' is not the payer"):
        cur_to_focus(source, date(2023, 11, 2))
    assert cur_to_focus(SourceFile("x.parquet", _table(rows[:1]), 1, context="111122223333"), date(2023, 11, 2))


def test_a_duplicate_line_item_is_refused_naming_both_rows():
    interval = "2023-11-02T03:00:00Z/2023-11-02T04:00:00Z"
    rows = [
        _cur2_row("Usage", 1.0, identity_line_item_id="a", identity_time_interval=interval),
        _cur2_row("Usage", 1.0, identity_line_item_id="b", identity_time_interval=interval),
        # the same id in another hour is another line item
        _cur2_row("Usage", 1.0, identity_line_item_id="a", identity_time_interval="2023-11-02T04:00:00Z/x"),
        _cur2_row("Usage", 1.0, identity_line_item_id="b", identity_time_interval=interval),
    ]
    assert cur_to_focus(SourceFile("x.parquet", _table(rows[:3]), 1), date(2023, 11, 2)).num_rows == 3
    with pytest.raises(
        BadInputError,
        match=r"x\.parquet row 4: field identity_line_item_id = 'b' repeats the line"
        r" item of row 2",
    ):
        cur_to_focus(SourceFile("x.parquet", _table(rows), 1), date(2023, 11, 2))


def test_a_column_the_provider_adds_later_is_ignored():
    rows = [_cur2_row("Usage", 1.0, line_item_something_new="42", resource_tags_user_team="risk")]
    ledger = cur_to_focus(SourceFile("x.parquet", _table(rows), 1), date(2023, 11, 2)).to_pylist()
    assert [(r["BilledCost"], r["x_Team"]) for r in ledger] == [(Decimal(1), "risk")]


def test_a_truncated_or_corrupt_parquet_export_is_named(tmp_path):
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from rai_pipelines.costs.ledger_schema import ParquetInput

    path = tmp_path / "cur.parquet"
    pq.write_table(_table([_cur2_row("Usage", 1.0)] * 100), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # an upload cut short: no footer
    with pytest.raises(BadInputError, match=r"s3://b/cur\.parquet: not a readable Parquet file"):
        _ = SourceFile.streamed(ParquetInput(pafs.LocalFileSystem(), str(path), "s3://b/cur.parquet")).schema
    damaged = bytearray(data)
    damaged[8:200] = b"\xff" * 192  # the column data itself, footer intact
    path.write_bytes(bytes(damaged))
    source = SourceFile.streamed(ParquetInput(pafs.LocalFileSystem(), str(path), "s3://b/cur.parquet"))
    with pytest.raises(BadInputError, match=r"s3://b/cur\.parquet: not a readable Parquet file"):
        cur_to_focus(source, date(2023, 11, 2))


@pytest.mark.parametrize(
    "cost, message",
    [
        ("0.000000000000000000000001", r"bad\.csv line 4: field lineItem/UnblendedCost = '0\.0+1' has more decimal"),
        ("12,5O", r"bad\.csv line 4: field lineItem/UnblendedCost = '12,5O' is not a number"),
    ],
)
def test_the_witness_names_the_row_arrow_cannot_read(raw_csv, cost, message):
    """Hardening issue, case 11: such costs raised a bare ArrowInvalid naming no file or line."""
    text = raw_csv.decode().splitlines()
    header = text[0].split(",")
    column = header.index("lineItem/UnblendedCost")
    row = next(csv.reader([text[3]]))
    row[column] = cost
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(row)
    text[3] = buffer.getvalue().rstrip("\n")
    source = SourceFile("bad.csv", read_cur_csv(("\n".join(text) + "\n").encode(), "bad.csv"))
    with pytest.raises(BadInputError, match=message):
        source_daily_totals(source)


def test_blanks_around_a_cost_are_read_alike_by_the_ledger_and_its_witness(raw_csv):
    text = raw_csv.decode().splitlines()
    column = text[0].split(",").index("lineItem/UnblendedCost")
    rows = [next(csv.reader([line])) for line in text[1:]]
    for row in rows:
        row[column] = f" {row[column]} "
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([text[0].split(","), *rows])
    source = SourceFile("spaced.csv", read_cur_csv(buffer.getvalue().encode(), "spaced.csv"))
    day = date(2023, 11, 3)
    ledger = cur_to_focus(source, day)
    assert (
        sum(ledger.column("BilledCost").to_pylist(), Decimal(0))
        == one_currency(source_daily_totals(source))[day.isoformat()]
    )


def test_a_ledger_that_does_not_reconcile_is_not_published(tmp_path, specs, monkeypatch):
    """The reconciliation is the ledger's reason to exist: a converter that loses a line item (here
    the real CUR converter with its costliest row of the day dropped, injected through the source
    kinds table) must fail the cost_ledger run, naming the export file, with nothing written."""
    from dataclasses import replace

    from rai_pipelines.core.lake import Lake
    from rai_pipelines.costs.sources import SOURCE_KINDS
    from tests.conftest import LOOP_DAYS, make_world, run_cost_ledger

    real = SOURCE_KINDS["aws_cur"]
    lost = []

    def lossy_days(source, days):
        for day, batch in real.days(source, days):
            if not lost and batch.num_rows > 1 and source.uri.endswith(".parquet"):
                costs = [float(c) for c in batch.column("BilledCost").to_pylist()]
                costliest = costs.index(max(costs))
                lost.append((source.uri, costs[costliest]))
                batch = batch.filter(pa.array([i != costliest for i in range(batch.num_rows)]))
            yield day, batch

    day = LOOP_DAYS[0]
    world = make_world(tmp_path / "world", specs, days=[day])
    lake = Lake(str(world.lake_root))
    assert not lake.exists("cost_ledger", {"date": day.isoformat()})
    monkeypatch.setitem(SOURCE_KINDS, "aws_cur", replace(real, days=lossy_days))
    result = run_cost_ledger(world, day)
    assert not result.success
    assert lost and lost[0][1] >= 0.005  # the dropped row is worth more than the reconciliation's half cent
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.event_specific_data.error)
    assert f"cost ledger for {day} does not reconcile with its exports" in message
    metadata = failure.event_specific_data.user_failure_data.metadata
    assert metadata["mismatched_sources"].value == [lost[0][0]]  # the export file, named
    assert not lake.exists("cost_ledger", {"date": day.isoformat()})  # nothing of the period written
    assert not (world.lake_root / "cost_ledger").exists()  # not even an empty date= folder


def test_a_day_the_exports_cover_without_charges_is_published_empty(tmp_path, specs, monkeypatch):
    """An account with nothing billed on a day its exports cover (an idle day between charged ones,
    emulated by the real CUR source kind with that day's line items removed from both the
    normalisation and the witness): the day is a valid, empty partition, not a reconciliation
    failure."""
    from dataclasses import replace

    import dagster as dg

    from rai_pipelines.core.lake import Lake
    from rai_pipelines.costs.sources import SOURCE_KINDS
    from rai_pipelines.definitions import build_definitions
    from tests.conftest import LOOP_DAYS, make_world, settings_for

    real = SOURCE_KINDS["aws_cur"]
    idle = LOOP_DAYS[0]

    def idle_days(source, days):
        for day, batch in real.days(source, days):
            yield day, batch.slice(0, 0) if day == idle else batch

    def idle_totals(source):
        return {d: total for d, total in real.daily_totals(source).items() if d != idle.isoformat()}

    def idle_costs(source):
        return {
            cost: {d: total for d, total in by_day.items() if d != idle.isoformat()}
            for cost, by_day in real.cost_totals(source).items()
        }

    world = make_world(tmp_path / "world", specs, days=[idle])
    idle_kind = replace(real, days=idle_days, daily_totals=idle_totals, cost_totals=idle_costs)
    monkeypatch.setitem(SOURCE_KINDS, "aws_cur", idle_kind)
    job = build_definitions(settings_for(world)).resolve_job_def("daily_governance_job")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            partition_key=idle.isoformat(), instance=instance, asset_selection=[dg.AssetKey("cost_ledger")]
        )
    assert result.success
    (check,) = result.get_asset_check_evaluations()[:1]
    assert check.passed and "NO CHARGE" in check.metadata["totals"].value
    ledger = Lake(str(world.lake_root)).read_table("cost_ledger", {"date": idle.isoformat()})
    assert ledger.num_rows == 0 and ledger.schema.field("BilledCost").type == pa.decimal128(38, 18)


def test_the_cost_ledger_reads_cur_exports_from_s3_and_writes_an_s3_lake(tmp_path, specs, s3_server):
    """Both demo exports (legacy CUR CSV with its manifest, CUR 2.0 Parquet) uploaded to a bucket on
    moto's S3 server, the lake in another: the ledger is read from and written to S3, reconciles,
    and holds the same rows as the ledger built from the same exports on disk."""
    import boto3
    import dagster as dg

    from rai_pipelines.core.lake import Lake
    from rai_pipelines.costs.sources.aws_cur import AwsCurExport
    from rai_pipelines.defs.costs.assets import build_cost_ledger
    from rai_pipelines.defs.costs.resources import BillingExportsResource
    from rai_pipelines.defs.partitions import daily_partitions
    from rai_pipelines.defs.resources import LakeResource
    from tests.conftest import LOOP_DAYS, make_world

    day = LOOP_DAYS[0]
    world = make_world(tmp_path / "world", specs, days=[day])
    client = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1")
    exports = s3_server.bucket("rai-billing")
    uploaded = 0
    for layout, root in (("legacy", world.legacy_export_root), ("cur2", world.cur2_export_root)):
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            client.put_object(
                Bucket=exports, Key=f"{layout}/{path.relative_to(root).as_posix()}", Body=path.read_bytes()
            )
            uploaded += 1
    assert uploaded >= 4  # each layout's data and manifest

    def bucket_root(layout: str) -> str:
        return (
            f"s3://{exports}/{layout}?endpoint_override={s3_server.host}:{s3_server.port}&scheme=http&region=us-east-1"
        )

    def ledger_run(lake_root: str, roots: dict[str, str]):
        billing = BillingExportsResource.of([AwsCurExport(root=roots[layout], layout=layout) for layout in roots])
        key = tmp_path / "key"
        key.write_bytes(b"0" * 64)
        lake = LakeResource(root=lake_root, decision_log_dir=str(tmp_path / "log"), pseudonymisation_key_file=str(key))
        cost_ledger = build_cost_ledger(daily_partitions(day.isoformat()))
        return dg.materialize(
            [cost_ledger], partition_key=day.isoformat(), resources={"lake": lake, "billing": billing}
        )

    s3_lake_root = s3_server.lake_uri(s3_server.bucket("rai-ledger"), "prod")
    on_s3 = ledger_run(s3_lake_root, {layout: bucket_root(layout) for layout in ("legacy", "cur2")})
    on_disk = ledger_run(
        str(tmp_path / "disk-lake"), {"legacy": str(world.legacy_export_root), "cur2": str(world.cur2_export_root)}
    )
    for result in (on_s3, on_disk):
        assert {c.check_name: c.passed for c in result.get_asset_check_evaluations()} == {
            "reconciles_with_export": True,
            "focus_conformance": True,
        }
    from_s3 = Lake(s3_lake_root).read_table("cost_ledger", {"date": day.isoformat()})
    from_disk = Lake(str(tmp_path / "disk-lake")).read_table("cost_ledger", {"date": day.isoformat()})
    assert from_s3.num_rows == from_disk.num_rows > 0
    assert {u.rsplit("/", 1)[-1] for u in from_s3.column("x_SourceUri").to_pylist()} == {
        "rai-cur-1.csv.gz",
        "rai-cur-00001.snappy.parquet",
    }
    assert all(u.startswith(f"s3://{exports}/") for u in from_s3.column("x_SourceUri").to_pylist())
    assert sum(from_s3.column("BilledCost").to_pylist(), Decimal(0)) == sum(
        from_disk.column("BilledCost").to_pylist(), Decimal(0)
    )


def test_costs_written_with_providers_own_digits_are_kept_exactly_by_the_ledger_and_its_witness(raw_csv):
    """16 decimal places (as Oracle's and AWS's CSVs write them) and scientific notation: kept to
    the last digit, not rounded at 12 places, and the day still reconciles."""
    day = date(2023, 11, 13)
    rows = list(csv.reader(io.StringIO(raw_csv.decode())))
    header = rows[0]
    start, cost = header.index("lineItem/UsageStartDate"), header.index("lineItem/UnblendedCost")
    lines = [n for n, row in enumerate(rows[1:], 2) if row[start].startswith(day.isoformat())][:2]
    precise = _replace_field(raw_csv, lines[0], "lineItem/UnblendedCost", "0.0122642774999509")
    precise = _replace_field(precise, lines[1], "lineItem/UnblendedCost", "2.323760000E-9")
    source = SourceFile("precise.csv", read_cur_csv(precise, "precise.csv"))
    ledger = cur_to_focus(source, day)
    billed = {
        (r["x_SourceRowNumber"], r["BilledCost"])
        for r in ledger.select(["x_SourceRowNumber", "BilledCost"]).to_pylist()
    }
    assert (lines[0], Decimal("0.0122642774999509")) in billed
    assert (lines[1], Decimal("0.00000000232376")) in billed
    assert sum((c for _, c in billed), Decimal(0)) == one_currency(source_daily_totals(source))[day.isoformat()]
    assert rows[lines[0] - 1][cost] != "0.0122642774999509"  # the values were changed for this test


@pytest.mark.parametrize("cost", ["0.1234567890123456789", "1.2345678901234567E-5"])
def test_a_cost_the_ledger_cannot_hold_exactly_is_refused_by_the_ledger_and_its_witness(raw_csv, cost):
    bad = _replace_field(raw_csv, 40, "lineItem/UnblendedCost", cost)
    source = SourceFile("bad.csv", read_cur_csv(bad, "bad.csv"))
    message = (
        rf"bad\.csv line 40: field lineItem/UnblendedCost = '{re.escape(cost)}' "
        r"has more decimal places than the ledger keeps \(18\)"
    )
    with pytest.raises(BadInputError, match=message):
        cur_to_focus(source, date(2023, 11, 1))
    with pytest.raises(BadInputError, match=message):
        source_daily_totals(source)


def test_a_double_cost_too_small_for_the_ledger_is_refused_not_rounded_to_zero(tmp_path):
    from rai_pipelines.costs.witness import _amounts

    values = pa.array([0.25, 2.32376e-09, 3e-21], pa.float64())
    with pytest.raises(BadInputError, match=r"cur\.parquet row 3: field BilledCost = 3e-21 is smaller than"):
        _amounts(values, "cur.parquet", "BilledCost", pa.array([1, 2, 3]))
    kept = _amounts(values.slice(0, 2), "cur.parquet", "BilledCost", pa.array([1, 2]))
    assert kept.to_pylist() == [Decimal("0.25"), Decimal("0.00000000232376")]


def test_a_bill_in_two_currencies_is_totalled_per_currency_by_the_witness_and_the_ledger(raw_csv):
    """Every 3rd line item billed in CAD: the witness and the ledger's summary keep USD and CAD
    apart, each equal to the export's own per-currency sums, and nothing adds them together."""
    from rai_pipelines.costs.ledger import LedgerSummary

    rows = list(csv.reader(io.StringIO(raw_csv.decode())))
    header = rows[0]
    currency, cost, start = (
        header.index(c) for c in ("lineItem/CurrencyCode", "lineItem/UnblendedCost", "lineItem/UsageStartDate")
    )
    expected: dict[str, dict[str, Decimal]] = {}
    for n, row in enumerate(rows[1:]):
        row[currency] = "CAD" if n % 3 == 0 else "USD"
        by_currency = expected.setdefault(row[start][:10], {})
        by_currency[row[currency]] = by_currency.get(row[currency], Decimal(0)) + Decimal(row[cost])
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    source = SourceFile("two-currencies.csv", read_cur_csv(out.getvalue().encode(), "two-currencies.csv"))
    assert source_daily_totals(source) == expected
    day = date(2023, 11, 13)
    summary = LedgerSummary()
    summary.add(cur_to_focus(source, day))
    assert dict(summary.billed_by_source["two-currencies.csv"]) == expected[day.isoformat()]
    assert dict(summary.billed_by_currency) == expected[day.isoformat()]
    assert set(summary.effective_by_currency) == {"CAD", "USD"}
    assert all(share <= 1 for share in (summary.untagged_share("CAD"), summary.untagged_share("USD")))


def test_a_credit_without_a_pricing_unit_has_no_pricing_quantity():
    # AWS writes credits and discounts with a usage amount of 0 and no pricing unit: FOCUS wants
    # PricingQuantity and PricingUnit both null there, not a quantity without its unit.
    from rai_pipelines.costs.conformance import validate_ledger

    rows = [
        _cur2_row("Credit", -2.35, line_item_usage_amount="0.0"),
        _cur2_row("Usage", 1.0, line_item_usage_amount="4.0", pricing_unit="Hrs"),
    ]
    ledger = cur_to_focus(SourceFile("x.parquet", _table(rows), 1), date(2023, 11, 2))
    credit, usage = ledger.to_pylist()
    assert (credit["PricingQuantity"], credit["PricingUnit"]) == (None, None)
    assert (usage["PricingQuantity"], usage["PricingUnit"]) == (Decimal("4.0"), "Hours")
    assert validate_ledger(ledger).passed


def test_double_costs_with_binary_noise_below_the_18th_place_are_rounded_alike_by_the_ledger_and_witness():
    """A double's shortest text can have more places than the ledger keeps (1.2345678901234567e-05
    has 21): both read it as that text rounded at the 18th place; a batch of doubles that all fit is
    kept exactly (the witness's fast path)."""
    from rai_pipelines.costs.witness import _amounts

    noisy = [0.25, 1.2345678901234567e-05, 0.1 + 0.2]
    expected = [Decimal("0.25"), Decimal("0.000012345678901235"), Decimal("0.30000000000000004")]
    assert _amounts(pa.array(noisy), "cur.parquet", "cost", pa.array([1, 2, 3])).to_pylist() == expected
    fitting = [0.25, 2.32376e-09, 771.015811]
    kept = _amounts(pa.array(fitting), "cur.parquet", "cost", pa.array([1, 2, 3])).to_pylist()
    assert kept == [Decimal("0.25"), Decimal("0.00000000232376"), Decimal("771.015811")]

    table = _table([_cur2_row("Usage", cost) for cost in noisy + fitting])
    table = table.set_column(
        table.schema.get_field_index("line_item_unblended_cost"),
        "line_item_unblended_cost",
        pa.array(noisy + fitting, pa.float64()),
    )
    source = SourceFile("x.parquet", table, 1)
    ledger = cur_to_focus(source, date(2023, 11, 2))
    assert ledger.column("BilledCost").to_pylist() == expected + kept
    assert one_currency(source_daily_totals(source))["2023-11-02"] == sum(expected + kept)
