"""``pyro-lfads diagnose``: the checks variational inference does not give for free, on a fitted run.

Writes into RUN_DIR:
    inference_data.nc   the split's posterior draws as arviz InferenceData (NetCDF;
                        ``az.from_netcdf`` reads it), see :func:`diagnostics.to_inference_data`
    diagnostics.json    {"summary": {...}, "per_trial": {"trial", "khat", "elbo", "iwae"}, "source": {...}}
(for session k of a stitched run ``inference_data_session{k}.nc`` and ``diagnostics_session{k}.json``).

Both record what they were made from (:class:`~pyro_lfads.fitting.derived_files.Source`: in
diagnostics.json under ``source``, in inference_data.nc as the posterior group's ``source_*``
attributes); :func:`read_diagnostics` refuses them when that is not the run's best checkpoint as it is now.

The summary (also returned) holds the PSIS k-hat distribution of the
importance weights per trial, the ELBO and IWAE estimates of log p(x) per
trial (nats) and the posterior predictive checks (:mod:`pyro_lfads.diagnostics.predictive_checks`).
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from pyro_lfads.data import LFADSDataset
from pyro_lfads.diagnostics.importance import elbo_per_trial, iwae_per_trial, log_importance_weights, pareto_khat, to_inference_data
from pyro_lfads.errors import InputError
from pyro_lfads.data.atomic_files import atomic_path, write_atomically
from pyro_lfads.diagnostics.predictive_checks import PPCResult, posterior_predictive_checks
from pyro_lfads.fitting.derived_files import DIAGNOSTICS_FILE, INFERENCE_DATA_FILE, Source
from pyro_lfads.fitting.run import Run, dataset_sha256
from pyro_lfads.fitting.run_lock import writes_into
from pyro_lfads.fitting.devices import resolve_device

DEFAULT_DRAWS, DEFAULT_IMPORTANCE_SAMPLES = 20, 200
#: k-hat thresholds of Yao et al. (2018): below 0.5 good, 0.5-0.7 usable, above 0.7 unreliable.
KHAT_GOOD, KHAT_OK = 0.5, 0.7


@writes_into("run")
def diagnose_run(run: Run | str | Path, dataset: LFADSDataset | None = None, *, split: str = "valid",
                 samples: int = DEFAULT_DRAWS, importance_samples: int = DEFAULT_IMPORTANCE_SAMPLES,
                 bin_ms: float | None = None, device: str = "cpu", progress: bool = True, session: int = 0) -> dict:
    """Diagnose the best checkpoint of ``run`` (a Run or its directory) on ``split`` of ``dataset`` (default:
    the run's own; session ``session``'s of a stitched run); write the two files; return the summary.

    ``samples``: posterior draws per trial kept in the InferenceData and used by the
    predictive checks. ``importance_samples``: draws per trial for k-hat and IWAE
    (PSIS wants a few hundred). ``bin_ms`` labels the time coordinate in ms: by default the bin width
    the run records (:meth:`~pyro_lfads.fitting.run.Run.bin_ms`; bins when it records none); a
    ``bin_ms`` that contradicts it is refused.
    Sampling is seeded with the run's seed, so the files are reproducible.
    """
    if split not in ("train", "valid"):
        raise InputError(f"split: expected train or valid, got {split!r}")
    for name, value in (("samples", samples), ("importance_samples", importance_samples)):
        if value < 2:
            raise InputError(f"{name}: must be >= 2, got {value}")
    run, device = Run.open(run), resolve_device(device)
    config = run.config
    bin_ms = run.bin_ms(bin_ms, session)
    model, guide = run.fitted("best", device)
    source = run.source(None if dataset is None else dataset_sha256(dataset), session)
    dataset = run.scored_data(dataset, session)
    data_split = getattr(dataset, split)
    conditions = dataset.extras.get(f"{split}_conditions")
    options = dict(time_bins=config.time_bins, device=device, session=session)
    steps = tqdm(total=3, desc="diagnose", unit="step", disable=not progress, dynamic_ncols=True)

    torch.manual_seed(config.seed)
    log_w = log_importance_weights(model, guide, data_split, samples=importance_samples, **options)
    with warnings.catch_warnings():  # a large k-hat is the finding, reported below, not a warning
        warnings.filterwarnings("ignore", "Estimated shape parameter", UserWarning)
        khat = pareto_khat(log_w)
    elbo, iwae = elbo_per_trial(log_w), iwae_per_trial(log_w)
    steps.update()
    inference_data = to_inference_data(model, guide, data_split, samples=samples, bin_ms=bin_ms,
                                       conditions=conditions, **options)
    steps.update()
    ppc = predictive_checks(inference_data)
    summary = {"split": split, "n_trials": data_split.n_trials, "importance_samples": importance_samples,
               "khat_median": float(np.median(khat)), "khat_max": float(np.max(khat)),
               "khat_fraction_below_0_5": float(np.mean(khat < KHAT_GOOD)),
               "khat_fraction_below_0_7": float(np.mean(khat < KHAT_OK)),
               "elbo_per_trial": float(elbo.mean()), "iwae_per_trial": float(iwae.mean()),
               "iwae_minus_elbo": float(np.mean(iwae - elbo)), **ppc.summary}
    per_trial = {"trial": inference_data.posterior["trial"].values.tolist(), "khat": khat.tolist(),
                 "elbo": elbo.tolist(), "iwae": iwae.tolist()}
    inference_data.posterior.attrs.update(source.as_attrs())
    write_atomically(run.session_file(INFERENCE_DATA_FILE, session), netcdf_bytes(inference_data))
    with atomic_path(run.session_file(DIAGNOSTICS_FILE, session)) as tmp:
        tmp.write_text(json.dumps({"summary": summary, "per_trial": per_trial, "source": source.as_attrs()},
                                  indent=1))
    steps.update()
    steps.close()
    return summary


def netcdf_bytes(inference_data: az.InferenceData) -> memoryview:
    """The NetCDF file of ``inference_data`` (one group per InferenceData group, what ``az.from_netcdf``
    reads), built in memory: written by :func:`write_atomically`, a full disk fails as one ``OSError``
    where HDF5 writing to the disk itself would crash the interpreter at exit."""
    tree = xr.DataTree.from_dict({f"/{group}": getattr(inference_data, group) for group in inference_data.groups()})
    buffer = io.BytesIO()
    tree.to_netcdf(buffer, engine="h5netcdf")
    return buffer.getbuffer()


def predictive_checks(inference_data: az.InferenceData) -> PPCResult:
    """The posterior predictive checks of an InferenceData written by :func:`diagnose_run`."""
    observed = inference_data.observed_data["obs"].values
    replicated = inference_data.posterior_predictive["obs"].values
    replicated = replicated.reshape(-1, *replicated.shape[2:])  # (chain * draw, trial, time, neuron)
    coords = inference_data.posterior.coords
    conditions = coords["condition"].values if "condition" in coords else None
    return posterior_predictive_checks(observed, replicated, conditions=conditions)


def read_diagnostics(run: Run | str | Path, data_sha256: str | None = None,
                     session: int = 0) -> tuple[az.InferenceData, dict]:
    """(InferenceData, {"summary", "per_trial", "source"}) written by :func:`diagnose_run` (of session
    ``session``); refused when they were made from another checkpoint than the run's best, or from other data
    than that of checksum ``data_sha256`` (default: the session's own)."""
    run = Run.open(run)
    run_dir = run.directory
    paths = run.session_file(INFERENCE_DATA_FILE, session), run.session_file(DIAGNOSTICS_FILE, session)
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise InputError(f"{run_dir}: no {' or '.join(missing)}; run 'pyro-lfads diagnose {run_dir}' first")
    try:
        inference_data, diagnostics = az.from_netcdf(str(paths[0])), json.loads(paths[1].read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{run_dir}: unreadable diagnostics ({type(exc).__name__}: {exc}); "
                         f"run 'pyro-lfads diagnose {run_dir}' again") from None
    run.check_source(paths[1], diagnostics_source(diagnostics), "diagnose_run", data_sha256, session)
    run.check_source(paths[0], Source.from_attrs(inference_data.posterior.attrs), "diagnose_run", data_sha256,
                     session)
    return inference_data, diagnostics


def diagnostics_source(diagnostics: dict) -> Source | None:
    """The record of what a diagnostics.json (read as ``diagnostics``) was made from; None without one."""
    record = diagnostics.get("source") if isinstance(diagnostics, dict) else None
    return Source.from_attrs(record) if isinstance(record, dict) else None


def diagnostics_current(run: Run, data_sha256: str | None = None, session: int = 0) -> bool:
    """Whether ``run`` holds both diagnostics files (of session ``session``) and its diagnostics.json records
    the run's best checkpoint as it is now and the data of checksum ``data_sha256`` (default: the session's
    own)."""
    if not run.session_file(INFERENCE_DATA_FILE, session).is_file():
        return False
    try:
        diagnostics = json.loads(run.session_file(DIAGNOSTICS_FILE, session).read_text())
    except (OSError, ValueError):
        return False
    return run.is_current(diagnostics_source(diagnostics), data_sha256, session)
