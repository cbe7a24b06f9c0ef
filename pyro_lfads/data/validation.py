"""Every check of a data set's arrays and extras, in one place, and the record that it passed.

A data set is validated once, where it is made (``load_dataset``,
``dataset_from_arrays``, the NLB and NWB readers) or where it first enters the
library (``fit``, ``tune``): :func:`ensure_valid` checks it unless it already
carries a record (``LFADSDataset.validated``) of a validation at least as strict
that still describes what it holds. Problems raise :class:`InputError` with one
line ``<source>: <key>: <problem>``; this module also holds the small helpers
that shape such lines (:func:`one_line`, :func:`listed`, :func:`listed_keys`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import NoReturn

import numpy as np

from pyro_lfads.data.containers import FIELDS, SPLITS, LFADSDataset, Split, Validation, contents
from pyro_lfads.errors import InputError

#: Values ``support`` may take: what the likelihood needs of the data.
#: ``"counts"``: non-negative integers (Poisson, negative binomial);
#: ``"nonnegative"``: reals >= 0 (zero-inflated Gamma); ``"positive"``: reals > 0
#: (Gamma); ``"real"``: any finite reals (Gaussian, calcium).
SUPPORTS = ("counts", "nonnegative", "positive", "real")
#: The supports whose checks a data set valid for the key support also passes (each is a subset).
_IMPLIED_SUPPORTS = {"counts": {"counts", "nonnegative", "real"}, "positive": {"positive", "nonnegative", "real"},
                     "nonnegative": {"nonnegative", "real"}, "real": {"real"}}

ARRAY_FIELDS = ("encod_data", "recon_data", "ext_input", "truth")
#: Keys a file gives to the fields of the splits and to the conversion factor.
RESERVED_KEYS = (frozenset(f"{split}_{name}" for split in SPLITS for name in FIELDS)
                 | {"conversion_factor", "bin_width_s"})
# dtype kinds: numbers that become float32 data, and what extras may hold.
NUMBER_KINDS = "biuf"
EXTRA_KINDS = "biufcSU"
_COUNTS_HINT = "a Poisson/count likelihood needs non-negative integer counts"
#: How many indices, labels or file keys a message lists before "... more".
MAX_LISTED = 10
MAX_LISTED_KEYS = 30

# Raises InputError for (key, problem); the validators share one.
_Fail = Callable[[str, str], NoReturn]


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
    - ``conversion_factor`` and ``bin_width_s`` are None or positive finite numbers.
    - ``extras`` maps keys starting with ``train_`` / ``valid_`` (not a
      standard key) to numpy arrays of numbers, booleans or text; ``*_conditions`` has one label per
      trial, ``*_behavior`` is (trials, time, dims) numbers with the encoder's trials and bins (or all bins), no Inf
      (NaN marks an unknown bin) and the same dims in both splits.
    """
    check_dataset(dataset, support, min_time_bins, {})


def ensure_valid(dataset: LFADSDataset, support: str = "counts", min_time_bins: int | None = None) -> None:
    """Validate ``dataset`` as :func:`validate_dataset` does, unless it already was.

    Skips the checks when ``dataset.validated`` records a validation for ``support`` or a
    stricter one (``"counts"`` and ``"positive"`` imply ``"nonnegative"``, which implies
    ``"real"``), for at least ``min_time_bins`` time bins, and the data set still holds the
    very splits, arrays and extras it held then. Arrays changed in place are not noticed.
    """
    check_options(str(dataset.source), support, min_time_bins)
    record = dataset.validated
    if record is not None and support in _IMPLIED_SUPPORTS[record.support] and (
        min_time_bins is None or (record.min_time_bins is not None and record.min_time_bins >= min_time_bins)
    ):
        now = contents(dataset)
        if len(now) == len(record.contents) and all(a is b for a, b in zip(now, record.contents)):
            return
    check_dataset(dataset, support, min_time_bins, {})


def check_options(source: str, support: object, min_time_bins: object) -> None:
    """Refuse a ``support`` not in ``SUPPORTS`` and a ``min_time_bins`` that is not None or >= 1."""
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


