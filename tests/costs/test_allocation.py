"""The ledger's cost allocated to model versions: direct, shared (split by the rule declared in Git),
idle and untagged lines in FOCUS 1.3's allocation columns, money conserved to the cent per currency,
ratios summing to 1 per origin charge, and cost per inference (daily, rolling 7-day, per token)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.lake import Lake
from rai_pipelines.costs.allocation import (
    MODEL_COST_SUMMARY,
    MODEL_COSTS,
    USAGE_SCHEMA,
    ConservationError,
    allocate_day,
    allocate_days,
    totals_table,
    validate_usage,
    write_allocation,
)
from rai_pipelines.costs.allocation_rules import element_pairs, load_rules, parse_rules, split_shares
from rai_pipelines.costs.ledger_schema import LEDGER_SCHEMA, MONEY

DAY = date(2025, 3, 10)
GPU = "arn:aws:eks:us-east-1:123456789012:nodegroup/ml-shared/gpu-a100/{}"
CREDIT, EMPLOY, LLM = "credit-scoring-ai", "employment-screening-ai", "support-llm"

RULES = """
shared_pools:
  - name: gpu-node-pool
    match: {ResourceId: "arn:aws:eks:*:nodegroup/ml-shared/gpu-*"}
    split: gpu_hours
    capacity: 100
  - name: ml-cluster
    match: {ServiceName: Amazon Elastic Kubernetes Service, tags: {"user:Cluster": ml-shared}}
    split: requests
  - name: llm-gateway
    match: {x_Workload: llm-gateway}
    split: inferences
    among: [support-llm]
