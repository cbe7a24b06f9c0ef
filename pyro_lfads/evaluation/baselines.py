"""Baselines for rate inference: Gaussian smoothing, and the Neural Latents Benchmark (NLB) baselines.

Spikes and rates are numpy arrays of shape ``(trials, time, neurons)`` in
counts per bin. Smoothing runs along the time axis of each trial and neuron.

- :class:`GaussianSmoothing`: smoothed spike counts as rates.
- :class:`PoissonGLM`: multi-output Poisson regression from features to counts.
- :class:`SmoothingBaseline`: NLB's smoothing baseline, which maps features of the held-in spikes (log
  smoothed spikes) to held-out neurons and forward bins with Poisson GLMs (see :class:`NLBBaseline`);
  the GPFA baseline (:mod:`pyro_lfads.evaluation.gpfa_baseline`) shares that read-out.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod

import numpy as np
from scipy.special import xlogy
from sklearn.linear_model import PoissonRegressor
from sklearn.metrics import mean_poisson_deviance
from sklearn.model_selection import GroupShuffleSplit
from sklearn.preprocessing import StandardScaler

from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.metrics import smooth_over_time

DEFAULT_SIGMAS = tuple(float(s) for s in np.geomspace(0.5, 50.0, 15))
#: Candidate L2 penalties of the Poisson GLMs (on standardised features).
DEFAULT_GLM_ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
#: Linear predictors of PoissonGLM are clipped to this range, so rates are finite and > 0.
_LOG_RATE_BOUNDS = (-50.0, 50.0)


def _check_array(arr: np.ndarray, name: str, ndim: int, counts: bool) -> np.ndarray:
    """Return ``arr`` as float64 after checking it is ``ndim``-D, non-empty, finite, and >= 0 if ``counts``."""
    try:
        arr = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name}: cannot be read as an array of numbers") from None
    if arr.ndim != ndim:
        layout = "(trials, time, neurons)" if ndim == 3 else "(samples, columns)"
        raise InputError(f"{name}: expected a {ndim}-D array {layout}, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name}: is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name}: holds NaN or infinite values")
    if counts and np.any(arr < 0):
        raise InputError(f"{name}: holds negative values")
    return arr


def _check_spikes(spikes: np.ndarray, name: str = "spikes") -> np.ndarray:
    """Return ``spikes`` as float64 after checking it is 3-D, finite and non-negative."""
    return _check_array(spikes, name, 3, counts=True)


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
            rates = np.maximum(smooth_over_time(spikes, sigma, leave_centre_out=True), floor)
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
        return np.maximum(smooth_over_time(spikes, self.sigma_bins_), self.floor_)


class PoissonGLM:
    """Multi-output Poisson regression from features (samples, F) to counts (samples, N).

    One ``sklearn.linear_model.PoissonRegressor`` (log link, Newton-Cholesky
    solver) per output column, fitted on features standardised by a
    ``StandardScaler``. A regressor minimises the mean half Poisson deviance plus
    ``alpha / 2 * ||w||^2`` (``w`` in standardised units); each output's ``alpha``
    is the candidate with the lowest mean Poisson deviance on held-out training
    data: a fraction ``validation_fraction`` of the groups (trials), drawn by
    ``GroupShuffleSplit``, so that the bins of one trial are never on both sides.
    To keep the search fast, its fits use at most ``max_selection_samples``
    random rows of the remaining groups, and its deviances at most that many
    held-out rows; the final fit with the chosen alpha uses all rows.

    An output with no counts in the training data gets the constant rate
    ``0.5 / samples`` (half a pseudo-count) and alpha NaN; an output with no
    counts in the rows the search fits on gets the largest alpha.

    Cost: ``len(alphas) + 1`` regressor fits per output, a few ms each on
    thousands of rows and tens of features (about 2.5 s in all for 1e5 rows,
    30 features, 10 outputs and the default grid, on one core).

    Args:
        alphas: candidate penalties (finite, >= 0); with one candidate there is no search.
        validation_fraction: share of the groups held out to choose alpha, in (0, 1).
        max_selection_samples: the most rows used on each side of the search, >= 2.
        seed: random state of the split and of the row subsample.

    Attributes (after ``fit``):
        scaler_: the fitted ``StandardScaler``.
        alpha_: (N,) chosen penalty of each output.
        scores_: (N, len(alphas)) held-out mean Poisson deviance of each candidate
            (NaN where not computed).
        coef_: (N, F) weights per unit of the raw (unstandardised) features.
        intercept_: (N,) so that rates = exp(features @ coef_.T + intercept_),
            in counts per bin (the linear predictor is clipped to [-50, 50]).
    """

    def __init__(self, alphas: tuple[float, ...] = DEFAULT_GLM_ALPHAS, validation_fraction: float = 0.2,
                 max_selection_samples: int = 20_000, seed: int = 0):
        self.alphas = tuple(alphas)
        self.validation_fraction = validation_fraction
        self.max_selection_samples = max_selection_samples
        self.seed = seed

    def _check_params(self) -> np.ndarray:
        """Check the constructor arguments and return the alphas as a float64 array."""
        message = f"alphas: must be a non-empty sequence of finite values >= 0, got {list(self.alphas)}"
        try:
            alphas = np.asarray(self.alphas, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(message) from None
        if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas) & (alphas >= 0)):
            raise InputError(message)
        if not (isinstance(self.validation_fraction, numbers.Real) and 0 < self.validation_fraction < 1):
            raise InputError(f"validation_fraction: must be in (0, 1), got {self.validation_fraction!r}")
        max_rows = self.max_selection_samples
        if isinstance(max_rows, bool) or not isinstance(max_rows, numbers.Integral) or max_rows < 2:
            raise InputError(f"max_selection_samples: must be an integer >= 2, got {max_rows!r}")
        return alphas

    @staticmethod
    def _regressor(alpha: float) -> PoissonRegressor:
        return PoissonRegressor(alpha=float(alpha), solver="newton-cholesky")

    def _select_alphas(self, z: np.ndarray, y: np.ndarray, groups: np.ndarray,
                       alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Chosen alpha (N,) and held-out deviances (N, len(alphas)) for standardised features z (S, F)."""
        scores = np.full((y.shape[1], alphas.size), np.nan)
        chosen = np.where(y.any(axis=0), alphas.max(), np.nan)
        if alphas.size == 1:
            return chosen, scores
        if np.unique(groups).size < 2:
            raise InputError("groups: choosing alpha needs at least 2 groups (trials) in the training data")
        split = GroupShuffleSplit(n_splits=1, test_size=self.validation_fraction, random_state=self.seed)
        fit_rows, held_rows = next(split.split(z, groups=groups))
        rng = np.random.default_rng(self.seed)
        if fit_rows.size > self.max_selection_samples:
            fit_rows = rng.choice(fit_rows, self.max_selection_samples, replace=False)
        if held_rows.size > self.max_selection_samples:
            held_rows = rng.choice(held_rows, self.max_selection_samples, replace=False)
        for j in np.flatnonzero(y[fit_rows].any(axis=0)):
            for k, alpha in enumerate(alphas):
                regressor = self._regressor(alpha).fit(z[fit_rows], y[fit_rows, j])
                scores[j, k] = mean_poisson_deviance(y[held_rows, j], regressor.predict(z[held_rows]))
            chosen[j] = alphas[np.argmin(scores[j])]
        return chosen, scores

    def fit(self, features: np.ndarray, counts: np.ndarray, groups: np.ndarray | None = None) -> PoissonGLM:
        """Fit to features (samples, F) and counts (samples, N) in counts per bin; returns self.

        ``groups`` (samples,): the trial of each row, so that alpha is chosen on
        held-out trials; by default every row is its own group.
        """
        alphas = self._check_params()
        x = _check_array(features, "features", 2, counts=False)
        y = _check_array(counts, "counts", 2, counts=True)
        n_samples = x.shape[0]
        if y.shape[0] != n_samples:
            raise InputError(f"counts: has {y.shape[0]} rows, but features has {n_samples}")
        groups = np.arange(n_samples) if groups is None else np.asarray(groups)
        if groups.shape != (n_samples,):
            raise InputError(f"groups: expected shape ({n_samples},), one group per row, got {groups.shape}")
        self.scaler_ = StandardScaler().fit(x)
        z = self.scaler_.transform(x)
        self.alpha_, self.scores_ = self._select_alphas(z, y, groups, alphas)
        coef = np.zeros((y.shape[1], x.shape[1]))
        intercept = np.full(y.shape[1], np.log(0.5 / n_samples))
        for j in np.flatnonzero(y.any(axis=0)):
            regressor = self._regressor(self.alpha_[j]).fit(z, y[:, j])
            coef[j], intercept[j] = regressor.coef_, regressor.intercept_
        self.coef_ = coef / self.scaler_.scale_
        self.intercept_ = intercept - self.coef_ @ self.scaler_.mean_
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Rates (samples, N) in counts per bin, all > 0, for features (samples, F)."""
        if not hasattr(self, "coef_"):
            raise InputError("PoissonGLM: predict called before fit")
        x = _check_array(features, "features", 2, counts=False)
        if x.shape[1] != self.coef_.shape[1]:
            raise InputError(f"features: has {x.shape[1]} columns, but the GLM was fitted on {self.coef_.shape[1]}")
        return np.exp(np.clip(x @ self.coef_.T + self.intercept_, *_LOG_RATE_BOUNDS))


class NLBBaseline(ABC):
    """An NLB baseline: per-bin features of the held-in spikes, read out by Poisson GLMs.

    Subclasses define the features through ``_fit_features`` and ``_features``.
    All readouts are :class:`PoissonGLM` s fitted on the training trials:

    - held-in rates: a GLM from each bin's features to its held-in counts, unless
      the subclass sets ``glm_heldin = False`` and overrides ``_heldin_rates``;
    - held-out rates: a GLM from each bin's features to its held-out counts;
    - forward rates: a GLM from the features of the last observed bin to the
      counts of every neuron at every forward bin ``T + k``, one sample per
      trial; its outputs are the (k, neuron) pairs, so it is a separate Poisson
      GLM per forward offset k (T_fwd * (N_in + N_out) outputs: the slowest part
      when there are many forward bins).

    Args:
        glm_alphas: candidate L2 penalties of the GLMs (see :class:`PoissonGLM`).
        max_selection_samples: the most rows of each side of the GLMs' alpha search.
        seed: random state of the GLMs' alpha search (and of the feature model, if random).

    Attributes (after ``fit``):
        heldin_glm_, heldout_glm_, forward_glm_: the fitted GLMs, None where unused.
        n_heldin_, n_heldout_, n_forward_: N_in, N_out and T_fwd of the training data.
    """

    glm_heldin = True

    def __init__(self, glm_alphas: tuple[float, ...] = DEFAULT_GLM_ALPHAS, max_selection_samples: int = 20_000,
                 seed: int = 0):
        self.glm_alphas = tuple(glm_alphas)
        self.max_selection_samples = max_selection_samples
        self.seed = seed

    @abstractmethod
    def _fit_features(self, heldin: np.ndarray) -> None:
        """Fit the feature model to training held-in spikes (trials, T, N_in)."""

    @abstractmethod
    def _features(self, heldin: np.ndarray) -> np.ndarray:
        """Features (trials, T, F) of held-in spikes (trials, T, N_in)."""

    def _heldin_rates(self, heldin: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Held-in rates (trials, T, N_in) of held-in spikes, given their features (trials, T, F)."""
        n_trials, n_time, n_features = features.shape
        return self.heldin_glm_.predict(features.reshape(-1, n_features)).reshape(n_trials, n_time, -1)

    def _glm(self) -> PoissonGLM:
        return PoissonGLM(self.glm_alphas, max_selection_samples=self.max_selection_samples, seed=self.seed)

    def fit(self, train_heldin: np.ndarray, train_heldout: np.ndarray | None = None,
            train_forward: np.ndarray | None = None) -> NLBBaseline:
        """Fit the features and GLMs on training trials; returns self.

        Args:
            train_heldin: (trials, T, N_in) held-in spike counts per bin.
            train_heldout: (trials, T, N_out) held-out counts, or None for no held-out neurons.
            train_forward: (trials, T_fwd, N_in + N_out) counts of all neurons in the
                bins after the observed window, or None for no forward prediction.
        """
        heldin = _check_spikes(train_heldin, "train_heldin")
        n_trials, n_time, n_heldin = heldin.shape
        heldout = None
        if train_heldout is not None:
            heldout = _check_spikes(train_heldout, "train_heldout")
            if heldout.shape[:2] != (n_trials, n_time):
                raise InputError(f"train_heldout: (trials, time) {heldout.shape[:2]} differ from "
                                 f"train_heldin's {(n_trials, n_time)}")
        n_heldout = 0 if heldout is None else heldout.shape[2]
        forward = None
        if train_forward is not None:
            forward = _check_spikes(train_forward, "train_forward")
            if forward.shape[0] != n_trials or forward.shape[2] != n_heldin + n_heldout:
                raise InputError(f"train_forward: expected ({n_trials}, T_fwd, {n_heldin + n_heldout}) "
                                 f"(trials, forward bins, held-in + held-out neurons), got {forward.shape}")
        self._fit_features(heldin)
        features = self._features(heldin)
        flat = features.reshape(n_trials * n_time, -1)
        groups = np.repeat(np.arange(n_trials), n_time)
        self.heldin_glm_ = self._glm().fit(flat, heldin.reshape(n_trials * n_time, -1), groups) \
            if self.glm_heldin else None
        self.heldout_glm_ = None if heldout is None else \
            self._glm().fit(flat, heldout.reshape(n_trials * n_time, -1), groups)
        self.forward_glm_ = None if forward is None else \
            self._glm().fit(features[:, -1], forward.reshape(n_trials, -1))
        self.n_heldin_, self.n_heldout_ = n_heldin, n_heldout
        self.n_forward_ = 0 if forward is None else forward.shape[1]
        return self

    def predict(self, eval_heldin: np.ndarray) -> np.ndarray:
        """Rates (trials, T + T_fwd, N_in + N_out) in counts per bin, all > 0, from held-in spikes.

        ``eval_heldin``: (trials, T, N_in) held-in counts per bin (T may differ
        from training). Neurons: held-in then held-out; bins: observed then forward.
        """
        if not hasattr(self, "n_heldin_"):
            raise InputError(f"{type(self).__name__}: predict called before fit")
        heldin = _check_spikes(eval_heldin, "eval_heldin")
        n_trials, n_time, n_heldin = heldin.shape
        if n_heldin != self.n_heldin_:
            raise InputError(f"eval_heldin: has {n_heldin} neurons, but the baseline was fitted on {self.n_heldin_}")
        features = self._features(heldin)
        observed = [self._heldin_rates(heldin, features)]
        if self.heldout_glm_ is not None:
            flat = features.reshape(n_trials * n_time, -1)
            observed.append(self.heldout_glm_.predict(flat).reshape(n_trials, n_time, -1))
        rates = np.concatenate(observed, axis=2)
        if self.forward_glm_ is None:
            return rates
        forward = self.forward_glm_.predict(features[:, -1]).reshape(n_trials, self.n_forward_, -1)
        return np.concatenate([rates, forward], axis=1)


