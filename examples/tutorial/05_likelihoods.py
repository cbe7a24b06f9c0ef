"""Step 5: swapping the likelihood: Gaussian signals and calcium imaging.

Only the last line of the generative program knows what was recorded. An
observation model (``pyro_lfads.models.likelihoods``) maps the factors
f (B, T, F) to ``Observation(distribution, rates, mean)``; the model scores
``pyro.sample("obs", distribution.to_event(2), obs=x)``. Choose one with
``LFADSConfig(likelihood=NAME)``, or pass your own module:
``LFADSModel(config, n_neurons, likelihood=MyLikelihood(...))``.

    poisson    x_t ~ Poisson(exp(W f_t + b))                       spike counts (steps 1-4)
    gaussian   x_t ~ Normal(W f_t + b, s^2), s per neuron           EMG, LFP power, z-scored signals
    calcium    r_t = exp(W f_t + b)                                 spikes per frame
               c_t = d c_(t-1) + r_t,  d = exp(-1 / tau)            indicator, tau learned per neuron
               y_t ~ Normal(baseline + gain * c_t, s^2)             dF/F

The guide does not change: the encoders read whatever x is. Two experiments:

1. Lorenz rates observed through Gaussian noise
   (``make_lorenz_dataset(likelihood="gaussian")``; the truth is the centred
   log rate), fitted with ``likelihood="gaussian"``.
2. Calcium imaging of Lorenz neurons (``pyro_lfads.synthetic.calcium``: spikes
   filtered by a 0.4 s indicator, 33 Hz frames, noise), fitted twice: with the
   calcium model, whose rates are the spikes behind the fluorescence, and with
   the Gaussian model, whose "rates" are the fluorescence itself, which lags
   and smears the spikes. Fluorescence fixes rates only up to a gain and an
   offset per neuron, so both are scored after a per-neuron linear map from
   estimate to truth fitted on the training trials.

Figure ``likelihoods.png``: the Gaussian fit of one neuron; one neuron's dF/F
and the calcium model's predicted fluorescence; the true spike rate against
what the two models infer.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402

import pyro_lfads  # noqa: E402
from _common import BIN_MS, fit_and_score, lorenz_dataset, parse_args, report, small_config  # noqa: E402
from pyro_lfads.evaluation.metrics import rate_r2  # noqa: E402
from pyro_lfads.synthetic.calcium import make_calcium_dataset  # noqa: E402

FRAME_MS = 30.0  # 3 bins of 10 ms per imaging frame
INDICATOR_DECAY_FRAMES = 400.0 / FRAME_MS  # the simulation's 0.4 s, the calcium model's starting tau


def calcium_dataset(tiny: bool, seed: int):
    """dF/F of 30 neurons, 20 conditions x 10 trials of 50 frames (1.5 s); tiny: 12 neurons, 4 x 5 trials, 15 frames."""
    sizes = (dict(n_conditions=4, trials_per_condition=5, n_neurons=12, n_frames=15) if tiny else
             dict(n_conditions=20, trials_per_condition=10, n_neurons=30, n_frames=50))
    return make_calcium_dataset(seed=seed, **sizes)


def mapped(dataset, run_dir) -> np.ndarray:
    """Validation rates (trials, T, N) after each neuron's least-squares linear map onto its true
    rate, the map fitted on the training trials."""
    estimate = {split: pyro_lfads.read_posterior(run_dir, split)["output_params"] for split in ("train", "valid")}
    truth = dataset.truth_counts("train")
    out = np.empty_like(estimate["valid"])
    for n in range(out.shape[-1]):
        line = LinearRegression().fit(estimate["train"][..., n].reshape(-1, 1), truth[..., n].ravel())
        out[..., n] = line.predict(estimate["valid"][..., n].reshape(-1, 1)).reshape(out.shape[:2])
    return out


def main() -> None:
    args = parse_args(__doc__, "05_likelihoods")
    config = small_config(args.tiny, seed=args.seed)

    signals = lorenz_dataset(args.tiny, args.seed, likelihood="gaussian")
    gaussian = fit_and_score(signals, config.replace(likelihood="gaussian"), args.out / "gaussian")

    imaging = calcium_dataset(args.tiny, args.seed)
    calcium_config = config.replace(likelihood="calcium", calcium_tau_init=INDICATOR_DECAY_FRAMES)
    calcium = fit_and_score(imaging, calcium_config, args.out / "calcium")
    fit_and_score(imaging, config.replace(likelihood="gaussian"), args.out / "gaussian_on_calcium")
    truth = imaging.truth_counts("valid")  # spikes per frame
    calcium_rates = mapped(imaging, args.out / "calcium")
    gaussian_rates = mapped(imaging, args.out / "gaussian_on_calcium")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    trial = 0
    neuron = int(signals.valid.truth[trial].var(0).argmax())
    time_s = np.arange(signals.valid.n_time) * BIN_MS / 1000
    axes[0].plot(time_s, signals.valid.recon_data[trial, :, neuron], ".", color="tab:blue", ms=3, label="data")
    axes[0].plot(time_s, signals.valid.truth[trial, :, neuron], "k", lw=2, label="truth")
    axes[0].plot(time_s, gaussian["output_params"][trial, :, neuron], color="tab:red",
                 label=f"gaussian LFADS: R2 {gaussian['rate_r2']:.3f}")
    axes[0].set(xlabel="time (s)", ylabel="signal", title=f"Gaussian observations, neuron {neuron}")
    neuron = int(truth[trial].var(0).argmax())
    frames_s = np.arange(imaging.valid.n_time) * FRAME_MS / 1000
    axes[1].plot(frames_s, imaging.valid.recon_data[trial, :, neuron], ".", color="tab:green", ms=4, label="dF/F")
    axes[1].plot(frames_s, calcium["obs_mean"][trial, :, neuron], color="tab:red", label="calcium model's fluorescence")
    axes[1].set(xlabel="time (s)", ylabel="dF/F", title=f"calcium imaging, neuron {neuron}")
    to_hz = 1000 / FRAME_MS
    axes[2].plot(frames_s, truth[trial, :, neuron] * to_hz, "k", lw=2, label="true spike rate")
    axes[2].plot(frames_s, calcium_rates[trial, :, neuron] * to_hz, color="tab:red", label="calcium model")
    axes[2].plot(frames_s, gaussian_rates[trial, :, neuron] * to_hz, color="tab:purple", label="gaussian model")
    axes[2].set(xlabel="time (s)", ylabel="rate (spikes/s, mapped)", title="rates behind the fluorescence")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    figure = args.out / "likelihoods.png"
    fig.savefig(figure, dpi=110)

    report(step=5, gaussian_rate_r2=gaussian["rate_r2"],
           gaussian_data_r2=rate_r2(signals.valid.truth, signals.valid.recon_data),
           calcium_model_rate_r2=rate_r2(truth, calcium_rates),
           gaussian_model_on_calcium_rate_r2=rate_r2(truth, gaussian_rates), figures=[figure])


if __name__ == "__main__":
    main()
