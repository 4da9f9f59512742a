"""Savings recommendations from measured utilisation: right-sized requests (krr's simple strategy),
fewer replicas, idle or under-used GPUs, a cheaper instance type, commitment coverage, a tighter budget.

Each rule either returns a Recommendation carrying its evidence window, the current and proposed
values and the monthly savings (730 hours a month, as Infracost counts), or a Skipped saying why
the evidence was not enough. Every rule is computed against the current deployment on its own:
two recommendations for the same model are alternatives, and their savings do not add up.

Statistics are floats; money is Decimal from the caller's `price_of(instance_type)`, per hour.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import pydantic

from rai_pipelines.core.errors import BadInputError, validation_problems
from rai_pipelines.core.registry import validate_model_name, validate_model_version
from rai_pipelines.costs.telemetry import Evidence, EvidenceWindow, Usage, summarise_usage

HOURS_PER_MONTH = Decimal(730)
CENT = Decimal("0.01")
GIB = 2**30
MIB = 2**20
Kind = Literal[
    "idle_gpu", "underused_gpu", "replicas", "cpu_request", "memory_request", "instance_type", "commitment_coverage",
    "budget",
]  # fmt: skip
# The field of the serving patch or policy data each kind changes (proposals.py edits these).
REPLICAS_FIELD = "spec.replicas"
INSTANCE_FIELD = "nodeSelector.instance-type"
CPU_FIELD = "resources.requests.cpu"
MEMORY_FIELD = "resources.requests.memory"
COMMITMENT_FIELD = "commitments.compute.hourly_commitment"
BUDGET_FIELD = "thresholds.estimated_cost_per_inference_usd_max"
Value = int | float | str | Decimal


@dataclass(frozen=True)
class Recommendation:
    kind: Kind
    model: str | None
    version: str | None
    target: Literal["gitops", "policy"]
    target_field: str
    evidence: Evidence
    current: Value
    proposed: Value
    monthly_savings: Decimal
    currency: str
    rationale: str

    @property
    def id(self) -> str:
        """Stable across runs: the same recommendation made again has the same id (and Git branch)."""
        return recommendation_id(self.kind, self.model, self.version, self.target_field)

    def as_dict(self) -> dict:
        out = {"id": self.id, **asdict(self)}
        for key in ("current", "proposed", "monthly_savings"):
            if isinstance(out[key], Decimal):
                out[key] = str(out[key])
        out["evidence"] = {
            **out["evidence"],
            "start": self.evidence.start.isoformat(),
            "end": self.evidence.end.isoformat(),
        }
        return out


@dataclass(frozen=True)
class Skipped:
    kind: Kind
    model: str | None
    version: str | None
    reason: str


Outcome = Recommendation | Skipped


def recommendation_id(kind: str, model: str | None, version: str | None, target_field: str) -> str:
    """Stable across runs: the same recommendation made again has the same id (and Git branch)."""
    text = "\x1f".join([kind, model or "", version or "", target_field])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- declarations ------------------------------------------------------------------------------------
class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True, frozen=True)


Positive = Annotated[float, pydantic.Field(gt=0, allow_inf_nan=False)]
Share = Annotated[float, pydantic.Field(ge=0, le=1, allow_inf_nan=False)]


class InstanceShape(_Strict):
    """A candidate instance type: its capacity, and the throughput one replica of this model
    measured on it (a load test); without that, the type cannot be shown to carry the load."""

    name: Annotated[str, pydantic.StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
    vcpu: Positive
    memory_gib: Positive
    gpus: Annotated[int, pydantic.Field(ge=0)] = 0
    inferences_per_s: Positive | None = None


class ServingProfile(_Strict):
    """How a model version is served now (one replica per node of `instance_type`), and the
    instance types it may move to (the current one among them)."""

    model: Annotated[str, pydantic.AfterValidator(validate_model_name)]
    version: Annotated[str, pydantic.AfterValidator(validate_model_version)]
    instance_type: str
    replicas: Annotated[int, pydantic.Field(ge=1)]
    min_replicas: Annotated[int, pydantic.Field(ge=1)] = 1
    cpu_request_cores: Positive | None = None
    memory_request_bytes: Annotated[int, pydantic.Field(gt=0)] | None = None
    candidates: Annotated[list[InstanceShape], pydantic.Field(min_length=1, max_length=500)]

    @pydantic.model_validator(mode="after")
    def _current_is_declared(self) -> ServingProfile:
        names = [c.name for c in self.candidates]
        if len(set(names)) != len(names):
            raise ValueError("candidates: an instance type is declared twice")
        if self.instance_type not in names:
            raise ValueError(f"the current instance type {self.instance_type} is not among the candidates")
        return self

    @property
    def shape(self) -> InstanceShape:
        return next(c for c in self.candidates if c.name == self.instance_type)


class RuleSettings(_Strict):
    cpu_percentile: Annotated[float, pydantic.Field(gt=0, le=100)] = 95.0  # krr's simple strategy
    memory_buffer: Annotated[float, pydantic.Field(ge=0, le=10)] = 0.15  # krr: peak memory + 15 %
    headroom: Annotated[float, pydantic.Field(ge=0, le=10)] = 0.2  # demand + 20 % must fit the capacity
    min_coverage: Annotated[float, pydantic.Field(gt=0, le=1)] = 0.9
    min_samples: Annotated[int, pydantic.Field(ge=1)] = 100  # krr's points_required
    idle_gpu_max: Share = 0.05  # utilisation never above this: idle
    underused_gpu_p95: Share = 0.3  # p95 utilisation below this: under-used
    min_change: Share = 0.1  # changes smaller than this share of the current value are not worth a review
    cpu_min_millicores: Annotated[int, pydantic.Field(ge=1)] = 10  # krr's floor
    memory_min_mib: Annotated[int, pydantic.Field(ge=1)] = 100


def declared(model: type[_Strict], document: dict, where: str):
    """Validate a declaration (a YAML mapping), naming the file and field of every problem."""
    try:
        return model.model_validate(document)
    except pydantic.ValidationError as exc:
        problems = validation_problems(exc)
        raise BadInputError(f"{where}: {problems}") from None


@dataclass(frozen=True)
class ResourcePrices:
    """Price of a requested vCPU and GiB of memory per hour (OpenCost prices requests this way)."""

    cpu_per_core_hour: Decimal
    memory_per_gib_hour: Decimal

    def __post_init__(self) -> None:
        for name in ("cpu_per_core_hour", "memory_per_gib_hour"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise BadInputError(f"resource prices: {name} must be a non-negative Decimal, not {value!r}")


PriceOf = Callable[[str], Decimal]


@dataclass(frozen=True)
class ServingCase:
    """What the serving rules read for one model version: its telemetry (the tidy table of
    telemetry.py), how it is served, the evidence window, and prices: `price_of(instance_type)`
    in `currency` per hour (LookupError when unknown), and per requested core and GiB-hour."""

    table: pd.DataFrame
    profile: ServingProfile
    window: EvidenceWindow
    price_of: PriceOf
    prices: ResourcePrices | None = None
    settings: RuleSettings = field(default_factory=RuleSettings)
    currency: str = "USD"

    def usage(self, metrics: list[str]) -> Usage | str:
        p, s = self.profile, self.settings
        return summarise_usage(self.table, p.model, p.version, metrics, self.window, s.min_coverage, s.min_samples)

    def price(self, instance_type: str) -> Decimal | None:
        try:
            price = self.price_of(instance_type)
        except LookupError:
            return None
        if not isinstance(price, Decimal) or not price.is_finite() or price < 0:
            raise BadInputError(f"price of {instance_type}: {price!r} is not a non-negative Decimal per hour")
        return price

    def skip(self, kind: Kind, reason: str) -> Skipped:
        return Skipped(kind, self.profile.model, self.profile.version, reason)

    def recommend(self, kind: Kind, field: str, evidence: Evidence, current, proposed, savings, why: str):
        p = self.profile
        return Recommendation(kind, p.model, p.version, "gitops", field, evidence, current, proposed, savings,
                              self.currency, why)  # fmt: skip


def _monthly(hourly: Decimal) -> Decimal:
    return (hourly * HOURS_PER_MONTH).quantize(CENT, ROUND_HALF_UP)


def _ceil(x: float) -> int:
    return math.ceil(x - 1e-9)  # 3 × 1.2 / 3.6 is 1.0000000000000002, one replica, not two


# -- krr's simple strategy: requests ------------------------------------------------------------------
def cpu_quantity(millicores: int) -> str:
    return f"{millicores}m"


def memory_quantity(n_bytes: int) -> str:
    for suffix, unit in (("Gi", GIB), ("Mi", MIB), ("Ki", 1024)):
        if n_bytes % unit == 0:
            return f"{n_bytes // unit}{suffix}"
    return str(n_bytes)


def right_size_requests(case: ServingCase) -> list[Outcome]:
    """CPU request = the p95 of CPU usage (per replica, the largest), memory request = the peak
    memory plus 15 %, as krr's simple strategy; priced per requested core and GiB-hour."""
    profile, settings, currency, out = case.profile, case.settings, case.currency, []
    rules = (
        ("cpu_request", "cpu_cores", CPU_FIELD, profile.cpu_request_cores),
        ("memory_request", "memory_bytes", MEMORY_FIELD, profile.memory_request_bytes),
    )
    for kind, metric, field_name, current in rules:
        usage = case.usage([metric])
        if current is None or case.prices is None or isinstance(usage, str):
            missing = "no current request declared" if current is None else "no resource prices given"
            out.append(case.skip(kind, usage if isinstance(usage, str) else missing))
            continue
        if kind == "cpu_request":
            p = usage.per_replica_percentile(metric, settings.cpu_percentile)
            new = max(settings.cpu_min_millicores, math.ceil(p * 1000 - 1e-9))
            old = round(current * 1000)
            delta_units = Decimal(old - new) / 1000
            unit_price, old_q, new_q = case.prices.cpu_per_core_hour, cpu_quantity(old), cpu_quantity(new)
            why = f"p{settings.cpu_percentile:g} of CPU usage is {p:.4f} cores (the largest across replicas)"
        else:
            peak = usage.peak(metric)
            new = max(settings.memory_min_mib, math.ceil(peak * (1 + settings.memory_buffer) / MIB - 1e-9)) * MIB
            old = int(current)
            delta_units = Decimal(old - new) / GIB
            unit_price, old_q, new_q = case.prices.memory_per_gib_hour, memory_quantity(old), memory_quantity(new)
            why = f"peak memory is {peak / MIB:.1f} MiB, plus {settings.memory_buffer:.0%}"
        if abs(new - old) < settings.min_change * old:
            out.append(case.skip(kind, f"{why}: {new_q} is within {settings.min_change:.0%} of the current {old_q}"))
            continue
        savings = _monthly(delta_units * unit_price * profile.replicas)
        direction = "saves" if savings >= 0 else "costs more, as usage is above the request:"
        rationale = (
            f"{why}; request {old_q} -> {new_q} on {profile.replicas} replicas at {unit_price} {currency} per "
            f"{'core' if kind == 'cpu_request' else 'GiB'}-hour {direction} {abs(savings)} {currency} a month"
        )
        out.append(case.recommend(kind, field_name, usage.evidence, old_q, new_q, savings, rationale))
    return out


