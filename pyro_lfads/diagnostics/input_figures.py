"""Figures of inferred inputs: their time course, their alignment to known pulses, their recovery of true inputs.

Every function draws one figure with matplotlib's Agg backend, saves it as a PNG at ``path`` and returns
``Path(path)``. Arrays are numpy; rates come in counts per bin and are drawn in spikes/s where ``bin_ms`` is given.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from pyro_lfads.diagnostics.drawing import bin_times_s, save_png


def plot_inputs(inputs: np.ndarray, path: str | Path, *, inputs_std: np.ndarray | None = None,
                truth: np.ndarray | None = None, trials=(0, 1, 2), bin_ms: float = 10.0) -> Path:
    """Inferred inputs u per trial (rows) and input dimension (columns).

    ``inputs`` is (trials, time, U), the posterior mean; ``inputs_std`` the same shape, drawn as a
    ±1 sd band; ``truth`` is (trials, time, U') true inputs, drawn dashed black on a twin y axis (all
    U' channels in every panel). Time in seconds.
    """
    n_time, n_inputs = inputs.shape[1], inputs.shape[2]
    time_s = bin_times_s(n_time, bin_ms)
    fig, axes = plt.subplots(len(trials), n_inputs, sharex=True, squeeze=False,
                             figsize=(max(4.0 * n_inputs, 5.0), 2.5 * len(trials)))
    for row, trial in enumerate(trials):
        for col in range(n_inputs):
            ax = axes[row, col]
            mean = inputs[trial, :, col]
            handles = ax.plot(time_s, mean, color="tab:blue", lw=1.4, label="inferred u (mean)")
            if inputs_std is not None:
                std = inputs_std[trial, :, col]
                handles.append(ax.fill_between(time_s, mean - std, mean + std, color="tab:blue", alpha=0.25,
                                               lw=0, label="±1 sd"))
            if truth is not None:
                twin = ax.twinx()
                lines = twin.plot(time_s, truth[trial, :n_time], "--", color="black", lw=1.0, alpha=0.8)
                handles.append(lines[0])
                lines[0].set_label("true input (right axis)")
                if col == n_inputs - 1:
                    twin.set_ylabel("true input")
            ax.set_title(f"trial {trial}, input u{col}", fontsize=10)
            if col == 0:
                ax.set_ylabel("inferred input")
            if row == len(trials) - 1:
                ax.set_xlabel("time (s)")
            if row == 0 and col == 0:
                ax.legend(handles=handles, fontsize=8, loc="upper right")
    return save_png(fig, path)


def plot_pulse_aligned_inputs(inputs: np.ndarray, pulse_times_ms: np.ndarray, path: str | Path, *,
                              bin_ms: float = 10.0, window_ms: tuple[float, float] = (-200.0, 300.0),
                              max_trials: int = 100) -> Path:
    """Inferred inputs aligned to each trial's true pulse (the paper's Supp. Fig. 6).

    ``inputs`` (trials, time, U) posterior means, drawn for the first input minus its median, each
    trial's sign set so that its largest departure is positive (the model may kick the generator
    either way); ``pulse_times_ms`` (trials,) true pulse times. Left:
    single trials (thin) and their mean over the window around the pulse (time 0). Right: the
    bin of each trial's largest departure from its median against the true pulse time.
    """
    u = inputs[:, :, 0] - np.median(inputs[:, :, 0], axis=1, keepdims=True)
    pulse_bins = np.round(np.asarray(pulse_times_ms) / bin_ms).astype(int)
    offsets = np.arange(int(window_ms[0] // bin_ms), int(window_ms[1] // bin_ms) + 1)
    columns = pulse_bins[:, None] + offsets[None, :]
    inside = (columns >= 0) & (columns < u.shape[1])
    aligned = np.where(inside, u[np.arange(len(u))[:, None], np.clip(columns, 0, u.shape[1] - 1)], np.nan)
    peaks = np.abs(u).argmax(axis=1)
    aligned *= np.sign(u[np.arange(len(u)), peaks])[:, None]  # each trial's largest departure drawn upwards
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1.6, 1]})
    for trace in aligned[:max_trials]:
        left.plot(offsets * bin_ms, trace, color="tab:blue", lw=0.6, alpha=0.25)
    left.plot(offsets * bin_ms, np.nanmean(aligned, axis=0), color="black", lw=2, label="mean over trials")
    left.axvline(0.0, color="tab:red", ls="--", lw=1, label="true pulse")
    left.set(xlabel="time from the true pulse (ms)", ylabel="inferred input (sign per trial)",
             title=f"inferred input around the pulse, {min(len(u), max_trials)} of {len(u)} trials")
    left.legend(fontsize=8, loc="upper right")
    peaks_ms = peaks * bin_ms
    right.scatter(pulse_times_ms, peaks_ms, s=10, color="tab:blue", alpha=0.6)
    ends = [min(pulse_times_ms.min(), peaks_ms.min()), max(pulse_times_ms.max(), peaks_ms.max())]
    right.plot(ends, ends, "--", color="gray", lw=1, label="identity")
    errors = np.abs(peaks_ms - pulse_times_ms)
    right.set(xlabel="true pulse time (ms)", ylabel="peak of the inferred input (ms)",
              title=f"median |error| {np.median(errors):.0f} ms, {np.mean(errors <= 50):.0%} within 50 ms")
    right.legend(fontsize=8, loc="upper left")
    return save_png(fig, path)


def plot_input_recovery(inferred: np.ndarray, true: np.ndarray, path: str | Path, *, trials=(0, 1, 2),
                        bin_ms: float = 10.0, max_points: int = 20000, seed: int = 0) -> Path:
    """Inferred against true inputs (the paper's integrate-to-bound figure).

    ``inferred`` (trials, time, U) posterior means, ``true`` (trials, time, 1). The inferred inputs
    are mapped onto the true one by least squares (sign, scale and offset, as
    :func:`pyro_lfads.evaluation.metrics.input_r2`). Left: the mapped and true inputs of a few trials over time.
    Right: all bins, true against mapped, with the R2.
    """
    from sklearn.metrics import r2_score

    from pyro_lfads.evaluation.metrics import affine_map

    mapped, y = affine_map(inferred, true[:, :, :1])[:, :, 0], true[:, :, 0].ravel()
    fig = plt.figure(figsize=(12, 2.2 * len(trials) + 0.6))
    grid = fig.add_gridspec(len(trials), 2, width_ratios=[1.8, 1])
    time_s = bin_times_s(true.shape[1], bin_ms)
    for row, trial in enumerate(trials):
        ax = fig.add_subplot(grid[row, 0])
        ax.plot(time_s, true[trial, :, 0], color="black", lw=1.0, label="true input")
        ax.plot(time_s, mapped[trial], color="tab:red", lw=1.4, label="inferred (sign and scale fitted)")
        ax.set_ylabel(f"trial {trial}")
        if row == 0:
            ax.legend(fontsize=8, loc="upper right", ncol=2)
        if row == len(trials) - 1:
            ax.set_xlabel("time (s)")
    scatter = fig.add_subplot(grid[:, 1])
    keep = np.random.default_rng(seed).permutation(y.size)[:max_points]
    scatter.scatter(y[keep], mapped.ravel()[keep], s=2, alpha=0.3, color="tab:red")
    ends = [y.min(), y.max()]
    scatter.plot(ends, ends, "--", color="gray", lw=1)
    scatter.set(xlabel="true input", ylabel="inferred input (mapped)",
                title=f"R2 = {r2_score(y, mapped.ravel()):.3f}")
    return save_png(fig, path)
