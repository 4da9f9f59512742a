"""AWS Data Exports' "FOCUS 1.2 with AWS columns" lands in the cost ledger: typed, attributed from tags,
reconciled to the cent, refused row by row when bad, read from the files the current manifest names.
S3 is moto's server on loopback."""

from __future__ import annotations

import io
import json
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.ledger_schema import LEDGER_SCHEMA
from rai_pipelines.costs.sources.focus_export import (
    aws_focus_to_focus,
)
from rai_pipelines.costs.sources.focus_witness import aws_focus_daily_totals
from tests.conftest import one_currency
from tests.costs.focus_export_data import (
    AWS_ACCOUNT,
    AWS_SCHEMA,
    CENT,
    DAYS,
    MAY,
    SAVINGS_PLAN_ARN,
    aws_day,
    aws_parquet,
    aws_rows,
    billed_by_day,
    ledger_of,
    witness,
)

# --- AWS ----------------------------------------------------------------------------------------------


def test_an_aws_focus_export_in_s3_becomes_a_reconciled_attributed_ledger(s3_export):
    rows = aws_rows()
    s3_export.write(
        {
            "rai-focus-00001.snappy.parquet": aws_parquet(rows[:7]),
            "rai-focus-00002.snappy.parquet": aws_parquet(rows[7:]),
        }
    )
    reader = s3_export.reader()
    sources = reader.read(MAY)
    assert [s.uri for s in sources] == [
        f"s3://{s3_export.bucket}/focus/rai-focus/data/BILLING_PERIOD=2024-05/rai-focus-0000{i}.snappy.parquet"
        for i in (1, 2)
    ]
    assert {s.kind for s in sources} == {"aws_focus"} and {s.context for s in sources} == {AWS_ACCOUNT}
    totals: dict[str, Decimal] = {}
    for source in sources:
        for key, value in one_currency(witness(source)).items():
            totals[key] = totals.get(key, Decimal(0)) + value
    expected = billed_by_day(rows, aws_day)
    assert totals.keys() == expected.keys()
    assert all(abs(totals[k] - expected[k]) < Decimal("1e-9") for k in totals)
    all_rows = []
    for day in DAYS:
        ledger = ledger_of(sources, day)
        assert ledger.schema == LEDGER_SCHEMA
        billed = sum(ledger.column("BilledCost").to_pylist(), Decimal(0))
        assert billed.quantize(CENT) == totals[day.isoformat()].quantize(CENT)
        all_rows += ledger.to_pylist()
    assert len(all_rows) == len(rows)
    assert {r["x_SourceProvider"] for r in all_rows} == {"aws"} and {r["ProviderName"] for r in all_rows} == {"AWS"}
    ec2 = next(r for r in all_rows if r["ResourceId"] and r["ResourceId"].endswith("i-0abc"))
    assert json.loads(ec2["Tags"]) == {
        "aws_createdby": "AssumedRole:ci",
        "model_name": "credit-scoring",
        "model_version": "v2",
        "team": "risk-ml",
    }
    assert (ec2["x_ModelName"], ec2["x_ModelVersion"], ec2["x_Team"]) == ("credit-scoring", "v2", "risk-ml")
    assert ec2["InvoiceId"] == "EUINDE24-123456" and ec2["x_LineItemType"] == "Usage"
    assert ec2["BilledCost"] == Decimal(str(rows[0]["BilledCost"])).quantize(Decimal("1e-12"))
    sagemaker = [r for r in all_rows if r["ServiceName"] == "Amazon SageMaker" and r["ChargeCategory"] == "Usage"]
    assert {(r["x_ModelName"], r["x_Workload"], r["x_Environment"]) for r in sagemaker} == {
        ("llm-embedder", "search", "prod")
    }
    s3 = [r for r in all_rows if r["ServiceName"] == "Amazon Simple Storage Service"]
    assert {r["Tags"] for r in s3} == {"{}"} and {r["x_ModelName"] for r in s3} == {None}
    tax = next(r for r in all_rows if r["ChargeCategory"] == "Tax")
    assert tax["PublisherName"] == "AWS" and tax["BilledCost"] == Decimal("19.41")  # null -> ProviderName
    credit = next(r for r in all_rows if r["ChargeCategory"] == "Credit")
    assert credit["BilledCost"] == Decimal("-25.5") and credit["ChargePeriodStart"].date() == date(2024, 5, 2)
    fee = next(r for r in all_rows if r["ChargeCategory"] == "Purchase")
    assert (fee["BilledCost"], fee["EffectiveCost"], fee["CommitmentDiscountId"]) == (
        Decimal(36),
        Decimal(2),
        SAVINGS_PLAN_ARN,
    )


