"""Behaviour decoded from a continuous recording's merged series (:mod:`pyro_lfads.data.continuous`).

A ridge decoder maps rates (or factors) at bin ``t - lag_bins`` to behaviour at bin ``t`` of the merged
series. It is fitted on the bins only training windows hold, its penalty chosen by cross-validation
over contiguous stretches of them (unshuffled ``KFold``: folds are blocks of time, so that neighbouring
bins do not sit on both sides of a fold), and scored on the bins only validation windows hold; bins at
the seams between the two are left out of both. An OLE or Kalman decoder
(:class:`~pyro_lfads.evaluation.linear_decoders.LinearDecoder`) reads the merged series as one long
trial: fitted on the behaviour of those training bins (the rest masked as unknown; the Kalman dynamics
only from transitions inside training stretches), run over the whole series, scored on those
validation bins.
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, KFold

from pyro_lfads.data import LFADSDataset
from pyro_lfads.data.atomic_files import atomic_hdf5
from pyro_lfads.data.continuous import merge_splits, split_bins
from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.linear_decoders import LinearDecoder, behavior_r2
from pyro_lfads.evaluation.metrics import DEFAULT_RIDGE_ALPHAS
from pyro_lfads.fitting.derived_files import DECODING_FILE
from pyro_lfads.fitting.posterior import posterior_source, read_posterior
from pyro_lfads.fitting.run import Run

#: What a decoder reads: posterior mean rates or factors, by their posterior file key.
SOURCES = {"rates": "output_params", "factors": "factors"}


def _rows(features: np.ndarray, behavior: np.ndarray, bins: np.ndarray, lag_bins: int) -> np.ndarray:
    """Bins t (rows,) whose pair (features[t - lag_bins], behavior[t]) is known, with t and t - lag_bins in
    ``bins``, in time order."""
    t = np.arange(lag_bins, behavior.shape[0])
    keep = bins[t] & bins[t - lag_bins] & ~np.isnan(behavior[t]).any(1) & ~np.isnan(features[t - lag_bins]).any(1)
    return t[keep]


def fit_continuous_decoder(features: np.ndarray, behavior: np.ndarray, train_bins: np.ndarray, *,
                           lag_bins: int = 0, alphas: tuple[float, ...] = DEFAULT_RIDGE_ALPHAS,
                           cv: int = 5) -> Ridge:
    """A ridge decoder of ``behavior`` (bins, B) from ``features`` (bins, N) (e.g. merged rates, counts per
    bin), fitted on the bins where ``train_bins`` (bins,) bool is True; penalty by ``cv`` contiguous folds.
    NaN in either marks an unknown bin, left out."""
    if isinstance(lag_bins, bool) or not isinstance(lag_bins, numbers.Integral) or lag_bins < 0:
        raise InputError(f"lag_bins: must be an integer >= 0, got {lag_bins!r}")
    features, behavior = np.asarray(features, dtype=np.float64), np.asarray(behavior, dtype=np.float64)
    if features.ndim != 2 or behavior.ndim != 2 or features.shape[0] != behavior.shape[0]:
        raise InputError(f"features, behavior: expected (bins, N) and (bins, B) with the same bins, got shapes "
                         f"{features.shape} and {behavior.shape}")
    rows = _rows(features, behavior, np.asarray(train_bins, dtype=bool), int(lag_bins))
    if rows.size < 2 * cv:
        raise InputError(f"train_bins: {rows.size} training bins with known behaviour; need at least {2 * cv}")
    search = GridSearchCV(Ridge(), {"alpha": list(alphas)}, scoring="r2", cv=KFold(cv))
    search.fit(features[rows - lag_bins], behavior[rows])
    return search.best_estimator_


def continuous_r2(decoder: Ridge, features: np.ndarray, behavior: np.ndarray, eval_bins: np.ndarray, *,
                  lag_bins: int = 0) -> float:
    """R2 of ``decoder`` on the bins of ``eval_bins`` (bins,) bool, each behaviour dimension's R2 over those
    bins averaged over dimensions (as :func:`pyro_lfads.evaluation.metrics.velocity_r2`)."""
    features, behavior = np.asarray(features, dtype=np.float64), np.asarray(behavior, dtype=np.float64)
    rows = _rows(features, behavior, np.asarray(eval_bins, dtype=bool), int(lag_bins))
    if rows.size < 2:
        raise InputError(f"eval_bins: {rows.size} evaluation bins with known behaviour; need at least 2")
    return float(r2_score(behavior[rows], decoder.predict(features[rows - lag_bins]), multioutput="uniform_average"))


def _paired(bins: np.ndarray, lag_bins: int) -> np.ndarray:
    """(bins,) bool: bins t >= lag_bins with t and t - lag_bins both in ``bins`` (bins,) bool."""
    paired = np.zeros_like(bins)
    paired[lag_bins:] = bins[lag_bins:] & bins[: bins.size - lag_bins]
    return paired


def series_r2(decoder: LinearDecoder, features: np.ndarray, behavior: np.ndarray, train_bins: np.ndarray,
              eval_bins: np.ndarray) -> tuple[float, np.ndarray]:
    """Fit ``decoder`` on the bins of ``train_bins`` (bins,) bool of the series ``features`` (bins, N) and
    ``behavior`` (bins, B), score it on those of ``eval_bins``; returns the R2 (as :func:`continuous_r2`) and
    the decoded behaviour (bins, B) of every bin, NaN before ``decoder.lag_bins``."""
    lag = decoder.lag_bins
    if np.isnan(features).any():
        raise InputError(f"features: {int(np.isnan(features).any(1).sum())} bins of the merged series are unknown; "
                         f"method '{decoder.method}' needs every bin; use method 'ridge'")
    unknown = np.full_like(behavior, np.nan)
    decoder.fit(features[None], np.where(_paired(train_bins, lag)[:, None], behavior, unknown)[None])
    predicted = np.full(behavior.shape, np.nan)
    predicted[lag:] = decoder.predict(features[None])[0]
    return behavior_r2(np.where(_paired(eval_bins, lag)[:, None], behavior, unknown)[None, lag:],
                       predicted[None, lag:]), predicted


def decode_merged(run: Run | str | Path, dataset: LFADSDataset, *, decoder: LinearDecoder | None = None,
                  source: str = "rates", lag_bins: int = 0, session: int = 0, data_sha256: str | None = None) -> dict:
    """Decode ``dataset``'s behaviour (``{split}_behavior``) from the run's merged posterior series of
    ``source`` (:data:`SOURCES`) with the ridge decoder, or with ``decoder`` (an unfitted OLE or Kalman
    decoder of lag ``lag_bins``); write RUN_DIR/decoding.h5 (``decoding_session{k}.h5``); return the figures.

    Returns:
        ``{"method", "from", "lag_bins", "vel_r2", "alpha", "n_train_bins", "n_valid_bins"}`` (no ``alpha``
        but for the ridge). ``decoding.h5`` holds ``continuous_behavior_pred`` (bins, B), the decoded
        behaviour of every bin (NaN before ``lag_bins`` and where the series is unknown), with ``method``,
        ``alpha``, ``lag_bins``, ``vel_r2`` and the posterior file's record of what it was made from as
        attributes.
    """
    if decoder is not None and decoder.lag_bins != lag_bins:
        raise InputError(f"decoder: its lag_bins {decoder.lag_bins} differ from lag_bins {lag_bins}")
    run = Run.open(run)
    key = SOURCES[source]
    merged = read_posterior(run, "continuous", session, data_sha256=data_sha256)
    if key not in merged:
        raise InputError(f"{run.directory}: its posterior file has no merged series continuous_{key}; rerun "
                         f"write_posterior on {run.directory}")
    features = merged[key]
    behavior = merge_splits(dataset, dataset.extras["train_behavior"][:, :dataset.train.n_time],
                            dataset.extras["valid_behavior"][:, :dataset.valid.n_time])
    train_bins, valid_bins = split_bins(dataset)
    if decoder is None:
        ridge = fit_continuous_decoder(features, behavior, train_bins, lag_bins=lag_bins)
        r2 = continuous_r2(ridge, features, behavior, valid_bins, lag_bins=lag_bins)
        predicted = np.full(behavior.shape, np.nan, dtype=np.float32)
        known = ~np.isnan(features[: features.shape[0] - lag_bins]).any(1)
        predicted[lag_bins:][known] = ridge.predict(features[: features.shape[0] - lag_bins][known])
        method, figure = "ridge", {"alpha": float(ridge.alpha)}
    else:
        r2, predicted = series_r2(decoder, features, behavior, train_bins, valid_bins)
        method, figure = decoder.method, {}
    with atomic_hdf5(run.session_file(DECODING_FILE, session)) as h5:
        h5.create_dataset("continuous_behavior_pred", data=predicted.astype(np.float32))
        h5.attrs.update({"method": method, **figure, "lag_bins": lag_bins, "source": source, "vel_r2": r2,
                         **posterior_source(run, session).as_attrs()})
    return {"method": method, "from": source, "lag_bins": lag_bins, "vel_r2": r2, **figure,
            "n_train_bins": int(train_bins.sum()), "n_valid_bins": int(valid_bins.sum())}
