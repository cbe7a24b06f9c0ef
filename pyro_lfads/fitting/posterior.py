"""Posterior averaging (Methods 1.10) through :class:`~pyro_lfads.fitting.predictive.PosteriorPredictive`,
and its output file, which lfads-torch's analysis code reads unchanged.

For each trial, S samples of (g0, u) are drawn from the guide (dropout off),
the model is run on each, and averages over samples are kept. The draws are
those of ``pyro_lfads.predictive(run, num_samples=S, seed=config.seed)``: its
one pass (:meth:`~pyro_lfads.fitting.predictive.PosteriorPredictive.draw`), the
batch holding each trial S times (its encoders read it once), one trace of the
guide and the model replayed on it. Each trial's draws are made of noise seeded
by the run's seed and the trial itself (:func:`~pyro_lfads.fitting.batch.trial_noise`),
so a trial's averages are the same whichever trials share its file, split or
chunk. Trials go in chunks of at most ``max_rows`` trial-samples, and each chunk
is written straight into the HDF5 file, so memory stays bounded whatever the
number of trials.

Output keys: lfads-torch's, with its meanings (shapes per split, B trials, T bins, N neurons, F factors,
G generator units, U inferred inputs, E external inputs, C controller units):
    {split}_output_params       (B, T, N)  posterior mean rates, counts per bin (the observation model's mean;
                                           calcium: the spike rates, its fluorescence is obs_mean)
    {split}_factors             (B, T, F)  posterior mean factors
    {split}_gen_states          (B, T, G)  posterior mean generator states g_t
    {split}_gen_init            (B, G)     posterior mean initial generator state: g0, or W_0 g0 + b_0 (g0_map)
    {split}_gen_inputs          (B, T, U+E) posterior mean generator input [u_t, a_t]
    {split}_con_states          (B, T, C)  posterior mean controller states c_t
    {split}_co_means            (B, T, U)  mean of q(u_t | u_<t, g0, x), averaged over the S draws
    {split}_co_stds             (B, T, U)  standard deviation of q(u_t | u_<t, g0, x), averaged likewise
    {split}_ic_mean             (B, G)     mean of q(g0 | x)
    {split}_ic_std              (B, G)     standard deviation of q(g0 | x)
A model without inferred inputs writes the inputs' keys with U = 0 (and C = 0). This project adds
``{split}_output_params_std`` and ``{split}_factors_std``, the standard deviations over the draws, and, where
the predicted observation is not the rates (calcium), ``{split}_obs_mean`` and its ``_std``, and for a
behaviour model (``model: behavior``) ``{split}_behavior_pred`` (B, T, D), the behaviour it decodes from the
spikes (the mean of W_b f_t^rel + b_b over the draws), and its ``_std``. With ``means="psis"`` each trial's
draws are weighed by their PSIS-smoothed, self-normalised importance weights p(x, z) / q(z | x) where the
trial's k-hat is below 0.7 (the plain average elsewhere), and the choice is recorded per trial:
    {split}_khat                (B,)       PSIS k-hat of the trial's S draws
    {split}_importance_weighted (B,)       1 where its averages are importance-weighted, 0 where plain

As lfads-torch's output file starts as a copy of its data file, the file also holds the data set's arrays
under their own keys (``{split}_encod_data``, ``{split}_recon_data``, ``{split}_ext_input``, ``{split}_truth``,
``{split}_inds``, the extras, ``conversion_factor``, ``bin_width_s``) for the splits written; ``{split}_inds``,
where the data has none, counts the trials in file order (train first). A data key equal to an output key is
left out. A data set cut from a continuous recording (:mod:`pyro_lfads.data.continuous`) also gets the
windows of both splits merged back into one series, L bins of the recording:
    continuous_output_params    (L, N)     posterior mean rates, counts per bin
    continuous_factors          (L, F)
    continuous_gen_states       (L, G)
    continuous_co_means         (L, U)     where the model has inferred inputs
Attributes: ``samples``, ``means`` ("average" or "psis"), ``time_bins`` and the record of what the file was made from
(``source_checkpoint_sha256``, ``source_data_sha256``, ``source_epoch``:
:class:`~pyro_lfads.fitting.derived_files.Source`); :func:`read_posterior` refuses a file whose record
is not the run's best checkpoint as it is now.

A stitched run (several sessions) writes one such file per session,
``posterior_session{k}.h5``, with the same keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from pyro_lfads.data import LFADSDataset, Split, as_sessions
from pyro_lfads.data.atomic_files import atomic_hdf5
from pyro_lfads.data.containers import SPLITS
from pyro_lfads.data.continuous import is_continuous, merge_splits
from pyro_lfads.data.lfads_files import file_arrays, fill_hdf5
from pyro_lfads.diagnostics.importance import psis_weights
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.batch import Batch, trial_chunks
from pyro_lfads.fitting.derived_files import POSTERIOR_FILE, Source
from pyro_lfads.fitting.predictive import PosteriorPredictive
from pyro_lfads.fitting.run import Run, dataset_sha256
from pyro_lfads.fitting.run_lock import writes_into
from pyro_lfads.models.lfads import GENERATOR_RUN
from pyro_lfads.fitting.devices import resolve_device

#: Model sites averaged over the draws: output key of their mean (with a ``_std`` companion where named).
AVERAGED_SITES = {"rates": ("output_params", True), "factors": ("factors", True), "obs_mean": ("obs_mean", True),
                  "gen_states": ("gen_states", False), "g0": ("gen_init", False),
                  "behavior_mean": ("behavior_pred", True)}

#: How the draws of a trial are averaged: equally, or by PSIS importance weights where k-hat allows.
MEANS = ("average", "psis")

#: The posterior means merged into ``continuous_{key}`` for a data set of a continuous recording's windows.
CONTINUOUS_KEYS = ("output_params", "factors", "gen_states", "co_means")


def posterior_path(run: Run | str | Path, session: int = 0) -> Path:
    """Where a run's posterior averages (of session ``session``) go."""
    return Run.open(run).session_file(POSTERIOR_FILE, session)


