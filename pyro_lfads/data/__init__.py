"""LFADS data sets: containers, the LFADS HDF5 / .npz formats, and validation.

Arrays are numpy, float32 for data, with shapes
``(trials, time, neurons)`` for spikes and rates and ``(trials, time, inputs)``
for external inputs. ``*_truth`` holds the true rates in the file's own units;
``truth / conversion_factor`` is the expected count per bin (the convention of
the original LFADS synthetic data).
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import h5py
import numpy as np

from pyro_lfads.errors import InputError
from pyro_lfads.data.atomic_files import atomic_path

SPLITS = ("train", "valid")

#: Values ``support`` may take: what the likelihood needs of the data.
#: ``"counts"``: non-negative integers (Poisson, negative binomial);
#: ``"nonnegative"``: reals >= 0 (zero-inflated Gamma); ``"positive"``: reals > 0
#: (Gamma); ``"real"``: any finite reals (Gaussian, calcium).
SUPPORTS = ("counts", "nonnegative", "positive", "real")

HDF5_SUFFIXES = (".h5", ".hdf5")
NPZ_SUFFIXES = (".npz",)

# Split fields in file order; the file key of a field is f"{split}_{field}".
_FIELDS = ("encod_data", "recon_data", "ext_input", "truth", "inds")
_ARRAY_FIELDS = ("encod_data", "recon_data", "ext_input", "truth")
_LEGACY_KEYS = tuple(f"{split}_data" for split in SPLITS)
_MODERN_KEYS = tuple(f"{split}_{name}" for split in SPLITS for name in ("encod_data", "recon_data"))
_RESERVED_KEYS = frozenset(f"{split}_{name}" for split in SPLITS for name in _FIELDS) | {
    "conversion_factor"
}
# dtype kinds: numbers that become float32 data, and what extras may hold.
_NUMBER_KINDS = "biuf"
_EXTRA_KINDS = "biufcSU"
_COUNTS_HINT = "a Poisson/count likelihood needs non-negative integer counts"
_MAX_LISTED_KEYS = 30

# Raises InputError for (key, problem); the validators share one.
_Fail = Callable[[str, str], NoReturn]


@dataclass
class Split:
    """One split (``train`` or ``valid``) of an LFADS data set.

    Attributes:
        encod_data: (trials, time_enc, neurons_enc) what the encoders read.
        recon_data: (trials, time, neurons) what the model reconstructs.
        ext_input: (trials, time, inputs) observed inputs to the generator, or None.
        truth: (trials, time, neurons) true rates in file units, or None.
        inds: (trials,) trial indices in the original recording, or None.
        recon_mask: (trials, time, neurons) bool, the entries of recon_data
            the likelihood scores; None scores all. Never read from or
            written to files: training sets it for sample validation
            (:mod:`pyro_lfads.fitting.masking`).
    """

    encod_data: np.ndarray
    recon_data: np.ndarray
    ext_input: np.ndarray | None = None
    truth: np.ndarray | None = None
    inds: np.ndarray | None = None
    recon_mask: np.ndarray | None = None

    @property
    def n_trials(self) -> int:
        return int(self.recon_data.shape[0])

    @property
    def n_time(self) -> int:
        return int(self.recon_data.shape[1])

    @property
    def n_neurons(self) -> int:
        return int(self.recon_data.shape[2])


@dataclass
class LFADSDataset:
    """A train and a valid split, plus file-level metadata.

    Attributes:
        train, valid: the two splits.
        conversion_factor: truth / conversion_factor = expected counts per bin;
            None when the file has no truth.
        source: where the data came from (a path, or a description), used in
            error messages.
        extras: other arrays stored in the file under their own key names
            (e.g. ``train_conditions``, ``valid_latents``), written and read
            back unchanged.
    """

    train: Split
    valid: Split
    conversion_factor: float | None = None
    source: str = "<arrays>"
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def truth_counts(self, split: str) -> np.ndarray | None:
        """True rates of ``split`` in expected counts per bin, or None."""
        truth = getattr(self, split).truth
        if truth is None:
            return None
        factor = 1.0 if self.conversion_factor is None else self.conversion_factor
        return truth / factor


def as_sessions(data: LFADSDataset | Sequence[LFADSDataset]) -> list[LFADSDataset]:
    """A list of sessions from one data set or a sequence of them (stitching)."""
    return [data] if isinstance(data, LFADSDataset) else list(data)


def load_dataset(
    path: str | os.PathLike[str],
    support: str = "counts",
    min_time_bins: int | None = None,
) -> LFADSDataset:
    """Read an LFADS data set from an HDF5 (``.h5``, ``.hdf5``) or ``.npz`` file.

    The layout is that of the original LFADS and of lfads-torch. An HDF5
    file of Neural Latents Benchmark tensors (``train_spikes_heldin``, ...)
    is read with :func:`pyro_lfads.data.nlb.load_nlb_tensors` instead. Required:
    ``train_encod_data``, ``train_recon_data``, ``valid_encod_data`` and
    ``valid_recon_data``, or the older ``train_data`` and ``valid_data`` (then
    encod = recon = that array, one shared object). Shapes:

    - ``*_recon_data``: (trials, time, neurons), what the model reconstructs.
    - ``*_encod_data``: (trials, time_enc, neurons_enc), what the encoders
      read; same trials as recon, ``time_enc <= time`` (forward prediction)
      and ``neurons_enc`` may differ (held-out neurons).
    - ``*_ext_input`` (optional): (trials, time, inputs).
    - ``*_truth`` (optional): (trials, time, neurons), true rates in file units.
    - ``*_inds`` (optional): (trials,), trial indices in the recording.
    - ``conversion_factor`` (optional scalar): truth / conversion_factor =
      expected counts per bin.

    Every other array whose key starts with ``train_`` or ``valid_`` goes into
    ``extras`` unchanged (variable-length HDF5 strings become numpy ``str``
    arrays; arrays that are not numbers, booleans or text are skipped with a
    warning). Other keys are not read.

    Args:
        path: the file; its suffix picks the format.
        support: what the likelihood needs of ``*_encod_data`` and
            ``*_recon_data``: ``"counts"`` (non-negative integers),
            ``"nonnegative"`` (reals >= 0) or ``"real"`` (finite reals).
        min_time_bins: if given, every split needs at least this many time
            bins in both encod and recon data.

    Returns:
        The data set: data, ext_input and truth as float32, inds as int64,
        ``source`` set to ``str(path)``.

    Raises:
        InputError: one line ``<path>: <key>: <problem>`` for any problem with
            the file or its contents (see ``validate_dataset``).
    """
    source = str(path)
    _check_options(source, support, min_time_bins)
    from pyro_lfads.data.nlb import is_nlb_file, load_nlb_tensors  # nlb builds on this module

    if is_nlb_file(path):
        dataset = load_nlb_tensors(path)
        _validate(dataset, support, min_time_bins, {})
        return dataset
    arrays, problems, all_keys = _read_file(Path(path), source)
    dataset, names = _dataset_from_file(arrays, problems, all_keys, source)
    _validate(dataset, support, min_time_bins, names)
    return dataset


def save_dataset(dataset: LFADSDataset, path: str | os.PathLike[str]) -> None:
    """Write ``dataset`` to ``path`` in the LFADS format, atomically.

    The suffix picks the format: ``.h5`` / ``.hdf5`` (HDF5, gzip-compressed)
    or ``.npz`` (compressed numpy archive). Keys: ``train_encod_data``,
    ``train_recon_data``, ``valid_encod_data``, ``valid_recon_data``; then
    ``*_ext_input``, ``*_truth``, ``*_inds`` and ``conversion_factor`` when
    present; then ``extras`` under their own keys. Arrays are written with
    their own dtypes (``str`` extras as UTF-8 strings in HDF5).

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
    validate_dataset(dataset, support="real")
    arrays = _file_arrays(dataset)
    directory = path.parent
    if not directory.is_dir():
        raise InputError(f"{target}: directory {str(directory)!r} does not exist")
    try:
        with atomic_path(path) as tmp:
            if suffix in NPZ_SUFFIXES:
                with open(tmp, "wb") as handle:  # a handle: np.savez would append ".npz" to a path
                    np.savez_compressed(handle, **arrays)
            else:
                _write_hdf5(tmp, arrays)
    except OSError as exc:
        raise InputError(f"{target}: cannot write: {_one_line(exc)}") from None

