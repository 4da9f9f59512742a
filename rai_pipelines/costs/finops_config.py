"""The FinOps declarations, one YAML file in Git (`costs/finops.yaml` by default): how shared cost is
allocated, when a cost movement is an anomaly, how old a catalogue price may be, how utilisation
telemetry is read, and what rightsizing may propose. Every section is checked strictly (unknown
keys and mistyped values are refused, naming the field); a missing file means the defaults, said so."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pydantic

from rai_pipelines.core.errors import BadInputError, validation_problems
from rai_pipelines.core.registry import validate_model_name
from rai_pipelines.core.yamlfile import read_yaml_mapping
from rai_pipelines.costs.allocation_rules import AllocationRules
from rai_pipelines.costs.anomalies import AnomalyConfig
from rai_pipelines.costs.recommendations import InstanceShape, RuleSettings
from rai_pipelines.costs.telemetry import LabelMap


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True, frozen=True)


class PricesDoc(_Strict):
    max_age_days: Annotated[int, pydantic.Field(ge=0, le=90)] = 7  # a cached price younger than this is used as is


class ForecastDoc(_Strict):
    level: Annotated[float, pydantic.Field(gt=0.5, lt=1)] = 0.8  # AWS Cost Explorer's 80% interval
    history_days: Annotated[int, pydantic.Field(ge=14, le=1100)] = 400  # days of the lake a forecast reads


class TelemetryDoc(_Strict):
    """Saved Prometheus `query_range` responses, `<telemetry root>/prometheus/<day>/<metric>.json`
    (cpu_cores, memory_bytes, gpu_utilisation, inferences_per_s), or Parquet at
    `<telemetry root>/parquet/<day>.parquet`."""

    format: Literal["prometheus", "parquet"] = "prometheus"
    labels: LabelMap = LabelMap()
    step_seconds: Annotated[int, pydantic.Field(ge=10, le=3600)] = 300
    gpu_utilisation_scale: Annotated[float, pydantic.Field(gt=0, le=1)] = 1.0  # 0.01 for DCGM's percent


class RightsizingDoc(_Strict):
    window_days: Annotated[int, pydantic.Field(ge=1, le=90)] = 7  # the evidence window, ending on the day
    settings: RuleSettings = RuleSettings()
    # per model, the instance types it may run on, with the throughput one replica measured on each
    instance_types: dict[str, Annotated[list[InstanceShape], pydantic.Field(min_length=1, max_length=100)]] = {}
    min_replicas: dict[str, Annotated[int, pydantic.Field(ge=1)]] = {}
    propose: bool = True  # push each recommendation as a branch (never merged)
    overlay: str = "apps/{model}/overlays/production"  # the GitOps folder holding the model's serving patch
    budget_margin: Annotated[float, pydantic.Field(ge=0, le=10)] = 0.25
    # the discount a commitment (Savings Plan, committed use) would buy, for the coverage rule; none:
    # coverage is not assessed
    commitment_discount_rate: Annotated[float, pydantic.Field(gt=0, lt=1)] | None = None
    policy_bundle_path: str = "policies"  # where the bundle sits in the policy repository

    @pydantic.field_validator("instance_types", "min_replicas")
    @classmethod
    def _models(cls, value: dict) -> dict:
        for name in value:
            validate_model_name(name, "rightsizing: model")
        return value

    @pydantic.field_validator("overlay")
    @classmethod
    def _overlay(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/") or "{model}" not in value:
            raise ValueError("a relative folder of the GitOps repository naming {model}, without '..'")
        return value

    @pydantic.field_validator("policy_bundle_path")
    @classmethod
    def _bundle_path(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/") or "{" in value:
            raise ValueError("a relative folder of the policy repository, without '..'")
        return value


class FinOpsConfig(_Strict):
    allocation: AllocationRules = AllocationRules()
    anomalies: AnomalyConfig = AnomalyConfig()
    forecast: ForecastDoc = ForecastDoc()
    prices: PricesDoc = PricesDoc()
    telemetry: TelemetryDoc = TelemetryDoc()
    rightsizing: RightsizingDoc = RightsizingDoc()
    source: str = "defaults"


def finops_config_from_mapping(document: object, where: str) -> FinOpsConfig:
    if not isinstance(document, dict):
        raise BadInputError(f"{where}: expected a mapping of FinOps declarations")
    if "source" in document:
        raise BadInputError(f"{where}: unknown key source")
    try:
        return FinOpsConfig.model_validate({**document, "source": where})
    except pydantic.ValidationError as exc:
        problems = validation_problems(exc)
        raise BadInputError(f"{where}: {problems}") from None


def load_finops_config(path: str | Path) -> FinOpsConfig:
    """The declarations of `path`; the defaults when there is no such file (no shared pools, AWS's
    style of anomaly thresholds, 7-day-old prices at most, no rightsizing candidates)."""
    if not Path(path).exists():
        return FinOpsConfig(source=f"defaults (no {path})")
    return finops_config_from_mapping(read_yaml_mapping(path), str(path))