# -- replicas ----------------------------------------------------------------------------------------
def recommend_replicas(case: ServingCase) -> Outcome:
    """The fewest replicas whose capacity holds the summed p95 CPU, the peak throughput and (on GPU
    nodes) the summed p95 GPU utilisation, each plus the headroom."""
    profile, settings, currency = case.profile, case.settings, case.currency
    shape, h, q = profile.shape, settings.headroom, settings.cpu_percentile
    if shape.inferences_per_s is None:
        return case.skip("replicas", f"no measured throughput per replica declared for {shape.name}")
    usage = case.usage(["cpu_cores", "inferences_per_s"] + (["gpu_utilisation"] if shape.gpus else []))
    if isinstance(usage, str):
        return case.skip("replicas", usage)
    cpu = float(np.percentile(usage.summed("cpu_cores"), q))
    peak = float(usage.summed("inferences_per_s").max())
    needs = {
        "CPU": (_ceil(cpu * (1 + h) / shape.vcpu), f"summed p{q:g} CPU {cpu:.3f} cores"),
        "throughput": (_ceil(peak * (1 + h) / shape.inferences_per_s), f"peak {peak:.2f} inferences/s"),
    }
    if shape.gpus:
        gpu = float(np.percentile(usage.summed("gpu_utilisation"), q))
        needs["GPU"] = (_ceil(gpu * (1 + h) / shape.gpus), f"summed p{q:g} GPU {gpu:.3f}")
    proposed = max(profile.min_replicas, *(n for n, _ in needs.values()))
    detail = "; ".join(f"{what}: {text} + {h:.0%} needs {n}" for what, (n, text) in needs.items())
    if proposed >= profile.replicas:
        return case.skip("replicas", f"{detail}; {profile.replicas} replicas are not over-provisioned")
    price = case.price(shape.name)
    if price is None:
        return case.skip("replicas", f"no price for {shape.name}")
    savings = _monthly((profile.replicas - proposed) * price)
    rationale = (
        f"{detail} (at least {profile.min_replicas}); {profile.replicas} -> {proposed} replicas of {shape.name} "
        f"at {price} {currency}/h saves {savings} {currency} a month"
    )
    return case.recommend("replicas", REPLICAS_FIELD, usage.evidence, profile.replicas, proposed, savings, rationale)