"""


def ledger_table(rows: list[dict]) -> pa.Table:
    """Ledger rows in LEDGER_SCHEMA: unspecified columns null, USD usage with its own row hash, and
    BilledCost equal to EffectiveCost unless given."""
    filled = []
    for number, row in enumerate(rows, start=1):
        row = {"BillingCurrency": "USD", "ChargeCategory": "Usage", "x_SourceRowHash": f"hash-{number}", **row}
        row["BilledCost"] = row.get("BilledCost", row["EffectiveCost"])
        for money in ("EffectiveCost", "BilledCost"):
            row[money] = None if row[money] is None else Decimal(row[money])
        row.setdefault("x_SourceRowNumber", number)
        filled.append({name: row.get(name) for name in LEDGER_SCHEMA.names})
        assert set(row) <= set(LEDGER_SCHEMA.names), set(row) - set(LEDGER_SCHEMA.names)
    return pa.Table.from_pylist(filled, schema=LEDGER_SCHEMA)


def write_ledger(lake: Lake, day: date, rows: list[dict]) -> None:
    lake.write_table("cost_ledger", {"date": day.isoformat()}, ledger_table(rows))


def usage(rows: list[dict]) -> pa.Table:
    if not rows:
        return USAGE_SCHEMA.empty_table()
    full = [{"date": DAY, "inferences": None, "cpu_request_core_hours": None, "gpu_hours": None, **row} for row in rows]
    return pa.Table.from_pylist(full).select(
        [n for n in ("date", "model_name", "model_version", "inferences", "cpu_request_core_hours", "gpu_hours",
                     "input_tokens", "output_tokens") if n in full[0]]
    )  # fmt: skip


def direct(model: str, version: str, cost: str, **extra) -> dict:
    return {"x_ModelName": model, "x_ModelVersion": version, "EffectiveCost": cost, "ServiceName": "Amazon SageMaker",
            **extra}  # fmt: skip


def gpu(node: int, cost: str, **extra) -> dict:
    return {"ResourceId": GPU.format(node), "EffectiveCost": cost, "ServiceName": "Amazon Elastic Compute Cloud",
            **extra}  # fmt: skip


def lines_of(table: pa.Table, category: str) -> list[dict]:
    return table.filter(pc.equal(table["x_AllocationCategory"], category)).to_pylist()


def by_version(lines: list[dict]) -> dict:
    out: dict = defaultdict(Decimal)
    for line in lines:
        out[(line["x_ModelName"], line["x_ModelVersion"])] += line["EffectiveCost"]
    return dict(out)


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


@pytest.fixture
def rules():
    return parse_rules(RULES, "test rules")


def test_direct_shared_idle_untagged_lines_conserve_the_ledger(lake, rules):
    write_ledger(
        lake,
        DAY,
        [
            direct(CREDIT, "1.0", "10.00", BilledCost="0"),  # covered by a savings plan: billed 0
            direct(EMPLOY, "2.0", "5.005"),
            gpu(1, "96.00"),
            gpu(2, "4.00"),
            {"ServiceName": "Amazon Simple Storage Service", "EffectiveCost": "7.77", "ResourceId": "arn:aws:s3:::x"},
        ],
    )
    day_usage = usage(
        [
            {"model_name": CREDIT, "model_version": "1.0", "gpu_hours": 30.0, "inferences": 1000},
            {"model_name": EMPLOY, "model_version": "2.0", "gpu_hours": 50.0, "inferences": 500},
        ]
    )
    result = allocate_day(lake, DAY, rules, day_usage)
    costs = result.costs
    assert by_version(lines_of(costs, "direct")) == {(CREDIT, "1.0"): Decimal("10"), (EMPLOY, "2.0"): Decimal("5.005")}
    # 100 GPU-hours offered, 30 + 50 used: 30%, 50% and 20% idle of the pool's $100
    assert by_version(lines_of(costs, "shared")) == {(CREDIT, "1.0"): Decimal("30"), (EMPLOY, "2.0"): Decimal("50")}
    [idle] = lines_of(costs, "idle")
    assert idle["EffectiveCost"] == Decimal("20") and idle["x_SharedPool"] == "gpu-node-pool"
    assert idle["x_ModelName"] is None and idle["AllocatedResourceId"] is None and idle["AllocatedResourceName"] is None
    [untagged] = lines_of(costs, "untagged")
    assert untagged["EffectiveCost"] == Decimal("7.77") and untagged["AllocatedMethodId"] == "untagged"

    # FOCUS 1.3's allocation columns
    [credit_shared] = [line for line in lines_of(costs, "shared") if line["x_ModelName"] == CREDIT]
    assert credit_shared["AllocatedMethodId"] == "shared/gpu_hours"
    assert credit_shared["AllocatedResourceId"] == credit_shared["AllocatedResourceName"] == f"{CREDIT}/1.0"
    assert credit_shared["x_OriginCharges"] == 2
    details = json.loads(credit_shared["AllocatedMethodDetails"])
    assert details["Elements"] == [{"AllocatedRatio": 0.3, "UsageUnit": "GPU-Hours", "UsageQuantity": 30.0}]
    assert details["x_SharedPool"] == "gpu-node-pool"
    assert json.loads(idle["AllocatedMethodDetails"])["Elements"] == [
        {"AllocatedRatio": 0.2, "UsageUnit": "GPU-Hours", "UsageQuantity": 20.0}
    ]
    assert json.loads(credit_shared["AllocatedTags"]) == {
        "rai/model_name": CREDIT, "rai/model_version": "1.0", "rai/shared_pool": "gpu-node-pool"
    }  # fmt: skip

    [totals] = result.totals.to_pylist()
    assert totals["ledger_effective_cost"] == Decimal("122.775")
    assert (totals["direct_cost"], totals["shared_cost"], totals["idle_cost"], totals["untagged_cost"]) == (
        Decimal("15.005"), Decimal("80"), Decimal("20"), Decimal("7.77"),
    )  # fmt: skip
    assert totals["allocated_effective_cost"] == totals["ledger_effective_cost"]
    assert totals["allocated_billed_cost"] == totals["ledger_billed_cost"] == Decimal("112.775")
    assert totals["conserved"] and totals["ledger_rows"] == result.ledger_rows == 5
    summary = {(r["model_name"], r["model_version"]): r for r in result.summary.to_pylist()}
    assert summary[(CREDIT, "1.0")]["direct_cost"] == Decimal("10")
    assert summary[(CREDIT, "1.0")]["total_cost"] == Decimal("40")
    assert summary[(CREDIT, "1.0")]["cost_per_inference"] == pytest.approx(0.04)
    assert summary[(CREDIT, "1.0")]["cost_per_1000_inferences"] == pytest.approx(40.0)
    assert summary[(EMPLOY, "2.0")]["cost_per_inference"] == pytest.approx(55.005 / 500)


def test_each_origin_charges_ratios_sum_to_one_and_its_cost_is_conserved(lake, rules):
    """One line per origin charge: three versions use 30% of the GPU pool each (10% idle) and a third
    each of the cluster's CPU requests (the largest share takes the rounding)."""
    rows = [gpu(n, cost) for n, cost in enumerate(["1.00", "0.01", "100.000000000000000001", "-3.33"])]
    rows += [
        {"ServiceName": "Amazon Elastic Kubernetes Service", "Tags": '{"cluster": "ml-shared"}',
         "EffectiveCost": "9.99"},
        direct(CREDIT, "1.0", "2.50"),
        {"EffectiveCost": "0.07"},
    ]  # fmt: skip
    write_ledger(lake, DAY, rows)
    day_usage = usage(
        [{"model_name": m, "model_version": "1", "gpu_hours": 30.0, "cpu_request_core_hours": 1.0}
         for m in (CREDIT, EMPLOY, LLM)]
    )  # fmt: skip
    result = allocate_day(lake, DAY, rules, day_usage, by_charge=True)
    ratios, amounts = defaultdict(Decimal), defaultdict(Decimal)
    for line in result.costs.to_pylist():
        details = json.loads(line["AllocatedMethodDetails"], parse_float=Decimal)
        ratios[line["x_SourceRowHash"]] += sum(Decimal(e["AllocatedRatio"]) for e in details["Elements"])
        amounts[line["x_SourceRowHash"]] += line["EffectiveCost"]
    assert set(ratios) == {f"hash-{n}" for n in range(1, len(rows) + 1)}
    assert all(total == 1 for total in ratios.values()), ratios
    assert amounts == {f"hash-{n}": Decimal(row["EffectiveCost"]) for n, row in enumerate(rows, start=1)}
    third = [line for line in lines_of(result.costs, "shared") if line["x_SourceRowHash"] == "hash-1"]
    assert sorted(line["EffectiveCost"] for line in third) == [Decimal("0.3"), Decimal("0.3"), Decimal("0.3")]
    assert [
        line["EffectiveCost"] for line in lines_of(result.costs, "idle") if line["x_SourceRowHash"] == "hash-1"
    ] == [Decimal("0.1")]
    cluster = [
        line["EffectiveCost"] for line in lines_of(result.costs, "shared") if line["x_SourceRowHash"] == "hash-5"
    ]
    assert sorted(cluster) == [Decimal("3.33"), Decimal("3.33"), Decimal("3.33")]
    [totals] = result.totals.to_pylist()
    assert totals["allocated_effective_cost"] == totals["ledger_effective_cost"] == sum(amounts.values())


