"""The model registry: one YAML file per model declaring what to monitor and how it is served.

Snapshots, reports and governance facts are driven by these declarations, so adding a file adds a
monitored model with no code change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import pydantic

from rai_pipelines.core.errors import BadInputError, validation_problems
from rai_pipelines.core.yamlfile import read_yaml_mapping

# A model version ends up in file paths, Git commit messages, kustomize fields and CLI arguments:
# allow only what is safe in all of them (no '/', no '..', no shell metacharacters).
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def validate_model_version(version: object, where: str = "model version") -> str:
    if not isinstance(version, str) or not _VERSION_RE.match(version) or ".." in version:
        raise BadInputError(
            f"{where}: {version!r} is not a valid model version (letters, digits, '.', '_', '-'; "
            "no '/', '..', spaces or shell characters; at most 63 characters)"
        )
    return version


def validate_model_name(name: object, where: str = "model name") -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise BadInputError(f"{where}: {name!r} is not a valid model name (a Kubernetes DNS label)")
    return name


@dataclass(frozen=True)
class Serving:
    """A version's declared serving resources. Their price comes from the cloud's catalogue
    (costs.prices), never from a figure typed into the registry."""

    provider: str  # aws or gcp: whose catalogue prices the instance
    region: str  # the provider's region code (eu-west-1, europe-west1)
    instance_type: str  # an EC2 instance type, or a Compute Engine machine type
    replicas: int
    gpus: int = 0  # GCP: accelerators attached per replica (AWS GPU instances carry theirs in the type)
    gpu_type: str | None = None
    expected_inferences_per_day: int | None = None  # the declared throughput, for the estimate before deployment


@dataclass(frozen=True)
class ModelVersion:
    version: str
    image: str
    decision_threshold: float
    serving: Serving


@dataclass(frozen=True)
class Sampling:
    """At most max_rows rows a day, drawn within each stratum in proportion to its size, with a
    fixed seed so that a re-materialised day draws the same rows."""

    max_rows: int | None = None
    stratify_by: tuple[str, ...] = ("model_version",)
    seed: int = 0


@dataclass(frozen=True)
class ExplanationSettings:
    """Attributions of the model's scores: from the model's own LightGBM text model (`model`, a path
    inside the registry folder) or, without one, a surrogate trained on the reference; `min_fidelity`
    is the R² against the logged scores below which the attributions are not used."""

    model: str | None = None
    min_fidelity: float = 0.8
    max_rows: int = 10_000


@dataclass(frozen=True)
class ReferenceWindow:
    """The reference the reports compare against: the training data the model was built on (the
    lake's reference dataset), or a fixed period of the model's own snapshots, start to end inclusive."""

    start: str | None = None
    end: str | None = None

    @property
    def is_period(self) -> bool:
        return self.start is not None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    team: str
    numeric_features: tuple[str, ...]
    categorical_features: tuple[str, ...]
    score_column: str
    decision_column: str
    favourable_outcome: int
    label_column: str | None
    protected_attributes: tuple[str, ...]
    enforced_protected_attributes: tuple[str, ...]
    min_group_size: int
    drift_p_value: float
    drift_correction: str
    versions: dict[str, ModelVersion] = field(default_factory=dict)
    source: str = ""
    drift_backend: str = "columnar"
    drift_min_effect_size: float = 0.1
    drift_window_days: int = 1  # 1: the day's traffic; 7: the week ending that day
    drift_multivariate: str = "none"  # or "classifier": a domain classifier over all features
    intersections: tuple[tuple[str, ...], ...] = ()
    pii_columns: tuple[str, ...] = ()
    sampling: Sampling = field(default_factory=Sampling)
    reference: ReferenceWindow = field(default_factory=ReferenceWindow)
    label_max_delay_days: int = 30
    # feature -> the share of a day's rows that may lack it; a feature not named is required
    missing_tolerance: dict[str, float] = field(default_factory=dict)
    fairness_min_coverage: float = 0.9  # share of the rows a fairness score must cover
    fairness_low_coverage: str = "withhold"  # or "warn": keep the score and flag it
    explanations: ExplanationSettings | None = None  # declared: an explanation_report asset

    @property
    def optional_features(self) -> tuple[str, ...]:
        return tuple(f for f in self.features if f in self.missing_tolerance)

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric_features + self.categorical_features

    @property
    def asset_prefix(self) -> str:
        return self.name.replace("-", "_")

    def version(self, version: str) -> ModelVersion:
        try:
            return self.versions[version]
        except KeyError:
            raise BadInputError(
                f"model {self.name}: version {version!r} is not declared in {self.source} "
                f"(declared: {', '.join(self.versions)})"
            ) from None


# Columns a feature snapshot writes itself: a feature, protected attribute or PII column of the same
# name would replace them (a feature named request_id would put the raw id where the pseudonym is).
RESERVED_COLUMNS = frozenset({"request_id", "timestamp", "model_version", "score", "decision", "label"})


class _Strict(pydantic.BaseModel):
    # Unknown keys are refused (a typo such as pii_colums must not switch protection off), and
    # values are not coerced between types (pii_columns: ssn is not the list s, s, n).
    model_config = pydantic.ConfigDict(extra="forbid", strict=True, frozen=True)


Name = Annotated[str, pydantic.StringConstraints(min_length=1, max_length=128)]


class _ServingDoc(_Strict):
    provider: Literal["aws", "gcp"]
    region: Annotated[str, pydantic.StringConstraints(pattern=r"^[a-z]{2,}(-[a-z0-9]+){1,3}$", max_length=32)]
    instance_type: Annotated[str, pydantic.StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{0,62}$")]
    replicas: Annotated[int, pydantic.Field(ge=1, le=10_000)]
    gpus: Annotated[int, pydantic.Field(ge=0, le=16)] = 0
    gpu_type: Name | None = None
    expected_inferences_per_day: Annotated[int, pydantic.Field(ge=1)] | None = None

    @pydantic.model_validator(mode="after")
    def _gpus_fit_the_provider(self) -> _ServingDoc:
        if self.provider == "aws" and (self.gpus or self.gpu_type):
            raise ValueError("an EC2 instance type carries its GPUs: gpus and gpu_type are for GCP machine types")
        if self.provider == "gcp" and bool(self.gpus) != bool(self.gpu_type):
            raise ValueError("gpus and gpu_type go together (how many accelerators of which type per replica)")
        return self


class _VersionDoc(_Strict):
    image: Name
    decision_threshold: Annotated[float, pydantic.Field(ge=0, le=1, allow_inf_nan=False)] = 0.5
    serving: _ServingDoc


Share = Annotated[float, pydantic.Field(ge=0, lt=1, allow_inf_nan=False)]


class _FeaturesDoc(_Strict):
    numeric: list[Name] = []
    categorical: list[Name] = []
    # Real traffic has gaps: a feature named here may be missing from up to this share of a day's
    # rows (the day is blocked beyond it); one not named is required (a missing value blocks the day).
    missing_tolerance: dict[Name, Share] = {}


class _DriftDoc(_Strict):
    backend: Literal["columnar", "alibi-detect"] = "columnar"
    window: Literal["daily", "weekly"] = "daily"
    p_value: Annotated[float, pydantic.Field(gt=0, lt=1)] = 0.05
    correction: Literal["bonferroni", "fdr"] = "bonferroni"
    min_effect_size: Annotated[float, pydantic.Field(ge=0, allow_inf_nan=False)] = 0.1
    multivariate: Literal["none", "classifier"] = "none"


class _FairnessDoc(_Strict):
    min_group_size: Annotated[int, pydantic.Field(ge=1)] = 100
    min_coverage: Annotated[float, pydantic.Field(ge=0, le=1, allow_inf_nan=False)] = 0.9
    low_coverage: Literal["withhold", "warn"] = "withhold"
    intersections: list[list[Name]] = []


class _SamplingDoc(_Strict):
    max_rows: Annotated[int, pydantic.Field(ge=1)] | None = None
    stratify_by: list[Name] = ["model_version"]
    seed: int = 0


class _ReferenceDoc(_Strict):
    source: Literal["training", "period"] = "training"
    # a date, or an ISO date string (YYYY-MM-DD) as quoted YAML writes it
    start: date | None = pydantic.Field(default=None, strict=False)
    end: date | None = pydantic.Field(default=None, strict=False)


class _ExplanationsDoc(_Strict):
    model: Name | None = None
    min_fidelity: Annotated[float, pydantic.Field(ge=0, le=1, allow_inf_nan=False)] = 0.8
    max_rows: Annotated[int, pydantic.Field(ge=100, le=1_000_000)] = 10_000


class _LabelsDoc(_Strict):
    max_delay_days: Annotated[int, pydantic.Field(ge=0, le=366)] = 30


class _ModelDoc(_Strict):
    name: Name
    description: str = ""
    team: str = ""
    features: _FeaturesDoc
    score_column: Name
    decision_column: Name
    favourable_outcome: int = 1
    label_column: Name | None = None
    protected_attributes: dict[Name, Literal["enforce", "report"]] | None = None
    pii_columns: list[Name] = []
    labels: _LabelsDoc = _LabelsDoc()
    reference: _ReferenceDoc = _ReferenceDoc()
    sampling: _SamplingDoc = _SamplingDoc()
    drift: _DriftDoc = _DriftDoc()
    fairness: _FairnessDoc = _FairnessDoc()
    explanations: _ExplanationsDoc | None = None
    versions: dict[str, _VersionDoc] = pydantic.Field(min_length=1)


def _model_doc(document: dict, path: Path) -> _ModelDoc:
    # YAML reads a date written as 2023-11-01 as a date and a bare 1.0 as a float: both as declared.
    try:
        return _ModelDoc.model_validate(document)
    except pydantic.ValidationError as exc:
        problems = validation_problems(exc)
        raise BadInputError(f"{path}: {problems}") from None


def load_model_spec(path: Path) -> ModelSpec:
    doc = _model_doc(read_yaml_mapping(path), path)
    name = validate_model_name(doc.name, f"{path}: name")
    versions = {}
    for version, vdoc in doc.versions.items():
        validate_model_version(version, f"{path}: versions")
        versions[version] = ModelVersion(
            version=version,
            image=vdoc.image,
            decision_threshold=vdoc.decision_threshold,
            serving=Serving(**vdoc.serving.model_dump()),
        )
    protected = doc.protected_attributes or {}
    numeric, categorical = tuple(doc.features.numeric), tuple(doc.features.categorical)
    pii = tuple(doc.pii_columns)
    for field_name, names in (
        ("features", numeric + categorical),
        ("protected_attributes", tuple(protected)),
        ("pii_columns", pii),
    ):
        reserved = sorted(n for n in names if n in RESERVED_COLUMNS or n.startswith("protected__"))
        if reserved:
            raise BadInputError(
                f"{path}: {field_name} {', '.join(reserved)}: reserved for the snapshot's own columns "
                f"({', '.join(sorted(RESERVED_COLUMNS))}, protected__*)"
            )
    undeclared = sorted(set(doc.features.missing_tolerance) - set(numeric + categorical))
    if undeclared:
        raise BadInputError(f"{path}: features.missing_tolerance names {', '.join(undeclared)}, not declared features")
    if doc.features.missing_tolerance and doc.drift.backend == "alibi-detect":
        raise BadInputError(
            f"{path}: features.missing_tolerance needs drift.backend columnar "
            "(alibi-detect tests complete features only)"
        )
    overlap = sorted(set(protected) & (set(numeric) | set(categorical)))
    if overlap:
        raise BadInputError(
            f"{path}: protected attribute(s) {', '.join(overlap)} are also declared as features; their values "
            "would reach drift plots and reports outside the restricted columns"
        )
    leaked = sorted(set(pii) & (set(numeric) | set(categorical) | set(protected)))
    if leaked:
        raise BadInputError(f"{path}: pii_columns {', '.join(leaked)} are also declared as features or protected")
    intersections = []
    for members in doc.fairness.intersections:
        unknown = [m for m in members if m not in protected]
        if len(members) < 2 or unknown:
            raise BadInputError(
                f"{path}: fairness.intersections entry {members!r} must name two or more protected attributes"
            )
        intersections.append(tuple(members))
    return ModelSpec(
        name=name,
        description=doc.description,
        team=doc.team,
        numeric_features=numeric,
        categorical_features=categorical,
        score_column=doc.score_column,
        decision_column=doc.decision_column,
        favourable_outcome=doc.favourable_outcome,
        label_column=doc.label_column,
        protected_attributes=tuple(protected),
        enforced_protected_attributes=tuple(a for a, m in protected.items() if m == "enforce"),
        min_group_size=doc.fairness.min_group_size,
        drift_p_value=doc.drift.p_value,
        drift_correction=doc.drift.correction,
        versions=versions,
        source=str(path),
        drift_backend=doc.drift.backend,
        drift_min_effect_size=doc.drift.min_effect_size,
        drift_window_days={"daily": 1, "weekly": 7}[doc.drift.window],
        drift_multivariate=doc.drift.multivariate,
        intersections=tuple(intersections),
        pii_columns=pii,
        sampling=Sampling(doc.sampling.max_rows, tuple(doc.sampling.stratify_by), doc.sampling.seed),
        reference=_reference(doc.reference, f"{path}: reference"),
        label_max_delay_days=doc.labels.max_delay_days,
        missing_tolerance=dict(doc.features.missing_tolerance),
        explanations=_explanations(doc.explanations, path),
        fairness_min_coverage=doc.fairness.min_coverage,
        fairness_low_coverage=doc.fairness.low_coverage,
    )


def _explanations(doc: _ExplanationsDoc | None, path: Path) -> ExplanationSettings | None:
    if doc is None:
        return None
    model = None
    if doc.model is not None:
        # A model file the registry names is read by the pipeline: only from the registry's own folder.
        folder = path.parent.resolve()
        target = (folder / doc.model).resolve()
        if not target.is_relative_to(folder):
            raise BadInputError(f"{path}: explanations.model {doc.model} is outside the registry folder {folder}")
        model = str(target)
    return ExplanationSettings(model, doc.min_fidelity, doc.max_rows)


def _reference(doc: _ReferenceDoc, where: str) -> ReferenceWindow:
    if doc.source == "training":
        if doc.start or doc.end:
            raise BadInputError(f"{where}: start and end belong to a period reference (source: period)")
        return ReferenceWindow()
    if doc.start is None or doc.end is None:
        raise BadInputError(f"{where}: a period reference needs start and end dates (YYYY-MM-DD)")
    if doc.end < doc.start:
        raise BadInputError(f"{where}: end {doc.end} is before start {doc.start}")
    return ReferenceWindow(doc.start.isoformat(), doc.end.isoformat())


def _model_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise BadInputError(f"model registry {directory} is not a directory")
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.startswith("."))


def load_registry(directory: str | Path) -> dict[str, ModelSpec]:
    """Every model file (`*.yaml` or `*.yml`); the first bad one is an error. What decides (the
    policies, the gate) reads the registry this way: a model file that cannot be read fails closed."""
    specs, problems = load_registry_reporting(directory)
    if problems:
        raise BadInputError(next(iter(problems.values())))
    return specs


def load_registry_reporting(directory: str | Path) -> tuple[dict[str, ModelSpec], dict[str, str]]:
    """The valid models, and the problem of each file that is not one (by path): the code location
    loads the other models when one file is bad, and reports it."""
    specs: dict[str, ModelSpec] = {}
    problems: dict[str, str] = {}
    owners: dict[str, ModelSpec] = {}  # version -> the model that declared it first
    for path in _model_files(Path(directory)):
        try:
            spec = load_model_spec(path)
            if spec.name in specs:
                raise BadInputError(f"{path}: model {spec.name} is also declared in {specs[spec.name].source}")
            # The policies look facts up by version alone (data.ai_models), so a version names one model.
            taken = [(v, owners[v]) for v in spec.versions if v in owners]
            if taken:
                version, owner = taken[0]
                raise BadInputError(
                    f"{path}: versions: {version!r} is also a version of {owner.name} ({owner.source}); "
                    "a model version must be unique across models"
                )
        except BadInputError as exc:
            problems[str(path)] = str(exc)
            continue
        specs[spec.name] = spec
        owners.update(dict.fromkeys(spec.versions, spec))
    return specs, problems
