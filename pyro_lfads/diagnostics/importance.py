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

import warnings

import arviz as az
import numpy as np
import torch
from scipy.special import logsumexp

from pyro_lfads.data import Split
from pyro_lfads.fitting import objective
from pyro_lfads.fitting.batch import trial_chunks
from pyro_lfads.models.likelihoods import data_support


def _chunked_traces(model, guide, split: Split, samples: int, time_bins: int | None, device: str,
                    max_rows: int, session: int = 0):
    """Yield (trial slice, batch, model trace, guide trace), ``samples`` draws per trial of ``split`` (of
    session ``session``).

    Rows of the batch and traces are trial-major: trial i's draws are rows i*samples .. i*samples+samples-1.
    """
    for trials, batch in trial_chunks(split, max_rows=max_rows, repeats=samples, device=device, time_bins=time_bins,
                                      session=session):
        yield (trials, batch, *objective.guide_and_model_traces(model, guide, batch))


@torch.no_grad()
def log_importance_weights(model, guide, split: Split, *, samples: int, time_bins: int | None = None,
                           device: str = "cpu", max_rows: int = 4096, session: int = 0) -> np.ndarray:
    """log p(x, z_k) - log q(z_k | x) for K = ``samples`` draws per trial (of session ``session``):
    (trials, K), nats.

    Model and guide should be in eval mode (dropout off), as ``load_fitted`` returns them.
    """
    out = np.empty((split.n_trials, samples))
    for trials, _, model_trace, guide_trace in _chunked_traces(model, guide, split, samples, time_bins, device,
                                                               max_rows, session):
        out[trials] = objective.log_importance_weights(model_trace, guide_trace).reshape(-1, samples).cpu().numpy()
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