@pytest.mark.parametrize(
    ("split", "expected"),
    [
        # A: 10 core-hours, 2 GPU-hours, 100 inferences; B: 20, 1, 800; $90 to split
        ("requests", {"a": "30", "b": "60"}),
        ("gpu_hours", {"a": "60", "b": "30"}),
        ("inferences", {"a": "10", "b": "80"}),
        ("even", {"a": "45", "b": "45"}),
    ],
)
def test_each_split_rule_by_hand(lake, split, expected):
    rules = parse_rules(f"shared_pools: [{{name: pool, match: {{x_Workload: shared}}, split: {split}}}]", "rules")
    write_ledger(
        lake, DAY, [{"x_Workload": "shared", "EffectiveCost": "50"}, {"x_Workload": "shared", "EffectiveCost": "40"}]
    )
    day_usage = usage(
        [
            {"model_name": "a", "model_version": "1", "cpu_request_core_hours": 10.0, "gpu_hours": 2.0,
             "inferences": 100},
            {"model_name": "b", "model_version": "1", "cpu_request_core_hours": 20.0, "gpu_hours": 1.0,
             "inferences": 800},
        ]
    )  # fmt: skip
    result = allocate_day(lake, DAY, rules, day_usage)
    assert by_version(lines_of(result.costs, "shared")) == {(m, "1"): Decimal(v) for m, v in expected.items()}
    assert not lines_of(result.costs, "idle")


