"""Neural Latents Benchmark (NLB) tensor files <-> LFADS data sets.

An NLB tensor file is HDF5 with the top-level keys that nlb_tools'
``make_train_input_tensors`` and ``make_eval_input_tensors`` write, with
``eval_spikes_heldout`` merged in from the evaluation target file
(``make_eval_target_tensors``). Spikes are counts per bin:

- ``{train,eval}_spikes_heldin``: (trials, T, N_in); required.
- ``{train,eval}_spikes_heldout``: (trials, T, N_out); required.
- ``{train,eval}_spikes_{heldin,heldout}_forward``: (trials, T_fwd, N_in or
  N_out), the bins after the observed window; all four or none.
- ``{train,eval}_behavior``: (trials, T, B), e.g. hand velocity; NaN where
  NLB marks the behaviour unknown.
- ``{train,eval}_condition`` (or ``*_cond_idx`` when it holds one integer per
  trial): (trials,) condition ids >= 0.
- ``{train,eval}_truth``: (trials, T + T_fwd, N_in + N_out) true rates, and
  ``conversion_factor`` (truth / conversion_factor = expected counts per bin).
- ``bin_width_s`` (optional scalar): the bin width, seconds (this project writes it).

The LFADS data set: ``train`` <- NLB train trials, ``valid`` <- NLB eval
trials; ``encod_data`` = held-in spikes (trials, T, N_in); ``recon_data`` =
(trials, T + T_fwd, N_in + N_out), held-in then held-out neurons, observed
then forward bins; extras ``{train,valid}_behavior`` (float32) and
``{train,valid}_conditions`` (int64).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import h5py
import numpy as np

from pyro_lfads.data.atomic_files import atomic_hdf5
from pyro_lfads.data.containers import LFADSDataset
from pyro_lfads.data.from_arrays import coerce_dataset
from pyro_lfads.data.lfads_files import open_hdf5
from pyro_lfads.data.validation import ensure_valid, fractional_problem, listed_keys, one_line, validate_dataset
from pyro_lfads.errors import InputError

#: LFADS split -> NLB split.
NLB_SPLITS = {"train": "train", "valid": "eval"}
REQUIRED_KEYS = tuple(
    f"{nlb}_spikes_{part}" for nlb in NLB_SPLITS.values() for part in ("heldin", "heldout")
)
FORWARD_KEYS = tuple(f"{key}_forward" for key in REQUIRED_KEYS)
#: The key whose presence at the top level of an HDF5 file marks an NLB tensor file.
MARKER_KEY = "train_spikes_heldin"


def is_nlb_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an HDF5 file with a top-level ``train_spikes_heldin``."""
    try:
        if not Path(path).is_file() or not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r") as handle:
            return has_nlb_layout(handle)
    except Exception:  # any unreadable file is simply not an NLB file
        return False


def has_nlb_layout(handle: h5py.File) -> bool:
    """Whether an open HDF5 file has a top-level ``train_spikes_heldin`` (False if that cannot be read)."""
    try:
        return MARKER_KEY in handle
    except Exception:  # an unreadable file is simply not an NLB file
        return False


def load_nlb_tensors(path: str | os.PathLike[str]) -> LFADSDataset:
    """Read an NLB tensor file (see the module docstring) as a validated LFADS data set.

    Returns:
        The data set with ``source`` = ``str(path)``; data and truth float32,
        behaviour float32, conditions int64; ``conversion_factor`` only when
        the file has truth.

    Raises:
        InputError: one line ``<path>: <NLB key>: <problem>`` for a missing or
            unreadable file, missing keys, mismatched shapes, or spikes that
            are not non-negative whole numbers.
    """
    source = str(path)
    dataset = nlb_dataset(_read(Path(path), source), source)
    validate_dataset(dataset, support="counts")
    return dataset


