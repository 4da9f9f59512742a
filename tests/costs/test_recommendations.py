"""Recommendations from utilisation telemetry: the readers (Prometheus query_range JSON, Parquet),
the coverage of the evidence window, and each rule with its numbers worked by hand (730 h a month)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.costs.recommendations import (
    InstanceShape,
    Recommendation,
    ResourcePrices,
    RuleSettings,
    ServingCase,
    ServingProfile,
    Skipped,
    declared,
    recommend_budget,
    recommend_commitment,
    recommend_gpu,
    recommend_instance_type,
    recommend_replicas,
    recommend_serving,
    right_size_requests,
)
from rai_pipelines.costs.telemetry import (
    EvidenceWindow,
    LabelMap,
    combine,
    coverage,
    prometheus_frame,
    read_parquet_telemetry,
    read_prometheus_query_range,
)

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
STEP = timedelta(minutes=1)
N = 100  # steps in the window: krr's minimum of 100 points
WINDOW = EvidenceWindow(T0, T0 + N * STEP, STEP)
LABELS = LabelMap()
GIB = 2**30


def prom(metric: str, series: dict[str, list], model="fraud-model", version="1.0.0", label="app") -> dict:
    """A query_range response: one series per pod, a sample per step from T0."""
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {
                    "metric": {"__name__": metric, label: model, "model_version": version, "pod": pod},
                    "values": [[T0.timestamp() + i * 60, str(v)] for i, v in enumerate(values)],
                }
                for pod, values in series.items()
            ],
        },
    }


def table(**metrics: dict[str, list]) -> pd.DataFrame:
    return combine([prometheus_frame(prom(m, s), m, LABELS) for m, s in metrics.items()])


def flat(value: float, peak: float | None = None, at: int = 50) -> list[float]:
    values = [value] * N
    if peak is not None:
        values[at] = peak
    return values


def pods(n: int, values: list[float]) -> dict[str, list[float]]:
    return {f"fraud-model-{i}": values for i in range(n)}


def prices(table_: dict[str, str]):
    return lambda name: Decimal(table_[name])  # KeyError (a LookupError) when unpriced


# -- telemetry ---------------------------------------------------------------------------------------
def test_prometheus_series_become_one_tidy_table_with_nan_and_inf_kept_as_missing(tmp_path):
    doc = prom("cpu_cores", {"p-a": ["0.5", "NaN", "0.7"], "p-b": ["+Inf", "0.25", "1e-1"]}, label="model")
    path = tmp_path / "cpu.json"
    path.write_text(json.dumps(doc))
    frame = read_prometheus_query_range(path, "cpu_cores", LABELS)
    assert list(frame.columns) == ["timestamp", "model_name", "model_version", "replica", "metric", "value"]
    assert len(frame) == 6 and set(frame["replica"]) == {"p-a", "p-b"}
    assert str(frame["timestamp"].dt.tz) == "UTC" and frame["timestamp"].min() == pd.Timestamp(T0)
    a = frame[frame["replica"] == "p-a"]["value"].tolist()
    b = frame[frame["replica"] == "p-b"]["value"].tolist()
    assert a[0] == 0.5 and np.isnan(a[1]) and a[2] == 0.7
    assert np.isnan(b[0]) and b[1:] == [0.25, 0.1]  # +Inf is a missing sample, not a value
    assert set(frame["model_name"]) == {"fraud-model"}  # from the `model` label


def test_gpu_percent_is_scaled_and_a_share_above_one_is_refused():
    doc = prom("DCGM_FI_DEV_GPU_UTIL", {"p": ["40", "100"]})
    assert prometheus_frame(doc, "gpu_utilisation", LABELS, scale=0.01)["value"].tolist() == pytest.approx([0.4, 1.0])
    with pytest.raises(BadInputError, match="above 1.*scale"):
        prometheus_frame(doc, "gpu_utilisation", LABELS)


@pytest.mark.parametrize(
    "document, message",
    [
        ({"status": "error", "errorType": "bad_data", "error": "parse error at char 4"}, "bad_data: parse error"),
        ({"status": "success", "data": {"resultType": "vector", "result": []}}, "not an instant query"),
        ({"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": []}]}}, "labels"),
        ({"status": "success", "data": {"resultType": "matrix", "result": []}, "extra": 1}, "unknown keys"),
    ],
)
def test_prometheus_errors_are_refused_naming_the_problem(document, message):
    with pytest.raises(BadInputError, match=message):
        prometheus_frame(document, "cpu_cores", LABELS, where="cpu.json")


@pytest.mark.parametrize(
    "values, message",
    [([0.5], "not a Prometheus sample string"), (["-0.5"], "negative"), (["1_000"], "not a Prometheus sample")],
)
def test_malformed_samples_are_refused(values, message):
    doc = prom("cpu_cores", {"p": values})
    doc["data"]["result"][0]["values"][0][1] = values[0]
    with pytest.raises(BadInputError, match=message):
        prometheus_frame(doc, "cpu_cores", LABELS)


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.json"
    path.write_text("[" * 5000)  # would not even parse: the size is checked first
    with pytest.raises(BadInputError, match="over the limit of 4,096; refused unread"):
        read_prometheus_query_range(path, "cpu_cores", LABELS, max_bytes=4096)


def test_an_unsafe_model_label_is_refused():
    with pytest.raises(BadInputError, match="not a valid model name"):
        prometheus_frame(prom("cpu_cores", {"p": ["1"]}, model="../etc"), "cpu_cores", LABELS)


def test_parquet_telemetry_with_null_values_and_label_columns(tmp_path):
    path = tmp_path / "telemetry.parquet"
    ts = [T0, T0 + STEP, T0]
    pq.write_table(
        pa.table(
            {
                "timestamp": pa.array(ts, pa.timestamp("ms", tz="UTC")),
                "metric": ["memory_bytes", "memory_bytes", "inferences_per_s"],
                "value": pa.array([1.5 * GIB, None, 12.0]),
                "model": ["fraud-model"] * 3,
                "version": ["1.0.0"] * 3,
                "pod": ["p-a", "p-a", "p-b"],
                "namespace": ["ml"] * 3,
            }
        ),
        path,
    )
    frame = read_parquet_telemetry(path, LABELS)
    assert len(frame) == 3 and frame["value"].isna().sum() == 1
    assert frame.loc[frame["metric"] == "inferences_per_s", "replica"].item() == "p-b"


def test_parquet_without_a_time_zone_or_with_an_unknown_metric_is_refused(tmp_path):
    base = {"metric": ["cpu_cores"], "value": [1.0], "model": ["m"], "version": ["1"], "pod": ["p"]}
    naive = tmp_path / "naive.parquet"
    pq.write_table(pa.table({"timestamp": pa.array([datetime(2024, 3, 1)], pa.timestamp("ms")), **base}), naive)
    with pytest.raises(BadInputError, match="no time zone"):
        read_parquet_telemetry(naive, LABELS)
    unknown = tmp_path / "unknown.parquet"
    pq.write_table(pa.table({"timestamp": [T0.timestamp()], **base, "metric": ["disk_bytes"]}), unknown)
    with pytest.raises(BadInputError, match="row 0: metric 'disk_bytes'"):
        read_parquet_telemetry(unknown, LABELS)
    with pytest.raises(BadInputError, match="over the limit"):
        read_parquet_telemetry(unknown, LABELS, max_rows=0)


def test_the_same_sample_read_twice_is_kept_once_and_a_conflict_is_refused():
    one = prometheus_frame(prom("cpu_cores", {"p": ["1", "NaN"]}), "cpu_cores", LABELS)
    again = prometheus_frame(prom("cpu_cores", {"p": ["1", "2"]}), "cpu_cores", LABELS)
    merged = combine([one, again])
    assert merged["value"].tolist() == [1.0, 2.0]  # the NaN read first does not hide the value read later
    with pytest.raises(BadInputError, match="conflicting values"):
        combine([one, prometheus_frame(prom("cpu_cores", {"p": ["3"]}), "cpu_cores", LABELS)])


# -- gaps --------------------------------------------------------------------------------------------
def test_coverage_counts_steps_with_a_finite_sample_and_nan_is_a_gap():
    values = ["1"] * 80 + ["NaN"] * 5  # 85 samples in the 100-step window, 5 of them NaN
    frame = table(cpu_cores={"p": values})
    cov = coverage(frame, "fraud-model", "1.0.0", "cpu_cores", WINDOW)
    assert (cov.expected, cov.present, cov.samples, cov.share) == (100, 80, 80, 0.8)
    assert cov.largest_gap == 20 * STEP
    assert cov.shortfall(0.8) is None and "80.0%" in cov.shortfall(0.9)


def test_telemetry_with_gaps_is_refused_with_the_reason_and_never_interpolated():
    values = flat(0.2)
    for i in range(30, 45):  # a 15-minute scrape outage
        values[i] = "NaN"
    profile = _profile(cpu_request_cores=2.0, memory_request_bytes=4 * GIB)
    case = ServingCase(table(cpu_cores=pods(2, values)), profile, WINDOW, prices({}), _RESOURCE_PRICES)
    cpu = right_size_requests(case)[0]
    assert isinstance(cpu, Skipped) and cpu.kind == "cpu_request"
    assert "85 of 100 steps (85.0%, the minimum is 90%)" in cpu.reason and "0:15:00" in cpu.reason
    assert "not interpolated" in cpu.reason
    # the same data with the gap filled recommends: the refusal came from the gap
    filled = ServingCase(table(cpu_cores=pods(2, flat(0.2))), profile, WINDOW, prices({}), _RESOURCE_PRICES)
    assert isinstance(right_size_requests(filled)[0], Recommendation)


def test_a_window_without_a_time_zone_or_backwards_is_refused():
    with pytest.raises(BadInputError, match="time zone"):
        EvidenceWindow(datetime(2024, 3, 1), datetime(2024, 3, 2), STEP)
    with pytest.raises(BadInputError, match="not after"):
        EvidenceWindow(T0, T0, STEP)


# -- the rules, with numbers worked by hand ----------------------------------------------------------
_RESOURCE_PRICES = ResourcePrices(Decimal("0.04"), Decimal("0.005"))
M5 = {
    "m5.2xlarge": InstanceShape(name="m5.2xlarge", vcpu=8, memory_gib=32, inferences_per_s=200),
    "m5.xlarge": InstanceShape(name="m5.xlarge", vcpu=4, memory_gib=16, inferences_per_s=110),
    "c5.xlarge": InstanceShape(name="c5.xlarge", vcpu=4, memory_gib=8, inferences_per_s=120),
    "m5.large": InstanceShape(name="m5.large", vcpu=2, memory_gib=8, inferences_per_s=50),
}
PRICES = prices({"m5.2xlarge": "0.384", "m5.xlarge": "0.192", "c5.xlarge": "0.17", "m5.large": "0.096"})


def _profile(**kw) -> ServingProfile:
    doc = {"model": "fraud-model", "version": "1.0.0", "instance_type": "m5.xlarge", "replicas": 2}
    doc["candidates"] = [s.model_dump() for s in M5.values()]
    return declared(ServingProfile, {**doc, **kw}, "serving.yaml")


def test_krr_cpu_p95_and_memory_peak_plus_15_percent():
    cpu = {"p-a": [i / 100 for i in range(1, 101)], "p-b": [i / 200 for i in range(1, 101)]}
    memory = {"p-a": flat(1.0 * GIB, peak=1.5 * GIB), "p-b": flat(0.5 * GIB)}
    profile = _profile(cpu_request_cores=2.0, memory_request_bytes=4 * GIB)
    case = ServingCase(table(cpu_cores=cpu, memory_bytes=memory), profile, WINDOW, PRICES, _RESOURCE_PRICES)
    cpu_rec, mem_rec = right_size_requests(case)
    # p95 of 0.01..1.00 (linear): 0.95 + 0.05 × 0.01 = 0.9505 -> 951m (p-b's p95 is half that)
    assert (cpu_rec.current, cpu_rec.proposed) == ("2000m", "951m")
    # (2 - 0.951) cores × 0.04 × 2 replicas × 730 h = 61.2616
    assert cpu_rec.monthly_savings == Decimal("61.26")
    # 1.5 GiB × 1.15 = 1766.4 MiB -> 1767Mi; (4096 - 1767) MiB = 2.2744140625 GiB × 0.005 × 2 × 730 = 16.603
    assert (mem_rec.current, mem_rec.proposed, mem_rec.monthly_savings) == ("4Gi", "1767Mi", Decimal("16.60"))
    assert cpu_rec.evidence.samples == 200 and cpu_rec.evidence.coverage == 1.0
    assert cpu_rec.target == "gitops" and cpu_rec.target_field == "resources.requests.cpu"
    assert mem_rec.evidence.start == T0 and mem_rec.evidence.end == T0 + N * STEP


def test_a_request_within_the_minimum_change_is_not_recommended():
    profile = _profile(cpu_request_cores=0.21, memory_request_bytes=4 * GIB)
    case = ServingCase(table(cpu_cores=pods(1, flat(0.2))), profile, WINDOW, PRICES, _RESOURCE_PRICES)
    outcome = right_size_requests(case)[0]
    assert isinstance(outcome, Skipped) and "within 10% of the current 210m" in outcome.reason


def test_replicas_fewest_that_carry_summed_cpu_and_peak_throughput():
    cpu = pods(4, flat(0.5))  # summed 2.0 cores: × 1.2 / 4 vCPU = 0.6 -> 1 replica
    throughput = pods(4, flat(30.0, peak=45.0))  # summed peak 180/s: × 1.2 / 110 = 1.96 -> 2 replicas
    profile = _profile(replicas=4, min_replicas=1)
    rec = recommend_replicas(ServingCase(table(cpu_cores=cpu, inferences_per_s=throughput), profile, WINDOW, PRICES))
    assert (rec.current, rec.proposed) == (4, 2)
    assert rec.monthly_savings == Decimal("280.32")  # 2 × 0.192 × 730
    assert "peak 180.00 inferences/s + 20% needs 2" in rec.rationale
    # a higher floor of replicas wins over the measurement
    floor = recommend_replicas(
        ServingCase(
            table(cpu_cores=cpu, inferences_per_s=throughput), _profile(replicas=4, min_replicas=3), WINDOW, PRICES
        )
    )
    assert (floor.proposed, floor.monthly_savings) == (3, Decimal("140.16"))


def test_replicas_already_needed_are_not_reduced():
    throughput = pods(2, flat(60.0))  # 120/s × 1.2 = 144 > 110: two replicas are needed
    case = ServingCase(table(cpu_cores=pods(2, flat(0.5)), inferences_per_s=throughput), _profile(), WINDOW, PRICES)
    outcome = recommend_replicas(case)
    assert isinstance(outcome, Skipped) and "not over-provisioned" in outcome.reason


def _serving_table(cpu: float, memory_gib: float, peak_throughput: float, replicas: int, gpu=None) -> pd.DataFrame:
    metrics = {
        "cpu_cores": pods(replicas, flat(cpu)),
        "memory_bytes": pods(replicas, flat(memory_gib * GIB * 0.8, peak=memory_gib * GIB)),
        "inferences_per_s": pods(replicas, flat(peak_throughput / 2, peak=peak_throughput)),
    }
    if gpu is not None:
        metrics["gpu_utilisation"] = pods(replicas, gpu)
    return table(**metrics)


def test_a_cheaper_instance_type_that_still_meets_the_measured_throughput():
    profile = _profile(instance_type="m5.2xlarge", replicas=3)
    # per replica: p95 CPU 2.0 (× 1.2 = 2.4 vCPU), peak memory 6 GiB (× 1.15 = 6.9 GiB), peak 80/s (× 1.2 = 96/s)
    rec = recommend_instance_type(ServingCase(_serving_table(2.0, 6.0, 80.0, 3), profile, WINDOW, PRICES))
    assert (rec.current, rec.proposed) == ("m5.2xlarge", "c5.xlarge")
    assert rec.monthly_savings == Decimal("468.66")  # (0.384 - 0.17) × 3 replicas × 730
    assert "m5.large: 2 vCPU < 2.000 cores + 20%" in rec.rationale
    # at a peak of 110/s (132/s with headroom) neither 4-vCPU type carries the load
    slow = recommend_instance_type(ServingCase(_serving_table(2.0, 6.0, 110.0, 3), profile, WINDOW, PRICES))
    assert isinstance(slow, Skipped)
    assert "c5.xlarge: 120/s < 110.00/s + 20%" in slow.reason and "m5.xlarge: 110/s" in slow.reason


def test_an_unpriced_or_undeclared_throughput_candidate_is_passed_over():
    shapes = [*(s.model_dump() for s in M5.values()), {"name": "c7g.xlarge", "vcpu": 4, "memory_gib": 8}]
    profile = declared(ServingProfile, {**_profile(instance_type="m5.2xlarge").model_dump(), "candidates": shapes}, "x")
    case = ServingCase(_serving_table(2.0, 6.0, 80.0, 2), profile, WINDOW, PRICES)
    rec = recommend_instance_type(case)
    assert rec.proposed == "c5.xlarge" and "c7g.xlarge: no measured throughput declared" in rec.rationale


GPU_SHAPES = [
    {"name": "g5.xlarge", "vcpu": 4, "memory_gib": 16, "gpus": 1, "inferences_per_s": 120},
    {"name": "g5.12xlarge", "vcpu": 48, "memory_gib": 192, "gpus": 4, "inferences_per_s": 400},
    {"name": "g5.4xlarge", "vcpu": 16, "memory_gib": 64, "gpus": 1, "inferences_per_s": 150},
    {"name": "g5.2xlarge", "vcpu": 8, "memory_gib": 32, "gpus": 1, "inferences_per_s": 100},
    {"name": "c6i.large", "vcpu": 2, "memory_gib": 4, "inferences_per_s": 50},
    {"name": "c6i.xlarge", "vcpu": 4, "memory_gib": 8, "inferences_per_s": 80},
    {"name": "m6i.xlarge", "vcpu": 4, "memory_gib": 16, "inferences_per_s": 90},
]
GPU_PRICES = prices(
    {
        "g5.xlarge": "1.006",
        "g5.12xlarge": "5.672",
        "g5.4xlarge": "1.624",
        "g5.2xlarge": "1.212",
        "c6i.large": "0.085",
        "c6i.xlarge": "0.17",
        "m6i.xlarge": "0.192",
    }
)


def _gpu_profile(instance_type: str, replicas: int) -> ServingProfile:
    doc = {"model": "fraud-model", "version": "1.0.0", "instance_type": instance_type, "replicas": replicas}
    return declared(ServingProfile, {**doc, "candidates": GPU_SHAPES}, "serving.yaml")


def test_an_idle_gpu_moves_to_the_cheapest_cpu_type_that_carries_the_load():
    # utilisation never above 2 %; per replica p95 CPU 1.0, peak memory 5 GiB (5.75 with 15 %), peak 40/s (48)
    data = _serving_table(1.0, 5.0, 40.0, 2, gpu=flat(0.0, peak=0.02))
    rec = recommend_gpu(ServingCase(data, _gpu_profile("g5.xlarge", 2), WINDOW, GPU_PRICES))
    assert rec.kind == "idle_gpu" and (rec.current, rec.proposed) == ("g5.xlarge", "c6i.xlarge")
    assert rec.monthly_savings == Decimal("1220.56")  # (1.006 - 0.17) × 2 × 730
    assert "c6i.large: 4 GiB < 5.75 GiB" in rec.rationale


def test_an_underused_gpu_moves_to_fewer_gpus_that_meet_the_throughput():
    # p95 utilisation 20 % of 4 GPUs: 4 × 0.2 × 1.2 = 0.96 -> 1 GPU; peak 100/s needs 120/s with headroom
    data = _serving_table(4.0, 20.0, 100.0, 1, gpu=flat(0.2))
    rec = recommend_gpu(ServingCase(data, _gpu_profile("g5.12xlarge", 1), WINDOW, GPU_PRICES))
    assert rec.kind == "underused_gpu" and rec.proposed == "g5.4xlarge"
    assert rec.monthly_savings == Decimal("2955.04")  # (5.672 - 1.624) × 730
    assert "g5.2xlarge: 100/s < 100.00/s + 20%" in rec.rationale  # cheaper, but too slow
    busy_data = _serving_table(4.0, 20.0, 100.0, 1, gpu=flat(0.6))
    busy = recommend_gpu(ServingCase(busy_data, _gpu_profile("g5.12xlarge", 1), WINDOW, GPU_PRICES))
    assert isinstance(busy, Skipped) and "60.0% is not below 30%" in busy.reason


def test_serving_rules_together_report_what_was_not_recommended_and_why():
    data = _serving_table(1.0, 5.0, 40.0, 2, gpu=flat(0.0))
    case = ServingCase(data, _gpu_profile("g5.xlarge", 2), WINDOW, GPU_PRICES, _RESOURCE_PRICES)
    recs, skipped = recommend_serving(case)
    assert {r.kind for r in recs} == {"idle_gpu", "replicas"}
    assert {s.kind for s in skipped} == {"cpu_request", "memory_request", "instance_type"}
    assert all(s.reason for s in skipped)
    assert len({r.id for r in recs}) == 2
    again, _ = recommend_serving(case)
    assert [r.id for r in again] == [r.id for r in recs]  # the same recommendation has the same id


def test_declarations_are_strict():
    with pytest.raises(BadInputError, match="replica"):
        declared(ServingProfile, {**_profile().model_dump(), "replica": 2}, "serving.yaml")
    with pytest.raises(BadInputError, match="not among the candidates"):
        declared(ServingProfile, {**_profile().model_dump(), "instance_type": "p4d.24xlarge"}, "serving.yaml")
    with pytest.raises(BadInputError, match="cpu_percentile"):
        declared(RuleSettings, {"cpu_percentile": "95"}, "settings.yaml")


def test_a_price_that_is_not_a_decimal_is_refused():
    case = ServingCase(_serving_table(2.0, 6.0, 80.0, 3), _profile(replicas=3), WINDOW, lambda name: 0.19)
    with pytest.raises(BadInputError, match="not a non-negative Decimal"):
        recommend_instance_type(case)


# -- commitments and budgets -------------------------------------------------------------------------
DAY = timedelta(days=1)
C0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def _ledger(on_demand_per_day: list[str], covered_days: int = 10, skip_days=()) -> pd.DataFrame:
    rows = []

    def row(day, category, service, pricing, effective, list_cost, commitment=None, status=None):
        start = C0 + day * DAY
        rows.append(
            {
                "ChargePeriodStart": start,
                "ChargePeriodEnd": start + DAY,
                "ChargeCategory": category,
                "ServiceCategory": service,
                "PricingCategory": pricing,
                "EffectiveCost": Decimal(effective),
                "ListCost": Decimal(list_cost),
                "CommitmentDiscountId": commitment,
                "CommitmentDiscountStatus": status,
                "BillingCurrency": "USD",
            }
        )

    for day, cost in enumerate(on_demand_per_day):
        if day in skip_days:
            continue
        row(day, "Usage", "Compute", "Standard", cost, cost)
        row(day, "Usage", "Compute", "Dynamic", "5", "12")  # spot: not eligible
        row(day, "Usage", "Storage", "Standard", "9", "9")  # not compute
        row(day, "Tax", "Compute", None, "3", "3")
        if day < covered_days:
            row(day, "Usage", "Compute", "Committed", "16.8", "24", "arn:aws:savingsplans::sp-1", "Used")
    frame = pd.DataFrame(rows)
    for column in ("ChargePeriodStart", "ChargePeriodEnd"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


DAILY = ["48", "48", "72", "48", "96", "48", "48", "48", "60", "48"]  # 2, 2, 3, 2, 4, 2, 2, 2, 2.5, 2 per hour


def test_commitment_coverage_and_a_commitment_for_the_steady_baseline():
    rec = recommend_commitment(_ledger(DAILY), C0, C0 + 10 * DAY, Decimal("0.28"))
    # coverage: 240 covered (on-demand equivalent) / (240 + 564 on demand) = 29.9 %
    assert "coverage of eligible compute usage is 29.9%" in rec.rationale
    # p10 of the 240 hourly on-demand amounts is 2.000/h: bought at 28 % off it costs 1.440/h
    assert rec.current == Decimal("0.700")  # 168 of commitment cost over 240 hours
    assert rec.proposed == Decimal("2.140")
    assert rec.monthly_savings == Decimal("408.80")  # 2.000 × 0.28 × 730
    assert rec.target == "policy" and rec.model is None and rec.currency == "USD"
    assert rec.evidence.coverage == 1.0 and rec.evidence.samples == 20


def test_commitment_needs_evidence_and_a_steady_baseline():
    gaps = recommend_commitment(_ledger(DAILY, skip_days=(3, 4, 5)), C0, C0 + 10 * DAY, Decimal("0.28"))
    assert isinstance(gaps, Skipped) and "70.0% of the window's days" in gaps.reason
    spiky = recommend_commitment(_ledger(["0"] * 2 + ["48"] * 8), C0, C0 + 10 * DAY, Decimal("0.28"))
    assert isinstance(spiky, Skipped) and "no steady uncovered baseline" in spiky.reason
    with pytest.raises(BadInputError, match="missing columns"):
        recommend_commitment(_ledger(DAILY).drop(columns=["ListCost"]), C0, C0 + 10 * DAY, Decimal("0.28"))


def test_budget_is_tightened_to_the_highest_day_plus_a_margin_and_never_raised():
    days = {date(2024, 3, d): Decimal("0.0015") for d in range(1, 11)}
    days[date(2024, 3, 4)] = Decimal("0.0020")
    rec = recommend_budget("fraud-model", "1.0.0", days, date(2024, 3, 1), date(2024, 3, 10), Decimal("0.005"))
    assert (rec.current, rec.proposed, rec.monthly_savings) == (Decimal("0.005"), Decimal("0.0025"), Decimal("0.00"))
    assert rec.target == "policy" and rec.target_field == "thresholds.estimated_cost_per_inference_usd_max"
    breach = recommend_budget("fraud-model", "1.0.0", days, date(2024, 3, 1), date(2024, 3, 10), Decimal("0.0018"))
    assert isinstance(breach, Skipped) and "not a budget to raise" in breach.reason