def _pool_day(lake, capacity: str, rows: list[dict], among: str = ""):
    rules = parse_rules(
        f"shared_pools: [{{name: gpus, match: {{x_Workload: gpu}}, split: gpu_hours {capacity} {among}}}]", "rules"
    )
    write_ledger(lake, DAY, [{"x_Workload": "gpu", "EffectiveCost": "120"}])
    return allocate_day(lake, DAY, rules, usage(rows))


def test_usage_above_capacity_leaves_nothing_idle_and_says_so(lake):
    rows = [{"model_name": "a", "model_version": "1", "gpu_hours": 45.0},
            {"model_name": "b", "model_version": "1", "gpu_hours": 15.0}]  # fmt: skip
    result = _pool_day(lake, ", capacity: 40", rows)
    assert by_version(lines_of(result.costs, "shared")) == {("a", "1"): Decimal(90), ("b", "1"): Decimal(30)}
    assert not lines_of(result.costs, "idle")
    assert "above the declared capacity" in lines_of(result.costs, "shared")[0]["x_AllocationNote"]


@pytest.mark.parametrize(
    ("capacity", "rows", "among", "reason"),
    [
        (", capacity: 40", [{"model_name": "a", "model_version": "1", "gpu_hours": 0.0}], "", "no GPU-Hours used"),
        ("", [{"model_name": "a", "model_version": "1", "gpu_hours": 0.0}], "", "no GPU-Hours used"),
        ("", [{"model_name": "a", "model_version": "1", "gpu_hours": 3.0}, {"model_name": "b", "model_version": "1"}],
         "", "gpu_hours unknown on 2025-03-10 for b/1"),
        ("", [{"model_name": "a", "model_version": "1", "gpu_hours": 3.0}], ", among: [c]", "no version among c"),
        ("", [], "", "no version of any model reported usage"),
    ],
)  # fmt: skip
def test_nothing_to_split_by_makes_the_pool_idle_never_a_division_by_zero(lake, capacity, rows, among, reason):
    result = _pool_day(lake, capacity, rows, among)
    assert not lines_of(result.costs, "shared")
    [idle] = lines_of(result.costs, "idle")
    assert idle["EffectiveCost"] == Decimal(120) and reason in idle["x_AllocationNote"]
    assert json.loads(idle["AllocatedMethodDetails"])["Elements"] == [{"AllocatedRatio": 1}]
    assert result.totals.to_pylist()[0]["conserved"]


def test_untagged_cost_is_kept_and_direct_tags_come_before_pools(lake, rules):
    write_ledger(
        lake,
        DAY,
        [
            {"x_ModelName": CREDIT, "EffectiveCost": "1.25"},  # a model without its version: not attributable
            {"x_ModelName": CREDIT, "x_ModelVersion": "", "EffectiveCost": "0.75"},
            {"EffectiveCost": "2.00", "ServiceName": None, "RegionId": None},
            {"EffectiveCost": "-0.50", "ChargeCategory": "Credit", "ServiceName": "AWS Support"},
            gpu(1, "8.00", x_ModelName=EMPLOY, x_ModelVersion="2.0"),  # tagged: direct, even inside a pool
        ],
    )
    result = allocate_day(lake, DAY, rules, None)
    untagged = lines_of(result.costs, "untagged")
    assert sum(line["EffectiveCost"] for line in untagged) == Decimal("3.50")
    assert sum(line["x_OriginCharges"] for line in untagged) == 4
    assert all(line["x_ModelName"] is None for line in untagged)
    assert by_version(lines_of(result.costs, "direct")) == {(EMPLOY, "2.0"): Decimal(8)}
    assert result.totals.to_pylist()[0]["untagged_cost"] == Decimal("3.50")


