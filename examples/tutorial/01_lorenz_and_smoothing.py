"""Step 1: spikes from the Lorenz system, and what smoothing them gets.

The data (Methods 2.1, ``pyro_lfads.synthetic.lorenz``). A 3-dimensional
chaotic system drives every neuron:

    z_(t+1) = z_t + dt * F_lorenz(z_t)       z_t in R^3, one Euler step per 10 ms bin
    r_t     = b * exp(W z_t)                  rates of N neurons (spikes/s), W random
    x_t     ~ Poisson(r_t * 10 ms)            spike counts per bin

Each condition starts at its own point of the attractor; its trials share
the rates and differ only in the Poisson draw. The shapes are (trials, T, N)
and the true rates are kept, so every later step can score itself.

The baseline (``pyro_lfads.evaluation.baselines.GaussianSmoothing``). Smooth each spike
train along time with a Gaussian kernel of width sigma:

    r_hat_t = sum_s k_sigma(t - s) x_s / sum_s k_sigma(t - s)

sigma trades noise (small sigma) against blur (large sigma); the class picks
it by the leave-one-bin-out Poisson likelihood of the training spikes, which
needs no truth. Smoothing treats each neuron and trial alone: it cannot pool
what the neurons share, a 3-dimensional state. Averaging repeated trials of a
condition pools over trials instead, but a single trial has no repeats. LFADS
(the next steps) pools over neurons through a dynamical model.

Figure ``smoothing.png``: the Lorenz state; one neuron's spikes, true rate and
smoothed rates at two widths; rate R2 against the truth over sigma, next to
the condition average; true against smoothed rates.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from _common import BIN_MS, lorenz_dataset, parse_args, report, showcase  # noqa: E402
from pyro_lfads.evaluation.baselines import GaussianSmoothing  # noqa: E402
from pyro_lfads.evaluation.metrics import condition_psth, rate_r2  # noqa: E402


def main() -> None:
    args = parse_args(__doc__, "01_lorenz_and_smoothing")
    dataset = lorenz_dataset(args.tiny, args.seed)
    train, valid = dataset.train.recon_data, dataset.valid.recon_data  # (trials, T, N) spike counts
    truth = dataset.truth_counts("valid")  # (trials, T, N) expected counts per bin

    smoothing = GaussianSmoothing().fit(train)  # sigma chosen on training spikes, no truth needed
    smoothed = smoothing.predict(valid)
    r2_by_sigma = [rate_r2(truth, GaussianSmoothing((sigma,)).fit(train).predict(valid))
                   for sigma in smoothing.sigmas]
    # what repeated trials give: each validation trial gets its condition's average of training trials
    labels, psth = condition_psth(train, dataset.extras["train_conditions"], sigma_bins=1.0)
    averaged = psth[np.searchsorted(labels, dataset.extras["valid_conditions"])]
    averaged_r2 = rate_r2(truth, averaged)
    smoothing_r2 = rate_r2(truth, smoothed)

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    latents = dataset.extras["valid_latents"]  # (trials, T, 3), z-scored Lorenz state
    shown = [trial for trial, _ in showcase(dataset, 5)]
    for trial in shown:
        axes[0, 0].plot(latents[trial, :, 0], latents[trial, :, 2], lw=1)
        axes[0, 0].plot(latents[trial, 0, 0], latents[trial, 0, 2], "o", color="black", ms=3)
    axes[0, 0].set(xlabel="Lorenz x (z-scored)", ylabel="Lorenz z (z-scored)",
                   title=f"the latent state of {len(shown)} conditions (dot: start)")

    time_s = np.arange(valid.shape[1]) * BIN_MS / 1000
    to_hz = 1000 / BIN_MS
    [(trial, neuron)] = showcase(dataset, 1)
    ax = axes[0, 1]
    ax.plot(time_s, truth[trial, :, neuron] * to_hz, color="black", lw=2, label="true rate")
    for sigma, color in ((1.0, "tab:orange"), (smoothing.sigma_bins_, "tab:red")):
        rates = GaussianSmoothing((sigma,)).fit(train).predict(valid[trial:trial + 1])
        ax.plot(time_s, rates[0, :, neuron] * to_hz, color=color, lw=1.2, label=f"smoothed, sigma {sigma:.1f} bins")
    spike_times = time_s[valid[trial, :, neuron] > 0]
    ax.plot(spike_times, np.zeros_like(spike_times), "|", color="tab:blue", ms=10, label="spikes")
    ax.set(xlabel="time (s)", ylabel="rate (spikes/s)", title=f"validation trial {trial}, neuron {neuron}")
    ax.legend(fontsize=8)

    ax = axes[1, 0]
    ax.semilogx(smoothing.sigmas, r2_by_sigma, "o-", color="tab:red", label="smoothing (each width)")
    ax.axvline(smoothing.sigma_bins_, color="tab:red", ls=":", label=f"chosen width {smoothing.sigma_bins_:.1f} bins")
    ax.axhline(averaged_r2, color="tab:green", ls="--", label="average of the condition's training trials")
    ax.set(xlabel="kernel width sigma (bins)", ylabel="rate R2 against the truth", ylim=(max(-1, min(r2_by_sigma)), 1),
           title="single-trial smoothing cannot pool over neurons")
    ax.legend(fontsize=8)

    ax = axes[1, 1]
    ax.scatter(truth.ravel()[::7] * to_hz, smoothed.ravel()[::7] * to_hz, s=2, alpha=0.3)
    top = float(truth.max()) * to_hz
    ax.plot([0, top], [0, top], "k--", lw=1)
    ax.set(xlabel="true rate (spikes/s)", ylabel="smoothed rate (spikes/s)",
           title=f"smoothing: R2 = {smoothing_r2:.3f}")
    fig.tight_layout()
    figure = args.out / "smoothing.png"
    fig.savefig(figure, dpi=110)

    report(step=1, trials=dataset.train.n_trials + dataset.valid.n_trials, neurons=dataset.valid.n_neurons,
           mean_rate_hz=float(truth.mean() * to_hz), sigma_bins=smoothing.sigma_bins_, smoothing_rate_r2=smoothing_r2,
           best_sigma_rate_r2=max(r2_by_sigma), condition_average_rate_r2=averaged_r2, figures=[figure])


if __name__ == "__main__":
    main()
