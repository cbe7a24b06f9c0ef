"""Figures of rates and latents: inferred rates against spikes and truth, rasters, factor trajectories.

Every function draws one figure with matplotlib's Agg backend, saves it as a PNG at ``path`` and returns
``Path(path)``. Arrays are numpy; rates come in counts per bin and are drawn in spikes/s where ``bin_ms`` is given.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from pyro_lfads.diagnostics.drawing import bin_times_s, category_colors, save_png


def plot_rates(spikes: np.ndarray, inferred: np.ndarray, path: str | Path, *, truth: np.ndarray | None = None,
               smoothed: np.ndarray | None = None, trials=(0, 1, 2), neurons=(0, 1, 2, 3),
               bin_ms: float = 10.0) -> Path:
    """Spikes (ticks), true rates, inferred rates and smoothed rates for a few trials and neurons.

    Arrays are (trials, time, neurons) in counts per bin; rates are drawn in spikes/s.
    """
    n_time = inferred.shape[1]
    time_s = bin_times_s(n_time, bin_ms)
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
    return save_png(fig, path)


def plot_raster(spikes: np.ndarray, rates: np.ndarray, path: str | Path, *, truth: np.ndarray | None = None,
                trials=(0, 1, 2), bin_ms: float = 10.0) -> Path:
    """Spike raster, inferred rates and (optionally) true rates as heatmaps, one column per trial.

    ``spikes``, ``rates`` and ``truth`` are (trials, time, neurons) in counts per bin; only the first
    ``rates.shape[1]`` bins of ``spikes`` are shown. Rates are drawn in spikes/s, time in seconds,
    true and inferred rates on one colour scale.
    """
    n_time, n_neurons = rates.shape[1], rates.shape[2]
    shown = list(trials)
    to_hz = 1000.0 / bin_ms
    rate_rows = [("inferred rate", rates * to_hz)]
    if truth is not None:
        rate_rows.append(("true rate", truth[:, :n_time] * to_hz))
    shown_rates = np.stack([values[shown] for _, values in rate_rows])
    rate_range = (min(0.0, float(shown_rates.min())), float(shown_rates.max()))
    shown_spikes = spikes[shown, :n_time]
    spike_range = (min(0.0, float(shown_spikes.min())), max(float(shown_spikes.max()), 1.0))
    rows = [("spikes", spikes[:, :n_time], "Greys", "count per bin", spike_range)]
    rows += [(name, values, "viridis", "rate (spikes/s)", rate_range) for name, values in rate_rows]
    extent = (0.0, n_time * bin_ms / 1000.0, n_neurons - 0.5, -0.5)
    fig, axes = plt.subplots(len(rows), len(shown) + 1, squeeze=False,
                             figsize=(3.8 * len(shown) + 0.6, 2.6 * len(rows)),
                             gridspec_kw={"width_ratios": [1.0] * len(shown) + [0.05]})
    for row, (name, values, cmap, unit, (bottom, top)) in enumerate(rows):
        for col, trial in enumerate(shown):
            ax = axes[row, col]
            image = ax.imshow(values[trial].T, aspect="auto", interpolation="nearest", cmap=cmap,
                              vmin=bottom, vmax=top, extent=extent)
            ax.set_title(f"trial {trial}: {name}", fontsize=10)
            if col == 0:
                ax.set_ylabel("neuron")
            if row == len(rows) - 1:
                ax.set_xlabel("time (s)")
        fig.colorbar(image, cax=axes[row, -1], label=unit)
    return save_png(fig, path)


def plot_rate_r2_by_bin(truth: np.ndarray, inferred: np.ndarray, path: str | Path, *,
                        bin_ms: float | None = None) -> Path:
    """The R² of the inferred against the true rates in each bin (:func:`~pyro_lfads.evaluation.per_bin.rate_r2_by_bin`),
    over the trial's time, the first bins shaded, ``first_bins_r2_gap`` in the title. Arrays (trials, time,
    neurons); ``bin_ms`` puts the axis in seconds (else bins)."""
    from pyro_lfads.evaluation.per_bin import FIRST_BINS, first_bins_r2_gap, rate_r2_by_bin

    by_bin = rate_r2_by_bin(truth, inferred)
    times = bin_times_s(len(by_bin), bin_ms) if bin_ms else np.arange(len(by_bin))
    step = times[1] - times[0] if len(times) > 1 else 1.0
    fig, ax = plt.subplots(figsize=(7.0, 3.4))
    ax.axvspan(times[0] - 0.5 * step, times[min(FIRST_BINS, len(times)) - 1] + 0.5 * step, color="0.92",
               label=f"first {FIRST_BINS} bins")
    ax.plot(times, by_bin, "o-", ms=3, color="tab:blue", lw=1.2)
    ax.set_xlabel("time in trial (s)" if bin_ms else "bin")
    ax.set_ylabel("R² vs true rates")
    ax.set_title(f"rate R² per bin; first-bins gap {first_bins_r2_gap(by_bin):.3f} "
                 f"(median of later bins - mean of first {FIRST_BINS})", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return save_png(fig, path)


def plot_rate_scatter(truth: np.ndarray, inferred: np.ndarray, path: str | Path, *,
                      smoothed: np.ndarray | None = None, max_points: int = 20000, seed: int = 0) -> Path:
    """True versus inferred (and smoothed) rates, in counts per bin, with R² in the title.

    Arrays are (trials, time, neurons) in counts per bin. At most ``max_points`` randomly chosen
    entries are drawn (the same for every panel); R² is computed on all entries.
    """
    from sklearn.metrics import r2_score

    panels = [("LFADS", "inferred", inferred)]
    if smoothed is not None:
        panels.append(("smoothing", "smoothed", smoothed))
    true_flat = truth.ravel()
    rng = np.random.default_rng(seed)
    chosen = rng.choice(true_flat.size, size=min(true_flat.size, max_points), replace=False)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4.6), squeeze=False)
    for ax, (name, short, values) in zip(axes[0], panels):
        flat = values.ravel()
        top = float(max(true_flat[chosen].max(), flat[chosen].max())) * 1.05
        ax.scatter(true_flat[chosen], flat[chosen], s=3, alpha=0.3, color="tab:blue", lw=0)
        ax.plot([0.0, top], [0.0, top], "--", color="black", lw=1.0, label="identity")
        ax.set_xlim(0.0, top)
        ax.set_ylim(0.0, top)
        ax.set_aspect("equal")
        ax.set_xlabel("true rate (counts/bin)")
        ax.set_ylabel(f"{short} rate (counts/bin)")
        ax.set_title(f"{name}: R² = {r2_score(true_flat, flat):.3f}", fontsize=11)
        ax.legend(fontsize=8, loc="upper left")
    return save_png(fig, path)


def plot_factor_pcs(factors: np.ndarray, path: str | Path, *, conditions: np.ndarray | None = None,
                    max_trials: int = 200) -> Path:
    """Single-trial factor trajectories in the space of their top principal components.

    ``factors`` is (trials, time, factors) with at least 2 factors; PCA (up to 3 components) is fit on
    all time points of all trials. ``conditions`` is (trials,) int labels used for colour; without them
    trials are coloured by index. At most ``max_trials`` evenly spread trials are drawn; a dot marks
    each trajectory's start. Raises ``ValueError`` with fewer than 2 factors.
    """
    from sklearn.decomposition import PCA

    n_trials, n_time, n_factors = factors.shape
    if n_factors < 2:
        raise ValueError("plot_factor_pcs needs at least 2 factors")
    pca = PCA(n_components=min(3, n_factors))
    projected = pca.fit_transform(factors.reshape(n_trials * n_time, n_factors)).reshape(n_trials, n_time, -1)
    shown = np.unique(np.linspace(0, n_trials - 1, min(n_trials, max_trials)).round().astype(int))
    if conditions is None:
        trial_colors = plt.get_cmap("viridis")(shown / max(n_trials - 1, 1))
    else:
        labels, codes = np.unique(np.asarray(conditions), return_inverse=True)
        palette = category_colors(len(labels))
        trial_colors = [palette[codes[trial]] for trial in shown]
    pairs = [(0, 1), (1, 2)] if pca.n_components_ == 3 else [(0, 1)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs) + 1.6, 5.0), squeeze=False)
    for ax, (i, j) in zip(axes[0], pairs):
        for trial, color in zip(shown, trial_colors):
            ax.plot(projected[trial, :, i], projected[trial, :, j], "-", color=color, lw=0.8, alpha=0.6)
            ax.plot(projected[trial, 0, i], projected[trial, 0, j], "o", color=color, ms=3)
        ax.set_xlabel(f"PC{i + 1} ({100 * pca.explained_variance_ratio_[i]:.1f}% var.)")
        ax.set_ylabel(f"PC{j + 1} ({100 * pca.explained_variance_ratio_[j]:.1f}% var.)")
        ax.set_title(f"PC{i + 1} vs PC{j + 1}, {len(shown)} of {n_trials} trials (dot = start)", fontsize=10)
    if conditions is None:
        mappable = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(0, n_trials - 1))
        fig.colorbar(mappable, ax=axes[0, -1], label="trial index")
    else:
        handles = [Line2D([], [], color=c, lw=2, label=str(label)) for label, c in zip(labels, palette)]
        axes[0, -1].legend(handles=handles, title="condition", fontsize=8, loc="upper left",
                           bbox_to_anchor=(1.02, 1.0), ncol=1 + len(labels) // 16)
    return save_png(fig, path)


def plot_session_factors(condition_factors: list[np.ndarray], path: str | Path, *,
                         conditions: tuple[int, ...] = (0, 1, 2, 3)) -> Path:
    """Condition-averaged factor trajectories of a stitched model, one line per (session, condition).

    ``condition_factors`` holds each session's (conditions, time, factors) averages, the
    conditions in the same order in every session; they are projected on the top 2 principal
    components of all of them together. Colour is the condition, line style the session: in a
    good stitched model the sessions' lines of a condition overlap (Fig. 5d of the paper).
    """
    from sklearn.decomposition import PCA

    stacked = np.stack(condition_factors)  # (S, C, T, F)
    n_sessions, _, n_time, n_factors = stacked.shape
    shown = [c for c in conditions if c < stacked.shape[1]]
    projected = PCA(n_components=2).fit_transform(stacked.reshape(-1, n_factors)).reshape(*stacked.shape[:3], 2)
    palette = category_colors(len(shown))
    styles = ["-", "--", ":", "-.", (0, (6, 1, 1, 1, 1, 1)), (0, (1, 3))]
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    for session in range(n_sessions):
        for color, condition in zip(palette, shown):
            ax.plot(*projected[session, condition].T, ls=styles[session % len(styles)], color=color, lw=1.2,
                    alpha=0.8)
            ax.plot(*projected[session, condition, 0], "o", color=color, ms=3)
    handles = [Line2D([], [], color=c, lw=2, label=f"condition {k}") for k, c in zip(shown, palette)]
    handles += [Line2D([], [], color="0.3", ls=styles[s % len(styles)], label=f"session {s}") for s in range(n_sessions)]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.set_title(f"condition-averaged factors, {n_sessions} sessions (dot = start)", fontsize=10)
    return save_png(fig, path)
