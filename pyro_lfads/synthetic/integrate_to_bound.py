"""The paper's integrate-to-bound data RNN (Methods 2.4).

A vanilla RNN of the data RNN's form (:func:`~pyro_lfads.synthetic.chaotic_rnn.rnn_states`:
``tau dy/dt = -y + W tanh(y) + B u``, N = 50 units, tau = 25 ms, one Euler
step per 10 ms bin, y = 0 before the first bin) with a linear readout
``z_t = w . tanh(y_t)`` is trained to integrate white noise
``u_t ~ Normal(0, input_variance)`` to a bound: the target is the running sum
of u, clipped to [-1, 1] and held at the bound from the first bin that
reaches it (the decision).

Training recipe (:func:`train_integrator`), all draws from
``torch.Generator().manual_seed(seed)``: initial W_ij ~ Normal(0, 0.64/N),
B_i ~ Normal(0, 1), w_i ~ Normal(0, 1/N); Adam, learning rate 0.01 decayed to
0 on a cosine, gradient norm clipped at 1; loss the mean squared error of z
plus ``l2 * sum(W**2)``; 1000 steps of 128 fresh 20-bin trials. The short
trials make the decisions frequent; the bound, once reached, is held by the
dynamics, so the net holds it over 1 s trials too (its R2 is measured on
those).

The data set (:func:`make_integrate_to_bound_dataset`) drives the trained
net with one white-noise input per condition; each unit is one neuron firing
at ``max_rate_hz (tanh(y) + 1) / 2`` spikes/s, observed as Poisson counts
(draws from ``numpy.random.default_rng(seed)``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from sklearn.metrics import r2_score

from pyro_lfads.data import LFADSDataset

from .arguments import check_float, check_int, train_count
from .chaotic_rnn import check_euler_step, rates_hz, rnn_states
from .lorenz import assemble_dataset, split_trials

_EVAL_TRIALS = 1000
_MAX_GRAD_NORM = 1.0


@dataclass(frozen=True)
class Integrator:
    """A trained integrate-to-bound RNN.

    Attributes:
        recurrent: (N, N) float64 W.
        input_weights: (N, 1) float64 B.
        readout: (N,) float64 w.
        dt_over_tau: the Euler step, bin width / tau.
        r2: R2 of the readout against the bounded integral, pooled over all
            bins of 1000 fresh trials.
    """

    recurrent: np.ndarray
    input_weights: np.ndarray
    readout: np.ndarray
    dt_over_tau: float
    r2: float

    def states(self, inputs: np.ndarray) -> np.ndarray:
        """(trials, T, N) float64 states y for inputs u (trials, T)."""
        return _states(torch.from_numpy(self.recurrent), torch.from_numpy(self.input_weights), self.dt_over_tau,
                       torch.from_numpy(np.asarray(inputs, dtype=np.float64))).numpy()

    def output(self, inputs: np.ndarray) -> np.ndarray:
        """(trials, T) readout z for inputs u (trials, T)."""
        return np.tanh(self.states(inputs)) @ self.readout


def bounded_integral(inputs: np.ndarray) -> np.ndarray:
    """The target (..., T): running sum over the last axis, clipped to [-1, 1] and held once it reaches a bound."""
    total = np.cumsum(inputs, axis=-1)
    reached = np.logical_or.accumulate(np.abs(total) >= 1.0, axis=-1)
    first = reached.argmax(axis=-1)[..., None]
    return np.where(reached, np.sign(np.take_along_axis(total, first, axis=-1)), total)


def train_integrator(
    seed: int = 0,
    n_units: int = 50,
    bin_ms: float = 10.0,
    tau_ms: float = 25.0,
    input_variance: float = 0.0625,
    steps: int = 1000,
    batch_size: int = 128,
    train_bins: int = 20,
    learning_rate: float = 0.01,
    l2: float = 1e-4,
    eval_bins: int = 100,
) -> Integrator:
    """Train the integrate-to-bound RNN (recipe in the module docstring); about 10 s on one core.

    Args:
        seed: seed of the torch generator of all draws (>= 0).
        n_units: RNN units N.
        bin_ms, tau_ms: the Euler step and the units' time constant, ms.
        input_variance: variance of the white-noise input per bin.
        steps, batch_size, train_bins: Adam steps, each on this many fresh trials of this many bins.
        learning_rate: Adam's initial learning rate.
        l2: weight of the L2 penalty on W.
        eval_bins: bins of the fresh trials that ``r2`` is measured on.

    Raises:
        InputError: an argument is out of range.
    """
    for name, value, minimum in (("seed", seed, 0), ("n_units", n_units, 1), ("steps", steps, 1),
                                 ("batch_size", batch_size, 1), ("train_bins", train_bins, 1),
                                 ("eval_bins", eval_bins, 1)):
        check_int(name, value, minimum)
    for name, value in (("bin_ms", bin_ms), ("tau_ms", tau_ms), ("input_variance", input_variance),
                        ("learning_rate", learning_rate)):
        check_float(name, value)
    check_float("l2", l2, allow_zero=True)
    check_euler_step(bin_ms, tau_ms)
    generator = torch.Generator().manual_seed(seed)

    def normal(*shape: int, std: float) -> torch.Tensor:
        return std * torch.randn(*shape, generator=generator, dtype=torch.float32)

    recurrent = normal(n_units, n_units, std=(0.64 / n_units) ** 0.5).requires_grad_()
    input_weights = normal(n_units, 1, std=1.0).requires_grad_()
    readout = normal(n_units, std=n_units**-0.5).requires_grad_()
    params = [recurrent, input_weights, readout]
    optimizer = torch.optim.Adam(params, lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    dt_over_tau = bin_ms / tau_ms
    input_std = input_variance**0.5
    for _ in range(steps):
        inputs = normal(batch_size, train_bins, std=input_std)
        target = torch.from_numpy(bounded_integral(inputs.numpy()))
        output = torch.tanh(_states(recurrent, input_weights, dt_over_tau, inputs)) @ readout
        loss = torch.nn.functional.mse_loss(output, target) + l2 * recurrent.square().sum()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, _MAX_GRAD_NORM)
        optimizer.step()
        schedule.step()
    net = Integrator(*(p.detach().double().numpy() for p in params), dt_over_tau=dt_over_tau, r2=float("nan"))
    inputs = normal(_EVAL_TRIALS, eval_bins, std=input_std).double().numpy()
    return replace(net, r2=float(r2_score(bounded_integral(inputs).ravel(), net.output(inputs).ravel())))


def make_integrate_to_bound_dataset(
    seed: int = 0,
    n_conditions: int = 800,
    trials_per_condition: int = 5,
    n_time: int = 100,
    bin_ms: float = 10.0,
    tau_ms: float = 25.0,
    max_rate_hz: float = 30.0,
    input_variance: float = 0.0625,
    train_fraction: float = 0.8,
    train_steps: int = 1000,
) -> LFADSDataset:
    """Train the integrate-to-bound RNN from ``seed`` and simulate spikes of its units.

    Args:
        seed: seed of the training (:func:`train_integrator`) and of the data (>= 0).
        n_conditions: white-noise inputs, one per condition.
        trials_per_condition: Poisson spike trains drawn per condition.
        n_time: bins per trial, one Euler step each.
        bin_ms, tau_ms: the Euler step and the units' time constant, ms.
        max_rate_hz: firing rate in spikes/s where tanh(y) = 1.
        input_variance: variance of the white-noise input per bin.
        train_fraction: fraction of each condition's trials put in train.
        train_steps: Adam steps of the training (fewer train a worse integrator faster).

    Returns:
        An LFADSDataset whose splits hold ``encod_data`` = ``recon_data``:
        (trials, n_time, 50) float32 spike counts; ``truth``: the same shape,
        float32 rates in spikes/s, shared by a condition's trials; ``inds``:
        (trials,) int64 ``condition * trials_per_condition + repeat``.
        ``conversion_factor`` = 1000 / bin_ms; ``source`` quotes the
        integrator's R2. ``extras`` per split: ``{split}_conditions`` (trials,)
        int64, ``{split}_inputs`` (trials, n_time, 1) float32 the input u,
        ``{split}_target`` (trials, n_time, 1) float32 its bounded integral,
        ``{split}_latents`` (trials, n_time, 50) float32 the RNN state y.

    Raises:
        InputError: an argument is out of range, or a split would be empty.
    """
    check_int("n_conditions", n_conditions, 1)
    check_int("trials_per_condition", trials_per_condition, 2)
    check_int("n_time", n_time, 1)
    check_float("max_rate_hz", max_rate_hz)
    n_train = train_count(train_fraction, trials_per_condition)
    net = train_integrator(seed, bin_ms=bin_ms, tau_ms=tau_ms, input_variance=input_variance, steps=train_steps,
                           eval_bins=n_time)
    rng = np.random.default_rng(seed)
    inputs = rng.normal(0.0, input_variance**0.5, size=(n_conditions, n_time))
    states = net.states(inputs)  # (conditions, time, units)
    rates = rates_hz(states, max_rate_hz)
    expected = np.broadcast_to((rates * bin_ms / 1000.0)[:, None],
                               (n_conditions, trials_per_condition, *rates.shape[1:]))
    spikes = rng.poisson(expected)
    is_train = split_trials(rng, n_conditions, trials_per_condition, n_train)
    return assemble_dataset(spikes, rates, states, is_train, 1000.0 / bin_ms,
                            source=f"integrate-to-bound(seed={seed}, integrator R2={net.r2:.3f})",
                            condition_extras={"inputs": inputs[..., None].astype(np.float32),
                                              "target": bounded_integral(inputs)[..., None].astype(np.float32)})


def _states(recurrent: torch.Tensor, input_weights: torch.Tensor, dt_over_tau: float,
            inputs: torch.Tensor) -> torch.Tensor:
    """(trials, T, N) states y from y = 0 for inputs (trials, T)."""
    y_start = torch.zeros(inputs.shape[0], recurrent.shape[0], dtype=recurrent.dtype)
    return rnn_states(y_start, recurrent, dt_over_tau, inputs.shape[1], inputs[..., None], input_weights)