def check_dataset(
    dataset: LFADSDataset,
    support: str,
    min_time_bins: int | None,
    names: Mapping[str, str],
) -> None:
    """``validate_dataset``, with ``names`` mapping standard keys to the file's keys (e.g. the
    older ``train_data``) in messages; records the validation in ``dataset.validated``."""
    source = str(dataset.source)
    check_options(source, support, min_time_bins)

    def fail(key: str, problem: str) -> NoReturn:
        raise InputError(f"{source}: {names.get(key, key)}: {problem}")

    def label(key: str) -> str:
        return names.get(key, key)

    for split in SPLITS:
        part = getattr(dataset, split)
        if not isinstance(part, Split):
            fail(split, f"is {type(part).__name__}, not a Split")
        for name in ARRAY_FIELDS:
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

    for key in ("conversion_factor", "bin_width_s"):
        value = getattr(dataset, key)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float, np.integer, np.floating))
            or not np.isfinite(value)
            or value <= 0
        ):
            fail(key, f"must be a positive finite scalar, got {value!r}")

    if not isinstance(dataset.extras, Mapping):
        fail("extras", f"is {type(dataset.extras).__name__}, not a dict of arrays")
    for key, value in dataset.extras.items():
        if not isinstance(key, str) or not key.startswith(("train_", "valid_")):
            fail(str(key), "extras keys must start with 'train_' or 'valid_' to be read back")
        if key in RESERVED_KEYS:
            fail(key, "is a standard LFADS key; set it on the Split or data set, not in extras")
        if not isinstance(value, np.ndarray):
            fail(key, f"is {type(value).__name__}, not a numpy array")
        if value.dtype.kind not in EXTRA_KINDS or value.dtype.hasobject:
            fail(key, f"has dtype {value.dtype}; extras must hold numbers, booleans or text")
    _check_known_extras(dataset, fail)
    dataset.validated = Validation(support, min_time_bins, contents(dataset))


def _check_known_extras(dataset: LFADSDataset, fail: _Fail) -> None:
    """The extras that evaluation reads: ``{split}_conditions`` (trials,) labels and ``{split}_behavior``
    (trials, time, dims) numbers, time the encoder's bins or all bins, NaN marking an unknown bin, the same dims in
    both splits."""
    behavior_dims = {}
    for split in SPLITS:
        part = getattr(dataset, split)
        n_trials, n_time = part.encod_data.shape[:2]
        conditions = dataset.extras.get(f"{split}_conditions")
        if conditions is not None and (conditions.ndim != 1 or conditions.shape[0] != n_trials):
            fail(f"{split}_conditions", f"must be 1-D with one condition label per trial, shape ({n_trials},), "
                                        f"got shape {conditions.shape}")
        key = f"{split}_behavior"
        behavior = dataset.extras.get(key)
        if behavior is None:
            continue
        if behavior.dtype.kind not in NUMBER_KINDS:
            fail(key, dtype_problem(behavior.dtype))
        bins = sorted({n_time, part.recon_data.shape[1]})
        if behavior.ndim != 3 or behavior.shape[0] != n_trials or behavior.shape[1] not in bins:
            fail(key, f"must be 3-D (trials, time, dims) with the {n_trials} trials of {split}_encod_data and "
                      f"{' or '.join(map(str, bins))} time bins (the encoder's or all), got shape {behavior.shape}")
        if behavior.dtype.kind == "f" and np.isinf(behavior).any():
            fail(key, f"{int(np.count_nonzero(np.isinf(behavior)))} values are infinite (NaN marks an unknown bin)")
        behavior_dims[split] = behavior.shape[2]
    if len(set(behavior_dims.values())) > 1:
        fail("valid_behavior", f"has {behavior_dims['valid']} dims but train_behavior has {behavior_dims['train']}")


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
    if array.dtype.kind not in NUMBER_KINDS:
        fail(key, dtype_problem(array.dtype))
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


def fractional_problem(array: np.ndarray) -> str | None:
    """``"N values are not whole numbers (e.g. x)"`` for an array with fractions, else None."""
    fractional = array != np.floor(array)
    if not fractional.any():
        return None
    return f"{np.count_nonzero(fractional)} values are not whole numbers (e.g. {float(array[fractional].flat[0]):g})"


def dtype_problem(dtype: np.dtype) -> str:
    """What is wrong with an array of ``dtype`` that should hold real numbers."""
    if dtype.kind in "US":
        return f"holds text (dtype {dtype}), not numbers"
    if dtype.kind == "c":
        return f"holds complex numbers (dtype {dtype}), not real numbers"
    if dtype.kind == "O":
        return "holds Python objects (dtype object), not numbers"
    return f"has dtype {dtype}, which is not a number"


def one_line(exc: BaseException, *, last_line: bool = False) -> str:
    """The message of ``exc`` on one line: its words joined by single spaces, or with ``last_line``
    only its last non-empty line (the error under a traceback, as Ray reports one); its type's name
    when it has no message."""
    if last_line:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return lines[-1] if lines else type(exc).__name__
    return " ".join(str(exc).split()) or type(exc).__name__


def listed(indices: np.ndarray) -> str:
    """``"3, 7, 9"``: the first ``MAX_LISTED`` of ``indices`` (integers), then ``" (and N more)"``."""
    shown = ", ".join(str(int(i)) for i in indices[:MAX_LISTED])
    more = len(indices) - MAX_LISTED
    return shown + (f" (and {more} more)" if more > 0 else "")


def listed_keys(keys: Iterable[str]) -> str:
    """The sorted ``keys`` of a file, the first ``MAX_LISTED_KEYS`` of them, or ``"(none)"``."""
    keys = sorted(keys)
    shown = ", ".join(keys[:MAX_LISTED_KEYS]) or "(none)"
    if len(keys) > MAX_LISTED_KEYS:
        shown += f", ... ({len(keys) - MAX_LISTED_KEYS} more)"
    return shown