def validate_dataset(
    dataset: LFADSDataset,
    support: str = "counts",
    min_time_bins: int | None = None,
) -> None:
    """Check a data set; raise InputError on the first problem found.

    Checks, with ``<source>: <key>: <problem>`` messages (keys as in the file,
    e.g. ``train_recon_data``):

    - ``support`` is one of ``SUPPORTS``; ``min_time_bins`` is None or >= 1.
    - encod/recon data, ext_input and truth are 3-D numpy arrays of numbers
      (bool, int or float); inds are 1-D integer arrays of values >= 0.
    - no split is empty (0 trials, 0 time bins or 0 neurons); ext_input has
      at least one input.
    - no NaN or Inf anywhere (counted in the message).
    - encod/recon data: under ``"counts"`` non-negative whole numbers, under
      ``"nonnegative"`` >= 0; truth (rates) >= 0 under both.
    - within a split: encod and recon hold the same trials, encod has no
      more time bins than recon; ext_input matches recon in trials and time
      bins, truth matches recon in shape, inds has one entry per trial.
    - across splits: same recon neurons, same encod neurons, same number of
      inputs, ext_input in both splits or in neither.
    - at least ``min_time_bins`` time bins in every encod and recon array.
    - ``conversion_factor`` is None or a positive finite number.
    - ``extras`` maps keys starting with ``train_`` / ``valid_`` (not a
      standard key) to numpy arrays of numbers, booleans or text.
    """
    _validate(dataset, support, min_time_bins, {})


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
    _check_options(source, support, min_time_bins)
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
    }
    extra_arrays = {key: _as_array(value, source, str(key)) for key, value in (extras or {}).items()}
    dataset = _coerce_dataset(values, source, {}, extra_arrays)
    _validate(dataset, support, min_time_bins, {})
    return dataset


