"""The FinOps layer through Dagster on the demo world: a week of the ledger allocated (money
conserved every day), the demo's cost anomaly found with its root cause, the budgets burning, the
rightsizing recommendation pushed as a branch of the GitOps repository served by `git daemon` on
loopback (never merged, updated in place when made again), and the FinOps facts the policies read."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import dagster as dg
import pytest

from rai_pipelines.core.lake import Lake
from rai_pipelines.definitions import build_definitions
from rai_pipelines.demo.world import ANOMALY_DAY
from rai_pipelines.gitops.git import remote_head, run_git
from tests.conftest import make_world, settings_for

# 2023-11-05 .. 2023-11-12: the versions switch on the 6th, so the last day's 7-day telemetry window
# (the 6th to the 12th) is all of the version deployed then
DAYS = [ANOMALY_DAY - timedelta(days=6 - i) for i in range(8)]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
FINOPS = ["cost_ledger", "catalogue_prices", "model_costs", "cost_anomalies", "cost_forecast"]


@pytest.fixture(scope="module")
def finops(git_daemon, specs):
    world = make_world(git_daemon.base / "finops-world", specs, days=DAYS)
    url = git_daemon.url(world.gitops_remote)
    settings = settings_for(world)
    settings = type(settings)(**{**vars(settings), "gitops_remote": url})
    defs = build_definitions(settings)
    base_head = remote_head(url, "main")
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def("daily_governance_job")
        runs = {}
        for day in DAYS[:-1]:  # the FinOps chain only, as a backfill of it would run
            keys = [dg.AssetKey(k) for k in FINOPS]
            runs[day] = job.execute_in_process(
                partition_key=day.isoformat(), instance=instance, run_config=QUIET, asset_selection=keys
            )
        runs[DAYS[-1]] = job.execute_in_process(partition_key=DAYS[-1].isoformat(), instance=instance, run_config=QUIET)
        yield {"world": world, "url": url, "defs": defs, "instance": instance, "runs": runs, "base_head": base_head,
               "lake": Lake(str(world.lake_root))}  # fmt: skip


def test_every_day_conserves_money_to_the_cent(finops):
    lake = finops["lake"]
    for day in DAYS:
        assert finops["runs"][day].success
        partition = {"date": day.isoformat()}
        ledger = lake.read_table("cost_ledger", partition).to_pylist()
        lines = lake.read_table("model_costs", partition).to_pylist()
        for currency in {r["BillingCurrency"] for r in ledger}:
            billed = sum(r["EffectiveCost"] for r in ledger if r["BillingCurrency"] == currency)
            allocated = sum(r["EffectiveCost"] for r in lines if r["BillingCurrency"] == currency)
            assert allocated.quantize(Decimal("0.01")) == billed.quantize(Decimal("0.01")), (day, currency)
        categories = {r["x_AllocationCategory"] for r in lines}
        assert {"direct", "shared", "untagged"} <= categories  # the EKS control plane is shared by inferences
        shared = [r for r in lines if r["x_AllocationCategory"] == "shared"]
        assert {r["x_SharedPool"] for r in shared} == {"ml-production-cluster"}
        assert all(json.loads(r["AllocatedMethodDetails"])["Elements"] for r in shared)


def test_the_demo_anomaly_is_found_with_its_root_cause(finops):
    report = finops["lake"].read_json("cost_anomalies", {"date": ANOMALY_DAY.isoformat()}, "report.json")
    transfer = [
        e for e in report["events"] if e["scope_kind"] == "model" and e["scope"]["model"] == "employment-screening-ai"
    ]
    assert len(transfer) == 1 and transfer[0]["status"] == "open" and transfer[0]["start"] == ANOMALY_DAY.isoformat()
    top = transfer[0]["root_causes"][0]
    assert (top["dimension"], top["value"]) == ("service", "AWS Data Transfer")
    # nine hours of data transfer at 9 USD, a service the model never used before
    assert (top["expected"], top["actual"]) == (0, pytest.approx(81.0, abs=0.01))
    assert 25 < transfer[0]["impact"] <= 81.0 + 0.01
    assert report["by_model"]["employment-screening-ai"]["open_count"] == 1
    # the day before, nothing was open on that model
    before = finops["lake"].read_json(
        "cost_anomalies", {"date": (ANOMALY_DAY - timedelta(days=1)).isoformat()}, "report.json"
    )
    assert "employment-screening-ai" not in before["by_model"]


def test_the_facts_carry_budget_burn_anomalies_and_allocated_cost(finops):
    table = finops["lake"].read_table(
        "governance_facts", {"model": "employment-screening-ai", "date": DAYS[-1].isoformat()}
    )
    (row,) = table.to_pylist()
    assert row["cost_anomaly_open_count"] == 1 and row["cost_anomaly_root_cause"].startswith(
        "service=AWS Data Transfer"
    )
    assert row["budget_monthly_usd"] == 400 and row["budget_burn_rate"] > 0
    assert row["cost_per_inference_7d_usd"] > 0 and row["catalogue_price_age_days"] == 0
    forecast = finops["lake"].read_json("cost_forecast", {"date": DAYS[-1].isoformat()}, "report.json")
    status = forecast["budgets"]["model"]["employment-screening-ai"]
    assert row["budget_burn_rate"] == pytest.approx(status["burn_rate"])
    # burn rate as FinOps reads it: spend to date over the budget's elapsed share of the month
    assert status["burn_rate"] == pytest.approx(status["spend_to_date"] / (400 * DAYS[-1].day / 30))


def test_the_rightsizing_recommendation_is_a_branch_never_merged(finops):
    lake, url = finops["lake"], finops["url"]
    report = lake.read_json("finops_recommendations", {"date": DAYS[-1].isoformat()}, "report.json")
    moved = [
        r for r in report["recommendations"] if r["model"] == "employment-screening-ai" and r["kind"] == "instance_type"
    ]
    assert len(moved) == 1
    # commitment coverage: the demo's compute is all on demand; whether a commitment is worth buying is
    # reported (with its evidence or the reason not), never pushed to Git
    coverage = [r for r in report["recommendations"] + report["skipped"] if r["kind"] == "commitment_coverage"]
    assert len(coverage) == 1
    if "proposal" in coverage[0]:
        assert "branch" not in coverage[0]["proposal"] and Decimal(coverage[0]["monthly_savings"]) > 0
    rec = moved[0]
    assert (rec["current"], rec["proposed"]) == ("c5.xlarge", "t3.medium")
    # two replicas a month (730 h) at the catalogue's 0.192 and 0.0456 USD/h
    assert Decimal(rec["monthly_savings"]) == Decimal("213.74")
    branch = rec["proposal"]["branch"]
    assert branch == f"rai-pipelines/recommendation/{rec['id']}" and rec["proposal"]["status"] == "created"
    message = run_git(["log", "-1", "--format=%B", rec["proposal"]["commit"]], cwd=_clone(url, finops, branch))
    assert f"Recommendation-Id: {rec['id']}" in message and "gate " in message
    assert remote_head(url, "main") == finops["base_head"]  # proposed, never merged
    # made again the next time the asset runs: the same branch, updated in place (not a second one)
    again = finops["defs"].resolve_job_def("daily_governance_job").execute_in_process(
        partition_key=DAYS[-1].isoformat(), instance=finops["instance"], run_config=QUIET,
        asset_selection=[dg.AssetKey("finops_recommendations")],
    )  # fmt: skip
    assert again.success
    second = lake.read_json("finops_recommendations", {"date": DAYS[-1].isoformat()}, "report.json")
    (same,) = [r for r in second["recommendations"] if r["id"] == rec["id"]]
    assert same["proposal"]["branch"] == branch and same["proposal"]["status"] in ("unchanged", "updated")
    branches = run_git(["ls-remote", "--heads", url]).split()
    assert branches.count(f"refs/heads/{branch}") == 1
    assert remote_head(url, "main") == finops["base_head"]


def _clone(url: str, finops, branch: str):
    target = finops["world"].home / "inspect" / branch.replace("/", "_")
    if not target.exists():
        run_git(["clone", "--quiet", "--branch", branch, url, str(target)])
    return target
