"""Figures people look at. Functions draw with matplotlib's Agg backend and save PNG.

Every function draws one figure, saves it as a PNG at ``path`` and returns ``Path(path)``.
Arrays are numpy; rates come in counts per bin and are drawn in spikes/s where ``bin_ms`` is given.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from pyro_lfads.data.atomic_files import atomic_path  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    """Lay out, save as PNG (atomically: the whole file or none), close; return the path."""
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _time_s(n_time: int, bin_ms: float) -> np.ndarray:
    """Bin start times in seconds."""
    return np.arange(n_time) * bin_ms / 1000.0


def _quantiles(draws: np.ndarray, interval: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower bound, median and upper bound of the central ``interval`` over the first axis."""
    tail = (1.0 - interval) / 2.0
    lower, median, upper = np.quantile(draws, [tail, 0.5, 1.0 - tail], axis=0)
    return lower, median, upper


def plot_rates(spikes: np.ndarray, inferred: np.ndarray, path: str | Path, *, truth: np.ndarray | None = None,
               smoothed: np.ndarray | None = None, trials=(0, 1, 2), neurons=(0, 1, 2, 3),
               bin_ms: float = 10.0) -> Path:
    """Spikes (ticks), true rates, inferred rates and smoothed rates for a few trials and neurons.

    Arrays are (trials, time, neurons) in counts per bin; rates are drawn in spikes/s.
    """
    n_time = inferred.shape[1]
    time_s = _time_s(n_time, bin_ms)
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
    return _save(fig, path)


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
    return _save(fig, path)


def _category_colors(n: int) -> list:
    """``n`` distinguishable colours: tab10/tab20 when they suffice, else evenly spaced hues."""
    if n <= 20:
        cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
        return [cmap(i) for i in range(n)]
    return [plt.get_cmap("hsv")(i / n) for i in range(n)]


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
        palette = _category_colors(len(labels))
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
    return _save(fig, path)


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
    palette = _category_colors(len(shown))
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
    return _save(fig, path)


def plot_inputs(inputs: np.ndarray, path: str | Path, *, inputs_std: np.ndarray | None = None,
                truth: np.ndarray | None = None, trials=(0, 1, 2), bin_ms: float = 10.0) -> Path:
    """Inferred inputs u per trial (rows) and input dimension (columns).

    ``inputs`` is (trials, time, U), the posterior mean; ``inputs_std`` the same shape, drawn as a
    ±1 sd band; ``truth`` is (trials, time, U') true inputs, drawn dashed black on a twin y axis (all
    U' channels in every panel). Time in seconds.
    """
    n_time, n_inputs = inputs.shape[1], inputs.shape[2]
    time_s = _time_s(n_time, bin_ms)
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
    return _save(fig, path)


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
    return _save(fig, path)


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
    time_s = _time_s(true.shape[1], bin_ms)
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
    return _save(fig, path)


def _record_series(records: list[dict], key: str) -> np.ndarray:
    """One value per record (NaN where missing or None)."""
    return np.array([np.nan if record.get(key) is None else float(record[key]) for record in records])


def plot_training_curves(records: list[dict], path: str | Path) -> Path:
    """Training curves against epoch from the per-epoch records of ``training_curve.jsonl``.

    Panels: loss (−ELBO), reconstruction and KL (train and valid), learning rate (log scale), KL weight
    and, when recorded, the sample-validation reconstruction ``valid_sv_recon``. Loss-like panels use a
    log y axis when their values are positive and span more than a factor of 20.
    Raises ``ValueError`` on an empty list.
    """
    if not records:
        raise ValueError("no training records")
    panels = [("loss (−ELBO)", ["train_loss", "valid_loss"]), ("reconstruction", ["train_recon", "valid_recon"]),
              ("KL", ["train_kl", "valid_kl"]), ("learning rate", ["lr"]), ("KL weight (annealing)", ["kl_weight"])]
    if any(record.get("valid_sv_recon") is not None for record in records):
        panels.append(("sample-validation reconstruction", ["valid_sv_recon"]))
    epochs = _record_series(records, "epoch")
    fig, axes = plt.subplots(2, 3, figsize=(13.0, 7.0), squeeze=False)
    for ax, (title, keys) in zip(axes.flat, panels):
        for key in keys:
            ax.plot(epochs, _record_series(records, key), ".-", ms=3, lw=1.3, label=key.split("_")[0])
        values = np.concatenate([_record_series(records, key) for key in keys])
        values = values[np.isfinite(values)]
        wide = values.size > 0 and values.min() > 0 and values.max() > 20 * values.min()
        if keys == ["lr"] or (len(keys) == 2 and wide):
            ax.set_yscale("log")
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("epoch")
        if len(keys) == 2:
            ax.legend(fontsize=8)
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    return _save(fig, path)


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
    return _save(fig, path)