# ---------------------------------------------------------------- reading


def _read_file(path: Path, source: str) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
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
        raise InputError(f"{source}: cannot be read: {_one_line(exc)}") from None
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
        raise InputError(f"{source}: cannot be read: {_one_line(exc)}") from None
    if suffix in NPZ_SUFFIXES:
        return _read_npz(path, source)
    return _read_hdf5(path, source)


def check_hdf5_signature(path: Path, source: str, problem: str) -> None:
    """Raise InputError ``<source>: <problem>`` unless ``path`` starts with the HDF5 signature."""
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except Exception as exc:  # h5py raises many kinds for unreadable files
        raise InputError(f"{source}: cannot be read: {_one_line(exc)}") from None
    if not is_hdf5:
        raise InputError(f"{source}: {problem}")


def _wanted(key: str) -> bool:
    return key == "conversion_factor" or key.startswith(("train_", "valid_"))


def _read_hdf5(path: Path, source: str) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    # h5py and HDF5 raise OSError, KeyError, ValueError, RuntimeError, ... for
    # damaged files; any of them means the file is unreadable.
    check_hdf5_signature(path, source, "is not an HDF5 file (no HDF5 signature found)")
    arrays: dict[str, np.ndarray] = {}
    problems: dict[str, str] = {}
    try:
        handle = h5py.File(path, "r")
        all_keys = list(handle.keys())
    except Exception as exc:
        raise InputError(
            f"{source}: is not a readable HDF5 file (truncated or corrupt?): {_one_line(exc)}"
        ) from None
    with handle:
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
            f"{source}: is not a readable .npz file (truncated or corrupt?): {_one_line(exc)}"
        ) from None
    with archive:
        for key in all_keys:
            if not _wanted(key):
                continue
            try:
                value = archive[key]
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
        listed = ", ".join(sorted(all_keys)[:_MAX_LISTED_KEYS]) or "(none)"
        if len(all_keys) > _MAX_LISTED_KEYS:
            listed += f", ... ({len(all_keys) - _MAX_LISTED_KEYS} more)"
        raise InputError(
            f"{source}: {', '.join(missing)}: missing; an LFADS file needs "
            f"{', '.join(_MODERN_KEYS)} (or the older {' and '.join(_LEGACY_KEYS)}); "
            f"the file has keys: {listed}"
        )
    used = (_RESERVED_KEYS | set(_LEGACY_KEYS)) if legacy else _RESERVED_KEYS
    for key, problem in problems.items():
        if key in used:
            raise InputError(f"{source}: {key}: {problem}")
    for key, problem in problems.items():
        warnings.warn(f"{source}: {key}: skipped: {problem}", stacklevel=3)
    values: dict[str, object] = {key: arrays[key] for key in _RESERVED_KEYS if key in arrays}
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
        if value.dtype.kind not in _EXTRA_KINDS or value.dtype.hasobject:
            warnings.warn(
                f"{source}: {key}: skipped: dtype {value.dtype} is not a number, boolean or text",
                stacklevel=3,
            )
            continue
        extras[key] = value
    return _coerce_dataset(values, source, names, extras), names


