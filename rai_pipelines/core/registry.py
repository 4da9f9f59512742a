"""The model registry: one YAML file per model declaring what to monitor and how it is served.

Snapshots, reports and governance facts are driven by these declarations, so adding a file adds a
monitored model with no code change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from rai_pipelines.core.errors import BadInputError
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
    instance_type: str
    replicas: int
    usd_per_hour: float  # per replica, on-demand

    @property
    def usd_per_day(self) -> float:
        return self.usd_per_hour * self.replicas * 24


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


def _req(doc: dict, key: str, path: str):
    if key not in doc or doc[key] in (None, ""):
        raise BadInputError(f"{path}: missing required field {key!r}")
    return doc[key]


def load_model_spec(path: Path) -> ModelSpec:
    doc = read_yaml_mapping(path)
    name = validate_model_name(_req(doc, "name", str(path)), f"{path}: name")
    features = _req(doc, "features", str(path))
    versions = {}
    for version, vdoc in (_req(doc, "versions", str(path)) or {}).items():
        validate_model_version(version, f"{path}: versions")
        where = f"{path}: versions.{version}"
        serving = _req(vdoc, "serving", where)
        versions[version] = ModelVersion(
            version=version,
            image=str(_req(vdoc, "image", where)),
            decision_threshold=float(vdoc.get("decision_threshold", 0.5)),
            serving=Serving(
                instance_type=str(_req(serving, "instance_type", f"{where}.serving")),
                replicas=int(_req(serving, "replicas", f"{where}.serving")),
                usd_per_hour=float(_req(serving, "usd_per_hour", f"{where}.serving")),
            ),
        )
    protected = doc.get("protected_attributes") or {}
    if not isinstance(protected, dict):
        raise BadInputError(f"{path}: protected_attributes must map attribute -> 'enforce' or 'report'")
    for attr, mode in protected.items():
        if mode not in ("enforce", "report"):
            raise BadInputError(f"{path}: protected_attributes.{attr} must be 'enforce' or 'report', not {mode!r}")
    drift = doc.get("drift") or {}
    fairness = doc.get("fairness") or {}
    numeric = tuple(features.get("numeric") or ())
    categorical = tuple(features.get("categorical") or ())
    pii = tuple(doc.get("pii_columns") or ())
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
    for members in fairness.get("intersections") or []:
        unknown = [m for m in members or [] if m not in protected]
        if len(members or []) < 2 or unknown:
            raise BadInputError(
                f"{path}: fairness.intersections entry {members!r} must name two or more protected attributes"
            )
        intersections.append(tuple(members))
    return ModelSpec(
        name=name,
        description=str(doc.get("description", "")),
        team=str(doc.get("team", "")),
        numeric_features=numeric,
        categorical_features=categorical,
        score_column=str(_req(doc, "score_column", str(path))),
        decision_column=str(_req(doc, "decision_column", str(path))),
        favourable_outcome=int(doc.get("favourable_outcome", 1)),
        label_column=doc.get("label_column"),
        protected_attributes=tuple(protected),
        enforced_protected_attributes=tuple(a for a, m in protected.items() if m == "enforce"),
        min_group_size=int(fairness.get("min_group_size", 100)),
        drift_p_value=float(drift.get("p_value", 0.05)),
        drift_correction=str(drift.get("correction", "bonferroni")),
        versions=versions,
        source=str(path),
        drift_backend=_choice(drift.get("backend", "columnar"), ("columnar", "alibi-detect"), f"{path}: drift.backend"),
        drift_min_effect_size=float(drift.get("min_effect_size", 0.1)),
        drift_window_days={"daily": 1, "weekly": 7}[
            _choice(drift.get("window", "daily"), ("daily", "weekly"), f"{path}: drift.window")
        ],
        drift_multivariate=_choice(
            drift.get("multivariate", "none"), ("none", "classifier"), f"{path}: drift.multivariate"
        ),
        intersections=tuple(intersections),
        pii_columns=pii,
        sampling=_sampling(doc.get("sampling") or {}, f"{path}: sampling"),
        reference=_reference(doc.get("reference") or {}, f"{path}: reference"),
        label_max_delay_days=int((doc.get("labels") or {}).get("max_delay_days", 30)),
    )


def _choice(value, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise BadInputError(f"{where} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _sampling(doc: dict, where: str) -> Sampling:
    max_rows = doc.get("max_rows")
    if max_rows is not None and (not isinstance(max_rows, int) or max_rows <= 0):
        raise BadInputError(f"{where}.max_rows must be a positive whole number, not {max_rows!r}")
    return Sampling(
        max_rows=max_rows,
        stratify_by=tuple(doc.get("stratify_by") or ("model_version",)),
        seed=int(doc.get("seed", 0)),
    )


def _reference(doc: dict, where: str) -> ReferenceWindow:
    source = doc.get("source", "training")
    if source == "training":
        return ReferenceWindow()
    if source != "period":
        raise BadInputError(f"{where}.source must be 'training' or 'period', not {source!r}")
    try:
        start, end = date.fromisoformat(str(doc["start"])), date.fromisoformat(str(doc["end"]))
    except (KeyError, ValueError) as exc:
        raise BadInputError(f"{where}: a period reference needs start and end dates (YYYY-MM-DD): {exc}") from exc
    if end < start:
        raise BadInputError(f"{where}: end {end} is before start {start}")
    return ReferenceWindow(start.isoformat(), end.isoformat())


def load_registry(directory: str | Path) -> dict[str, ModelSpec]:
    directory = Path(directory)
    if not directory.is_dir():
        raise BadInputError(f"model registry {directory} is not a directory")
    specs = {}
    for path in sorted(directory.glob("*.yaml")):
        spec = load_model_spec(path)
        if spec.name in specs:
            raise BadInputError(f"{path}: model {spec.name} is also declared in {specs[spec.name].source}")
        specs[spec.name] = spec
    return specs