def nlb_dataset(arrays: dict[str, np.ndarray], source: str) -> LFADSDataset:
    """The LFADS data set of an NLB file's arrays (by key), with its own checks but not yet validated.

    ``load_dataset`` validates it once, for the likelihood's support; ``load_nlb_tensors`` for counts.

    Raises:
        InputError: one line ``<source>: <NLB key>: <problem>`` for missing keys, mismatched
            shapes, or spikes that are not non-negative whole numbers.
    """
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise InputError(f"{source}: {', '.join(missing)}: missing; {_layout_hint(missing, sorted(arrays))}")
    forward = [key for key in FORWARD_KEYS if key in arrays]
    if forward and len(forward) < len(FORWARD_KEYS):
        absent = [key for key in FORWARD_KEYS if key not in arrays]
        raise InputError(
            f"{source}: {', '.join(absent)}: missing, but {', '.join(forward)} present; "
            "forward-prediction spikes need all four keys or none"
        )

    values: dict[str, object] = {}
    extras: dict[str, np.ndarray] = {}
    reference: dict[str, np.ndarray] = {}  # train arrays that eval arrays must match
    has_truth = False
    for split, nlb in NLB_SPLITS.items():
        heldin, heldout = (_counts(arrays, source, f"{nlb}_spikes_{part}") for part in ("heldin", "heldout"))
        _match(source, f"{nlb}_spikes_heldout", heldout, f"{nlb}_spikes_heldin", heldin, ("trials", "time bins"))
        for part, array in (("heldin", heldin), ("heldout", heldout)):
            if split == "valid":
                _match(source, f"eval_spikes_{part}", array, f"train_spikes_{part}", reference[part],
                       (None, None, "neurons"))
            reference[part] = array
        recon = np.concatenate([heldin, heldout], axis=2)
        if forward:
            ahead_in, ahead_out = (
                _counts(arrays, source, f"{nlb}_spikes_{part}_forward") for part in ("heldin", "heldout")
            )
            for part, ahead, observed in (("heldin", ahead_in, heldin), ("heldout", ahead_out, heldout)):
                key = f"{nlb}_spikes_{part}"
                _match(source, f"{key}_forward", ahead, key, observed, ("trials", None, "neurons"))
            _match(source, f"{nlb}_spikes_heldout_forward", ahead_out, f"{nlb}_spikes_heldin_forward", ahead_in,
                   (None, "time bins"))
            recon = np.concatenate([recon, np.concatenate([ahead_in, ahead_out], axis=2)], axis=1)
        values[f"{split}_encod_data"] = heldin
        values[f"{split}_recon_data"] = recon

        behavior_key = f"{nlb}_behavior"
        if behavior_key in arrays:
            behavior = _behavior(arrays, source, behavior_key)
            _match(source, behavior_key, behavior, f"{nlb}_spikes_heldin", heldin, ("trials", "time bins"))
            if "behavior" in reference:
                _match(source, behavior_key, behavior, "train_behavior", reference["behavior"],
                       (None, None, "behaviour dims"))
            reference["behavior"] = behavior
            extras[f"{split}_behavior"] = behavior
        conditions = _conditions(arrays, source, nlb, heldin.shape[0])
        if conditions is not None:
            extras[f"{split}_conditions"] = conditions

        truth_key = f"{nlb}_truth"
        if truth_key in arrays:
            truth = _truth(arrays, source, truth_key, recon.shape)
            values[f"{split}_truth"] = truth
            has_truth = True
    if "conversion_factor" in arrays:
        if has_truth:
            values["conversion_factor"] = _factor(arrays["conversion_factor"], source)
        else:
            warnings.warn(f"{source}: conversion_factor: ignored: the file has no train_truth or eval_truth",
                          stacklevel=3)
    values["bin_width_s"] = arrays.get("bin_width_s")
    return coerce_dataset(values, source, {}, extras)


