"""FOCUS 1.3 in the ledger: ServiceProviderName and HostProviderName on every row of every source,
ContractApplied and the allocation columns kept from a 1.3 producer, and the 1.2 columns 1.3
deprecates (ProviderName, PublisherName) still filled for 1.2 readers."""

from __future__ import annotations

import json
from datetime import date

import pyarrow as pa
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs import ledger
from rai_pipelines.costs.conformance import validate_ledger
from rai_pipelines.costs.ledger_schema import LEDGER_SCHEMA, SourceFile
from rai_pipelines.costs.sources.aws_cur import cur_to_focus
from rai_pipelines.costs.sources.focus_files import FocusFilesReader
from tests.costs.focus_export_data import AZURE_ACCOUNT, AZURE_COLUMNS, DAYS, azure_csv, azure_rows
from tests.costs.test_aws_cur import _cur2_row, _table

FOCUS_1_3_ONLY = [
    "ServiceProviderName", "HostProviderName", "ContractApplied", "AllocatedMethodId", "AllocatedMethodDetails",
    "AllocatedResourceId", "AllocatedResourceName", "AllocatedTags",
]  # fmt: skip
CONTRACT = {
    "Elements": [
        {"ContractID": "C-2024-7", "ContractCommitmentID": "C-2024-7-spend", "ContractCommitmentAppliedCost": 1.5}
    ]
}


def test_the_ledger_schema_is_focus_1_3_with_the_columns_1_2_readers_need():
    names = LEDGER_SCHEMA.names
    assert set(FOCUS_1_3_ONLY) <= set(names)
    assert {"ProviderName", "PublisherName"} <= set(names)  # deprecated by 1.3, read by 1.2 tools


def test_an_aws_charge_is_aws_on_aws_and_a_marketplace_charge_its_sellers():
    rows = [
        _cur2_row("Usage", 1.0, bill_billing_entity="AWS"),
        _cur2_row("Usage", 9.0, bill_billing_entity="AWS Marketplace", line_item_legal_entity="Acme Vector DB, Inc."),
        _cur2_row("Tax", 0.8, bill_billing_entity="AWS"),
    ]
    out = cur_to_focus(SourceFile("x.parquet", _table(rows), 1), date(2023, 11, 2)).to_pylist()
    providers = [(r["ServiceProviderName"], r["HostProviderName"], r["ProviderName"], r["PublisherName"]) for r in out]
    assert providers == [
        ("AWS", "AWS", "AWS", "AWS"),
        ("Acme Vector DB, Inc.", "Acme Vector DB, Inc.", "AWS", "AWS Marketplace"),
        ("AWS", "AWS", "AWS", "AWS"),
    ]
    assert {r["ContractApplied"] for r in out} == {None}


def _focus_1_3_rows(day: date) -> list[dict]:
    """A FOCUS 1.3 producer's day: ServiceProviderName and HostProviderName, no ProviderName."""
    rows = [r for r in azure_rows() if r["ChargePeriodStart"].startswith(day.isoformat())]
    for i, row in enumerate(rows):
        row.update(ServiceProviderName="Oracle", HostProviderName="Oracle", InvoiceIssuerName="Oracle")
        row["ContractApplied"] = json.dumps(CONTRACT) if i % 2 == 0 else ""
        row["AllocatedMethodId"] = "even-split" if i == 0 else ""
        row["AllocatedTags"] = json.dumps({"team": "risk"}) if i == 0 else ""
    return rows


FOCUS_1_3_COLUMNS = [c for c in AZURE_COLUMNS if c not in ("ProviderName", "PublisherName")] + [
    "ServiceProviderName", "HostProviderName", "ContractApplied", "AllocatedMethodId", "AllocatedTags",
]  # fmt: skip


def _reader(tmp_path, rows) -> tuple[FocusFilesReader, date]:
    day = DAYS[1]
    folder = tmp_path / "focus" / f"{day:%Y-%m-%d}"
    folder.mkdir(parents=True)
    (folder / "part-0.csv").write_bytes(azure_csv(rows, columns=FOCUS_1_3_COLUMNS))
    return FocusFilesReader(str(tmp_path / "focus"), AZURE_ACCOUNT), day


def test_a_focus_1_3_file_without_provider_name_loads_keeping_its_1_3_columns(tmp_path):
    reader, day = _reader(tmp_path, _focus_1_3_rows(DAYS[1]))
    (source,) = reader.read(day)
    table = pa.Table.from_batches([b for _, b in ledger.to_focus_days(source, [day])], LEDGER_SCHEMA)
    rows = table.to_pylist()
    assert rows and {(r["ServiceProviderName"], r["HostProviderName"]) for r in rows} == {("Oracle", "Oracle")}
    assert {r["ProviderName"] for r in rows} == {"Oracle"}  # for 1.2 readers, from ServiceProviderName
    assert json.loads(rows[0]["ContractApplied"]) == CONTRACT and rows[1]["ContractApplied"] is None
    assert (rows[0]["AllocatedMethodId"], json.loads(rows[0]["AllocatedTags"])) == ("even-split", {"team": "risk"})
    assert validate_ledger(table).passed


def test_contract_applied_that_is_not_json_is_refused_naming_the_line(tmp_path):
    rows = _focus_1_3_rows(DAYS[1])
    rows[2]["ContractApplied"] = "{Elements: [oops"
    reader, day = _reader(tmp_path, rows)
    (source,) = reader.read(day)
    with pytest.raises(BadInputError, match=r"part-0\.csv line 4: field ContractApplied = .* is not JSON"):
        list(ledger.to_focus_days(source, [day]))


def test_a_focus_1_2_export_gets_its_service_provider_from_the_publisher_and_host_from_the_provider(tmp_path):
    rows = [r for r in azure_rows() if r["ChargePeriodStart"].startswith(DAYS[1].isoformat())]
    rows[0].update(ProviderName="Microsoft", PublisherName="Databricks")  # a marketplace charge
    day = DAYS[1]
    folder = tmp_path / "focus" / f"{day:%Y-%m-%d}"
    folder.mkdir(parents=True)
    (folder / "part-0.csv").write_bytes(azure_csv(rows))
    (source,) = FocusFilesReader(str(tmp_path / "focus"), AZURE_ACCOUNT).read(day)
    out = [r for _, b in ledger.to_focus_days(source, [day]) for r in b.to_pylist()]
    assert (out[0]["ServiceProviderName"], out[0]["HostProviderName"]) == ("Databricks", "Microsoft")
    assert {(r["ServiceProviderName"], r["HostProviderName"]) for r in out[1:]} == {("Microsoft", "Microsoft")}


def test_a_ledger_without_a_service_provider_does_not_conform():
    rows = [_cur2_row("Usage", 1.0, line_item_usage_amount="1", pricing_unit="Hrs")]
    table = cur_to_focus(SourceFile("x.parquet", _table(rows), 1), date(2023, 11, 2))
    broken = table.set_column(
        table.schema.get_field_index("ServiceProviderName"), "ServiceProviderName", pa.nulls(1, pa.string())
    )
    result = validate_ledger(broken)
    assert validate_ledger(table).passed and not result.passed
    assert any("ServiceProviderName" in str(f) for f in result.findings)
