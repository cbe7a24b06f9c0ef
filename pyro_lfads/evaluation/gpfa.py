"""Gaussian-process factor analysis (GPFA, Yu et al. 2009), fitted by EM.

Reference: B. M. Yu, J. P. Cunningham, G. Santhanam, S. I. Ryu, K. V. Shenoy
and M. Sahani (2009), "Gaussian-process factor analysis for low-dimensional
single-trial analysis of neural population activity", J Neurophysiol 102.

Shapes: ``N`` trials, ``T`` time bins, ``q`` neurons, ``p`` latents. Spikes are
numpy arrays ``(N, T, q)`` of counts per bin.

Observations. With ``preprocess="sqrt"`` (the default) the model sees
``y = sqrt(spikes)``, the variance-stabilising transform Yu et al. recommend
for Poisson-like counts; with ``preprocess="none"`` it sees the array as given
(any real values), which is the model's own Gaussian case.

Model, for each trial and bin ``t``::

    y_t = C x_t + d + e_t,      e_t ~ N(0, R),  R = diag(R_1..R_q)
    x_i,: ~ N(0, K_i)            independently for each latent i = 1..p
    K_i[t1, t2] = (1 - eps) exp(-(t1 - t2)^2 / (2 tau_i^2)) + eps delta(t1, t2)

with ``C`` (q, p), ``d`` (q,), ``tau_i`` in bins and ``eps = 1e-3`` fixed.

Stacking one trial latent-major, ``xbar = [x_1,:; ...; x_p,:]`` (pT,), the
prior is ``N(0, Kbar)`` with ``Kbar = blockdiag(K_1..K_p)``, and the
observation term contributes the precision ``(C^T R^-1 C) kron I_T``. The exact
posterior of a trial is therefore Gaussian with::

    P     = Kbar^-1 + (C^T R^-1 C) kron I_T         (pT, pT) posterior precision
    b     = vec over (i, t) of [C^T R^-1 (y_t - d)]_i (pT,)
    mean  = P^-1 b,    cov = P^-1

``P`` depends on ``T`` but not on the data, so all trials of one length share
it: it is factorised once per EM iteration (Cholesky) and applied to every
trial at once. The data log-likelihood of one trial, ``y ~ N(d, C K C^T + R)``
over all bins, follows from the determinant and inversion lemmas::

    log p(y) = -1/2 [ qT log 2pi + T sum_j log R_j + sum_i log|K_i| + log|P|
                      + sum_{t,j} (y_tj - d_j)^2 / R_j - b^T P^-1 b ]

EM. The E-step computes the posterior above and the log-likelihood of the
current parameters. The M-step maximises the expected complete-data
log-likelihood:

- ``[C d]`` jointly by least squares: ``[C d] = (sum y [E x; 1]^T)
  (sum E[[x; 1][x; 1]^T])^-1``, sums over trials and bins;
- ``R_j = (sum y_j^2 - [C d]_j . sum y_j [E x; 1]) / (N T)``, floored at
  ``1e-3`` times neuron j's variance over all bins (neurons that never vary use
  the mean variance over neurons instead), so that no neuron's noise collapses;
- each ``tau_i`` separately by L-BFGS-B on ``log tau_i`` (bounded to
  ``[1, 1e4]`` bins: a latent faster than one bin is white noise in every bin, a
  per-bin copy of the spikes rather than a trajectory, and its gradient
  vanishes), minimising ``1/2 [log|K_i| + tr(K_i^-1 S_i)]`` with
  ``S_i = E[x_i,: x_i,:^T]`` averaged over trials, with the analytic gradient
  ``1/2 tr[(K_i^-1 - K_i^-1 S_i K_i^-1) dK_i/dlog tau_i]`` (Yu et al.,
  appendix). A new ``tau_i`` is kept only if it lowers that objective, so every
  iteration is a generalised EM step and the log-likelihood cannot decrease.

Initialisation: ``C``, ``d``, ``R`` by factor analysis of all bins pooled
(scikit-learn ``FactorAnalysis``). Factor analysis fixes ``C`` only up to an
orthogonal rotation of the latents; the rotation is chosen so that the latents'
lag-1 autocovariances are uncorrelated (a second-order blind source
separation, see ``_timescale_init``), and each ``tau_i`` starts at the value its
lag-1 autocorrelation implies, clipped to [1, T] bins. Starting all latents at
one common tau instead leaves EM near a rotation-symmetric saddle, where it
spends hundreds of iterations separating the timescales.

Orthonormalised latents (Yu et al., section 2.4): with the SVD ``C = U S V^T``,
``transform`` reports ``S V^T E[x_t]``. Then ``C x_t = U (S V^T x_t)`` with
orthonormal columns of ``U``, and the dimensions are ordered by the singular
values of ``C``, i.e. by how much data covariance each explains under the prior
(unit variance per latent); the empirical variances of the posterior means
follow that order only approximately when singular values are close.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize
from sklearn.decomposition import FactorAnalysis
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from pyro_lfads.errors import InputError

EPS = 1e-3  # white-noise fraction of each GP kernel, fixed as in Yu et al.
LOG_TAU_BOUNDS = (np.log(1.0), np.log(1e4))  # timescales are kept in [1, 1e4] bins: at least the bin width
VAR_FLOOR_FRACTION = 1e-3  # R_j >= this fraction of neuron j's variance
PREPROCESSES = ("sqrt", "none")


def _se_kernel(log_tau: float, n_time: int) -> tuple[np.ndarray, np.ndarray]:
    """GP kernel K (T, T) of one latent and its derivative dK/dlog tau (T, T); tau in bins."""
    tau = np.exp(log_tau)
    lags = np.arange(n_time, dtype=np.float64)
    sq_lags = (lags[:, None] - lags[None, :]) ** 2 / tau**2
    smooth = (1.0 - EPS) * np.exp(-0.5 * sq_lags)
    return smooth + EPS * np.eye(n_time), smooth * sq_lags


def _tau_objective(log_tau: np.ndarray, second_moment: np.ndarray) -> tuple[float, np.ndarray]:
    """Negative expected GP log-prior of one latent per trial (up to a constant), and its gradient.

    ``second_moment`` is E[x_i,: x_i,:^T] (T, T) averaged over trials; the value is
    ``1/2 [log|K| + tr(K^-1 S)]`` and the gradient is with respect to ``log tau``.
    """
    n_time = second_moment.shape[0]
    kernel, d_kernel = _se_kernel(float(log_tau[0]), n_time)
    factor = cho_factor(kernel, lower=True)
    kernel_inv = cho_solve(factor, np.eye(n_time))
    log_det = 2.0 * np.sum(np.log(np.diag(factor[0])))
    weighted = cho_solve(factor, second_moment)  # K^-1 S
    value = 0.5 * (log_det + np.trace(weighted))
    grad = 0.5 * np.sum((kernel_inv - weighted @ kernel_inv) * d_kernel)
    return float(value), np.array([grad])


def _timescale_init(y: np.ndarray, loading: np.ndarray, offset: np.ndarray,
                    noise_var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate factor-analysis loadings (q, p) towards the GP latents; return them and initial taus (p,) in bins.

    Under the model the lag-1 autocovariance of y (N, T, q), T >= 2, is ``C diag(rho) C^T``
    (the noise is white), with ``rho_i = (1 - eps) exp(-1 / (2 tau_i^2))``. Mapped into latent
    space by the noise-weighted pseudo-inverse G of ``loading``, it is diagonalised by an
    orthogonal Q, which leaves the factor-analysis likelihood unchanged; ``loading @ Q``
    starts EM with latents separated by timescale (a second-order blind source separation).
    Each tau is solved from its rho and clipped to [1, T] bins.
    """
    centred = y - offset
    lag1 = np.einsum("ntj,ntk->jk", centred[:, :-1], centred[:, 1:]) / (y.shape[0] * (y.shape[1] - 1))
    scale = np.sqrt(noise_var)
    pseudo_inverse = np.linalg.pinv(loading / scale[:, None]) / scale[None, :]  # (p, q)
    rho, rotation = np.linalg.eigh(pseudo_inverse @ (0.5 * (lag1 + lag1.T)) @ pseudo_inverse.T)
    ratio = np.clip(rho / (1.0 - EPS), 1e-12, 1.0 - 1e-12)
    tau = np.clip(np.sqrt(-0.5 / np.log(ratio)), np.exp(LOG_TAU_BOUNDS[0]), y.shape[1])
    return loading @ rotation, tau


