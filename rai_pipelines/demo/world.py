"""A local world for the demo and the end-to-end tests, built from real data.

- billing: the real anonymised CUR (legacy CSV, gzip, with its manifest) for 1-14 Nov 2023, and a
  CUR 2.0 Parquet export of the ML account whose line items are each deployed model version's
  declared serving resources, hour by hour, tagged with model name, version, team and environment;
- traffic: NannyML's car-loan data (real drift) for credit-scoring-ai and the ACS employment data
  (protected attributes) for employment-screening-ai, replayed as 14 days of inference logs, with
  labels arriving late;
- GitOps: a bare Git repository with a kustomize base and production overlay per model, whose
  history deploys version 1 and then, on day 6, version 2.

Version 2 of each model is worse by what the data and the declarations give, not by assertion:
credit-scoring-ai 2.0.0 serves the same scores from a GPU node (its cost per inference follows
from the bill and the traffic); employment-screening-ai 3.2.0 raises its decision threshold, and
the favourable-outcome rates per group follow from the real scores.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rai_pipelines.core import datasets
from rai_pipelines.core.lake import Lake
from rai_pipelines.core.registry import ModelSpec
from rai_pipelines.costs.sources.export_files import billing_period_folder
from rai_pipelines.demo.catalogue_servers import demo_ec2_rate
from rai_pipelines.demo.telemetry import write_telemetry
from rai_pipelines.gitops.git import run_git
from rai_pipelines.monitoring.snapshots import build_snapshot
from rai_pipelines.settings import PROJECT_ROOT

DATA_DIR = Path(__file__).parent / "data"
START = date(2023, 11, 1)
DAYS = 14
SWITCH_DAY = date(2023, 11, 6)
ANOMALY_DAY = date(2023, 11, 11)  # employment-screening-ai's data transfer out: the demo's cost anomaly
MARKER = ".rai-demo-world"
ML_ACCOUNT = "210987654321"
REPORT_NAME = "rai-cur"


@dataclass(frozen=True)
class World:
    home: Path
    lake_root: Path
    legacy_export_root: Path
    cur2_export_root: Path
    gitops_remote: Path
    days: list[date]
    telemetry_root: Path

    def env(self) -> dict[str, str]:
        return {
            "RAI_HOME": str(self.home),
            "RAI_LAKE_ROOT": str(self.lake_root),
            "RAI_AWS_CUR_EXPORT_ROOT": str(self.legacy_export_root),
            "RAI_AWS_CUR2_EXPORT_ROOT": str(self.cur2_export_root),
            "RAI_GITOPS_REMOTE": str(self.gitops_remote),
            "RAI_TELEMETRY_ROOT": str(self.telemetry_root),
            "RAI_PARTITIONS_START": self.days[0].isoformat(),
            # the policies, registry and rates the demo ran with: the caller's, or this repository's
            **{name: os.environ.get(name, default) for name, default in project_configuration().items()},
        }


def project_configuration() -> dict[str, str]:
    """The demo governs with this repository's own policies, model registry and on-prem rates
    (a deployment reads its own, from its working directory or these variables)."""
    return {
        "RAI_POLICY_DIR": str(PROJECT_ROOT / "policies"),
        "RAI_MODEL_REGISTRY": str(PROJECT_ROOT / "models"),
        "RAI_ONPREM_COSTS": str(PROJECT_ROOT / "costs" / "onprem.yaml"),
        "RAI_FINOPS_CONFIG": str(PROJECT_ROOT / "costs" / "finops.yaml"),
    }


def demo_days(start: date = START, days: int = DAYS) -> list[date]:
    return [start + timedelta(days=i) for i in range(days)]


def deployed_version(spec: ModelSpec, day: date) -> str:
    v1, v2 = list(spec.versions)[:2]
    return v1 if day < SWITCH_DAY else v2


# -- traffic ---------------------------------------------------------------------------------------
def _traffic_source(name: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str, int]:
    """reference, analysis, late labels, id prefix, label delay in days."""
    if name == "credit-scoring-ai":
        folder, prefix, delay = DATA_DIR / "car_loan", "cl", 3
        analysis = pd.read_parquet(folder / "analysis.parquet").sort_values("timestamp", kind="stable")
        target = pd.read_parquet(folder / "analysis_target.parquet").rename(columns={"repaid": "label"})
        reference = pd.read_parquet(folder / "reference.parquet").rename(columns={"repaid": "label"})
    elif name == "employment-screening-ai":
        folder, prefix, delay = DATA_DIR / "acs_employment_ma", "acs", 7
        # The file is ordered by id, which groups people by household and puts group quarters
        # (RELP 16, 17) at the end of each year: contiguous slices would show that ordering as drift.
        # A day's traffic is a random draw of its year's people instead (fixed seed).
        analysis = (
            pd.read_parquet(folder / "analysis.parquet")
            .sample(frac=1.0, random_state=0)
            .sort_values("year", kind="stable")
        )
        target = pd.read_parquet(folder / "analysis_target.parquet").rename(columns={"employed": "label"})
        reference = pd.read_parquet(folder / "reference.parquet").rename(columns={"employed": "label"})
    else:
        raise ValueError(f"the demo has no traffic for model {name}")
    for frame in (analysis, reference):
        for col in frame.columns:
            if isinstance(frame[col].dtype, pd.CategoricalDtype):
                frame[col] = frame[col].astype(str)
    return reference, analysis, target, prefix, delay


def _log_frame(spec: ModelSpec, frame: pd.DataFrame, prefix: str, day: date, version: str) -> pd.DataFrame:
    threshold = spec.version(version).decision_threshold
    n = len(frame)
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    log = pd.DataFrame(
        {
            "request_id": [f"{prefix}-{i}" for i in frame["id"]],
            "timestamp": [start + timedelta(seconds=86400 * i / n) for i in range(n)],
            "model_version": version,
        }
    )
    for col in list(spec.features) + list(spec.protected_attributes):
        log[col] = frame[col].to_numpy()
    log[spec.score_column] = frame[spec.score_column].to_numpy(dtype=np.float64)
    log[spec.decision_column] = (log[spec.score_column] >= threshold).astype(np.int64)
    return log


def write_traffic(lake: Lake, spec: ModelSpec, days: list[date], key: bytes) -> None:
    reference, analysis, target, prefix, delay = _traffic_source(spec.name)
    v1 = list(spec.versions)[0]
    ref_log = pa.Table.from_pandas(
        _log_frame(spec, reference, prefix, days[0] - timedelta(days=30), v1), preserve_index=False
    )
    ref_labels = pa.table(
        {
            "request_id": [f"{prefix}-{i}" for i in reference["id"]],
            "label": reference["label"].astype("int64").to_numpy(),
        }
    )
    lake.write_table(
        "reference",
        {"model": spec.name},
        build_snapshot(spec, ref_log, ref_labels, key, f"demo reference of {spec.name}"),
    )
    labels_by_arrival: dict[date, list[pd.DataFrame]] = {}
    # The traffic of a day is fixed by the 14-day demo schedule, whichever days are built.
    schedule = dict(zip(demo_days(), np.array_split(np.arange(len(analysis)), DAYS), strict=False))
    for day in days:
        if day not in schedule:
            raise ValueError(f"{day} is outside the demo schedule {START}..{demo_days()[-1]}")
        chunk = analysis.iloc[schedule[day]]
        log = _log_frame(spec, chunk, prefix, day, deployed_version(spec, day))
        lake.write_table(
            datasets.INFERENCE_LOGS,
            {"model": spec.name, "date": day.isoformat()},
            pa.Table.from_pandas(log, preserve_index=False),
        )
        arrival = day + timedelta(days=delay)
        if arrival <= days[-1]:
            arrived = target[target["id"].isin(chunk["id"])]
            labels_by_arrival.setdefault(arrival, []).append(
                pd.DataFrame(
                    {"request_id": [f"{prefix}-{i}" for i in arrived["id"]], "label": arrived["label"].astype("int64")}
                )
            )
    for arrival, frames in labels_by_arrival.items():
        lake.write_table(
            "labels",
            {"model": spec.name, "date": arrival.isoformat()},
            pa.Table.from_pandas(pd.concat(frames), preserve_index=False),
        )


# -- billing ---------------------------------------------------------------------------------------
def write_legacy_cur(root: Path) -> Path:
    """The real CUR sample as AWS delivers a legacy report: gzip CSV under an assembly folder, and
    the billing period's manifest naming it."""
    period = billing_period_folder(START)
    assembly = "2d1c5e4f-7a8b-4c9d-9e0f-1a2b3c4d5e6f"
    key = f"cur/{REPORT_NAME}/{period}/{assembly}/{REPORT_NAME}-1.csv.gz"
    target = root / key
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DATA_DIR / "aws_cur" / "cur_legacy_anonymized_2023-11.csv.gz", target)
    with gzip.open(target, "rt") as f:
        columns = f.readline().strip().split(",")
    manifest = {
        "assemblyId": assembly,
        "account": "123412340534",
        "columns": [{"category": c.split("/")[0], "name": c.split("/")[-1]} for c in columns],
        "charset": "UTF-8",
        "compression": "GZIP",
        "contentType": "text/csv",
        "reportId": hashlib.sha256(REPORT_NAME.encode()).hexdigest(),
        "reportName": REPORT_NAME,
        "billingPeriod": {"start": f"{START:%Y%m%d}T000000.000Z", "end": f"{period[9:]}T000000.000Z"},
        "bucket": "rai-demo-billing",
        "reportKeys": [key],
    }
    manifest_path = root / "cur" / REPORT_NAME / period / f"{REPORT_NAME}-Manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return target


