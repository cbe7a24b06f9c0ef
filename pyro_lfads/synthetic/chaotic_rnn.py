"""The paper's chaotic data RNN (Methods 2.2), alone and kicked by pulse inputs (Methods 2.3).

The data RNN is the continuous-time vanilla RNN
``tau dy/dt = -y + gamma W tanh(y) + B q(t)`` of N units, W_ij ~ Normal(0, 1/N),
integrated with the Euler method, one step of dt = the bin width per bin:
``y_t = y_{t-1} + dt/tau (-y_{t-1} + gamma W tanh(y_{t-1}) + B q_t)``, where
``y_{-1}`` is the condition's initial state (~ Normal(0, 1) per unit). The
input of bin t thus moves the state of bin t, as LFADS's inferred input
drives its generator in the same bin. Each unit is one neuron firing at
``max_rate_hz (tanh(y) + 1) / 2`` spikes/s (0 to 30 at the defaults),
observed as Poisson counts per bin; each condition's trials are split 80/20
into train and valid.

Pulses: B_i ~ Normal(0, 1) and one pulse per trial, at a uniformly random bin
whose start time lies in ``pulse_window_ms``. The paper's
``q(t) = 50 delta(t - t_pulse)`` is discretised as ``q_t = pulse_magnitude``
in the pulse's bin and 0 elsewhere (as in the original LFADS synthetic-data
code), so the pulse moves the state once, by ``dt/tau * 50 B`` (20 B at the
defaults); a continuous delta of area 50 would move it by ``50 B / tau`` =
2000 B with tau in seconds.

Everything is drawn from ``numpy.random.default_rng(seed)``. The network
(W) and the initial states are drawn first, so the two generators, given the
same seed, ``n_conditions`` and ``n_units``, simulate the same conditions: a
pulse trial's rates equal its condition's un-pulsed rates before its pulse
bin.
"""

from __future__ import annotations

import numpy as np
import torch

from pyro_lfads.data import LFADSDataset
from pyro_lfads.errors import InputError

from pyro_lfads.synthetic.arguments import check_float, check_int, train_count
from pyro_lfads.synthetic.lorenz import assemble_dataset, split_trials


