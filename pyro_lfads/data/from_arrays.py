"""Building a data set from array-likes: dtypes converted, file keys kept in messages, then validated.

``dataset_from_arrays`` is the public way in; ``coerce_dataset`` is what it and
the file readers share (data and truth to float32, inds to int64).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pyro_lfads.data.containers import FIELDS, SPLITS, LFADSDataset, Split
from pyro_lfads.data.validation import (NUMBER_KINDS, check_dataset, check_options, dtype_problem,
                                        fractional_problem, one_line)
from pyro_lfads.errors import InputError


def dataset_from_arrays(
    train: np.ndarray,
    valid: np.ndarray,
    *,
    train_recon: np.ndarray | None = None,
    valid_recon: np.ndarray | None = None,
    train_ext_input: np.ndarray | None = None,
    valid_ext_input: np.ndarray | None = None,
    train_truth: np.ndarray | None = None,
    valid_truth: np.ndarray | None = None,
    train_inds: np.ndarray | None = None,
    valid_inds: np.ndarray | None = None,
    conversion_factor: float | None = None,
    bin_width_s: float | None = None,
    extras: Mapping[str, np.ndarray] | None = None,
    support: str = "counts",
    min_time_bins: int | None = None,
) -> LFADSDataset:
    """Build and validate a data set from array-likes (numpy arrays, lists, CPU tensors).

    Args:
        train, valid: (trials, time, neurons) data the encoders read, e.g.
            spike counts per bin. Also what the model reconstructs unless
            ``train_recon`` / ``valid_recon`` are given.
        train_recon, valid_recon: (trials, time, neurons) data to reconstruct
            when it differs from what the encoders read: ``train`` may then
            have fewer time bins (forward prediction) or other neurons
            (held-out neurons), with the same trials.
        train_ext_input, valid_ext_input: (trials, time, inputs) observed
            inputs to the generator; give both or neither.
        train_truth, valid_truth: (trials, time, neurons) true rates, in units
            where truth / conversion_factor = expected counts per bin.
        train_inds, valid_inds: (trials,) trial indices in the recording.
        conversion_factor: positive scalar for ``truth``; None means 1.
        bin_width_s: the width of one time bin, seconds (``save_dataset`` writes it; ``report`` and
            ``diagnose`` read it from the run); None when unknown.
        extras: other arrays, keys starting with ``train_`` or ``valid_``;
            ``save_dataset`` writes them under those keys.
        support, min_time_bins: as in ``load_dataset``.

    Returns:
        The data set, with data as float32 (arrays already float32 are used
        without copying) and inds as int64; ``source`` is ``"<arrays>"``.

    Raises:
        InputError: ``<arrays>: <key>: <problem>``, naming the array by its
            file key (``train`` is ``train_encod_data``, ``train_recon`` is
            ``train_recon_data``, ``train_ext_input`` keeps its name, ...).
    """
    source = "<arrays>"
    check_options(source, support, min_time_bins)
    values = {
        "train_encod_data": train,
        "train_recon_data": train if train_recon is None else train_recon,
        "train_ext_input": train_ext_input,
        "train_truth": train_truth,
        "train_inds": train_inds,
        "valid_encod_data": valid,
        "valid_recon_data": valid if valid_recon is None else valid_recon,
        "valid_ext_input": valid_ext_input,
        "valid_truth": valid_truth,
        "valid_inds": valid_inds,
        "conversion_factor": conversion_factor,
        "bin_width_s": bin_width_s,
    }
    extra_arrays = {key: as_array(value, source, str(key)) for key, value in (extras or {}).items()}
    dataset = coerce_dataset(values, source, {}, extra_arrays)
    check_dataset(dataset, support, min_time_bins, {})
    return dataset


def coerce_dataset(
    values: Mapping[str, object],
    source: str,
    names: dict[str, str],
    extras: dict[str, np.ndarray],
) -> LFADSDataset:
    """Convert data to float32 and inds to int64; None or absent means absent."""
    splits = {}
    for split in SPLITS:
        fields: dict[str, np.ndarray | None] = {}
        for name in FIELDS:
            key = f"{split}_{name}"
            value = values.get(key)
            label = names.get(key, key)
            if value is None:
                fields[name] = None
            elif name == "recon_data" and value is values.get(f"{split}_encod_data"):
                fields[name] = fields["encod_data"]
            elif name == "inds":
                fields[name] = _as_int64(value, source, label)
            else:
                fields[name] = _as_float32(value, source, label)
        splits[split] = Split(**fields)
    factor, width = values.get("conversion_factor"), values.get("bin_width_s")
    return LFADSDataset(
        train=splits["train"],
        valid=splits["valid"],
        conversion_factor=None if factor is None else _as_scalar(factor, source, "conversion_factor"),
        source=source,
        extras=extras,
        bin_width_s=None if width is None else _as_scalar(width, source, "bin_width_s"),
    )


def as_array(value: object, source: str, label: str) -> np.ndarray:
    """``value`` as a numpy array (an array is returned as it is)."""
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise InputError(f"{source}: {label}: cannot be made a numpy array: {one_line(exc)}") from None


def _as_float32(value: object, source: str, label: str) -> np.ndarray:
    array = as_array(value, source, label)
    if array.dtype.kind not in NUMBER_KINDS:
        raise InputError(f"{source}: {label}: {dtype_problem(array.dtype)}")
    if array.dtype == np.float32:
        return array
    with np.errstate(over="ignore", invalid="ignore"):
        converted = array.astype(np.float32)
    if array.dtype.kind == "f" and array.dtype.itemsize > 4:
        overflow = np.count_nonzero(np.isfinite(array) & ~np.isfinite(converted))
        if overflow:
            raise InputError(
                f"{source}: {label}: {overflow} values are too large for float32 (magnitude above 3.4e38)"
            )
    return converted


def _as_int64(value: object, source: str, label: str) -> np.ndarray:
    array = as_array(value, source, label)
    kind = array.dtype.kind
    need = "trial indices must be integers"
    if kind == "u" and array.size and array.max() > np.iinfo(np.int64).max:
        raise InputError(f"{source}: {label}: values are too large for int64")
    if kind in "iu":
        return array.astype(np.int64, copy=False)
    if kind != "f":
        raise InputError(f"{source}: {label}: {dtype_problem(array.dtype)}; {need}")
    nonfinite = np.count_nonzero(~np.isfinite(array))
    if nonfinite:
        raise InputError(f"{source}: {label}: {nonfinite} values are NaN or infinite; {need}")
    fractional = fractional_problem(array)
    if fractional:
        raise InputError(f"{source}: {label}: {fractional}; {need}")
    if array.size and np.abs(array).max() >= 2.0**63:
        raise InputError(f"{source}: {label}: values are too large for int64")
    return array.astype(np.int64)


def _as_scalar(value: object, source: str, key: str) -> float:
    """``value`` (``conversion_factor``, ``bin_width_s``) as a float; its sign and finiteness are validation's."""
    array = as_array(value, source, key)
    if array.size != 1 or array.dtype.kind not in "iuf":
        what = f"shape {array.shape}" if array.size != 1 else f"dtype {array.dtype}"
        raise InputError(f"{source}: {key}: must be a positive finite scalar, got {what}")
    return float(array.reshape(()))