CUR2_STRING_COLUMNS = (
    "identity_line_item_id",
    "bill_payer_account_id",
    "bill_billing_entity",
    "bill_invoicing_entity",
    "line_item_usage_account_id",
    "line_item_line_item_type",
    "line_item_product_code",
    "line_item_usage_type",
    "line_item_operation",
    "line_item_availability_zone",
    "line_item_resource_id",
    "line_item_currency_code",
    "line_item_line_item_description",
    "product_product_name",
    "product_region_code",
    "product_location",
    "pricing_term",
    "pricing_unit",
)


def write_cur2(root: Path, specs: list[ModelSpec], days: list[date]) -> Path:
    """The ML account's CUR 2.0 export: every replica of every deployed version, hour by hour, at
    its declared on-demand rate, plus the untagged EKS control plane."""
    rows = []
    period_start = datetime(START.year, START.month, 1, tzinfo=timezone.utc)
    period_end = datetime(START.year + (START.month == 12), START.month % 12 + 1, 1, tzinfo=timezone.utc)

    def add(
        hour: datetime,
        product: str,
        product_name: str,
        usage_type: str,
        resource: str,
        rate: float,
        description: str,
        tags: dict[str, str],
    ):
        rows.append(
            {
                "identity_line_item_id": hashlib.sha1(f"{resource}|{hour.isoformat()}".encode()).hexdigest(),
                "bill_payer_account_id": ML_ACCOUNT,
                "bill_billing_entity": "AWS",
                "bill_invoicing_entity": "Amazon Web Services EMEA SARL",
                "bill_billing_period_start_date": period_start,
                "bill_billing_period_end_date": period_end,
                "line_item_usage_account_id": ML_ACCOUNT,
                "line_item_line_item_type": "Usage",
                "line_item_usage_start_date": hour,
                "line_item_usage_end_date": hour + timedelta(hours=1),
                "line_item_product_code": product,
                "line_item_usage_type": usage_type,
                "line_item_operation": "RunInstances",
                "line_item_availability_zone": "eu-west-1a",
                "line_item_resource_id": resource,
                "line_item_usage_amount": 1.0,
                "line_item_currency_code": "USD",
                "line_item_unblended_rate": rate,
                "line_item_unblended_cost": rate,
                "line_item_line_item_description": description,
                "product_product_name": product_name,
                "product_region_code": "eu-west-1",
                "product_location": "EU (Ireland)",
                "pricing_public_on_demand_cost": rate,
                "pricing_public_on_demand_rate": rate,
                "pricing_term": "OnDemand",
                "pricing_unit": "Hrs",
                "resource_tags": list(tags.items()),
            }
        )

    for day in days:
        for h in range(24):
            hour = datetime(day.year, day.month, day.day, h, tzinfo=timezone.utc)
            add(
                hour,
                "AmazonEKS",
                "Amazon Elastic Kubernetes Service",
                "EUW1-AmazonEKS-Hours:perCluster",
                "arn:aws:eks:eu-west-1:210987654321:cluster/ml-production",
                0.10,
                "$0.10 per hour per EKS cluster",
                {},
            )
            for spec in specs:
                version = spec.version(deployed_version(spec, day))
                serving = version.serving
                rate = demo_ec2_rate(serving.instance_type)  # the demo catalogue's price of the instance
                for replica in range(serving.replicas):
                    instance = "i-" + hashlib.sha1(f"{spec.name}|{version.version}|{replica}".encode()).hexdigest()[:17]
                    add(
                        hour,
                        "AmazonEC2",
                        "Amazon Elastic Compute Cloud",
                        f"EU-BoxUsage:{serving.instance_type}",
                        instance,
                        rate,
                        f"${rate} per On Demand Linux {serving.instance_type} Instance Hour",
                        {
                            "user_model_name": spec.name,
                            "user_model_version": version.version,
                            "user_team": spec.team,
                            "user_environment": "production",
                        },
                    )
    # The demo's cost anomaly: on ANOMALY_DAY a batch job of employment-screening-ai copies its
    # training data out of the region for nine hours, a service that model never used before.
    screening = [spec for spec in specs if spec.name == "employment-screening-ai"]
    if screening and ANOMALY_DAY in days:
        spec = screening[0]
        version = deployed_version(spec, ANOMALY_DAY)
        for h in range(9, 18):
            add(
                datetime(ANOMALY_DAY.year, ANOMALY_DAY.month, ANOMALY_DAY.day, h, tzinfo=timezone.utc),
                "AWSDataTransfer",
                "AWS Data Transfer",
                "EU-DataTransfer-Out-Bytes",
                f"arn:aws:s3:::ml-training-exports-{spec.name}",
                9.0,
                "$0.09 per GB - first 10 TB / month data transfer out beyond the global free tier (100 GB)",
                {
                    "user_model_name": spec.name,
                    "user_model_version": version,
                    "user_team": spec.team,
                    "user_environment": "production",
                },
            )
    fields = [(c, pa.string()) for c in CUR2_STRING_COLUMNS]
    fields += [
        (c, pa.timestamp("ms", tz="UTC"))
        for c in (
            "bill_billing_period_start_date",
            "bill_billing_period_end_date",
            "line_item_usage_start_date",
            "line_item_usage_end_date",
        )
    ]
    fields += [
        (c, pa.float64())
        for c in (
            "line_item_usage_amount",
            "line_item_unblended_rate",
            "line_item_unblended_cost",
            "pricing_public_on_demand_cost",
            "pricing_public_on_demand_rate",
        )
    ]
    fields += [("resource_tags", pa.map_(pa.string(), pa.string()))]
    table = pa.Table.from_pylist(rows, schema=pa.schema(fields))
    target = (
        root / "cur" / REPORT_NAME / "data" / f"BILLING_PERIOD={START:%Y-%m}" / f"{REPORT_NAME}-00001.snappy.parquet"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, target, compression="snappy")
    manifest = (
        root / "cur" / REPORT_NAME / "metadata" / f"BILLING_PERIOD={START:%Y-%m}" / f"{REPORT_NAME}-Manifest.json"
    )
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(
        json.dumps(
            {
                "executionId": "demo-0001",
                "exportArn": f"arn:aws:bcm-data-exports:us-east-1:123456789012:export/{REPORT_NAME}",
                "dataFiles": [f"s3://demo-billing/{target.relative_to(root).as_posix()}"],
                "billingPeriod": {"start": period_start.isoformat(), "end": period_end.isoformat()},
            },
            indent=2,
        )
    )
    return target


