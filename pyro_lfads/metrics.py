"""Evaluation metrics for inferred firing rates.

All functions take numpy arrays of shape ``(trials, time, neurons)``, with
rates and counts in counts per bin, and return a Python float.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, xlogy
from sklearn.metrics import r2_score

from pyro_lfads.errors import InputError


def _check_pair(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``a`` and ``b`` as float64 arrays after checking they are 3-D, alike and finite."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    for name, arr in ((name_a, a), (name_b, b)):
        if arr.ndim != 3:
            raise InputError(f"{name}: expected a 3-D array (trials, time, neurons), got shape {arr.shape}")
        if arr.size == 0:
            raise InputError(f"{name}: is empty (shape {arr.shape})")
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name}: holds NaN or infinite values")
    if a.shape != b.shape:
        raise InputError(f"{name_a} and {name_b}: shapes differ, {a.shape} vs {b.shape}")
    return a, b


def _check_counts(counts: np.ndarray) -> None:
    if np.any(counts < 0):
        raise InputError("counts: holds negative values")


def _poisson_log_lik(counts: np.ndarray, rates: np.ndarray) -> float:
    """Total Poisson log-likelihood in nats; a zero rate is allowed where the count is zero."""
    return float(np.sum(xlogy(counts, rates) - rates - gammaln(counts + 1.0)))


def rate_r2(true_rates: np.ndarray, pred_rates: np.ndarray) -> float:
    """R2 of ``pred_rates`` against ``true_rates``, pooled over all trials, bins and neurons."""
    true_rates, pred_rates = _check_pair("true_rates", true_rates, "pred_rates", pred_rates)
    return float(r2_score(true_rates.ravel(), pred_rates.ravel()))


def rate_r2_per_neuron(true_rates: np.ndarray, pred_rates: np.ndarray) -> float:
    """Mean over neurons of each neuron's R2, computed over its trials x time values."""
    true_rates, pred_rates = _check_pair("true_rates", true_rates, "pred_rates", pred_rates)
    n_neurons = true_rates.shape[2]
    return float(
        r2_score(
            true_rates.reshape(-1, n_neurons),
            pred_rates.reshape(-1, n_neurons),
            multioutput="uniform_average",
        )
    )


def poisson_nll(counts: np.ndarray, rates: np.ndarray) -> float:
    """Total Poisson negative log-likelihood of ``counts`` under ``rates`` (> 0), in nats.

    Includes the ``log(k!)`` term, so it is the exact negative log-probability.
    """
    counts, rates = _check_pair("counts", counts, "rates", rates)
    _check_counts(counts)
    if np.any(rates <= 0):
        raise InputError("rates: must be > 0 everywhere")
    return -_poisson_log_lik(counts, rates)


def bits_per_spike(counts: np.ndarray, rates: np.ndarray) -> float:
    """Log-likelihood gain over a per-neuron constant-rate model, in bits per spike.

    ``(NLL(null) - NLL(model)) / (total spikes * ln 2)``, where the null model
    predicts, for each neuron, its mean count per bin over all trials and bins of
    ``counts`` (the Neural Latents Benchmark convention). A neuron with no spikes
    has a null rate of 0 and contributes nothing to NLL(null).
    """
    counts, rates = _check_pair("counts", counts, "rates", rates)
    _check_counts(counts)
    total_spikes = float(np.sum(counts))
    if total_spikes <= 0:
        raise InputError("counts: holds no spikes, so bits per spike is undefined")
    nll_model = poisson_nll(counts, rates)
    null_rates = np.broadcast_to(counts.mean(axis=(0, 1), keepdims=True), counts.shape)
    nll_null = -_poisson_log_lik(counts, null_rates)
    return float((nll_null - nll_model) / (total_spikes * np.log(2.0)))
