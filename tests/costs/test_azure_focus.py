"""Azure Cost Management's FOCUS exports (FocusCost: CSV, gzip CSV or Parquet) land in the cost ledger:
typed, attributed from tags, reconciled to the cent with an independent witness, refused row by row
when bad, read from the latest export run only. Blob Storage is Azurite on loopback."""

from __future__ import annotations

import gzip
import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pyarrow as pa
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.ledger_schema import LEDGER_SCHEMA
from rai_pipelines.costs.sources.azure_focus import AzureFocusExportReader
from rai_pipelines.costs.sources.focus_export import (
    azure_focus_to_focus,
)
from rai_pipelines.costs.sources.focus_witness import azure_focus_daily_totals
from tests.conftest import one_currency
from tests.costs.focus_export_data import (
    AZURE_ACCOUNT,
    AZURE_COLUMNS,
    CENT,
    DAYS,
    MAY,
    LocalContainer,
    azure_csv,
    azure_day,
    azure_parquet,
    azure_rows,
    billed_by_day,
    ledger_of,
    witness,
    write_azure_run,
)

# --- Azure --------------------------------------------------------------------------------------------


def test_an_azure_focus_export_in_blob_storage_becomes_a_reconciled_attributed_ledger(blob_container):
    rows = azure_rows()
    (name,) = write_azure_run(blob_container, rows, "run-1", "2024-05-03T06:12:44.1234567Z")
    # Reader configured with the id in other letter case: Azure resource ids are case-insensitive.
    reader = blob_container.reader(AZURE_ACCOUNT.lower())
    (source,) = reader.read(DAYS[0])
    assert source.kind == "azure_focus" and source.context == AZURE_ACCOUNT.lower()
    assert source.uri == f"{blob_container.azurite.account_url}/{blob_container.name}/{name}"
    expected = billed_by_day(rows, azure_day)
    totals = one_currency(witness(source), "EUR")
    assert totals == expected
    all_rows = []
    for day in DAYS:
        ledger = azure_focus_to_focus(source, day)
        assert ledger.schema == LEDGER_SCHEMA
        billed = sum(ledger.column("BilledCost").to_pylist(), Decimal(0))
        assert billed.quantize(CENT) == totals[day.isoformat()].quantize(CENT)
        assert abs(billed - totals[day.isoformat()]) < Decimal("1e-9")
        all_rows += ledger.to_pylist()
    assert len(all_rows) == len(rows)  # every charge once, on exactly one day
    assert sorted(r["x_SourceRowNumber"] for r in all_rows) == list(range(2, len(rows) + 2))
    assert len({r["x_SourceRowHash"] for r in all_rows}) == len(rows)
    assert {r["x_SourceProvider"] for r in all_rows} == {"azure"} and {r["x_SourceUri"] for r in all_rows} == {
        source.uri
    }
    assert {r["BillingCurrency"] for r in all_rows} == {"EUR"} and {r["ProviderName"] for r in all_rows} == {
        "Microsoft"
    }

    first_row = next(r for r in all_rows if r["x_SourceRowNumber"] == 2)  # the tagged D8s v5 VM on May 1st
    assert first_row["ChargePeriodStart"] == datetime(2024, 5, 1, tzinfo=timezone.utc)
    assert first_row["BillingPeriodStart"] == datetime(2024, 5, 1, tzinfo=timezone.utc)
    assert first_row["BilledCost"] == Decimal(rows[0]["BilledCost"])
    assert first_row["ServiceCategory"] == "Compute" and first_row["x_LineItemType"] == "Usage"
    assert json.loads(first_row["Tags"]) == {
        "environment": "prod",
        "model_name": "credit-scoring",
        "model_version": "v2",
        "team": "risk-ml",
    }
    assert list(json.loads(first_row["Tags"])) == sorted(json.loads(first_row["Tags"]))
    assert (first_row["x_ModelName"], first_row["x_ModelVersion"], first_row["x_Team"], first_row["x_Environment"]) == (
        "credit-scoring",
        "v2",
        "risk-ml",
        "prod",
    )
    embedder = [r for r in all_rows if r["ServiceName"] == "Azure OpenAI Service"]
    assert {(r["x_ModelName"], r["x_Workload"], r["x_Environment"], r["x_Team"]) for r in embedder} == {
        ("llm-embedder", "search", "prod", None)
    }
    training = [r for r in all_rows if r["ServiceName"] == "Azure Machine Learning"]
    assert {r["x_ModelName"] for r in training} == {"credit-scoring"}  # the "model" tag
    untagged = [r for r in all_rows if r["ServiceName"] == "Storage Accounts"]
    assert {r["Tags"] for r in untagged} == {"{}"} and {r["x_ModelName"] for r in untagged} == {None}

    by_category = {r["ChargeCategory"]: r for r in all_rows if r["ChargeCategory"] != "Usage"}
    assert by_category["Tax"]["BilledCost"] == Decimal("41.87") and by_category["Tax"]["ChargeFrequency"] == "Recurring"
    assert by_category["Credit"]["BilledCost"] == Decimal("-50.00")
    purchase = by_category["Purchase"]
    assert (purchase["BilledCost"], purchase["EffectiveCost"], purchase["CommitmentDiscountType"]) == (
        Decimal(730),
        Decimal(0),
        "Savings Plan",
    )
    covered = [r for r in all_rows if r["CommitmentDiscountStatus"] == "Used"]
    assert len(covered) == 3 and {r["BilledCost"] for r in covered} == {Decimal(0)}
    assert {r["EffectiveCost"] for r in covered} == {Decimal("1.2345678901")}
    correction = next(r for r in all_rows if r["ChargeClass"] == "Correction")
    assert correction["ChargePeriodStart"] == datetime(2024, 4, 20, tzinfo=timezone.utc)
    assert correction in azure_focus_to_focus(source, MAY).to_pylist()  # April's correction lands on May 1st
    tiny = next(r for r in all_rows if r["ServiceName"] == "Bandwidth")
    assert tiny["BilledCost"] == Decimal("0.000002")
    assert azure_focus_to_focus(source, date(2024, 5, 4)).num_rows == 0


