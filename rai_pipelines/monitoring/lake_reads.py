"""The lake reads monitoring shares: a model's daily snapshots and the window the drift report
compares, its reference (training data or a period of snapshots) and the drift profile stored for it,
and the reports written before (report.json, the fairness history)."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta

import pandas as pd

from rai_pipelines.core import datasets
from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.registry import ModelSpec
from rai_pipelines.monitoring.drift import PSI_BINS, ReferenceProfile

FAIRNESS_HISTORY_DAYS = 30


REPORTS = (datasets.DRIFT_REPORT, datasets.FAIRNESS_REPORT, datasets.PERFORMANCE_REPORT)


def model_partition(spec: ModelSpec, day: str) -> dict[str, str]:
    return {"model": spec.name, "date": day}


def traffic_by_version(lake, spec: ModelSpec, day: str) -> dict[str, tuple[int, pd.Timestamp, pd.Timestamp]]:
    """Every request of the day's inference log, before sampling, per model version: (requests,
    first, last). Costs are divided by these, not by the snapshot's rows: a snapshot keeps at most
    `sampling.max_rows` rows a day, so counting it would overstate the cost of every inference."""
    from rai_pipelines.monitoring.snapshots import read_inference_log

    partition = model_partition(spec, day)
    found = read_inference_log(lake, partition, columns=["model_version", "timestamp"])
    if found is None:
        raise BadInputError(
            f"{spec.name}: no inference log for {day} at {lake.uri(datasets.INFERENCE_LOGS, partition)}: "
            "the requests a cost per inference divides by are gone"
        )
    log, _ = found
    grouped = log.group_by("model_version", use_threads=False).aggregate(
        [("model_version", "count"), ("timestamp", "min"), ("timestamp", "max")]
    )
    return {
        row["model_version"]: (
            row["model_version_count"],
            pd.Timestamp(row["timestamp_min"]),
            pd.Timestamp(row["timestamp_max"]),
        )
        for row in grouped.to_pylist()
    }


def read_snapshot(lake, spec: ModelSpec, day: str) -> pd.DataFrame:
    return lake.read_table(datasets.FEATURE_SNAPSHOTS, model_partition(spec, day)).to_pandas(
        split_blocks=True, self_destruct=True
    )


def days_between(start: str, end: str) -> list[str]:
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def read_window(lake, spec: ModelSpec, day: str) -> pd.DataFrame:
    """The traffic the drift report compares: the day's, or the week's ending that day."""
    last = date.fromisoformat(day)
    days = days_between((last - timedelta(days=spec.drift_window_days - 1)).isoformat(), day)
    frames = [
        read_snapshot(lake, spec, d)
        for d in days
        if d == day or lake.exists(datasets.FEATURE_SNAPSHOTS, model_partition(spec, d))
    ]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def reference_parts(lake, spec: ModelSpec) -> list[tuple[str, dict[str, str]]]:
    """The files the reference is made of: the training data, or the period's snapshots."""
    if spec.reference.is_period:
        days = days_between(spec.reference.start, spec.reference.end)
        parts = [(datasets.FEATURE_SNAPSHOTS, model_partition(spec, d)) for d in days]
        parts = [(dataset, p) for dataset, p in parts if lake.exists(dataset, p)]
        if not parts:
            raise BadInputError(
                f"{spec.name}: no feature snapshot in the reference period {spec.reference.start}..{spec.reference.end}"
            )
        return parts
    partition = {"model": spec.name}
    if not lake.exists("reference", partition):
        raise BadInputError(f"{spec.name}: no reference window at {lake.uri('reference', partition)}")
    return [("reference", partition)]


def read_reference(lake, spec: ModelSpec, columns: list[str] | None = None) -> pd.DataFrame:
    """The training data (the lake's reference dataset) or the declared period of snapshots."""
    frames = [
        lake.read_table(dataset, partition, columns=columns).to_pandas(split_blocks=True, self_destruct=True)
        for dataset, partition in reference_parts(lake, spec)
    ]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def reference_profile(lake, spec: ModelSpec) -> ReferenceProfile:
    """The reference's drift profile, stored in the lake under a key of the reference files'
    fingerprints and the declared features: built (sorting the reference) once, not every day."""
    parts = reference_parts(lake, spec)
    identity = {
        "files": [[lake.uri(d, p), lake.fingerprint(d, p)] for d, p in parts],
        "numeric": list(spec.numeric_features),
        "categorical": list(spec.categorical_features),
        "optional": list(spec.optional_features),
        "score": spec.score_column,
        "format": ReferenceProfile.FORMAT,
        "psi_bins": PSI_BINS,
    }
    name = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24] + ".npz"
    partition = {"model": spec.name}
    if lake.exists(datasets.REFERENCE_PROFILE, partition, name):
        return ReferenceProfile.from_bytes(lake.read_bytes(datasets.REFERENCE_PROFILE, partition, name))
    reference = read_reference(lake, spec)
    if "score" not in reference and spec.score_column in reference:
        # training data written with the log's own names: the score is the declared score column
        reference = reference.rename(columns={spec.score_column: "score"})
    try:
        profile = ReferenceProfile.from_frame(
            reference,
            list(spec.numeric_features),
            list(spec.categorical_features),
            "score",
            spec.optional_features,
        )
    except BadInputError as exc:
        raise BadInputError(f"{spec.name}: reference {', '.join(lake.uri(d, p) for d, p in parts)}: {exc}") from None
    lake.write_bytes(datasets.REFERENCE_PROFILE, partition, name, profile.to_bytes())
    return profile


