"""The Lorenz benchmark of Pandarinath et al. 2018 (Methods 2.1).

The Lorenz system (sigma=10, rho=28, beta=8/3) is integrated with the Euler
method, dt=0.006 Lorenz time units, taking ONE Euler step per 10 ms time bin.
The vLGP version of this benchmark took dt=0.0015 per bin, so these dynamics
run 4x faster, as the paper states. Each of the conditions starts at a random
point on the attractor and runs for ``n_time`` bins (1 s at the defaults).
With ``steps_per_bin`` k > 1 each bin spans k Euler steps: the system is simulated
at k times the resolution, bins of ``bin_ms / k``, and every k of those are merged
(counts summed, rates and latents averaged), so 50 bins of 20 ms with k = 2 are the
same spike trains as 100 bins of 10 ms, counted in pairs.
The three Lorenz variables are z-scored, read out by random weights into log
firing rates around a baseline, exponentiated, and sampled as Poisson spike
counts, several trials per condition; each condition's trials are split
80/20 into train and valid.

Everything is drawn from ``numpy.random.default_rng(seed)``, so a seed
determines the data set exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pyro_lfads.data import LFADSDataset, Split
from pyro_lfads.errors import InputError

from pyro_lfads.synthetic.arguments import check_float, check_int, train_count
from pyro_lfads.synthetic.observations import OBSERVATIONS, draw_observations

LORENZ_SIGMA = 10.0
LORENZ_RHO = 28.0
LORENZ_BETA = 8.0 / 3.0
DT_PER_BIN = 0.006

_BURN_IN_STEPS = 1_000
_MIN_ATTRACTOR_STEPS = 10_000


def _lorenz_step(state: np.ndarray) -> np.ndarray:
    """One Euler step of length DT_PER_BIN for states of shape (..., 3)."""
    x, y, z = state[..., 0], state[..., 1], state[..., 2]
    derivative = np.stack(
        (LORENZ_SIGMA * (y - x), x * (LORENZ_RHO - z) - y, x * y - LORENZ_BETA * z), axis=-1
    )
    return state + DT_PER_BIN * derivative


def _trajectory(start: np.ndarray, n_steps: int) -> np.ndarray:
    """States (n_steps, *start.shape): ``start`` followed by n_steps - 1 Euler steps."""
    states = np.empty((n_steps, *start.shape))
    states[0] = start
    for t in range(1, n_steps):
        states[t] = _lorenz_step(states[t - 1])
    return states


def _attractor_points(rng: np.random.Generator, n_points: int) -> np.ndarray:
    """(n_points, 3) distinct states on the attractor, from one long burn-in run."""
    n_steps = max(_MIN_ATTRACTOR_STEPS, 10 * n_points)
    run = _trajectory(rng.normal(size=3), _BURN_IN_STEPS + n_steps)[_BURN_IN_STEPS:]
    return run[rng.choice(n_steps, size=n_points, replace=False)]


def make_lorenz_dataset(
    seed: int = 0,
    n_conditions: int = 65,
    trials_per_condition: int = 20,
    n_neurons: int = 30,
    n_time: int = 100,
    bin_ms: float = 10.0,
    baseline_rate_hz: float = 5.0,
    readout_scale: float = 3**-0.5,
    train_fraction: float = 0.8,
    likelihood: str = "poisson",
    steps_per_bin: int = 1,
) -> LFADSDataset:
    """Simulate the Lorenz benchmark.

    Args:
        seed: seed of the only random generator used (>= 0).
        n_conditions: number of initial states on the attractor.
        trials_per_condition: Poisson spike trains drawn per condition.
        n_neurons: number of simulated neurons.
        n_time: bins per trial, ``steps_per_bin`` Euler steps each.
        bin_ms: bin width in milliseconds (sets the spike counts, not the dynamics).
        baseline_rate_hz: firing rate in spikes/s where the readout is 0.
        readout_scale: std of the readout weights; the default gives each
            neuron's log rate a std of about 1.
        train_fraction: fraction of each condition's trials put in train.
        likelihood: how the rates are observed (see ``observations.py``):
            poisson (the paper's), negbinom (over-dispersed gamma-Poisson
            counts), gaussian, gamma or zig (zero-inflated Gamma).
        steps_per_bin: Euler steps (of 10 ms at the defaults' pace) per bin; the spikes are drawn at that
            finer resolution and summed into each bin (poisson only: a sum of Poisson counts is Poisson).

    Returns:
        An LFADSDataset whose splits hold, with ``trials`` the split's trial count:
        ``encod_data`` = ``recon_data``: (trials, n_time, n_neurons) float32
        observations (spike counts for poisson and negbinom);
        ``truth``: (trials, n_time, n_neurons) float32 true signal (rates in
        spikes/s for counts; see ``observations.py`` for the others);
        ``inds``: (trials,) int64 original trial index,
        ``condition * trials_per_condition + repeat``.
        ``truth / conversion_factor`` is the expected observation per bin
        (``conversion_factor`` = ``1000 / bin_ms`` for counts, 1 otherwise). ``extras`` holds, per split,
        ``{split}_conditions``: (trials,) int64 condition index and
        ``{split}_latents``: (trials, n_time, 3) float32 z-scored Lorenz state.

    Raises:
        InputError: an argument is out of range, or a split would be empty.
    """
    check_int("n_neurons", n_neurons, 1)
    n_train = check_lorenz_arguments(seed, n_conditions, trials_per_condition, n_time, bin_ms, baseline_rate_hz,
                                     readout_scale, train_fraction)
    _check_likelihood(likelihood)
    check_int("steps_per_bin", steps_per_bin, 1)
    if steps_per_bin > 1 and likelihood != "poisson":
        raise InputError(f"steps_per_bin: merging bins needs poisson counts, not {likelihood!r}")
    rng = np.random.default_rng(seed)
    latents = lorenz_latents(rng, n_conditions, n_time * steps_per_bin)
    data, truth, conversion_factor = observe_lorenz(rng, latents, n_neurons, readout_scale, baseline_rate_hz,
                                                    bin_ms / steps_per_bin, trials_per_condition, likelihood)
    if steps_per_bin > 1:
        data, truth, latents = (merge_bins(x, steps_per_bin, axis, total) for x, axis, total in
                                ((data, 2, True), (truth, 1, False), (latents, 1, False)))
        conversion_factor /= steps_per_bin
    is_train = split_trials(rng, n_conditions, trials_per_condition, n_train)
    return assemble_dataset(data, truth, latents, is_train, conversion_factor,
                            source=f"lorenz(seed={seed}, likelihood={likelihood})", bin_width_s=bin_ms / 1000.0)


def check_lorenz_arguments(seed: object, n_conditions: object, trials_per_condition: object, n_time: object,
                           bin_ms: object, baseline_rate_hz: object, readout_scale: object,
                           train_fraction: object) -> int:
    """Refuse impossible arguments of the Lorenz generators (InputError); returns train trials per condition."""
    check_int("seed", seed, 0)
    check_int("n_conditions", n_conditions, 1)
    check_int("trials_per_condition", trials_per_condition, 2)
    check_int("n_time", n_time, 1)
    if n_conditions * n_time < 2:
        raise InputError("n_conditions, n_time: need at least 2 states in all to z-score the latents")
    check_float("bin_ms", bin_ms)
    check_float("baseline_rate_hz", baseline_rate_hz)
    check_float("readout_scale", readout_scale, allow_zero=True)
    return train_count(train_fraction, trials_per_condition)


def observe_lorenz(rng: np.random.Generator, latents: np.ndarray, n_neurons: int, readout_scale: float,
                   baseline_rate_hz: float, bin_ms: float, repeats: int,
                   likelihood: str = "poisson") -> tuple[np.ndarray, np.ndarray, float]:
    """Neurons with random readouts of ``latents`` (conditions, T, 3) into log rates around a baseline,
    observed ``repeats`` times per condition: (data (conditions, repeats, T, N), truth (conditions, T, N),
    conversion_factor), as :func:`~pyro_lfads.synthetic.observations.draw_observations` gives them."""
    readout = rng.normal(0.0, readout_scale, size=(3, n_neurons))
    log_rates_hz = np.log(baseline_rate_hz) + latents @ readout  # (conditions, time, neurons)
    return draw_observations(likelihood, rng, log_rates_hz, bin_ms / 1000.0, repeats)


def lorenz_latents(rng: np.random.Generator, n_conditions: int, n_time: int) -> np.ndarray:
    """(conditions, n_time, 3) Lorenz states from random points on the attractor, z-scored per variable."""
    starts = _attractor_points(rng, n_conditions)
    latents = _trajectory(starts, n_time).transpose(1, 0, 2)
    return (latents - latents.mean(axis=(0, 1))) / latents.std(axis=(0, 1))


def merge_bins(x: np.ndarray, k: int, axis: int, total: bool) -> np.ndarray:
    """Every ``k`` consecutive bins along ``axis`` merged into one: summed (``total``, counts) or averaged."""
    shape = (*x.shape[:axis], x.shape[axis] // k, k, *x.shape[axis + 1:])
    grouped = x.reshape(shape)
    return grouped.sum(axis + 1) if total else grouped.mean(axis + 1)


def split_trials(rng: np.random.Generator, n_conditions: int, trials_per_condition: int, n_train: int) -> np.ndarray:
    """(conditions, trials_per_condition) bool: which repeats of each condition go to train."""
    is_train = np.zeros((n_conditions, trials_per_condition), dtype=bool)
    for condition in range(n_conditions):
        is_train[condition, rng.permutation(trials_per_condition)[:n_train]] = True
    return is_train


def assemble_dataset(data: np.ndarray, truth: np.ndarray, latents: np.ndarray, is_train: np.ndarray,
                     conversion_factor: float, source: str, *, bin_width_s: float,
                     condition_extras: Mapping[str, np.ndarray] | None = None,
                     trial_extras: Mapping[str, np.ndarray] | None = None) -> LFADSDataset:
    """Split simulations, ``repeats`` trials per condition, into an LFADSDataset.

    Args:
        data: (conditions, repeats, time, neurons) observations.
        truth: (conditions, time, neurons) the true signal of each condition,
            or (conditions, repeats, time, neurons) that of each trial.
        latents: (conditions, time, d) the true latent state of each condition,
            or (conditions, repeats, time, d) that of each trial; stored as
            float32 extras ``{split}_latents``.
        is_train: (conditions, repeats) bool, from :func:`split_trials`.
        bin_width_s: the width of one bin of ``data``, seconds (kept as the data set's ``bin_width_s``).
        condition_extras: name -> (conditions, ...) array, one row per condition;
            stored with its dtype as extras ``{split}_{name}``, a row per trial.
        trial_extras: name -> (conditions, repeats, ...) array, one entry per trial; stored likewise.
    """
    n_conditions, repeats, n_time, n_neurons = data.shape

    def rows(array: np.ndarray, inds: np.ndarray, per_trial: bool) -> np.ndarray:
        if per_trial:
            return array.reshape(n_conditions * repeats, *array.shape[2:])[inds]
        return array[inds // repeats]

    data = data.reshape(-1, n_time, n_neurons).astype(np.float32)
    splits = {}
    extras = {}
    for name, mask in (("train", is_train.ravel()), ("valid", ~is_train.ravel())):
        inds = np.flatnonzero(mask).astype(np.int64)
        splits[name] = Split(encod_data=data[inds], recon_data=data[inds],
                             truth=rows(truth, inds, truth.ndim == 4).astype(np.float32), inds=inds)
        extras[f"{name}_conditions"] = inds // repeats
        extras[f"{name}_latents"] = rows(latents, inds, latents.ndim == 4).astype(np.float32)
        for key, array in (condition_extras or {}).items():
            extras[f"{name}_{key}"] = rows(array, inds, False)
        for key, array in (trial_extras or {}).items():
            extras[f"{name}_{key}"] = rows(array, inds, True)
    return LFADSDataset(
        train=splits["train"],
        valid=splits["valid"],
        conversion_factor=conversion_factor,
        source=source,
        extras=extras,
        bin_width_s=bin_width_s,
    )


def _check_likelihood(likelihood: object) -> None:
    if likelihood not in OBSERVATIONS:
        raise InputError(f"likelihood: {likelihood!r} is not one of {', '.join(OBSERVATIONS)}")