def test_an_azure_parquet_export_in_a_local_folder_reads_the_same(tmp_path):
    rows = azure_rows()
    container = LocalContainer(tmp_path / "container")
    names = write_azure_run(container, rows, "run-1", "2024-05-03T06:12:44Z", fmt="parquet", parts=2)
    reader = container.reader()
    sources = reader.read(DAYS[1])
    assert [s.uri for s in sources] == [str(tmp_path / "container" / n) for n in names]
    assert [s.first_data_line for s in sources] == [1, 1]
    totals: dict[str, Decimal] = {}
    for source in sources:
        for key, value in one_currency(witness(source), "EUR").items():
            totals[key] = totals.get(key, Decimal(0)) + value
    assert totals == billed_by_day(rows, azure_day)
    for day in DAYS:
        ledger = ledger_of(sources, day)
        assert ledger.schema == LEDGER_SCHEMA
        billed = sum(ledger.column("BilledCost").to_pylist(), Decimal(0))
        assert billed.quantize(CENT) == totals[day.isoformat()].quantize(CENT)
    second = [r["x_SourceRowNumber"] for day in DAYS for r in ledger_of(sources[1:], day).to_pylist()]
    assert sorted(second) == list(range(1, sources[1].table.num_rows + 1))  # Parquet rows: from 1 per file
    # A backfill reads each file once for all its days, and gets each day's ledger exactly.
    from rai_pipelines.costs import ledger

    seen: set[date] = set()
    for source in sources:
        by_day: dict[date, list] = {}
        for day, batch in ledger.to_focus_days(source, DAYS):
            by_day.setdefault(day, []).append(batch)
        for day in DAYS:
            one_pass = pa.Table.from_batches(by_day.get(day, []), schema=LEDGER_SCHEMA)
            assert one_pass.equals(ledger_of([source], day))
        seen |= set(by_day)
    assert seen == set(DAYS)