# -- instance types and GPUs -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Need:
    cpu: float  # per replica, p95 (krr)
    memory: float  # per replica, peak plus the buffer
    throughput: float  # per replica, peak


def _misfit(shape: InstanceShape, need: _Need, h: float) -> str | None:
    if need.cpu * (1 + h) > shape.vcpu + 1e-9:
        return f"{shape.name}: {shape.vcpu:g} vCPU < {need.cpu:.3f} cores + {h:.0%}"
    if need.memory > shape.memory_gib * GIB:
        return f"{shape.name}: {shape.memory_gib:g} GiB < {need.memory / GIB:.2f} GiB"
    if shape.inferences_per_s is None:
        return f"{shape.name}: no measured throughput declared"
    if need.throughput * (1 + h) > shape.inferences_per_s + 1e-9:
        return f"{shape.name}: {shape.inferences_per_s:g}/s < {need.throughput:.2f}/s + {h:.0%}"
    return None


def _instance_change(
    case: ServingCase, kind: Kind, allowed: Callable[[InstanceShape], bool], why: str, extra: tuple[str, ...] = ()
) -> Outcome:
    """The cheapest allowed candidate that carries the per-replica load and costs less than the
    current type, with why the others were passed over."""
    profile, settings, currency = case.profile, case.settings, case.currency
    usage = case.usage(["cpu_cores", "memory_bytes", "inferences_per_s", *extra])
    if isinstance(usage, str):
        return case.skip(kind, usage)
    need = _Need(
        usage.per_replica_percentile("cpu_cores", settings.cpu_percentile),
        usage.peak("memory_bytes") * (1 + settings.memory_buffer),
        usage.peak("inferences_per_s"),
    )
    current = case.price(profile.instance_type)
    if current is None:
        return case.skip(kind, f"no price for the current instance type {profile.instance_type}")
    passed_over, best, price = [], None, None
    for shape in profile.candidates:
        if shape.name == profile.instance_type or not allowed(shape):
            continue
        reason, cost = _misfit(shape, need, settings.headroom), case.price(shape.name)
        if reason is None and cost is None:
            reason = f"{shape.name}: no price"
        if reason is None and cost >= current:
            reason = f"{shape.name}: {cost}/h is not cheaper"
        if reason:
            passed_over.append(reason)
        elif price is None or cost < price:
            best, price = shape, cost
    if best is None:
        return case.skip(kind, f"{why}; no declared candidate fits and costs less ({'; '.join(passed_over) or 'none'})")
    savings = _monthly((current - price) * profile.replicas)
    rationale = (
        f"{why}; per replica p{settings.cpu_percentile:g} CPU {need.cpu:.3f} cores, peak memory + "
        f"{settings.memory_buffer:.0%} {need.memory / GIB:.2f} GiB, peak {need.throughput:.2f} inferences/s, "
        f"headroom {settings.headroom:.0%}: {best.name} ({best.vcpu:g} vCPU, {best.memory_gib:g} GiB, {best.gpus} GPU, "
        f"{best.inferences_per_s:g}/s) at {price} {currency}/h instead of {profile.instance_type} at {current} "
        f"{currency}/h on {profile.replicas} replicas saves {savings} {currency} a month"
        + (f". Passed over: {'; '.join(passed_over)}" if passed_over else "")
    )
    return case.recommend(kind, INSTANCE_FIELD, usage.evidence, profile.instance_type, best.name, savings, rationale)


