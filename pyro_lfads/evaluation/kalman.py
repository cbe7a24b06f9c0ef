"""The neural Kalman-filter decoder of behaviour (Wu et al. 2006), next to OLE (Methods 5.1).

The state is the behaviour (kinematics) x_t (B,), the observation the features z_t (N,) at bin
t - lag_bins; bins are numbered from the first paired bin (bin lag_bins of the behaviour)::

    x_0 ~ N(x0_mean_, x0_cov_)
    x_t = A_ x_{t-1} + b_ + w_t,   w_t ~ N(0, W_)
    z_t = H_ x_t + d_ + q_t,       q_t ~ N(0, Q_)

The offsets b_ and d_ are the constant state component of Wu et al. written out. All parameters are
least-squares fits to the training trials: A_, b_, W_ to the transitions x_{t-1} -> x_t within a trial
(never across two trials; a transition with an unknown end is left out), H_, d_, Q_ to the known
(x_t, z_t) pairs, W_ and Q_ the residual covariances (maximum likelihood, divided by the number of
rows). x0_mean_ and x0_cov_ are the mean and covariance of the first paired bin's behaviour over the
training trials (over all known training bins where fewer than 2 trials know it, e.g. one long series).

Q_ is regularised: ``q_ridge`` x the mean variance of the features is added to its diagonal, so that
it stays invertible when many correlated features (150 rates of 20 factors) make the residual
covariance near-singular, or when there are fewer training bins than features.

Decoding runs the Kalman filter forward through each trial. Its gains depend on the parameters and
the bin, not on the data, so they are computed once per bin and applied to all trials at once.
"""

from __future__ import annotations

import numbers

import numpy as np

from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.linear_decoders import DEFAULT_FOLDS, LinearDecoder
from pyro_lfads.evaluation.ole import affine_least_squares

#: Default ridge on the observation noise covariance Q_, relative to the features' mean variance.
DEFAULT_Q_RIDGE = 1e-3


def _affine_with_noise(inputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``targets`` (rows, D) ~ ``inputs`` (rows, K) @ M.T + offset: M (D, K), offset (D,) and the residual
    covariance (D, D), by least squares."""
    coef, offset = affine_least_squares(inputs, targets)
    residual = targets - inputs @ coef - offset
    return coef.T, offset, residual.T @ residual / residual.shape[0]


class KalmanDecoder(LinearDecoder):
    """Kalman-filter decoder of behaviour (trials, T, B) from features (trials, T, N) (module docstring).

    Args:
        lag_bins: >= 0; the features at bin t - lag_bins observe the behaviour at bin t.
        folds: >= 2, folds over trials of the cross-validated R2 (default 5).
        q_ridge: >= 0, the ridge on Q_ relative to the features' mean variance.

    Fitted: ``A_`` (B, B), ``b_`` (B,), ``W_`` (B, B), ``H_`` (N, B), ``d_`` (N,), ``Q_`` (N, N),
    ``x0_mean_`` (B,), ``x0_cov_`` (B, B); in the units of the behaviour and the features.
    """

    method = "kalman"

    def __init__(self, lag_bins: int = 0, folds: int = DEFAULT_FOLDS, q_ridge: float = DEFAULT_Q_RIDGE) -> None:
        super().__init__(lag_bins=lag_bins, folds=folds)
        if isinstance(q_ridge, bool) or not isinstance(q_ridge, numbers.Real) or not 0 <= q_ridge < np.inf:
            raise InputError(f"q_ridge: must be a finite number >= 0, got {q_ridge!r}")
        self.q_ridge = float(q_ridge)

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        n_behavior = y.shape[2]
        known = ~np.isnan(y).any(axis=2)  # (trials, T')
        steps = known[:, :-1] & known[:, 1:]
        if steps.sum() < n_behavior + 1:
            raise InputError(f"behavior: {int(steps.sum())} transitions between known consecutive bins of a "
                             f"trial; the Kalman dynamics of {n_behavior} dims need at least {n_behavior + 1}")
        self.A_, self.b_, self.W_ = _affine_with_noise(y[:, :-1][steps], y[:, 1:][steps])
        self.H_, self.d_, residual_cov = _affine_with_noise(y[known], x[known])
        scale = float(x[known].var(axis=0).mean())
        if scale == 0:
            raise InputError("features: constant over the known training bins; nothing to decode from")
        self.Q_ = residual_cov + self.q_ridge * scale * np.eye(x.shape[2])
        first = y[:, 0][known[:, 0]]
        start = first if first.shape[0] >= 2 else y[known]
        self.x0_mean_ = start.mean(axis=0)
        self.x0_cov_ = np.atleast_2d(np.cov(start, rowvar=False, bias=True))

    def gains(self, n_bins: int) -> np.ndarray:
        """The Kalman gains K_t (n_bins, B, N) of bins 0 .. n_bins - 1: the filtered state is the
        predicted one plus K_t (z_t - H_ x_predicted - d_). They depend on no data."""
        cov = self.x0_cov_
        gains = np.empty((n_bins, *self.H_.T.shape))
        for t in range(n_bins):
            if t:
                cov = self.A_ @ cov @ self.A_.T + self.W_
            cov_h = self.H_ @ cov  # (N, B)
            try:
                gains[t] = np.linalg.solve(cov_h @ self.H_.T + self.Q_, cov_h).T  # P H' S^-1, S symmetric
            except np.linalg.LinAlgError:
                raise InputError("features: their noise covariance Q_ is singular; fit with q_ridge > 0") from None
            cov = cov - gains[t] @ cov_h
            cov = (cov + cov.T) / 2
        return gains

    def _predict(self, x: np.ndarray) -> np.ndarray:
        filtered = np.empty((*x.shape[:2], self.A_.shape[0]))
        state = np.broadcast_to(self.x0_mean_, filtered[:, 0].shape)
        for t, gain in enumerate(self.gains(x.shape[1])):
            if t:
                state = state @ self.A_.T + self.b_
            state = state + (x[:, t] - state @ self.H_.T - self.d_) @ gain.T
            filtered[:, t] = state
        return filtered
