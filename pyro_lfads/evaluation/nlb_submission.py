"""A fitted run's rates as a Neural Latents Benchmark submission file, and that file read back.

The NLB evaluation (``nlb_tools.evaluation.evaluate``, the code that scores the leaderboard) reads an
HDF5 file with one group per data set name (:data:`NLB_NAMES`: ``mc_maze``, ``mc_rtt``, ``area2_bump``,
``dmfc_rsg``, ``mc_maze_large``, ``mc_maze_medium``, ``mc_maze_small``, each also with ``_20`` for 20 ms
bins). Each group holds rates in counts per bin (float32), the trials in the NLB file's order:

    train_rates_heldin          (train trials, T, N_in)
    train_rates_heldout         (train trials, T, N_out)    the vel R2 decoder is fitted on the train rates
    eval_rates_heldin           (eval trials, T, N_in)
    eval_rates_heldout          (eval trials, T, N_out)     co-bps
    eval_rates_heldin_forward   (eval trials, T_fwd, N_in)  fp-bps; both forward keys or neither
    eval_rates_heldout_forward  (eval trials, T_fwd, N_out)

The rates are posterior means over S draws of (g0, u) given each trial's held-in spikes, the only
spikes a test trial has (:func:`heldin_rates`), from the run's best checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from pyro_lfads.data.atomic_files import atomic_hdf5
from pyro_lfads.data.lfads_files import open_hdf5
from pyro_lfads.data.nlb import is_nlb_file, read_nlb_inputs
from pyro_lfads.data.validation import one_line
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.batch import Batch
from pyro_lfads.fitting.posterior import check_samples
from pyro_lfads.fitting.predictive import predictive
from pyro_lfads.fitting.run import Run
from pyro_lfads.models.likelihoods import data_support
from pyro_lfads.fitting.devices import resolve_device

#: The data sets the NLB evaluation scores, by the group names it reads (``_20``: 20 ms bins).
NLB_NAMES = tuple(f"{name}{suffix}" for name in ("mc_maze", "mc_rtt", "area2_bump", "dmfc_rsg", "mc_maze_large",
                                                 "mc_maze_medium", "mc_maze_small") for suffix in ("", "_20"))
#: The keys of a submission group: always the first four, the forward pair where the data has forward bins.
SUBMISSION_KEYS = ("train_rates_heldin", "train_rates_heldout", "eval_rates_heldin", "eval_rates_heldout",
                   "eval_rates_heldin_forward", "eval_rates_heldout_forward")


def heldin_rates(run: Run | str | Path, heldin: np.ndarray, *, samples: int | None = None, device: str = "cpu",
                 session: int = 0, max_rows: int = 4096, progress: bool = False) -> np.ndarray:
    """Posterior mean rates (trials, T_run, N), counts per bin, of trials given only their held-in spikes.

    ``heldin`` (trials, T, N_in) is what the encoders read; the generator runs the run's T_run bins
    (observed and forward) and the read-out gives every neuron, held-out ones too. ``samples`` draws
    per trial (default the config's ``posterior_samples``), each trial's seeded by the config's seed and the
    trial itself, as in ``posterior.h5``; at most
    ``max_rows`` trial-draws at a time.
    """
    run, device = Run.open(run), resolve_device(device)
    info = run.session_info(session)
    samples = check_samples(run, samples)
    if np.ndim(heldin) != 3 or not 0 < np.shape(heldin)[1] <= info.n_time:
        raise InputError(f"heldin: must be (trials, T, N_in) held-in spikes with T <= the run's {info.n_time} bins, "
                         f"got shape {np.shape(heldin)}")
    draw = predictive(run, num_samples=samples, return_sites=["rates"], device=device, seed=run.config.seed)
    chunk = max(1, max_rows // samples)
    means = []
    for start in tqdm(range(0, heldin.shape[0], chunk), desc="rates", unit="chunk", disable=not progress,
                      dynamic_ncols=True):
        encod = torch.as_tensor(np.ascontiguousarray(heldin[start:start + chunk]), dtype=torch.float32,
                                device=device)
        means.append(draw(Batch(encod, None, None, info.n_time, session=session))["rates"].mean(0).cpu().numpy())
    return np.concatenate(means).astype(np.float32)


def nlb_submission(run: Run | str | Path, data: str | os.PathLike[str] | None = None, *,
                   samples: int | None = None, device: str = "cpu", session: int = 0,
                   progress: bool = False) -> dict[str, np.ndarray]:
    """The arrays of a submission group (module docstring) for the NLB file ``data`` (default: the file
    the run was fitted on), its train and eval (or test) trials in the file's order.

    Raises:
        InputError: ``data`` is not an NLB tensor file; the run's observation model is not for counts,
            takes external inputs, or its neurons or bins are not those of ``data``.
    """
    run = Run.open(run)
    info = run.session_info(session)
    path = Path(info.data_path(run.directory) if data is None else data)
    if not is_nlb_file(path):
        raise InputError(f"{path}: not an NLB tensor file (no readable top-level train_spikes_heldin); a "
                         "submission needs the NLB file of the trials to predict (data)")
    if data_support(run.config.likelihood) != "counts":
        raise InputError(f"{run.directory}: its likelihood {run.config.likelihood!r} does not model spike counts; "
                         "an NLB submission holds rates of counts")
    if info.n_ext_inputs:
        raise InputError(f"{run.directory}: takes {info.n_ext_inputs} external inputs, which NLB files do not have")
    inputs = read_nlb_inputs(path)
    n_time, n_in = inputs.train_heldin.shape[1:]
    found = (("train_spikes_heldin", "held-in neurons", n_in, info.n_encod_neurons),
             ("train_spikes_heldout", "held-in + held-out neurons", n_in + inputs.n_heldout, info.n_neurons),
             ("train_spikes_heldin", "observed bins", n_time, info.n_encod_time),
             ("train_spikes_heldin", "observed + forward bins", n_time + inputs.n_forward, info.n_time))
    for key, what, got, fitted in found:
        if fitted is not None and got != fitted:  # a run of an earlier version records no n_encod_time
            raise InputError(f"{path}: {key}: {got} {what}, but the run {run.directory} was fitted on {fitted}")
    arrays = {}
    for split, heldin in (("train", inputs.train_heldin), ("eval", inputs.eval_heldin)):
        rates = heldin_rates(run, heldin, samples=samples, device=device, session=session, progress=progress)
        arrays[f"{split}_rates_heldin"] = rates[:, :n_time, :n_in]
        arrays[f"{split}_rates_heldout"] = rates[:, :n_time, n_in:]
        if split == "eval" and inputs.n_forward:
            arrays["eval_rates_heldin_forward"] = rates[:, n_time:, :n_in]
            arrays["eval_rates_heldout_forward"] = rates[:, n_time:, n_in:]
    return arrays


def write_nlb_submission(run: Run | str | Path, out: str | os.PathLike[str], name: str,
                         data: str | os.PathLike[str] | None = None, *, samples: int | None = None,
                         device: str = "cpu", session: int = 0, progress: bool = False) -> Path:
    """Write :func:`nlb_submission`'s arrays as group ``name`` of the submission file ``out`` (the other
    data sets' groups of an existing ``out`` are kept); returns ``out``."""
    check_name(name)
    arrays = nlb_submission(run, data, samples=samples, device=device, session=session, progress=progress)
    save_submission(out, name, arrays)
    return Path(out)


def save_submission(path: str | os.PathLike[str], name: str, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` (the keys of :data:`SUBMISSION_KEYS`, rates >= 0 in counts per bin) as group
    ``name`` of the submission file ``path``, float32 and gzip-compressed as ``nlb_tools.save_to_h5``
    writes them, atomically; the other groups of an existing file are kept, a group ``name`` replaced.

    Raises:
        InputError: an unknown name, missing or unknown keys, arrays that are not 3-D finite rates >= 0
            or whose trials, bins or neurons disagree, or an existing file that is not a submission.
    """
    check_name(name)
    arrays = _checked(arrays)
    path = Path(path)
    kept = {group: groups for group, groups in read_submission(path).items() if group != name} if path.exists() else {}
    if not path.parent.is_dir():
        raise InputError(f"{path}: directory {str(path.parent)!r} does not exist")
    with atomic_hdf5(path) as handle:
        for group, group_arrays in {**kept, name: arrays}.items():
            target = handle.create_group(group)
            for key, array in group_arrays.items():
                target.create_dataset(key, data=array.astype(np.float32), compression="gzip")


def read_submission(path: str | os.PathLike[str]) -> dict[str, dict[str, np.ndarray]]:
    """A submission file's arrays, {data set name: {key: array}}.

    Raises:
        InputError: a file that is missing, not HDF5, or holds anything but groups of 3-D arrays.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise InputError(f"{source}: {'is a directory, not a file' if path.is_dir() else 'file does not exist'}")
    with open_hdf5(path, source, "is not an HDF5 file; an NLB submission is HDF5 (nlb_tools save_to_h5)") as handle:
        try:
            result = {}
            for group, node in handle.items():
                if not isinstance(node, h5py.Group) or not all(isinstance(v, h5py.Dataset) for v in node.values()):
                    raise InputError(f"{source}: {group}: not a group of arrays; an NLB submission holds one group "
                                     "of rates per data set")
                result[group] = {key: node[key][()] for key in node}
            return result
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise InputError(f"{source}: is not a readable HDF5 file (truncated or corrupt?): {one_line(exc)}") from None


def check_name(name: str) -> None:
    """Refuse a data set name the NLB evaluation does not score (it would skip the group silently)."""
    if name not in NLB_NAMES:
        raise InputError(f"name: {name!r} is not a data set the NLB evaluation scores; one of "
                         f"{', '.join(NLB_NAMES)}")


def _checked(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``arrays`` as float32, after checking keys, values and shapes (:func:`save_submission`)."""
    unknown = sorted(set(arrays) - set(SUBMISSION_KEYS))
    missing = [key for key in SUBMISSION_KEYS[:4] if key not in arrays]
    forward = [key for key in SUBMISSION_KEYS[4:] if key in arrays]
    if unknown or missing or len(forward) == 1:
        what = unknown or missing or [key for key in SUBMISSION_KEYS[4:] if key not in arrays]
        raise InputError(f"arrays: {', '.join(what)}: {'unknown' if unknown else 'missing'}; a submission holds "
                         f"{', '.join(SUBMISSION_KEYS[:4])}, and both forward keys or neither")
    checked = {}
    for key in SUBMISSION_KEYS:
        if key not in arrays:
            continue
        array = np.asarray(arrays[key])
        if array.ndim != 3 or array.dtype.kind not in "iuf":
            raise InputError(f"arrays: {key}: must be a 3-D array of numbers (trials, bins, neurons), got "
                             f"shape {array.shape} and dtype {array.dtype}")
        if not np.all(np.isfinite(array) & (array >= 0)):
            raise InputError(f"arrays: {key}: rates must be finite and >= 0")
        checked[key] = array.astype(np.float32)
    pairs = (("train_rates_heldout", "train_rates_heldin", (0, 1)), ("eval_rates_heldout", "eval_rates_heldin", (0, 1)),
             ("eval_rates_heldin", "train_rates_heldin", (1, 2)), ("eval_rates_heldout", "train_rates_heldout", (2,)),
             ("eval_rates_heldin_forward", "eval_rates_heldin", (0, 2)),
             ("eval_rates_heldout_forward", "eval_rates_heldout", (0, 2)),
             ("eval_rates_heldout_forward", "eval_rates_heldin_forward", (1,)))
    for key, other, axes in pairs:
        if key in checked and any(checked[key].shape[a] != checked[other].shape[a] for a in axes):
            raise InputError(f"arrays: {key}: shape {checked[key].shape} does not fit {other}'s "
                             f"{checked[other].shape} (trials, bins, neurons)")
    return checked
