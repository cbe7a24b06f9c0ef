"""Figures people look at. Functions draw with matplotlib's Agg backend and save PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_rates(spikes: np.ndarray, inferred: np.ndarray, path: str | Path, *, truth: np.ndarray | None = None,
               smoothed: np.ndarray | None = None, trials=(0, 1, 2), neurons=(0, 1, 2, 3),
               bin_ms: float = 10.0) -> Path:
    """Spikes (ticks), true rates, inferred rates and smoothed rates for a few trials and neurons.

    Arrays are (trials, time, neurons) in counts per bin; rates are drawn in spikes/s.
    """
    n_time = inferred.shape[1]
    time_s = np.arange(n_time) * bin_ms / 1000.0
    to_hz = 1000.0 / bin_ms
    fig, axes = plt.subplots(len(trials), len(neurons), figsize=(3.2 * len(neurons), 2.4 * len(trials)),
                             sharex=True, squeeze=False)
    for row, trial in enumerate(trials):
        for col, neuron in enumerate(neurons):
            ax = axes[row, col]
            curves = [(inferred, "LFADS", "tab:red", "-")]
            if truth is not None:
                curves.insert(0, (truth, "truth", "black", "-"))
            if smoothed is not None:
                curves.append((smoothed, "smoothing", "tab:gray", "--"))
            top = max(float(c[trial, :n_time, neuron].max()) * to_hz for c, *_ in curves)
            for values, label, color, style in curves:
                ax.plot(time_s, values[trial, :n_time, neuron] * to_hz, style, color=color, label=label, lw=1.4)
            spike_times = time_s[spikes[trial, :n_time, neuron] > 0]
            ax.plot(spike_times, np.full_like(spike_times, -0.06 * top), "|", color="tab:blue", ms=6)
            ax.set_title(f"trial {trial}, neuron {neuron}", fontsize=9)
            if col == 0:
                ax.set_ylabel("rate (spikes/s)")
            if row == len(trials) - 1:
                ax.set_xlabel("time (s)")
    axes[0, 0].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
