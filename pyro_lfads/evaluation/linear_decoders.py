"""The common face of the OLE and Kalman behaviour decoders of the paper (Methods 5.1).

:class:`LinearDecoder` is the interface :class:`~pyro_lfads.evaluation.ole.OLEDecoder` and
:class:`~pyro_lfads.evaluation.kalman.KalmanDecoder` share: ``fit(features, behavior)``,
``predict(features)``, ``score``, and ``cross_validated_predict`` / ``cross_validated_r2`` by folds of
whole trials. It checks the arrays once and pairs the bins; the subclasses only fit and apply a map.

Arrays: features (trials, T, N), e.g. rates in counts per bin or factors; behaviour (trials, T, B),
e.g. hand velocity. A decoder with ``lag_bins = L`` decodes behaviour at bin t from features at bin
t - L (as :func:`pyro_lfads.evaluation.metrics.fit_velocity_decoder`), so it predicts bins L .. T - 1:
(trials, T - L, B). NaN in behaviour marks an unknown bin (the NLB convention), left out of fitting and
scoring; features must be finite.
"""

from __future__ import annotations

import abc
import copy
import numbers

import numpy as np
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold

from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.metrics import as_3d

#: Folds of the cross-validation over trials (the paper's 5).
DEFAULT_FOLDS = 5