def test_the_latest_azure_run_is_read_and_a_restatement_changes_the_fingerprint(blob_container):
    rows = azure_rows()
    reader = blob_container.reader()
    assert reader.file_paths(MAY) == [] and reader.fingerprint(MAY) == [] and reader.read(MAY) == []
    write_azure_run(blob_container, rows, "run-1", "2024-05-03T06:12:44.1234567Z")
    before = reader.fingerprint(MAY)
    assert [p.rsplit("/", 2)[-2] for p, _, _ in before] == ["run-1", "run-1"]  # manifest and its one part

    restated = azure_rows()
    restated[0]["BilledCost"] = str(Decimal(restated[0]["BilledCost"]) + Decimal("1.25"))
    # A later run whose folder sorts first: the manifest's submittedTime decides, not the name.
    write_azure_run(blob_container, restated, "a-run-2", "2024-05-04T06:10:01.7654321Z", parts=2)
    after = reader.fingerprint(MAY)
    assert after != before and {p.rsplit("/", 2)[-2] for p, _, _ in after} == {"a-run-2"}
    assert len(reader.file_paths(date(2024, 5, 31))) == 2
    sources = reader.read(MAY)
    total = sum((one_currency(witness(s), "EUR")[MAY.isoformat()] for s in sources), Decimal(0))
    assert total == billed_by_day(rows, azure_day)[MAY.isoformat()] + Decimal("1.25")
    assert reader.read(date(2024, 6, 1)) == []  # another billing period

    # The production configuration: the account URL and a credential instead of a connection string.
    from azure.core.credentials import AzureNamedKeyCredential

    from tests.azurite import ACCOUNT, ACCOUNT_KEY

    by_url = AzureFocusExportReader(
        AZURE_ACCOUNT,
        "focus-cost",
        directory="/exports/",
        container=blob_container.name,
        account_url=blob_container.azurite.account_url,
        credential=AzureNamedKeyCredential(ACCOUNT, ACCOUNT_KEY),
    )
    assert by_url.fingerprint(MAY) == after and "AccountKey" not in repr(by_url)

    # The same run's blob rewritten in place (same path): the ETag changes.
    blob_container.put(sources[0].uri.split(f"/{blob_container.name}/", 1)[1], gzip.compress(azure_csv(restated[:3])))
    assert reader.fingerprint(MAY) != after


@pytest.mark.parametrize(
    "damage, message, witness_refuses",
    [
        (
            lambda rows, cols: (rows, [c for c in cols if c != "ChargePeriodEnd"]),
            r": missing mandatory FOCUS column\(s\) ChargePeriodEnd$",
            False,
        ),
        (
            lambda rows, cols: (_set(rows, 3, ChargePeriodStart="05/02/2024"), cols),
            r" line 5: field ChargePeriodStart = '05/02/2024' is not an ISO 8601",
            True,
        ),
        (
            lambda rows, cols: (_set(rows, 0, BilledCost="12,50"), cols),
            r" line 2: field BilledCost = '12,50' is not a number",
            True,
        ),
        (
            lambda rows, cols: (_set(rows, 0, BilledCost="0.1234567890123456789"), cols),
            r" line 2: field BilledCost = '0\.1234567890123456789' has more decimal places than the ledger keeps",
            True,
        ),
        (
            lambda rows, cols: (_set(rows, 1, EffectiveCost="1.2345678901234567E-5"), cols),
            r" line 3: field EffectiveCost = '1\.2345678901234567E-5' has more decimal places than the ledger keeps",
            False,  # the witness reads BilledCost only: the normalisation itself refuses it
        ),
        (lambda rows, cols: (_set(rows, 1, EffectiveCost=""), cols), r" line 3: field EffectiveCost is empty", False),
        (
            lambda rows, cols: (_set(rows, 2, BillingCurrency="Euro"), cols),
            r" line 4: field BillingCurrency = 'Euro' is not an ISO 4217",
            False,
        ),
        (
            lambda rows, cols: (_set(rows, 4, ChargeCategory="Refund"), cols),
            r" line 6: field ChargeCategory = 'Refund' is not one of",
            False,
        ),
        (
            lambda rows, cols: (_set(rows, 0, Tags='{"team": '), cols),
            r" line 2: field Tags = '\{\"team\": ' is not a JSON object of tags",
            False,
        ),
        (
            lambda rows, cols: (
                _set(rows, 6, BillingAccountId="/providers/Microsoft.Billing/billingAccounts/99999"),
                cols,
            ),
            r" line 8: field BillingAccountId = '/providers/.*/99999': the export belongs to another",
            True,
        ),
    ],
)
def test_bad_azure_rows_are_refused_naming_file_line_and_field(tmp_path, damage, message, witness_refuses):
    rows, columns = damage(azure_rows(), list(AZURE_COLUMNS))
    container = LocalContainer(tmp_path)
    write_azure_run(container, azure_rows(), "run-1", "2024-05-03T06:12:44Z", fmt="csv")
    container.put("exports/focus-cost/20240501-20240531/run-1/part_0_0001.csv", azure_csv(rows, columns))
    (source,) = container.reader().read(MAY)
    with pytest.raises(BadInputError, match=r"focus-cost/20240501-20240531/run-1/part_0_0001\.csv" + message):
        azure_focus_to_focus(source, MAY)
    if witness_refuses:  # the witness refuses the same row on its own
        with pytest.raises(BadInputError, match=r"part_0_0001\.csv line \d+: field "):
            azure_focus_daily_totals(source)


