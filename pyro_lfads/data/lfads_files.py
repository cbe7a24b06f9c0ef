"""The LFADS file formats: HDF5 (``.h5``, ``.hdf5``) and ``.npz``, read into and written from data sets.

The layout is that of the original LFADS and of lfads-torch; see
:func:`pyro_lfads.data.loading.load_dataset` for the keys and shapes.
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np

from pyro_lfads.data.atomic_files import atomic_hdf5, write_atomically
from pyro_lfads.data.containers import FIELDS, SPLITS, LFADSDataset
from pyro_lfads.data.from_arrays import coerce_dataset
from pyro_lfads.data.validation import EXTRA_KINDS, RESERVED_KEYS, ensure_valid, listed_keys, one_line
from pyro_lfads.errors import InputError

HDF5_SUFFIXES = (".h5", ".hdf5")
NPZ_SUFFIXES = (".npz",)

_LEGACY_KEYS = tuple(f"{split}_data" for split in SPLITS)
_MODERN_KEYS = tuple(f"{split}_{name}" for split in SPLITS for name in ("encod_data", "recon_data"))


def read_lfads_file(path: Path, source: str, handle: h5py.File | None = None, *,
                    one_split: bool = False) -> tuple[LFADSDataset, dict[str, str], tuple[str, ...]]:
    """Read an LFADS HDF5 or ``.npz`` file into a data set, not yet validated.

    Args:
        path: the file; its suffix picks the format.
        source: how messages name the file.
        handle: ``path`` already open as HDF5 (``load_dataset`` opens it once), or None.
        one_split: accept a file that holds only one of the splits (all its ``train_*`` or all its
            ``valid_*`` keys): the other split is then the same trials again (the same arrays).

    Returns:
        (data set with data as float32, the file key of each standard key where they differ,
        e.g. ``train_recon_data`` -> ``train_data`` in the older layout, the splits the file holds).

    Raises:
        InputError: the file cannot be read, misses keys or holds arrays that are not numbers.
    """
    arrays, problems, all_keys = _read_file(path, source, handle)
    names: dict[str, str] = {}
    held = SPLITS
    if one_split:
        held = _held_splits(set(arrays) | set(problems))
        if len(held) == 1:
            _stand_in(arrays, problems, names, held[0])
    dataset, file_names = _dataset_from_file(arrays, problems, all_keys, source)
    file_names = {key: names.get(name, name) for key, name in file_names.items()}
    return dataset, {**names, **file_names}, held


def _held_splits(keys: set[str]) -> tuple[str, ...]:
    """The splits with data keys (``{split}_encod_data``, ``{split}_recon_data`` or ``{split}_data``) among ``keys``;
    both when neither has any (the reader then names what is missing)."""
    held = tuple(split for split in SPLITS
                 if any(f"{split}_{name}" in keys for name in ("encod_data", "recon_data", "data")))
    return held or SPLITS


def _stand_in(arrays: dict[str, np.ndarray], problems: dict[str, str], names: dict[str, str], held: str) -> None:
    """Copy every ``{held}_*`` key to the other split's key (the same object), recording in ``names`` the key it
    stands for, so that messages name the file's key."""
    other = next(split for split in SPLITS if split != held)
    for found in (arrays, problems):
        for key in [key for key in found if key.startswith(f"{held}_")]:
            copy = f"{other}_{key[len(held) + 1:]}"
            found[copy] = found[key]
            names[copy] = key


def save_dataset(dataset: LFADSDataset, path: str | os.PathLike[str]) -> None:
    """Write ``dataset`` to ``path`` in the LFADS format, atomically.

    The suffix picks the format: ``.h5`` / ``.hdf5`` (HDF5, gzip-compressed)
    or ``.npz`` (compressed numpy archive). Keys: ``train_encod_data``,
    ``train_recon_data``, ``valid_encod_data``, ``valid_recon_data``; then
    ``*_ext_input``, ``*_truth``, ``*_inds``, ``conversion_factor`` and
    ``bin_width_s`` (seconds, a scalar) when present; then ``extras`` under
    their own keys. Arrays are written with their own dtypes (``str`` extras
    as UTF-8 strings in HDF5).

    The file is written to a temporary file in the same directory and moved
    into place with ``os.replace``: an interrupted save leaves any earlier
    file at ``path`` untouched and no partial file behind.

    Raises:
        InputError: unknown suffix, missing directory, a write that fails
            with an OS error, or a data set that ``validate_dataset`` rejects
            with ``support="real"`` (wrong shapes, NaN/Inf, ...).
    """
    path = Path(path)
    target = str(path)
    suffix = path.suffix.lower()
    if suffix not in HDF5_SUFFIXES + NPZ_SUFFIXES:
        raise InputError(f"{target}: {_suffix_problem(suffix)}")
    ensure_valid(dataset, support="real")
    arrays = file_arrays(dataset)
    directory = path.parent
    if not directory.is_dir():
        raise InputError(f"{target}: directory {str(directory)!r} does not exist")
    try:
        if suffix in NPZ_SUFFIXES:
            archive = io.BytesIO()  # a handle: np.savez would append ".npz" to a path
            np.savez_compressed(archive, **arrays)
            write_atomically(path, archive.getbuffer())
        else:
            with atomic_hdf5(path) as handle:
                fill_hdf5(handle, arrays)
    except OSError as exc:
        raise InputError(f"{target}: cannot write: {one_line(exc)}") from None