def report_json(lake, dataset: str, spec: ModelSpec, day: str) -> dict:
    return lake.read_json(dataset, model_partition(spec, day), "report.json")


def recent_reports(store, spec: ModelSpec, dataset: str, day: str, today: dict):
    """(day, report) of the last FAIRNESS_HISTORY_DAYS days whose report exists, oldest first; the
    day's own report is `today`, not yet written."""
    last = date.fromisoformat(day)
    for offset in range(FAIRNESS_HISTORY_DAYS - 1, -1, -1):
        current = (last - timedelta(days=offset)).isoformat()
        if current == day:
            yield current, today
        elif store.exists(dataset, model_partition(spec, current), "report.json"):
            yield current, report_json(store, dataset, spec, current)


def drift_history(store, spec: ModelSpec, day: str, today: dict) -> pd.DataFrame:
    """Every feature's effect size and missing share per version over the last days whose drift
    reports exist (not only the features that drifted on the day)."""
    rows = []
    for current, summary in recent_reports(store, spec, datasets.DRIFT_REPORT, day, today):
        for version, doc in summary["versions"].items():
            for f in doc["features"]:
                rows.append(
                    {
                        "date": current,
                        "version": version,
                        "feature": f["feature"],
                        "kind": f["kind"],
                        "effect_size": f["effect_size"],
                        "effect_floor": f.get("effect_floor", doc["min_effect_size"]),
                        "missing_share": f.get("missing_share", 0.0),
                        "drifted": f["drifted"],
                    }
                )
    columns = ["date", "version", "feature", "kind", "effect_size", "effect_floor", "missing_share", "drifted"]
    return pd.DataFrame(rows, columns=columns)


def fairness_history(store, spec: ModelSpec, day: str, today: dict) -> pd.DataFrame:
    """Each enforced attribute's parity per version over the last days whose reports exist."""
    rows = []
    for current, summary in recent_reports(store, spec, datasets.FAIRNESS_REPORT, day, today):
        for version, doc in summary["versions"].items():
            for a in doc["attributes"]:
                if a["ratio"] is not None and "&" not in a["attribute"]:
                    low, high = a["ratio_ci"] or (None, None)
                    rows.append(
                        {
                            "date": current,
                            "series": f"{version} {a['attribute']}",
                            "ratio": a["ratio"],
                            "low": low,
                            "high": high,
                        }
                    )
    return pd.DataFrame(rows, columns=["date", "series", "ratio", "low", "high"])


def reference_explainer(lake, spec: ModelSpec):
    """The explainer of the model's scores: its own LightGBM model, or a surrogate trained on the
    reference, stored in the lake under the reference's fingerprints (trained once, not every day);
    with the reference's attributions."""
    from rai_pipelines.monitoring.explanations import (
        FeatureCoding,
        explainer_from_text,
        fit_surrogate,
        load_tree_model,
        reference_attributions,
    )

    settings = spec.explanations
    reference = read_reference(lake, spec)
    if "score" not in reference and spec.score_column in reference:
        reference = reference.rename(columns={spec.score_column: "score"})
    numeric, categorical = list(spec.numeric_features), list(spec.categorical_features)
    if settings.model:
        explainer = load_tree_model(settings.model, reference, numeric, categorical)
    else:
        identity = {
            "files": [[lake.uri(d, p), lake.fingerprint(d, p)] for d, p in reference_parts(lake, spec)],
            "numeric": numeric,
            "categorical": categorical,
            "score": spec.score_column,
            "surrogate": 1,
        }
        name = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24] + ".json"
        partition = {"model": spec.name}
        coding = FeatureCoding.from_reference(reference, numeric, categorical)
        if lake.exists(datasets.EXPLANATION_MODEL, partition, name):
            stored = lake.read_json(datasets.EXPLANATION_MODEL, partition, name)
            explainer = explainer_from_text(stored["model"], coding, "surrogate", "score", stored["holdout_fidelity"])
        else:
            explainer = fit_surrogate(reference, numeric, categorical)
            lake.write_json(
                datasets.EXPLANATION_MODEL,
                partition,
                name,
                {"model": explainer.to_text(), "holdout_fidelity": explainer.holdout_fidelity},
            )
    return explainer, reference_attributions(explainer, reference, settings.max_rows)