class GPFA:
    """Gaussian-process factor analysis of spike counts, fitted by EM (see the module docstring).

    Args:
        n_latents: number of latent dimensions p, 1 <= p <= neurons.
        max_iter: the most EM iterations (M-steps) to run, >= 1.
        tol: EM stops when |change in log-likelihood| < tol * |log-likelihood|.
        seed: random state of the factor-analysis initialisation.
        progress: show a tqdm progress bar over EM iterations.
        preprocess: ``"sqrt"`` models the square root of the counts (Yu et al.'s
            recommendation; counts must be >= 0); ``"none"`` models the values as given.

    Attributes (after ``fit``):
        C_: (q, p) loading matrix. d_: (q,) offset. R_: (q,) diagonal noise
            variances, all in units of the preprocessed observations.
        tau_: (p,) GP timescales in bins.
        n_iter_: number of EM iterations (M-steps) run.
        log_likelihoods_: list of n_iter_ + 1 data log-likelihoods in nats of the
            preprocessed training observations: at the initialisation, then after
            each iteration; the last belongs to the returned parameters.
    """

    def __init__(self, n_latents: int = 8, max_iter: int = 200, tol: float = 1e-6, seed: int = 0,
                 progress: bool = False, preprocess: str = "sqrt"):
        if isinstance(n_latents, bool) or not isinstance(n_latents, (int, np.integer)) or n_latents < 1:
            raise InputError(f"n_latents: must be an integer >= 1, got {n_latents!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
            raise InputError(f"max_iter: must be an integer >= 1, got {max_iter!r}")
        if not (isinstance(tol, (int, float)) and np.isfinite(tol) and tol >= 0):
            raise InputError(f"tol: must be a finite number >= 0, got {tol!r}")
        if preprocess not in PREPROCESSES:
            raise InputError(f"preprocess: must be one of {PREPROCESSES}, got {preprocess!r}")
        self.n_latents = int(n_latents)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.seed = seed
        self.progress = progress
        self.preprocess = preprocess

    def _observations(self, spikes: np.ndarray) -> np.ndarray:
        """Check ``spikes`` (N, T, q) and return the preprocessed observations y (N, T, q), float64."""
        try:
            spikes = np.asarray(spikes, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError("spikes: cannot be read as an array of numbers") from None
        if spikes.ndim != 3:
            raise InputError(f"spikes: expected a 3-D array (trials, time, neurons), got shape {spikes.shape}")
        if spikes.size == 0:
            raise InputError(f"spikes: is empty (shape {spikes.shape})")
        if not np.all(np.isfinite(spikes)):
            raise InputError("spikes: holds NaN or infinite values")
        if self.preprocess == "sqrt":
            if np.any(spikes < 0):
                raise InputError("spikes: holds negative values; counts must be >= 0 (or use preprocess='none')")
            return np.sqrt(spikes)
        return spikes

    def _prior_precision(self, n_time: int) -> tuple[np.ndarray, float]:
        """The prior precision Kbar^-1 (pT, pT) for T = n_time, latent-major, and sum_i log|K_i|."""
        p = self.n_latents
        precision = np.zeros((p * n_time, p * n_time))
        log_det_prior = 0.0
        for i in range(p):
            kernel_factor = cho_factor(_se_kernel(np.log(self.tau_[i]), n_time)[0], lower=True)
            block = slice(i * n_time, (i + 1) * n_time)
            precision[block, block] = cho_solve(kernel_factor, np.eye(n_time))
            log_det_prior += 2.0 * np.sum(np.log(np.diag(kernel_factor[0])))
        return precision, log_det_prior

    def _precision(self, n_time: int, keep=slice(None)) -> tuple[tuple[np.ndarray, bool], float]:
        """Cholesky factor of the posterior precision P (pT, pT) for T = n_time given the neurons ``keep``
        (all by default), and sum_i log|K_i|."""
        prior, log_det_prior = self._prior_precision(n_time)
        loading = self.C_[keep]
        precision = prior + np.kron(loading.T @ (loading / self.R_[keep][:, None]), np.eye(n_time))
        return cho_factor(precision, lower=True), log_det_prior

    def _posterior_mean(self, y: np.ndarray, factor: tuple[np.ndarray, bool],
                        keep=slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means (N, p*T), latent-major, and the projected data b (N, p*T) of y (N, T, q), given the
        neurons ``keep`` (all by default; ``factor`` from :meth:`_precision` with the same ``keep``)."""
        n_trials = y.shape[0]
        projected = np.einsum("ntj,ji->nit", (y[:, :, keep] - self.d_[keep]) / self.R_[keep], self.C_[keep])
        projected = projected.reshape(n_trials, -1)
        return cho_solve(factor, projected.T).T, projected

    def _e_step(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Posterior means (N, p, T), shared posterior covariance (pT, pT), and the data log-likelihood (nats)."""
        n_trials, n_time, n_neurons = y.shape
        factor, log_det_prior = self._precision(n_time)
        mean, projected = self._posterior_mean(y, factor)
        cov = cho_solve(factor, np.eye(factor[0].shape[0]))
        log_det_precision = 2.0 * np.sum(np.log(np.diag(factor[0])))
        per_trial = (n_time * n_neurons * np.log(2.0 * np.pi) + n_time * np.sum(np.log(self.R_))
                     + log_det_prior + log_det_precision)
        quad = np.sum((y - self.d_) ** 2 / self.R_) - np.sum(projected * mean)
        log_likelihood = -0.5 * (n_trials * per_trial + quad)
        return mean.reshape(n_trials, self.n_latents, n_time), cov, float(log_likelihood)

    def _m_step(self, y: np.ndarray, mean: np.ndarray, cov: np.ndarray, var_floor: np.ndarray) -> None:
        """Update C_, d_, R_ and tau_ from y (N, T, q), posterior means (N, p, T) and covariance (pT, pT)."""
        n_trials, n_time, _ = y.shape
        p = self.n_latents
        cov4 = cov.reshape(p, n_time, p, n_time)
        x = mean.transpose(0, 2, 1).reshape(-1, p)  # (N T, p), bins pooled
        y_flat = y.reshape(-1, y.shape[2])
        x1 = np.hstack([x, np.ones((x.shape[0], 1))])
        moment = x1.T @ x1
        moment[:p, :p] += n_trials * np.einsum("itjt->ij", cov4)
        cross = y_flat.T @ x1  # (q, p + 1)
        loading = cho_solve(cho_factor(moment, lower=True), cross.T).T
        self.C_, self.d_ = loading[:, :p], loading[:, p]
        residual = np.sum(y_flat**2, axis=0) - np.sum(loading * cross, axis=1)
        self.R_ = np.maximum(residual / x.shape[0], var_floor)
        for i in range(p):
            second_moment = mean[:, i, :].T @ mean[:, i, :] / n_trials + cov4[i, :, i, :]
            start = np.array([np.log(self.tau_[i])])
            result = minimize(_tau_objective, start, args=(second_moment,), jac=True, method="L-BFGS-B",
                              bounds=[LOG_TAU_BOUNDS])
            if result.fun < _tau_objective(start, second_moment)[0]:
                self.tau_[i] = float(np.exp(result.x[0]))

    def fit(self, spikes: np.ndarray) -> GPFA:
        """Fit C_, d_, R_, tau_ by EM to spikes (N, T, q), counts per bin; returns self.

        EM runs with one BLAS thread: its (T, T) and (pT, pT) products are too small to share, and on two
        cores two threads made a fit three times slower (13.2 s against 4.3 s for 50 iterations of 8
        latents, 1040 trials of 50 bins)."""
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(spikes)

    def _fit(self, spikes: np.ndarray) -> GPFA:
        y = self._observations(spikes)
        n_trials, n_time, n_neurons = y.shape
        if n_time < 2:
            raise InputError(f"spikes: needs at least 2 time bins per trial to fit GPFA, got {n_time}")
        if self.n_latents > n_neurons:
            raise InputError(f"n_latents: must be <= the number of neurons ({n_neurons}), got {self.n_latents}")
        y_flat = y.reshape(-1, n_neurons)
        variance = y_flat.var(axis=0)
        if not np.any(variance > 0):
            raise InputError("spikes: every neuron is constant over all trials and bins; nothing to model")
        var_floor = VAR_FLOOR_FRACTION * np.where(variance > 0, variance, variance.mean())

        fa = FactorAnalysis(n_components=self.n_latents, random_state=self.seed).fit(y_flat)
        self.d_ = fa.mean_.copy()
        self.R_ = np.maximum(fa.noise_variance_, var_floor)
        self.C_, self.tau_ = _timescale_init(y, fa.components_.T, self.d_, self.R_)
        self.log_likelihoods_ = []
        self.n_iter_ = 0

        bar = tqdm(total=self.max_iter, desc="GPFA EM", disable=not self.progress)
        while True:
            mean, cov, log_likelihood = self._e_step(y)
            self.log_likelihoods_.append(log_likelihood)
            bar.set_postfix(log_likelihood=f"{log_likelihood:.6g}")
            if self.n_iter_ == self.max_iter:
                break
            if len(self.log_likelihoods_) > 1:
                change = abs(log_likelihood - self.log_likelihoods_[-2])
                if change < self.tol * abs(self.log_likelihoods_[-2]):
                    break
            self._m_step(y, mean, cov, var_floor)
            self.n_iter_ += 1
            bar.update(1)
        bar.close()
        return self

    def _fitted_observations(self, spikes: np.ndarray) -> np.ndarray:
        """The preprocessed observations y (N, T, q) of spikes that match the fitted model's neurons."""
        if not hasattr(self, "C_"):
            raise InputError("GPFA: called before fit")
        y = self._observations(spikes)
        if y.shape[2] != self.C_.shape[0]:
            raise InputError(f"spikes: has {y.shape[2]} neurons, but GPFA was fitted on {self.C_.shape[0]}")
        return y

    def _orthonormalised(self, mean: np.ndarray) -> np.ndarray:
        """Latent-major posterior means (N, p*T) -> orthonormalised latents (N, T, p), S V^T E[x_t]."""
        latents = mean.reshape(mean.shape[0], self.n_latents, -1).transpose(0, 2, 1)
        _, singular_values, vt = np.linalg.svd(self.C_, full_matrices=False)
        return latents @ (singular_values[:, None] * vt).T

    def transform(self, spikes: np.ndarray) -> np.ndarray:
        """Orthonormalised posterior-mean latents (N, T, p) of spikes (N, T, q); N and T may differ from fit."""
        y = self._fitted_observations(spikes)
        factor, _ = self._precision(y.shape[1])
        return self._orthonormalised(self._posterior_mean(y, factor)[0])

    def _left_out_mean(self, y: np.ndarray, neuron: int) -> np.ndarray:
        """Posterior means (N, p*T), latent-major, of observations y (N, T, q) given every neuron but ``neuron``."""
        _, n_time, n_neurons = y.shape
        if not 0 <= neuron < n_neurons:
            raise InputError(f"neuron: must be in [0, {n_neurons}), got {neuron}")
        keep = np.arange(n_neurons) != neuron
        factor, _ = self._precision(n_time, keep)
        return self._posterior_mean(y, factor, keep)[0]

    def leave_neuron_out(self, spikes: np.ndarray, neuron: int) -> np.ndarray:
        """Latents (N, T, p) of spikes (N, T, q) inferred from every neuron but ``neuron`` (Yu et al.'s
        leave-neuron-out prediction), in :meth:`transform`'s orthonormalised basis.

        A rate of ``neuron`` read out of them is out of sample for its own spikes: it never saw them.
        """
        return self._orthonormalised(self._left_out_mean(self._fitted_observations(spikes), neuron))

    def leave_neuron_out_error(self, spikes: np.ndarray) -> float:
        """Yu et al.'s leave-neuron-out prediction error of spikes (N, T, q): the squared error of each
        neuron's observation (preprocessed, see ``preprocess``) predicted as ``C_j x + d_j`` from the
        latents inferred without it, summed over bins and neurons, mean per trial. Unlike :meth:`score`
        it cannot be lowered by latents that copy a neuron's own noise, so it picks ``n_latents``."""
        y = self._fitted_observations(spikes)
        n_trials, n_time, n_neurons = y.shape
        error = 0.0
        for j in range(n_neurons):
            latents = self._left_out_mean(y, j).reshape(n_trials, self.n_latents, n_time)
            predicted = np.einsum("npt,p->nt", latents, self.C_[j]) + self.d_[j]
            error += float(np.sum((y[:, :, j] - predicted) ** 2))
        return error / n_trials

    def score(self, spikes: np.ndarray) -> float:
        """Mean data log-likelihood per trial (nats, of the preprocessed observations) of spikes (N, T, q) under
        the fitted model: on trials the model was not fitted to, the criterion that picks ``n_latents``."""
        y = self._fitted_observations(spikes)
        return self._e_step(y)[2] / y.shape[0]
