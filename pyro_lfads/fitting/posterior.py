"""Posterior averaging (Methods 1.10) through :class:`~pyro_lfads.fitting.predictive.PosteriorPredictive`,
and its output file.

For each trial, S samples of (g0, u) are drawn from the guide (dropout off),
the model is run on each, and the mean and standard deviation over samples
of rates, factors, generator states, inferred inputs and g0 are kept. The
draws are those of ``pyro_lfads.predictive(run, num_samples=S)``: its one pass
(:meth:`~pyro_lfads.fitting.predictive.PosteriorPredictive.draw`), the batch
holding each trial S times (its encoders read it once), one trace of the guide
and the model replayed on it. Trials go in chunks of at most ``max_rows``
trial-samples, and each chunk is written straight into the HDF5 file, so
memory stays bounded whatever the number of trials.

Output keys (lfads-torch's names; shapes per split, B trials, T bins):
    {split}_output_params       (B, T, N)  posterior mean rates, counts per bin
    {split}_output_params_std   (B, T, N)  their posterior standard deviation
    {split}_factors             (B, T, F)  posterior mean factors
    {split}_factors_std         (B, T, F)
    {split}_gen_states          (B, T, G)  posterior mean generator states
    {split}_co_means            (B, T, U)  posterior mean of the inferred inputs u
    {split}_co_stds             (B, T, U)  posterior standard deviation of u
    {split}_ic_mean             (B, G)     mean of q(g0)
    {split}_ic_std              (B, G)     standard deviation of q(g0)
    {split}_obs_mean            (B, T, N)  predicted mean observation, where it is not the
                                           rates (calcium: the fluorescence), and its _std
A data set cut from a continuous recording (:mod:`pyro_lfads.data.continuous`) also gets the windows of both
splits merged back into one series, L bins of the recording:
    continuous_output_params    (L, N)     posterior mean rates, counts per bin
    continuous_factors          (L, F)
    continuous_gen_states       (L, G)
    continuous_co_means         (L, U)     where the model has inferred inputs
plus the attributes ``samples``, ``time_bins`` and the record of what the file was made from
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
from tqdm.auto import tqdm

from pyro_lfads.fitting.batch import trial_chunks
from pyro_lfads.data import LFADSDataset, Split, as_sessions
from pyro_lfads.data.continuous import is_continuous, merge_splits
from pyro_lfads.errors import InputError
from pyro_lfads.data.atomic_files import atomic_hdf5
from pyro_lfads.fitting.derived_files import POSTERIOR_FILE, Source
from pyro_lfads.fitting.run import Run, dataset_sha256
from pyro_lfads.fitting.predictive import PosteriorPredictive
from pyro_lfads.fitting.run_lock import writes_into

SAMPLED_SITES = {"rates": "output_params", "factors": "factors", "gen_states": "gen_states", "u": "co",
                 "obs_mean": "obs_mean"}

#: The posterior means merged into ``continuous_{key}`` for a data set of a continuous recording's windows.
CONTINUOUS_KEYS = ("output_params", "factors", "gen_states", "co_means")


def posterior_path(run: Run | str | Path, session: int = 0) -> Path:
    """Where a run's posterior averages (of session ``session``) go."""
    return Run.open(run).session_file(POSTERIOR_FILE, session)


def posterior_chunks(model, guide, split: Split, *, samples: int, time_bins: int | None = None,
                     device: str = "cpu", max_rows: int = 4096, session: int = 0):
    """Yield (trial slice, {output key: array}) for consecutive chunks of ``split``'s trials
    (of session ``session``).

    Keys are those of the module docstring without the ``{split}_`` prefix. Each chunk is one pass of
    :class:`PosteriorPredictive` (the guide's encoders read each trial once, the model is replayed on
    the guide's trace); ``ic_mean`` and ``ic_std`` are the mean and standard deviation of the guide's
    q(g0) in that pass.
    """
    predictive = PosteriorPredictive(model, guide, samples, return_sites=list(SAMPLED_SITES))
    for trials, batch in trial_chunks(split, max_rows=max(1, max_rows // samples), device=device,
                                      time_bins=time_bins, session=session):
        draws, guide_trace = predictive.draw(batch)  # {site: (S, chunk trials, ...)}
        q_g0 = guide_trace.nodes["g0"]["fn"]
        out = {"ic_mean": q_g0.mean[::samples].cpu().numpy(), "ic_std": q_g0.stddev[::samples].cpu().numpy()}
        for site, key in SAMPLED_SITES.items():
            if site not in draws:
                continue
            mean_key, std_key = ("co_means", "co_stds") if key == "co" else (key, f"{key}_std")
            out[mean_key] = draws[site].mean(0).cpu().numpy()
            if site != "gen_states":
                out[std_key] = draws[site].std(0, correction=0).cpu().numpy()
        yield trials, out


@writes_into("run")
def write_posterior(run: Run | str | Path, data: LFADSDataset | Sequence[LFADSDataset] | None = None, *,
                    samples: int | None = None, device: str = "cpu", max_rows: int = 4096,
                    progress: bool = True) -> list[Path]:
    """Posterior averages of the run's best checkpoint for both splits of every session in ``data``
    (one data set, or a stitched run's list of sessions; default: the run's own, read again), into
    RUN_DIR; returns the files written."""
    run = Run.open(run)
    config, info = run.config, run.info
    samples = config.posterior_samples if samples is None else samples
    if samples < 1:
        raise InputError(f"samples: must be >= 1, got {samples}")
    sessions = run.sessions() if data is None else as_sessions(data)
    if len(sessions) != run.n_sessions:
        raise InputError(f"{run.directory}: was fitted on {run.n_sessions} sessions, got {len(sessions)} data sets")
    model, guide = run.fitted("best", device)
    sources = [run.source(None if data is None else dataset_sha256(dataset), session)
               for session, dataset in enumerate(sessions)]
    total = sum(d.train.n_trials + d.valid.n_trials for d in sessions)
    bar = tqdm(total=total, desc="posterior", unit="trial", disable=not progress, dynamic_ncols=True)
    paths = []
    for session, dataset in enumerate(sessions):
        path = posterior_path(run, session)
        with atomic_hdf5(path) as h5:
            h5.attrs["samples"] = samples
            h5.attrs["time_bins"] = info.n_time
            h5.attrs.update(sources[session].as_attrs())
            for name in ("train", "valid"):
                split = getattr(dataset, name)
                for trials, arrays in posterior_chunks(model, guide, split, samples=samples,
                                                       time_bins=config.time_bins, device=device,
                                                       max_rows=max_rows, session=session):
                    for key, values in arrays.items():
                        full = f"{name}_{key}"
                        if full not in h5:
                            h5.create_dataset(full, shape=(split.n_trials, *values.shape[1:]), dtype="f4")
                        h5[full][trials] = values
                    bar.update(trials.stop - trials.start)
            for key in CONTINUOUS_KEYS if is_continuous(dataset) else ():
                if f"train_{key}" in h5:
                    merged = merge_splits(dataset, h5[f"train_{key}"][()], h5[f"valid_{key}"][()])
                    h5.create_dataset(f"continuous_{key}", data=merged.astype(np.float32))
        paths.append(path)
    bar.close()
    return paths


def read_posterior(run: Run | str | Path, split: str = "valid", session: int = 0, *,
                   data_sha256: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of ``split`` (of session ``session``) from the run's posterior file, keyed without
    the split prefix (``split="continuous"``: the merged series of a continuous recording); refused when
    the file was made from another checkpoint than the run's best, or from other data than that of checksum
    ``data_sha256`` (default: the session's own)."""
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
