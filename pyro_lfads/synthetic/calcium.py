"""Calcium imaging of the Lorenz benchmark: dF/F traces with the true rates behind them.

Poisson spikes are drawn from the Lorenz rates at fine resolution (10 ms
bins). Each neuron's indicator integrates its spikes with an exponential
decay (0.4 s, GCaMP6f-like): c_t = exp(-dt / decay) c_(t-1) + spikes_t,
starting at the level the first bin's rate would hold it at. Fluorescence is
a per-neuron baseline plus a per-neuron gain times c, averaged over each
imaging frame (3 fine bins: 33 Hz imaging), plus Gaussian noise. The truth is
the spike rate averaged over each frame, in spikes/s.
"""

from __future__ import annotations

import numpy as np

from pyro_lfads.data import LFADSDataset

from pyro_lfads.synthetic.arguments import check_float, check_int, train_count
from pyro_lfads.synthetic.lorenz import assemble_dataset, lorenz_latents, split_trials


def make_calcium_dataset(
    seed: int = 0,
    n_conditions: int = 65,
    trials_per_condition: int = 20,
    n_neurons: int = 30,
    n_frames: int = 66,
    frame_bins: int = 3,
    bin_ms: float = 10.0,
    baseline_rate_hz: float = 5.0,
    readout_scale: float = 3**-0.5,
    decay_s: float = 0.4,
    gain_mean: float = 0.2,
    noise_std: float = 0.05,
    train_fraction: float = 0.8,
) -> LFADSDataset:
    """Simulate calcium imaging of Lorenz-driven neurons.

    Args:
        seed: seed of the only random generator used.
        n_conditions, trials_per_condition, n_neurons, readout_scale,
            baseline_rate_hz, train_fraction: as in ``make_lorenz_dataset``.
        n_frames: imaging frames per trial (66 frames of 30 ms: about 2 s).
        frame_bins: fine 10 ms bins (Lorenz Euler steps) per frame.
        bin_ms: the fine bin width, milliseconds.
        decay_s: indicator decay time constant, seconds.
        gain_mean: mean dF/F added by one spike; each neuron's gain is
            gain_mean * Uniform(0.5, 1.5).
        noise_std: std of the Gaussian noise on each frame, dF/F units.

    Returns:
        An LFADSDataset with ``recon_data`` = ``encod_data``: (trials, n_frames,
        n_neurons) dF/F; ``truth``: (trials, n_frames, n_neurons) true rates in
        spikes/s, ``conversion_factor`` = 1000 / (bin_ms * frame_bins), so
        truth / conversion_factor is the expected spike count per frame;
        ``extras``: conditions, latents at frame times, and ``{split}_spikes``,
        the spike counts per frame.
    """
    for name, value, minimum in (("seed", seed, 0), ("n_conditions", n_conditions, 1),
                                 ("trials_per_condition", trials_per_condition, 2),
                                 ("n_neurons", n_neurons, 1), ("n_frames", n_frames, 2),
                                 ("frame_bins", frame_bins, 1)):
        check_int(name, value, minimum)
    for name, value in (("bin_ms", bin_ms), ("baseline_rate_hz", baseline_rate_hz), ("decay_s", decay_s),
                        ("gain_mean", gain_mean)):
        check_float(name, value)
    check_float("noise_std", noise_std, allow_zero=True)
    n_train = train_count(train_fraction, trials_per_condition)

    rng = np.random.default_rng(seed)
    n_fine = n_frames * frame_bins
    bin_s = bin_ms / 1000.0
    latents = lorenz_latents(rng, n_conditions, n_fine)
    readout = rng.normal(0.0, readout_scale, size=(3, n_neurons))
    rates_hz = baseline_rate_hz * np.exp(latents @ readout)  # (conditions, fine, neurons)
    shape = (n_conditions, trials_per_condition, n_fine, n_neurons)
    spikes = rng.poisson(np.broadcast_to((rates_hz * bin_s)[:, None], shape))

    decay = np.exp(-bin_s / decay_s)
    level = np.broadcast_to((rates_hz[:, None, 0] * bin_s) * decay / (1 - decay), spikes[:, :, 0].shape)
    indicator = np.empty(shape)
    for t in range(n_fine):
        level = decay * level + spikes[:, :, t]
        indicator[:, :, t] = level
    gain = gain_mean * rng.uniform(0.5, 1.5, n_neurons)
    baseline = rng.uniform(0.8, 1.2, n_neurons)
    frames = lambda x: x.reshape(*x.shape[:-2], n_frames, frame_bins, n_neurons).mean(-2)  # noqa: E731
    fluorescence = baseline + gain * frames(indicator)
    fluorescence = fluorescence + noise_std * rng.standard_normal(fluorescence.shape)

    is_train = split_trials(rng, n_conditions, trials_per_condition, n_train)
    dataset = assemble_dataset(fluorescence, frames(rates_hz), latents[:, frame_bins - 1::frame_bins], is_train,
                               1000.0 / (bin_ms * frame_bins),
                               source=f"calcium(seed={seed})", bin_width_s=bin_ms * frame_bins / 1000.0)
    spikes_per_frame = spikes.reshape(n_conditions * trials_per_condition, n_frames, frame_bins, n_neurons).sum(2)
    for name, mask in (("train", is_train.ravel()), ("valid", ~is_train.ravel())):
        dataset.extras[f"{name}_spikes"] = spikes_per_frame[mask].astype(np.float32)
    return dataset
