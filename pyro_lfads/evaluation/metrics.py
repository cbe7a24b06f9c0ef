"""Evaluation metrics for inferred firing rates, including the Neural Latents Benchmark (NLB) ones.

Rates, counts and behaviour are numpy arrays of shape ``(trials, time, features)``
(features = neurons for rates and counts, behaviour dimensions for behaviour),
with rates and counts in counts per bin. Every metric returns a Python float.

The NLB metrics follow the definitions of ``nlb_tools.evaluation``:

- :func:`co_bps`: bits per spike of held-out neurons on the evaluation trials.
- :func:`fp_bps`: bits per spike of all neurons in the forward-prediction bins.
- :func:`velocity_r2`: R2 of a ridge decoder from rates to behaviour, fitted on
  training trials and scored on evaluation trials.
- :func:`psth_r2`: R2 of condition-averaged rates against reference PSTHs
  (condition-averaged smoothed spikes, see :func:`condition_psth`).

Inferred inputs against known ones (the paper's synthetic input experiments):
:func:`pulse_time_errors_ms` and :func:`input_r2`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from scipy.ndimage import correlate1d
from scipy.special import gammaln, xlogy
from sklearn.linear_model import LinearRegression, Ridge, RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_val_predict

from pyro_lfads.errors import InputError

#: Candidate ridge penalties of the behaviour decoder.
DEFAULT_RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-4, 2, 7))


def as_3d(name: str, arr: object, allow_nan: bool = False) -> np.ndarray:
    """Return ``arr`` as float64 (trials, time, features) after checking it is a non-empty 3-D array of finite values.

    With ``allow_nan``, NaN is accepted (infinities never are).
    """
    try:
        arr = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name}: cannot be read as an array of numbers") from None
    if arr.ndim != 3:
        raise InputError(f"{name}: expected a 3-D array (trials, time, features), got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name}: is empty (shape {arr.shape})")
    bad = np.isinf(arr) if allow_nan else ~np.isfinite(arr)
    if np.any(bad):
        raise InputError(f"{name}: holds {'infinite' if allow_nan else 'NaN or infinite'} values")
    return arr


def _check_pair(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``a`` and ``b`` as float64 arrays after checking they are 3-D, alike and finite."""
    a = as_3d(name_a, a)
    b = as_3d(name_b, b)
    if a.shape != b.shape:
        raise InputError(f"{name_a} and {name_b}: shapes differ, {a.shape} vs {b.shape}")
    return a, b


def _check_counts(counts: np.ndarray, name: str = "counts") -> None:
    if np.any(counts < 0):
        raise InputError(f"{name}: holds negative values")


def _check_rates(rates: np.ndarray, name: str = "rates") -> None:
    if np.any(rates <= 0):
        raise InputError(f"{name}: must be > 0 everywhere")


def _check_labels(name: str, labels: np.ndarray, n_trials: int) -> np.ndarray:
    """Return ``labels`` as a 1-D array after checking it has one entry per trial."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n_trials:
        raise InputError(f"{name}: expected shape ({n_trials},), one condition per trial, got {labels.shape}")
    return labels


def _poisson_log_lik(counts: np.ndarray, rates: np.ndarray) -> float:
    """Total Poisson log-likelihood in nats; a zero rate is allowed where the count is zero."""
    return float(np.sum(xlogy(counts, rates) - rates - gammaln(counts + 1.0)))


def rate_r2(true_rates: np.ndarray, pred_rates: np.ndarray) -> float:
    """R2 of ``pred_rates`` against ``true_rates``, pooled over all trials, bins and neurons."""
    true_rates, pred_rates = _check_pair("true_rates", true_rates, "pred_rates", pred_rates)
    return float(r2_score(true_rates.ravel(), pred_rates.ravel()))


def rate_r2_per_neuron(true_rates: np.ndarray, pred_rates: np.ndarray) -> float:
    """Mean over neurons of each neuron's R2, computed over its trials x time values."""
    true_rates, pred_rates = _check_pair("true_rates", true_rates, "pred_rates", pred_rates)
    n_neurons = true_rates.shape[2]
    return float(
        r2_score(
            true_rates.reshape(-1, n_neurons),
            pred_rates.reshape(-1, n_neurons),
            multioutput="uniform_average",
        )
    )


def poisson_nll(counts: np.ndarray, rates: np.ndarray) -> float:
    """Total Poisson negative log-likelihood of ``counts`` under ``rates`` (> 0), in nats.

    Includes the ``log(k!)`` term, so it is the exact negative log-probability.
    """
    counts, rates = _check_pair("counts", counts, "rates", rates)
    _check_counts(counts)
    _check_rates(rates)
    return -_poisson_log_lik(counts, rates)