def posterior_chunks(model, guide, split: Split, *, samples: int, time_bins: int | None = None,
                     device: str = "cpu", max_rows: int = 4096, session: int = 0, seed: int | None = None,
                     means: str = "average"):
    """Yield (trial slice, {output key: array}) for consecutive chunks of ``split``'s trials
    (of session ``session``).

    Keys are those of the module docstring without the ``{split}_`` prefix, from :func:`posterior_averages`.
    Each chunk is one pass of :class:`PosteriorPredictive`; ``seed`` seeds each trial's draws by the trial
    (None: torch's generator). ``means`` (:data:`MEANS`): "psis" weighs each trial's draws by their PSIS
    importance weights where its k-hat is below 0.7 and adds ``khat`` and ``importance_weighted`` (B,).
    """
    check_means(means)
    predictive = PosteriorPredictive(model, guide, samples, return_sites=["u", *AVERAGED_SITES], seed=seed)
    for trials, batch in trial_chunks(split, max_rows=max(1, max_rows // samples), device=device,
                                      time_bins=time_bins, session=session):
        draws, guide_trace = predictive.draw(batch, log_weights=means == "psis")  # {site: (S, chunk trials, ...)}
        weights, extra = None, {}
        if means == "psis":
            trial_weights, khat, weighted = psis_weights(draws.pop("log_weight").T.cpu().numpy())
            weights = torch.as_tensor(trial_weights.T, dtype=torch.float32, device=batch.encod_data.device)
            extra = {"khat": khat.astype(np.float32), "importance_weighted": weighted.astype(np.uint8)}
        averages = {**posterior_averages(draws, guide_trace, batch, samples, weights), **extra}
        if model.generator.initial_map is not None:  # the state before bin 1, W_0 g0 + b_0: the map of the mean
            with torch.no_grad():
                state = model.generator.initial_state(torch.as_tensor(averages["gen_init"], device=device))
            averages["gen_init"] = state.cpu().numpy()
        yield trials, averages


def posterior_averages(draws: dict[str, torch.Tensor], guide_trace, batch: Batch, samples: int,
                       weights: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """The output keys (module docstring, without the split prefix) of one pass of ``samples`` = S draws of
    each trial of ``batch`` (B trials, one row each): ``draws`` {site: (S, B, ...)} and the guide's trace of
    the B * S rows, trial-major (row b * S + s: draw s of trial b). ``weights`` (S, B), each trial's summing
    to 1, weigh the draws' means and spreads (None: equal weights); the guide's own keys stay plain means."""
    def per_trial(rows: torch.Tensor) -> torch.Tensor:
        """(B * S, ...) rows -> (B, ...), the mean of each trial's S rows."""
        return rows.reshape(batch.n_trials, samples, *rows.shape[1:]).mean(1)

    def mean_and_std(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, B, ...) -> the weighted mean and standard deviation over the draws, each (B, ...)."""
        if weights is None:
            return values.mean(0), values.std(0, correction=0)
        w = weights.reshape(*weights.shape, *[1] * (values.dim() - 2))
        mean = (w * values).sum(0)
        return mean, (w * (values - mean) ** 2).sum(0).sqrt()

    q_g0 = guide_trace.nodes["g0"]["fn"]
    out = {"ic_mean": q_g0.mean[::samples], "ic_std": q_g0.stddev[::samples]}
    for site, (key, spread) in AVERAGED_SITES.items():
        if site in draws:
            out[key], std = mean_and_std(draws[site])
            if spread:
                out[f"{key}_std"] = std
    none = batch.encod_data.new_zeros(batch.n_trials, batch.n_time, 0)
    inputs = none
    out["co_means"] = out["co_stds"] = out["con_states"] = none
    if "u" in guide_trace.nodes:
        q_u, run = guide_trace.nodes["u"]["fn"], guide_trace.nodes["u"]["infer"][GENERATOR_RUN]
        out["co_means"], out["co_stds"] = per_trial(q_u.loc), per_trial(q_u.scale)
        out["con_states"], inputs = per_trial(run.controller_states), mean_and_std(draws["u"])[0]
    out["gen_inputs"] = torch.cat([inputs, none if batch.ext_input is None else batch.ext_input], dim=-1)
    return {key: value.cpu().numpy() for key, value in out.items()}


@writes_into("run")
def write_posterior(run: Run | str | Path, data: LFADSDataset | Sequence[LFADSDataset] | None = None, *,
                    samples: int | None = None, means: str = "average", device: str = "cpu", max_rows: int = 4096,
                    progress: bool = True) -> list[Path]:
    """Posterior averages of the run's best checkpoint for both splits of every session in ``data``
    (one data set, or a stitched run's list of sessions; default: the run's own, read again), into
    RUN_DIR; returns the files written. ``means``: "average" (equal weights) or "psis" (each trial's draws
    weighed by PSIS importance weights where its k-hat is below 0.7; :func:`posterior_chunks`). New trials
    go to a file of their own: :func:`~pyro_lfads.fitting.new_data.write_posterior_of`."""
    run, device = Run.open(run), resolve_device(device)
    samples, means = check_samples(run, samples), check_means(means)
    sessions = run.sessions() if data is None else as_sessions(data)
    if len(sessions) != run.n_sessions:
        raise InputError(f"{run.directory}: was fitted on {run.n_sessions} sessions, got {len(sessions)} data sets")
    sources = [run.source(None if data is None else dataset_sha256(dataset), session)
               for session, dataset in enumerate(sessions)]
    total = sum(d.train.n_trials + d.valid.n_trials for d in sessions)
    with tqdm(total=total, desc="posterior", unit="trial", disable=not progress, dynamic_ncols=True) as bar:
        for session, dataset in enumerate(sessions):
            write_posterior_file(posterior_path(run, session), run, dataset, source=sources[session], session=session,
                                 samples=samples, means=means, device=device, max_rows=max_rows, bar=bar)
    return [posterior_path(run, session) for session in range(len(sessions))]


def check_samples(run: Run, samples: int | None) -> int:
    """``samples``, or the run's ``config.posterior_samples`` when None; refused unless an integer >= 1."""
    samples = run.config.posterior_samples if samples is None else samples
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InputError(f"samples: must be an integer >= 1, got {samples!r}")
    return samples


def check_means(means: str) -> str:
    """``means``, refused unless one of :data:`MEANS`."""
    if means not in MEANS:
        raise InputError(f"means: one of {', '.join(MEANS)}, got {means!r}")
    return means


def write_posterior_file(path: Path, run: Run, dataset: LFADSDataset, *, source: Source,
                         splits: Sequence[str] = SPLITS, session: int = 0, samples: int, means: str = "average",
                         device: str, max_rows: int, bar) -> None:
    """The posterior averages of ``splits`` of ``dataset`` (session ``session``'s trials) under the run's best
    checkpoint, and the data's arrays of those splits, written to ``path`` atomically; ``bar`` counts trials."""
    model, guide = run.fitted("best", device)
    with atomic_hdf5(path) as h5:
        h5.attrs["samples"], h5.attrs["means"] = samples, means
        h5.attrs["time_bins"] = run.session_info(session).n_time
        h5.attrs.update(source.as_attrs())
        for name in splits:
            split = getattr(dataset, name)
            for trials, arrays in posterior_chunks(model, guide, split, samples=samples,
                                                   time_bins=run.config.time_bins, device=device,
                                                   max_rows=max_rows, session=session, seed=run.config.seed,
                                                   means=means):
                for key, values in arrays.items():
                    full = f"{name}_{key}"
                    if full not in h5:
                        h5.create_dataset(full, shape=(split.n_trials, *values.shape[1:]), dtype="f4")
                    h5[full][trials] = values
                bar.update(trials.stop - trials.start)
        if is_continuous(dataset) and set(SPLITS) <= set(splits):
            windows = run.scored_data(dataset, session)  # the windows as the model saw them, time_bins long
            for key in CONTINUOUS_KEYS:
                if h5[f"train_{key}"].shape[-1]:  # no inputs' series without a controller
                    merged = merge_splits(windows, h5[f"train_{key}"][()], h5[f"valid_{key}"][()])
                    h5.create_dataset(f"continuous_{key}", data=merged.astype(np.float32))
        _copy_data(h5, dataset, splits, run.session_info(session).bin_width_s)


def _copy_data(h5: h5py.File, dataset: LFADSDataset, splits: Sequence[str], bin_width_s: float | None) -> None:
    """The data set's arrays of ``splits`` and its scalars under their own keys, with ``{split}_inds`` (the
    trials' places in file order where the data has none) and ``bin_width_s`` (the run's where the data has
    none); keys already in ``h5`` are left out."""
    arrays, start = file_arrays(dataset), 0
    for name in splits:
        n_trials = getattr(dataset, name).n_trials
        arrays.setdefault(f"{name}_inds", np.arange(start, start + n_trials, dtype=np.int64))
        start += n_trials
    if bin_width_s is not None:
        arrays.setdefault("bin_width_s", np.asarray(bin_width_s, dtype=np.float64))
    other = tuple(f"{name}_" for name in SPLITS if name not in splits)
    fill_hdf5(h5, {key: value for key, value in arrays.items() if key not in h5 and not key.startswith(other)})


def read_posterior(run: Run | str | Path, split: str = "valid", session: int = 0, *,
                   data_sha256: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of ``split`` (of session ``session``) from the run's posterior file, keyed without
    the split prefix (the averages, and the data copied in: ``encod_data``, ``inds``, ...;
    ``split="continuous"``: the merged series of a continuous recording); refused when
    the file was made from another checkpoint than the run's best, or from other data than that of
    checksum ``data_sha256`` (default: the session's own)."""
    run = Run.open(run)
    path = posterior_path(run, session)
    if not path.is_file():
        raise InputError(f"{path}: no posterior yet; run 'pyro-lfads posterior {run.directory}' first")
    prefix = f"{split}_"
    try:
        with h5py.File(path, "r") as h5:
            run.check_source(path, Source.from_attrs(h5.attrs), "write_posterior", data_sha256, session)
            return {key[len(prefix):]: h5[key][()] for key in h5 if key.startswith(prefix)}
    except OSError as exc:
        raise InputError(f"{path}: not a readable posterior file ({exc})") from None


def posterior_source(run: Run | str | Path, session: int = 0) -> Source | None:
    """The record of what the run's posterior file (of session ``session``) was made from; None for a file
    without one. The file must exist and be current (:func:`read_posterior` checks both)."""
    with h5py.File(posterior_path(run, session), "r") as h5:
        return Source.from_attrs(h5.attrs)


def posterior_current(run: Run, data_sha256: str | None = None, session: int = 0) -> bool:
    """Whether ``run`` holds a readable posterior file (of session ``session``) made from the run's best
    checkpoint as it is now and from the data of checksum ``data_sha256`` (default: the session's own)."""
    path = posterior_path(run, session)
    try:
        return path.is_file() and run.is_current(posterior_source(run, session), data_sha256, session)
    except OSError:
        return False