# -- GitOps ------------------------------------------------------------------------------------------
def _image_repository(spec: ModelSpec) -> str:
    return next(iter(spec.versions.values())).image.rpartition(":")[0]


def _base_files(spec: ModelSpec) -> dict[str, str]:
    governed = '\n    rai-pipelines.io/governed: "true"' if spec.protected_attributes else ""
    return {
        "kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources:\n  - deployment.yaml\n  - service.yaml\n",
        "deployment.yaml": f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {spec.name}
  labels:
    app: {spec.name}
    team: {spec.team}{governed}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {spec.name}
  template:
    metadata:
      labels:
        app: {spec.name}
        model-version: unset  # set by the overlay
    spec:
      containers:
        - name: model
          image: {_image_repository(spec)}
          ports:
            - containerPort: 8080
          readinessProbe:
            httpGet: {{path: /healthz, port: 8080}}
""",
        "service.yaml": f"""apiVersion: v1
kind: Service
metadata:
  name: {spec.name}
spec:
  selector:
    app: {spec.name}
  ports:
    - port: 80
      targetPort: 8080
""",
    }


def overlay_files(spec: ModelSpec, version: str) -> dict[str, str]:
    declared = spec.version(version)
    tag = declared.image.rpartition(":")[2]
    return {
        "kustomization.yaml": f"""# Production overlay of {spec.name}. Flux image automation updates newTag
# (the $imagepolicy marker); rai-pipelines pins it on a policy violation.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: ml-production
resources:
  - ../../base
images:
  - name: {_image_repository(spec)}
    newTag: "{tag}" # {{"$imagepolicy": "flux-system:{spec.name}:tag"}}
patches:
  - path: model-version.yaml
""",
        "model-version.yaml": f"""# The deployed model version and its serving resources.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {spec.name}
spec:
  replicas: {declared.serving.replicas}
  template:
    metadata:
      labels:
        model-version: "{version}"
    spec:
      nodeSelector:
        node.kubernetes.io/instance-type: {declared.serving.instance_type}
""",
    }


def _argo_application(spec: ModelSpec) -> str:
    return f"""apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {spec.name}
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://git.example.com/platform/gitops.git
    targetRevision: main
    path: apps/{spec.name}/overlays/production
  destination:
    server: https://kubernetes.default.svc
    namespace: ml-production
  syncPolicy:
    automated: {{prune: true, selfHeal: true}}
"""


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _commit(work: Path, message: str, when: datetime) -> None:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S+0000")
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_DATE": stamp,
        "GIT_AUTHOR_NAME": "ML Platform",
        "GIT_AUTHOR_EMAIL": "ml-platform@example.com",
        "GIT_COMMITTER_NAME": "ML Platform",
        "GIT_COMMITTER_EMAIL": "ml-platform@example.com",
    }
    import subprocess

    subprocess.run(["git", "add", "-A"], cwd=work, check=True, env=env)
    subprocess.run(["git", "commit", "--quiet", "-m", message], cwd=work, check=True, env=env)


def write_gitops_repo(remote: Path, specs: list[ModelSpec]) -> None:
    run_git(["init", "--quiet", "--bare", "--initial-branch=main", str(remote)])
    with tempfile.TemporaryDirectory(prefix="gitops-seed-") as tmp:
        work = Path(tmp) / "work"
        run_git(["clone", "--quiet", str(remote), str(work)])
        run_git(["checkout", "--quiet", "-b", "main"], cwd=work)
        _write(work, "README.md", "# GitOps repository\n\nArgo CD syncs `apps/*/overlays/production`.\n")
        for spec in specs:
            for name, text in _base_files(spec).items():
                _write(work, f"apps/{spec.name}/base/{name}", text)
            for name, text in overlay_files(spec, list(spec.versions)[0]).items():
                _write(work, f"apps/{spec.name}/overlays/production/{name}", text)
            _write(work, f"clusters/production/{spec.name}.yaml", _argo_application(spec))
        _commit(
            work,
            "Deploy " + ", ".join(f"{s.name} {list(s.versions)[0]}" for s in specs),
            datetime(2023, 10, 16, 9, tzinfo=timezone.utc),
        )
        for i, spec in enumerate(specs):
            v2 = list(spec.versions)[1]
            for name, text in overlay_files(spec, v2).items():
                _write(work, f"apps/{spec.name}/overlays/production/{name}", text)
            _commit(
                work,
                f"Deploy {spec.name} {v2}",
                datetime(SWITCH_DAY.year, SWITCH_DAY.month, SWITCH_DAY.day, 0, i, tzinfo=timezone.utc)
                - timedelta(hours=1),
            )
        run_git(["push", "--quiet", "origin", "main"], cwd=work)


# -- the whole world ---------------------------------------------------------------------------------
def build_world(home: Path, specs: list[ModelSpec], key: Callable[[], bytes], days: list[date] | None = None) -> World:
    """Create (or re-create) the demo world under `home`. Refuses to wipe a folder it did not make.
    `key` returns the pseudonymisation key; it is called once the folder exists, as the embedded
    default keeps its key file inside the world."""
    home = home.resolve()
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).exists():
            raise FileExistsError(f"{home} exists and is not a demo world; choose an empty folder")
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / MARKER).write_text("created by rai-pipelines demo; safe to delete\n")
    days = days or demo_days()
    world = World(
        home,
        home / "lake",
        home / "exports" / "aws-cur-legacy",
        home / "exports" / "aws-cur2",
        home / "gitops.git",
        days,
        home / "telemetry",
    )
    lake = Lake(str(world.lake_root))
    secret = key()
    for spec in specs:
        write_traffic(lake, spec, days, secret)
    write_legacy_cur(world.legacy_export_root)
    write_cur2(world.cur2_export_root, specs, days)
    write_gitops_repo(world.gitops_remote, specs)
    counts = {(s.name, d): _inferences(lake, s, d) for s in specs for d in days}
    write_telemetry(world.telemetry_root, specs, days, deployed_version, lambda s, d: counts[(s.name, d)])
    return world


def _inferences(lake: Lake, spec: ModelSpec, day: date) -> int:
    return lake.read_table(
        datasets.INFERENCE_LOGS, {"model": spec.name, "date": day.isoformat()}, ["model_version"]
    ).num_rows
