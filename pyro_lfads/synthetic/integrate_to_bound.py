"""The paper's integrate-to-bound data RNN (Methods 2.4), built as the original LFADS code builds it.

A discrete-time vanilla RNN of N = 50 units, ``h_t = tanh(W h_{t-1} + b + B u_t)``
from ``h_{-1} = 0``, with a linear readout ``z_t = w . h_t + c``, is trained to
report the running sum of a white-noise input ``u_t ~ Normal(0, input_variance)``
clipped to the bounds [-1, 1] (one step per 10 ms bin).

Training recipe (:func:`train_integrator`), all draws from
``torch.Generator().manual_seed(seed)``: initial W_ij ~ Normal(0, 0.64/N),
w_i ~ Normal(0, 0.64/N), b = B = c = 0 (as the original's
``IntegrationToBoundModel``); Adam, learning rate 0.01 decayed to 0 on a
cosine, gradient norm clipped at 1; loss the mean squared error of z plus
``l2 * sum(W**2)``; 2000 steps of 128 fresh 50-bin trials.

The data set (:func:`make_integrate_to_bound_dataset`) follows the original's
``generate_itb_data.py``: the trained net is driven by one white-noise input
per condition; each of ``n_neurons`` neurons reads a random projection of the
state, ``P h_t`` with P_ij ~ Normal(0, 1/N), rescaled within each trial to
span [0, 1] (its ``normalize_rates``) and multiplied by ``max_rate_hz``; the
counts are Poisson (draws from ``numpy.random.default_rng(seed)``).

How much of u the spikes carry: a supervised decoder (a bidirectional GRU
trained on 5000 simulated trials with the true u) reaches R2 0.36 on
held-out trials at the defaults (50 neurons, 30 spikes/s); the benchmark
prints the same ceiling for a ridge decoder (:func:`supervised_input_r2`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from sklearn.metrics import r2_score

from pyro_lfads.data import LFADSDataset
from pyro_lfads.evaluation.metrics import cross_validated_r2

from pyro_lfads.synthetic.arguments import check_float, check_int, train_count
from pyro_lfads.synthetic.lorenz import assemble_dataset, split_trials

#: Config keys suited to fitting these data. The input prior starts white (AR(1) tau 0.1 bins), where
#: the paper reports its priors end (tau ~ 0); started at the default 10 bins it stays smooth through
#: fits of a few thousand steps, and so does the inferred input. A KL weight of 0.3 on the inputs lets
#: the controller carry more of them. With 200 neurons: input R2 0.054 with neither (120 epochs), 0.385
#: with the white prior and 0.592 with both (240 epochs; README, "Inferred inputs on the paper's systems").
FIT_CONFIG = {"ar_tau_init": 0.1, "kl_co_scale": 0.3}
_EVAL_TRIALS = 1000
_MAX_GRAD_NORM = 1.0


@dataclass(frozen=True)
class Integrator:
    """A trained integrate-to-bound RNN.

    Attributes:
        recurrent: (N, N) float64 W.
        bias: (N,) float64 b.
        input_weights: (N, 1) float64 B.
        readout: (N,) float64 w.
        readout_bias: c.
        r2: R2 of the readout against the clipped running sum, pooled over
            all bins of 1000 fresh trials.
    """

    recurrent: np.ndarray
    bias: np.ndarray
    input_weights: np.ndarray
    readout: np.ndarray
    readout_bias: float
    r2: float

    def states(self, inputs: np.ndarray) -> np.ndarray:
        """(trials, T, N) float64 states h for inputs u (trials, T)."""
        return _states(*(torch.from_numpy(a) for a in (self.recurrent, self.bias, self.input_weights)),
                       torch.from_numpy(np.asarray(inputs, dtype=np.float64))).numpy()

    def output(self, inputs: np.ndarray) -> np.ndarray:
        """(trials, T) readout z for inputs u (trials, T)."""
        return self.states(inputs) @ self.readout + self.readout_bias


def bounded_integral(inputs: np.ndarray) -> np.ndarray:
    """The target (..., T): the running sum over the last axis, clipped to [-1, 1]."""
    return np.clip(np.cumsum(inputs, axis=-1), -1.0, 1.0)


def train_integrator(
    seed: int = 0,
    n_units: int = 50,
    input_variance: float = 0.0625,
    steps: int = 2000,
    batch_size: int = 128,
    train_bins: int = 50,
    learning_rate: float = 0.01,
    l2: float = 1e-4,
    eval_bins: int = 100,
) -> Integrator:
    """Train the integrate-to-bound RNN (recipe in the module docstring); about 20 s on one core.

    Args:
        seed: seed of the torch generator of all draws (>= 0).
        n_units: RNN units N.
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
    for name, value in (("input_variance", input_variance), ("learning_rate", learning_rate)):
        check_float(name, value)
    check_float("l2", l2, allow_zero=True)
    generator = torch.Generator().manual_seed(seed)

    def normal(*shape: int, std: float) -> torch.Tensor:
        return std * torch.randn(*shape, generator=generator, dtype=torch.float32)

    scale = (0.64 / n_units) ** 0.5
    recurrent = normal(n_units, n_units, std=scale).requires_grad_()
    bias = torch.zeros(n_units, requires_grad=True)
    input_weights = torch.zeros(n_units, 1, requires_grad=True)
    readout = normal(n_units, std=scale).requires_grad_()
    readout_bias = torch.zeros((), requires_grad=True)
    params = [recurrent, bias, input_weights, readout, readout_bias]
    optimizer = torch.optim.Adam(params, lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    input_std = input_variance**0.5
    for _ in range(steps):
        inputs = normal(batch_size, train_bins, std=input_std)
        target = torch.from_numpy(bounded_integral(inputs.numpy()))
        output = _states(recurrent, bias, input_weights, inputs) @ readout + readout_bias
        loss = torch.nn.functional.mse_loss(output, target) + l2 * recurrent.square().sum()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, _MAX_GRAD_NORM)
        optimizer.step()
        schedule.step()
    net = Integrator(*(p.detach().double().numpy() for p in params[:4]), readout_bias=float(readout_bias.detach()),
                     r2=float("nan"))
    inputs = normal(_EVAL_TRIALS, eval_bins, std=input_std).double().numpy()
    return replace(net, r2=float(r2_score(bounded_integral(inputs).ravel(), net.output(inputs).ravel())))


