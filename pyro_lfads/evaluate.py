"""Scores a fitted run on its validation trials, next to the NLB baselines (smoothing, GPFA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import r2_score

from .data import LFADSDataset, Split, load_dataset
from .errors import InputError
from .models.likelihoods import LIKELIHOODS
from .metrics import bits_per_spike, poisson_nll, rate_r2, rate_r2_per_neuron
from .posterior import read_posterior
from .run import dataset_sha256, load_fitted, read_run
from .scoring import BASELINES, DEFAULT_PSTH_SIGMA_BINS, baseline_rates, score_rates
from .train import evaluate_elbo


def run_dataset(run_dir: str | Path) -> LFADSDataset:
    """The data set a run was fitted on, read again from its file and checked unchanged."""
    _, info = read_run(run_dir)
    if info.data_source.startswith("<"):
        raise InputError(f"{run_dir}: was fitted on in-memory arrays; pass the data set to the Python API")
    dataset = load_dataset(info.data_source, support="real")
    if dataset_sha256(dataset) != info.data_sha256:
        raise InputError(f"{info.data_source}: data changed since {run_dir} was fitted (checksum differs)")
    return dataset


def heldout_elbo(run_dir: str | Path, dataset: LFADSDataset, passes: int = 10, device: str = "cpu") -> float:
    """The ELBO per validation trial (nats), averaged over ``passes`` draws: a lower bound on
    the held-out log-likelihood, comparable across observation models of the same data."""
    config, _, model, guide = load_fitted(run_dir, "best", device)
    torch.manual_seed(config.seed)
    losses = [evaluate_elbo(model, guide, dataset.valid, config, device)["loss"] for _ in range(passes)]
    return -float(np.mean(losses))


def evaluate_run(run_dir: str | Path, dataset: LFADSDataset | None = None, *,
                 baselines: tuple[str, ...] = BASELINES, lag_bins: int = 0,
                 psth_sigma_bins: float = DEFAULT_PSTH_SIGMA_BINS) -> dict:
    """Figures of merit on the validation trials, LFADS next to the baselines.

    Returns ``{"lfads": {...}, "smoothing": {...}, "gpfa": {...}}`` (the
    baselines named in ``baselines``, for count data only). For count data
    every method has the figures of :func:`pyro_lfads.scoring.score_rates`
    that the data allows (``co_bps``, ``fp_bps``, ``vel_r2``, ``psth_r2``,
    ``heldin_bps``, ``rate_r2``, ``rate_r2_per_neuron``). LFADS also has
    ``likelihood``, ``n_valid_trials``, ``elbo_per_trial`` (held-out ELBO,
    nats), for count data ``bits_per_spike`` and ``poisson_nll_per_trial``
    over all reconstructed entries; for other data ``rate_r2`` and
    ``rate_r2_per_neuron`` of the mean signal against the truth; and, where
    the model predicts observations other than its rates (calcium),
    ``obs_mean_r2``.
    """
    config, info = read_run(run_dir)
    dataset = dataset if dataset is not None else run_dataset(run_dir)
    dataset = first_bins(dataset, info.n_time)
    counts = LIKELIHOODS[config.likelihood].support == "counts"
    posterior = read_posterior(run_dir, "valid")
    rates = posterior["output_params"].astype("float64")
    observed = dataset.valid.recon_data
    lfads = {"likelihood": config.likelihood, "n_valid_trials": dataset.valid.n_trials,
             "elbo_per_trial": heldout_elbo(run_dir, dataset)}
    if "obs_mean" in posterior:
        lfads["obs_mean_r2"] = float(r2_score(observed.ravel(), posterior["obs_mean"].ravel()))
    if not counts:
        truth = dataset.truth_counts("valid")
        if truth is not None:
            lfads.update(rate_r2=rate_r2(truth, rates), rate_r2_per_neuron=rate_r2_per_neuron(truth, rates))
        return {"lfads": lfads}
    lfads["bits_per_spike"] = bits_per_spike(observed, rates)
    lfads["poisson_nll_per_trial"] = poisson_nll(observed, rates) / dataset.valid.n_trials
    train_rates = read_posterior(run_dir, "train")["output_params"].astype("float64")
    result = {"lfads": {**lfads, **score_rates(dataset, train_rates, rates, lag_bins=lag_bins,
                                               psth_sigma_bins=psth_sigma_bins)}}
    for method in baselines:
        train_rates, valid_rates = baseline_rates(method, dataset, seed=config.seed)
        result[method] = score_rates(dataset, train_rates, valid_rates, lag_bins=lag_bins,
                                     psth_sigma_bins=psth_sigma_bins)
    return result


def first_bins(dataset: LFADSDataset, n_time: int) -> LFADSDataset:
    """The data set cut to its first ``n_time`` bins (a run's ``time_bins``); itself when already so."""
    if dataset.valid.n_time == n_time:
        return dataset

    def cut(split: Split) -> Split:
        keep = slice(None), slice(0, n_time)
        return Split(split.encod_data[keep], split.recon_data[keep],
                     None if split.ext_input is None else split.ext_input[keep],
                     None if split.truth is None else split.truth[keep], split.inds)

    extras = {key: value[:, :n_time] if key.endswith(("_behavior", "_latents", "_inputs", "_target")) else value
              for key, value in dataset.extras.items()}
    return LFADSDataset(cut(dataset.train), cut(dataset.valid), dataset.conversion_factor, dataset.source, extras)
