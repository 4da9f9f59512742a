"""Group fairness of a model's decisions: demographic parity of the favourable outcome (the
four-fifths rule) and, where labels have arrived, equalized odds; per protected attribute and per
declared intersection of attributes.

The definitions are fairlearn's (``demographic_parity_ratio``/``_difference`` and
``equalized_odds_ratio``/``_difference`` with ``method="between_groups"`` and the worst case over
the true- and false-positive rates). Groups smaller than the minimum size are shown but not
scored, and every ratio carries a stratified bootstrap confidence interval, so that a small group
cannot trigger a violation on noise. Every score says the share of the rows it covers (rows without
a value for the attribute and rows of small groups are not covered): below the declared minimum the
score is withheld (the policies then fail closed) or kept with a warning, as declared, because an
intersection can look fair exactly when its worst-off groups are the ones left out as small.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

BOOTSTRAP_REPLICATES = 2000
CONFIDENCE = 0.95
LOW_COVERAGE_ACTIONS = ("withhold", "warn")


@dataclass(frozen=True)
class AttributeFairness:
    attribute: str  # one attribute, or an intersection written "A&B"
    enforced: bool
    groups: dict[str, dict]  # group -> count, favourable_rate, eligible, labelled, tpr, fpr
    ratio: float | None  # demographic parity: lowest / highest favourable rate among eligible groups
    difference: float | None
    ratio_ci: tuple[float, float] | None
    worst_group: str | None
    best_group: str | None
    equalized_odds_ratio: float | None = None
    equalized_odds_difference: float | None = None
    equalized_odds_ci: tuple[float, float] | None = None
    equalized_odds_worst_group: str | None = None
    note: str = ""
    eo_note: str = ""
    rows: int = 0
    rows_without_group: int = 0  # rows with no value for the attribute (or a member of the intersection)
    coverage: float = 0.0  # share of the rows in the groups the score is computed over
    coverage_warning: bool = False  # below the declared minimum and kept (low_coverage: warn)

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}


def group_labels(frame: pd.DataFrame, attributes: list[str]) -> pd.Series:
    """Group of each row: the attribute's value, or the values of an intersection joined by '&'.
    A row with any attribute missing belongs to no group."""
    parts = [frame[a].astype("string") for a in attributes]
    labels = parts[0]
    for part in parts[1:]:
        labels = labels + "&" + part
    return labels


def _ratio(rates: np.ndarray) -> np.ndarray:
    """min/max along the last axis; NaN where no group gets the outcome at all."""
    top, low = rates.max(axis=-1), rates.min(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(top > 0, low / top, np.nan)


def _interval(samples: np.ndarray) -> tuple[float, float] | None:
    """The percentile bootstrap interval. (The reverse-percentile interval looks as if it corrected
    the low bias of a min/max ratio, but at small groups it covers less: simulated at a true ratio
    of 0.8 with 100 rows per group, it put the upper end below 0.8 6.4% of the time against 2.4%.)"""
    samples = samples[np.isfinite(samples)]
    if len(samples) == 0:
        return None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def group_fairness(
    decisions: pd.Series,
    groups: pd.Series,
    favourable: int,
    min_group_size: int,
    attribute: str,
    enforced: bool,
    labels: pd.Series | None = None,
    seed: int = 0,
    min_coverage: float = 0.0,
    low_coverage: str = "withhold",
) -> AttributeFairness:
    if low_coverage not in LOW_COVERAGE_ACTIONS:
        raise ValueError(f"fairness low_coverage must be withhold or warn, not {low_coverage!r}")
    favoured = (decisions.astype("int64") == favourable).to_numpy()
    all_codes, names = pd.factorize(groups.astype("string"), sort=True)  # a missing group is -1
    valid = all_codes >= 0
    codes, names = all_codes[valid], np.asarray(names, dtype=object)
    favoured = favoured[valid]
    n_groups = len(names)
    count = np.bincount(codes, minlength=n_groups)
    positive_decisions = np.bincount(codes, weights=favoured, minlength=n_groups)
    rate = positive_decisions / np.maximum(count, 1)
    eligible = count >= min_group_size

    labelled_count = np.zeros(n_groups, dtype=np.int64)
    tpr = fpr = np.full(n_groups, np.nan)
    label_pos = label_neg = np.zeros(n_groups)
    if labels is not None:
        label_values = labels.to_numpy(dtype="float64", na_value=np.nan)[valid]
        has_label = ~np.isnan(label_values)
        good = has_label & (label_values == favourable)
        bad = has_label & (label_values != favourable)
        labelled_count = np.bincount(codes, weights=has_label, minlength=n_groups).astype(np.int64)
        label_pos = np.bincount(codes, weights=good, minlength=n_groups)
        label_neg = np.bincount(codes, weights=bad, minlength=n_groups)
        true_pos = np.bincount(codes, weights=good & favoured, minlength=n_groups)
        false_pos = np.bincount(codes, weights=bad & favoured, minlength=n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            tpr = np.where(label_pos > 0, true_pos / label_pos, np.nan)
            fpr = np.where(label_neg > 0, false_pos / label_neg, np.nan)

    # A group below the minimum size is counted, not described: the outcome rates of a handful of
    # people would disclose their outcomes.
    table = {
        str(names[g]): {
            "count": int(count[g]),
            "favourable_rate": float(rate[g]) if eligible[g] else None,
            "eligible": bool(eligible[g]),
            "labelled": int(labelled_count[g]) if eligible[g] else None,
            "tpr": None if np.isnan(tpr[g]) or not eligible[g] else float(tpr[g]),
            "fpr": None if np.isnan(fpr[g]) or not eligible[g] else float(fpr[g]),
        }
        for g in range(n_groups)
    }
    rng = np.random.default_rng(seed)
    rows, without = len(all_codes), int((~valid).sum())
    coverage = float(count[eligible].sum() / rows) if rows else 0.0
    result: dict = {
        "attribute": attribute,
        "enforced": enforced,
        "groups": table,
        "rows": rows,
        "rows_without_group": without,
        "coverage": coverage,
    }
    gaps = []
    if without:
        gaps.append(f"{without} of {rows} rows have no value for {attribute} and are in no group")
    small = int(count[~eligible].sum())
    if small:
        gaps.append(f"{small} rows are in groups smaller than {min_group_size}")

    scored = np.flatnonzero(eligible)
    short = len(scored) >= 2 and coverage < min_coverage
    unscored = {"ratio": None, "difference": None, "ratio_ci": None, "worst_group": None, "best_group": None}
    if short and low_coverage == "withhold":
        result.update(
            unscored,
            note=f"the scored groups cover {coverage:.1%} of the rows, below the declared {min_coverage:.0%}: "
            f"no score ({'; '.join(gaps)})",
        )
        if labels is not None:
            result["eo_note"] = "equalized odds not computed: too few rows covered"
        return AttributeFairness(**result)
    if len(scored) < 2:
        result.update(
            unscored,
            note="; ".join([f"fewer than two groups with at least {min_group_size} rows; parity not computed", *gaps]),
        )
    else:
        rates = rate[scored]
        ratio = float(_ratio(rates))
        # Stratified bootstrap: resampling a group's rows with replacement draws its favourable
        # count from Binomial(n, rate), so the replicates are drawn from that directly.
        draws = rng.binomial(count[scored], rates, size=(BOOTSTRAP_REPLICATES, len(scored))) / count[scored]
        result.update(
            ratio=None if np.isnan(ratio) else ratio,
            difference=float(rates.max() - rates.min()),
            ratio_ci=_interval(_ratio(draws)),
            worst_group=str(names[scored[np.argmin(rates)]]),
            best_group=str(names[scored[np.argmax(rates)]]),
            note="; ".join(
                (["no group receives the favourable outcome"] if np.isnan(ratio) else [])
                + ([f"covers {coverage:.1%} of the rows, below the declared {min_coverage:.0%}"] if short else [])
                + gaps
            ),
            coverage_warning=short,
        )

    if labels is not None:
        result.update(
            _equalized_odds(names, labelled_count, label_pos, label_neg, tpr, fpr, min_group_size, rng),
        )
    return AttributeFairness(**result)


def _equalized_odds(names, labelled, positives, negatives, tpr, fpr, min_group_size, rng) -> dict:
    scored = np.flatnonzero((labelled >= min_group_size) & (positives > 0) & (negatives > 0))
    if len(scored) < 2:
        return {
            "eo_note": f"fewer than two groups with at least {min_group_size} labelled rows of both outcomes; "
            "equalized odds not computed"
        }
    t, f = tpr[scored], fpr[scored]
    tpr_ratio, fpr_ratio = _ratio(t), _ratio(f)
    ratio = float(np.fmin(tpr_ratio, fpr_ratio)) if not (np.isnan(tpr_ratio) and np.isnan(fpr_ratio)) else None
    size = (BOOTSTRAP_REPLICATES, len(scored))
    t_draws = rng.binomial(positives[scored].astype(np.int64), t, size=size) / positives[scored]
    f_draws = rng.binomial(negatives[scored].astype(np.int64), f, size=size) / negatives[scored]
    # The worst-off group: the lowest true-positive rate, or the highest false-positive rate when
    # the false-positive ratio is the one that binds.
    binding_fpr = not np.isnan(fpr_ratio) and (np.isnan(tpr_ratio) or fpr_ratio < tpr_ratio)
    worst = scored[np.argmax(f)] if binding_fpr else scored[np.argmin(t)]
    return {
        "equalized_odds_ratio": ratio,
        "equalized_odds_difference": float(max(t.max() - t.min(), f.max() - f.min())),
        "equalized_odds_ci": _interval(np.fmin(_ratio(t_draws), _ratio(f_draws))),
        "equalized_odds_worst_group": str(names[worst]),
    }


def demographic_parity(
    decisions: pd.Series, groups: pd.Series, favourable: int, min_group_size: int, attribute: str, enforced: bool
) -> AttributeFairness:
    return group_fairness(decisions, groups, favourable, min_group_size, attribute, enforced)


@dataclass(frozen=True)
class FairnessSummary:
    """The numbers the policies see: the worst enforced attribute's, with its interval."""

    score: float | None
    score_ci: tuple[float, float] | None
    equalized_odds: float | None
    worst_attribute: str | None
    worst_group: str | None
    by_attribute: dict[str, float | None] = field(default_factory=dict)
    coverage: float | None = None  # the least any enforced attribute's score covers