def test_aws_restatement_changes_the_fingerprint_and_only_the_manifest_files_are_read(s3_export):
    rows = aws_rows()
    reader = s3_export.reader()
    assert reader.file_paths(MAY) == [] and reader.fingerprint(MAY) == [] and reader.read(MAY) == []
    s3_export.write({"exec-1/rai-focus-00001.snappy.parquet": aws_parquet(rows)})
    before = reader.fingerprint(MAY)
    restated = aws_rows()
    restated[0]["BilledCost"] += 1.25
    s3_export.write({"exec-2/rai-focus-00001.snappy.parquet": aws_parquet(restated)}, execution="exec-2")
    after = reader.fingerprint(MAY)
    assert after != before and "exec-2" in after[1][0]
    (source,) = reader.read(MAY)  # exec-1's file is still in the bucket, and not read
    assert "exec-2" in source.uri
    day_total = one_currency(aws_focus_daily_totals(source))[MAY.isoformat()]
    assert day_total.quantize(CENT) == (billed_by_day(rows, aws_day)[MAY.isoformat()] + Decimal("1.25")).quantize(CENT)


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda t: t.drop_columns(["BillingCurrency"]),
            r"\.parquet: missing mandatory FOCUS column\(s\) BillingCurrency",
        ),
        (
            lambda t: _column(t, "BillingAccountId", 5, "999999999999"),
            r"\.parquet row 6: field BillingAccountId = '999999999999': .*than the configured '123456789012'",
        ),
        (
            lambda t: _column(t, "ChargeCategory", 2, "Discount"),
            r"\.parquet row 3: field ChargeCategory = 'Discount' is not one of",
        ),
        (
            lambda t: _column(t, "BillingCurrency", 0, "US$"),
            r"\.parquet row 1: field BillingCurrency = 'US\$' is not an ISO 4217",
        ),
    ],
)
def test_bad_aws_rows_are_refused_naming_file_row_and_field(s3_export, damage, message):
    table = damage(pa.Table.from_pylist(aws_rows(), schema=AWS_SCHEMA))
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    s3_export.write({"rai-focus-00001.snappy.parquet": buffer.getvalue()})
    (source,) = s3_export.reader().read(MAY)
    with pytest.raises(BadInputError, match=message):
        aws_focus_to_focus(source, MAY)


def _column(table: pa.Table, name: str, index: int, value: str) -> pa.Table:
    values = table.column(name).to_pylist()
    values[index] = value
    return table.set_column(table.schema.get_field_index(name), name, pa.array(values, pa.string()))