def plot_ppc(ppc, path: str | Path) -> Path:
    """Posterior predictive checks: value distribution, Fano factors and PSTHs, observed vs replicated.

    ``ppc`` has ``values`` (V,), ``is_integer``, ``count_observed`` (V,), ``count_replicated`` (D, V),
    ``fano_observed`` (N,) or None, ``fano_replicated`` (D, N) or None, ``psth_observed`` (C, T, N),
    ``psth_replicated`` (D, C, T, N) and ``interval`` (the central predictive interval drawn, e.g. 0.9).
    PSTHs are shown for the 3 most active neurons and up to 2 conditions, x in bins; an optional
    ``conditions`` (C,) attribute names the conditions in the legend.
    """
    fig = plt.figure(figsize=(13.0, 8.0))
    grid = fig.add_gridspec(2, 6)
    ax = fig.add_subplot(grid[0, :3])
    lower, median, upper = _quantiles(np.asarray(ppc.count_replicated), ppc.interval)
    ax.errorbar(ppc.values, median, yerr=[median - lower, upper - median], fmt="s", ms=6, mfc="none",
                color="tab:orange", capsize=3, label=f"replicated median, {ppc.interval:.0%} interval")
    ax.plot(ppc.values, ppc.count_observed, "o", color="black", ms=3.5, label="observed")
    if ppc.is_integer:
        ax.set_yscale("log")
        ax.set_xlabel(f"count per bin (last bin: ≥ {ppc.values[-1]:g})")
    else:
        ax.set_xlabel("value")
    ax.set_ylabel("fraction of entries")
    ax.set_title("(a) distribution of values", fontsize=11)
    ax.legend(fontsize=8)

    ax = fig.add_subplot(grid[0, 3:])
    if ppc.fano_observed is None:
        ax.text(0.5, 0.5, "Fano factor: not defined for these data", ha="center", va="center",
                transform=ax.transAxes, fontsize=11)
        ax.set_axis_off()
    else:
        observed = np.asarray(ppc.fano_observed)
        replicated = np.asarray(ppc.fano_replicated)
        lower, _, upper = _quantiles(replicated, ppc.interval)
        mean = replicated.mean(axis=0)
        finite = np.isfinite(observed) & np.isfinite(mean)
        errors = np.clip([mean - lower, upper - mean], 0.0, None)[:, finite]
        ax.errorbar(observed[finite], mean[finite], yerr=errors, fmt="o", ms=3, color="tab:orange", alpha=0.7,
                    elinewidth=0.8, label=f"replicated mean, {ppc.interval:.0%} interval")
        ends = [min(observed[finite].min(), lower[finite].min()), max(observed[finite].max(), upper[finite].max())]
        ax.plot(ends, ends, "--", color="black", lw=1.0, label="identity")
        ax.set_xlabel("observed Fano factor")
        ax.set_ylabel("replicated Fano factor")
        ax.set_title(f"(b) Fano factor per neuron ({int(finite.sum())} neurons)", fontsize=11)
        ax.legend(fontsize=8)

    condition_labels = getattr(ppc, "conditions", None)
    psth_observed = np.asarray(ppc.psth_observed)
    psth_replicated = np.asarray(ppc.psth_replicated)
    neurons = np.argsort(psth_observed.mean(axis=(0, 1)))[::-1][:3]
    bins = np.arange(psth_observed.shape[1])
    for slot, neuron in enumerate(neurons):
        ax = fig.add_subplot(grid[1, 2 * slot:2 * slot + 2])
        for condition, color in zip(range(min(2, psth_observed.shape[0])), ["tab:blue", "tab:red"]):
            name = f"condition {condition if condition_labels is None else condition_labels[condition]}"
            lower, _, upper = _quantiles(psth_replicated[:, condition, :, neuron], ppc.interval)
            ax.fill_between(bins, lower, upper, color=color, alpha=0.25, lw=0,
                            label=f"{name}: replicated {ppc.interval:.0%}")
            ax.plot(bins, psth_observed[condition, :, neuron], color=color, lw=1.4, label=f"{name}: observed")
        ax.set_xlabel("time (bins)")
        ax.set_ylabel("mean value per bin")
        ax.set_title(f"(c) PSTH, neuron {neuron}", fontsize=11)
        if slot == 0:
            ax.legend(fontsize=8)
    return _save(fig, path)


