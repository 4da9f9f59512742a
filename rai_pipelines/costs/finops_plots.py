"""PNG plots of the FinOps reports (matplotlib, Agg backend): allocated cost per model over time
with the anomalies marked, and a month's cumulative spend with its forecast, 80% interval and budget."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pandas as pd


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(8, 3.8), dpi=100)


def _png(plt, fig) -> bytes:
    buffer = io.BytesIO()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def cost_over_time_plot(daily: pd.DataFrame, events: list[dict], currency: str, title: str) -> bytes:
    """`daily`: columns date, model, cost (one currency); `events`: anomaly events (to_dict form) of
    scope model, shaded from their start to their last day and labelled with their top cause."""
    plt, fig, ax = _figure()
    if daily.empty:
        ax.text(0.5, 0.5, "no allocated cost yet", ha="center", va="center", transform=ax.transAxes)
    else:
        pivot = daily.pivot_table(index="date", columns="model", values="cost", aggfunc="sum").sort_index()
        for model in pivot.columns:
            ax.plot(pd.to_datetime(pivot.index), pivot[model], marker=".", label=model)
        for event in events:
            model = event["scope"].get("model")
            start, last = date.fromisoformat(event["start"]), date.fromisoformat(event["last_day"])
            ax.axvspan(pd.Timestamp(start), pd.Timestamp(last + timedelta(days=1)), color="#d62728", alpha=0.15)
            top = event["root_causes"][0] if event["root_causes"] else None
            cause = f"{top['dimension']}={top['value']}" if top else "cause not found"
            ax.annotate(
                f"{model}: {event['impact']:+,.0f} {currency}\n{cause}",
                (pd.Timestamp(start), ax.get_ylim()[1] * 0.92),
                fontsize=7,
                color="#d62728",
                va="top",
            )
        ax.legend(fontsize=7, loc="upper left")
    ax.set_ylabel(f"allocated cost per day ({currency})")
    ax.set_title(title, fontsize=9)
    return _png(plt, fig)


def forecast_plot(spend: pd.Series, forecast: dict, budget: float | None, currency: str, title: str) -> bytes:
    """The month's cumulative spend to date (`spend`: daily amounts indexed by date), the forecast
    of the month's total with its interval as a line and band to the month's end, and the budget."""
    plt, fig, ax = _figure()
    spend = spend.sort_index()
    cumulative = spend.cumsum()
    x = pd.to_datetime(pd.Index(spend.index))
    ax.plot(x, cumulative.to_numpy(), marker=".", color="#1f77b4", label="spend to date")
    month_end = pd.Timestamp(date.fromisoformat(forecast["month"] + "-01")) + pd.offsets.MonthEnd(0)
    if len(x):
        ax.plot([x[-1], month_end], [cumulative.iloc[-1], forecast["forecast_total"]], "--", color="#1f77b4",
                label=f"forecast {forecast['forecast_total']:,.0f}")  # fmt: skip
        if forecast.get("lower") is not None:
            ax.fill_between(
                [x[-1], month_end],
                [cumulative.iloc[-1], forecast["lower"]],
                [cumulative.iloc[-1], forecast["upper"]],
                color="#1f77b4",
                alpha=0.2,
                label=f"{forecast['level']:.0%} interval",
            )
    if budget is not None:
        ax.axhline(budget, color="#d62728", linewidth=1, label=f"budget {budget:,.0f}")
    ax.set_ylabel(f"cumulative spend ({currency})")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return _png(plt, fig)
