"""Neural Latents Benchmark (NLB) tensor files -> LFADS data sets.

An NLB tensor file is HDF5 with the top-level keys that nlb_tools'
``make_train_input_tensors`` and ``make_eval_input_tensors`` write. Spikes are
counts per bin:

- ``train_spikes_{heldin,heldout}``: (trials, T, N_in or N_out); required.
- ``eval_spikes_heldin``: (trials, T, N_in); required.
- ``eval_spikes_heldout``: (trials, T, N_out), merged in from the evaluation
  target file (``make_eval_target_tensors``) to validate on the eval trials.
  Without it the eval trials are *test trials*: held-in spikes only, as
  ``make_eval_input_tensors(..., trial_split="test")`` writes them.
- ``{train,eval}_spikes_{heldin,heldout}_forward``: (trials, T_fwd, N_in or
  N_out), the bins after the observed window; both of a split or neither, and
  the eval trials' only with their held-out spikes, as the train trials'.
- ``{train,eval}_behavior``: (trials, T, B), e.g. hand velocity; NaN where
  NLB marks the behaviour unknown.
- ``{train,eval}_condition`` (or ``*_cond_idx`` when it holds one integer per
  trial): (trials,) condition ids >= 0.
- ``{train,eval}_truth``: (trials, T + T_fwd, N_in + N_out) true rates, and
  ``conversion_factor`` (truth / conversion_factor = expected counts per bin).
- ``bin_width_s`` (optional scalar): the bin width, seconds (this project writes it).

The LFADS data set: ``train`` <- NLB train trials, ``valid`` <- NLB eval
trials; with test trials, ``train`` and ``valid`` <- the NLB train trials, a
fifth of them (drawn with ``numpy.random.default_rng(0)``) validating, their
positions among the NLB train trials in ``{train,valid}_inds``, and the test
trials left to :func:`read_nlb_inputs` (what a submission is made of).
``encod_data`` = held-in spikes (trials, T, N_in); ``recon_data`` =
(trials, T + T_fwd, N_in + N_out), held-in then held-out neurons, observed
then forward bins; extras ``{train,valid}_behavior`` (float32) and
``{train,valid}_conditions`` (int64).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from pyro_lfads.data.containers import LFADSDataset
from pyro_lfads.data.from_arrays import coerce_dataset
from pyro_lfads.data.lfads_files import open_hdf5
from pyro_lfads.data.validation import fractional_problem, listed_keys, one_line, validate_dataset
from pyro_lfads.errors import InputError

#: LFADS split -> NLB split, when the eval trials have held-out spikes.
NLB_SPLITS = {"train": "train", "valid": "eval"}
REQUIRED_KEYS = ("train_spikes_heldin", "train_spikes_heldout", "eval_spikes_heldin")
FORWARD_KEYS = tuple(f"{nlb}_spikes_{part}_forward" for nlb in NLB_SPLITS.values() for part in ("heldin", "heldout"))
#: The key whose presence at the top level of an HDF5 file marks an NLB tensor file.
MARKER_KEY = "train_spikes_heldin"
#: With test trials, the fraction of the NLB train trials that validates the fit.
VALID_FRACTION = 0.2


@dataclass(frozen=True)
class NLBInputs:
    """What a model reads of an NLB file, in the file's trial order, and the shape of what it predicts.

    Attributes:
        train_heldin: (train trials, T, N_in) held-in spikes of the NLB train trials, float32 counts.
        eval_heldin: (eval trials, T, N_in) held-in spikes of the NLB eval trials.
        n_heldout: N_out, the held-out neurons a submission predicts.
        n_forward: T_fwd, the forward bins a submission predicts (0: none).
        test: whether the eval trials are test trials (no held-out spikes in the file).
    """

    train_heldin: np.ndarray
    eval_heldin: np.ndarray
    n_heldout: int
    n_forward: int
    test: bool


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


def read_nlb_inputs(path: str | os.PathLike[str]) -> NLBInputs:
    """The held-in spikes of an NLB file's train and eval (or test) trials, checked as
    :func:`load_nlb_tensors` checks the whole file.

    Raises:
        InputError: as :func:`load_nlb_tensors`.
    """
    source = str(path)
    parts, test = _nlb_parts(_read(Path(path), source), source)
    train, evaluation = parts["train"], parts["eval"]
    n_time, n_heldin = train["encod"].shape[1:]
    return NLBInputs(train["encod"], evaluation["encod"], train["recon"].shape[2] - n_heldin,
                     train["recon"].shape[1] - n_time, test)


def nlb_dataset(arrays: dict[str, np.ndarray], source: str) -> LFADSDataset:
    """The LFADS data set of an NLB file's arrays (by key), with its own checks but not yet validated.

    ``load_dataset`` validates it once, for the likelihood's support; ``load_nlb_tensors`` for counts.
    With test trials it warns that a fifth of the train trials validates the fit.

    Raises:
        InputError: one line ``<source>: <NLB key>: <problem>`` for missing keys, mismatched
            shapes, or spikes that are not non-negative whole numbers.
    """
    parts, test = _nlb_parts(arrays, source)
    if test:
        train, valid = _carve_valid(parts["train"], source)
        warnings.warn(
            f"{source}: eval_spikes_heldout: absent, so the {parts['eval']['encod'].shape[0]} eval trials are test "
            f"trials (held-in spikes only, for the submission); the fit validates on {valid['inds'].size} of the "
            f"{parts['train']['encod'].shape[0]} train trials (valid_inds); merge eval_spikes_heldout from NLB's "
            "evaluation target file to validate on the eval trials", stacklevel=3)
        splits = {"train": train, "valid": valid}
    else:
        splits = {split: parts[nlb] for split, nlb in NLB_SPLITS.items()}
    values: dict[str, object] = {}
    extras: dict[str, np.ndarray] = {}
    for split, part in splits.items():
        values[f"{split}_encod_data"], values[f"{split}_recon_data"] = part["encod"], part["recon"]
        values[f"{split}_truth"], values[f"{split}_inds"] = part.get("truth"), part.get("inds")
        for name in ("behavior", "conditions"):
            if part.get(name) is not None:
                extras[f"{split}_{name}"] = part[name]
    has_truth = values["train_truth"] is not None or values["valid_truth"] is not None
    if "conversion_factor" in arrays:
        if has_truth:
            values["conversion_factor"] = _factor(arrays["conversion_factor"], source)
        else:
            warnings.warn(f"{source}: conversion_factor: ignored: the file has no train_truth or eval_truth",
                          stacklevel=3)
    values["bin_width_s"] = arrays.get("bin_width_s")
    return coerce_dataset(values, source, {}, extras)


# ---------------------------------------------------------------- reading


def _nlb_parts(arrays: dict[str, np.ndarray], source: str) -> tuple[dict[str, dict], bool]:
    """({"train": part, "eval": part}, whether the eval trials are test trials), every array checked.

    A part holds ``encod`` (trials, T, N_in), ``recon`` (trials, T + T_fwd, N_in + N_out; None for
    test trials) and, where the file has them, ``behavior``, ``conditions`` and ``truth``.
    """
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise InputError(f"{source}: {', '.join(missing)}: missing; {_layout_hint(sorted(arrays))}")
    test = "eval_spikes_heldout" not in arrays
    forward = [key for key in FORWARD_KEYS if key in arrays]
    if test and any(key.startswith("eval_") for key in forward):
        raise InputError(f"{source}: {next(k for k in forward if k.startswith('eval_'))}: present, but "
                         "eval_spikes_heldout is missing; test trials have held-in spikes only")
    expected = FORWARD_KEYS[:2] if test else FORWARD_KEYS
    if forward and len(forward) < len(expected):
        absent = [key for key in expected if key not in arrays]
        raise InputError(
            f"{source}: {', '.join(absent)}: missing, but {', '.join(forward)} present; "
            f"forward-prediction spikes need {'both train keys' if test else 'all four keys'} or none"
        )
    parts: dict[str, dict] = {}
    reference: dict[str, np.ndarray] = {}  # train arrays that eval arrays must match
    for nlb in NLB_SPLITS.values():
        heldin = _counts(arrays, source, f"{nlb}_spikes_heldin")
        if nlb == "eval":
            _match(source, "eval_spikes_heldin", heldin, "train_spikes_heldin", reference["heldin"],
                   (None, "time bins", "neurons"))
        reference["heldin"] = heldin
        if nlb == "eval" and test:
            parts[nlb] = {"encod": heldin, "recon": None}
            continue
        heldout = _counts(arrays, source, f"{nlb}_spikes_heldout")
        _match(source, f"{nlb}_spikes_heldout", heldout, f"{nlb}_spikes_heldin", heldin, ("trials", "time bins"))
        if nlb == "eval":
            _match(source, "eval_spikes_heldout", heldout, "train_spikes_heldout", reference["heldout"],
                   (None, None, "neurons"))
        reference["heldout"] = heldout
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
        part = {"encod": heldin, "recon": recon}
        behavior_key = f"{nlb}_behavior"
        if behavior_key in arrays:
            behavior = _behavior(arrays, source, behavior_key)
            _match(source, behavior_key, behavior, f"{nlb}_spikes_heldin", heldin, ("trials", "time bins"))
            if "behavior" in reference:
                _match(source, behavior_key, behavior, "train_behavior", reference["behavior"],
                       (None, None, "behaviour dims"))
            reference["behavior"] = part["behavior"] = behavior
        part["conditions"] = _conditions(arrays, source, nlb, heldin.shape[0])
        if f"{nlb}_truth" in arrays:
            part["truth"] = _truth(arrays, source, f"{nlb}_truth", recon.shape)
        parts[nlb] = part
    return parts, test


def _carve_valid(part: dict, source: str) -> tuple[dict, dict]:
    """(train, valid) parts of the NLB train trials: a fifth (at least one) validates, drawn with
    ``default_rng(0)``; each part's ``inds`` are its trials' positions among the NLB train trials."""
    n_trials = part["encod"].shape[0]
    if n_trials < 2:
        raise InputError(f"{source}: train_spikes_heldin: has {n_trials} trial; with test trials, a fifth of "
                         "the train trials validates the fit, which needs at least 2")
    order = np.random.default_rng(0).permutation(n_trials)
    n_valid = max(1, round(VALID_FRACTION * n_trials))
    picks = np.sort(order[n_valid:]), np.sort(order[:n_valid])
    return tuple({**{key: value[inds] for key, value in part.items() if value is not None}, "inds": inds}
                 for inds in picks)


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


def _layout_hint(keys: list[str]) -> str:
    return (f"an NLB tensor file needs {', '.join(REQUIRED_KEYS)} (nlb_tools make_train_input_tensors and "
            "make_eval_input_tensors), and eval_spikes_heldout (make_eval_target_tensors) to validate on the eval "
            f"trials; the file has keys: {listed_keys(keys)}")


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