def test_unknown_inference_counts_give_an_unknown_cost_per_inference(lake, rules):
    write_ledger(lake, DAY, [direct(CREDIT, "1.0", "12"), direct(EMPLOY, "2.0", "5"), direct(LLM, "3.0", "1")])
    day_usage = usage(
        [
            {"model_name": CREDIT, "model_version": "1.0", "inferences": None},
            {"model_name": EMPLOY, "model_version": "2.0", "inferences": 0},
        ]
    )
    summary = {r["model_name"]: r for r in allocate_day(lake, DAY, rules, day_usage).summary.to_pylist()}
    for model, note in ((CREDIT, "inference count unknown"), (EMPLOY, "no inferences"), (LLM, "no usage reported")):
        row = summary[model]
        assert row["cost_per_inference"] is None and row["cost_per_1000_inferences"] is None, row
        assert row["rolling_7d_cost_per_inference"] is None and note in row["note"]
    assert summary[CREDIT]["total_cost"] == Decimal(12) and summary[CREDIT]["inferences"] is None


def test_two_currencies_are_kept_apart(lake, rules):
    write_ledger(
        lake,
        DAY,
        [
            direct(CREDIT, "1.0", "10", BillingCurrency="USD"),
            direct(CREDIT, "1.0", "7", BillingCurrency="EUR"),
            gpu(1, "50", BillingCurrency="EUR"),
            gpu(2, "100", BillingCurrency="USD"),
            {"EffectiveCost": "3", "BillingCurrency": "EUR"},
        ],
    )
    day_usage = usage([{"model_name": CREDIT, "model_version": "1.0", "gpu_hours": 50.0, "inferences": 10}])
    result = allocate_day(lake, DAY, rules, day_usage)
    totals = {r["BillingCurrency"]: r for r in result.totals.to_pylist()}
    assert totals["EUR"]["ledger_effective_cost"] == Decimal(60) == totals["EUR"]["allocated_effective_cost"]
    assert (totals["EUR"]["shared_cost"], totals["EUR"]["idle_cost"], totals["EUR"]["untagged_cost"]) == (25, 25, 3)
    assert totals["USD"]["ledger_effective_cost"] == Decimal(110) == totals["USD"]["allocated_effective_cost"]
    summary = {r["BillingCurrency"]: r for r in result.summary.to_pylist()}
    assert summary["EUR"]["total_cost"] == Decimal(32) and summary["EUR"]["cost_per_inference"] == pytest.approx(3.2)
    assert summary["USD"]["total_cost"] == Decimal(60) and summary["USD"]["cost_per_inference"] == pytest.approx(6.0)


def test_rolling_seven_days_counts_only_days_with_known_inferences(tmp_path, rules):
    days = [DAY + timedelta(days=i) for i in range(9)]
    costs = [10, 20, 30, 40, 50, 60, 70, 80, 90]
    counts = [100, 100, None, 200, 100, 100, 100, 100, 400]
    rows = [
        {"date": d, "model_name": CREDIT, "model_version": "1.0", "inferences": n}
        for d, n in zip(days, counts, strict=True)
    ]
    day_usage = pa.Table.from_pylist(rows, schema=pa.schema(list(USAGE_SCHEMA)[:4]))
    one, two = Lake(str(tmp_path / "one")), Lake(str(tmp_path / "two"))
    for lake in (one, two):
        for day, cost in zip(days, costs, strict=True):
            write_ledger(lake, day, [direct(CREDIT, "1.0", str(cost))])
    together = {r.day: r.summary.to_pylist()[0] for r in allocate_days(one, days, rules, day_usage)}
    # the last day's window is days 3..9; day 3's count is unknown, so its cost is left out too
    last = together[days[-1]]
    assert last["rolling_7d_days"] == 6
    assert last["rolling_7d_cost_per_inference"] == pytest.approx((40 + 50 + 60 + 70 + 80 + 90) / 1000)
    assert together[days[2]]["cost_per_inference"] is None
    assert together[days[2]]["rolling_7d_cost_per_inference"] == pytest.approx((10 + 20) / 200)
    assert together[days[0]]["rolling_7d_cost_per_inference"] == pytest.approx(0.1)
    # day by day, the earlier days' summaries are read back from the lake: the same figures
    for day in days:
        write_allocation(two, allocate_day(two, day, rules, day_usage))
    assert two.read_table(MODEL_COST_SUMMARY, {"date": days[-1].isoformat()}).to_pylist()[0] == last
    assert two.exists(MODEL_COSTS, {"date": days[-1].isoformat()})


