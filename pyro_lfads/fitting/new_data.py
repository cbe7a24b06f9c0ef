"""A fitted run applied to new trials (another day, a test split): their posterior averages in a file of
their own, ``pyro-lfads posterior RUN --data NEW --out FILE``.

The new trials are checked against what the run was fitted on, each problem one line naming the file and
key: the neurons the model reconstructs and the encoders read, the external inputs, the time bins (as the
run cuts them, ``config.time_bins``), the values the likelihood can score (counts for Poisson, ...) and
the bin width where both record one.

Splits: a file with both splits has both run and written under their own keys; a file with one split
only (all its keys ``train_*``, or all ``valid_*``) has that one. Which split a trial sits in changes
nothing: every trial is run the same way, with draws seeded by the run's seed and the trial itself, so a
trial that is also in the run's own data gets the very averages ``posterior.h5`` holds for it.

The output has ``posterior.h5``'s keys and attributes (:mod:`pyro_lfads.fitting.posterior`), its record
naming the new data's checksum. It is never one of the run's own files: the run's ``posterior.h5`` is made
by ``write_posterior`` alone.
"""

from __future__ import annotations

import math
import os
from fnmatch import fnmatch
from pathlib import Path

from tqdm.auto import tqdm

from pyro_lfads.data import LFADSDataset, ensure_valid
from pyro_lfads.data.containers import SPLITS
from pyro_lfads.data.lfads_files import HDF5_SUFFIXES
from pyro_lfads.data.loading import load_trials
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.derived_files import DERIVED_PATTERNS
from pyro_lfads.fitting.posterior import check_means, check_samples, write_posterior_file
from pyro_lfads.fitting.run import BEST, CONFIG_FILE, CURVE_FILE, INFO_FILE, LAST, Run, RunInfo, dataset_sha256
from pyro_lfads.models.likelihoods import data_support
from pyro_lfads.fitting.devices import resolve_device

#: The files of a run directory that the output may never replace (patterns relative to RUN_DIR).
RUN_FILES = (CONFIG_FILE, INFO_FILE, CURVE_FILE, LAST, BEST, *DERIVED_PATTERNS)


def write_posterior_of(run: Run | str | Path, data: LFADSDataset | str | os.PathLike[str],
                       out: str | os.PathLike[str], *, session: int = 0, samples: int | None = None,
                       means: str = "average", device: str = "cpu", max_rows: int = 4096,
                       progress: bool = True) -> Path:
    """Posterior averages of the run's best checkpoint for the trials of ``data``, written to ``out``.

    Args:
        run: a Run or its directory.
        data: an LFADS data file (HDF5 or ``.npz``, one split or both; module docstring) or a data set.
        out: the HDF5 file to write (``.h5``/``.hdf5``); not the data file, nor a file of the run.
        session: the session the trials were recorded in (a stitched run's; 0 otherwise).
        samples: draws per trial (default: the run's ``config.posterior_samples``).
        means, device, max_rows, progress: as in :func:`~pyro_lfads.fitting.posterior.write_posterior`.

    Returns:
        ``Path(out)``.

    Raises:
        InputError: one line: a file the trials cannot come from, trials that do not fit the run, an ``out``
            that would replace the data or a file of the run.
    """
    run, device = Run.open(run), resolve_device(device)
    run.session_info(session)  # refuses a session the run does not have
    samples, means = check_samples(run, samples), check_means(means)
    out = Path(out)
    check_out(run, out, data)
    support = data_support(run.config.likelihood)
    if isinstance(data, LFADSDataset):
        ensure_valid(data, support=support)
        dataset, splits = data, SPLITS
    else:
        dataset, splits = load_trials(data, support=support)
    check_fits_run(dataset, splits, run, session)
    source = run.source(dataset_sha256(dataset), session)
    total = sum(getattr(dataset, name).n_trials for name in splits)
    with tqdm(total=total, desc="posterior", unit="trial", disable=not progress, dynamic_ncols=True) as bar:
        write_posterior_file(out, run, dataset, source=source, splits=splits, session=session, samples=samples,
                             means=means, device=device, max_rows=max_rows, bar=bar)
    return out


def check_out(run: Run, out: Path, data: object) -> None:
    """Refuse an ``out`` that is not an HDF5 file name, is the data file, or is a file of the run directory."""
    if out.suffix.lower() not in HDF5_SUFFIXES:
        raise InputError(f"out: {out}: name an HDF5 file (.h5 or .hdf5) for the posterior of the new trials")
    target = out.resolve()
    if not isinstance(data, LFADSDataset) and target == Path(data).resolve():
        raise InputError(f"out: {out} is the data file itself; choose another file")
    try:
        inside = target.relative_to(run.directory.resolve()).as_posix()
    except ValueError:
        return
    if any(fnmatch(inside, pattern) for pattern in RUN_FILES):
        raise InputError(f"out: {out} is {run.directory}'s own {inside}, which this never replaces (the run's "
                         "posterior is written for its own data only); choose another file")


def check_fits_run(dataset: LFADSDataset, splits, run: Run, session: int) -> None:
    """Refuse trials whose neurons, external inputs, time bins or bin width are not those the run (its session
    ``session``) was fitted on; the message names the data file, its key and both numbers."""
    info: RunInfo = run.session_info(session)
    time_bins = run.config.time_bins
    fitted = f"{run.directory} was fitted on"
    for name in splits:
        part = getattr(dataset, name)
        ext = 0 if part.ext_input is None else part.ext_input.shape[2]
        checks = ((f"{name}_recon_data", part.n_neurons, info.n_neurons, "neurons"),
                  (f"{name}_encod_data", part.encod_data.shape[2], info.n_encod_neurons, "encoder neurons"),
                  (f"{name}_ext_input", ext, info.n_ext_inputs, "external inputs"),
                  (f"{name}_recon_data", _cut(part.n_time, time_bins), info.n_time, "time bins"),
                  (f"{name}_encod_data", _cut(part.encod_data.shape[1], time_bins),
                   _cut(info.n_encod_time, time_bins), "encoder time bins"))
        for key, got, expected, what in checks:
            if expected is not None and got != expected:
                cut = f" (as the run's time_bins={time_bins} cuts them)" if "time" in what and time_bins else ""
                raise InputError(f"{dataset.source}: {key}: {got} {what}{cut}, but {fitted} {expected}")
    width, recorded = dataset.bin_width_s, info.bin_width_s
    if width is not None and recorded is not None and not math.isclose(width, recorded, rel_tol=1e-6):
        raise InputError(f"{dataset.source}: bin_width_s: {width * 1000:g} ms bins, but {fitted} "
                         f"{recorded * 1000:g} ms bins")


def _cut(n_time: int | None, time_bins: int | None) -> int | None:
    """The bins a run reads of ``n_time``: its first ``time_bins`` when the config sets them."""
    return n_time if n_time is None or time_bins is None else min(n_time, time_bins)