def _unreadable(exc: Exception) -> str:
    return f"could not be read (truncated or corrupt file?): {_one_line(exc)}"


# ---------------------------------------------------------------- coercion


def _coerce_dataset(
    values: Mapping[str, object],
    source: str,
    names: dict[str, str],
    extras: dict[str, np.ndarray],
) -> LFADSDataset:
    """Convert data to float32 and inds to int64; None or absent means absent."""
    splits = {}
    for split in SPLITS:
        fields: dict[str, np.ndarray | None] = {}
        for name in _FIELDS:
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
    factor = values.get("conversion_factor")
    return LFADSDataset(
        train=splits["train"],
        valid=splits["valid"],
        conversion_factor=None if factor is None else _as_factor(factor, source),
        source=source,
        extras=extras,
    )


def _as_array(value: object, source: str, label: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise InputError(f"{source}: {label}: cannot be made a numpy array: {_one_line(exc)}") from None


def _as_float32(value: object, source: str, label: str) -> np.ndarray:
    array = _as_array(value, source, label)
    if array.dtype.kind not in _NUMBER_KINDS:
        raise InputError(f"{source}: {label}: {_dtype_problem(array.dtype)}")
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
    array = _as_array(value, source, label)
    kind = array.dtype.kind
    need = "trial indices must be integers"
    if kind == "u" and array.size and array.max() > np.iinfo(np.int64).max:
        raise InputError(f"{source}: {label}: values are too large for int64")
    if kind in "iu":
        return array.astype(np.int64, copy=False)
    if kind != "f":
        raise InputError(f"{source}: {label}: {_dtype_problem(array.dtype)}; {need}")
    nonfinite = np.count_nonzero(~np.isfinite(array))
    if nonfinite:
        raise InputError(f"{source}: {label}: {nonfinite} values are NaN or infinite; {need}")
    fractional = fractional_problem(array)
    if fractional:
        raise InputError(f"{source}: {label}: {fractional}; {need}")
    if array.size and np.abs(array).max() >= 2.0**63:
        raise InputError(f"{source}: {label}: values are too large for int64")
    return array.astype(np.int64)


def _as_factor(value: object, source: str) -> float:
    array = _as_array(value, source, "conversion_factor")
    if array.size != 1 or array.dtype.kind not in "iuf":
        what = f"shape {array.shape}" if array.size != 1 else f"dtype {array.dtype}"
        raise InputError(f"{source}: conversion_factor: must be a positive finite scalar, got {what}")
    return float(array.reshape(()))


def fractional_problem(array: np.ndarray) -> str | None:
    """``"N values are not whole numbers (e.g. x)"`` for an array with fractions, else None."""
    fractional = array != np.floor(array)
    if not fractional.any():
        return None
    return f"{np.count_nonzero(fractional)} values are not whole numbers (e.g. {float(array[fractional].flat[0]):g})"


def _dtype_problem(dtype: np.dtype) -> str:
    if dtype.kind in "US":
        return f"holds text (dtype {dtype}), not numbers"
    if dtype.kind == "c":
        return f"holds complex numbers (dtype {dtype}), not real numbers"
    if dtype.kind == "O":
        return "holds Python objects (dtype object), not numbers"
    return f"has dtype {dtype}, which is not a number"


# ---------------------------------------------------------------- validation


def _check_options(source: str, support: object, min_time_bins: object) -> None:
    if not isinstance(support, str) or support not in SUPPORTS:
        valid = ", ".join(repr(name) for name in SUPPORTS)
        raise InputError(f"{source}: support: {support!r} is not one of {valid}")
    if min_time_bins is not None and (
        isinstance(min_time_bins, bool)
        or not isinstance(min_time_bins, (int, np.integer))
        or min_time_bins < 1
    ):
        raise InputError(
            f"{source}: min_time_bins: must be a positive integer or None, got {min_time_bins!r}"
        )


def _validate(
    dataset: LFADSDataset,
    support: str,
    min_time_bins: int | None,
    names: dict[str, str],
) -> None:
    """``validate_dataset``, with ``names`` mapping standard keys to file keys."""
    source = str(dataset.source)
    _check_options(source, support, min_time_bins)

    def fail(key: str, problem: str) -> NoReturn:
        raise InputError(f"{source}: {names.get(key, key)}: {problem}")

    def label(key: str) -> str:
        return names.get(key, key)

    for split in SPLITS:
        part = getattr(dataset, split)
        if not isinstance(part, Split):
            fail(split, f"is {type(part).__name__}, not a Split")
        for name in _ARRAY_FIELDS:
            _check_values(getattr(part, name), f"{split}_{name}", name, support, fail)
        _check_inds(part.inds, f"{split}_inds", fail)
        _check_split(part, split, min_time_bins, fail, label)

    train, valid = dataset.train, dataset.valid
    for name, axis in (("recon_data", "neurons"), ("encod_data", "neurons"), ("ext_input", "inputs")):
        first, second = getattr(train, name), getattr(valid, name)
        if first is None and second is None:
            continue
        if first is None or second is None:
            absent, present = ("train", "valid") if first is None else ("valid", "train")
            fail(
                f"{absent}_{name}",
                f"is missing but {label(f'{present}_{name}')} is present; give it for both splits or neither",
            )
        if first.shape[2] != second.shape[2]:
            fail(
                f"valid_{name}",
                f"has {second.shape[2]} {axis} but {label(f'train_{name}')} has {first.shape[2]}; "
                f"train and valid must have the same {axis}",
            )

    factor = dataset.conversion_factor
    if factor is not None and (
        isinstance(factor, bool)
        or not isinstance(factor, (int, float, np.integer, np.floating))
        or not np.isfinite(factor)
        or factor <= 0
    ):
        fail("conversion_factor", f"must be a positive finite scalar, got {factor!r}")

    if not isinstance(dataset.extras, Mapping):
        fail("extras", f"is {type(dataset.extras).__name__}, not a dict of arrays")
    for key, value in dataset.extras.items():
        if not isinstance(key, str) or not key.startswith(("train_", "valid_")):
            fail(str(key), "extras keys must start with 'train_' or 'valid_' to be read back")
        if key in _RESERVED_KEYS:
            fail(key, "is a standard LFADS key; set it on the Split or data set, not in extras")
        if not isinstance(value, np.ndarray):
            fail(key, f"is {type(value).__name__}, not a numpy array")
        if value.dtype.kind not in _EXTRA_KINDS or value.dtype.hasobject:
            fail(key, f"has dtype {value.dtype}; extras must hold numbers, booleans or text")


def _check_values(array: object, key: str, name: str, support: str, fail: _Fail) -> None:
    """Type, rank, emptiness and values of one 3-D array (``name`` is its field)."""
    if array is None:
        if name in ("encod_data", "recon_data"):
            fail(key, "is missing")
        return
    last = "inputs" if name == "ext_input" else "neurons"
    if not isinstance(array, np.ndarray):
        fail(key, f"is {type(array).__name__}, not a numpy array")
    if array.ndim != 3:
        fail(key, f"must be 3-D (trials, time, {last}), got {array.ndim}-D with shape {array.shape}")
    if array.dtype.kind not in _NUMBER_KINDS:
        fail(key, _dtype_problem(array.dtype))
    if name in ("encod_data", "recon_data") and array.size == 0:
        fail(
            key,
            f"is empty: shape {array.shape} (trials, time, neurons); "
            "each split needs at least 1 trial, 1 time bin and 1 neuron",
        )
    if name == "ext_input" and array.shape[2] == 0:
        fail(key, f"has 0 inputs (shape {array.shape}); leave ext_input out instead")
    if array.dtype.kind == "f":
        nan = int(np.count_nonzero(np.isnan(array)))
        inf = int(np.count_nonzero(np.isinf(array)))
        if nan or inf:
            fail(key, f"{nan + inf} values are not finite ({nan} NaN, {inf} infinite)")
    if support == "real":
        return
    negative = int(np.count_nonzero(array < 0))
    if name == "truth":
        if negative:
            fail(key, f"{negative} values are negative, but true rates must be non-negative")
        return
    if name == "ext_input":
        return
    if negative:
        need = _COUNTS_HINT if support == "counts" else f"support={support!r} needs values >= 0"
        fail(key, f"{negative} values are negative, but {need}")
    if support == "positive":
        zeros = int(np.count_nonzero(array == 0))
        if zeros:
            fail(key, f"{zeros} values are 0, but support='positive' (a Gamma likelihood) needs values > 0; "
                      "use the zero-inflated Gamma ('zig') for data with zeros")
    if support == "counts" and array.dtype.kind == "f":
        fractional = fractional_problem(array)
        if fractional:
            fail(key, f"{fractional}, but {_COUNTS_HINT}; use support='nonnegative' or 'real' for continuous data")


def _check_inds(inds: object, key: str, fail: _Fail) -> None:
    if inds is None:
        return
    if not isinstance(inds, np.ndarray):
        fail(key, f"is {type(inds).__name__}, not a numpy array")
    if inds.ndim != 1:
        fail(key, f"must be 1-D (trials,), got {inds.ndim}-D with shape {inds.shape}")
    if inds.dtype.kind not in "iu":
        fail(key, f"has dtype {inds.dtype}; trial indices must be integers")
    negative = int(np.count_nonzero(inds < 0))
    if negative:
        fail(key, f"{negative} values are negative; trial indices must be >= 0")


def _check_split(
    part: Split,
    split: str,
    min_time_bins: int | None,
    fail: _Fail,
    label: Callable[[str], str],
) -> None:
    """Shapes within one split: every array against ``recon_data``."""
    recon_key = f"{split}_recon_data"
    recon = part.recon_data
    n_trials, n_time = recon.shape[:2]
    encod = part.encod_data
    if encod.shape[0] != n_trials:
        fail(
            f"{split}_encod_data",
            f"has {encod.shape[0]} trials but {label(recon_key)} has {n_trials}; "
            "encod and recon data must hold the same trials",
        )
    if encod.shape[1] > n_time:
        fail(
            f"{split}_encod_data",
            f"has {encod.shape[1]} time bins, more than the {n_time} of {label(recon_key)}; "
            "encod data may be shorter than recon data, not longer",
        )
    for name, axes in (("ext_input", ("trials", "time bins")), ("truth", ("trials", "time bins", "neurons"))):
        array = getattr(part, name)
        if array is None:
            continue
        for axis, size, expected in zip(axes, array.shape, recon.shape):
            if size != expected:
                fail(
                    f"{split}_{name}",
                    f"has {size} {axis} but {label(recon_key)} has {expected}",
                )
    if part.inds is not None and part.inds.shape[0] != n_trials:
        fail(
            f"{split}_inds",
            f"has {part.inds.shape[0]} entries but {label(recon_key)} has {n_trials} trials",
        )
    if min_time_bins is not None:
        for key, array in ((f"{split}_encod_data", encod), (recon_key, recon)):
            if array.shape[1] < min_time_bins:
                fail(key, f"has {array.shape[1]} time bins, fewer than min_time_bins={min_time_bins}")


# ---------------------------------------------------------------- writing


def _file_arrays(dataset: LFADSDataset) -> dict[str, np.ndarray]:
    """The arrays of ``dataset`` under their file keys, in file order."""
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        part = getattr(dataset, split)
        for name in _FIELDS:
            value = getattr(part, name)
            if value is not None:
                arrays[f"{split}_{name}"] = value
    if dataset.conversion_factor is not None:
        arrays["conversion_factor"] = np.asarray(float(dataset.conversion_factor), dtype=np.float64)
    arrays.update(dataset.extras)
    return arrays


def _write_hdf5(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with h5py.File(path, "w") as handle:
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


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
