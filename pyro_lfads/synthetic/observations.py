"""Observations of known rates, one kind per observation model, with their truth.

Each kind draws ``repeats`` trials per condition from log firing rates
(conditions, T, N) in spikes/s and returns the data, the true signal the
matching observation model should recover, and the conversion factor
(truth / conversion_factor = the expected observation per bin):

- poisson: spike counts; truth the rates (spikes/s).
- negbinom: over-dispersed counts, Poisson(rate * g) with g ~ Gamma(k, 1/k)
  per bin, dispersion k ~ Uniform(0.3, 1) per neuron (Var = m + m^2 / k);
  truth the rates.
- gaussian: the centred log rate (a linear readout of the latent state) plus
  Normal noise of std ~ Uniform(0.5, 1) per neuron; truth the centred log rate.
- gamma: Gamma with mean exp(centred log rate) and shape ~ Uniform(2, 6) per
  neuron; truth the mean.
- zig: zero with probability exp(-expected count) (no spike in the bin), else
  0.1 + Gamma(shape ~ Uniform(2, 5), mean 0.5): deconvolved-calcium-like
  events; truth the mean, P(event) * 0.6.
"""

from __future__ import annotations

import numpy as np

OBSERVATIONS = ("poisson", "negbinom", "gaussian", "gamma", "zig")
ZIG_MIN_EVENT = 0.1
ZIG_MEAN_EXCESS = 0.5


def draw_observations(kind: str, rng: np.random.Generator, log_rates_hz: np.ndarray, bin_s: float,
                      repeats: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(data (conditions, repeats, T, N), truth (conditions, T, N), conversion_factor)."""
    n_neurons = log_rates_hz.shape[-1]
    shape = (log_rates_hz.shape[0], repeats, *log_rates_hz.shape[1:])
    rates_hz = np.exp(log_rates_hz)
    expected = np.broadcast_to((rates_hz * bin_s)[:, None], shape)
    centred = log_rates_hz - log_rates_hz.mean(axis=(0, 1))
    if kind == "poisson":
        return rng.poisson(expected), rates_hz, 1.0 / bin_s
    if kind == "negbinom":
        k = rng.uniform(0.3, 1.0, n_neurons)
        return rng.poisson(expected * rng.gamma(k, 1.0 / k, size=shape)), rates_hz, 1.0 / bin_s
    if kind == "gaussian":
        noise_std = rng.uniform(0.5, 1.0, n_neurons)
        return centred[:, None] + noise_std * rng.standard_normal(shape), centred, 1.0
    if kind == "gamma":
        mean = np.exp(centred)
        shape_k = rng.uniform(2.0, 6.0, n_neurons)
        return rng.gamma(shape_k, np.broadcast_to((mean / shape_k)[:, None], shape)), mean, 1.0
    if kind == "zig":
        shape_k = rng.uniform(2.0, 5.0, n_neurons)
        event = rng.random(shape) < -np.expm1(-expected)
        amount = ZIG_MIN_EVENT + rng.gamma(shape_k, ZIG_MEAN_EXCESS / shape_k, size=shape)
        truth = -np.expm1(-rates_hz * bin_s) * (ZIG_MIN_EVENT + ZIG_MEAN_EXCESS)
        return np.where(event, amount, 0.0), truth, 1.0
    raise ValueError(f"unknown observation kind {kind!r}")
