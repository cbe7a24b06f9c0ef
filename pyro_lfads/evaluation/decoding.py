"""``pyro-lfads decode``: a decoder of behaviour from a fitted run's rates or factors.

The decoder is fitted on the training trials' posterior means over the observed bins, and scored on
the validation trials. It is one of :data:`METHODS`: ``"ridge"``
(:func:`pyro_lfads.evaluation.metrics.fit_velocity_decoder`, penalty chosen by cross-validation over
training trials), ``"ole"`` (optimal linear estimation, the paper's decoder:
:class:`~pyro_lfads.evaluation.ole.OLEDecoder`) or ``"kalman"`` (a Kalman filter with the behaviour as
its state: :class:`~pyro_lfads.evaluation.kalman.KalmanDecoder`). A run on the windows of a continuous
recording is decoded on its merged series instead (:mod:`pyro_lfads.evaluation.continuous_decoding`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyro_lfads.errors import InputError
from pyro_lfads.data.atomic_files import atomic_hdf5
from pyro_lfads.data.continuous import is_continuous
from pyro_lfads.evaluation.continuous_decoding import SOURCES, decode_merged
from pyro_lfads.evaluation.kalman import KalmanDecoder
from pyro_lfads.evaluation.linear_decoders import DEFAULT_FOLDS
from pyro_lfads.evaluation.metrics import decoder_r2, fit_velocity_decoder
from pyro_lfads.fitting.derived_files import DECODING_FILE
from pyro_lfads.fitting.posterior import posterior_source, read_posterior
from pyro_lfads.fitting.run import Run, dataset_sha256
from pyro_lfads.fitting.run_lock import writes_into
from pyro_lfads.evaluation.nlb_figures import Layout
from pyro_lfads.evaluation.ole import OLEDecoder

#: The linear decoders by their ``method`` name.
LINEAR_DECODERS = {decoder.method: decoder for decoder in (OLEDecoder, KalmanDecoder)}
#: What ``decode_run`` can fit: the ridge decoder, then the linear ones.
METHODS = ("ridge", *LINEAR_DECODERS)


@writes_into("run")
def decode_run(run: Run | str | Path, dataset=None, *, method: str = "ridge", source: str = "rates",
               lag_bins: int = 0, session: int = 0) -> dict:
    """Fit and score the behaviour decoder on ``run`` (a Run or its directory; ``dataset`` defaults to the
    run's own); write RUN_DIR/decoding.h5; return the figures.

    Args:
        method: one of :data:`METHODS`: "ridge", "ole" or "kalman".
        source: "rates" (posterior mean rates, all neurons) or "factors".
        lag_bins: behaviour at bin t is decoded from bin t - lag_bins.
        session: the session of a stitched run whose trials are decoded
            (RUN_DIR/decoding_session{k}.h5).

    Returns:
        ``{"method", "from", "lag_bins", "vel_r2", "alpha", "n_train_trials", "n_valid_trials"}``, where
        ole and kalman give ``cv_r2`` (the R2 of 5-fold cross-validation over the training trials, the
        paper's figure) in place of the ridge's ``alpha``; for a continuous recording's windows, those of
        :func:`~pyro_lfads.evaluation.continuous_decoding.decode_merged`. ``decoding.h5`` holds
        ``valid_behavior_pred`` (trials, T - lag_bins, B), the decoded behaviour of bins lag_bins .. T - 1,
        with ``method``, ``alpha`` or ``cv_r2``, ``lag_bins``, ``source``, ``vel_r2`` and the posterior file's
        record of what it was made from (:class:`~pyro_lfads.fitting.derived_files.Source`) as attributes.
    """
    if method not in METHODS:
        raise InputError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    if source not in SOURCES:
        raise InputError(f"source: {source!r} is not one of {', '.join(SOURCES)}")
    run = Run.open(run)
    data_sha256 = None if dataset is None else dataset_sha256(dataset)
    dataset = run.scored_data(dataset, session)
    behavior = [dataset.extras.get(f"{split}_behavior") for split in ("train", "valid")]
    if any(b is None for b in behavior):
        raise InputError(f"{dataset.source}: train_behavior / valid_behavior: missing; decoding needs the "
                         "behaviour (trials, time, dims) of both splits")
    if is_continuous(dataset):
        decoder = LINEAR_DECODERS[method](lag_bins=lag_bins) if method in LINEAR_DECODERS else None
        return decode_merged(run, dataset, decoder=decoder, source=source, lag_bins=lag_bins, session=session,
                             data_sha256=data_sha256)
    n_time = Layout.of(dataset).n_time
    behavior = [b[:, :n_time] for b in behavior]  # behaviour of all bins (lfads-torch's layout): the observed ones
    features = [read_posterior(run, split, session, data_sha256=data_sha256)[SOURCES[source]][:, :n_time]
                for split in ("train", "valid")]
    if method == "ridge":
        decoder = fit_velocity_decoder(features[0], behavior[0], lag_bins=lag_bins)
        r2 = decoder_r2(decoder, features[1], behavior[1], lag_bins=lag_bins)
        valid = features[1][:, : n_time - lag_bins]
        predicted = decoder.predict(valid.reshape(-1, valid.shape[-1])).reshape(*valid.shape[:2], -1)
        figure = {"alpha": float(decoder.alpha)}
    else:
        decoder = LINEAR_DECODERS[method](lag_bins=lag_bins, folds=max(2, min(DEFAULT_FOLDS, len(features[0]))))
        r2 = decoder.fit(features[0], behavior[0]).score(features[1], behavior[1])
        predicted = decoder.predict(features[1])
        figure = {"cv_r2": decoder.cross_validated_r2(features[0], behavior[0])}
    path = run.session_file(DECODING_FILE, session)
    with atomic_hdf5(path) as h5:
        h5.create_dataset("valid_behavior_pred", data=predicted.astype(np.float32))
        h5.attrs.update({"method": method, **figure, "lag_bins": lag_bins, "source": source, "vel_r2": r2,
                         **posterior_source(run, session).as_attrs()})
    return {"method": method, "from": source, "lag_bins": lag_bins, "vel_r2": r2, **figure,
            "n_train_trials": dataset.train.n_trials, "n_valid_trials": dataset.valid.n_trials}