def test_cost_per_million_tokens_where_the_telemetry_counts_them(lake, rules):
    write_ledger(lake, DAY, [direct(LLM, "3.0", "36"), direct(CREDIT, "1.0", "1")])
    day_usage = usage(
        [
            {"model_name": LLM, "model_version": "3.0", "inferences": 1200, "input_tokens": 4_000_000,
             "output_tokens": 1_500_000},
            {"model_name": CREDIT, "model_version": "1.0", "inferences": 10, "input_tokens": None,
             "output_tokens": None},
        ]
    )  # fmt: skip
    summary = {r["model_name"]: r for r in allocate_day(lake, DAY, rules, day_usage).summary.to_pylist()}
    assert summary[LLM]["cost_per_million_input_tokens"] == pytest.approx(9.0)
    assert summary[LLM]["cost_per_million_output_tokens"] == pytest.approx(24.0)
    assert summary[LLM]["cost_per_1000_inferences"] == pytest.approx(30.0)
    assert summary[CREDIT]["cost_per_million_input_tokens"] is None


def test_tag_and_glob_matching_first_pool_wins(lake):
    rules = parse_rules(
        """
shared_pools:
  - {name: first, match: {ServiceName: "Amazon E?S", tags: {"user:Node-Pool": "gpu-[ab]*"}}, split: even}
  - {name: second, match: {ServiceName: "Amazon EKS"}, split: even}
""",
        "rules",
    )
    write_ledger(
        lake,
        DAY,
        [
            {"ServiceName": "Amazon EKS", "Tags": '{"node_pool": "gpu-a100"}', "EffectiveCost": "1"},  # both: first
            {"ServiceName": "Amazon EKS", "Tags": '{"node_pool": "cpu"}', "EffectiveCost": "2"},
            {"ServiceName": "Amazon EKS", "Tags": '{"other": "\\"node_pool\\""}', "EffectiveCost": "4"},
            {"ServiceName": "Amazon ECS", "Tags": '{"node_pool": "gpu-b"}', "EffectiveCost": "8"},
            {"ServiceName": "Amazon ECS", "Tags": None, "EffectiveCost": "16"},
        ],
    )
    result = allocate_day(lake, DAY, rules, usage([{"model_name": "a", "model_version": "1"}]))
    pools = defaultdict(Decimal)
    for line in result.costs.to_pylist():
        pools[line["x_SharedPool"]] += line["EffectiveCost"]
    assert dict(pools) == {"first": Decimal(9), "second": Decimal(6), None: Decimal(16)}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("shared_pools: [{name: p, match: {x_Workload: w}, split: even, capacty: 3}]", "shared_pools.0.capacty"),
        ("shared_pools: [{name: p, match: {x_Workload: w}, split: memory}]", "shared_pools.0.split"),
        ("shared_pools: [{name: p, match: {x_Workload: w}, split: gpu_hours, capacity: -4}]",
         "shared_pools.0.capacity"),
        ("shared_pools: [{name: p, match: {x_Workload: w}, split: gpu_hours, capacity: '4'}]",
         "shared_pools.0.capacity"),
        ("shared_pools: [{name: p, match: {x_Workload: w}, split: even, capacity: 4}]", "capacity: an even split"),
        ("shared_pools: [{name: p, match: {Tags: w}, split: even}]", "shared_pools.0.match.Tags"),
        ("shared_pools: [{name: p, match: {}, split: even}]", "match has no condition"),
        ("shared_pools: [{name: p, match: {tags: {'a b': c}}, split: even}]", "shared_pools.0.match.tags"),
        ("shared_pools: [{name: p, match: {x_Workload: w}, split: even, among: [Not A Model]}]", "among"),
        ("shared_pools: [{name: p, match: {x_Team: a}, split: even}, {name: p, match: {x_Team: b}, split: even}]",
         "unique: p"),
        ("pools: []", "pools"),
    ],
)  # fmt: skip
def test_bad_rules_are_refused_naming_the_field(text, field, tmp_path):
    path = tmp_path / "allocation.yaml"
    path.write_text(text)
    with pytest.raises(BadInputError) as refused:
        load_rules(path)
    assert field in str(refused.value) and str(path) in str(refused.value)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"model_name": "a", "model_version": "1", "gpu_hours": -1.0}],
            "usage row 1 (a 1 2025-03-10): gpu_hours -1.0",
        ),
        ([{"model_name": "a", "model_version": "1", "gpu_hours": float("nan")}], "gpu_hours nan"),
        ([{"model_name": "a", "model_version": "1"}, {"model_name": "a", "model_version": "1"}], "usage row 2"),
        ([{"model_name": None, "model_version": "1"}], "usage row 1: model_name is missing"),
    ],
)
def test_bad_usage_is_refused_naming_the_row(rows, message):
    with pytest.raises(BadInputError, match="usage") as refused:
        validate_usage(usage(rows))
    assert message in str(refused.value)
    with pytest.raises(BadInputError, match="unknown column"):
        validate_usage(usage([{"model_name": "a", "model_version": "1"}]).append_column("memory", pa.array([1])))
    with pytest.raises(BadInputError, match="inferences is double"):
        validate_usage(usage([{"model_name": "a", "model_version": "1", "inferences": 1.5}]))


