"""FOCUS-native billing exports (Azure Cost Management's FocusCost, AWS Data Exports' FOCUS 1.2 with AWS
columns) land in the cost ledger: typed, attributed from tags, reconciled to the cent with an
independent witness, refused row by row when bad, read from the current export run only, and
accepted by the FinOps Foundation's FOCUS validator. Azure runs against Azurite and AWS against moto's
S3 server, both real servers on loopback."""

from __future__ import annotations

import json
from decimal import Decimal

import pyarrow as pa
import pytest

from rai_pipelines.costs.ledger_schema import SourceFile
from rai_pipelines.costs.sources.aws_focus import AwsFocusExportReader
from rai_pipelines.costs.sources.azure_focus import AzureFocusExportReader
from rai_pipelines.costs.sources.focus_export import (
    aws_focus_to_focus,
)
from tests.costs.focus_export_data import (
    AWS_ACCOUNT,
    AWS_SCHEMA,
    AZURE_ACCOUNT,
    CENT,
    DAYS,
    MAY,
    LocalContainer,
    aws_day,
    aws_parquet,
    aws_rows,
    azure_day,
    azure_rows,
    billed_by_day,
    ledger_of,
    write_azure_run,
)

# --- both ---------------------------------------------------------------------------------------------


def test_the_finops_foundations_validator_passes_on_ledgers_from_both_sources(tmp_path):
    from tests.focus_validator import PROVIDER_VALUES, VALIDATOR_DEFECTS, focus_validator_failures

    azure = LocalContainer(tmp_path / "azure")
    write_azure_run(azure, azure_rows(), "run-1", "2024-05-03T06:12:44Z", fmt="csv.gz")
    aws_root = tmp_path / "aws"
    data = aws_root / "focus/rai-focus/data/BILLING_PERIOD=2024-05/rai-focus-00001.snappy.parquet"
    data.parent.mkdir(parents=True)
    data.write_bytes(aws_parquet(aws_rows()))
    manifest = aws_root / "focus/rai-focus/metadata/BILLING_PERIOD=2024-05/rai-focus-Manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"dataFiles": [f"s3://bucket/{data.relative_to(aws_root).as_posix()}"]}))
    sources = azure.reader().read(MAY) + AwsFocusExportReader(str(aws_root), AWS_ACCOUNT, "focus", "rai-focus").read(
        MAY
    )
    ledger = pa.concat_tables([ledger_of(sources, day) for day in DAYS])
    assert set(ledger.column("x_SourceProvider").to_pylist()) == {"azure", "aws"}
    from rai_pipelines.costs.conformance import validate_ledger

    conformance = validate_ledger(ledger)  # the cost_ledger asset's own blocking FOCUS 1.2 check
    assert conformance.passed, conformance.findings
    result, failed = focus_validator_failures(ledger, tmp_path)
    # Azure's rows carry invoice ids, AWS's of the open month none; AWS's FOCUS and Azure's units (PROVIDER_VALUES)
    expected = {"InvoiceId-C-004-C", "InvoiceId-C-005-C", "BilledCost-C-005-C"}
    assert failed == expected | {"EffectiveCost-C-005-C", "PricingUnit-C-003-O"}, result["failures"]
    assert expected <= set(VALIDATOR_DEFECTS) and failed - expected <= set(PROVIDER_VALUES)


def test_a_reader_needs_one_storage_and_the_expected_account(tmp_path):
    with pytest.raises(ValueError, match="either root"):
        AzureFocusExportReader(AZURE_ACCOUNT, "focus-cost", root=str(tmp_path), container="billing")
    with pytest.raises(ValueError, match="billing account id"):
        AzureFocusExportReader("", "focus-cost", root=str(tmp_path))
    with pytest.raises(ValueError, match="billing account id"):
        AwsFocusExportReader(str(tmp_path), "")
    source = SourceFile("x.parquet", pa.Table.from_pylist(aws_rows(), schema=AWS_SCHEMA), 1, "aws_focus", None)
    with pytest.raises(ValueError, match="no expected billing account"):
        aws_focus_to_focus(source, MAY)


def test_the_cost_ledger_asset_takes_both_focus_exports_together(tmp_path, blob_container, s3_export):
    import dagster as dg

    from rai_pipelines.core.lake import Lake
    from rai_pipelines.costs.sources.aws_focus import AwsFocusExport
    from rai_pipelines.costs.sources.azure_focus import AzureFocusExport
    from rai_pipelines.defs.costs.assets import build_cost_ledger
    from rai_pipelines.defs.costs.resources import BillingExportsResource
    from rai_pipelines.defs.partitions import daily_partitions
    from rai_pipelines.defs.resources import LakeResource

    cost_ledger = build_cost_ledger(daily_partitions("2023-01-01"))

    azure, aws = azure_rows(), aws_rows()
    write_azure_run(blob_container, azure, "run-1", "2024-05-03T06:12:44.1234567Z")
    s3_export.write({"part-0.parquet": aws_parquet(aws)})
    billing = BillingExportsResource.of(
        [
            AwsFocusExport(root=s3_export.root, billing_account_id=AWS_ACCOUNT, prefix="focus", name="rai-focus"),
            AzureFocusExport(
                billing_account_id=AZURE_ACCOUNT,
                export_name="focus-cost",
                directory="exports",
                container=blob_container.name,
                connection_string=blob_container.azurite.connection_string,
            ),
        ]
    )

    lake = LakeResource(
        root=str(tmp_path / "lake"),
        decision_log_dir=str(tmp_path / "log"),
        pseudonymisation_key_file=str(tmp_path / "key"),
    )
    day = DAYS[1]
    result = dg.materialize([cost_ledger], partition_key=day.isoformat(), resources={"lake": lake, "billing": billing})
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"reconciles_with_export": True, "focus_conformance": True}
    ledger = Lake(str(tmp_path / "lake")).read_table("cost_ledger", {"date": day.isoformat()})
    assert set(ledger.column("x_SourceProvider").to_pylist()) == {"azure", "aws"}
    expected = billed_by_day(azure, azure_day)[day.isoformat()] + billed_by_day(aws, aws_day)[day.isoformat()]
    assert sum(ledger.column("BilledCost").to_pylist(), Decimal(0)).quantize(CENT) == expected.quantize(CENT)