def psis_weights(log_weights: np.ndarray, khat_limit: float = 0.7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Self-normalised PSIS weights of each trial's K draws where its k-hat is below ``khat_limit``, equal
    weights 1 / K elsewhere: (weights (trials, K) summing to 1 per trial, k-hat (trials,), whether the
    trial's weights are PSIS's (trials,) bool), from log weights (trials, K), nats."""
    log_weights = np.asarray(log_weights, dtype=np.float64)
    with warnings.catch_warnings():  # a large k-hat is the finding, returned, not a warning
        warnings.filterwarnings("ignore", "Estimated shape parameter", UserWarning)
        smoothed, khat = az.psislw(log_weights)
    khat = np.asarray(khat)
    weighted = khat < khat_limit
    weights = np.where(weighted[:, None], np.exp(smoothed), 1.0 / log_weights.shape[-1])
    return weights / weights.sum(-1, keepdims=True), khat, weighted


#: dims of every variable of the InferenceData, after (chain, draw).
DIMS = {"g0": ["trial", "gen"], "u": ["trial", "time", "input"], "factors": ["trial", "time", "factor"],
        "rates": ["trial", "time", "neuron"], "obs": ["trial", "time", "neuron"],
        "lp": ["trial"], "log_importance_weight": ["trial"]}


@torch.no_grad()
def to_inference_data(model, guide, split: Split, *, samples: int, time_bins: int | None = None,
                      device: str = "cpu", bin_ms: float | None = None, conditions: np.ndarray | None = None,
                      max_rows: int = 4096, session: int = 0) -> az.InferenceData:
    """Posterior draws of one split (of session ``session``) as an ``arviz.InferenceData`` (one chain of
    ``samples`` draws).

    Groups, each variable with dims (chain, draw, ...) and a ``units`` attribute:
        posterior: g0 (trial, gen), u (trial, time, input) when the model has
            inferred inputs, factors (trial, time, factor), rates (trial, time, neuron);
        posterior_predictive: obs (trial, time, neuron), simulated from each draw;
        observed_data: obs (trial, time, neuron), without chain and draw;
        log_likelihood: obs (trial, time, neuron), log p(x | z) of each entry,
            so ``az.loo`` and ``az.waic`` work over trials, bins and neurons;
        sample_stats: lp (trial), log p(x, z) of the draw, and
            log_importance_weight (trial), log p(x, z) - log q(z | x).
    Coordinates: trial (the split's ``inds`` when it has them), time (ms from
    the trial start when ``bin_ms`` is given, else bins), neuron, and
    ``condition`` along trial when ``conditions`` (trials,) is given.
    Rates are expected observations per bin (spike counts per bin for count data).
    Model and guide should be in eval mode. Memory and file size grow with
    samples x trials x time x neurons.
    """
    parts: dict[str, dict[str, list[np.ndarray]]] = {group: {} for group in
                                                      ("posterior", "posterior_predictive", "log_likelihood",
                                                       "sample_stats", "observed_data")}

    def keep(group: str, name: str, value: torch.Tensor, per_draw: bool = True) -> None:
        """Store rows (trials_in_chunk * samples, ...) as (samples, trials_in_chunk, ...)."""
        value = value.cpu().numpy()
        if per_draw:
            value = value.reshape(-1, samples, *value.shape[1:]).swapaxes(0, 1)
        parts[group].setdefault(name, []).append(value)

    for _, batch, model_trace, guide_trace in _chunked_traces(model, guide, split, samples, time_bins, device,
                                                              max_rows, session):
        obs = model_trace.nodes["obs"]["fn"]
        elementwise = obs.base_dist if hasattr(obs, "base_dist") else obs
        for name in ("g0", "u"):
            if name in guide_trace.nodes:
                keep("posterior", name, guide_trace.nodes[name]["value"])
        for name in ("factors", "rates"):
            keep("posterior", name, model_trace.nodes[name]["value"])
        keep("posterior_predictive", "obs", elementwise.sample())
        keep("log_likelihood", "obs", elementwise.log_prob(batch.recon_data))
        keep("sample_stats", "lp", objective.log_density(model_trace))
        keep("sample_stats", "log_importance_weight", objective.log_importance_weights(model_trace, guide_trace))
        keep("observed_data", "obs", batch.recon_data[::samples], per_draw=False)

    axis = {group: 0 if group == "observed_data" else 1 for group in parts}
    arrays = {group: {name: np.concatenate(chunks, axis=axis[group]) for name, chunks in variables.items()}
              for group, variables in parts.items()}
    for group, variables in arrays.items():
        if group != "observed_data":
            arrays[group] = {name: value[None] for name, value in variables.items()}  # one chain
    observed = arrays["observed_data"]["obs"]
    n_trials, n_time, n_neurons = observed.shape
    trial_coords = np.asarray(split.inds) if split.inds is not None else np.arange(n_trials)
    time_coords = np.arange(n_time) * (bin_ms if bin_ms is not None else 1)
    data = az.from_dict(**arrays, dims=DIMS,
                        coords={"trial": trial_coords, "time": time_coords, "neuron": np.arange(n_neurons)},
                        attrs={"inference": "variational (pyro-lfads guide)", "likelihood": model.config.likelihood,
                               "bin_ms": bin_ms if bin_ms is not None else "unknown"})
    _describe(data, model.config.likelihood, bin_ms, conditions)
    return data


def _describe(data: az.InferenceData, likelihood: str, bin_ms: float | None, conditions: np.ndarray | None) -> None:
    """Set the ``units`` (and ``long_name``) attributes of every variable and coordinate, in place."""
    counts = data_support(likelihood) == "counts"
    obs_units = "spike counts per bin" if counts else "data units per bin"
    units = {"g0": ("dimensionless", "initial condition of the generator"),
             "u": ("dimensionless", "inferred input"),
             "factors": ("dimensionless", "latent factors"),
             "rates": (f"expected {obs_units}", "rates"),
             "obs": (obs_units, "observations"),
             "lp": ("nats", "log p(x, z), summed over the trial"),
             "log_importance_weight": ("nats", "log p(x, z) - log q(z | x)")}
    for group in data.groups():
        dataset = data[group]
        if group == "log_likelihood":
            dataset["obs"].attrs.update(units="nats", long_name="log p(x | z) of each entry")
        else:
            for name in dataset.data_vars:
                dataset[name].attrs.update(units=units[name][0], long_name=units[name][1])
        if "time" in dataset.coords:
            dataset["time"].attrs["units"] = "ms from trial start" if bin_ms is not None else "bins"
    if conditions is not None:
        data.map(lambda dataset: dataset.assign_coords(condition=("trial", np.asarray(conditions))), inplace=True)
