"""Demographic parity of the favourable outcome across protected groups (the four-fifths rule)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class AttributeFairness:
    attribute: str
    enforced: bool
    groups: dict[str, dict]  # group -> {"count": n, "favourable_rate": r, "eligible": bool}
    ratio: float | None  # lowest / highest favourable rate among eligible groups
    difference: float | None
    worst_group: str | None
    best_group: str | None
    note: str = ""


def demographic_parity(
    decisions: pd.Series, groups: pd.Series, favourable: int, min_group_size: int, attribute: str, enforced: bool
) -> AttributeFairness:
    favourable_mask = decisions.astype("int64") == favourable
    frame = pd.DataFrame({"fav": favourable_mask, "group": groups.astype("string")}).dropna(subset=["group"])
    stats = frame.groupby("group", observed=True)["fav"].agg(["size", "mean"])
    table = {
        str(g): {
            "count": int(row["size"]),
            "favourable_rate": float(row["mean"]),
            "eligible": int(row["size"]) >= min_group_size,
        }
        for g, row in stats.iterrows()
    }
    eligible = stats[stats["size"] >= min_group_size]
    if len(eligible) < 2:
        return AttributeFairness(
            attribute,
            enforced,
            table,
            None,
            None,
            None,
            None,
            note=f"fewer than two groups with at least {min_group_size} rows; parity not computed",
        )
    best, worst = eligible["mean"].idxmax(), eligible["mean"].idxmin()
    top, low = float(eligible["mean"].max()), float(eligible["mean"].min())
    ratio = low / top if top > 0 else None
    return AttributeFairness(
        attribute,
        enforced,
        table,
        ratio,
        top - low,
        str(worst),
        str(best),
        note="" if ratio is not None else "no group receives the favourable outcome",
    )


def fairness_score(results: list[AttributeFairness]) -> float | None:
    """The lowest parity ratio across the enforced attributes; None when none could be computed."""
    ratios = [r.ratio for r in results if r.enforced and r.ratio is not None]
    return min(ratios) if ratios else None
