"""Realistic FOCUS exports for the tests: Azure Cost Management FocusCost rows and AWS Data Exports'
FOCUS 1.2 with AWS columns, written as the providers lay them out (Azure runs with manifests in
Blob Storage, AWS manifests and Parquet in S3), and the ledger helpers the tests share."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rai_pipelines.costs.ledger_schema import LEDGER_SCHEMA, SourceFile
from rai_pipelines.costs.sources.aws_focus import AwsFocusExportReader
from rai_pipelines.costs.sources.azure_focus import AzureFocusExportReader
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


def azure_day(row) -> str:
    start = row["ChargePeriodStart"][:10]
    return start if start >= "2024-05-01" else "2024-05-01"


def aws_day(row) -> str:
    return row["ChargePeriodStart"].date().isoformat()