class SmoothingBaseline(NLBBaseline):
    """NLB's spike-smoothing baseline.

    Held-in rates are the Gaussian-smoothed held-in spikes themselves
    (:class:`GaussianSmoothing`, one width chosen by leave-one-bin-out Poisson
    likelihood on the training held-in spikes). The GLM features are their log
    (as in NLB, which uses ``log(smoothed + 1e-4)``; here the smoothing's rate
    floor keeps the log finite instead).

    Args:
        sigmas: candidate kernel widths in bins (see :class:`GaussianSmoothing`).
        glm_alphas, max_selection_samples, seed: see :class:`NLBBaseline`.

    Attributes (after ``fit``): smoothing_: the fitted :class:`GaussianSmoothing`.
    """

    glm_heldin = False

    def __init__(self, sigmas: tuple[float, ...] = DEFAULT_SIGMAS, glm_alphas: tuple[float, ...] = DEFAULT_GLM_ALPHAS,
                 max_selection_samples: int = 20_000, seed: int = 0):
        super().__init__(glm_alphas, max_selection_samples, seed)
        self.sigmas = tuple(sigmas)

    def _fit_features(self, heldin: np.ndarray) -> None:
        self.smoothing_ = GaussianSmoothing(self.sigmas).fit(heldin)

    def _features(self, heldin: np.ndarray) -> np.ndarray:
        return np.log(self.smoothing_.predict(heldin))

    def _heldin_rates(self, heldin: np.ndarray, features: np.ndarray) -> np.ndarray:
        return self.smoothing_.predict(heldin)