def _bits_per_spike(counts: np.ndarray, rates: np.ndarray, counts_name: str, rates_name: str) -> float:
    """:func:`bits_per_spike`, with the argument names that error messages use."""
    counts, rates = _check_pair(counts_name, counts, rates_name, rates)
    _check_counts(counts, counts_name)
    _check_rates(rates, rates_name)
    total_spikes = float(np.sum(counts))
    if total_spikes <= 0:
        raise InputError(f"{counts_name}: holds no spikes, so bits per spike is undefined")
    null_rates = np.broadcast_to(counts.mean(axis=(0, 1), keepdims=True), counts.shape)
    gain = _poisson_log_lik(counts, rates) - _poisson_log_lik(counts, null_rates)
    return float(gain / (total_spikes * np.log(2.0)))


def bits_per_spike(counts: np.ndarray, rates: np.ndarray) -> float:
    """Log-likelihood gain over a per-neuron constant-rate model, in bits per spike.

    ``(NLL(null) - NLL(model)) / (total spikes * ln 2)``, where the null model
    predicts, for each neuron, its mean count per bin over all trials and bins of
    ``counts`` (the Neural Latents Benchmark convention). A neuron with no spikes
    has a null rate of 0 and contributes nothing to NLL(null).
    """
    return _bits_per_spike(counts, rates, "counts", "rates")


def co_bps(eval_rates_heldout: np.ndarray, eval_spikes_heldout: np.ndarray) -> float:
    """NLB co-smoothing bits per spike: :func:`bits_per_spike` of the held-out neurons.

    Args:
        eval_rates_heldout: (trials, T, N_out) predicted rates (> 0) of the
            held-out neurons on the evaluation trials, counts per bin.
        eval_spikes_heldout: (trials, T, N_out) their observed counts.

    The null model is each held-out neuron's mean count over these trials and bins.
    Note the argument order (rates first), as in ``nlb_tools``.
    """
    return _bits_per_spike(eval_spikes_heldout, eval_rates_heldout, "eval_spikes_heldout", "eval_rates_heldout")


def fp_bps(eval_rates_forward: np.ndarray, eval_spikes_forward: np.ndarray) -> float:
    """NLB forward-prediction bits per spike: :func:`bits_per_spike` of the forward bins.

    Args:
        eval_rates_forward: (trials, T_fwd, N_in + N_out) predicted rates (> 0) of
            all neurons in the bins after the observed window, counts per bin.
        eval_spikes_forward: (trials, T_fwd, N_in + N_out) their observed counts.

    The null model is each neuron's mean count over these trials and forward bins.
    """
    return _bits_per_spike(eval_spikes_forward, eval_rates_forward, "eval_spikes_forward", "eval_rates_forward")


