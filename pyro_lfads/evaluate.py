"""Scores a fitted run on its validation trials, next to the smoothing baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .baselines import GaussianSmoothing
from .data import LFADSDataset, load_dataset
from .errors import InputError
from .metrics import bits_per_spike, poisson_nll, rate_r2, rate_r2_per_neuron
from .posterior import read_posterior
from .run import dataset_sha256, read_run


def run_dataset(run_dir: str | Path) -> LFADSDataset:
    """The data set a run was fitted on, read again from its file and checked unchanged."""
    _, info = read_run(run_dir)
    if info.data_source.startswith("<"):
        raise InputError(f"{run_dir}: was fitted on in-memory arrays; pass the data set to the Python API")
    dataset = load_dataset(info.data_source)
    if dataset_sha256(dataset) != info.data_sha256:
        raise InputError(f"{info.data_source}: data changed since {run_dir} was fitted (checksum differs)")
    return dataset


def smoothing_baseline(dataset: LFADSDataset, n_time: int) -> tuple[GaussianSmoothing, np.ndarray]:
    """The smoothing baseline fitted on the training trials, and its rates on the validation trials.

    Rates are (trials, n_time, neurons) in counts per bin.
    """
    smoothing = GaussianSmoothing().fit(dataset.train.recon_data[:, :n_time])
    return smoothing, smoothing.predict(dataset.valid.recon_data[:, :n_time])


def evaluate_run(run_dir: str | Path, dataset: LFADSDataset | None = None) -> dict:
    """Figures of merit on the validation trials, as a flat dict of floats.

    Always: ``bits_per_spike``, ``poisson_nll_per_trial`` (nats). Where the
    data has true rates: ``rate_r2`` (pooled over trials, bins, neurons),
    ``rate_r2_per_neuron`` (mean of per-neuron R2), and the same two for the
    Gaussian-smoothing baseline (``smoothing_rate_r2``,
    ``smoothing_rate_r2_per_neuron``), whose width (``smoothing_sigma_bins``)
    is chosen on the training trials.
    """
    _, info = read_run(run_dir)
    dataset = dataset if dataset is not None else run_dataset(run_dir)
    rates = read_posterior(run_dir, "valid")["output_params"].astype("float64")
    n_time = info.n_time
    counts = dataset.valid.recon_data[:, :n_time]
    result = {
        "n_valid_trials": dataset.valid.n_trials,
        "bits_per_spike": bits_per_spike(counts, rates),
        "poisson_nll_per_trial": poisson_nll(counts, rates) / dataset.valid.n_trials,
    }
    truth = dataset.truth_counts("valid")
    if truth is not None:
        truth = truth[:, :n_time]
        smoothing, smoothed = smoothing_baseline(dataset, n_time)
        result.update({
            "rate_r2": rate_r2(truth, rates),
            "rate_r2_per_neuron": rate_r2_per_neuron(truth, rates),
            "smoothing_rate_r2": rate_r2(truth, smoothed),
            "smoothing_rate_r2_per_neuron": rate_r2_per_neuron(truth, smoothed),
            "smoothing_sigma_bins": float(smoothing.sigma_bins_),
        })
    return result
