"""FOCUS-native billing exports (Azure Cost Management's FocusCost, AWS Data Exports' FOCUS 1.2 with AWS
columns) land in the cost ledger: typed, attributed from tags, reconciled to the cent with an
independent witness, refused row by row when bad, read from the current export run only, and
accepted by the FinOps Foundation's FOCUS validator. Azure runs against Azurite and AWS against moto's
S3 server, both real servers on loopback."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.ledger_schema import LEDGER_SCHEMA, SourceFile
from rai_pipelines.costs.sources.aws_focus import AwsFocusExportReader
from rai_pipelines.costs.sources.azure_focus import AzureFocusExportReader
from rai_pipelines.costs.sources.focus_export import (
    aws_focus_daily_totals,
    aws_focus_to_focus,
    azure_focus_daily_totals,
    azure_focus_to_focus,
)
from tests.azurite import Azurite

MAY = date(2024, 5, 1)
DAYS = [MAY, date(2024, 5, 2), date(2024, 5, 3)]
AZURE_ACCOUNT = "/providers/Microsoft.Billing/billingAccounts/8a1f2c3d-0000-4b5c-9d8e-7f6a5b4c3d2e:a1b2c3d4_2019-05-31"
AWS_ACCOUNT = "123456789012"
SUBSCRIPTION = "/subscriptions/5f1c0a4e-2b7d-4c19-9e3a-8d6b2f0c7e11"
CENT = Decimal("0.01")


# --- Azure FocusCost 1.0r2 test data -------------------------------------------------------------------

# The columns of Cost Management's FocusCost 1.0r2 export, in its order (FOCUS 1.0 + x_ Azure columns).
AZURE_COLUMNS = [
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingAccountType",
    "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory", "ChargeClass",
    "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart", "CommitmentDiscountCategory",
    "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountStatus", "CommitmentDiscountType",
    "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice", "EffectiveCost",
    "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory", "PricingQuantity", "PricingUnit",
    "ProviderName", "PublisherName", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType",
    "ServiceCategory", "ServiceName", "SkuId", "SkuPriceId", "SubAccountId", "SubAccountName", "SubAccountType",
    "Tags", "x_AccountId", "x_AccountName", "x_AccountOwnerId", "x_BilledCostInUsd", "x_BilledUnitPrice",
    "x_BillingAccountId", "x_BillingAccountName", "x_BillingExchangeRate", "x_BillingExchangeRateDate",
    "x_BillingProfileId", "x_BillingProfileName", "x_ContractedCostInUsd", "x_CostAllocationRuleName",
    "x_CostCenter", "x_CustomerId", "x_CustomerName", "x_EffectiveCostInUsd", "x_EffectiveUnitPrice", "x_InvoiceId",
    "x_InvoiceIssuerId", "x_InvoiceSectionId", "x_InvoiceSectionName", "x_ListCostInUsd", "x_PartnerCreditApplied",
    "x_PartnerCreditRate", "x_PricingBlockSize", "x_PricingCurrency", "x_PricingSubcategory",
    "x_PricingUnitDescription", "x_PublisherCategory", "x_PublisherId", "x_ResellerId", "x_ResellerName",
    "x_ResourceGroupName", "x_ResourceType", "x_ServicePeriodEnd", "x_ServicePeriodStart", "x_SkuDescription",
    "x_SkuDetails", "x_SkuIsCreditEligible", "x_SkuMeterCategory", "x_SkuMeterId", "x_SkuMeterName",
    "x_SkuMeterSubcategory", "x_SkuOfferId", "x_SkuOrderId", "x_SkuOrderName", "x_SkuPartNumber", "x_SkuRegion",
    "x_SkuServiceFamily", "x_SkuTerm", "x_SkuTier",
    "x_SomeColumnAzureAddsNextYear",  # an unknown new column: ignored, never an error
]  # fmt: skip
AZURE_MONEY = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice", "ContractedUnitPrice")
AZURE_QUANTITIES = ("PricingQuantity", "ConsumedQuantity")
SAVINGS_PLAN = "/providers/Microsoft.BillingBenefits/savingsPlanOrders/3c5e/savingsPlans/9d2b"
CREDIT_SCORING_TAGS = {"Model-Name": "credit-scoring", "model_version": "v2", "Team": "risk-ml", "Environment": "prod"}
EMBEDDER_TAGS = {"MODEL_NAME": "llm-embedder", "workload": "search", "env": "prod", "cost-center": "4711"}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _azure_row(day: date, **values) -> dict[str, str]:
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    row = dict.fromkeys(AZURE_COLUMNS, "")
    row.update(
        BillingAccountId=AZURE_ACCOUNT,
        BillingAccountName="Contoso Ltd",
        BillingAccountType="Billing Profile",
        BillingCurrency="EUR",
        BillingPeriodStart="2024-05-01",  # Azure writes both date-only and full ISO 8601 forms
        BillingPeriodEnd="2024-06-01",
        ChargePeriodStart=_iso(start),
        ChargePeriodEnd=_iso(start + timedelta(days=1)),
        ChargeCategory="Usage",
        ChargeFrequency="Usage-Based",
        PricingCategory="Standard",
        ProviderName="Microsoft",
        PublisherName="Microsoft",
        InvoiceIssuerName="Microsoft",
        RegionId="westeurope",
        RegionName="West Europe",
        SubAccountId=SUBSCRIPTION,
        SubAccountName="ml-prod",
        SubAccountType="Subscription",
        x_BillingExchangeRate="1.0852",
        x_PricingCurrency="EUR",
        x_SomeColumnAzureAddsNextYear="whatever",
    )
    row.update(values)
    return row


def _usage(day, rng, service, category, meter, resource, tags=None, unit="1 Hour", **extra) -> dict[str, str]:
    quantity = Decimal(rng.randint(1, 24))
    price = Decimal(str(round(rng.uniform(0.01, 3.5), 6)))
    cost = quantity * price
    return _azure_row(
        day,
        ServiceName=service,
        ServiceCategory=category,
        ChargeDescription=f"{meter} - {service}",
        ResourceId=f"{SUBSCRIPTION}/resourceGroups/ml-prod/providers/{resource}",
        ResourceName=resource.rsplit("/", 1)[-1],
        ResourceType=resource.split("/")[1],
        SkuId=f"DZH318Z0{rng.randint(100, 999)}",
        SkuPriceId=f"DZH318Z0BQ4L/{rng.randint(1, 9):03d}",
        PricingQuantity=str(quantity),
        PricingUnit=unit,
        ConsumedQuantity=str(quantity),
        ConsumedUnit=unit,
        ListUnitPrice=str(price * Decimal("1.1")),
        ContractedUnitPrice=str(price),
        ListCost=str(cost * Decimal("1.1")),
        ContractedCost=str(cost),
        BilledCost=str(cost),
        EffectiveCost=str(cost),
        Tags=tags if isinstance(tags, str) else json.dumps(tags) if tags else "",
        x_ResourceGroupName="ml-prod",
        x_SkuMeterName=meter,
        x_BilledCostInUsd=str(cost * Decimal("1.0852")),
        **extra,
    )


def azure_rows(days=DAYS, seed: int = 7) -> list[dict[str, str]]:
    """A realistic month-to-date FocusCost export: VMs, storage, Azure OpenAI, Machine Learning, usage
    covered by a savings plan, the savings plan's purchase, a credit, tax and a correction of April."""
    rng = random.Random(seed)
    rows = []
    for day in days:
        rows += [
            _usage(
                day,
                rng,
                "Virtual Machines",
                "Compute",
                "D8s v5",
                "Microsoft.Compute/virtualMachines/scorer-1",
                CREDIT_SCORING_TAGS,
            ),
            _usage(day, rng, "Virtual Machines", "Compute", "D4s v5", "Microsoft.Compute/virtualMachines/jumpbox"),
            _usage(
                day,
                rng,
                "Storage Accounts",
                "Storage",
                "LRS Data Stored",
                "Microsoft.Storage/storageAccounts/mllake",
                unit="1 GB/Month",
            ),
            _usage(
                day,
                rng,
                "Azure OpenAI Service",
                "AI and Machine Learning",
                "gpt-4o-mini Input Tokens",
                "Microsoft.CognitiveServices/accounts/embedder",
                EMBEDDER_TAGS,
                unit="1K",
            ),
            _usage(
                day,
                rng,
                "Azure Machine Learning",
                "AI and Machine Learning",
                "NC6s v3",
                "Microsoft.MachineLearningServices/workspaces/train",
                '"model": "credit-scoring","Team": "risk-ml"',  # the brace-less form of older Azure exports
            ),
        ]
        covered = _usage(
            day,
            rng,
            "Virtual Machines",
            "Compute",
            "E4s v5",
            "Microsoft.Compute/virtualMachines/batch-2",
            CREDIT_SCORING_TAGS,
        )
        covered.update(
            BilledCost="0",
            EffectiveCost="1.2345678901",
            PricingCategory="Committed",
            CommitmentDiscountCategory="Spend",
            CommitmentDiscountId=SAVINGS_PLAN,
            CommitmentDiscountName="ml-compute-sp",
            CommitmentDiscountStatus="Used",
            CommitmentDiscountType="Savings Plan",
        )
        rows.append(covered)
    first = datetime(2024, 5, 1, tzinfo=timezone.utc)
    rows += [
        _azure_row(
            MAY,
            ChargeCategory="Purchase",
            ChargeFrequency="Recurring",
            ChargeDescription="Savings plan for compute, monthly payment",
            ServiceName="Azure Savings Plan for Compute",
            ServiceCategory="Compute",
            PricingCategory="Committed",
            CommitmentDiscountCategory="Spend",
            CommitmentDiscountId=SAVINGS_PLAN,
            CommitmentDiscountName="ml-compute-sp",
            CommitmentDiscountType="Savings Plan",
            PricingQuantity="1",
            PricingUnit="1 Hour",
            ListUnitPrice="730",
            ContractedUnitPrice="730",
            BilledCost="730",
            EffectiveCost="0",
            ListCost="730",
            ContractedCost="730",
            SkuId="SP-COMPUTE",
            SkuPriceId="SP-COMPUTE/1Y",
        ),
        _azure_row(
            MAY,
            ChargeCategory="Credit",
            ChargeFrequency="One-Time",
            ChargeDescription="Azure credit offer",
            ServiceName="Azure Credits",
            ServiceCategory="Other",
            PricingCategory="",
            BilledCost="-50.00",
            EffectiveCost="-50.00",
            ListCost="0",
            ContractedCost="0",
        ),
        _azure_row(
            MAY,
            ChargeCategory="Tax",
            ChargeFrequency="Recurring",
            ChargeDescription="VAT",
            ServiceName="Tax",
            ServiceCategory="Other",
            PricingCategory="",
            ChargePeriodStart=_iso(first),
            ChargePeriodEnd=_iso(datetime(2024, 6, 1, tzinfo=timezone.utc)),
            BilledCost="41.87",
            EffectiveCost="41.87",
            ListCost="41.87",
            ContractedCost="41.87",
        ),
        _azure_row(  # a correction of April: its charge period is outside May, so it lands on May 1st
            date(2024, 4, 20),
            ChargeClass="Correction",
            ChargeDescription="Rounding adjustment for April",
            ServiceName="Virtual Machines",
            ServiceCategory="Compute",
            PricingCategory="",
            BilledCost="-3.25",
            EffectiveCost="-3.25",
            ListCost="-3.25",
            ContractedCost="-3.25",
        ),
        _azure_row(  # scientific notation, as Azure writes some tiny amounts
            date(2024, 5, 2),
            ServiceName="Bandwidth",
            ServiceCategory="Networking",
            ChargeDescription="Inter-region egress",
            PricingQuantity="0.0001",
            PricingUnit="1 GB",
            ConsumedQuantity="0.0001",
            ConsumedUnit="1 GB",
            ListUnitPrice="0.02",
            ContractedUnitPrice="0.02",
            BilledCost="2E-06",
            EffectiveCost="2E-06",
            ListCost="2E-06",
            ContractedCost="2E-06",
        ),
    ]
    return rows