def test_a_ledger_that_cannot_be_totalled_or_a_missing_day_is_refused(lake, rules):
    with pytest.raises(BadInputError, match="no cost ledger for 2025-03-10"):
        allocate_day(lake, DAY, rules, None)
    rows = [{"EffectiveCost": "1"}, {"EffectiveCost": "2", "BillingCurrency": "EUR"}, {"EffectiveCost": "1"}]
    for change, problem in (
        ({"BillingCurrency": None}, "1 charge.s. with no BillingCurrency"),
        ({"BillingCurrency": ""}, "1 charge.s. with no BillingCurrency"),
        ({"EffectiveCost": None, "BilledCost": "2"}, "1 (USD )?charge.s. with no EffectiveCost"),
        ({"BilledCost": None}, "1 (USD )?charge.s. with no BilledCost"),
    ):
        table = ledger_table([*rows[:2], {**rows[2], **change}])
        for statistics in (True, False):  # found in the file's statistics, or counted when it has none
            path = Path(lake.path("cost_ledger", {"date": DAY.isoformat()}))
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path, write_statistics=statistics)
            with pytest.raises(BadInputError, match=f"date=2025-03-10/data.parquet: {problem}"):
                allocate_day(lake, DAY, rules, None)


def test_an_allocation_that_does_not_add_up_is_never_published():
    sums = {("direct", "a", "1", "USD"): (Decimal("10.00"), Decimal("10.00"))}
    ledger = {"USD": {"rows": 1, "effective": Decimal("10.00"), "billed": Decimal("10.00")}}
    assert totals_table(DAY, sums, ledger, "here").to_pylist()[0]["conserved"]
    ledger["USD"]["effective"] = Decimal("10.01")
    with pytest.raises(ConservationError, match="USD allocation does not add up"):
        totals_table(DAY, sums, ledger, "here")


