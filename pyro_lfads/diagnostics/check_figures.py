"""Figures that check a fit: training curves, posterior predictive checks, k-hat, tuning trajectories, streaming replay.

Every function draws one figure with matplotlib's Agg backend, saves it as a PNG at ``path`` and returns
``Path(path)``. Arrays are numpy; rates come in counts per bin and are drawn in spikes/s where ``bin_ms`` is given.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from pyro_lfads.diagnostics.drawing import bin_times_s, category_colors, central_interval, save_png


def _record_series(records: list[dict], key: str) -> np.ndarray:
    """One value per record (NaN where missing or None)."""
    return np.array([np.nan if record.get(key) is None else float(record[key]) for record in records])


def plot_training_curves(records: list[dict], path: str | Path, best_epoch: int | None = None) -> Path:
    """Training curves against epoch from the per-epoch records of ``training_curve.jsonl``.

    Panels: loss (−ELBO), reconstruction and KL (train and valid), learning rate (log scale), KL weight
    and, when recorded, the sample-validation reconstruction ``valid_sv_recon``. Loss-like panels use a
    log y axis when their values are positive and span more than a factor of 20. A dotted line marks
    ``best_epoch`` (the best checkpoint's) on every panel when given.
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
        if best_epoch is not None:
            ax.axvline(best_epoch, color="0.4", ls=":", lw=1.2, label="best")
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("epoch")
        if len(keys) == 2:
            ax.legend(fontsize=8)
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    return save_png(fig, path)


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
    lower, median, upper = central_interval(np.asarray(ppc.count_replicated), ppc.interval)
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
    if ppc.fano_observed is not None:
        observed = np.asarray(ppc.fano_observed)
        replicated = np.asarray(ppc.fano_replicated)
        lower, _, upper = central_interval(replicated, ppc.interval)
        mean = replicated.mean(axis=0)
        finite = np.isfinite(observed) & np.isfinite(mean)
    if ppc.fano_observed is None or not finite.any():  # e.g. one trial per condition
        ax.text(0.5, 0.5, "Fano factor: not defined for these data", ha="center", va="center",
                transform=ax.transAxes, fontsize=11)
        ax.set_axis_off()
    else:
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
            lower, _, upper = central_interval(psth_replicated[:, condition, :, neuron], ppc.interval)
            ax.fill_between(bins, lower, upper, color=color, alpha=0.25, lw=0,
                            label=f"{name}: replicated {ppc.interval:.0%}")
            ax.plot(bins, psth_observed[condition, :, neuron], color=color, lw=1.4, label=f"{name}: observed")
        ax.set_xlabel("time (bins)")
        ax.set_ylabel("mean value per bin")
        ax.set_title(f"(c) PSTH, neuron {neuron}", fontsize=11)
        if slot == 0:
            ax.legend(fontsize=8)
    return save_png(fig, path)


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
    return save_png(fig, path)


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
    colors = dict(zip(members, category_colors(len(members))))
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
    return save_png(fig, path)


def plot_streaming_replay(online: np.ndarray, offline: np.ndarray, path: str | Path, *,
                          truth: np.ndarray | None = None, latencies_ms: np.ndarray | None = None,
                          neurons=(0, 1, 2), bin_ms: float = 10.0) -> Path:
    """One replayed trial: the rates a streamer returned bin by bin (online) against an offline
    estimate of the whole trial, and the truth, for a few neurons; then the per-bin latencies.

    ``online``, ``offline`` and ``truth`` are (time, neurons) in counts per bin, drawn in spikes/s;
    ``latencies_ms`` (bins,) in milliseconds.
    """
    time_s = bin_times_s(online.shape[0], bin_ms)
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
    return save_png(fig, path)
