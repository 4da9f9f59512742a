"""The monitoring reports as plain documents (JSON-ready dicts), one section per model version, and
their markdown summaries for the Dagster UI. Nothing here knows about Dagster."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.core.markdown import table
from rai_pipelines.core.registry import ModelSpec
from rai_pipelines.monitoring.drift import ReferenceProfile, make_detector
from rai_pipelines.monitoring.drift_multivariate import classifier_drift
from rai_pipelines.monitoring.estimated_performance import Calibration, estimate
from rai_pipelines.monitoring.fairness import group_fairness, group_labels, summarise
from rai_pipelines.monitoring.performance import performance
from rai_pipelines.monitoring.snapshots import PROTECTED_PREFIX

CLASSIFIER_MIN_ROWS = 50


def _versions(snapshot: pd.DataFrame):
    if snapshot.empty:
        raise BadInputError("the feature snapshot holds no rows: no report is computed on an empty day")
    return snapshot.groupby("model_version", sort=True)


# -- drift ---------------------------------------------------------------------------------------------
def drift_detector(spec: ModelSpec):
    return make_detector(
        spec.drift_backend,
        list(spec.numeric_features),
        list(spec.categorical_features),
        spec.drift_p_value,
        spec.drift_correction,
        spec.drift_min_effect_size,
        spec.optional_features,
    )


def drift_summary(
    spec: ModelSpec, reference: pd.DataFrame | None, snapshot: pd.DataFrame, profile: ReferenceProfile | None = None
) -> dict:
    """The drift report, against the reference frame or its stored profile; the multivariate
    classifier and the alibi-detect backend need the frame itself."""
    detector = drift_detector(spec)
    versions = {}
    for version, current in _versions(snapshot):
        result = detector.detect(reference, current, score_column="score", profile=profile)
        note = result.prediction_note
        if "score" not in (profile or detector.profile(reference, "score")).numeric:
            note = f"the reference has no model score (no column score or {spec.score_column})"
        multivariate = None
        if spec.drift_multivariate == "classifier":
            if min(len(current), len(reference)) < CLASSIFIER_MIN_ROWS:
                # A rollout day can leave a version a handful of rows: too few to train on.
                multivariate = {"skipped": f"fewer than {CLASSIFIER_MIN_ROWS} rows in a window"}
            else:
                found = classifier_drift(
                    reference,
                    current,
                    list(spec.numeric_features),
                    list(spec.categorical_features),
                    spec.drift_p_value,
                    optional=spec.optional_features,
                )
                multivariate = {"method": "domain classifier (scikit-learn gradient boosting, 5-fold)", **vars(found)}
        versions[version] = {
            "multivariate": multivariate,
            "rows": result.current_rows,
            "reference_rows": result.reference_rows,
            "threshold": result.threshold,
            "correction": result.correction,
            "min_effect_size": result.min_effect_size,
            "dataset_drift": result.dataset_drift,
            "drift_share": result.drift_share,
            "drifted_features": result.drifted_features,
            "max_effect_size": result.max_effect_size,
            "prediction_drift_p_value": result.prediction_p_value,
            "prediction_drift_effect_size": result.prediction_effect_size,
            "prediction_drift": result.prediction_drift,
            "prediction_drift_note": note,
            "score_missing_share": result.score_missing_share,
            "missing_share": {f.feature: f.missing_share for f in result.features if f.kind != "missingness"},
            "features": [vars(f) for f in result.features],
        }
    return {
        "model": spec.name,
        "backend": spec.drift_backend,
        "tests": "Kolmogorov-Smirnov (numeric), chi-squared (categorical and each optional feature's missing "
        "share), KS on the model score; on the values present",
        "missing_tolerance": dict(spec.missing_tolerance),
        "effect_sizes": "Wasserstein distance / reference std (numeric), Jensen-Shannon distance base 2 (categorical)",
        "window_days": spec.drift_window_days,
        "versions": versions,
    }


def drift_markdown(spec: ModelSpec, summary: dict) -> str:
    md = []
    for version, doc in summary["versions"].items():
        p = doc["prediction_drift_p_value"]
        note = doc["prediction_drift_note"]
        md.append(
            f"**{spec.name} {version}**: {len(doc['drifted_features'])} of {len(doc['features'])} signals drifted "
            f"({', '.join(doc['drifted_features']) or 'none'}; p < {doc['threshold']:.3g} after {doc['correction']} "
            f"and effect size ≥ {doc['min_effect_size']:g}); prediction drift "
            + (f"p = {p:.3g}, effect {doc['prediction_drift_effect_size']:.3f}" if p is not None else "not computed")
            + (f" ({note})" if note else "")
        )
        if doc["multivariate"] and "skipped" in doc["multivariate"]:
            md.append(f"Multivariate: not computed ({doc['multivariate']['skipped']})")
        elif doc["multivariate"]:
            m = doc["multivariate"]
            md.append(
                f"Multivariate: a domain classifier separates the windows with ROC AUC {m['auc']:.3f} "
                f"(p = {m['p_value']:.3g}; drift at AUC ≥ {m['min_auc']}): {'drift' if m['drifted'] else 'no drift'}"
            )
        rows = sorted(doc["features"], key=lambda f: -f["effect_size"])
        md.append(
            table(
                ["feature", "test", "p-value", "effect size", "PSI", "drifted", "missing (reference)", "unseen levels"],
                [
                    (
                        f["feature"],
                        {"numeric": "KS", "categorical": "chi²"}.get(f["kind"], "chi² on the missing share"),
                        f["p_value"],
                        f"{f['effect_size']:.3f} ({'W/σ' if f['kind'] == 'numeric' else 'JS'})",
                        f["psi"],
                        "yes" if f["drifted"] else ("significant, small" if f["significant"] else ""),
                        f"{f['missing_share']:.1%} ({f['reference_missing_share']:.1%})",
                        ", ".join(f["unseen_categories"]),
                    )
                    for f in rows
                ],
            )
        )
    return "\n\n".join(md)


# -- fairness ------------------------------------------------------------------------------------------
def _attribute_sets(spec: ModelSpec) -> list[tuple[str, list[str], bool]]:
    singles = [(a, [a], a in spec.enforced_protected_attributes) for a in spec.protected_attributes]
    return singles + [("&".join(members), list(members), False) for members in spec.intersections]


def fairness_summary(spec: ModelSpec, snapshot: pd.DataFrame) -> dict:
    versions = {}
    for version, current in _versions(snapshot):
        labels = current["label"] if "label" in current and current["label"].notna().any() else None
        results = []
        for name, members, enforced in _attribute_sets(spec):
            groups = group_labels(current, [PROTECTED_PREFIX + m for m in members])
            results.append(
                group_fairness(
                    current["decision"],
                    groups,
                    spec.favourable_outcome,
                    spec.min_group_size,
                    name,
                    enforced,
                    labels,
                    min_coverage=spec.fairness_min_coverage,
                    low_coverage=spec.fairness_low_coverage,
                )
            )
        overall = summarise(results)
        versions[version] = {
            "rows": len(current),
            "labelled_rows": int(labels.notna().sum()) if labels is not None else 0,
            "favourable_rate": float((current["decision"] == spec.favourable_outcome).mean()),
            "fairness_score": overall.score,
            "fairness_score_ci": list(overall.score_ci) if overall.score_ci else None,
            "equalized_odds_ratio": overall.equalized_odds,
            "worst_attribute": overall.worst_attribute,
            "worst_group": overall.worst_group,
            "coverage": overall.coverage,
            "attributes": [r.as_dict() for r in results],
        }
    return {
        "model": spec.name,
        "metric": "demographic parity ratio of the favourable outcome (four-fifths rule); equalized odds "
        "ratio where labels exist; 95% stratified bootstrap intervals",
        "min_group_size": spec.min_group_size,
        "min_coverage": spec.fairness_min_coverage,
        "low_coverage": spec.fairness_low_coverage,
        "versions": versions,
    }


def _ratio_text(ratio: float | None, interval) -> str:
    if ratio is None:
        return "–"
    return f"{ratio:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def fairness_markdown(spec: ModelSpec, summary: dict) -> str:
    if not spec.protected_attributes:
        return f"{spec.name} declares no protected attribute: fairness is not computed."
    md = []
    for version, doc in summary["versions"].items():
        md.append(
            f"**{spec.name} {version}**: fairness score {_ratio_text(doc['fairness_score'], doc['fairness_score_ci'])}"
            f"; worst off: {doc['worst_attribute']} = {doc['worst_group']}; equalized odds "
            f"{_ratio_text(doc['equalized_odds_ratio'], None)} ({doc['labelled_rows']} labelled rows)"
        )
        for a in doc["attributes"]:
            md.append(
                f"{a['attribute']} ({'enforced' if a['enforced'] else 'reported'}, covers {a['coverage']:.1%} "
                f"of {a['rows']} rows): parity "
                f"{_ratio_text(a['ratio'], a['ratio_ci'])}, worst group {a['worst_group']}; equalized odds "
                f"{_ratio_text(a['equalized_odds_ratio'], a['equalized_odds_ci'])} {a['note']} {a['eo_note']}".rstrip()
            )
            md.append(
                table(
                    ["group", "rows", "favourable rate", "TPR", "FPR", "scored"],
                    [
                        (
                            g,
                            s["count"],
                            s["favourable_rate"],
                            s["tpr"],
                            s["fpr"],
                            "yes" if s["eligible"] else "no (small)",
                        )
                        for g, s in sorted(a["groups"].items())
                    ],
                )
            )
    return "\n\n".join(md)


# -- performance ---------------------------------------------------------------------------------------
def performance_summary(
    spec: ModelSpec, snapshot: pd.DataFrame, calibration: Calibration | None = None, estimation_note: str = ""
) -> dict:
    """Realised performance on the labelled rows, and (given the reference's calibration) the
    performance estimated from the scores of every row, before their labels arrive (CBPE)."""
    versions = {}
    for version, current in _versions(snapshot):
        labelled = current[current["label"].notna()]
        estimated = {"estimated_roc_auc": None, "estimated_accuracy": None, "estimation_note": estimation_note}
        if calibration is not None:
            estimated.update(
                estimate(
                    calibration,
                    current["score"].to_numpy(dtype=np.float64, na_value=np.nan),
                    (current["decision"] == spec.favourable_outcome).to_numpy(),
                )
            )
        versions[version] = {
            "rows": len(current),
            **performance(
                labelled["label"].to_numpy(dtype=np.int64),
                labelled["score"].to_numpy(dtype=np.float64),
                labelled["decision"].to_numpy(dtype=np.int64),
                spec.favourable_outcome,
            ),
            **estimated,
        }
    return {
        "model": spec.name,
        "estimation": "confidence-based performance estimation (CBPE) from the scores, calibrated on the "
        "labelled reference (isotonic, when it lowers the held-out calibration error)",
        "versions": versions,
    }


def reference_calibration(spec: ModelSpec, reference: pd.DataFrame) -> tuple[Calibration | None, str]:
    """The calibration CBPE needs, from a reference with scores and labels; without labels, why not."""
    score = "score" if "score" in reference else spec.score_column
    label = "label" if "label" in reference else spec.label_column
    if score not in reference or not label or label not in reference or reference[label].notna().sum() == 0:
        return None, "the reference has no labels: performance cannot be estimated before labels arrive"
    outcome = (reference[label] == spec.favourable_outcome).astype(np.float64).where(reference[label].notna())
    return Calibration.fit(reference[score].to_numpy(np.float64, na_value=np.nan), outcome.to_numpy(np.float64)), ""


def performance_markdown(spec: ModelSpec, summary: dict) -> str:
    rows = [
        (
            version,
            doc["rows"],
            doc["labelled_rows"],
            doc["estimated_roc_auc"],
            doc["roc_auc"],
            doc["estimated_accuracy"],
            doc["accuracy"],
            doc["brier_score"],
            doc["expected_calibration_error"],
            doc["note"],
        )
        for version, doc in summary["versions"].items()
    ]
    headers = ["version", "rows", "labelled", "ROC AUC (estimated)", "ROC AUC", "accuracy (estimated)", "accuracy"]
    return table([*headers, "Brier", "ECE", "note"], rows)