def make_integrate_to_bound_dataset(
    seed: int = 0,
    n_conditions: int = 800,
    trials_per_condition: int = 5,
    n_time: int = 100,
    n_neurons: int = 50,
    bin_ms: float = 10.0,
    max_rate_hz: float = 30.0,
    input_variance: float = 0.0625,
    train_fraction: float = 0.8,
    train_steps: int = 2000,
) -> LFADSDataset:
    """Train the integrate-to-bound RNN from ``seed`` and simulate spikes of neurons reading it.

    Args:
        seed: seed of the training (:func:`train_integrator`) and of the data (>= 0).
        n_conditions: white-noise inputs, one per condition.
        trials_per_condition: Poisson spike trains drawn per condition.
        n_time: bins per trial, one RNN step each.
        n_neurons: neurons, each reading one random projection of the 50 units.
        bin_ms: bin width, ms (sets the counts' scale and ``conversion_factor``).
        max_rate_hz: a neuron's rate in spikes/s at the top of its range in a trial.
        input_variance: variance of the white-noise input per bin.
        train_fraction: fraction of each condition's trials put in train.
        train_steps: Adam steps of the training (fewer train a worse integrator faster).

    Returns:
        An LFADSDataset whose splits hold ``encod_data`` = ``recon_data``:
        (trials, n_time, n_neurons) float32 spike counts; ``truth``: the same
        shape, float32 rates in spikes/s, shared by a condition's trials;
        ``inds``: (trials,) int64 ``condition * trials_per_condition + repeat``.
        ``conversion_factor`` = 1000 / bin_ms; ``source`` quotes the
        integrator's R2. ``extras`` per split: ``{split}_conditions`` (trials,)
        int64, ``{split}_inputs`` (trials, n_time, 1) float32 the input u,
        ``{split}_target`` (trials, n_time, 1) float32 its clipped running sum,
        ``{split}_latents`` (trials, n_time, 50) float32 the RNN state h.

    Raises:
        InputError: an argument is out of range, or a split would be empty.
    """
    check_int("n_conditions", n_conditions, 1)
    check_int("trials_per_condition", trials_per_condition, 2)
    check_int("n_time", n_time, 2)
    check_int("n_neurons", n_neurons, 1)
    check_float("bin_ms", bin_ms)
    check_float("max_rate_hz", max_rate_hz)
    n_train = train_count(train_fraction, trials_per_condition)
    net = train_integrator(seed, input_variance=input_variance, steps=train_steps, eval_bins=n_time)
    rng = np.random.default_rng(seed)
    n_units = net.recurrent.shape[0]
    projection = rng.normal(0.0, n_units**-0.5, size=(n_neurons, n_units))
    inputs = rng.normal(0.0, input_variance**0.5, size=(n_conditions, n_time))
    states = net.states(inputs)  # (conditions, time, units)
    rates = max_rate_hz * _span_unit_interval(states @ projection.T)
    expected = np.broadcast_to((rates * bin_ms / 1000.0)[:, None],
                               (n_conditions, trials_per_condition, *rates.shape[1:]))
    spikes = rng.poisson(expected)
    is_train = split_trials(rng, n_conditions, trials_per_condition, n_train)
    return assemble_dataset(spikes, rates, states, is_train, 1000.0 / bin_ms,
                            source=f"integrate-to-bound(seed={seed}, integrator R2={net.r2:.3f})",
                            bin_width_s=bin_ms / 1000.0,
                            condition_extras={"inputs": inputs[..., None].astype(np.float32),
                                              "target": bounded_integral(inputs)[..., None].astype(np.float32)})