def _set(rows, index, **values):
    rows[index].update(values)
    return rows


def test_quoted_line_breaks_keep_the_physical_line_in_messages(tmp_path):
    rows = azure_rows()
    rows[0]["ChargeDescription"] = "D8s v5\nmulti-line description"
    rows[2]["BillingCurrency"] = "eur"
    container = LocalContainer(tmp_path)
    write_azure_run(container, rows, "run-1", "2024-05-03T06:12:44Z", fmt="csv")
    (source,) = container.reader().read(MAY)
    with pytest.raises(BadInputError, match=r"part_0_0001\.csv line 5: field BillingCurrency = 'eur'"):
        azure_focus_to_focus(source, MAY)


def test_corrupt_azure_files_and_manifests_are_refused_naming_them(tmp_path, blob_container):
    rows = azure_rows()
    (gz,) = write_azure_run(blob_container, rows, "run-1", "2024-05-03T06:12:44Z")
    blob_container.put(gz, b"\x1f\x8b\x08\x00 this is no gzip stream")
    with pytest.raises(BadInputError, match=r"/run-1/part_0_0001\.csv\.gz: not a readable gzip file"):
        blob_container.reader().read(MAY)

    container = LocalContainer(tmp_path / "parquet")
    (part,) = write_azure_run(container, rows, "run-1", "2024-05-03T06:12:44Z", fmt="parquet")
    container.put(part, azure_parquet(rows)[:-100])
    with pytest.raises(BadInputError, match=r"part_0_0001\.snappy\.parquet: not a readable Parquet file"):
        container.reader().read(MAY)

    container = LocalContainer(tmp_path / "missing")
    (part,) = write_azure_run(container, rows, "run-1", "2024-05-03T06:12:44Z")
    container.delete(part)
    with pytest.raises(BadInputError, match=r"part_0_0001\.csv\.gz: listed in .*manifest\.json but missing"):
        container.reader().read(MAY)

    container = LocalContainer(tmp_path / "truncated")
    write_azure_run(container, rows, "run-1", "2024-05-03T06:12:44Z", row_counts=[len(rows) + 5])
    with pytest.raises(BadInputError, match=rf"part_0_0001\.csv\.gz: {len(rows)} data rows, but the manifest .* says"):
        container.reader().read(MAY)

    container = LocalContainer(tmp_path / "actual-cost")
    write_azure_run(container, rows, "run-1", "2024-05-03T06:12:44Z", export_type="ActualCost")
    with pytest.raises(BadInputError, match=r"run-1/manifest\.json: exportConfig\.type is 'ActualCost', not FocusCost"):
        container.reader().read(MAY)

    container = LocalContainer(tmp_path / "broken-manifest")
    write_azure_run(container, rows, "run-1", "2024-05-03T06:12:44Z")
    container.put("exports/focus-cost/20240501-20240531/run-1/manifest.json", b'{"blobs": [')
    with pytest.raises(BadInputError, match=r"run-1/manifest\.json: manifest is not JSON"):
        container.reader().file_paths(MAY)