def azure_csv(rows: list[dict[str, str]], columns=AZURE_COLUMNS, bom: bool = False) -> bytes:
    out = io.StringIO()
    if bom:
        out.write("\ufeff")
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def azure_parquet(rows: list[dict[str, str]]) -> bytes:
    """The same rows as Azure's Parquet export types them: numbers as doubles, periods as timestamps."""
    columns = {}
    for name in AZURE_COLUMNS:
        values = [r[name] or None for r in rows]
        if name in AZURE_MONEY + AZURE_QUANTITIES:
            columns[name] = pa.array([float(v) if v else None for v in values], pa.float64())
        elif name in ("ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd"):
            stamps = [datetime.fromisoformat(v.replace("Z", "+00:00")) if v else None for v in values]
            columns[name] = pa.array(
                [s.replace(tzinfo=timezone.utc) if s else None for s in stamps], pa.timestamp("ms", "UTC")
            )
        else:
            columns[name] = pa.array(values, pa.string())
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer, compression="snappy")
    return buffer.getvalue()


class LocalContainer:
    """A local folder laid out like the container."""

    def __init__(self, root: Path):
        self.root = root

    def put(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def delete(self, name: str) -> None:
        (self.root / name).unlink()

    def reader(self, account: str = AZURE_ACCOUNT, **kwargs) -> AzureFocusExportReader:
        return AzureFocusExportReader(account, "focus-cost", directory="exports", root=str(self.root), **kwargs)


class BlobContainer:
    """A container in Azurite."""

    def __init__(self, azurite: Azurite, name: str):
        self.azurite, self.name = azurite, name
        self.client = azurite.container(name)

    def put(self, name: str, data: bytes) -> None:
        self.client.upload_blob(name, data, overwrite=True)

    def delete(self, name: str) -> None:
        self.client.delete_blob(name)

    def reader(self, account: str = AZURE_ACCOUNT, **kwargs) -> AzureFocusExportReader:
        return AzureFocusExportReader(
            account,
            "focus-cost",
            directory="exports",
            container=self.name,
            connection_string=self.azurite.connection_string,
            **kwargs,
        )


def write_azure_run(
    sink,
    rows,
    run_id: str,
    submitted: str,
    fmt: str = "csv.gz",
    parts: int = 1,
    period: str = "20240501-20240531",
    export_type: str = "FocusCost",
    row_counts: list[int] | None = None,
) -> list[str]:
    """One export run as Cost Management writes it: the partitions, then the manifest."""
    folder = f"exports/focus-cost/{period}/{run_id}"
    names, blobs = [], []
    chunk = -(-len(rows) // parts)
    for i in range(parts):
        part = rows[i * chunk : (i + 1) * chunk]
        name = f"{folder}/part_0_{i + 1:04d}.{'snappy.parquet' if fmt == 'parquet' else fmt}"
        data = {"csv": azure_csv, "csv.gz": lambda r: gzip.compress(azure_csv(r, bom=True)), "parquet": azure_parquet}[
            fmt
        ](part)
        sink.put(name, data)
        names.append(name)
        count = row_counts[i] if row_counts else len(part)
        blobs.append({"blobName": name, "byteCount": len(data), "dataRowCount": count})
    manifest = {
        "manifestVersion": "2024-04-01",
        "byteCount": sum(b["byteCount"] for b in blobs),
        "blobCount": len(blobs),
        "dataRowCount": sum(b["dataRowCount"] for b in blobs),
        "exportConfig": {
            "exportName": "focus-cost",
            "resourceId": f"{AZURE_ACCOUNT}/providers/Microsoft.CostManagement/exports/focus-cost",
            "dataVersion": "1.0r2",
            "apiVersion": "2023-07-01-preview",
            "type": export_type,
            "timeFrame": "MonthToDate",
            "granularity": "Daily",
        },
        "deliveryConfig": {
            "partitionData": True,
            "dataOverwriteBehavior": "CreateNewReport",
            "fileFormat": "Parquet" if fmt == "parquet" else "Csv",
            "compressionMode": {"csv.gz": "Gzip", "parquet": "Snappy"}.get(fmt, "None"),
            "containerUri": f"{SUBSCRIPTION}/resourceGroups/finops/providers/Microsoft.Storage/storageAccounts/finops",
            "rootFolderPath": "exports",
        },
        "runInfo": {
            "executionType": "Scheduled",
            "submittedTime": submitted,
            "runId": run_id,
            "startDate": "2024-05-01T00:00:00",
            "endDate": "2024-05-03T00:00:00",
        },
        "blobs": blobs,
    }
    sink.put(f"{folder}/manifest.json", json.dumps(manifest, indent=2).encode())
    return names


# --- AWS FOCUS 1.2 with AWS columns test data ----------------------------------------------------------

TAGS = pa.map_(pa.string(), pa.string())
AWS_SCHEMA = pa.schema(
    [
        ("AvailabilityZone", pa.string()), ("BilledCost", pa.float64()), ("BillingAccountId", pa.string()),
        ("BillingAccountName", pa.string()), ("BillingAccountType", pa.string()), ("BillingCurrency", pa.string()),
        ("BillingPeriodEnd", pa.timestamp("ms", "UTC")), ("BillingPeriodStart", pa.timestamp("ms", "UTC")),
        ("CapacityReservationId", pa.string()), ("CapacityReservationStatus", pa.string()),
        ("ChargeCategory", pa.string()), ("ChargeClass", pa.string()), ("ChargeDescription", pa.string()),
        ("ChargeFrequency", pa.string()), ("ChargePeriodEnd", pa.timestamp("ms", "UTC")),
        ("ChargePeriodStart", pa.timestamp("ms", "UTC")), ("CommitmentDiscountCategory", pa.string()),
        ("CommitmentDiscountId", pa.string()), ("CommitmentDiscountName", pa.string()),
        ("CommitmentDiscountQuantity", pa.float64()), ("CommitmentDiscountStatus", pa.string()),
        ("CommitmentDiscountType", pa.string()), ("CommitmentDiscountUnit", pa.string()),
        ("ConsumedQuantity", pa.float64()), ("ConsumedUnit", pa.string()), ("ContractedCost", pa.float64()),
        ("ContractedUnitPrice", pa.float64()), ("EffectiveCost", pa.float64()), ("InvoiceId", pa.string()),
        ("InvoiceIssuerName", pa.string()), ("ListCost", pa.float64()), ("ListUnitPrice", pa.float64()),
        ("PricingCategory", pa.string()), ("PricingCurrency", pa.string()),
        ("PricingCurrencyContractedUnitPrice", pa.float64()), ("PricingCurrencyEffectiveCost", pa.float64()),
        ("PricingCurrencyListUnitPrice", pa.float64()), ("PricingQuantity", pa.float64()), ("PricingUnit", pa.string()),
        ("ProviderName", pa.string()), ("PublisherName", pa.string()), ("RegionId", pa.string()),
        ("RegionName", pa.string()), ("ResourceId", pa.string()), ("ResourceName", pa.string()),
        ("ResourceType", pa.string()), ("ServiceCategory", pa.string()), ("ServiceName", pa.string()),
        ("ServiceSubcategory", pa.string()), ("SkuId", pa.string()), ("SkuMeter", pa.string()),
        ("SkuPriceDetails", pa.string()), ("SkuPriceId", pa.string()), ("SubAccountId", pa.string()),
        ("SubAccountName", pa.string()), ("SubAccountType", pa.string()), ("Tags", TAGS),
        ("x_Discounts", pa.map_(pa.string(), pa.float64())), ("x_Operation", pa.string()),
        ("x_ServiceCode", pa.string()),
        ("x_ColumnAwsAddsLater", pa.string()),  # unknown: ignored
    ]
)  # fmt: skip
SAVINGS_PLAN_ARN = "arn:aws:savingsplans::123456789012:savingsplan/4f6e2a1b-9c3d-4e5f-8a7b-6c5d4e3f2a1b"


def _aws_row(day: date, **values) -> dict:
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    row = dict.fromkeys(AWS_SCHEMA.names)
    row.update(
        BillingAccountId=AWS_ACCOUNT,
        BillingAccountName="rai-payer",
        BillingAccountType="Billing Account",
        BillingCurrency="USD",
        BillingPeriodStart=datetime(2024, 5, 1, tzinfo=timezone.utc),
        BillingPeriodEnd=datetime(2024, 6, 1, tzinfo=timezone.utc),
        ChargePeriodStart=start,
        ChargePeriodEnd=start + timedelta(days=1),
        ChargeCategory="Usage",
        ChargeFrequency="Usage-Based",
        PricingCategory="Standard",
        ProviderName="AWS",
        PublisherName="Amazon Web Services, Inc.",
        InvoiceIssuerName="Amazon Web Services, Inc.",
        InvoiceId="EUINDE24-123456",
        RegionId="eu-central-1",
        RegionName="Europe (Frankfurt)",
        SubAccountId="210987654321",
        SubAccountName="ml-prod",
        SubAccountType="Account",
        Tags=[],
        x_ColumnAwsAddsLater="x",
    )
    row.update(values)
    return row


def _aws_usage(day, rng, code, name, category, resource, tags=(), unit="Hrs", **extra) -> dict:
    quantity = float(rng.randint(1, 24))
    price = round(rng.uniform(0.01, 4.0), 7)
    cost = quantity * price
    return _aws_row(
        day,
        ServiceName=name,
        ServiceCategory=category,
        ChargeDescription=f"{name} usage",
        ResourceId=resource,
        SkuId=f"{code}-SKU-{rng.randint(100, 999)}",
        SkuPriceId=f"{code}-PRICE-{rng.randint(100, 999)}",
        SkuMeter="BoxUsage",
        PricingQuantity=quantity,
        PricingUnit=unit,
        ConsumedQuantity=quantity,
        ConsumedUnit=unit,
        ListUnitPrice=price * 1.25,
        ContractedUnitPrice=price,
        ListCost=cost * 1.25,
        ContractedCost=cost,
        BilledCost=cost,
        EffectiveCost=cost,
        Tags=list(tags),
        x_ServiceCode=code,
        x_Operation="RunInstances",
        x_Discounts=[("bundled_discount", 0.0)],
        **extra,
    )


def aws_rows(days=DAYS, seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    sp = {
        "CommitmentDiscountCategory": "Spend",
        "CommitmentDiscountId": SAVINGS_PLAN_ARN,
        "CommitmentDiscountName": "ml-compute-sp",
        "CommitmentDiscountType": "Compute Savings Plans",
    }
    rows = []
    for day in days:
        rows += [
            _aws_usage(
                day,
                rng,
                "AmazonEC2",
                "Amazon Elastic Compute Cloud",
                "Compute",
                "arn:aws:ec2:eu-central-1:210987654321:instance/i-0abc",
                [
                    ("user:model-name", "credit-scoring"),
                    ("user:model-version", "v2"),
                    ("user:team", "risk-ml"),
                    ("aws:createdBy", "AssumedRole:ci"),
                ],
            ),
            _aws_usage(
                day,
                rng,
                "AmazonSageMaker",
                "Amazon SageMaker",
                "AI and Machine Learning",
                "arn:aws:sagemaker:eu-central-1:210987654321:endpoint/embedder",
                [("user:Model_Name", "llm-embedder"), ("user:Workload", "search"), ("user:env", "prod")],
            ),
            _aws_usage(
                day, rng, "AmazonS3", "Amazon Simple Storage Service", "Storage", "arn:aws:s3:::rai-lake", unit="GB-Mo"
            ),
        ]
        covered = _aws_usage(
            day,
            rng,
            "AmazonEC2",
            "Amazon Elastic Compute Cloud",
            "Compute",
            "arn:aws:ec2:eu-central-1:210987654321:instance/i-0def",
            [("user:model-name", "credit-scoring"), ("user:team", "risk-ml")],
        )
        covered.update(
            sp, BilledCost=0.0, EffectiveCost=0.9876543, PricingCategory="Committed", CommitmentDiscountStatus="Used"
        )
        rows.append(covered)
    rows += [
        _aws_row(
            MAY,
            ChargeCategory="Purchase",
            ChargeFrequency="Recurring",
            ChargeDescription="Compute Savings Plan recurring fee",
            ServiceName="Savings Plans for AWS Compute usage",
            ServiceCategory="Compute",
            PricingCategory="Committed",
            PricingQuantity=24.0,
            PricingUnit="Hrs",
            ListUnitPrice=1.5,
            ContractedUnitPrice=1.5,
            ListCost=36.0,
            ContractedCost=36.0,
            BilledCost=36.0,
            EffectiveCost=2.0,
            SkuId="SP-SKU",
            SkuPriceId="SP-PRICE",
            x_ServiceCode="ComputeSavingsPlans",
            **sp,
        ),
        _aws_row(
            MAY,
            ChargeCategory="Tax",
            ChargeFrequency="Recurring",
            ChargeDescription="Tax for May",
            ServiceName="Tax",
            ServiceCategory="Other",
            PricingCategory=None,
            ChargePeriodEnd=datetime(2024, 6, 1, tzinfo=timezone.utc),
            BilledCost=19.41,
            EffectiveCost=19.41,
            ListCost=19.41,
            ContractedCost=19.41,
            PublisherName=None,  # AWS documents PublisherName and InvoiceIssuerName as possibly null
        ),
        _aws_row(
            date(2024, 5, 2),
            ChargeCategory="Credit",
            ChargeFrequency="One-Time",
            ChargeDescription="AWS Activate credit",
            ServiceName="Amazon SageMaker",
            ServiceCategory="AI and Machine Learning",
            PricingCategory=None,
            BilledCost=-25.5,
            EffectiveCost=-25.5,
            ListCost=0.0,
            ContractedCost=0.0,
        ),
    ]
    return rows


def aws_parquet(rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=AWS_SCHEMA), buffer, compression="snappy")
    return buffer.getvalue()


@dataclass
class S3Export:
    """An AWS Data Exports FOCUS export in a moto S3 bucket."""

    s3_server: object
    bucket: str

    @property
    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_server.endpoint, region_name="us-east-1")

    @property
    def root(self) -> str:
        return f"s3://{self.bucket}?endpoint_override={self.s3_server.host}:{self.s3_server.port}&scheme=http&region=us-east-1"

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def write(self, files: dict[str, bytes], execution: str = "exec-1", listed: list[str] | None = None) -> None:
        base = "focus/rai-focus"
        for name, data in files.items():
            self.put(f"{base}/data/BILLING_PERIOD=2024-05/{name}", data)
        manifest = {
            "executionId": execution,
            "billingPeriod": {"start": "2024-05-01T00:00:00.000Z", "end": "2024-06-01T00:00:00.000Z"},
            "dataFiles": [
                f"s3://{self.bucket}/{base}/data/BILLING_PERIOD=2024-05/{name}" for name in (listed or list(files))
            ],
        }
        self.put(f"{base}/metadata/BILLING_PERIOD=2024-05/rai-focus-Manifest.json", json.dumps(manifest).encode())

    def reader(self, account: str = AWS_ACCOUNT) -> AwsFocusExportReader:
        return AwsFocusExportReader(self.root, account, prefix="focus", name="rai-focus")


# --- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()


_containers = iter(range(10_000))


@pytest.fixture
def blob_container(azurite):
    return BlobContainer(azurite, f"billing-{next(_containers)}")


@pytest.fixture
def s3_export(s3_server):
    return S3Export(s3_server, s3_server.bucket(f"focus-billing-{random.randrange(10**9)}"))


def ledger_of(sources: list[SourceFile], day: date) -> pa.Table:
    from rai_pipelines.costs import ledger

    parts = [ledger.to_focus(s, day) for s in sources]  # the asset's dispatch by source kind
    return pa.concat_tables(parts) if parts else LEDGER_SCHEMA.empty_table()


def witness(source: SourceFile) -> dict[str, Decimal]:
    from rai_pipelines.costs import ledger

    return ledger.daily_totals(source)


def billed_by_day(rows, day_of) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for row in rows:
        key = day_of(row)
        totals[key] = totals.get(key, Decimal(0)) + Decimal(str(row["BilledCost"]))
    return totals


def _azure_day(row) -> str:
    start = row["ChargePeriodStart"][:10]
    return start if start >= "2024-05-01" else "2024-05-01"


# --- Azure --------------------------------------------------------------------------------------------


def test_an_azure_focus_export_in_blob_storage_becomes_a_reconciled_attributed_ledger(blob_container):
    rows = azure_rows()
    (name,) = write_azure_run(blob_container, rows, "run-1", "2024-05-03T06:12:44.1234567Z")
    # Reader configured with the id in other letter case: Azure resource ids are case-insensitive.
    reader = blob_container.reader(AZURE_ACCOUNT.lower())
    (source,) = reader.read(DAYS[0])
    assert source.kind == "azure_focus" and source.context == AZURE_ACCOUNT.lower()
    assert source.uri == f"{blob_container.azurite.account_url}/{blob_container.name}/{name}"
    expected = billed_by_day(rows, _azure_day)
    totals = witness(source)
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
        for key, value in witness(source).items():
            totals[key] = totals.get(key, Decimal(0)) + value
    assert totals == billed_by_day(rows, _azure_day)
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
    total = sum((witness(s)[MAY.isoformat()] for s in sources), Decimal(0))
    assert total == billed_by_day(rows, _azure_day)[MAY.isoformat()] + Decimal("1.25")
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
    assert billed == azure_focus_daily_totals(source)[MAY.isoformat()]

    manifest_name = "exports/focus-cost/20240501-20240531/run-1/manifest.json"
    manifest = json.loads((tmp_path / manifest_name).read_text())
    manifest["blobs"].append(dict(manifest["blobs"][0]))
    container.put(manifest_name, json.dumps(manifest).encode())
    with pytest.raises(BadInputError, match=r"manifest\.json: blobs\[1\] lists .*part_0_0001\.csv a second time"):
        container.reader().read(MAY)


# --- AWS ----------------------------------------------------------------------------------------------


def _aws_day(row) -> str:
    return row["ChargePeriodStart"].date().isoformat()


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
        for key, value in witness(source).items():
            totals[key] = totals.get(key, Decimal(0)) + value
    expected = billed_by_day(rows, _aws_day)
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
    day_total = aws_focus_daily_totals(source)[MAY.isoformat()]
    assert day_total.quantize(CENT) == (billed_by_day(rows, _aws_day)[MAY.isoformat()] + Decimal("1.25")).quantize(CENT)


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


# --- both ---------------------------------------------------------------------------------------------


def test_the_finops_foundations_validator_passes_on_ledgers_from_both_sources(tmp_path):
    from rai_pipelines.settings import PROJECT_ROOT
    from tests.test_loop import VALIDATOR_DEFECTS

    sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
    from peers import FOCUS_VALIDATOR_REQUIREMENTS, PEERS_DIR, peer_python, run_peer

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
    path = tmp_path / "ledger.parquet"
    pq.write_table(ledger, path)

    python = peer_python("focus-validator", FOCUS_VALIDATOR_REQUIREMENTS)
    result = run_peer(
        python, PEERS_DIR / "focus_validate.py", "--ledger", str(path), "--validator-column-names", timeout=600
    )
    assert result["focus_version"] == "1.0" and result["checks"] > 100 and result["rows"] == ledger.num_rows
    failed = {f["check"] for f in result["failures"]}
    assert failed == VALIDATOR_DEFECTS, result["failures"]


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
    expected = billed_by_day(azure, _azure_day)[day.isoformat()] + billed_by_day(aws, _aws_day)[day.isoformat()]
    assert sum(ledger.column("BilledCost").to_pylist(), Decimal(0)).quantize(CENT) == expected.quantize(CENT)
