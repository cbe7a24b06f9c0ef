"""Several recording sessions of one Lorenz system, each seeing different neurons (for stitching, Methods 1.8).

One set of Lorenz conditions (:func:`~pyro_lfads.synthetic.lorenz.lorenz_latents`)
is shared by all sessions: condition c starts from the same point on the
attractor in every session. Session s records its own population of
``neurons[s]`` neurons, each with its own random readout of the z-scored
Lorenz state into a log rate around ``baseline_rate_hz`` (as
:func:`~pyro_lfads.synthetic.lorenz.make_lorenz_dataset`), and its own
Poisson spike trains, ``trials_per_condition`` per condition, split per
condition into train and valid.

Everything is drawn from ``numpy.random.default_rng(seed)``: the conditions
first, then each session's readout, spikes and split in turn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pyro_lfads.data import LFADSDataset
from pyro_lfads.errors import InputError

from pyro_lfads.synthetic.arguments import check_int
from pyro_lfads.synthetic.lorenz import assemble_dataset, check_lorenz_arguments, lorenz_latents, observe_lorenz, split_trials

DEFAULT_NEURONS = (20, 24, 28, 32, 36)


def make_multisession_datasets(
    seed: int = 0,
    neurons: Sequence[int] = DEFAULT_NEURONS,
    n_conditions: int = 20,
    trials_per_condition: int = 5,
    n_time: int = 100,
    bin_ms: float = 10.0,
    baseline_rate_hz: float = 5.0,
    readout_scale: float = 3**-0.5,
    train_fraction: float = 0.8,
) -> list[LFADSDataset]:
    """Simulate one LFADSDataset per session, all of the same Lorenz conditions.

    Args:
        seed: seed of the only random generator used (>= 0).
        neurons: neurons recorded in each session; its length is the number of sessions.
        n_conditions: Lorenz initial states, shared by the sessions.
        trials_per_condition: trials per condition in each session (train and valid).
        n_time: bins per trial, one Euler step each.
        bin_ms: bin width in milliseconds.
        baseline_rate_hz: firing rate in spikes/s where the readout is 0.
        readout_scale: std of each session's readout weights.
        train_fraction: fraction of each condition's trials put in train.

    Returns:
        A list, one LFADSDataset per session, each as ``make_lorenz_dataset``
        returns: (trials, n_time, neurons[s]) spike counts, truth rates in
        spikes/s, ``inds``; extras ``{split}_conditions`` (the shared condition
        index) and ``{split}_latents`` (trials, n_time, 3) the z-scored Lorenz
        state. ``source`` is ``multisession(seed=..., session=s)``.

    Raises:
        InputError: an argument is out of range, or a split would be empty.
    """
    if isinstance(neurons, (str, bytes)) or not isinstance(neurons, Sequence) or not neurons:
        raise InputError(f"neurons: must be a non-empty list of neuron counts, got {neurons!r}")
    for count in neurons:
        check_int("neurons", count, 1)
    n_train = check_lorenz_arguments(seed, n_conditions, trials_per_condition, n_time, bin_ms, baseline_rate_hz,
                                     readout_scale, train_fraction)
    rng = np.random.default_rng(seed)
    latents = lorenz_latents(rng, n_conditions, n_time)
    sessions = []
    for session, n_neurons in enumerate(neurons):
        data, truth, conversion_factor = observe_lorenz(rng, latents, n_neurons, readout_scale, baseline_rate_hz,
                                                        bin_ms, trials_per_condition)
        is_train = split_trials(rng, n_conditions, trials_per_condition, n_train)
        sessions.append(assemble_dataset(data, truth, latents, is_train, conversion_factor,
                                         source=f"multisession(seed={seed}, session={session})",
                                         bin_width_s=bin_ms / 1000.0))
    return sessions