def _read_file(
    path: Path, source: str, handle: h5py.File | None
) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """Read the keys ``load_dataset`` uses.

    Returns (arrays, problems, all_keys): the arrays read, a problem per key
    that is wanted but could not be read as an array, and every top-level
    key of the file. Raises InputError when the file itself cannot be read.
    """
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"{source}: file does not exist") from None
    except OSError as exc:
        raise InputError(f"{source}: cannot be read: {one_line(exc)}") from None
    if path.is_dir():
        raise InputError(f"{source}: is a directory, not a file")
    suffix = path.suffix.lower()
    if suffix not in HDF5_SUFFIXES + NPZ_SUFFIXES:
        raise InputError(f"{source}: {_suffix_problem(suffix)}")
    if info.st_size == 0:
        raise InputError(f"{source}: is empty (0 bytes)")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InputError(f"{source}: cannot be read: {one_line(exc)}") from None
    if suffix in NPZ_SUFFIXES:
        return _read_npz(path, source)
    return _read_hdf5(path, source, handle)


def check_hdf5_signature(path: Path, source: str, problem: str) -> None:
    """Raise InputError ``<source>: <problem>`` unless ``path`` starts with the HDF5 signature."""
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except Exception as exc:  # h5py raises many kinds for unreadable files
        raise InputError(f"{source}: cannot be read: {one_line(exc)}") from None
    if not is_hdf5:
        raise InputError(f"{source}: {problem}")


def open_hdf5(path: Path, source: str, not_hdf5: str) -> h5py.File:
    """``path`` opened for reading; InputError ``<source>: <not_hdf5>`` without the HDF5 signature, and a
    one-line error for a damaged file (h5py and HDF5 raise OSError, KeyError, ValueError, RuntimeError, ...)."""
    check_hdf5_signature(path, source, not_hdf5)
    try:
        return h5py.File(path, "r")
    except Exception as exc:
        raise InputError(
            f"{source}: is not a readable HDF5 file (truncated or corrupt?): {one_line(exc)}"
        ) from None


def _wanted(key: str) -> bool:
    return key in ("conversion_factor", "bin_width_s") or key.startswith(("train_", "valid_"))


def _read_hdf5(
    path: Path, source: str, handle: h5py.File | None
) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    if handle is not None:
        return _read_hdf5_keys(handle, source)
    with open_hdf5(path, source, "is not an HDF5 file (no HDF5 signature found)") as handle:
        return _read_hdf5_keys(handle, source)


def _read_hdf5_keys(handle: h5py.File, source: str) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """The wanted arrays of an open HDF5 file, a problem per wanted key it cannot read, and all its keys."""
    try:
        all_keys = list(handle.keys())
    except Exception as exc:
        raise InputError(
            f"{source}: is not a readable HDF5 file (truncated or corrupt?): {one_line(exc)}"
        ) from None
    arrays: dict[str, np.ndarray] = {}
    problems: dict[str, str] = {}
    for key in all_keys:
        if not _wanted(key):
            continue
        try:
            node = handle.get(key)
            if node is None:
                problems[key] = "is a broken HDF5 link"
            elif not isinstance(node, h5py.Dataset):
                problems[key] = f"is an HDF5 {type(node).__name__}, not an array"
            elif node.shape is None:
                problems[key] = "holds no data (an empty HDF5 dataspace)"
            else:
                string_info = h5py.check_string_dtype(node.dtype)
                if string_info is not None and string_info.length is None:
                    arrays[key] = np.array(node.asstr()[()], dtype=str)
                else:
                    arrays[key] = np.asarray(node[()])
        except Exception as exc:
            problems[key] = _unreadable(exc)
    return arrays, problems, all_keys


def _read_npz(path: Path, source: str) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    # numpy and zipfile raise ValueError, OSError, EOFError, BadZipFile,
    # zlib.error, ... for damaged archives; any of them means unreadable.
    if not zipfile.is_zipfile(path):
        raise InputError(f"{source}: is not a .npz file (not a zip archive, or truncated)")
    arrays: dict[str, np.ndarray] = {}
    problems: dict[str, str] = {}
    try:
        archive = np.load(path, allow_pickle=False)
        all_keys = list(archive.files)
    except Exception as exc:
        raise InputError(
            f"{source}: is not a readable .npz file (truncated or corrupt?): {one_line(exc)}"
        ) from None
    with archive:
        for key in all_keys:
            if not _wanted(key):
                continue
            try:
                value = archive[key]
            except ValueError as exc:
                problems[key] = (_OBJECT_ARRAY if "allow_pickle" in str(exc) else _unreadable(exc))
                continue
            except Exception as exc:
                problems[key] = _unreadable(exc)
                continue
            if isinstance(value, np.ndarray):
                arrays[key] = value
            else:
                problems[key] = "is not a .npy array inside the archive"
    return arrays, problems, all_keys