def recommend_instance_type(case: ServingCase) -> Outcome:
    """The cheapest declared instance type with as many GPUs whose vCPU, memory and measured
    throughput hold the per-replica p95 CPU, peak memory plus the buffer and peak throughput."""
    gpus, current = case.profile.shape.gpus, case.profile.instance_type
    why = f"{current} costs more than a type that carries the measured load"
    return _instance_change(case, "instance_type", lambda s: s.gpus == gpus, why)


def recommend_gpu(case: ServingCase) -> Outcome:
    """Idle GPUs (utilisation never above `idle_gpu_max`): the cheapest type without a GPU that
    carries the load. Under-used (p95 below `underused_gpu_p95`): the cheapest type with fewer GPUs,
    still enough for the p95 plus the headroom."""
    settings, shape, q = case.settings, case.profile.shape, case.settings.cpu_percentile
    if shape.gpus == 0:
        return case.skip("idle_gpu", f"{shape.name} has no GPU")
    usage = case.usage(["gpu_utilisation"])
    if isinstance(usage, str):
        return case.skip("idle_gpu", usage)
    peak, p95 = usage.peak("gpu_utilisation"), usage.per_replica_percentile("gpu_utilisation", q)
    if peak <= settings.idle_gpu_max:
        why = f"GPU utilisation never above {peak:.1%} (idle at or below {settings.idle_gpu_max:.0%})"
        return _instance_change(case, "idle_gpu", lambda s: s.gpus == 0, why, ("gpu_utilisation",))
    if p95 >= settings.underused_gpu_p95:
        return case.skip(
            "underused_gpu", f"GPU p{q:g} utilisation {p95:.1%} is not below {settings.underused_gpu_p95:.0%}"
        )
    needed = max(1, _ceil(shape.gpus * p95 * (1 + settings.headroom)))
    why = (
        f"GPU p{q:g} utilisation {p95:.1%} of {shape.gpus} GPU (under-used below "
        f"{settings.underused_gpu_p95:.0%}) needs {needed} GPU with {settings.headroom:.0%} headroom"
    )
    return _instance_change(case, "underused_gpu", lambda s: needed <= s.gpus < shape.gpus, why, ("gpu_utilisation",))