def rnn_states(y_start: torch.Tensor, recurrent: torch.Tensor, dt_over_tau: float, n_time: int,
               inputs: torch.Tensor | None = None, input_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Euler states (..., n_time, N) of ``tau dy/dt = -y + recurrent tanh(y) + input_weights q``.

    Args:
        y_start: (..., N) the state before the first bin.
        recurrent: (N, N) the recurrent weights (gamma W).
        dt_over_tau: the Euler step, bin width / tau.
        n_time: bins to simulate.
        inputs: (..., n_time, U) the input q of each bin, or None for no input.
        input_weights: (N, U) B, given with ``inputs``.
    """
    y = y_start
    states = []
    for t in range(n_time):
        drive = torch.tanh(y) @ recurrent.T
        if inputs is not None:
            drive = drive + inputs[..., t, :] @ input_weights.T
        y = y + dt_over_tau * (drive - y)
        states.append(y)
    return torch.stack(states, dim=-2)


def check_euler_step(bin_ms: float, tau_ms: float) -> None:
    """Refuse an Euler step (the bin width) longer than tau, where the simulation can blow up."""
    if bin_ms > tau_ms:
        raise InputError(f"bin_ms: the Euler step ({bin_ms} ms) must not exceed tau_ms ({tau_ms} ms)")


def rates_hz(states: np.ndarray, max_rate_hz: float) -> np.ndarray:
    """Firing rates in spikes/s, ``max_rate_hz (tanh(y) + 1) / 2``, of states y of any shape."""
    return max_rate_hz * (np.tanh(states) + 1.0) / 2.0


def make_chaotic_rnn_dataset(
    seed: int = 0,
    gamma: float = 1.5,
    n_conditions: int = 400,
    trials_per_condition: int = 10,
    n_units: int = 50,
    n_time: int = 100,
    bin_ms: float = 10.0,
    tau_ms: float = 25.0,
    max_rate_hz: float = 30.0,
    train_fraction: float = 0.8,
) -> LFADSDataset:
    """Simulate the chaotic RNN benchmark without input (Methods 2.2).

    Args:
        seed: seed of the only random generator used (>= 0).
        gamma: gain of the recurrent weights; 1.5 and 2.5 in the paper.
        n_conditions: initial states, one per condition.
        trials_per_condition: Poisson spike trains drawn per condition.
        n_units: RNN units, one neuron each.
        n_time: bins per trial, one Euler step each.
        bin_ms: bin width = Euler step, ms.
        tau_ms: the units' time constant, ms.
        max_rate_hz: firing rate in spikes/s where tanh(y) = 1.
        train_fraction: fraction of each condition's trials put in train.

    Returns:
        An LFADSDataset whose splits hold ``encod_data`` = ``recon_data``:
        (trials, n_time, n_units) float32 spike counts; ``truth``: the same
        shape, float32 rates in spikes/s, shared by a condition's trials;
        ``inds``: (trials,) int64 ``condition * trials_per_condition + repeat``.
        ``conversion_factor`` = 1000 / bin_ms. ``extras`` per split:
        ``{split}_conditions`` (trials,) int64 and ``{split}_latents``
        (trials, n_time, n_units) float32, the RNN state y.

    Raises:
        InputError: an argument is out of range, or a split would be empty.
    """
    n_train = _check_common(seed, gamma, n_conditions, trials_per_condition, n_units, n_time, bin_ms, tau_ms,
                            max_rate_hz, train_fraction)
    rng = np.random.default_rng(seed)
    weights, y_start = _network(rng, n_units, n_conditions)
    states = rnn_states(torch.from_numpy(y_start), torch.from_numpy(gamma * weights), bin_ms / tau_ms,
                        n_time).numpy()  # (conditions, time, units)
    rates = rates_hz(states, max_rate_hz)
    expected = np.broadcast_to((rates * bin_ms / 1000.0)[:, None],
                               (n_conditions, trials_per_condition, n_time, n_units))
    spikes = rng.poisson(expected)
    is_train = split_trials(rng, n_conditions, trials_per_condition, n_train)
    return assemble_dataset(spikes, rates, states, is_train, 1000.0 / bin_ms,
                            source=f"chaotic-rnn(seed={seed}, gamma={gamma})", bin_width_s=bin_ms / 1000.0)


def make_pulse_dataset(
    seed: int = 0,
    gamma: float = 1.5,
    n_conditions: int = 400,
    trials_per_condition: int = 10,
    n_units: int = 50,
    n_time: int = 100,
    bin_ms: float = 10.0,
    tau_ms: float = 25.0,
    max_rate_hz: float = 30.0,
    train_fraction: float = 0.8,
    pulse_magnitude: float = 50.0,
    pulse_window_ms: tuple[float, float] = (250.0, 750.0),
    pulse_fraction: float = 1.0,
) -> LFADSDataset:
    """Simulate the chaotic RNN with one input pulse per trial (Methods 2.3).

    Every trial starts from its condition's initial state and gets its own
    pulse, so its own rates. Arguments as in :func:`make_chaotic_rnn_dataset`, and:

    Args:
        pulse_magnitude: q in the pulse's bin (> 0).
        pulse_window_ms: (start, end), ms: the pulse's bin starts at a time in
            [start, end], uniformly over the bins that do.
        pulse_fraction: the chance that a trial gets its pulse (0 to 1; 1, the default, pulses every trial
            and draws nothing more, so its data sets are those of earlier versions). Trials without a pulse
            are the paper's controls for the inputs embedding (Fig. 6).

    Returns:
        As :func:`make_chaotic_rnn_dataset`, with ``truth`` and ``{split}_latents``
        per trial, and extras per split ``{split}_pulse_times_ms`` (trials,)
        float64, the start of the pulse's bin in ms (NaN without a pulse), ``{split}_pulsed`` (trials,)
        int64, 1 for a trial with a pulse and 0 without, and ``{split}_inputs``
        (trials, n_time, 1) float32, the input q.

    Raises:
        InputError: an argument is out of range, no bin starts in the window,
            or a split would be empty.
    """
    n_train = _check_common(seed, gamma, n_conditions, trials_per_condition, n_units, n_time, bin_ms, tau_ms,
                            max_rate_hz, train_fraction)
    check_float("pulse_magnitude", pulse_magnitude)
    pulse_bins = _window_bins(pulse_window_ms, n_time, bin_ms)
    if not (isinstance(pulse_fraction, (int, float)) and 0.0 <= pulse_fraction <= 1.0):
        raise InputError(f"pulse_fraction: must be a number from 0 to 1, got {pulse_fraction!r}")
    rng = np.random.default_rng(seed)
    weights, y_start = _network(rng, n_units, n_conditions)
    input_weights = rng.normal(size=(n_units, 1))
    shape = (n_conditions, trials_per_condition)
    pulse_bin = rng.choice(pulse_bins, size=shape)
    pulsed = np.ones(shape, bool) if pulse_fraction == 1.0 else rng.random(shape) < pulse_fraction
    inputs = np.zeros((*shape, n_time, 1))
    condition, repeat = np.indices(shape)
    inputs[condition[pulsed], repeat[pulsed], pulse_bin[pulsed], 0] = pulse_magnitude
    y_trials = torch.from_numpy(y_start)[:, None].expand(*shape, n_units)
    states = rnn_states(y_trials, torch.from_numpy(gamma * weights), bin_ms / tau_ms, n_time,
                        torch.from_numpy(inputs), torch.from_numpy(input_weights)).numpy()
    rates = rates_hz(states, max_rate_hz)  # (conditions, repeats, time, units)
    spikes = rng.poisson(rates * bin_ms / 1000.0)
    is_train = split_trials(rng, n_conditions, trials_per_condition, n_train)
    return assemble_dataset(spikes, rates, states, is_train, 1000.0 / bin_ms,
                            source=f"pulses(seed={seed}, gamma={gamma})", bin_width_s=bin_ms / 1000.0,
                            trial_extras={"pulse_times_ms": np.where(pulsed, pulse_bin * float(bin_ms), np.nan),
                                          "pulsed": pulsed.astype(np.int64), "inputs": inputs.astype(np.float32)})


def _network(rng: np.random.Generator, n_units: int, n_conditions: int) -> tuple[np.ndarray, np.ndarray]:
    """W (n_units, n_units) with entries ~ Normal(0, 1/N), and initial states (n_conditions, n_units) ~ Normal(0, 1)."""
    weights = rng.normal(0.0, n_units**-0.5, size=(n_units, n_units))
    return weights, rng.normal(size=(n_conditions, n_units))


def _window_bins(window_ms: object, n_time: int, bin_ms: float) -> np.ndarray:
    """Indices of the bins whose start time lies in the window [start, end] ms."""
    try:
        start, end = (float(x) for x in window_ms)
    except (TypeError, ValueError):
        raise InputError(f"pulse_window_ms: must be (start, end) in ms, got {window_ms!r}") from None
    starts = np.arange(n_time) * float(bin_ms)
    bins = np.flatnonzero((starts >= start) & (starts <= end))
    if bins.size == 0:
        raise InputError(f"pulse_window_ms: no bin of the {n_time} x {bin_ms} ms trial starts in "
                         f"[{start}, {end}] ms")
    return bins


def _check_common(seed: object, gamma: object, n_conditions: object, trials_per_condition: object,
                  n_units: object, n_time: object, bin_ms: object, tau_ms: object, max_rate_hz: object,
                  train_fraction: object) -> int:
    """Check the arguments both generators take; return the train trials per condition."""
    check_int("seed", seed, 0)
    check_int("n_conditions", n_conditions, 1)
    check_int("trials_per_condition", trials_per_condition, 2)
    check_int("n_units", n_units, 1)
    check_int("n_time", n_time, 1)
    for name, value in (("gamma", gamma), ("bin_ms", bin_ms), ("tau_ms", tau_ms), ("max_rate_hz", max_rate_hz)):
        check_float(name, value)
    check_euler_step(bin_ms, tau_ms)
    return train_count(train_fraction, trials_per_condition)