def _integer(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InputError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def lagged_pairs(features: object, behavior: object, lag_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Features at bins 0 .. T - 1 - lag_bins and behaviour at bins lag_bins .. T - 1, checked:
    (trials, T - lag_bins, N) and (trials, T - lag_bins, B), bin i of one paired with bin i of the other."""
    features = as_3d("features", features)
    behavior = as_3d("behavior", behavior, allow_nan=True)
    n_trials, n_time, _ = features.shape
    if behavior.shape[:2] != (n_trials, n_time):
        raise InputError(f"behavior: (trials, time) {behavior.shape[:2]} differ from features' {(n_trials, n_time)}")
    if lag_bins >= n_time:
        raise InputError(f"lag_bins: must be < the {n_time} time bins of features, got {lag_bins}")
    return features[:, : n_time - lag_bins], behavior[:, lag_bins:]


def behavior_r2(behavior: object, predicted: object) -> float:
    """R2 of ``predicted`` (trials, T, B) against ``behavior`` (trials, T, B), bins where the behaviour is
    NaN left out: each dimension's R2 over all rows, averaged over dimensions (``multioutput=
    "uniform_average"``, as :func:`pyro_lfads.evaluation.metrics.decoder_r2`)."""
    behavior = as_3d("behavior", behavior, allow_nan=True)
    predicted = as_3d("predicted", predicted)
    if predicted.shape != behavior.shape:
        raise InputError(f"predicted: shape {predicted.shape} differs from behavior's {behavior.shape}")
    known = ~np.isnan(behavior).any(axis=2)
    if known.sum() < 2:
        raise InputError(f"behavior: {int(known.sum())} known bins; R2 needs at least 2")
    return float(r2_score(behavior[known], predicted[known], multioutput="uniform_average"))


def trial_folds(n_trials: int, folds: int = DEFAULT_FOLDS) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training trials, held-out trials) index pairs of ``folds``-fold cross-validation over trials:
    sklearn's ``KFold`` on the trial indices, shuffled with a fixed seed (0) so that trials stored by
    condition still spread over the folds; every bin of a trial falls in the fold of its trial."""
    folds = _integer("folds", folds, 2)
    if n_trials < folds:
        raise InputError(f"features: {n_trials} trials, fewer than the {folds} folds")
    return list(KFold(n_splits=folds, shuffle=True, random_state=0).split(np.arange(n_trials)))


class LinearDecoder(abc.ABC):
    """A decoder of behaviour (trials, T, B) from features (trials, T, N) (see the module's docstring).

    Args:
        lag_bins: >= 0; behaviour at bin t is decoded from features at bin t - lag_bins.
        folds: >= 2, folds of :meth:`cross_validated_predict`.

    Subclasses set :attr:`method` and implement ``_fit(x, y)`` and ``_predict(x)`` on the paired
    arrays of :func:`lagged_pairs`.
    """

    #: The decoder's name (``decode_run``'s ``method``).
    method = ""

    def __init__(self, lag_bins: int = 0, folds: int = DEFAULT_FOLDS) -> None:
        self.lag_bins = _integer("lag_bins", lag_bins, 0)
        self.folds = _integer("folds", folds, 2)

    def fit(self, features: object, behavior: object) -> LinearDecoder:
        """Fit on the training trials' ``features`` (trials, T, N) and ``behavior`` (trials, T, B); returns self."""
        x, y = lagged_pairs(features, behavior, self.lag_bins)
        if np.isnan(y).any(axis=2).all():
            raise InputError("behavior: every bin (after the lag) is NaN; nothing to decode")
        self._fit(x, y)
        self.n_features_in_, self.n_behavior_ = x.shape[2], y.shape[2]
        return self

    def predict(self, features: object) -> np.ndarray:
        """Decoded behaviour of bins lag_bins .. T - 1 of ``features`` (trials, T, N): (trials, T - lag_bins, B)."""
        if not hasattr(self, "n_features_in_"):
            raise InputError(f"{type(self).__name__}: not fitted; call fit(features, behavior) first")
        features = as_3d("features", features)
        if features.shape[2] != self.n_features_in_:
            raise InputError(f"features: has {features.shape[2]} dims, but the decoder was fitted on "
                             f"{self.n_features_in_}")
        if self.lag_bins >= features.shape[1]:
            raise InputError(f"lag_bins: must be < the {features.shape[1]} time bins of features, got {self.lag_bins}")
        return self._predict(features[:, : features.shape[1] - self.lag_bins])

    def score(self, features: object, behavior: object) -> float:
        """:func:`behavior_r2` of the decoded behaviour of ``features`` (trials, T, N) against ``behavior``
        (trials, T, B), bins lag_bins .. T - 1."""
        predicted = self.predict(features)
        _, y = lagged_pairs(features, behavior, self.lag_bins)
        if y.shape[2] != self.n_behavior_:
            raise InputError(f"behavior: has {y.shape[2]} dims, but the decoder was fitted on {self.n_behavior_}")
        return behavior_r2(y, predicted)

    def cross_validated_predict(self, features: object, behavior: object) -> np.ndarray:
        """Each trial's behaviour decoded by a copy of this decoder fitted on the other folds' trials
        (:func:`trial_folds`): (trials, T - lag_bins, B). This decoder itself is left as it is."""
        features, behavior = lagged_pairs(features, behavior, 0)
        predicted = None
        for train, held_out in trial_folds(features.shape[0], self.folds):
            part = copy.copy(self).fit(features[train], behavior[train]).predict(features[held_out])
            if predicted is None:
                predicted = np.empty((features.shape[0], *part.shape[1:]))
            predicted[held_out] = part
        return predicted

    def cross_validated_r2(self, features: object, behavior: object) -> float:
        """The paper's cross-validated R2 (Methods 5.1): :func:`behavior_r2` of
        :meth:`cross_validated_predict` over all trials of ``features`` (trials, T, N) and ``behavior``."""
        predicted = self.cross_validated_predict(features, behavior)
        return behavior_r2(np.asarray(behavior, dtype=np.float64)[:, self.lag_bins:], predicted)

    @abc.abstractmethod
    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        """Fit on paired features x (trials, T', N) and behaviour y (trials, T', B), NaN rows unknown."""

    @abc.abstractmethod
    def _predict(self, x: np.ndarray) -> np.ndarray:
        """Behaviour (trials, T', B) decoded from paired features x (trials, T', N)."""