def supervised_input_r2(counts: np.ndarray, inputs: np.ndarray, lags: tuple[int, int] = (-2, 6),
                        folds: int = 5) -> float:
    """Cross-validated R2 of a ridge decoder of u_t from the counts of bins t+lags[0] .. t+lags[1].

    A yardstick for what an unsupervised method may recover: this decoder is
    *trained on the true inputs* (:func:`pyro_lfads.evaluation.metrics.cross_validated_r2`).

    Args:
        counts: (trials, T, neurons) spike counts.
        inputs: (trials, T) or (trials, T, 1) the true inputs.
        lags: the first and last bin offset the decoder reads.
        folds: cross-validation folds, split by trial.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n_trials, n_time, _ = counts.shape
    before, after = -lags[0], lags[1]
    padded = np.pad(counts, ((0, 0), (before, after), (0, 0)))
    windows = np.concatenate([padded[:, k:k + n_time] for k in range(before + after + 1)], axis=-1)
    return cross_validated_r2(windows, np.asarray(inputs, dtype=np.float64).reshape(n_trials, n_time, 1), folds)


def _span_unit_interval(values: np.ndarray) -> np.ndarray:
    """(trials, T, neurons) values rescaled per trial and neuron to span [0, 1] over time (flat ones to 0)."""
    low = values.min(axis=1, keepdims=True)
    span = values.max(axis=1, keepdims=True) - low
    return np.divide(values - low, span, out=np.zeros_like(values), where=span > 0)


def _states(recurrent: torch.Tensor, bias: torch.Tensor, input_weights: torch.Tensor,
            inputs: torch.Tensor) -> torch.Tensor:
    """(trials, T, N) states ``h_t = tanh(h_{t-1} W^T + b + u_t B^T)`` from h = 0, for inputs (trials, T)."""
    h = torch.zeros(inputs.shape[0], recurrent.shape[0], dtype=recurrent.dtype)
    states = []
    for t in range(inputs.shape[1]):
        h = torch.tanh(h @ recurrent.T + bias + inputs[:, t, None] @ input_weights.T)
        states.append(h)
    return torch.stack(states, dim=1)
