"""How well the rates match the truth bin by bin: the start of a trial against the rest.

An analysis aligned on trial onset (the first 100 ms after a go cue) inherits any error of the first
bins, which the pooled rate R2 hides in the average.
"""

from __future__ import annotations

import numpy as np

#: The bins at the start of a trial that :func:`first_bins_r2_gap` compares with the rest.
FIRST_BINS = 3


def rate_r2_by_bin(true_rates: np.ndarray, pred_rates: np.ndarray) -> np.ndarray:
    """The fraction of the truth's variance explained in each bin: (T,) from true and predicted rates
    (trials, T, N), 1 - sum of squared errors / sum of squared deviations from the bin's mean, over the
    bin's trials and neurons (NaN for a bin whose truth does not vary)."""
    true_rates = np.asarray(true_rates, dtype=np.float64)
    pred_rates = np.asarray(pred_rates, dtype=np.float64)
    if true_rates.shape != pred_rates.shape or true_rates.ndim != 3:
        raise ValueError(f"true_rates and pred_rates must be (trials, time, neurons) of one shape, got "
                         f"{true_rates.shape} and {pred_rates.shape}")
    errors = ((pred_rates - true_rates) ** 2).sum(axis=(0, 2))
    spread = ((true_rates - true_rates.mean(axis=(0, 2), keepdims=True)) ** 2).sum(axis=(0, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(spread > 0, 1.0 - errors / spread, np.nan)


def first_bins_r2_gap(r2_by_bin: np.ndarray, first: int = FIRST_BINS) -> float:
    """The median of :func:`rate_r2_by_bin` over the bins after the first ``first`` minus its mean over those
    first bins: how much worse the start of a trial is (0 when it is as good as the rest); NaN for trials
    of ``first`` bins or fewer."""
    r2_by_bin = np.asarray(r2_by_bin, dtype=np.float64)
    if r2_by_bin.shape[0] <= first:
        return float("nan")
    return float(np.nanmedian(r2_by_bin[first:]) - np.nanmean(r2_by_bin[:first]))