def save_nlb_tensors(dataset: LFADSDataset, path: str | os.PathLike[str], n_heldin: int) -> None:
    """Write ``dataset`` to ``path`` in the NLB tensor layout, atomically.

    The inverse of ``load_nlb_tensors``: ``n_heldin`` is the number of
    encoder neurons and T the number of encoder bins; recon neurons after
    the first ``n_heldin`` are held out, recon bins after the first T are
    forward bins. Writes spikes, truth, ``conversion_factor`` and ``bin_width_s``, and the
    extras ``*_behavior`` and ``*_conditions``; ext_input, inds and other
    extras are not part of the NLB layout and are left out with a warning.

    Raises:
        InputError: a data set not in the NLB layout (encoder neurons other
            than ``n_heldin``, encoder data that is not the first T bins and
            ``n_heldin`` neurons of recon data, forward bins in one split
            only), data that are not counts, a missing directory or a failed
            write.
    """
    path = Path(path)
    target = str(path)
    source = str(dataset.source)
    ensure_valid(dataset, support="counts")
    if isinstance(n_heldin, bool) or not isinstance(n_heldin, (int, np.integer)) or n_heldin < 1:
        raise InputError(f"{target}: n_heldin: must be a positive integer, got {n_heldin!r}")
    arrays: dict[str, np.ndarray] = {}
    forward = []
    for split, nlb in NLB_SPLITS.items():
        part = getattr(dataset, split)
        encod, recon = part.encod_data, part.recon_data
        n_time = encod.shape[1]
        if encod.shape[2] != n_heldin or recon.shape[2] < n_heldin:
            raise InputError(
                f"{source}: {split}_encod_data: has {encod.shape[2]} neurons and {split}_recon_data "
                f"{recon.shape[2]}, but n_heldin={n_heldin}; the encoder reads the held-in neurons"
            )
        if not np.array_equal(recon[:, :n_time, :n_heldin], encod):
            raise InputError(
                f"{source}: {split}_recon_data: its first {n_time} bins and {n_heldin} neurons differ from "
                f"{split}_encod_data; in the NLB layout they are the same held-in spikes"
            )
        forward.append(recon.shape[1] > n_time)
        arrays[f"{nlb}_spikes_heldin"] = encod
        arrays[f"{nlb}_spikes_heldout"] = recon[:, :n_time, n_heldin:]
        if forward[-1]:
            arrays[f"{nlb}_spikes_heldin_forward"] = recon[:, n_time:, :n_heldin]
            arrays[f"{nlb}_spikes_heldout_forward"] = recon[:, n_time:, n_heldin:]
        if part.truth is not None:
            arrays[f"{nlb}_truth"] = part.truth
        for name, nlb_name in (("behavior", "behavior"), ("conditions", "condition")):
            if f"{split}_{name}" in dataset.extras:
                arrays[f"{nlb}_{nlb_name}"] = dataset.extras[f"{split}_{name}"]
    if forward[0] != forward[1]:
        raise InputError(
            f"{source}: {'valid' if forward[0] else 'train'}_recon_data: has no forward bins but the other "
            "split has; NLB forward-prediction spikes need both splits or neither"
        )
    if dataset.conversion_factor is not None and any(key.endswith("_truth") for key in arrays):
        arrays["conversion_factor"] = np.asarray(float(dataset.conversion_factor), dtype=np.float64)
    if dataset.bin_width_s is not None:
        arrays["bin_width_s"] = np.asarray(float(dataset.bin_width_s), dtype=np.float64)
    left_out = [f"{split}_{name}" for split in NLB_SPLITS for name in ("ext_input", "inds")
                if getattr(getattr(dataset, split), name) is not None]
    left_out += [key for key in dataset.extras if not key.endswith(("_behavior", "_conditions"))]
    if left_out:
        warnings.warn(f"{target}: not written (not part of the NLB layout): {', '.join(left_out)}", stacklevel=2)
    if not path.parent.is_dir():
        raise InputError(f"{target}: directory {str(path.parent)!r} does not exist")
    try:
        with atomic_hdf5(path) as handle:
            for key, array in arrays.items():
                handle.create_dataset(key, data=array)
    except OSError as exc:
        raise InputError(f"{target}: cannot write: {one_line(exc)}") from None


# ---------------------------------------------------------------- reading


def _read(path: Path, source: str) -> dict[str, np.ndarray]:
    """Every top-level HDF5 dataset of the file, by key (groups are skipped)."""
    if not path.exists():
        raise InputError(f"{source}: file does not exist")
    if path.is_dir():
        raise InputError(f"{source}: is a directory, not a file")
    with open_hdf5(path, source, "is not an HDF5 file; an NLB tensor file is HDF5 (nlb_tools save_to_h5)") as handle:
        return read_nlb_arrays(handle, source)


def read_nlb_arrays(handle: h5py.File, source: str) -> dict[str, np.ndarray]:
    """Every top-level HDF5 dataset of an open file, by key (groups are skipped)."""
    arrays: dict[str, np.ndarray] = {}
    try:
        for key, node in handle.items():
            if isinstance(node, h5py.Dataset) and node.shape is not None:
                arrays[key] = np.asarray(node[()])
    except Exception as exc:
        raise InputError(
            f"{source}: is not a readable HDF5 file (truncated or corrupt?): {one_line(exc)}"
        ) from None
    return arrays


def _layout_hint(missing: list[str], keys: list[str]) -> str:
    hint = (
        f"an NLB tensor file needs {', '.join(REQUIRED_KEYS)} (nlb_tools make_train_input_tensors and "
        "make_eval_input_tensors)"
    )
    if "eval_spikes_heldout" in missing:
        hint += (
            "; eval_spikes_heldout is in NLB's evaluation target file (make_eval_target_tensors, under the "
            "data set's group) and must be merged in as a top-level key"
        )
    return f"{hint}; the file has keys: {listed_keys(keys)}"