def plot_khat(khat: np.ndarray, path: str | Path) -> Path:
    """PSIS Pareto k-hat per trial: against trial index, coloured by zone, and as a histogram.

    ``khat`` is (trials,). Zones: good (< 0.5), ok (0.5–0.7), unreliable (> 0.7).
    """
    khat = np.asarray(khat, dtype=float)
    finite = khat[np.isfinite(khat)]
    zones = [("good", "tab:green", khat < 0.5), ("ok", "tab:orange", (khat >= 0.5) & (khat <= 0.7)),
             ("unreliable", "tab:red", khat > 0.7)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11.0, 4.2), gridspec_kw={"width_ratios": [1.6, 1.0]})
    index = np.arange(khat.size)
    for label, color, mask in zones:
        left.plot(index[mask], khat[mask], "o", ms=3, color=color, label=f"{label}: {int(mask.sum())} trials")
    for line in (left.axhline, right.axvline):
        line(0.5, ls="--", color="tab:green", lw=1.0, label="good < 0.5")
        line(0.7, ls="--", color="tab:red", lw=1.0, label="unreliable > 0.7")
    left.set_xlabel("trial")
    left.set_ylabel("Pareto k-hat")
    left.legend(fontsize=8, loc="best")
    right.hist(finite, bins=min(40, max(10, finite.size // 5)), color="tab:gray")
    right.set_xlabel("Pareto k-hat")
    right.set_ylabel("trials")
    fraction = float(np.mean(finite < 0.7)) if finite.size else float("nan")
    fig.suptitle(f"PSIS k-hat: {fraction:.0%} of trials below 0.7, median {np.median(finite):.2f}", fontsize=12)
    return _save(fig, path)


def plot_hyperparameter_trajectories(rows: list[dict], names: list[str], path: str | Path, *,
                                     log_names=(), metric: str = "valid_metric") -> Path:
    """Population-based training: each hyperparameter of ``names``, and ``metric``, against generation,
    one line per member.

    ``rows`` hold one member's generation each: ``generation``, ``member``, ``parent`` (the member whose
    checkpoint it started that generation from), the values of ``names`` and ``metric``. A generation that
    started from another member's checkpoint (an exploit) is drawn as an open circle, joined to the
    donor's previous generation by a dotted line. ``log_names`` get a log y axis.
    Raises ``ValueError`` on an empty list.
    """
    if not rows:
        raise ValueError("no population records")
    panels = [*names, metric]
    n_cols = min(4, len(panels))
    n_rows = -(-len(panels) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 2.9 * n_rows), squeeze=False)
    members = sorted({row["member"] for row in rows})
    colors = dict(zip(members, _category_colors(len(members))))
    at = {(row["member"], row["generation"]): row for row in rows}
    for ax, name in zip(axes.flat, panels):
        for member in members:
            mine = sorted((row for row in rows if row["member"] == member), key=lambda row: row["generation"])
            for row in mine:
                exploited = row["parent"] != member
                ax.plot(row["generation"], row[name], "o", ms=5, color=colors[member],
                        mfc="white" if exploited else colors[member], label=f"member {member}" if row is mine[0]
                        else None)
                before = at.get((row["parent"], row["generation"] - 1))
                if before is not None:
                    ax.plot([before["generation"], row["generation"]], [before[name], row[name]],
                            ":" if exploited else "-", color=colors[member], lw=1.0 if exploited else 1.3)
        if name in log_names:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("generation")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.flat[0].legend(fontsize=7, ncol=2)
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    return _save(fig, path)


def plot_streaming_replay(online: np.ndarray, offline: np.ndarray, path: str | Path, *,
                          truth: np.ndarray | None = None, latencies_ms: np.ndarray | None = None,
                          neurons=(0, 1, 2), bin_ms: float = 10.0) -> Path:
    """One replayed trial: the rates a streamer returned bin by bin (online) against an offline
    estimate of the whole trial, and the truth, for a few neurons; then the per-bin latencies.

    ``online``, ``offline`` and ``truth`` are (time, neurons) in counts per bin, drawn in spikes/s;
    ``latencies_ms`` (bins,) in milliseconds.
    """
    time_s = _time_s(online.shape[0], bin_ms)
    to_hz = 1000.0 / bin_ms
    n_panels = len(neurons) + (latencies_ms is not None)
    fig, axes = plt.subplots(1, n_panels, figsize=(3.4 * n_panels, 2.8), squeeze=False)
    for ax, neuron in zip(axes[0], neurons):
        if truth is not None:
            ax.plot(time_s, truth[:, neuron] * to_hz, color="black", lw=1.2, label="truth")
        ax.plot(time_s, offline[:, neuron] * to_hz, color="tab:blue", lw=1.2, label="offline (whole trial)")
        ax.plot(time_s, online[:, neuron] * to_hz, color="tab:red", lw=1.2, ls="--", label="online (bin by bin)")
        ax.set(title=f"neuron {neuron}", xlabel="time (s)", ylabel="rate (spikes/s)")
    axes[0, 0].legend(fontsize=7, frameon=False)
    if latencies_ms is not None:
        ax = axes[0, -1]
        ax.hist(latencies_ms, bins=40, color="tab:gray")
        ax.axvline(np.median(latencies_ms), color="tab:red", lw=1)
        ax.set(title=f"per-bin latency, median {np.median(latencies_ms):.3f} ms", xlabel="ms", ylabel="bins")
    return _save(fig, path)