def _decoder_rows(rates_name: str, rates: np.ndarray, behavior_name: str, behavior: np.ndarray,
                  lag_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (rates at bin t - lag_bins, behaviour at bin t), flattened over trials and bins.

    Returns rates (S, N), behaviour (S, B) and the trial index (S,) of each row.
    Rows where any behaviour dimension is NaN (NLB's mark for "unknown") are
    dropped, as ``nlb_tools`` does.
    """
    rates = as_3d(rates_name, rates)
    behavior = as_3d(behavior_name, behavior, allow_nan=True)
    n_trials, n_time, _ = rates.shape
    if behavior.shape[:2] != (n_trials, n_time):
        raise InputError(f"{behavior_name}: (trials, time) {behavior.shape[:2]} differ from "
                         f"{rates_name}'s {(n_trials, n_time)}")
    if lag_bins >= n_time:
        raise InputError(f"lag_bins: must be < the {n_time} time bins of {rates_name}, got {lag_bins}")
    n_pairs = n_time - lag_bins
    x = rates[:, :n_pairs].reshape(n_trials * n_pairs, -1)
    y = behavior[:, lag_bins:].reshape(n_trials * n_pairs, -1)
    trial = np.repeat(np.arange(n_trials), n_pairs)
    known = ~np.any(np.isnan(y), axis=1)
    if not np.any(known):
        raise InputError(f"{behavior_name}: every bin (after the lag) is NaN; nothing to decode")
    return x[known], y[known], trial[known]


def fit_velocity_decoder(train_rates: np.ndarray, train_behavior: np.ndarray, *, lag_bins: int = 0,
                         alphas: tuple[float, ...] = DEFAULT_RIDGE_ALPHAS, cv: int = 5) -> Ridge:
    """Ridge decoder from rates to behaviour, with its penalty chosen on the training trials only.

    Args:
        train_rates: (trials, T, N) rates of the training trials, counts per bin.
        train_behavior: (trials, T, B) behaviour (e.g. hand velocity) of the same
            trials; NaN marks unknown bins, which are left out.
        lag_bins: >= 0; behaviour at bin t is predicted from rates at bin t - lag_bins.
        alphas: candidate ridge penalties (> 0).
        cv: number of folds (at most the number of training trials), >= 2.

    The penalty maximises the mean R2 (averaged over behaviour dimensions) of a
    grid search (``GridSearchCV``) over ``GroupKFold`` folds that keep all bins
    of a trial in one fold; the decoder is then refitted on all training rows.

    Returns:
        The fitted ``sklearn.linear_model.Ridge``; its ``alpha`` is the chosen penalty.
    """
    if isinstance(lag_bins, bool) or not isinstance(lag_bins, numbers.Integral) or lag_bins < 0:
        raise InputError(f"lag_bins: must be an integer >= 0, got {lag_bins!r}")
    if isinstance(cv, bool) or not isinstance(cv, numbers.Integral) or cv < 2:
        raise InputError(f"cv: must be an integer >= 2, got {cv!r}")
    message = f"alphas: must be a non-empty 1-D sequence of finite values > 0, got {alphas!r}"
    try:
        alphas = np.asarray(alphas, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(message) from None
    if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas) & (alphas > 0)):
        raise InputError(message)
    x, y, trial = _decoder_rows("train_rates", train_rates, "train_behavior", train_behavior, int(lag_bins))
    n_trials = np.unique(trial).size
    if n_trials < 2:
        raise InputError(f"train_rates: needs at least 2 trials with known behaviour to cross-validate, got {n_trials}")
    search = GridSearchCV(Ridge(), {"alpha": alphas}, scoring="r2", cv=GroupKFold(n_splits=min(int(cv), n_trials)))
    search.fit(x, y, groups=trial)
    return search.best_estimator_


def velocity_r2(train_rates: np.ndarray, train_behavior: np.ndarray, eval_rates: np.ndarray,
                eval_behavior: np.ndarray, *, lag_bins: int = 0,
                alphas: tuple[float, ...] = DEFAULT_RIDGE_ALPHAS, cv: int = 5) -> float:
    """NLB behaviour decoding R2 ("vel R2") of rates on the evaluation trials.

    Fits :func:`fit_velocity_decoder` on the training trials (rates (trials, T, N),
    behaviour (trials, T, B); see it for ``lag_bins``, ``alphas`` and ``cv``), then
    scores it on ``eval_rates`` (trials', T', N) and ``eval_behavior`` (trials', T', B)
    with ``r2_score(..., multioutput="uniform_average")``: the R2 of each
    behaviour dimension over all evaluation rows, averaged over dimensions.
    Evaluation bins whose behaviour is NaN are left out.
    """
    decoder = fit_velocity_decoder(train_rates, train_behavior, lag_bins=lag_bins, alphas=alphas, cv=cv)
    return decoder_r2(decoder, eval_rates, eval_behavior, lag_bins=lag_bins)


def decoder_r2(decoder: Ridge, eval_rates: np.ndarray, eval_behavior: np.ndarray, *, lag_bins: int = 0) -> float:
    """R2 of a fitted decoder (:func:`fit_velocity_decoder`) on ``eval_rates`` (trials, T, N) and
    ``eval_behavior`` (trials, T, B), as :func:`velocity_r2` scores it."""
    x, y, _ = _decoder_rows("eval_rates", eval_rates, "eval_behavior", eval_behavior, int(lag_bins))
    if x.shape[1] != decoder.n_features_in_:
        raise InputError(f"eval_rates: has {x.shape[1]} neurons, but train_rates has {decoder.n_features_in_}")
    if y.shape[1] != decoder.coef_.shape[0]:
        raise InputError(f"eval_behavior: has {y.shape[1]} dimensions, but train_behavior has {decoder.coef_.shape[0]}")
    if y.shape[0] < 2:
        raise InputError("eval_behavior: needs at least 2 known bins to compute R2")
    return float(r2_score(y, decoder.predict(x), multioutput="uniform_average"))


def smooth_over_time(spikes: np.ndarray, sigma_bins: float, *, leave_centre_out: bool = False) -> np.ndarray:
    """Gaussian smoothing of (trials, T, N) along time, normalised at the trial edges.

    A Gaussian kernel of std ``sigma_bins`` bins, truncated at ``ceil(4 * sigma_bins)`` bins each
    side, correlated with the zero-padded data and divided bin by bin by the kernel mass that falls
    inside the trial, so every bin is a weighted mean of real bins. With ``leave_centre_out`` the
    kernel's centre weight is 0: no bin sees its own count (the leave-one-bin-out score of
    :class:`pyro_lfads.evaluation.baselines.GaussianSmoothing`).

    Returns:
        (trials, T, N) float array in the units of ``spikes``.
    """
    radius = math.ceil(4.0 * sigma_bins)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 / (sigma_bins * sigma_bins) * offsets**2)  # scipy's gaussian_filter1d kernel
    weights = weights / weights.sum()
    if leave_centre_out:
        weights[radius] = 0.0
    total = correlate1d(spikes, weights, axis=1, mode="constant", cval=0.0)
    mass = correlate1d(np.ones(spikes.shape[1]), weights, mode="constant", cval=0.0)
    return total / mass[None, :, None]


def condition_psth(spikes: np.ndarray, conditions: np.ndarray, sigma_bins: float) -> tuple[np.ndarray, np.ndarray]:
    """Reference PSTHs: Gaussian-smoothed spikes averaged over the trials of each condition.

    Args:
        spikes: (trials, T, N) counts per bin (>= 0).
        conditions: (trials,) condition label of each trial.
        sigma_bins: standard deviation of the Gaussian kernel in bins (> 0), e.g.
            5 for NLB's 50 ms at 10 ms bins.

    Each trial is smoothed along time with :func:`smooth_over_time` (zero
    padding, kernel truncated at 4 sigma, divided by the kernel mass inside the
    trial), so the edge bins average only real bins. ``nlb_tools``
    instead convolves with a zero-padded, unnormalised-at-the-edges kernel,
    which biases its first and last few bins towards 0.

    Returns:
        (conditions sorted ascending (C,), psth (C, T, N) in counts per bin).
    """
    spikes = as_3d("spikes", spikes)
    _check_counts(spikes, "spikes")
    conditions = _check_labels("conditions", conditions, spikes.shape[0])
    if not (isinstance(sigma_bins, numbers.Real) and np.isfinite(sigma_bins) and sigma_bins > 0):
        raise InputError(f"sigma_bins: must be a finite number > 0, got {sigma_bins!r}")
    smoothed = smooth_over_time(spikes, float(sigma_bins))
    ids = np.unique(conditions)
    psth = np.stack([smoothed[conditions == c].mean(axis=0) for c in ids])
    return ids, psth


def psth_r2(eval_rates: np.ndarray, eval_conditions: np.ndarray, psth: np.ndarray,
            psth_conditions: np.ndarray | None = None) -> float:
    """NLB PSTH R2: condition-averaged predicted rates against reference PSTHs.

    Args:
        eval_rates: (trials, T, N) predicted rates on the evaluation trials, counts per bin.
        eval_conditions: (trials,) condition label of each evaluation trial; every
            label must have a row in ``psth``.
        psth: (C, T, N) reference PSTHs (e.g. from :func:`condition_psth`).
        psth_conditions: (C,) distinct condition label of each row of ``psth``;
            by default ``0, 1, ..., C - 1``.

    The predicted PSTH of a condition is the mean of ``eval_rates`` over its
    evaluation trials; conditions without evaluation trials are left out of
    both. Returns ``r2_score`` of the (conditions x T, N) reference against the
    prediction with ``multioutput="uniform_average"``: each neuron's R2 over
    conditions and bins, averaged over neurons.
    """
    eval_rates = as_3d("eval_rates", eval_rates)
    psth = as_3d("psth", psth)
    eval_conditions = _check_labels("eval_conditions", eval_conditions, eval_rates.shape[0])
    if psth.shape[1] != eval_rates.shape[1]:
        raise InputError(f"psth: has {psth.shape[1]} time bins, but eval_rates has {eval_rates.shape[1]}")
    if psth.shape[2] != eval_rates.shape[2]:
        raise InputError(f"psth: has {psth.shape[2]} neurons, but eval_rates has {eval_rates.shape[2]}")
    if psth_conditions is None:
        psth_conditions = np.arange(psth.shape[0])
    psth_conditions = np.asarray(psth_conditions)
    if psth_conditions.shape != (psth.shape[0],) or np.unique(psth_conditions).size != psth.shape[0]:
        raise InputError(f"psth_conditions: expected {psth.shape[0]} distinct labels, one per psth row, "
                         f"got shape {psth_conditions.shape}")
    missing = np.setdiff1d(eval_conditions, psth_conditions)
    if missing.size:
        raise InputError(f"eval_conditions: condition(s) {missing.tolist()} have no row in psth")
    rows = [i for i, c in enumerate(psth_conditions) if np.any(eval_conditions == c)]
    true = psth[rows].reshape(-1, psth.shape[2])
    pred = np.stack([eval_rates[eval_conditions == psth_conditions[i]].mean(axis=0) for i in rows])
    if true.shape[0] < 2:
        raise InputError("psth: needs at least 2 (condition, bin) rows with evaluation trials to compute R2")
    return float(r2_score(true, pred.reshape(-1, psth.shape[2]), multioutput="uniform_average"))


def pulse_time_errors_ms(inputs: np.ndarray, pulse_times_ms: np.ndarray, bin_ms: float) -> np.ndarray:
    """|time of the inferred input's peak - true pulse time| of each trial, ms: (trials,).

    Args:
        inputs: (trials, T, U) inferred inputs (posterior means).
        pulse_times_ms: (trials,) true pulse times, ms from the trial start (a bin's start).
        bin_ms: bin width, ms.

    The peak is the bin where the input departs most from its own median over
    the trial (the norm over the U inputs), so its sign does not matter.
    """
    inputs = as_3d("inputs", inputs)
    pulse_times_ms = np.asarray(pulse_times_ms, dtype=np.float64)
    if pulse_times_ms.shape != inputs.shape[:1]:
        raise InputError(f"pulse_times_ms: expected shape ({inputs.shape[0]},), got {pulse_times_ms.shape}")
    departure = np.linalg.norm(inputs - np.median(inputs, axis=1, keepdims=True), axis=2)  # (trials, T)
    return np.abs(departure.argmax(axis=1) * float(bin_ms) - pulse_times_ms)


def input_r2(inferred: np.ndarray, true: np.ndarray) -> float:
    """R2 of the true inputs against the best affine map of the inferred ones (sign and scale fitted).

    ``inferred`` (trials, T, U) and ``true`` (trials, T, V): a least-squares
    ``LinearRegression`` from the U inferred inputs to each true input over all
    bins of all trials; R2 averaged over the V true inputs.
    """
    inferred, true = as_3d("inferred", inferred), as_3d("true", true)
    if inferred.shape[:2] != true.shape[:2]:
        raise InputError(f"inferred and true: trials and bins differ, {inferred.shape[:2]} vs {true.shape[:2]}")
    return float(r2_score(true.reshape(-1, true.shape[2]), affine_map(inferred, true).reshape(-1, true.shape[2])))


def affine_map(inferred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """The least-squares affine map of the inferred inputs (trials, T, U) onto the true ones
    (trials, T, V), applied: (trials, T, V). Sign, scale and offset are fitted over all bins."""
    x, y = inferred.reshape(-1, inferred.shape[2]), true.reshape(-1, true.shape[2])
    return LinearRegression().fit(x, y).predict(x).reshape(true.shape)


def cross_validated_r2(features: np.ndarray, target: np.ndarray, folds: int = 5) -> float:
    """R2 of a ridge regression from ``features`` (trials, T, K) to ``target`` (trials, T, D), every
    bin a row, predicted by ``folds``-fold cross-validation with each trial's bins kept in one fold
    (the latent-state decoding of the paper's stitching figure); R2 averaged over the D targets."""
    features, target = as_3d("features", features), as_3d("target", target)
    if features.shape[:2] != target.shape[:2]:
        raise InputError(f"features and target: trials and bins differ, {features.shape[:2]} vs {target.shape[:2]}")
    n_trials, n_time = features.shape[:2]
    if n_trials < folds:
        raise InputError(f"features: {n_trials} trials, fewer than the {folds} folds")
    predicted = cross_val_predict(RidgeCV(alphas=np.logspace(-3, 3, 7)), features.reshape(n_trials * n_time, -1),
                                  target.reshape(n_trials * n_time, -1), groups=np.repeat(np.arange(n_trials), n_time),
                                  cv=GroupKFold(folds))
    return float(r2_score(target.reshape(n_trials * n_time, -1), predicted))


def cross_session_consistency(condition_factors: list[np.ndarray]) -> float:
    """How much sessions agree on each condition's factor trajectory: R2 of every session's
    condition-averaged factors (conditions, T, F) against the average over sessions, averaged over
    sessions (1 when they coincide)."""
    stacked = np.stack([as_3d("condition_factors", f) for f in condition_factors])  # (S, C, T, F)
    mean = stacked.mean(axis=0).reshape(-1, stacked.shape[-1])
    return float(np.mean([r2_score(mean, session.reshape(-1, stacked.shape[-1])) for session in stacked]))
