"""Stitching several recording sessions into one model (Methods 1.8): checks and the
principal-components initialisation of the sessions' read-ins and read-outs.

Initialisation (:func:`pcr_read_ins`), on the training trials of the
conditions that every session recorded:

1. each session's condition-averaged rates: spike counts averaged over a
   condition's trials, smoothed in time by a Gaussian (``sigma_bins``), as a
   (conditions * T, N_s) matrix;
2. the sessions' matrices side by side, (conditions * T, sum N_s), centred;
   their top F principal components (F = fac_dim), each scaled to unit variance;
3. per session, the least-squares map from its centred rates to those PC
   scores is its read-in W_in^s (F, N_s); its read-out starts as the
   pseudo-inverse of W_in^s (N_s, F), divided by each neuron's mean rate
   for observation models whose read-out gives log rates rather than the
   rates themselves (``link`` other than "identity"), where it then maps
   factors to log-rate changes to first order. Where the model
   reconstructs more neurons than the encoders read (held-out neurons), the
   read-out is instead the least-squares map from the PC scores to all
   reconstructed neurons' centred condition averages, scaled the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from sklearn.decomposition import PCA

from pyro_lfads.data import LFADSDataset
from pyro_lfads.errors import InputError

DEFAULT_SIGMA_BINS = 2.0


def check_sessions(sessions: Sequence[LFADSDataset]) -> None:
    """Refuse sessions that one model cannot fit together: differing bins, external inputs or units."""
    first = sessions[0]
    for dataset in sessions[1:]:
        for name in ("train", "valid"):
            a, b = getattr(first, name), getattr(dataset, name)
            if a.n_time != b.n_time:
                raise InputError(f"{dataset.source}: {name}: {b.n_time} bins per trial, but {first.source} has "
                                 f"{a.n_time}; stitched sessions need the same bins")
            width = (lambda s: 0 if s.ext_input is None else s.ext_input.shape[2])
            if width(a) != width(b):
                raise InputError(f"{dataset.source}: {name}_ext_input: {width(b)} external inputs, but "
                                 f"{first.source} has {width(a)}")
        if dataset.conversion_factor != first.conversion_factor:
            raise InputError(f"{dataset.source}: conversion_factor {dataset.conversion_factor} differs from "
                             f"{first.source}'s {first.conversion_factor}")


def condition_averages(dataset: LFADSDataset, conditions: np.ndarray, n_time: int,
                       sigma_bins: float = DEFAULT_SIGMA_BINS, reconstructed: bool = False) -> np.ndarray:
    """(len(conditions) * n_time, N) smoothed condition-averaged training counts, conditions in the given
    order, of the neurons the encoders read (N_enc), or of all reconstructed ones with ``reconstructed``."""
    labels = dataset.extras["train_conditions"]
    data = (dataset.train.recon_data if reconstructed else dataset.train.encod_data)[:, :n_time].astype(np.float64)
    means = np.stack([data[labels == c].mean(axis=0) for c in conditions])  # (C, T, N)
    if sigma_bins > 0:
        means = gaussian_filter1d(means, sigma_bins, axis=1, mode="nearest")
    return means.reshape(-1, means.shape[-1])


def shared_conditions(sessions: Sequence[LFADSDataset]) -> np.ndarray | None:
    """The condition labels every session has training trials of (sorted), or None when a session has no labels."""
    labels = [d.extras.get("train_conditions") for d in sessions]
    if any(label is None for label in labels):
        return None
    shared = set(np.unique(labels[0]).tolist())
    for label in labels[1:]:
        shared &= set(np.unique(label).tolist())
    return np.array(sorted(shared))


def pcr_read_ins(sessions: Sequence[LFADSDataset], width: int, n_time: int,
                 sigma_bins: float = DEFAULT_SIGMA_BINS) -> list[np.ndarray]:
    """Each session's read-in (width, N_s) by principal-components regression (module docstring).

    Raises:
        InputError: the sessions share fewer conditions than needed or carry no condition labels.
    """
    return [read_in for read_in, _ in _pcr(sessions, width, n_time, sigma_bins)]


def _pcr(sessions: Sequence[LFADSDataset], width: int, n_time: int,
         sigma_bins: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per session: (read-in (width, N_enc), read-out (N_recon, width)) before any link scaling."""
    conditions = shared_conditions(sessions)
    if conditions is None:
        raise InputError("stitching: every session needs train_conditions (condition labels) to initialise "
                         "its read-in by principal-components regression")
    if len(conditions) * n_time <= width:
        raise InputError(f"stitching: the sessions share {len(conditions)} conditions, too few to find {width} "
                         "principal components")
    averages = [condition_averages(d, conditions, n_time, sigma_bins) for d in sessions]
    centred = [a - a.mean(axis=0) for a in averages]
    scores = PCA(n_components=width).fit_transform(np.concatenate(centred, axis=1))
    scores /= scores.std(axis=0).clip(min=1e-12)
    pairs = []
    for dataset, rates in zip(sessions, centred):
        read_in = np.linalg.lstsq(rates, scores, rcond=None)[0].T
        if dataset.train.recon_data.shape[2] == rates.shape[1]:
            read_out = np.linalg.pinv(read_in)
        else:
            recon = condition_averages(dataset, conditions, n_time, sigma_bins, reconstructed=True)
            read_out = np.linalg.lstsq(scores, recon - recon.mean(axis=0), rcond=None)[0].T
        pairs.append((read_in, read_out))
    return pairs


def initialise_sessions(model, guide, sessions: Sequence[LFADSDataset], n_time: int) -> None:
    """Set each session's read-in (guide) and read-out (model) from :func:`pcr_read_ins`.

    Without condition labels shared by all sessions, warns and keeps the random initialisation.
    """
    try:
        pairs = _pcr(sessions, guide.read_ins[0].weight.shape[0], n_time, DEFAULT_SIGMA_BINS)
    except InputError as exc:
        warnings.warn(f"{exc}; keeping random read-ins", stacklevel=2)
        return
    with torch.no_grad():
        for session, ((read_in, read_out), dataset) in enumerate(zip(pairs, sessions)):
            guide.read_ins[session].weight.copy_(torch.as_tensor(read_in))
            likelihood = model.likelihoods[session]
            if likelihood.link != "identity":
                mean = dataset.train.recon_data[:, :n_time].mean(axis=(0, 1))
                read_out = read_out / np.clip(mean, 1e-3, None)[:, None]
            likelihood.readout.weight.copy_(torch.as_tensor(read_out))
