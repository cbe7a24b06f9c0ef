"""Checks that variational inference does not give for free.

The importance weights w = p(x, z) / q(z | x) of posterior samples z tell
how well the guide matches the true posterior of each trial:

- the IWAE bound log (1/K) sum_k w_k is a tighter lower bound on log p(x)
  than the ELBO (the mean of log w), and grows towards log p(x) with K;
- the Pareto k-hat of the weights (Yao et al. 2018, "Yes, but did it
  work?", computed with arviz's PSIS) is below 0.7 where importance
  sampling, and so the guide, can be trusted.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import torch
from scipy.special import logsumexp

from .batch import split_batch
from .data import Split
from .traces import guide_and_model_traces


def _log_density(trace) -> torch.Tensor:
    """Sum of the log densities of a trace's sample sites, per trial: (B,)."""
    total = 0.0
    for site in trace.nodes.values():
        if site["type"] == "sample" and not site["infer"].get("_deterministic"):
            total = total + site["log_prob"]
    return total


@torch.no_grad()
def log_importance_weights(model, guide, split: Split, *, samples: int, time_bins: int | None = None,
                           device: str = "cpu", max_rows: int = 4096) -> np.ndarray:
    """log p(x, z_k) - log q(z_k | x) for K = ``samples`` draws per trial: (trials, K), nats.

    Model and guide should be in eval mode (dropout off), as ``load_fitted`` returns them.
    """
    chunk = max(1, max_rows // samples)
    out = np.empty((split.n_trials, samples))
    for start in range(0, split.n_trials, chunk):
        trials = slice(start, min(start + chunk, split.n_trials))
        batch = split_batch(split, trials, device, time_bins).repeat_trials(samples)
        model_trace, guide_trace = guide_and_model_traces(model, guide, batch)
        log_w = _log_density(model_trace) - _log_density(guide_trace)
        out[trials] = log_w.reshape(-1, samples).cpu().numpy()
    return out


def elbo_per_trial(log_weights: np.ndarray) -> np.ndarray:
    """The ELBO estimate of each trial, mean_k log w_k: (trials,)."""
    return log_weights.mean(axis=-1)


def iwae_per_trial(log_weights: np.ndarray) -> np.ndarray:
    """The IWAE bound of each trial, log (1/K) sum_k w_k: (trials,). Always >= the ELBO estimate."""
    return logsumexp(log_weights, axis=-1) - np.log(log_weights.shape[-1])


def pareto_khat(log_weights: np.ndarray) -> np.ndarray:
    """PSIS Pareto shape k-hat of each trial's weights (arviz): (trials,). Below 0.7 is reliable."""
    _, khat = az.psislw(np.asarray(log_weights, dtype=np.float64))
    return np.asarray(khat)
