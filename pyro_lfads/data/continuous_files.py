"""Reading a continuous recording's arrays from a MATLAB ``.mat``, ``.npz`` or HDF5 file.

The file holds spike counts of consecutive bins under one key and, optionally, behaviour of the same
bins under another; :func:`read_continuous` returns them as ``(bins, neurons)`` and ``(bins, dims)``,
ready for :func:`pyro_lfads.data.continuous.continuous_dataset`.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from pyro_lfads.data.validation import listed_keys, one_line
from pyro_lfads.errors import InputError

SUFFIXES = (".mat", ".npz", ".h5", ".hdf5")


def read_continuous(path: str | os.PathLike[str], spikes_key: str = "spikes", behavior_key: str | None = None, *,
                    behavior_dims: Sequence[int] | None = None,
                    transpose: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Spikes (bins, neurons) and behaviour (bins, dims) or None, read from ``path``.

    Args:
        path: a MATLAB file (``.mat``: v5 through scipy, v7.3 through h5py, both in MATLAB's
            orientation), a ``.npz`` archive or an HDF5 file (``.h5``, ``.hdf5``).
        spikes_key, behavior_key: the arrays' keys; no behaviour when ``behavior_key`` is None.
        behavior_dims: the columns of the behaviour to keep (e.g. ``[0, 1]`` for x and y); None keeps all.
        transpose: the arrays are stored (neurons, bins) and (dims, bins), as many MATLAB files are.

    Raises:
        InputError: ``<path>: <key>: <problem>`` for a missing file or key, or an array that is not 2-D
            numbers (a 1-D behaviour is one dimension) or whose bins differ from the spikes'.
    """
    source = str(path)
    keys = [spikes_key] + ([] if behavior_key is None else [behavior_key])
    arrays = _read_keys(Path(path), source, keys)
    spikes = arrays[spikes_key]
    if spikes.ndim != 2 or spikes.dtype.kind not in "biuf":
        raise InputError(f"{source}: {spikes_key}: must be a 2-D array of counts, got shape {spikes.shape} "
                         f"and dtype {spikes.dtype}")
    spikes = spikes.T if transpose else spikes
    if behavior_key is None:
        return spikes, None
    behavior = arrays[behavior_key]
    if behavior.ndim not in (1, 2) or behavior.dtype.kind not in "biuf":
        raise InputError(f"{source}: {behavior_key}: must be a 1-D or 2-D array of numbers, got shape "
                         f"{behavior.shape} and dtype {behavior.dtype}")
    behavior = behavior[:, None] if behavior.ndim == 1 else behavior.T if transpose else behavior
    if behavior.shape[0] != spikes.shape[0]:
        raise InputError(f"{source}: {behavior_key}: has {behavior.shape[0]} bins but {spikes_key} has "
                         f"{spikes.shape[0]}{'' if transpose else ' (arrays stored (neurons, bins)? pass transpose=True)'}")
    if behavior_dims is not None:
        dims = np.asarray(behavior_dims)
        if dims.ndim != 1 or dims.size == 0 or dims.dtype.kind not in "iu" or dims.min() < 0 \
                or dims.max() >= behavior.shape[1]:
            raise InputError(f"{source}: behavior_dims: must be column indices in 0..{behavior.shape[1] - 1} "
                             f"of {behavior_key}, got {list(behavior_dims)}")
        behavior = behavior[:, dims]
    return spikes, behavior


def _read_keys(path: Path, source: str, keys: list[str]) -> dict[str, np.ndarray]:
    """The arrays under ``keys`` in the file at ``path``."""
    if not path.is_file():
        raise InputError(f"{source}: file does not exist" if not path.exists() else f"{source}: is not a file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"{source}: unknown file type {suffix or '(no suffix)'!r}; use {', '.join(SUFFIXES)}")
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as handle:
                found = {key: handle[key][()] for key in keys if isinstance(handle.get(key), h5py.Dataset)}
                if suffix == ".mat":  # MATLAB v7.3 stores column-major: h5py sees the axes reversed
                    found = {key: value.T for key, value in found.items()}
                names = list(handle)
        elif suffix == ".npz":
            if not zipfile.is_zipfile(path):
                raise InputError(f"{source}: is not a .npz file (not a zip archive, or truncated)")
            with np.load(path, allow_pickle=False) as archive:
                names = list(archive.files)
                found = {key: archive[key] for key in keys if key in names}
        elif suffix == ".mat":
            from scipy.io import loadmat, whosmat

            names = [entry[0] for entry in whosmat(path)]
            found = loadmat(path, variable_names=[key for key in keys if key in names])
        else:
            raise InputError(f"{source}: is not an HDF5 file (no HDF5 signature found)")
    except InputError:
        raise
    except Exception as exc:  # scipy, numpy, zipfile and h5py raise many kinds for damaged files
        raise InputError(f"{source}: cannot be read: {one_line(exc)}") from None
    for key in keys:
        if key not in found:
            raise InputError(f"{source}: {key}: missing; the file has keys: {listed_keys(names)}")
    return {key: found[key] for key in keys}