def recommend_serving(case: ServingCase) -> tuple[list[Recommendation], list[Skipped]]:
    """Every serving rule for one model version: what is recommended, and what was not and why."""
    outcomes = [
        *right_size_requests(case),
        recommend_replicas(case),
        recommend_instance_type(case),
        recommend_gpu(case),
    ]
    return [o for o in outcomes if isinstance(o, Recommendation)], [o for o in outcomes if isinstance(o, Skipped)]


# -- commitments -------------------------------------------------------------------------------------
LEDGER_COLUMNS = (
    "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "PricingCategory", "ServiceCategory",
    "EffectiveCost", "ListCost", "CommitmentDiscountId", "CommitmentDiscountStatus", "BillingCurrency",
)  # fmt: skip


def _dec(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def recommend_commitment(
    ledger: pd.DataFrame,
    start: datetime,
    end: datetime,
    discount_rate: Decimal,
    percentile: float = 10.0,
    min_coverage: float = 0.9,
    min_days: int = 7,
) -> Outcome:
    """Commitment coverage of eligible compute usage (ChargeCategory Usage, ServiceCategory
    Compute) over [start, end), from the ledger's rows, and a commitment to buy for the steady
    uncovered baseline.

    Coverage is measured on the on-demand equivalent (ListCost): covered / (covered + on-demand).
    Each on-demand row's EffectiveCost is spread evenly over the hours of its charge period (a
    daily row over 24 hours); the baseline is the `percentile` (a low one) of those hourly
    amounts, so the commitment is used in full in all but that share of hours. Bought at
    `discount_rate` off on-demand, it costs baseline × (1 − rate) an hour and saves
    baseline × rate × 730 a month."""
    skip = lambda reason: Skipped("commitment_coverage", None, None, reason)  # noqa: E731
    missing = [c for c in LEDGER_COLUMNS if c not in ledger.columns]
    if missing:
        raise BadInputError(f"cost ledger: missing columns {missing}")
    if not isinstance(discount_rate, Decimal) or not Decimal(0) < discount_rate < Decimal(1):
        raise BadInputError(f"commitment discount rate {discount_rate!r}: a Decimal between 0 and 1")
    window = EvidenceWindow(start, end, timedelta(hours=1))
    begin, finish = pd.Timestamp(start), pd.Timestamp(end)
    rows = ledger[(ledger["ChargePeriodStart"] < finish) & (ledger["ChargePeriodEnd"] > begin)]
    days = pd.date_range(begin.floor("D"), finish - pd.Timedelta(microseconds=1), freq="D")
    seen = {d.floor("D") for d in rows["ChargePeriodStart"].clip(lower=begin)}
    share_days = len(seen & set(days)) / len(days)
    if len(days) < min_days:
        return skip(f"the window has {len(days)} days, fewer than the {min_days} required")
    if share_days + 1e-12 < min_coverage:
        return skip(
            f"ledger rows on {share_days:.1%} of the window's days, below {min_coverage:.0%}; gaps are not filled"
        )
    currencies = set(rows["BillingCurrency"].dropna())
    if len(currencies) != 1:
        return skip(f"one billing currency is needed, found {sorted(currencies) or 'none'}")
    currency = currencies.pop()
    status = rows["CommitmentDiscountStatus"].fillna("")
    usage = rows[(rows["ChargeCategory"] == "Usage") & (rows["ServiceCategory"] == "Compute") & (status != "Unused")]
    # eligible: covered by a commitment, or on demand (PricingCategory Standard); spot is not
    eligible = usage[usage["CommitmentDiscountId"].notna() | (usage["PricingCategory"] == "Standard")]
    committed = eligible["CommitmentDiscountId"].notna()
    on_demand = eligible[~committed]
    covered = eligible[committed]
    if eligible["ListCost"].isna().any() or on_demand["EffectiveCost"].isna().any():
        raise BadInputError("cost ledger: an eligible compute usage row has no ListCost or EffectiveCost")
    covered_list = sum((_dec(v) for v in covered["ListCost"]), Decimal(0))
    on_demand_list = sum((_dec(v) for v in on_demand["ListCost"]), Decimal(0))
    if covered_list + on_demand_list == 0:
        return skip("no eligible compute usage in the window")
    share_now = covered_list / (covered_list + on_demand_list)
    commitment_rows = rows[rows["CommitmentDiscountId"].notna() & (rows["ChargeCategory"] == "Usage")]
    held = sum((_dec(v) for v in commitment_rows["EffectiveCost"]), Decimal(0)) / Decimal(window.steps)

    # Spread each on-demand row over the hours of the window it covers (a difference array).
    hourly = np.zeros(window.steps + 1)
    starts = on_demand["ChargePeriodStart"].clip(lower=begin)
    ends = on_demand["ChargePeriodEnd"].clip(upper=finish)
    length = (on_demand["ChargePeriodEnd"] - on_demand["ChargePeriodStart"]) / pd.Timedelta(hours=1)
    first = ((starts - begin) // pd.Timedelta(hours=1)).to_numpy(dtype="int64")
    last = np.ceil((ends - begin) / pd.Timedelta(hours=1)).to_numpy(dtype="int64")
    rate = on_demand["EffectiveCost"].astype("float64").to_numpy() / np.maximum(length.to_numpy(dtype="float64"), 1e-9)
    np.add.at(hourly, first, rate)
    np.add.at(hourly, last, -rate)
    hourly = np.cumsum(hourly)[:-1]
    baseline = Decimal(repr(float(np.percentile(hourly, percentile)))).quantize(Decimal("0.001"), ROUND_DOWN)
    evidence = Evidence(start, end, 3600.0, len(eligible), share_days)
    if baseline <= 0:
        return skip(
            f"coverage {share_now:.1%}; at the p{percentile:g} hour on-demand compute spend is 0: no steady "
            "uncovered baseline to commit to"
        )
    purchase = (baseline * (1 - discount_rate)).quantize(Decimal("0.001"), ROUND_UP)
    savings = _monthly(baseline * discount_rate)
    after = (covered_list + baseline * window.steps) / (covered_list + on_demand_list)
    rationale = (
        f"Commitment coverage of eligible compute usage is {share_now:.1%} (on-demand equivalent). In "
        f"{100 - percentile:g}% of hours on-demand compute spend is at least {baseline} {currency}; a commitment "
        f"of {purchase} {currency}/h at {discount_rate:.0%} off covers it, raising coverage to about "
        f"{min(after, Decimal(1)):.1%} and saving {baseline} × {discount_rate} × 730 = {savings} {currency} a month"
    )
    current = held.quantize(Decimal("0.001"), ROUND_HALF_UP)
    return Recommendation(
        "commitment_coverage", None, None, "policy", COMMITMENT_FIELD, evidence,
        current, current + purchase, savings, currency, rationale,
    )  # fmt: skip


# -- budgets -----------------------------------------------------------------------------------------
def recommend_budget(
    model: str,
    version: str,
    daily_cost_per_inference: Mapping[date, Decimal],
    first_day: date,
    last_day: date,
    current_max: Decimal,
    margin: float = 0.25,
    min_change: float = 0.25,
    min_coverage: float = 0.9,
    field: str = BUDGET_FIELD,
    currency: str = "USD",
) -> Outcome:
    """A tighter cost-per-inference budget for the policies: the highest measured day plus a margin,
    proposed when it is well under the current budget. A measured day above the budget is a cost
    problem, not a budget to raise: nothing is proposed. A budget saves nothing by itself."""
    skip = lambda reason: Skipped("budget", model, version, reason)  # noqa: E731
    expected = (last_day - first_day).days + 1
    values = {d: _dec(v) for d, v in daily_cost_per_inference.items() if first_day <= d <= last_day}
    if expected <= 0 or len(values) / expected + 1e-12 < min_coverage:
        return skip(f"cost per inference on {len(values)} of {expected} days, below {min_coverage:.0%}")
    highest = max(values.values())
    current = _dec(current_max)
    if highest > current:
        return skip(f"the highest day, {highest}, is above the budget {current}: a cost to fix, not a budget to raise")
    proposed = (highest * Decimal(str(1 + margin))).quantize(Decimal("0.0001"), ROUND_UP)
    if proposed > current * Decimal(str(1 - min_change)):
        return skip(f"the highest day {highest} + {margin:.0%} is {proposed}, close to the budget {current}")
    start = datetime.combine(first_day, datetime.min.time(), tzinfo=timezone.utc)
    evidence = Evidence(start, start + timedelta(days=expected), 86400.0, len(values), len(values) / expected)
    rationale = (
        f"The highest daily cost per inference over {len(values)} days is {highest} {currency}; the budget "
        f"{current} allows {current / highest:.1f}× that. {highest} + {margin:.0%} = {proposed} keeps the margin "
        "and catches a regression sooner. A budget saves nothing by itself: monthly savings 0"
    )
    return Recommendation(
        "budget", model, version, "policy", field, evidence, current, proposed, Decimal("0.00"), currency, rationale
    )