def summarise(results: list[AttributeFairness]) -> FairnessSummary:
    """The score is the lowest parity ratio over the enforced attributes, and there is none when any
    enforced attribute could not be scored: dropping it would report the others' score as if it
    covered it (the policies then fail closed on the missing score)."""
    coverage = min((r.coverage for r in results if r.enforced), default=None)
    if any(r.enforced and r.ratio is None for r in results):
        return FairnessSummary(None, None, None, None, None, {r.attribute: r.ratio for r in results}, coverage)
    enforced = [r for r in results if r.enforced and r.ratio is not None]
    worst = min(enforced, key=lambda r: r.ratio, default=None)
    intervals = [r.ratio_ci for r in enforced if r.ratio_ci is not None]
    score_ci = (min(i[0] for i in intervals), min(i[1] for i in intervals)) if intervals else None
    odds = [r.equalized_odds_ratio for r in results if r.enforced and r.equalized_odds_ratio is not None]
    return FairnessSummary(
        score=worst.ratio if worst else None,
        score_ci=score_ci if worst else None,
        equalized_odds=min(odds) if odds else None,
        worst_attribute=worst.attribute if worst else None,
        worst_group=worst.worst_group if worst else None,
        by_attribute={r.attribute: r.ratio for r in results},
        coverage=coverage,
    )


def fairness_score(results: list[AttributeFairness]) -> float | None:
    """The lowest parity ratio across the enforced attributes; None when none could be computed."""
    return summarise(results).score