def test_an_object_store_lake(s3_server, rules):
    lake = Lake(s3_server.lake_uri(s3_server.bucket("allocation-lake"), "lake"))
    write_ledger(lake, DAY, [direct(CREDIT, "1.0", "4"), gpu(1, "6"), {"EffectiveCost": "1"}])
    day_usage = usage([{"model_name": CREDIT, "model_version": "1.0", "gpu_hours": 100.0, "inferences": 2}])
    result = allocate_day(lake, DAY, rules, day_usage)
    assert by_version(lines_of(result.costs, "shared")) == {(CREDIT, "1.0"): Decimal(6)}
    write_allocation(lake, result)
    assert lake.read_table(MODEL_COST_SUMMARY, {"date": DAY.isoformat()}).to_pylist()[0]["cost_per_inference"] == 5.0


def test_a_share_is_the_double_kept_to_twelve_places_and_the_last_line_takes_the_rest():
    """Three lines of each group: a half and a third (the double kept to 12 places, half to even)
    and the last, which takes what they leave, to the last digit."""
    totals = ["12345678.123456789", "-3.33", "0.000244140625", "0.000000000001"]
    rows = [(g, Decimal(t), ratio, i == 2) for g, t in enumerate(totals) for i, ratio in enumerate([0.5, 1 / 3, 0.2])]
    gid, total, ratio, last = (list(column) for column in zip(*rows, strict=True))
    shares = split_shares(
        pa.array(total, MONEY), pa.array([float(t) for t in total]), pa.array(ratio), pa.array(last), pa.array(gid)
    ).to_pylist()
    for g, cost in enumerate(totals):
        half, third, rest = shares[3 * g : 3 * g + 3]
        for share, r in ((half, 0.5), (third, 1 / 3)):
            assert share == Decimal(float(Decimal(cost)) * r).quantize(Decimal("1e-12"), ROUND_HALF_EVEN)
        assert half + third + rest == Decimal(cost)
    assert shares[6] == Decimal("0.000122070312")  # half of 1/4096 is 1/8192 = 0.0001220703125: a tie, to even


def test_element_pairs_join_each_group_to_its_pools_lines():
    groups = pa.table({"day": pa.array([DAY, DAY, DAY + timedelta(days=1)]), "pool": [1, 0, 0]})
    elements = pa.table({"date": pa.array([DAY, DAY, DAY, DAY + timedelta(days=1)]), "pool": [0, 0, 1, 0]})
    group, element = element_pairs(groups, elements)
    assert list(zip(group.to_pylist(), element.to_pylist(), strict=True)) == [(0, 2), (1, 0), (1, 1), (2, 3)]


def test_days_allocated_in_one_query_are_the_days_allocated_one_by_one(lake, rules):
    days = [DAY + timedelta(days=i) for i in range(3)]
    for number, day in enumerate(days):
        write_ledger(
            lake,
            day,
            [direct(CREDIT, "1.0", f"{number + 1}.5"), gpu(1, f"{10 * number + 3}.25"), gpu(2, "0.01"),
             {"ServiceName": "Amazon Elastic Kubernetes Service", "Tags": '{"cluster": "ml-shared"}',
              "EffectiveCost": f"{number}.99"},
             {"EffectiveCost": "0.07", "ServiceName": f"Service {number}"}],
        )  # fmt: skip
    rows = [
        {"date": day, "model_name": m, "model_version": "1.0", "gpu_hours": 10.0 + n + i, "cpu_request_core_hours": 1.0}
        for i, day in enumerate(days)
        for n, m in enumerate((CREDIT, EMPLOY))
    ]
    day_usage = pa.Table.from_pylist(rows)
    together = list(allocate_days(lake, days, rules, day_usage, days_per_query=3))
    alone = [allocate_day(lake, day, rules, day_usage, history=USAGE_SCHEMA.empty_table()) for day in days]
    keys = [(name, "ascending") for name in ("x_AllocationCategory", "x_ModelName", "x_SharedPool", "ServiceName")]
    for joint, single in zip(together, alone, strict=True):
        assert joint.costs.num_rows == single.costs.num_rows > 0
        assert set(joint.costs.column("ChargePeriodStart").to_pylist()) == {
            single.costs["ChargePeriodStart"][0].as_py()
        }
        assert joint.costs.sort_by(keys).equals(single.costs.sort_by(keys))
        assert joint.totals.equals(single.totals)
