"""Cost ledger speed and memory: one generated AWS CUR 2.0 day of 10,000,000 line items becomes a FOCUS
ledger partition, on the whole machine (targets: at least 250,000 rows per second, peak memory at most
1,536 MB, at least 2 times the speed of the FinOps Foundation's focus-converter given the same cores).

    .venv/bin/python benchmarks/ledger.py [--rows 10000000] [--resources 40000] [--row-group-rows 1000000]
        [--money-type double] [--seed 0] [--stage-timeout 1200] [--max-child-rss-gb 12]
        [--address-space-gb 14] [--peer-timeout 3600] [--skip-peer] [--skip-one-core] [--workdir DIR]

A generator process writes cur.parquet, row group by row group, with the CUR 2.0 fixed schema's columns
that a ledger or a converter reads (about 70 of its ~125), typed as Data Exports write them: strings,
timestamp[ms, UTC] dates, double costs and quantities (--money-type string writes them as text), and the
map columns resource_tags and product (map<string, string>), cost_category (map<string, string>) and
discount (map<string, double>). Cardinalities follow a real account: --resources resource ids (EC2
instances, volumes, buckets, SageMaker endpoints, Lambda functions, ...) drawn with Zipf-like
frequencies, each with its product, account (50), region (8), instance type and tag set fixed;
resource_tags keys user_model_name / user_model_version / user_team / user_environment plus
user_cost_center / user_project / user_owner / user_application and aws_created_by, hundreds of
distinct values; line item types mostly Usage with SavingsPlanCoveredUsage, DiscountedUsage, Credit
and Tax; hourly usage within the first UTC day of a billing period (so the month-long Tax lines, which
start with the period, land on that day too and every line item belongs to the ledger partition).

The measured process does for that one file what the cost_ledger asset does: the ledger streamed batch by
batch (focus.cur_to_focus_batches reads only the columns the ledger needs, 64k rows at a time, and
normalises the batches on every usable core, validating them and building their rows in DuckDB; each
batch is written with zstd and added to the exact totals and to the FOCUS profile, on a thread of its
own), then the checks: the independent totals the reconciliation compares with (focus.source_cost_totals:
the four FOCUS costs, Arrow compute on the raw columns) with the Great Expectations FOCUS suite on the
profile on a thread beside it. Both stages are timed (and each of the two checks); rows per second is the
file's rows over the sum of the two stages. After them, and not counted, the I/O floor: the same
reader reading the columns the ledger needs, then the ledger's rows written again with the same writer
settings (one after the other; the ledger's own rows are read back untimed), so that the ledger's speed
can be read against what pyarrow alone takes to read its input and write its output.

It runs twice: on the whole machine (every core; DuckDB one thread per worker), then pinned to one CPU with
single-threaded BLAS/OpenMP/Arrow/Polars settings (--skip-one-core leaves that out). Peak RSS is the
child's own (the parent stays small: a child's ru_maxrss starts from its parent's high-water mark on
Linux). Guards, so that a size the code cannot take fails with a message instead of swapping or hanging:
the child's address space is capped with RLIMIT_AS (--address-space-gb), and the parent kills it when a
stage runs longer than --stage-timeout seconds or its RSS passes --max-child-rss-gb.

focus-converter (FinOps Foundation) runs in its own virtual environment (benchmarks/peers.py) on the
same file, given the same cores each time (Polars with its threads on the whole machine, one thread when
pinned); see benchmarks/peers/focus_converter_run.py for what it supports and what is renamed for it
before its clock starts. vs_peer is its time over ours on the whole machine, vs_peer_one_core the same
when both are pinned to one CPU. The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import SINGLE_THREAD_ENV, pin_to_one_core, run_in_workdir  # noqa: E402

MIN_ROWS_PER_S = 250_000
MIN_VS_PEER = 2.0
MAX_RSS_MB = 1536
DAY = date(2025, 3, 1)  # the first day of its billing period: the period's Tax lines land on it
PERIOD_START = datetime(2025, 3, 1, tzinfo=timezone.utc)
PERIOD_END = datetime(2025, 4, 1, tzinfo=timezone.utc)
SOURCE_URI = "s3://rai-billing/cur/rai-cur/data/BILLING_PERIOD=2025-03/rai-cur-00001.snappy.parquet"
STAGES = ("ledger", "checks")  # timed one after the other; rows per second is over their sum
CHECKS = ("totals", "conformance")  # the two parts of "checks", run side by side

# -- the catalogue the generator draws from ---------------------------------------------------------------
PAYER = "123456789012"
ACCOUNTS = 50
REGIONS = (  # (code, usage type prefix, location)
    ("us-east-1", "USE1", "US East (N. Virginia)"),
    ("us-west-2", "USW2", "US West (Oregon)"),
    ("eu-west-1", "EUW1", "EU (Ireland)"),
    ("eu-central-1", "EUC1", "EU (Frankfurt)"),
    ("ap-northeast-1", "APN1", "Asia Pacific (Tokyo)"),
    ("ap-southeast-2", "APS2", "Asia Pacific (Sydney)"),
    ("ca-central-1", "CAN1", "Canada (Central)"),
    ("sa-east-1", "SAE1", "South America (Sao Paulo)"),
)
REGION_WEIGHTS = (0.35, 0.2, 0.2, 0.1, 0.05, 0.04, 0.03, 0.03)
INSTANCE_TYPES = (  # (type, on-demand USD per hour)
    *(("t3.micro", 0.0104), ("t3.medium", 0.0416), ("t3.large", 0.0832), ("m5.large", 0.096)),
    *(("m5.xlarge", 0.192), ("m5.2xlarge", 0.384), ("m6i.large", 0.096), ("m6i.4xlarge", 0.768)),
    *(("c5.large", 0.085), ("c5.2xlarge", 0.34), ("c6i.xlarge", 0.17), ("r5.large", 0.126)),
    *(("r5.2xlarge", 0.504), ("r6i.xlarge", 0.252), ("g4dn.xlarge", 0.526), ("g5.xlarge", 1.006)),
    *(("g5.12xlarge", 5.672), ("p3.2xlarge", 3.06), ("p4d.24xlarge", 32.7726), ("inf2.xlarge", 0.7582)),
    *(("ml.m5.large", 0.115), ("ml.m5.xlarge", 0.23), ("ml.c5.xlarge", 0.204), ("ml.g4dn.xlarge", 0.7364)),
    *(("ml.g5.2xlarge", 1.515), ("ml.p3.2xlarge", 3.825), ("ml.inf1.xlarge", 0.297), ("ml.t3.medium", 0.05)),
)
# (product code, product name, family, weight)
PRODUCTS = (
    ("AmazonEC2", "Amazon Elastic Compute Cloud", "Compute Instance", 0.34),
    ("AmazonSageMaker", "Amazon SageMaker", "ML Instance", 0.12),
    ("AmazonS3", "Amazon Simple Storage Service", "Storage", 0.14),
    ("AWSLambda", "AWS Lambda", "Serverless", 0.08),
    ("AmazonRDS", "Amazon Relational Database Service", "Database Instance", 0.05),
    ("AmazonDynamoDB", "Amazon DynamoDB", "Database Storage", 0.04),
    ("AmazonCloudWatch", "AmazonCloudWatch", "Metric", 0.06),
    ("AWSDataTransfer", "AWS Data Transfer", "Data Transfer", 0.05),
    ("AmazonEKS", "Amazon Elastic Kubernetes Service", "Compute", 0.02),
    ("AmazonECS", "Amazon Elastic Container Service", "Compute", 0.02),
    ("AmazonBedrock", "Amazon Bedrock", "Foundation Model", 0.02),
    ("AmazonAthena", "Amazon Athena", "Data Scanned", 0.01),
    ("AWSGlue", "AWS Glue", "AWS Glue", 0.01),
    ("AmazonEFS", "Amazon Elastic File System", "Storage", 0.01),
    ("awskms", "AWS Key Management Service", "Encryption Key", 0.01),
    ("AWSSecretsManager", "AWS Secrets Manager", "Secret", 0.005),
    ("AmazonSNS", "Amazon Simple Notification Service", "Message Delivery", 0.005),
    ("AWSQueueService", "Amazon Simple Queue Service", "API Request", 0.005),
    ("AWSCloudTrail", "AWS CloudTrail", "Management Tools - AWS CloudTrail", 0.004),
    ("AmazonStates", "AWS Step Functions", "AWS Step Functions", 0.003),
    ("AmazonECR", "Amazon EC2 Container Registry (ECR)", "EC2 Container Registry", 0.003),
    ("AmazonVPC", "Amazon Virtual Private Cloud", "VpcEndpoint", 0.005),
)
# Usage kinds of each product, in order of frequency: (product code, kind, unit, USD per unit, operation).
# A kind with "BoxUsage" in it is priced by the resource's instance type.
USAGE_KINDS = (
    ("AmazonEC2", "BoxUsage", "Hrs", 0.0, "RunInstances"),
    ("AmazonEC2", "EBS:VolumeUsage.gp3", "GB-Mo", 0.08, "CreateVolume-Gp3"),
    ("AmazonEC2", "DataTransfer-Out-Bytes", "GB", 0.09, "RunInstances"),
    ("AmazonSageMaker", "Host:BoxUsage", "Hrs", 0.0, "RunInstance"),
    ("AmazonSageMaker", "Train:BoxUsage", "Hrs", 0.0, "RunInstance"),
    ("AmazonSageMaker", "Host:VolumeUsage.gp2", "GB-Mo", 0.14, "RunInstance"),
    ("AmazonS3", "TimedStorage-ByteHrs", "GB-Mo", 0.023, "StandardStorage"),
    ("AmazonS3", "Requests-Tier1", "Requests", 0.000005, "PutObject"),
    ("AmazonS3", "Requests-Tier2", "Requests", 0.0000004, "GetObject"),
    ("AWSLambda", "Lambda-GB-Second", "Lambda-GB-Second", 0.0000166667, "Invoke"),
    ("AWSLambda", "Request", "Requests", 0.0000002, "Invoke"),
    ("AmazonRDS", "InstanceUsage:db.r5.large", "Hrs", 0.25, "CreateDBInstance:0014"),
    ("AmazonRDS", "RDS:GP2-Storage", "GB-Mo", 0.115, "CreateDBInstance:0014"),
    ("AmazonDynamoDB", "ReadRequestUnits", "ReadRequestUnits", 0.00000025, "PayPerRequestThroughput"),
    ("AmazonDynamoDB", "WriteRequestUnits", "WriteRequestUnits", 0.00000125, "PayPerRequestThroughput"),
    ("AmazonDynamoDB", "TimedStorage-ByteHrs", "GB-Mo", 0.25, "StandardStorage"),
    ("AmazonCloudWatch", "CW:MetricMonitorUsage", "Metrics", 0.3, "MetricStorage"),
    ("AmazonCloudWatch", "DataProcessing-Bytes", "GB", 0.5, "PutLogEvents"),
    ("AWSDataTransfer", "DataTransfer-Regional-Bytes", "GB", 0.01, "InterZone-In"),
    ("AWSDataTransfer", "DataTransfer-Out-Bytes", "GB", 0.09, "RunInstances"),
    ("AmazonEKS", "AmazonEKS-Hours:perCluster", "Hrs", 0.1, "CreateOperation"),
    ("AmazonECS", "Fargate-vCPU-Hours:perCPU", "hours", 0.04048, "FargateTask"),
    ("AmazonECS", "Fargate-GB-Hours", "hours", 0.004445, "FargateTask"),
    ("AmazonBedrock", "InputTokenCount", "Tokens", 0.000003, "InvokeModel"),
    ("AmazonBedrock", "OutputTokenCount", "Tokens", 0.000015, "InvokeModel"),
    ("AmazonAthena", "DataScannedInTB", "Terabytes", 5.0, "RunQuery"),
    ("AWSGlue", "ETL-DPU-Hour", "DPU-Hour", 0.44, "Jobrun"),
    ("AmazonEFS", "TimedStorage-ByteHrs", "GB-Mo", 0.3, ""),
    ("awskms", "KMS-Keys", "Keys", 1.0, "CreateKey"),
    ("awskms", "KMS-Requests", "Requests", 0.000003, "Decrypt"),
    ("AWSSecretsManager", "AWSSecretsManager-Secrets", "Secrets", 0.4, ""),
    ("AmazonSNS", "Requests-Tier1", "Requests", 0.0000005, "Publish"),
    ("AWSQueueService", "Requests-RBP", "Requests", 0.0000004, "SendMessage"),
    ("AWSCloudTrail", "PaidEventsRecorded", "Events", 0.00001, "None"),
    ("AmazonStates", "StateTransition", "StateTransitions", 0.000025, "StateTransition"),
    ("AmazonECR", "TimedStorage-ByteHrs", "GB-Mo", 0.1, "StorageOperation"),
    ("AmazonVPC", "VpcEndpoint-Hours", "Hrs", 0.01, "VpcEndpoint"),
    ("AmazonVPC", "NatGateway-Hours", "Hrs", 0.045, "NatGateway"),
)
KIND_SHARES = (0.8, 0.12, 0.08)  # a row's usage kind among its product's (first, second, third)
LINE_ITEM_TYPES = (  # (type, share)
    ("Usage", 0.9),
    ("SavingsPlanCoveredUsage", 0.05),
    ("DiscountedUsage", 0.035),
    ("Credit", 0.01),
    ("Tax", 0.005),
)
MODELS = 60
TEAMS = 25
ENVIRONMENTS = ("production", "staging", "development", "test")
COST_CENTERS = 50
PROJECTS = 120
OWNERS = 300
APPLICATIONS = 80
BUSINESS_UNITS = ("Retail Credit", "Fraud", "Marketing", "Platform", "Research", "Shared Services")


def data_columns() -> list[str]:
    return [
        *("identity_line_item_id", "identity_time_interval"),
        *("bill_invoice_id", "bill_invoicing_entity", "bill_billing_entity", "bill_bill_type"),
        *("bill_payer_account_id", "bill_payer_account_name"),
        *("bill_billing_period_start_date", "bill_billing_period_end_date"),
        *("line_item_usage_account_id", "line_item_usage_account_name", "line_item_line_item_type"),
        *("line_item_usage_start_date", "line_item_usage_end_date", "line_item_product_code"),
        *("line_item_usage_type", "line_item_operation", "line_item_availability_zone", "line_item_resource_id"),
        *("line_item_usage_amount", "line_item_normalization_factor", "line_item_normalized_usage_amount"),
        *("line_item_currency_code", "line_item_unblended_rate", "line_item_unblended_cost"),
        *("line_item_blended_rate", "line_item_blended_cost", "line_item_net_unblended_rate"),
        *("line_item_net_unblended_cost", "line_item_line_item_description", "line_item_tax_type"),
        *("line_item_legal_entity", "product", "product_product_family", "product_servicecode"),
        *("product_region_code", "product_location", "product_location_type", "product_sku"),
        *("product_instance_type", "product_instance_family", "product_operation", "product_usagetype"),
        *("pricing_term", "pricing_unit", "pricing_rate_code", "pricing_rate_id", "pricing_currency"),
        *("pricing_public_on_demand_cost", "pricing_public_on_demand_rate", "pricing_purchase_option"),
        *("pricing_offering_class", "pricing_lease_contract_length"),
        *("reservation_reservation_a_r_n", "reservation_effective_cost"),
        *("reservation_unused_amortized_upfront_fee_for_billing_period", "reservation_unused_recurring_fee"),
        *("reservation_total_reserved_units", "reservation_amortized_upfront_fee_for_billing_period"),
        *("savings_plan_savings_plan_a_r_n", "savings_plan_savings_plan_effective_cost"),
        *("savings_plan_savings_plan_rate", "savings_plan_total_commitment_to_date"),
        *("savings_plan_used_commitment", "savings_plan_amortized_upfront_commitment_for_billing_period"),
        *("resource_tags", "cost_category", "discount"),
    ]


# -- the data (generator process) --------------------------------------------------------------------
def _zipf(count: int, exponent: float):
    import numpy as np

    weights = 1 / np.arange(1, count + 1) ** exponent
    return weights / weights.sum()


def _strings(codes, render) -> object:
    """An Arrow string array with one value per code, formatting each distinct code once in Python."""
    import numpy as np
    import pyarrow as pa

    uniques, inverse = np.unique(codes, return_inverse=True)
    values = pa.array([render(int(u)) for u in uniques], pa.string())
    return values.take(pa.array(inverse.astype(np.int64)))


def _hex_ids(rng, n: int, nbytes: int):
    """n random lowercase hex strings of 2 * nbytes characters, without a Python loop over the rows."""
    import numpy as np
    import pyarrow as pa

    pairs = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")
    text = pairs[rng.integers(0, 256, (n, nbytes), dtype=np.uint8)].view(f"S{2 * nbytes}").ravel()
    return pa.array(text, pa.binary()).cast(pa.string())


class Catalogue:
    """The resources of the account with everything fixed per resource, drawn once."""

    def __init__(self, args: argparse.Namespace):
        import numpy as np
        import pyarrow as pa

        rng = np.random.default_rng([args.seed, 0])
        r = args.resources
        product_weights = np.array([p[3] for p in PRODUCTS])
        self.product = rng.choice(len(PRODUCTS), size=r, p=product_weights / product_weights.sum())
        self.account = rng.choice(ACCOUNTS, size=r, p=_zipf(ACCOUNTS, 1.1))
        self.region = rng.choice(len(REGIONS), size=r, p=np.array(REGION_WEIGHTS) / sum(REGION_WEIGHTS))
        self.az = rng.integers(0, 3, size=r)
        codes = [p[0] for p in PRODUCTS]
        sagemaker = np.array([codes[p] == "AmazonSageMaker" for p in self.product])
        ml_types = [i for i, (t, _) in enumerate(INSTANCE_TYPES) if t.startswith("ml.")]
        ec2_types = [i for i, (t, _) in enumerate(INSTANCE_TYPES) if not t.startswith("ml.")]
        self.itype = np.where(
            sagemaker,
            np.array(ml_types)[rng.choice(len(ml_types), size=r, p=_zipf(len(ml_types), 0.8))],
            np.array(ec2_types)[rng.choice(len(ec2_types), size=r, p=_zipf(len(ec2_types), 0.8))],
        )
        self.frequency = _zipf(r, 0.6)[rng.permutation(r)]  # how often each resource shows up in the day
        hexes = _hex_ids(rng, r, 9).to_pylist()
        self.resource_ids = pa.array(
            [
                self._resource_id(codes[p], REGIONS[g][0], a, h)
                for p, g, a, h in zip(self.product, self.region, self.account, hexes, strict=True)
            ],
            pa.string(),
        )
        self.tags = self._tags(rng, r)

    @staticmethod
    def _resource_id(product: str, region: str, account: int, h: str) -> str:
        acct = f"{210000000000 + account * 7919:012d}"
        if product == "AmazonEC2":
            return f"i-{h[:17]}" if h[0] < "c" else f"vol-{h[:17]}"
        if product == "AmazonS3":
            return f"rai-data-{h[:10]}"
        if product == "AmazonSageMaker":
            return f"arn:aws:sagemaker:{region}:{acct}:endpoint/endpoint-{h[:12]}"
        if product == "AWSLambda":
            return f"arn:aws:lambda:{region}:{acct}:function:fn-{h[:12]}"
        if product == "AmazonRDS":
            return f"arn:aws:rds:{region}:{acct}:db:db-{h[:10]}"
        if product == "AmazonDynamoDB":
            return f"arn:aws:dynamodb:{region}:{acct}:table/tbl-{h[:10]}"
        return f"arn:aws:{product.lower()}:{region}:{acct}:resource/{h[:16]}"

    @staticmethod
    def _tags(rng, r: int):
        """One resource_tags map per resource (ML tags on ~40 %, general tags on ~35 %, none on the rest),
        plus an empty map at index r for the lines without a resource (Tax, Credit)."""
        import pyarrow as pa

        maps: list[list[tuple[str, str]]] = []
        kinds = rng.choice(3, size=r, p=(0.4, 0.35, 0.25))
        model = rng.choice(MODELS, size=r, p=_zipf(MODELS, 1.0))
        version = rng.integers(0, 5, size=r)
        team, env = rng.integers(0, TEAMS, size=r), rng.choice(4, size=r, p=(0.55, 0.2, 0.2, 0.05))
        cost_center, project = rng.integers(0, COST_CENTERS, size=r), rng.integers(0, PROJECTS, size=r)
        owner, app = rng.integers(0, OWNERS, size=r), rng.integers(0, APPLICATIONS, size=r)
        extra = rng.random((r, 4))
        for i in range(r):
            tags: list[tuple[str, str]] = []
            if kinds[i] == 0:
                m = int(model[i])
                tags += [
                    ("user_model_name", f"model-{m:02d}-{('credit', 'fraud', 'churn', 'pricing', 'ranker')[m % 5]}"),
                    ("user_model_version", f"{1 + m % 3}.{int(version[i])}.{m % 4}"),
                    ("user_team", f"team-{(m * 7) % TEAMS:02d}"),
                ]
            if kinds[i] in (0, 1):
                if kinds[i] == 1:
                    tags.append(("user_team", f"team-{int(team[i]):02d}"))
                tags.append(("user_environment", ENVIRONMENTS[int(env[i])]))
                if extra[i, 0] < 0.8:
                    tags.append(("user_cost_center", f"CC{1000 + int(cost_center[i]) * 13}"))
                if extra[i, 1] < 0.6:
                    tags.append(("user_project", f"project-{int(project[i]):03d}"))
                if extra[i, 2] < 0.5:
                    tags.append(("user_owner", f"owner{int(owner[i]):03d}@example.com"))
                if extra[i, 3] < 0.4:
                    tags.append(("user_application", f"app-{int(app[i]):02d}"))
            if extra[i, 3] > 0.7:
                tags.append(("aws_created_by", f"AssumedRole:AROA{int(owner[i]):08d}:ci-deployer"))
            maps.append(tags)
        maps.append([])
        return pa.array(maps, pa.map_(pa.string(), pa.string()))


def row_group(catalogue: Catalogue, rng, n: int, money_type: str):
    """n CUR 2.0 line items as an Arrow table."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    r = len(catalogue.frequency)
    res = rng.choice(r, size=n, p=catalogue.frequency)
    product = catalogue.product[res]
    account = catalogue.account[res]
    region = catalogue.region[res]
    itype = catalogue.itype[res]
    kinds_of = [[k[1:] for k in USAGE_KINDS if k[0] == p[0]] for p in PRODUCTS]
    slot = rng.choice(3, size=n, p=KIND_SHARES)
    slot = slot % np.array([len(k) for k in kinds_of])[product]
    kind_offsets = np.cumsum([0] + [len(k) for k in kinds_of])
    kind = kind_offsets[product] + slot  # a global usage kind id
    all_kinds = [k for ks in kinds_of for k in ks]
    unit_of = np.array([k[1] for k in all_kinds])
    price_of = np.array([k[2] for k in all_kinds])
    boxed = np.array(["BoxUsage" in k[0] for k in all_kinds])[kind]
    rates = np.where(boxed, np.array([t[1] for t in INSTANCE_TYPES])[itype], price_of[kind])

    types = np.array([t for t, _ in LINE_ITEM_TYPES])
    lit = rng.choice(len(types), size=n, p=[s for _, s in LINE_ITEM_TYPES])
    is_tax, is_credit = lit == 4, lit == 3
    is_sp, is_ri = lit == 1, lit == 2
    no_resource = is_tax | is_credit

    unit = unit_of[kind]
    hourly = np.isin(unit, ["Hrs", "hours", "DPU-Hour"])
    amount = np.where(hourly, np.where(rng.random(n) < 0.9, 1.0, np.round(rng.random(n), 6)), 0.0)
    amount = np.where(unit == "GB-Mo", np.round(rng.lognormal(3, 1.5, n) / 720, 9), amount)
    amount = np.where(unit == "GB", np.round(rng.lognormal(0, 2, n), 9), amount)
    amount = np.where(unit == "Terabytes", np.round(rng.lognormal(-7, 2, n), 9), amount)
    monthly = np.isin(unit, ["Metrics", "Keys", "Secrets"])  # priced per month, billed by the hour
    amount = np.where(monthly, np.round(np.ceil(rng.lognormal(1, 1, n)) / 720, 9), amount)
    counted = ~(hourly | monthly | np.isin(unit, ["GB-Mo", "GB", "Terabytes"]))
    amount = np.where(counted, np.round(rng.lognormal(6, 2.5, n)), amount)
    amount = np.where(no_resource, 0.0, amount)
    on_demand = np.round(rates * amount, 10)
    credit = -np.round(rng.uniform(0.01, 5, n), 2)
    tax = np.round(rng.uniform(0.01, 20, n), 2)
    unblended = np.select([is_tax, is_credit, is_ri], [tax, credit, 0.0], on_demand)
    net_unblended = np.round(unblended * np.where(account % 4 == 0, 0.97, 1.0), 10)
    ri_effective = np.where(is_ri, np.round(on_demand * 0.6, 10), 0.0)
    sp_effective = np.where(is_sp, np.round(on_demand * 0.72, 10), 0.0)

    hour = rng.integers(0, 24, size=n).astype("timedelta64[h]")
    day0 = np.datetime64(DAY.isoformat(), "ms")
    starts = np.where(is_tax, np.datetime64(PERIOD_START.date().isoformat(), "ms"), day0 + hour)
    ends = np.where(is_tax, np.datetime64(PERIOD_END.date().isoformat(), "ms"), day0 + hour + np.timedelta64(1, "h"))
    ts = pa.timestamp("ms", tz="UTC")

    def money(values):
        array = pa.array(values, pa.float64())
        return pc.cast(array, pa.string()) if money_type == "string" else array

    def maybe(mask, array):
        return pc.if_else(pa.array(mask), pa.nulls(n, array.type), array)

    def const(value: str):
        return pa.repeat(pa.scalar(value, pa.string()), n)

    region_code = _strings(region, lambda g: REGIONS[g][0])
    usage_code = (kind * len(REGIONS) + region) * len(INSTANCE_TYPES) + np.where(boxed, itype, 0)
    n_regions, n_types = len(REGIONS), len(INSTANCE_TYPES)

    def usage_type(code: int) -> str:
        k, rest = divmod(code, n_regions * n_types)
        g, t = divmod(rest, n_types)
        name = all_kinds[k][0]
        return f"{REGIONS[g][1]}-{name}:{INSTANCE_TYPES[t][0]}" if "BoxUsage" in name else f"{REGIONS[g][1]}-{name}"

    def description(code: int) -> str:
        k, rest = divmod(code, n_regions * n_types)
        g, t = divmod(rest, n_types)
        name, unit_name, price, _ = all_kinds[k]
        if "BoxUsage" in name:
            return f"${INSTANCE_TYPES[t][1]} per On Demand Linux {INSTANCE_TYPES[t][0]} Instance Hour"
        return f"${price:.10f}".rstrip("0").rstrip(".") + f" per {unit_name} for {name} in {REGIONS[g][2]}"

    usage_types = maybe(is_tax | is_credit, _strings(usage_code, usage_type))
    descriptions = _strings(usage_code, description)
    tax_descriptions = _strings(product, lambda p: f"Tax for product code {PRODUCTS[p][0]}")
    credit_descriptions = const("AWS Credits - Activate Program")
    descriptions = pc.if_else(pa.array(is_tax), tax_descriptions, descriptions)
    descriptions = pc.if_else(pa.array(is_credit), credit_descriptions, descriptions)
    product_map_code = product * n_types + np.where(boxed, itype, n_types - 1)

    def product_map(code: int) -> list[tuple[str, str]]:
        p, t = divmod(code, n_types)
        entries = [("product_name", PRODUCTS[p][1]), ("servicename", PRODUCTS[p][1])]
        if PRODUCTS[p][0] in ("AmazonEC2", "AmazonSageMaker"):
            entries += [("vcpu", str(2 ** (t % 5))), ("memory", f"{2 ** (t % 5 + 2)} GiB")]
            entries += [("operating_system", "Linux"), ("tenancy", "Shared"), ("current_generation", "Yes")]
        return entries

    uniques, inverse = np.unique(product_map_code, return_inverse=True)
    product_maps = pa.array([product_map(int(u)) for u in uniques], pa.map_(pa.string(), pa.string()))
    product_maps = product_maps.take(pa.array(inverse.astype(np.int64)))
    tag_index = np.where(no_resource, r, res)
    resource_tags = catalogue.tags.take(pa.array(tag_index))
    categories = pa.array(
        [
            [("business_unit", BUSINESS_UNITS[a % len(BUSINESS_UNITS)])]
            + ([("cost_pool", f"pool-{a % 9}")] if a % 3 else [])
            for a in range(ACCOUNTS)
        ],
        pa.map_(pa.string(), pa.string()),
    ).take(pa.array(account))
    # discount: the EDP share of the line on the accounts that have one (every fourth), else an empty map.
    edp = account % 4 == 0
    offsets = pa.array(np.concatenate([[0], np.cumsum(edp)]).astype(np.int32))
    discount = pa.MapArray.from_arrays(
        offsets,
        pa.repeat(pa.scalar("edp_discount"), int(edp.sum())),
        pa.array(np.round(unblended[edp] - net_unblended[edp], 10), pa.float64()),
        type=pa.map_(pa.string(), pa.float64()),
    )

    sp_arns = _strings(
        account % 5, lambda a: f"arn:aws:savingsplans::{PAYER}:savingsplan/{a:08d}-sp-compute-3yr-no-upfront"
    )
    ri_arns = _strings(
        account * len(REGIONS) + region,
        lambda c: f"arn:aws:ec2:{REGIONS[c % len(REGIONS)][0]}:{PAYER}:reserved-instances/ri-{c:06d}",
    )
    ri_rate_ids = _strings(usage_code % 9973, lambda c: f"{1000000000 + c * 7919}")
    sku = _strings(usage_code % 997, lambda c: f"{c * 104729:012X}"[-16:])

    def interval(h: int) -> str:
        start, end = (
            (PERIOD_START, PERIOD_END)
            if h < 0
            else (day_start + timedelta(hours=h), day_start + timedelta(hours=h + 1))
        )
        return f"{start:%Y-%m-%dT%H:%M:%SZ}/{end:%Y-%m-%dT%H:%M:%SZ}"

    day_start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=timezone.utc)
    columns = {
        "identity_line_item_id": _hex_ids(rng, n, 20),
        "identity_time_interval": _strings(np.where(is_tax, -1, hour.astype(np.int64)), interval),
        "bill_invoice_id": pa.nulls(n, pa.string()),
        "bill_invoicing_entity": const("Amazon Web Services, Inc."),
        "bill_billing_entity": const("AWS"),
        "bill_bill_type": const("Anniversary"),
        "bill_payer_account_id": const(PAYER),
        "bill_payer_account_name": const("rai-payer"),
        "bill_billing_period_start_date": pa.array(np.full(n, np.datetime64("2025-03-01", "ms")), ts),
        "bill_billing_period_end_date": pa.array(np.full(n, np.datetime64("2025-04-01", "ms")), ts),
        "line_item_usage_account_id": _strings(account, lambda a: f"{210000000000 + a * 7919:012d}"),
        "line_item_usage_account_name": _strings(account, lambda a: f"rai-account-{a:02d}"),
        "line_item_line_item_type": pa.array(types).take(pa.array(lit)),
        "line_item_usage_start_date": pa.array(starts, ts),
        "line_item_usage_end_date": pa.array(ends, ts),
        "line_item_product_code": _strings(product, lambda p: PRODUCTS[p][0]),
        "line_item_usage_type": usage_types,
        "line_item_operation": maybe(no_resource, _strings(kind, lambda k: all_kinds[k][3])),
        "line_item_availability_zone": maybe(
            no_resource | ~boxed, _strings(region * 3 + catalogue.az[res], lambda c: REGIONS[c // 3][0] + "abc"[c % 3])
        ),
        "line_item_resource_id": maybe(no_resource, catalogue.resource_ids.take(pa.array(res))),
        "line_item_usage_amount": money(amount),
        "line_item_normalization_factor": pa.array(np.where(boxed, 4.0, 0.0)),
        "line_item_normalized_usage_amount": pa.array(np.where(boxed, amount * 4.0, 0.0)),
        "line_item_currency_code": const("USD"),
        "line_item_unblended_rate": money(np.where(no_resource, 0.0, np.where(is_ri, 0.0, rates))),
        "line_item_unblended_cost": money(unblended),
        "line_item_blended_rate": money(np.where(no_resource, 0.0, rates)),
        "line_item_blended_cost": money(unblended),
        "line_item_net_unblended_rate": money(np.where(no_resource, 0.0, rates)),
        "line_item_net_unblended_cost": money(net_unblended),
        "line_item_line_item_description": descriptions,
        "line_item_tax_type": maybe(~is_tax, const("VAT")),
        "line_item_legal_entity": const("Amazon Web Services, Inc."),
        "product": product_maps,
        "product_product_family": _strings(product, lambda p: PRODUCTS[p][2]),
        "product_servicecode": _strings(product, lambda p: PRODUCTS[p][0]),
        "product_region_code": maybe(is_tax, region_code),
        "product_location": maybe(is_tax, _strings(region, lambda g: REGIONS[g][2])),
        "product_location_type": maybe(is_tax, const("AWS Region")),
        "product_sku": maybe(no_resource, sku),
        "product_instance_type": maybe(~boxed, _strings(itype, lambda t: INSTANCE_TYPES[t][0])),
        "product_instance_family": maybe(~boxed, _strings(itype, lambda t: INSTANCE_TYPES[t][0].split(".")[-2])),
        "product_operation": maybe(no_resource, _strings(kind, lambda k: all_kinds[k][3])),
        "product_usagetype": usage_types,
        "pricing_term": maybe(no_resource, pc.if_else(pa.array(is_ri), const("Reserved"), const("OnDemand"))),
        "pricing_unit": maybe(no_resource, _strings(kind, lambda k: all_kinds[k][1])),
        "pricing_rate_code": maybe(no_resource, _strings(usage_code % 9973, lambda c: f"{c * 104729:012X}.JRTCKXETXF")),
        "pricing_rate_id": maybe(no_resource, ri_rate_ids),
        "pricing_currency": const("USD"),
        "pricing_public_on_demand_cost": money(on_demand),
        "pricing_public_on_demand_rate": money(np.where(no_resource, 0.0, rates)),
        "pricing_purchase_option": maybe(~is_ri, const("No Upfront")),
        "pricing_offering_class": maybe(~is_ri, const("standard")),
        "pricing_lease_contract_length": maybe(~is_ri, const("1yr")),
        "reservation_reservation_a_r_n": maybe(~is_ri, ri_arns),
        "reservation_effective_cost": money(ri_effective),
        "reservation_unused_amortized_upfront_fee_for_billing_period": money(np.zeros(n)),
        "reservation_unused_recurring_fee": money(np.zeros(n)),
        "reservation_total_reserved_units": pa.array(np.where(is_ri, amount, np.nan), from_pandas=True),
        "reservation_amortized_upfront_fee_for_billing_period": money(np.zeros(n)),
        "savings_plan_savings_plan_a_r_n": maybe(~is_sp, sp_arns),
        "savings_plan_savings_plan_effective_cost": money(sp_effective),
        "savings_plan_savings_plan_rate": money(np.where(is_sp, np.round(rates * 0.72, 10), 0.0)),
        "savings_plan_total_commitment_to_date": money(np.zeros(n)),
        "savings_plan_used_commitment": money(np.zeros(n)),
        "savings_plan_amortized_upfront_commitment_for_billing_period": money(np.zeros(n)),
        "resource_tags": resource_tags,
        "cost_category": categories,
        "discount": discount,
    }
    assert list(columns) == data_columns()
    return pa.table(columns)


def generate(args: argparse.Namespace) -> None:
    import numpy as np
    import pyarrow.parquet as pq

    catalogue = Catalogue(args)
    rng = np.random.default_rng([args.seed, 1])
    path = Path(args.workdir) / "cur.parquet"
    writer = None
    left = args.rows
    try:
        while left > 0:
            n = min(args.row_group_rows, left)
            table = row_group(catalogue, rng, n, args.money_type)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=n)
            left -= n
    finally:
        if writer is not None:
            writer.close()


# -- the measured step (child process) ----------------------------------------------------------------
def _vm_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def measure(args: argparse.Namespace) -> None:
    cpu = pin_to_one_core() if args.one_core else None  # before NumPy and Arrow are imported
    if args.address_space_gb > 0:
        limit = int(args.address_space_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rai_pipelines.costs.parallel import consume_in_background, usable_cores
    from rai_pipelines.costs.sources import aws_cur as focus

    if args.one_core:
        pa.set_cpu_count(1)
        pa.set_io_thread_count(1)
    workdir = Path(args.workdir)
    seconds: dict[str, float] = {}
    rss_after: dict[str, float] = {}

    def stage(name: str) -> float:
        print(f"stage {name}", flush=True)  # the parent's watchdog times each stage from this line
        return time.perf_counter()

    def done(name: str, start: float) -> None:
        seconds[name] = time.perf_counter() - start
        rss_after[name] = _vm_kb("VmRSS") / 1024
        print(f"done {name} {seconds[name]:.3f} s, RSS {rss_after[name]:.0f} MB", flush=True)

    import pyarrow.fs as pafs

    from rai_pipelines.costs.conformance import LedgerProfile, validate_ledger
    from rai_pipelines.costs.ledger import LedgerSummary

    path = str(workdir / "cur.parquet")
    source = focus.SourceFile.streamed(focus.ParquetInput(pafs.LocalFileSystem(), path, SOURCE_URI))
    summary, profile = LedgerSummary(), LedgerProfile(focus.LEDGER_SCHEMA)
    rss_samples: list[float] = []
    ledger_path = workdir / "ledger.parquet"
    start = stage("ledger")
    with pq.ParquetWriter(ledger_path, focus.LEDGER_SCHEMA, compression="zstd") as writer:

        def write(batch) -> None:  # as ledger_build.build_period does, on a thread of its own
            writer.write_batch(batch)
            summary.add(batch)
            profile.add(batch)
            rss_samples.append(_vm_kb("VmRSS") / 1024)

        consume_in_background(focus.cur_to_focus_batches(source, DAY), write)
    done("ledger", start)
    # As ledger_build.build_period does: the GE suite on a thread beside the witness's pass.
    start = stage("checks")

    def timed(name: str, work, *args):
        began = time.perf_counter()
        try:
            return work(*args)
        finally:
            seconds[name] = time.perf_counter() - began

    with ThreadPoolExecutor(max_workers=1) as suites:
        suite = suites.submit(timed, "conformance", validate_ledger, profile)
        totals = timed("totals", focus.source_cost_totals, source)  # every reconciled cost, in one pass
        conformance = suite.result()
    done("checks", start)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # The I/O floor, not counted above: the columns the ledger reads, by the same reader, then the
    # ledger's rows written again with the same settings (read back from the lake untimed).
    start = stage("io-floor")
    read_start = time.perf_counter()
    for _ in source.batches(focus._layout(source).read):
        pass
    read_s = time.perf_counter() - read_start
    write_s = 0.0
    with pq.ParquetWriter(workdir / "ledger-floor.parquet", focus.LEDGER_SCHEMA, compression="zstd") as writer:
        for batch in pq.ParquetFile(ledger_path).iter_batches(batch_size=focus.BATCH_ROWS):
            write_start = time.perf_counter()
            writer.write_batch(batch)
            write_s += time.perf_counter() - write_start
    done("io-floor", start)

    ledger_costs = summary.costs().get(SOURCE_URI, {})  # cost -> currency -> total
    billed = ledger_costs.get("BilledCost", {})
    expected = totals["BilledCost"].get(DAY.isoformat(), {})
    costs_agree = all(
        {c: round(v, 2) for c, v in ledger_costs.get(cost, {}).items()}
        == {c: round(v, 2) for c, v in by_day.get(DAY.isoformat(), {}).items()}
        for cost, by_day in totals.items()
    )
    figures = {
        "cpu": cpu,
        "cores": usable_cores(),
        "rows": source.num_rows,
        "ledger_rows": summary.rows,
        "columns": len(source.schema),
        "ledger_file_mb": ledger_path.stat().st_size / 2**20,
        "seconds": seconds,
        "io_floor_read_s": read_s,
        "io_floor_write_s": write_s,
        "rss_after_mb": rss_after,
        "rss_while_streaming_mb": max(rss_samples, default=0.0),
        "peak_rss_mb": peak_rss_mb,
        "vm_hwm_mb": _vm_kb("VmHWM") / 1024,
        "billed": {c: str(v) for c, v in billed.items()},
        "expected": {c: str(v) for c, v in expected.items()},
        "reconciles": billed == expected and costs_agree,
        "conforms": conformance.passed,
        "days": sorted(totals["BilledCost"]),
    }
    print(json.dumps(figures), flush=True)


# -- the parent -------------------------------------------------------------------------------------------
def forwarded(args: argparse.Namespace, workdir: Path) -> list[str]:
    return [
        *("--rows", str(args.rows), "--resources", str(args.resources)),
        *("--row-group-rows", str(args.row_group_rows), "--money-type", args.money_type),
        *("--seed", str(args.seed), "--address-space-gb", str(args.address_space_gb)),
        *("--workdir", str(workdir)),
        *(["--one-core"] if args.one_core else []),
    ]


def _child_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
    except (FileNotFoundError, StopIteration, ProcessLookupError):
        return 0.0


def run_guarded(flag: str, args: argparse.Namespace, workdir: Path, env: dict[str, str]) -> tuple[dict | None, str]:
    """Run this script with `flag` in a child; kill it when a stage outlives --stage-timeout or its RSS
    passes --max-child-rss-gb. Returns (its last-line JSON, or None on failure; the reason or "")."""
    command = [sys.executable, str(Path(__file__).resolve()), flag, *forwarded(args, workdir)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    state = {"stage": "start-up", "since": time.monotonic()}
    errors: list[str] = []

    def read_stdout() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            if line.startswith("stage "):
                state["stage"], state["since"] = line.split(" ", 1)[1], time.monotonic()
            elif line.startswith("done "):
                print(f"  {line}", flush=True)

    def read_stderr() -> None:
        assert child.stderr is not None
        errors.extend(child.stderr.readlines())

    readers = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
    for reader in readers:
        reader.start()
    reason = ""
    max_rss = 0.0
    while child.poll() is None:
        rss = _child_rss_mb(child.pid)
        max_rss = max(max_rss, rss)
        elapsed = time.monotonic() - state["since"]
        if rss > args.max_child_rss_gb * 1024:
            reason = f"stage {state['stage']}: RSS {rss:.0f} MB passed the {args.max_child_rss_gb:g} GB guard"
        elif elapsed > args.stage_timeout:
            reason = (
                f"stage {state['stage']}: still running after {elapsed:.0f} s (--stage-timeout {args.stage_timeout})"
            )
        if reason:
            child.kill()  # this child only, by its own handle
            break
        time.sleep(0.2)
    child.wait()
    for reader in readers:
        reader.join(timeout=10)
    if not reason and child.returncode != 0:
        tail = "".join(errors[-15:]).rstrip()
        memory = (
            " (the address-space cap, --address-space-gb, was hit)"
            if "MemoryError" in tail or "bad_alloc" in tail
            else ""
        )
        reason = f"stage {state['stage']}: exit {child.returncode}{memory}\n{tail}"
    if reason:
        return None, f"{reason} [largest RSS seen {max_rss:.0f} MB]"
    try:
        return json.loads(lines[-1]), ""
    except (IndexError, json.JSONDecodeError):
        return None, f"no JSON line from {' '.join(command)}"


def converter_seconds(workdir: Path, timeout: float, cores: str) -> dict:
    from peers import FOCUS_CONVERTER_REQUIREMENTS, PEERS_DIR, peer_python, run_peer

    python = peer_python("focus-converter", FOCUS_CONVERTER_REQUIREMENTS)
    return run_peer(
        python,
        PEERS_DIR / "focus_converter_run.py",
        *("--input", str(workdir / "cur.parquet"), "--workdir", str(workdir / "focus-converter")),
        *("--cores", cores),
        timeout=timeout,
    )


def measured(args: argparse.Namespace, workdir: Path, one_core: bool) -> tuple[dict | None, str]:
    """Our run on the whole machine or pinned to one CPU: the child's figures, or None and why it failed."""
    where = "pinned to one CPU" if one_core else "on every usable core"
    print(
        f"measuring what the cost_ledger asset does, in a child {where}: the ledger streamed batch by batch "
        f"(focus.cur_to_focus_batches: read only the needed columns, validate and normalise on the worker threads; "
        f"write zstd; the exact totals and the FOCUS profile per batch), the independent totals of the four costs "
        f"(focus.source_cost_totals), and beside them the Great Expectations FOCUS suite on the profile "
        f"(validate_ledger)"
        f" (guards: {args.stage_timeout} s per stage, RSS {args.max_child_rss_gb:g} GB, address space "
        f"{args.address_space_gb:g} GB)",
        flush=True,
    )
    env = {**os.environ, **SINGLE_THREAD_ENV} if one_core else dict(os.environ)
    child, failure = run_guarded("--child", argparse.Namespace(**{**vars(args), "one_core": one_core}), workdir, env)
    if child is None:
        print(f"ledger ({where}): FAILED at {args.rows} rows: {failure}")
        return None, failure
    seconds = child["seconds"]
    total_s = sum(seconds[s] for s in STAGES)
    child["total_s"] = total_s
    child["rows_per_s"] = args.rows / total_s
    child["io_floor_rows_per_s"] = args.rows / (child["io_floor_read_s"] + child["io_floor_write_s"])
    cpus = f"CPU {child['cpu']}" if one_core else f"{child['cores']} cores"
    print(
        f"measured on {cpus}: ledger streamed (read, normalise, write, summaries) "
        f"{seconds['ledger']:.2f} s ({child['ledger_file_mb']:.0f} MB zstd), then the checks "
        f"{seconds['checks']:.2f} s: independent totals {seconds['totals']:.2f} s beside the FOCUS suite "
        f"{seconds['conformance']:.2f} s "
        f"({'conforms' if child['conforms'] else 'DOES NOT CONFORM'}); RSS after each stage: "
        + ", ".join(f"{s} {child['rss_after_mb'][s]:.0f} MB" for s in STAGES)
    )
    print(
        f"total {total_s:.2f} s for {args.rows} rows ({child['ledger_rows']} ledger rows): "
        f"{child['rows_per_s']:,.0f} rows/s; peak RSS {child['peak_rss_mb']:.0f} MB; I/O floor (read the needed "
        f"columns {child['io_floor_read_s']:.2f} s + write the ledger {child['io_floor_write_s']:.2f} s): "
        f"{child['io_floor_rows_per_s']:,.0f} rows/s"
    )
    print(
        f"reconciliation: ledger billed {child['billed']} vs independent total {child['expected']} for {DAY}: "
        f"{'equal' if child['reconciles'] else 'DIFFERENT'} (days in the file: {child['days']})"
    )
    return child, ""


def peer_run(args: argparse.Namespace, workdir: Path, cores: str) -> dict | None:
    try:
        peer = converter_seconds(workdir, args.peer_timeout, cores)
    except RuntimeError as exc:
        print(f"focus-converter ({cores} cores): FAILED: {exc}", file=sys.stderr)
        print(f"focus-converter ({cores} cores): failed (see stderr)")
        return None
    print(
        f"focus-converter {peer['version']} (provider {peer.get('provider')}, polars {peer.get('polars')}, "
        f"{'one CPU' if cores == 'one' else 'every core'}) on the same file: {peer['seconds']:.1f} s for "
        f"{peer['rows']} rows (conversion incl. its read and Parquet write; renames before its clock: "
        f"{peer.get('renamed')}), peak RSS {peer.get('peak_rss_mb', 0):.0f} MB"
    )
    return peer


def report(args: argparse.Namespace, workdir: Path) -> int:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--generate", *forwarded(args, workdir)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"generating the CUR file failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    size_mb = (workdir / "cur.parquet").stat().st_size / 2**20
    print(
        f"data: a CUR 2.0 day of {args.rows} line items ({args.resources} resources, {len(data_columns())} columns "
        f"incl. the map columns resource_tags/product/cost_category/discount, costs as {args.money_type}), "
        f"written to {workdir / 'cur.parquet'} ({size_mb:.0f} MB, snappy, row groups of {args.row_group_rows}) "
        f"in {time.perf_counter() - start:.1f} s (not timed)",
        flush=True,
    )
    ours, failure = measured(args, workdir, one_core=False)
    ours_one = None if args.skip_one_core else measured(args, workdir, one_core=True)[0]
    failed = ours is None or (ours_one is None and not args.skip_one_core)
    peer = peer_one = None
    if args.skip_peer:
        print("focus-converter: skipped (--skip-peer)")
    else:
        peer = peer_run(args, workdir, "all")
        peer_one = None if args.skip_one_core else peer_run(args, workdir, "one")
        failed = failed or peer is None or (peer_one is None and not args.skip_one_core)
    vs_peer = peer["seconds"] / ours["total_s"] if peer and ours else None
    vs_peer_one = peer_one["seconds"] / ours_one["total_s"] if peer_one and ours_one else None
    if ours:
        rows_per_s, peak = ours["rows_per_s"], ours["peak_rss_mb"]
        print(
            f"figures on every core: {rows_per_s:,.0f} rows/s [target {MIN_ROWS_PER_S:,}: "
            f"{'ok' if rows_per_s >= MIN_ROWS_PER_S else 'SHORT'}]; peak RSS {peak:.0f} MB "
            f"[limit {MAX_RSS_MB} MB: {'ok' if peak <= MAX_RSS_MB else 'OVER'}]; I/O floor "
            f"{ours['io_floor_rows_per_s']:,.0f} rows/s (the ledger at {rows_per_s / ours['io_floor_rows_per_s']:.0%} "
            f"of it)"
        )
    if vs_peer is not None:
        print(
            f"ours is {vs_peer:.2f}x the speed of focus-converter on every core "
            f"[target {MIN_VS_PEER:g}x: {'ok' if vs_peer >= MIN_VS_PEER else 'SHORT'}]"
            + (f"; {vs_peer_one:.2f}x with both pinned to one CPU" if vs_peer_one is not None else "")
        )

    def rounded(value, digits=0):
        return None if value is None else round(value, digits) if digits else round(value)

    seconds = ours["seconds"] if ours else dict.fromkeys((*STAGES, *CHECKS))
    print(
        json.dumps(
            {
                "rows": args.rows,
                "cores": ours["cores"] if ours else None,
                **{f"{s}_s": rounded(seconds[s], 3) for s in (*STAGES, *CHECKS)},
                "total_s": rounded(ours and ours["total_s"], 3),
                "rows_per_s": rounded(ours and ours["rows_per_s"]),
                "peak_rss_mb": rounded(ours and ours["peak_rss_mb"], 1),
                "io_floor_rows_per_s": rounded(ours and ours["io_floor_rows_per_s"]),
                "rows_per_s_one_core": rounded(ours_one and ours_one["rows_per_s"]),
                "peak_rss_mb_one_core": rounded(ours_one and ours_one["peak_rss_mb"], 1),
                "min_rows_per_s": MIN_ROWS_PER_S,
                "max_rss_mb": MAX_RSS_MB,
                "reconciles": ours["reconciles"] if ours else None,
                "conforms": ours["conforms"] if ours else None,
                "error": failure.splitlines()[0] if failure else None,
                "focus_converter_s": rounded(peer and peer["seconds"], 2),
                "focus_converter_one_core_s": rounded(peer_one and peer_one["seconds"], 2),
                "focus_converter_version": peer["version"] if peer else None,
                "vs_peer": rounded(vs_peer, 2),
                "vs_peer_one_core": rounded(vs_peer_one, 2),
                "min_vs_peer": MIN_VS_PEER,
            }
        )
    )
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--resources", type=int, default=40_000, help="distinct resource ids")
    parser.add_argument("--row-group-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--money-type", choices=("double", "string"), default="double", help="type of the cost and quantity columns"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stage-timeout", type=float, default=1200, help="seconds before a stage is killed")
    parser.add_argument("--max-child-rss-gb", type=float, default=12, help="RSS at which the child is killed")
    parser.add_argument("--address-space-gb", type=float, default=14, help="RLIMIT_AS of the child (0: none)")
    parser.add_argument("--peer-timeout", type=float, default=3600)
    parser.add_argument("--skip-peer", action="store_true", help="do not run focus-converter")
    parser.add_argument("--skip-one-core", action="store_true", help="do not repeat the runs pinned to one CPU")
    parser.add_argument("--workdir", help="where the Parquet files go (default: a temporary directory, removed)")
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--one-core", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rows < 1 or args.resources < 1 or args.row_group_rows < 1:
        parser.error("--rows, --resources and --row-group-rows must be positive")
    if args.generate:
        generate(args)
        return
    if args.child:
        measure(args)
        return
    run_in_workdir(args.workdir, "ledger-benchmark-", lambda workdir: report(args, workdir))


if __name__ == "__main__":
    main()
