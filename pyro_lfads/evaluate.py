"""Scores a fitted run on its validation trials, next to the smoothing baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import r2_score

from .baselines import GaussianSmoothing
from .data import LFADSDataset, load_dataset
from .errors import InputError
from .models.likelihoods import LIKELIHOODS
from .metrics import bits_per_spike, poisson_nll, rate_r2, rate_r2_per_neuron
from .posterior import read_posterior
from .run import dataset_sha256, load_fitted, read_run
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


def smoothing_baseline(dataset: LFADSDataset, n_time: int) -> tuple[GaussianSmoothing, np.ndarray]:
    """The smoothing baseline fitted on the training trials, and its rates on the validation trials.

    Rates are (trials, n_time, neurons) in counts per bin.
    """
    smoothing = GaussianSmoothing().fit(dataset.train.recon_data[:, :n_time])
    return smoothing, smoothing.predict(dataset.valid.recon_data[:, :n_time])


def heldout_elbo(run_dir: str | Path, dataset: LFADSDataset, passes: int = 10, device: str = "cpu") -> float:
    """The ELBO per validation trial (nats), averaged over ``passes`` draws: a lower bound on
    the held-out log-likelihood, comparable across observation models of the same data."""
    config, _, model, guide = load_fitted(run_dir, "best", device)
    torch.manual_seed(config.seed)
    losses = [evaluate_elbo(model, guide, dataset.valid, config, device)["loss"] for _ in range(passes)]
    return -float(np.mean(losses))


def evaluate_run(run_dir: str | Path, dataset: LFADSDataset | None = None) -> dict:
    """Figures of merit on the validation trials, as a flat dict.

    Always: ``likelihood``, ``elbo_per_trial`` (held-out ELBO, nats). For count
    data: ``bits_per_spike`` and ``poisson_nll_per_trial`` of the posterior
    mean rates. Where the data has truth: ``rate_r2`` (pooled over trials,
    bins and neurons) and ``rate_r2_per_neuron`` (mean of per-neuron R2) of
    the rates (counts, calcium) or mean signal (Gaussian, Gamma) against it;
    for count data also the same two for the Gaussian-smoothing baseline
    (``smoothing_rate_r2``, ``smoothing_rate_r2_per_neuron``), whose width
    (``smoothing_sigma_bins``) is chosen on the training trials. Where the
    model predicts observations other than its rates (calcium):
    ``obs_mean_r2``, the R2 of the predicted against the observed values.
    """
    config, info = read_run(run_dir)
    dataset = dataset if dataset is not None else run_dataset(run_dir)
    posterior = read_posterior(run_dir, "valid")
    rates = posterior["output_params"].astype("float64")
    n_time = info.n_time
    observed = dataset.valid.recon_data[:, :n_time]
    counts = LIKELIHOODS[config.likelihood].support == "counts"
    result = {"likelihood": config.likelihood, "n_valid_trials": dataset.valid.n_trials,
              "elbo_per_trial": heldout_elbo(run_dir, dataset)}
    if counts:
        result["bits_per_spike"] = bits_per_spike(observed, rates)
        result["poisson_nll_per_trial"] = poisson_nll(observed, rates) / dataset.valid.n_trials
    if "obs_mean" in posterior:
        result["obs_mean_r2"] = float(r2_score(observed.ravel(), posterior["obs_mean"].ravel()))
    truth = dataset.truth_counts("valid")
    if truth is not None:
        truth = truth[:, :n_time]
        result["rate_r2"] = rate_r2(truth, rates)
        result["rate_r2_per_neuron"] = rate_r2_per_neuron(truth, rates)
        if counts:
            smoothing, smoothed = smoothing_baseline(dataset, n_time)
            result.update({
                "smoothing_rate_r2": rate_r2(truth, smoothed),
                "smoothing_rate_r2_per_neuron": rate_r2_per_neuron(truth, smoothed),
                "smoothing_sigma_bins": float(smoothing.sigma_bins_),
            })
    return result
