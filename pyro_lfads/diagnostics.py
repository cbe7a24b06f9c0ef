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


@torch.no_grad()
def to_inference_data(model, guide, split: Split, *, samples: int, time_bins: int | None = None,
                      device: str = "cpu", bin_ms: float | None = None) -> az.InferenceData:
    """Posterior draws of one split as an ``arviz.InferenceData`` (one chain of ``samples`` draws).

    Groups and dims (trial, time, neuron, gen, factor, input):
        posterior: g0 (trial, gen), u (trial, time, input) when the model has
            inferred inputs, factors (trial, time, factor), rates (trial, time, neuron);
        posterior_predictive: obs (trial, time, neuron), simulated from each draw;
        observed_data: obs (trial, time, neuron);
        log_likelihood: obs (trial, time, neuron), log p(x | z) of each element,
            so ``az.loo`` and ``az.waic`` work over trials, bins and neurons.
    Rates are in counts per bin (time in bins of ``bin_ms`` when given).
    Model and guide should be in eval mode. Memory grows with samples x trials.
    """
    batch = split_batch(split, slice(None), device, time_bins).repeat_trials(samples)
    model_trace, guide_trace = guide_and_model_traces(model, guide, batch)
    obs_site = model_trace.nodes["obs"]
    base = obs_site["fn"].base_dist if hasattr(obs_site["fn"], "base_dist") else obs_site["fn"]
    n = split.n_trials

    def draws(x: torch.Tensor) -> np.ndarray:
        """(trials * samples, ...) -> (chain=1, draw, trial, ...)."""
        x = x.reshape(n, samples, *x.shape[1:]).transpose(0, 1)
        return x.cpu().numpy()[None]

    posterior = {"g0": draws(guide_trace.nodes["g0"]["value"]),
                 "factors": draws(model_trace.nodes["factors"]["value"]),
                 "rates": draws(model_trace.nodes["rates"]["value"])}
    if "u" in guide_trace.nodes:
        posterior["u"] = draws(guide_trace.nodes["u"]["value"])
    observed = split_batch(split, slice(None), "cpu", time_bins).recon_data.numpy()
    dims = {"g0": ["trial", "gen"], "u": ["trial", "time", "input"], "factors": ["trial", "time", "factor"],
            "rates": ["trial", "time", "neuron"], "obs": ["trial", "time", "neuron"]}
    coords = {"trial": np.arange(n), "time": np.arange(observed.shape[1]), "neuron": np.arange(observed.shape[2])}
    data = az.from_dict(
        posterior=posterior,
        posterior_predictive={"obs": draws(base.sample())},
        observed_data={"obs": observed},
        log_likelihood={"obs": draws(base.log_prob(batch.recon_data))},
        dims=dims, coords=coords,
        attrs={"rates_units": "counts per bin", "bin_ms": bin_ms if bin_ms is not None else "unknown",
               "inference": "variational (pyro-lfads guide)"},
    )
    return data