def _numbers(arrays: dict[str, np.ndarray], source: str, key: str, axes: str) -> np.ndarray:
    """``arrays[key]`` as a 3-D float32 array, with no infinite values."""
    array = arrays[key]
    if array.dtype.kind not in "biuf":
        raise InputError(f"{source}: {key}: has dtype {array.dtype}, not numbers")
    if array.ndim != 3:
        raise InputError(f"{source}: {key}: must be 3-D ({axes}), got shape {array.shape}")
    infinite = int(np.count_nonzero(np.isinf(array)))
    if infinite:
        raise InputError(f"{source}: {key}: {infinite} values are infinite")
    return array.astype(np.float32, copy=False)


def _counts(arrays: dict[str, np.ndarray], source: str, key: str) -> np.ndarray:
    array = _numbers(arrays, source, key, "trials, time bins, neurons")
    nan = int(np.count_nonzero(np.isnan(array)))
    if nan:
        raise InputError(
            f"{source}: {key}: {nan} values are NaN (nlb_tools pads uneven trials with NaN); "
            "LFADS needs complete spike counts"
        )
    negative = int(np.count_nonzero(array < 0))
    if negative:
        raise InputError(f"{source}: {key}: {negative} values are negative, but spike counts must be >= 0")
    fractional = fractional_problem(array)
    if fractional:
        raise InputError(f"{source}: {key}: {fractional}, but spike counts must be integers")
    return array


def _behavior(arrays: dict[str, np.ndarray], source: str, key: str) -> np.ndarray:
    return _numbers(arrays, source, key, "trials, time bins, behaviour dims")


def _truth(arrays: dict[str, np.ndarray], source: str, key: str, shape: tuple[int, ...]) -> np.ndarray:
    truth = _numbers(arrays, source, key, "trials, time bins, neurons")
    if truth.shape != shape:
        raise InputError(
            f"{source}: {key}: has shape {truth.shape}, but the spikes give {shape} "
            "(trials, T + T_fwd, N_in + N_out)"
        )
    bad = int(np.count_nonzero(np.isnan(truth) | (truth < 0)))
    if bad:
        raise InputError(f"{source}: {key}: {bad} values are NaN or negative, but true rates must be >= 0")
    return truth


def _conditions(arrays: dict[str, np.ndarray], source: str, nlb: str, n_trials: int) -> np.ndarray | None:
    """Per-trial condition ids from ``{nlb}_condition``, else ``{nlb}_cond_idx`` if it is one."""
    key = f"{nlb}_condition"
    if key not in arrays:
        fallback = arrays.get(f"{nlb}_cond_idx")
        if fallback is None:
            return None
        if fallback.dtype.kind not in "iu" or fallback.shape != (n_trials,) or np.any(fallback < 0):
            warnings.warn(
                f"{source}: {nlb}_cond_idx: skipped: not one condition id >= 0 per trial "
                f"(shape {fallback.shape}, dtype {fallback.dtype}; {n_trials} trials)",
                stacklevel=4,
            )
            return None
        return fallback.astype(np.int64)
    array = arrays[key]
    if array.dtype.kind not in "iu":
        raise InputError(f"{source}: {key}: has dtype {array.dtype}; condition ids must be integers")
    if array.shape != (n_trials,):
        raise InputError(
            f"{source}: {key}: must be 1-D with one id per trial ({n_trials},), got shape {array.shape}"
        )
    negative = int(np.count_nonzero(array < 0))
    if negative:
        raise InputError(
            f"{source}: {key}: {negative} ids are negative; condition ids must be >= 0 "
            "(leave the key out when conditions are unknown)"
        )
    return array.astype(np.int64)


def _factor(value: np.ndarray, source: str) -> float:
    if value.size != 1 or value.dtype.kind not in "iuf" or not np.isfinite(value).all() or value.flat[0] <= 0:
        raise InputError(f"{source}: conversion_factor: must be a positive finite scalar, got {value.tolist()!r}")
    return float(value.flat[0])


def _match(
    source: str, key: str, array: np.ndarray, other_key: str, other: np.ndarray, axes: tuple[str | None, ...]
) -> None:
    """Require equal sizes along each axis that ``axes`` names (None: not compared)."""
    shape, other_shape = array.shape, other.shape
    for axis, name in enumerate(axes):
        if name is not None and shape[axis] != other_shape[axis]:
            raise InputError(
                f"{source}: {key}: has {shape[axis]} {name} but {other_key} has {other_shape[axis]} "
                f"(shapes {shape} and {other_shape})"
            )