def test_duplicate_line_items_are_kept_but_a_file_listed_twice_is_refused(tmp_path):
    """Neither export has a line-item id: two identical rows are two charges, both in the ledger (and in
    the invoice), each with its own row number and hash. Counting a whole file twice is refused."""
    rows = azure_rows()
    rows.insert(1, dict(rows[0]))
    container = LocalContainer(tmp_path)
    (name,) = write_azure_run(container, rows, "run-1", "2024-05-03T06:12:44Z", fmt="csv")
    (source,) = container.reader().read(MAY)
    ledger = azure_focus_to_focus(source, MAY).to_pylist()
    twins = [r for r in ledger if r["x_SourceRowNumber"] in (2, 3)]
    assert len(twins) == 2 and twins[0]["BilledCost"] == twins[1]["BilledCost"]
    assert twins[0]["x_SourceRowHash"] != twins[1]["x_SourceRowHash"]
    billed = sum((r["BilledCost"] for r in ledger), Decimal(0))
    assert billed == one_currency(azure_focus_daily_totals(source), "EUR")[MAY.isoformat()]

    manifest_name = "exports/focus-cost/20240501-20240531/run-1/manifest.json"
    manifest = json.loads((tmp_path / manifest_name).read_text())
    manifest["blobs"].append(dict(manifest["blobs"][0]))
    container.put(manifest_name, json.dumps(manifest).encode())
    with pytest.raises(BadInputError, match=r"manifest\.json: blobs\[1\] lists .*part_0_0001\.csv a second time"):
        container.reader().read(MAY)


def _commitment_ledger(tmp_path, edit):
    from rai_pipelines.costs.conformance import validate_ledger

    rows = azure_rows()
    edit(rows)
    container = LocalContainer(tmp_path / "commitments")
    write_azure_run(container, rows, "run-1", "2024-05-03T06:12:44Z", fmt="csv.gz")
    sources = container.reader().read(MAY)
    ledger = pa.concat_tables([ledger_of(sources, day) for day in DAYS])
    return validate_ledger(ledger)


def _purchase(rows) -> dict:
    return next(r for r in rows if r["ChargeCategory"] == "Purchase" and r["CommitmentDiscountId"])


def _covered_usage(rows) -> dict:
    return next(r for r in rows if r["ChargeCategory"] == "Usage" and r["CommitmentDiscountStatus"] == "Used")


@pytest.mark.parametrize(
    ("edit", "column", "detail"),
    [
        (
            lambda rows: _purchase(rows).update(CommitmentDiscountStatus="Used"),
            "CommitmentDiscountStatus",
            "is set on a row whose ChargeCategory is not Usage",
        ),
        (
            lambda rows: _covered_usage(rows).update(CommitmentDiscountStatus=""),
            "CommitmentDiscountStatus",
            "is missing on a Usage row with a CommitmentDiscountId",
        ),
        (
            lambda rows: _covered_usage(rows).update(CommitmentDiscountCategory=""),
            "CommitmentDiscountCategory",
            "must be set exactly when CommitmentDiscountId is",
        ),
        (
            lambda rows: _purchase(rows).update(EffectiveCost=_purchase(rows)["BilledCost"]),
            "EffectiveCost",
            "the commitment is counted twice in EffectiveCost",
        ),
    ],
)
def test_commitment_discount_rows_that_break_focus_rules_over_several_columns_are_refused(
    tmp_path, edit, column, detail
):
    assert _commitment_ledger(tmp_path / "as-exported", lambda rows: None).passed
    result = _commitment_ledger(tmp_path / "edited", edit)
    assert not result.passed
    (finding,) = result.findings
    assert finding.expectation == "focus_commitment_discount_rules" and finding.column == column
    assert detail in finding.detail and " row " in finding.detail  # the file and row of the first such row


def test_an_entirely_unused_commitment_purchase_is_not_double_counting(tmp_path):
    """EffectiveCost equal to BilledCost on a commitment's purchase is only double counting when
    usage it covered carries an amortised cost too."""

    def nothing_used(rows):
        _purchase(rows).update(EffectiveCost=_purchase(rows)["BilledCost"])
        for row in rows:
            if row["CommitmentDiscountStatus"] == "Used":
                row.update(EffectiveCost="0")

    assert _commitment_ledger(tmp_path, nothing_used).passed


