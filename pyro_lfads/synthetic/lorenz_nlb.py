"""A Neural-Latents-Benchmark-shaped Lorenz data set: every NLB metric has a ground truth.

The paper's Lorenz system (see ``lorenz.py``) drives ``n_heldin + n_heldout``
Poisson neurons. The encoder may read only the held-in neurons over the first
``n_time`` bins; the model must also predict the held-out neurons (co-bps)
and all neurons over the next ``n_forward`` bins (fp-bps). A behaviour
variable, a noisy linear readout of the Lorenz state ``behavior_lag_bins``
bins earlier (so neural activity leads behaviour, as in motor cortex), stands
for hand velocity (velocity R2). Conditions share their Lorenz trajectory, so
condition-averaged rates have a truth too (PSTH R2).

Layout (the LFADS / NLB convention of :mod:`pyro_lfads.data.nlb`), per split:
    encod_data  (trials, n_time, n_heldin)                     held-in spikes
    recon_data  (trials, n_time + n_forward, n_heldin + n_heldout)  held-in first, observed bins first
    truth       like recon_data, rates in spikes/s (conversion_factor = 1000 / bin_ms)
    extras {split}_behavior (trials, n_time, behavior_dim), {split}_conditions (trials,),
           {split}_latents (trials, n_time + n_forward, 3) the z-scored Lorenz state.
"""

from __future__ import annotations

import numpy as np

from pyro_lfads.data import LFADSDataset, Split

from pyro_lfads.synthetic.arguments import check_float, check_int, train_count
from pyro_lfads.synthetic.lorenz import lorenz_latents, split_trials
from pyro_lfads.synthetic.observations import draw_observations


def make_nlb_lorenz_dataset(
    seed: int = 0,
    n_conditions: int = 65,
    trials_per_condition: int = 20,
    n_heldin: int = 30,
    n_heldout: int = 10,
    n_time: int = 80,
    n_forward: int = 20,
    bin_ms: float = 10.0,
    baseline_rate_hz: float = 10.0,
    readout_scale: float = 3**-0.5,
    behavior_dim: int = 2,
    behavior_lag_bins: int = 5,
    behavior_noise: float = 0.3,
    train_fraction: float = 0.8,
) -> LFADSDataset:
    """Simulate the NLB-shaped Lorenz set (shapes in the module docstring).

    Args:
        seed: seed of the only random generator used (>= 0).
        n_conditions, trials_per_condition: Lorenz trajectories, and spike
            trains drawn from each; each condition's trials are split
            ``train_fraction`` / rest into train and valid.
        n_heldin, n_heldout: neurons the encoder reads, and neurons only scored.
        n_time, n_forward: observed bins, and forward-prediction bins after them.
        bin_ms: bin width in ms; the Lorenz system takes one Euler step per bin.
        baseline_rate_hz: rate where the readout is 0; readout_scale: std of
            the readout weights (log-rate std about 1 at the default).
        behavior_dim: dimensions of the behaviour; each is a random unit-norm
            readout of the Lorenz state ``behavior_lag_bins`` bins earlier,
            plus Normal(0, ``behavior_noise``) noise per trial and bin.

    Raises:
        InputError: an argument out of range.
    """
    for name, value, minimum in (("seed", seed, 0), ("n_conditions", n_conditions, 2),
                                 ("trials_per_condition", trials_per_condition, 2), ("n_heldin", n_heldin, 1),
                                 ("n_heldout", n_heldout, 0), ("n_time", n_time, 2), ("n_forward", n_forward, 0),
                                 ("behavior_dim", behavior_dim, 1), ("behavior_lag_bins", behavior_lag_bins, 0)):
        check_int(name, value, minimum)
    for name, value, zero in (("bin_ms", bin_ms, False), ("baseline_rate_hz", baseline_rate_hz, False),
                              ("readout_scale", readout_scale, True), ("behavior_noise", behavior_noise, True)):
        check_float(name, value, allow_zero=zero)
    n_train = train_count(train_fraction, trials_per_condition)

    rng = np.random.default_rng(seed)
    lag, n_bins, n_neurons = behavior_lag_bins, n_time + n_forward, n_heldin + n_heldout
    states = lorenz_latents(rng, n_conditions, lag + n_bins)  # bin 0 is `lag` bins before the trial
    latents = states[:, lag:]  # (conditions, n_bins, 3)
    readout = rng.normal(0.0, readout_scale, size=(3, n_neurons))
    log_rates_hz = np.log(baseline_rate_hz) + latents @ readout
    spikes, truth, conversion_factor = draw_observations("poisson", rng, log_rates_hz, bin_ms / 1000.0,
                                                         trials_per_condition)
    behavior_readout = rng.normal(size=(3, behavior_dim))
    behavior_readout /= np.linalg.norm(behavior_readout, axis=0)
    clean_behavior = states[:, :n_time] @ behavior_readout  # behaviour at t reads the state at t - lag
    behavior = clean_behavior[:, None] + behavior_noise * rng.standard_normal(
        (n_conditions, trials_per_condition, n_time, behavior_dim))
    is_train = split_trials(rng, n_conditions, trials_per_condition, n_train)

    condition_of_trial = np.repeat(np.arange(n_conditions, dtype=np.int64), trials_per_condition)
    spikes = spikes.reshape(-1, n_bins, n_neurons).astype(np.float32)
    behavior = behavior.reshape(-1, n_time, behavior_dim).astype(np.float32)
    splits, extras = {}, {}
    for name, mask in (("train", is_train.ravel()), ("valid", ~is_train.ravel())):
        inds = np.flatnonzero(mask).astype(np.int64)
        conditions = condition_of_trial[inds]
        recon = spikes[inds]
        splits[name] = Split(encod_data=np.ascontiguousarray(recon[:, :n_time, :n_heldin]), recon_data=recon,
                             truth=truth[conditions].astype(np.float32), inds=inds)
        extras[f"{name}_behavior"] = behavior[inds]
        extras[f"{name}_conditions"] = conditions
        extras[f"{name}_latents"] = latents[conditions].astype(np.float32)
    return LFADSDataset(train=splits["train"], valid=splits["valid"], conversion_factor=conversion_factor,
                        source=f"nlb-lorenz(seed={seed})", extras=extras, bin_width_s=bin_ms / 1000.0)
