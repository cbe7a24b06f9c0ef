"""Non-latent baseline for rate inference: Gaussian smoothing of spike counts.

Spikes and rates are numpy arrays of shape ``(trials, time, neurons)`` in
counts per bin. Smoothing runs along the time axis of each trial and neuron.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d
from scipy.special import xlogy

from pyro_lfads.errors import InputError

DEFAULT_SIGMAS = tuple(float(s) for s in np.geomspace(0.5, 50.0, 15))


def _check_spikes(spikes: np.ndarray) -> np.ndarray:
    """Return ``spikes`` as float64 after checking it is 3-D, finite and non-negative."""
    spikes = np.asarray(spikes, dtype=np.float64)
    if spikes.ndim != 3:
        raise InputError(f"spikes: expected a 3-D array (trials, time, neurons), got shape {spikes.shape}")
    if spikes.size == 0:
        raise InputError(f"spikes: is empty (shape {spikes.shape})")
    if not np.all(np.isfinite(spikes)):
        raise InputError("spikes: holds NaN or infinite values")
    if np.any(spikes < 0):
        raise InputError("spikes: holds negative values")
    return spikes


def _gaussian_weights(sigma: float, n_time: int, leave_centre_out: bool) -> np.ndarray:
    """Unnormalised Gaussian kernel of width ``sigma`` bins, truncated at 4 sigma.

    Offsets beyond ``n_time - 1`` never reach another bin, so the kernel is
    also cut there. With ``leave_centre_out`` the centre weight is 0.
    """
    radius = min(math.ceil(4.0 * sigma), n_time - 1)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    if leave_centre_out:
        weights[radius] = 0.0
    return weights


def _smooth(spikes: np.ndarray, sigma: float, leave_centre_out: bool) -> np.ndarray:
    """Kernel-weighted mean of each bin's neighbourhood along time.

    Normalised convolution: the data are zero-padded and each bin is divided
    by the kernel mass that falls inside the trial, so edge bins average only
    real bins and, with ``leave_centre_out``, no bin ever sees its own count.
    """
    n_time = spikes.shape[1]
    weights = _gaussian_weights(sigma, n_time, leave_centre_out)
    total = correlate1d(spikes, weights, axis=1, mode="constant", cval=0.0)
    mass = correlate1d(np.ones(n_time), weights, mode="constant", cval=0.0)
    return total / mass[None, :, None]


class GaussianSmoothing:
    """Rates by Gaussian smoothing of each trial's spike counts along time.

    ``fit`` picks one kernel width for all neurons by leave-one-bin-out Poisson
    likelihood on the training spikes; ``predict`` smooths the spikes it is
    given with that width.

    Args:
        sigmas: candidate kernel widths in bins (all > 0).
        floor_fraction: rates are floored at this fraction of the mean training
            count per bin, so that every predicted rate is > 0.

    Attributes (after ``fit``):
        sigma_bins_: the chosen kernel width in bins.
        floor_: the rate floor in counts per bin.
        scores_: (len(sigmas),) leave-one-bin-out Poisson log-likelihood of the
            training spikes for each candidate width, in nats (without the
            ``log(k!)`` term, which does not depend on the width).
    """

    def __init__(self, sigmas: tuple[float, ...] = DEFAULT_SIGMAS, floor_fraction: float = 1e-3):
        self.sigmas = tuple(float(s) for s in sigmas)
        self.floor_fraction = float(floor_fraction)

    def fit(self, spikes: np.ndarray) -> GaussianSmoothing:
        """Choose the kernel width on training spikes (trials, time, neurons) in counts per bin."""
        if not self.sigmas or not all(math.isfinite(s) and s > 0 for s in self.sigmas):
            raise InputError(f"sigmas: must be a non-empty sequence of finite values > 0, got {self.sigmas}")
        if not (math.isfinite(self.floor_fraction) and self.floor_fraction > 0):
            raise InputError(f"floor_fraction: must be finite and > 0, got {self.floor_fraction}")
        spikes = _check_spikes(spikes)
        if spikes.shape[1] < 2:
            raise InputError(f"spikes: needs at least 2 time bins to choose a width, got {spikes.shape[1]}")
        mean_count = float(spikes.mean())
        if mean_count <= 0:
            raise InputError("spikes: holds no spikes, so no rate can be fitted")
        floor = self.floor_fraction * mean_count
        scores = []
        for sigma in self.sigmas:
            rates = np.maximum(_smooth(spikes, sigma, leave_centre_out=True), floor)
            scores.append(float(np.sum(xlogy(spikes, rates) - rates)))
        self.scores_ = np.asarray(scores)
        self.sigma_bins_ = self.sigmas[int(np.argmax(self.scores_))]
        self.floor_ = floor
        return self

    def predict(self, spikes: np.ndarray) -> np.ndarray:
        """Smoothed rates (trials, time, neurons), in counts per bin and > 0, of ``spikes``."""
        if not hasattr(self, "sigma_bins_"):
            raise InputError("GaussianSmoothing: predict called before fit")
        spikes = _check_spikes(spikes)
        return np.maximum(_smooth(spikes, self.sigma_bins_, leave_centre_out=False), self.floor_)