def test_a_focus_1_0_export_without_service_subcategory_gets_other_of_its_category(tmp_path):
    container = LocalContainer(tmp_path / "v1")
    rows = azure_rows()
    assert "ServiceSubcategory" not in rows[0]  # FocusCost 1.0 has no such column
    write_azure_run(container, rows, "run-1", "2024-05-03T06:12:44Z", fmt="csv.gz")
    ledger = pa.concat_tables([ledger_of(container.reader().read(MAY), day) for day in DAYS]).to_pylist()
    assert {(r["ServiceCategory"], r["ServiceSubcategory"]) for r in ledger} >= {("Compute", "Other (Compute)")}
    assert all(r["ServiceSubcategory"] == f"Other ({r['ServiceCategory']})" for r in ledger)


def test_azures_own_x_columns_are_kept_and_the_invoice_id_it_reads_is_not_repeated(tmp_path):
    container = LocalContainer(tmp_path / "x")
    rows = azure_rows()
    rows[0]["x_InvoiceId"] = "E0123456789"
    write_azure_run(container, rows, "run-1", "2024-05-03T06:12:44Z", fmt="csv.gz")
    ledger = pa.concat_tables([ledger_of(container.reader().read(MAY), day) for day in DAYS]).to_pylist()
    first = next(r for r in ledger if r["x_SourceRowNumber"] == 2)  # the CSV's first data line
    provider = json.loads(first["x_ProviderColumns"])
    assert provider["x_BilledCostInUsd"] == "39.608226460" and provider["x_SkuMeterName"] == "D8s v5"
    assert provider["x_SomeColumnAzureAddsNextYear"] == "whatever"  # a column added later is kept
    assert first["InvoiceId"] == "E0123456789" and "x_InvoiceId" not in provider
    assert all(value not in (None, "") for value in provider.values())  # only the columns with a value


def _first(rows, **match) -> dict:
    return next(r for r in rows if all(r[k] == v for k, v in match.items()))


@pytest.mark.parametrize(
    ("edit", "column", "detail"),
    [
        (lambda rows: _first(rows, ChargeCategory="Tax").update(PricingQuantity="1", PricingUnit="Hours"),
         "PricingQuantity", "is set on a Tax row"),
        (lambda rows: _first(rows, ChargeCategory="Usage").update(PricingQuantity="", PricingUnit=""),
         "PricingQuantity", "is missing on a Usage or Purchase row that is not a correction"),
        (lambda rows: _first(rows, ChargeCategory="Usage").update(PricingUnit=""),
         "PricingUnit", "must be set exactly when PricingQuantity is"),
        (lambda rows: _first(rows, ChargeCategory="Usage").update(ConsumedUnit=""),
         "ConsumedUnit", "must be set exactly when ConsumedQuantity is"),
        (lambda rows: _first(rows, ChargeCategory="Purchase").update(ConsumedQuantity="1", ConsumedUnit="Hours"),
         "ConsumedQuantity", "is set on a row that consumes nothing"),
        (lambda rows: _first(rows, ChargeCategory="Usage").update(ChargePeriodStart="2024-04-30T00:00:00Z",
                                                                   ChargePeriodEnd="2024-05-01T00:00:00Z"),
         "ChargeClass", "is not Correction on a charge for a period before its billing period"),
    ],
)  # fmt: skip
def test_rows_that_break_focus_rules_between_quantities_units_and_class_are_refused(tmp_path, edit, column, detail):
    result = _commitment_ledger(tmp_path, edit)
    assert not result.passed
    (finding,) = [f for f in result.findings if f.expectation == "focus_quantity_and_class_rules"]
    assert finding.column == column and detail in finding.detail and " row " in finding.detail


def test_a_correction_of_an_earlier_period_is_accepted_as_such(tmp_path):
    def corrected(rows):
        _first(rows, ChargeCategory="Usage").update(
            ChargePeriodStart="2024-04-30T00:00:00Z", ChargePeriodEnd="2024-05-01T00:00:00Z", ChargeClass="Correction"
        )

    assert _commitment_ledger(tmp_path, corrected).passed
