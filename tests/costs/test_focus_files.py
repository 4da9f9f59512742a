"""Any FOCUS producer (Oracle's FOCUS reports, GCP's FOCUS export copied to storage, ...): FOCUS files
under a folder with no manifest, dated by their paths, with namespaced tags mapped to attribution."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pyarrow as pa
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs import ledger
from rai_pipelines.costs.conformance import validate_ledger
from rai_pipelines.costs.ledger_schema import LEDGER_SCHEMA
from rai_pipelines.costs.reconciliation import reconcile_all
from rai_pipelines.costs.sources import source_config
from rai_pipelines.costs.sources.focus_files import FocusFilesReader, days_named
from tests.costs.focus_export_data import AZURE_ACCOUNT, DAYS, azure_csv, azure_rows

TENANCY = AZURE_ACCOUNT  # the rows' BillingAccountId: an OCI tenancy in a real report


def _oracle_rows(day) -> list[dict]:
    """A day of FOCUS rows as a producer with namespaced tags writes them."""
    rows = [r for r in azure_rows() if r["ChargePeriodStart"].startswith(day.isoformat())]
    for row in rows:
        row.update(ProviderName="Oracle", PublisherName="Oracle", InvoiceIssuerName="Oracle")
        row["Tags"] = json.dumps({"ml.model_name": "credit-scoring", "Oracle-Tags.CreatedBy": "ci@example.com"})
    return rows


@pytest.fixture
def reports(tmp_path):
    """OCI's layout: FOCUS Reports/YYYY/MM/DD/<file>.csv.gz, one folder a day."""
    root = tmp_path / "oci"
    for day in DAYS:
        folder = root / "FOCUS Reports" / f"{day:%Y/%m/%d}"
        folder.mkdir(parents=True)
        (folder / "0001.csv.gz").write_bytes(gzip.compress(azure_csv(_oracle_rows(day))))
    return root


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("FOCUS Reports/2024/05/02/0001.csv.gz", ("day", "2024-05-02")),
        ("gcp-focus/date=2024-05-02/part-1.parquet", ("day", "2024-05-02")),
        ("exports/20240502-focus.csv", ("day", "2024-05-02")),
        ("exports/BILLING_PERIOD=2024-05/part-1.parquet", ("month", "2024-05")),
        ("exports/2024-05/focus.csv", ("month", "2024-05")),
        ("exports/focus.csv", ("", "")),
    ],
)
def test_a_files_date_is_read_from_its_path(path, named):
    assert days_named(path) == named


def test_a_producers_daily_files_become_a_reconciled_attributed_ledger(reports):
    reader = FocusFilesReader(str(reports), TENANCY, {"ml.model_name": "model_name"})
    day = DAYS[1]
    sources = reader.read(day)
    assert [s.uri.rsplit("FOCUS Reports/", 1)[1] for s in sources] == [f"{day:%Y/%m/%d}/0001.csv.gz"]
    table = pa.Table.from_batches([b for s in sources for _, b in ledger.to_focus_days(s, [day])], LEDGER_SCHEMA)
    rows = table.to_pylist()
    assert (
        rows and {r["ProviderName"] for r in rows} == {"Oracle"} and {r["x_SourceProvider"] for r in rows} == {"focus"}
    )
    assert {r["x_ModelName"] for r in rows} == {"credit-scoring"}  # through the declared tag key
    assert "ml.model_name" in json.loads(rows[0]["Tags"])  # the producer's own keys are kept as they are
    assert validate_ledger(table).passed
    summary = ledger.LedgerSummary()
    summary.add(table)
    result = reconcile_all(day, summary.costs(), sources, {})
    assert result.passed and len(result.cost_rows) == 3
    expected = sum(Decimal(r["BilledCost"]) for r in _oracle_rows(day))
    assert sum(r["BilledCost"] for r in rows) == expected


def test_without_the_tag_mapping_namespaced_tags_attribute_nothing(reports):
    day = DAYS[0]
    (source,) = FocusFilesReader(str(reports), TENANCY).read(day)
    rows = [r for _, b in ledger.to_focus_days(source, [day]) for r in b.to_pylist()]
    assert rows and {r["x_ModelName"] for r in rows} == {None}


def test_a_month_file_serves_every_day_and_a_file_of_another_day_none(tmp_path):
    root = tmp_path / "gcs"
    (root / "2024-05").mkdir(parents=True)
    (root / "2024-05" / "focus.csv").write_bytes(azure_csv(_oracle_rows(DAYS[0]) + _oracle_rows(DAYS[2])))
    (root / "2024-06-01").mkdir()
    (root / "2024-06-01" / "focus.csv").write_bytes(azure_csv(_oracle_rows(DAYS[0])))
    reader = FocusFilesReader(str(root), TENANCY)
    assert [s.uri.rsplit("/", 2)[1] for s in reader.read(DAYS[1])] == ["2024-05"]
    assert reader.fingerprint(DAYS[2])[0][0].endswith("2024-05/focus.csv")


@pytest.mark.parametrize(
    ("header", "looks_like"),
    [
        ("identity/LineItemId,lineItem/UnblendedCost,lineItem/UsageStartDate", "an AWS Cost and Usage Report"),
        ("BillingAccountId,Date,MeterCategory,CostInBillingCurrency", "an Azure cost details (EA or MCA"),
        ("lineItem/referenceNo,lineItem/tenantId,cost/myCost", "an OCI cost report"),
    ],
)
def test_a_file_in_another_billing_format_is_named_as_such(tmp_path, header, looks_like):
    folder = tmp_path / "x" / "2024-05-02"
    folder.mkdir(parents=True)
    (folder / "export.csv").write_text(header + "\n" + ",".join("1" for _ in header.split(",")) + "\n")
    (source,) = FocusFilesReader(str(tmp_path / "x"), TENANCY).read(DAYS[1])
    with pytest.raises(BadInputError, match="missing mandatory FOCUS column") as refused:
        list(ledger.to_focus_days(source, [DAYS[1]]))
    assert f"it looks like {looks_like}" in str(refused.value) and "export.csv" in str(refused.value)


def test_the_declaration_names_only_attribution_keys():
    config = source_config("focus_files", {"root": "/x", "billing_account_id": "t", "tag_keys": {"a.b": "team"}}, "f")
    assert config.tag_keys == {"a.b": "team"}
    with pytest.raises(BadInputError, match=r"tag_keys: .*colour is not an attribution key"):
        source_config("focus_files", {"root": "/x", "billing_account_id": "t", "tag_keys": {"a.b": "colour"}}, "f")


def test_the_finops_foundations_validator_passes_on_a_plain_focus_ledger(reports, tmp_path):
    from tests.focus_validator import PROVIDER_VALUES, VALIDATOR_DEFECTS, focus_validator_failures

    reader = FocusFilesReader(str(reports), TENANCY, {"ml.model_name": "model_name"})
    batches = [b for day in DAYS for s in reader.read(day) for _, b in ledger.to_focus_days(s, [day])]
    result, failed = focus_validator_failures(pa.Table.from_batches(batches, LEDGER_SCHEMA), tmp_path)
    # these files carry no invoice id; their units are the producer's (PROVIDER_VALUES)
    assert failed == {"InvoiceId-C-005-C", "PricingUnit-C-003-O"}, result["failures"]
    assert "InvoiceId-C-005-C" in VALIDATOR_DEFECTS and "PricingUnit-C-003-O" in PROVIDER_VALUES
