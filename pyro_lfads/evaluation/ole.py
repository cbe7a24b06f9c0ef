"""Optimal linear estimation (OLE; Salinas & Abbott 1994), the decoder of the paper's Fig. 2 (Methods 5.1).

The least-squares affine map from features at bin t - lag_bins to behaviour at bin t, fitted on every
known bin of the training trials, with no penalty; the paper scores it by 5-fold cross-validation over
trials (:meth:`~pyro_lfads.evaluation.linear_decoders.LinearDecoder.cross_validated_r2`).
"""

from __future__ import annotations

import numpy as np

from pyro_lfads.evaluation.linear_decoders import LinearDecoder


def affine_least_squares(inputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares ``coef`` (K, D) and ``intercept`` (D,) of ``targets`` (rows, D) ~ ``inputs`` (rows, K)
    @ coef + intercept; the minimum-norm solution where ``inputs`` are collinear."""
    inputs_mean, targets_mean = inputs.mean(axis=0), targets.mean(axis=0)
    coef, *_ = np.linalg.lstsq(inputs - inputs_mean, targets - targets_mean, rcond=None)
    return coef, targets_mean - inputs_mean @ coef


class OLEDecoder(LinearDecoder):
    """OLE decoder of behaviour (trials, T, B) from features (trials, T, N): behaviour at bin t =
    features at t - lag_bins @ ``coef_`` (N, B) + ``intercept_`` (B,).

    Args:
        lag_bins: >= 0; behaviour at bin t is decoded from features at bin t - lag_bins.
        folds: >= 2, folds over trials of the cross-validated R2 (default 5).
    """

    method = "ole"

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        known = ~np.isnan(y).any(axis=2)
        self.coef_, self.intercept_ = affine_least_squares(x[known], y[known])

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coef_ + self.intercept_
