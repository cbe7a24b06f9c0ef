"""Two independent Lorenz systems, one driving behaviour and half the neurons, the other the rest of the neurons.

The ground truth of the behaviour model (:mod:`pyro_lfads.models.behavior`): for each condition, system A
(``{split}_latents``, z-scored, 3 dims) and system B (``{split}_irrelevant_latents``) start at independent
random points of the paper's Lorenz attractor (Methods 2.1). Neurons 0 .. N_A - 1 read A, the others read B,
each through random weights into log rates around a baseline (Poisson counts). Behaviour is a fixed random
linear map of A plus Gaussian noise drawn per trial and bin::

    log r_t = log(baseline) + [z^A_t R_A, z^B_t R_B]          rates, spikes/s
    y_t     = z^A_t W + noise_std * eps_t                      behaviour (``{split}_behavior``, D dims)

A model whose behaviourally relevant factors capture A and not B recovers the split the data were made with.
"""

from __future__ import annotations

import numpy as np

from pyro_lfads.data import LFADSDataset
from pyro_lfads.errors import InputError
from pyro_lfads.synthetic.arguments import check_float, check_int
from pyro_lfads.synthetic.lorenz import assemble_dataset, check_lorenz_arguments, lorenz_latents, split_trials
from pyro_lfads.synthetic.observations import draw_observations


def make_behavior_lorenz_dataset(seed: int = 0, n_conditions: int = 65, trials_per_condition: int = 20,
                                 n_time: int = 50, bin_ms: float = 20.0, n_neurons: int = 30,
                                 n_relevant_neurons: int | None = None, behavior_dims: int = 2,
                                 noise_std: float = 0.2, baseline_rate_hz: float = 5.0, readout_scale: float = 3**-0.5,
                                 train_fraction: float = 0.8) -> LFADSDataset:
    """Simulate the two systems (module docstring); returns an LFADSDataset of Poisson counts.

    Args:
        n_relevant_neurons: N_A, the neurons reading system A (default half of ``n_neurons``, rounded up).
        behavior_dims: D, the dimensions of the behaviour.
        noise_std: the standard deviation of the behaviour's noise (the z-scored state has unit variance).
        Other arguments as :func:`~pyro_lfads.synthetic.lorenz.make_lorenz_dataset`'s.

    Returns:
        As ``make_lorenz_dataset``, with extras per split ``{split}_behavior`` (trials, n_time, D) float32,
        ``{split}_latents`` (system A) and ``{split}_irrelevant_latents`` (system B), (trials, n_time, 3).
    """
    n_train = check_lorenz_arguments(seed, n_conditions, trials_per_condition, n_time, bin_ms, baseline_rate_hz,
                                     readout_scale, train_fraction)
    check_int("n_neurons", n_neurons, 2)
    n_relevant = (n_neurons + 1) // 2 if n_relevant_neurons is None else n_relevant_neurons
    check_int("n_relevant_neurons", n_relevant, 1)
    if n_relevant >= n_neurons:
        raise InputError(f"n_relevant_neurons: must be below n_neurons ({n_neurons}), so that some neurons read "
                         f"the second system, got {n_relevant}")
    check_int("behavior_dims", behavior_dims, 1)
    check_float("noise_std", noise_std, allow_zero=True)
    rng = np.random.default_rng(seed)
    relevant, irrelevant = lorenz_latents(rng, n_conditions, n_time), lorenz_latents(rng, n_conditions, n_time)
    weights_a = rng.normal(0.0, readout_scale, size=(3, n_relevant))
    weights_b = rng.normal(0.0, readout_scale, size=(3, n_neurons - n_relevant))
    log_rates_hz = np.log(baseline_rate_hz) + np.concatenate([relevant @ weights_a, irrelevant @ weights_b], axis=-1)
    data, truth, conversion_factor = draw_observations("poisson", rng, log_rates_hz, bin_ms / 1000.0,
                                                       trials_per_condition)
    behavior_map = rng.normal(size=(3, behavior_dims)) / np.sqrt(3.0)
    noise = noise_std * rng.normal(size=(n_conditions, trials_per_condition, n_time, behavior_dims))
    behavior = (relevant @ behavior_map)[:, None] + noise
    is_train = split_trials(rng, n_conditions, trials_per_condition, n_train)
    return assemble_dataset(data, truth, relevant, is_train, conversion_factor,
                            source=f"behavior-lorenz(seed={seed})", bin_width_s=bin_ms / 1000.0,
                            condition_extras={"irrelevant_latents": irrelevant.astype(np.float32)},
                            trial_extras={"behavior": behavior.astype(np.float32)})