def test_a_corrupt_aws_file_or_a_missing_one_is_refused(s3_export):
    data = aws_parquet(aws_rows())
    s3_export.write({"rai-focus-00001.snappy.parquet": data[: len(data) // 2]})
    with pytest.raises(BadInputError, match=r"rai-focus-00001\.snappy\.parquet: not a readable Parquet file"):
        s3_export.reader().read(MAY)
    s3_export.write({"rai-focus-00001.snappy.parquet": data}, listed=["rai-focus-00001.snappy.parquet", "gone.parquet"])
    with pytest.raises(
        BadInputError, match=r"BILLING_PERIOD=2024-05/gone\.parquet: listed in the manifest but missing"
    ):
        s3_export.reader().read(MAY)
    s3_export.write({"rai-focus-00001.snappy.parquet": b"PAR1 not really"}, listed=["rai-focus-00001.snappy.parquet"])
    with pytest.raises(BadInputError, match=r"not a readable Parquet file"):
        s3_export.reader().read(MAY)


def _with_subcategory(value: str) -> list[dict]:
    rows = aws_rows()
    for row in rows:
        row["ServiceSubcategory"] = value if row["ServiceCategory"] == "Compute" else None
    return rows


def test_a_service_subcategory_is_kept_refused_when_unknown_and_checked_against_its_category(s3_export):
    """FOCUS 1.2's ServiceSubcategory is the provider's where it writes one (a row without one is
    "Other (<category>)"); a value FOCUS does not list is refused naming the row, and one under
    another category than the row's fails the ledger's conformance check."""
    from rai_pipelines.costs.conformance import validate_ledger

    s3_export.write({"rai-focus-00001.snappy.parquet": aws_parquet(_with_subcategory("Virtual Machines"))})
    ledger = pa.concat_tables([ledger_of(s3_export.reader().read(MAY), day) for day in DAYS])
    pairs = {(r["ServiceCategory"], r["ServiceSubcategory"]) for r in ledger.to_pylist()}
    assert ("Compute", "Virtual Machines") in pairs and ("Other", "Other (Other)") in pairs
    assert validate_ledger(ledger).passed

    s3_export.write({"rai-focus-00001.snappy.parquet": aws_parquet(_with_subcategory("Virtual Machine"))})
    (source,) = s3_export.reader().read(MAY)
    with pytest.raises(BadInputError, match=r"row \d+: field ServiceSubcategory = 'Virtual Machine' is not one of"):
        aws_focus_to_focus(source, MAY)

    s3_export.write({"rai-focus-00001.snappy.parquet": aws_parquet(_with_subcategory("Object Storage"))})
    ledger = pa.concat_tables([ledger_of(s3_export.reader().read(MAY), day) for day in DAYS])
    (finding,) = validate_ledger(ledger).findings
    assert finding.expectation == "focus_service_subcategory_parent"
    assert "'Object Storage' belongs to ServiceCategory 'Storage', not 'Compute'" in finding.detail
    assert "rai-focus-00001.snappy.parquet row " in finding.detail


def test_every_focus_column_and_the_providers_own_x_columns_are_kept(s3_export):
    """The 'Columns are dropped' defect: commitment use in units (CommitmentDiscountQuantity and
    Unit, FOCUS 1.2) and AWS's own x_ columns reach the ledger."""
    rows = aws_rows()
    covered = next(r for r in rows if r["CommitmentDiscountStatus"] == "Used")
    covered.update(
        CommitmentDiscountQuantity=0.123456789012,
        CommitmentDiscountUnit="Hours",
        SkuPriceDetails='{"CoreCount": 4, "OperatingSystem": "Linux"}',
        PricingCurrency="USD",
        PricingCurrencyEffectiveCost=0.9876543,
        x_Discounts={"SavingsPlanDiscount": -0.5},
        x_ServiceCode="AmazonEC2",
        x_ColumnAwsAddsLater="kept too",
    )
    s3_export.write({"rai-focus-00001.snappy.parquet": aws_parquet(rows)})
    ledger = pa.concat_tables([ledger_of(s3_export.reader().read(MAY), day) for day in DAYS])
    assert ledger.schema == LEDGER_SCHEMA
    (row,) = [r for r in ledger.to_pylist() if r["CommitmentDiscountQuantity"] is not None]
    assert row["CommitmentDiscountQuantity"] == Decimal("0.123456789012") and row["CommitmentDiscountUnit"] == "Hours"
    assert json.loads(row["SkuPriceDetails"]) == {"CoreCount": 4, "OperatingSystem": "Linux"}
    assert row["PricingCurrency"] == "USD" and row["PricingCurrencyEffectiveCost"] == Decimal("0.9876543")
    assert json.loads(row["x_ProviderColumns"]) == {
        "x_Discounts": {"SavingsPlanDiscount": -0.5},
        "x_ServiceCode": "AmazonEC2",
        "x_ColumnAwsAddsLater": "kept too",
        "x_Operation": covered["x_Operation"],
    }

    covered["SkuPriceDetails"] = "{not json"
    s3_export.write({"rai-focus-00001.snappy.parquet": aws_parquet(rows)})
    (source,) = s3_export.reader().read(MAY)
    with pytest.raises(BadInputError, match=r"row \d+: field SkuPriceDetails = '\{not json' is not JSON"):
        aws_focus_to_focus(source, MAY)
