"""PNG plots for the reports: reference against current distributions of drifted features, and
fairness over time. matplotlib with the Agg backend, so no display is needed."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from rai_pipelines.monitoring.drift import as_levels


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(7, 3.6), dpi=100)


def _png(plt, fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def distribution_plot(feature: str, kind: str, reference: pd.Series, current: pd.Series, title: str) -> bytes:
    plt, fig, ax = _figure()
    if kind == "numeric":
        ref, cur = reference.to_numpy(dtype=np.float64), current.to_numpy(dtype=np.float64)
        low, high = np.quantile(np.concatenate([ref, cur]), [0.005, 0.995])
        bins = np.linspace(low, high, 41) if high > low else 10
        ax.hist(ref, bins=bins, density=True, alpha=0.55, label=f"reference ({len(ref):,})", color="#4c72b0")
        ax.hist(cur, bins=bins, density=True, alpha=0.55, label=f"current ({len(cur):,})", color="#dd8452")
        ax.set_ylabel("density")
    else:
        ref = as_levels(reference).value_counts(normalize=True)
        cur = as_levels(current).value_counts(normalize=True)
        levels = sorted(ref.index.union(cur.index), key=str)[:40]
        x = np.arange(len(levels))
        ax.bar(x - 0.2, ref.reindex(levels, fill_value=0), 0.4, label="reference", color="#4c72b0")
        ax.bar(x + 0.2, cur.reindex(levels, fill_value=0), 0.4, label="current", color="#dd8452")
        ax.set_xticks(x, [str(v) for v in levels], rotation=45 if len(levels) > 6 else 0, ha="right", fontsize=8)
        ax.set_ylabel("share of rows")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(feature)
    ax.legend(fontsize=8)
    return _png(plt, fig)


def fairness_history_plot(history: pd.DataFrame, threshold: float | None, title: str) -> bytes:
    """history: date, series (e.g. "3.1.0 SEX"), ratio, low, high; one line per series."""
    plt, fig, ax = _figure()
    for name, rows in history.sort_values("date").groupby("series", sort=True):
        dates = pd.to_datetime(rows["date"])
        ax.plot(dates, rows["ratio"], marker="o", label=name)
        if rows["low"].notna().any():
            ax.fill_between(dates, rows["low"], rows["high"], alpha=0.15)
    if threshold is not None:
        ax.axhline(threshold, color="#c44e52", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("demographic parity ratio")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return _png(plt, fig)


def importance_plot(features: list[dict], title: str) -> bytes:
    """Mean |attribution| per feature, reference against current (features: reference_importance,
    importance, drifted), most important first."""
    plt, fig, ax = _figure()
    rows = sorted(features, key=lambda f: -f["reference_importance"])[:30]
    y = np.arange(len(rows))[::-1]
    ax.barh(y + 0.2, [f["reference_importance"] for f in rows], 0.4, label="reference", color="#4c72b0")
    ax.barh(y - 0.2, [f["importance"] for f in rows], 0.4, label="current", color="#dd8452")
    ax.set_yticks(y, [f["feature"] + (" (drifted)" if f["drifted"] else "") for f in rows], fontsize=8)
    ax.set_xlabel("mean |attribution|")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _png(plt, fig)


def drift_history_plot(history: pd.DataFrame, title: str) -> bytes:
    """Every feature's effect size over time (a marker where it drifted), and each feature's missing
    share where any is missing; history: date, version, feature, kind, effect_size, missing_share, drifted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = history[history["kind"] != "missingness"]
    gaps = values.groupby("feature")["missing_share"].max()
    gappy = list(gaps[gaps > 0].index)
    fig, axes = plt.subplots(2 if gappy else 1, 1, figsize=(8, 6.4 if gappy else 3.8), dpi=100, squeeze=False)
    effect_axis = axes[0][0]
    for (version, feature), rows in values.sort_values("date").groupby(["version", "feature"], sort=True):
        dates = pd.to_datetime(rows["date"])
        (line,) = effect_axis.plot(dates, rows["effect_size"], marker=".", label=f"{version} {feature}")
        drifted = rows["drifted"].to_numpy(dtype=bool)
        effect_axis.scatter(dates[drifted], rows["effect_size"][drifted], s=60, color=line.get_color(), zorder=3)
    effect_axis.set_ylabel("effect size (W/σ or JS)")
    effect_axis.set_title(title + " (large markers: drifted)", fontsize=10)
    effect_axis.legend(fontsize=6, ncol=3)
    if gappy:
        missing_axis = axes[1][0]
        for (version, feature), rows in (
            values[values["feature"].isin(gappy)].sort_values("date").groupby(["version", "feature"], sort=True)
        ):
            missing_axis.plot(
                pd.to_datetime(rows["date"]), rows["missing_share"], marker=".", label=f"{version} {feature}"
            )
        missing_axis.set_ylabel("missing share")
        missing_axis.legend(fontsize=6, ncol=3)
    fig.autofmt_xdate()
    return _png(plt, fig)
