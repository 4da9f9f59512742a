"""The effect-size floor, calibrated to the window's size.

An effect size measured on a sample is never 0: drawn from the reference itself, 150 rows give a
Jensen-Shannon distance or a normed Wasserstein distance about as large as the declared 0.1 floor,
so small daily windows raised false alarms whenever a p-value was significant (real windows are
never exact draws from the reference, so p-values are). The floor a feature's effect must reach is
therefore the larger of the declared `min_effect_size` and the effect that windows of the same size
drawn from the reference exceed only rarely: its (1 - p_value / tests) quantile over resampled
windows, so that a window drawn from the reference clears any feature's floor with probability at
most `p_value` (Bonferroni over the features).

Resampling is done from the stored reference profile, with a fixed seed per window size, so a day's
report is reproducible. Effect sizes shrink as 1/sqrt(rows); a window whose floor, extrapolated
from a small pilot, is well below the declared one is not resampled at all.
"""

from __future__ import annotations

import numpy as np

REPLICATES = 2000
PILOT_ROWS = 200
PILOT_REPLICATES = 200  # enough to tell a floor far below the declared one, with the margin
REFERENCE_GRID = 2048  # reference quantiles the resampled windows are compared with
_EXTRAPOLATION_MARGIN = 2.0


def wasserstein_sorted(reference_sorted: np.ndarray, current_sorted: np.ndarray) -> float:
    """The first Wasserstein distance between two sorted samples (the area between their CDFs)."""
    merged = np.concatenate([reference_sorted, current_sorted])
    order = np.argsort(merged, kind="stable")
    merged = merged[order]
    ref_seen = np.cumsum(order < len(reference_sorted))[:-1]
    seen = np.arange(1, len(merged))
    gap = ref_seen / len(reference_sorted) - (seen - ref_seen) / len(current_sorted)
    return float(np.dot(np.abs(gap), np.diff(merged)))


def jensen_shannon_rows(reference_share: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (base 2) between one distribution and each row of counts, as scipy's
    `distance.jensenshannon` computes it for one pair."""
    q = counts / counts.sum(axis=1, keepdims=True)
    p = np.broadcast_to(reference_share, q.shape)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log2(p / m), 0.0)
        right = np.where(q > 0, q * np.log2(q / m), 0.0)
    return np.sqrt(np.maximum((left.sum(axis=1) + right.sum(axis=1)) / 2, 0.0))


def _numeric_effects(
    sorted_values: np.ndarray, scale: float, rows: int, rng: np.random.Generator, replicates: int
) -> np.ndarray:
    grid_at = np.linspace(0, len(sorted_values) - 1, min(REFERENCE_GRID, len(sorted_values)))
    grid = sorted_values[np.round(grid_at).astype(np.int64)]
    scale = scale if scale > 0 else 1.0
    out = np.empty(replicates)
    for i in range(replicates):
        sample = np.sort(sorted_values[rng.integers(0, len(sorted_values), size=rows)])
        out[i] = wasserstein_sorted(grid, sample) / scale
    return out


def _share_effects(shares: np.ndarray, rows: int, rng: np.random.Generator, replicates: int) -> np.ndarray:
    return jensen_shannon_rows(shares, rng.multinomial(rows, shares, size=replicates).astype(np.float64))


class EffectFloors:
    """The calibrated floor of each signal at each window size, computed once per detector."""

    def __init__(self, min_effect_size: float):
        self.min_effect_size = min_effect_size
        self._quantiles: dict[tuple[str, int, float, int], float] = {}

    def _quantile(self, key: str, draw, rows: int, level: float, replicates: int) -> float:
        cached = self._quantiles.get((key, rows, level, replicates))
        if cached is None:
            rng = np.random.default_rng(rows)  # the same floor whenever a window of this size is seen
            cached = float(np.quantile(draw(rows, rng, replicates), level))
            self._quantiles[(key, rows, level, replicates)] = cached
        return cached

    def _floor(self, key: str, draw, rows: int, level: float) -> float:
        if rows > PILOT_ROWS:
            pilot = self._quantile(key, draw, PILOT_ROWS, level, PILOT_REPLICATES) * np.sqrt(PILOT_ROWS / rows)
            if pilot * _EXTRAPOLATION_MARGIN < self.min_effect_size:
                return self.min_effect_size
        return max(self.min_effect_size, self._quantile(key, draw, rows, level, REPLICATES))

    def numeric(self, key: str, sorted_values: np.ndarray, scale: float, rows: int, level: float) -> float:
        return self._floor(key, lambda n, rng, b: _numeric_effects(sorted_values, scale, n, rng, b), rows, level)

    def shares(self, key: str, counts: np.ndarray, rows: int, level: float) -> float:
        """The floor of a Jensen-Shannon distance between the reference's shares (levels, or missing
        and present) and a window of `rows` rows."""
        counts = np.asarray(counts, dtype=np.float64)
        if rows == 0 or counts.sum() == 0 or np.count_nonzero(counts) < 2:
            return self.min_effect_size  # one level: every draw is the reference itself
        shares = counts / counts.sum()
        return self._floor(key, lambda n, rng, b: _share_effects(shares, n, rng, b), rows, level)
