"""Suggested policy updates from the history of governance facts.

Thresholds that never bind, or that every model breaks, are signs the policy and reality have
drifted apart. This proposes changes to the organisation's thresholds, each with its evidence, as
a branch of the policy repository for a person to review; it never merges. A fairness threshold
that every model fails is never proposed lower: that calls for better models, and is reported.
"""

from __future__ import annotations

import io
import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rai_pipelines.core.errors import BadInputError
from rai_pipelines.gitops.git import GitOpsCheckout, run_git
from rai_pipelines.gitops.manifests import load_yaml
from rai_pipelines.governance.bundle import ORG_DATA


@dataclass(frozen=True)
class Suggestion:
    key: str  # an organisation threshold (governance/data.yaml of the bundle)
    current: float
    proposed: float | None  # None: reported, no change proposed
    rationale: str


def _round_up(value: float, digits: int = 2) -> float:
    if value <= 0:
        return value
    scale = 10 ** (digits - 1 - math.floor(math.log10(value)))
    return math.ceil(value * scale) / scale


def _per_model(rows: list[dict], field: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for row in rows:
        value = row.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out.setdefault(row["model_name"], []).append(float(value))
    return out


def suggest_threshold_changes(rows: list[dict], thresholds: dict) -> list[Suggestion]:
    suggestions: list[Suggestion] = []
    days = len({r["date"] for r in rows})

    budget = thresholds.get("estimated_cost_per_inference_usd_max")
    costs = _per_model(rows, "estimated_cost_per_inference_usd")
    if budget is not None and len(costs) >= 2:
        medians = {m: statistics.median(v) for m, v in costs.items()}
        peaks = {m: max(v) for m, v in costs.items()}
        detail = ", ".join(f"{m} {medians[m]:.4g}" for m in sorted(medians))
        if all(v > budget for v in medians.values()):
            suggestions.append(
                Suggestion(
                    "estimated_cost_per_inference_usd_max",
                    budget,
                    _round_up(max(medians.values()) * 1.1),
                    f"every one of the {len(costs)} models exceeds the budget of {budget} USD per inference on a "
                    f"typical day over {days} days (median per model: {detail}); a budget nobody meets stops "
                    "telling apart the models that need attention. Proposed: 10% above the highest median.",
                )
            )
        elif all(v < budget / 4 for v in peaks.values()):
            suggestions.append(
                Suggestion(
                    "estimated_cost_per_inference_usd_max",
                    budget,
                    _round_up(max(peaks.values()) * 2),
                    f"no model comes within a quarter of the budget of {budget} USD per inference over {days} days "
                    f"(highest per model: {', '.join(f'{m} {peaks[m]:.4g}' for m in sorted(peaks))}); the budget "
                    "would not catch a fourfold cost increase. Proposed: twice the highest cost seen.",
                )
            )

    minimum = thresholds.get("fairness_score_min")
    scores = _per_model(rows, "fairness_score")
    if minimum is not None and scores:
        lows = {m: min(v) for m, v in scores.items()}
        medians = {m: statistics.median(v) for m, v in scores.items()}
        if all(v >= minimum + 0.1 for v in lows.values()):
            proposed = math.floor((min(lows.values()) - 0.05) * 100) / 100
            suggestions.append(
                Suggestion(
                    "fairness_score_min",
                    minimum,
                    proposed,
                    f"no model came within 0.1 of the fairness threshold {minimum} over {days} days (lowest "
                    f"per model: {', '.join(f'{m} {lows[m]:.3f}' for m in sorted(lows))}); a stricter threshold "
                    "that every current model still meets would catch a regression earlier.",
                )
            )
        elif len(scores) >= 2 and all(v < minimum for v in medians.values()):
            suggestions.append(
                Suggestion(
                    "fairness_score_min",
                    minimum,
                    None,
                    f"every model is below the fairness threshold {minimum} on a typical day; this is not "
                    "proposed lower: the models, not the threshold, need review.",
                )
            )

    warn = thresholds.get("drift_share_warn")
    drift = _per_model(rows, "drift_share")
    if warn is not None and len(drift) >= 2:
        medians = {m: statistics.median(v) for m, v in drift.items()}
        if all(v > warn for v in medians.values()):
            proposed = min(1.0, math.ceil(max(medians.values()) * 10 + 1e-9) / 10)
            suggestions.append(
                Suggestion(
                    "drift_share_warn",
                    warn,
                    proposed,
                    f"every model warns for drift on a typical day (median drift share: "
                    f"{', '.join(f'{m} {medians[m]:.2f}' for m in sorted(medians))}); a warning that always fires "
                    "is ignored. Proposed: just above the highest median.",
                )
            )
    return suggestions


def propose_branch(
    remote: str, branch: str, bundle_path: str, suggestions: list[Suggestion], workdir: str | None = None
) -> tuple[str, str] | None:
    """Commit the proposed thresholds to the bundle's organisation data on a new branch and push it;
    the diff and the commit are returned. None when there is nothing to change."""
    changes = [s for s in suggestions if s.proposed is not None and s.proposed != s.current]
    if not changes:
        return None
    with GitOpsCheckout(remote, "main", workdir, author="rai-pipelines <rai-pipelines@localhost>") as co:
        assert co.path is not None
        data_file = co.path / bundle_path / ORG_DATA
        if not data_file.is_file():
            raise BadInputError(f"{remote}: no {bundle_path}/{ORG_DATA} to propose changes to")
        document = load_yaml(data_file)
        for change in changes:
            current = document.get("thresholds", {}).get(change.key)
            if current != change.current:
                raise BadInputError(
                    f"{remote}: {bundle_path}/{ORG_DATA} sets thresholds.{change.key} to {current!r}, not "
                    f"{change.current!r} as the suggestions assumed; update the local bundle first"
                )
            document["thresholds"][change.key] = change.proposed
        from ruamel.yaml import YAML

        yaml = YAML()
        yaml.preserve_quotes = True
        buffer = io.StringIO()
        yaml.dump(document, buffer)
        Path(data_file).write_text(buffer.getvalue())
        run_git(["checkout", "--quiet", "-b", branch], cwd=co.path)
        diff = run_git(["diff"], cwd=co.path)
        body = "\n\n".join(f"{c.key}: {c.current} -> {c.proposed}\n{c.rationale}" for c in changes)
        sha = co.commit(
            f"policy: suggest {len(changes)} threshold change(s) from the governance facts",
            body,
            {"Rai-Suggested-At": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
        )
        co.push(branch, replace=False)  # never overwrite a proposal someone may be reviewing
    return diff, sha