def _dataset_from_file(
    arrays: dict[str, np.ndarray],
    problems: dict[str, str],
    all_keys: list[str],
    source: str,
) -> tuple[LFADSDataset, dict[str, str]]:
    """Pick the layout, coerce the arrays; return the data set and key names."""
    present = set(arrays) | set(problems)
    legacy = not any(key in present for key in _MODERN_KEYS) and any(
        key in present for key in _LEGACY_KEYS
    )
    required = _LEGACY_KEYS if legacy else _MODERN_KEYS
    missing = [key for key in required if key not in present]
    if missing:
        raise InputError(
            f"{source}: {', '.join(missing)}: missing; an LFADS file needs "
            f"{', '.join(_MODERN_KEYS)} (or the older {' and '.join(_LEGACY_KEYS)}); "
            f"the file has keys: {listed_keys(all_keys)}"
        )
    used = (RESERVED_KEYS | set(_LEGACY_KEYS)) if legacy else RESERVED_KEYS
    for key, problem in problems.items():
        if key in used:
            raise InputError(f"{source}: {key}: {problem}")
    for key, problem in problems.items():
        warnings.warn(f"{source}: {key}: skipped: {problem}", stacklevel=4)
    values: dict[str, object] = {key: arrays[key] for key in RESERVED_KEYS if key in arrays}
    names: dict[str, str] = {}
    if legacy:
        for split in SPLITS:
            data = arrays[f"{split}_data"]
            for name in ("encod_data", "recon_data"):
                values[f"{split}_{name}"] = data
                names[f"{split}_{name}"] = f"{split}_data"
    extras: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if key in used or not key.startswith(("train_", "valid_")):
            continue
        if value.dtype.kind not in EXTRA_KINDS or value.dtype.hasobject:
            warnings.warn(
                f"{source}: {key}: skipped: dtype {value.dtype} is not a number, boolean or text",
                stacklevel=4,
            )
            continue
        extras[key] = value
    _conditions_from_cond_idx(values, extras, source)
    return coerce_dataset(values, source, names, extras), names


def _conditions_from_cond_idx(values: dict[str, object], extras: dict[str, np.ndarray], source: str) -> None:
    """lfads-torch's ``{split}_cond_idx`` read as ``{split}_conditions`` (one label per trial) where a file has
    no ``{split}_conditions``; kept under its own key too. One that is not one label per trial is not read as
    conditions (a warning says so)."""
    for split in SPLITS:
        cond_idx, data = extras.get(f"{split}_cond_idx"), values.get(f"{split}_encod_data")
        if cond_idx is None or f"{split}_conditions" in extras or not hasattr(data, "shape"):
            continue
        if cond_idx.ndim == 1 and cond_idx.shape[0] == data.shape[0]:
            extras[f"{split}_conditions"] = cond_idx
        else:
            warnings.warn(f"{source}: {split}_cond_idx: not read as conditions: shape {cond_idx.shape} is not one "
                          f"label per trial ({data.shape[0]},)", stacklevel=5)


#: What a .npz member saved from an array of Python objects is (numpy would need to unpickle it, which runs code).
_OBJECT_ARRAY = ("holds an object array (Python objects, which are not read: unpickling can run code); "
                 "save plain numeric arrays")


def _unreadable(exc: Exception) -> str:
    return f"could not be read (truncated or corrupt file?): {one_line(exc)}"


def file_arrays(dataset: LFADSDataset) -> dict[str, np.ndarray]:
    """The arrays of ``dataset`` under their file keys, in file order (what :func:`save_dataset` writes)."""
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        part = getattr(dataset, split)
        for name in FIELDS:
            value = getattr(part, name)
            if value is not None:
                arrays[f"{split}_{name}"] = value
    for key in ("conversion_factor", "bin_width_s"):
        if getattr(dataset, key) is not None:
            arrays[key] = np.asarray(float(getattr(dataset, key)), dtype=np.float64)
    arrays.update(dataset.extras)
    return arrays


def fill_hdf5(handle: h5py.File, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` into the open file as datasets, gzip-compressed, text as UTF-8 strings."""
    for key, array in arrays.items():
        if array.dtype.kind == "U":
            handle.create_dataset(key, data=array.astype(object), dtype=h5py.string_dtype())
        elif array.ndim == 0 or array.size == 0:
            handle.create_dataset(key, data=array)
        else:
            handle.create_dataset(key, data=array, compression="gzip")


def _suffix_problem(suffix: str) -> str:
    shown = repr(suffix) if suffix else "(no suffix)"
    return f"unknown file type {shown}; use .h5, .hdf5 (LFADS HDF5) or .npz"
