"""Reading NWB files (e.g. the Neural Latents Benchmark's) into LFADS data sets.

Spike times of the units table are counted in bins of ``bin_ms`` per trial,
over ``[align + window_ms[0], align + window_ms[1] + forward_ms)`` with
``align`` a time column of the trials table. The data set follows the NLB
conventions of ``pyro_lfads.data.nlb``: ``encod_data`` (trials, T, N_in) holds
the held-in units over the T observed bins; ``recon_data`` (trials,
T + T_fwd, N_in + N_out) holds held-in then held-out units, observed then
forward bins; extras ``{split}_behavior`` (trials, T, B) float32 and
``{split}_conditions`` (trials,) int64; ``inds`` are rows of the trials table.

pynwb is optional (``pip install "pynwb>=2.5"``, or ``pip install ".[nwb]"`` in a source checkout) and
imported on use.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from numbers import Real
from pathlib import Path

import h5py
import numpy as np

from pyro_lfads.data.binning import WINDOW_TOLERANCE, align_windows, bin_spike_times, resample_to_bins
from pyro_lfads.data.containers import LFADSDataset
from pyro_lfads.data.from_arrays import dataset_from_arrays
from pyro_lfads.data.validation import MAX_LISTED, listed, one_line
from pyro_lfads.errors import InputError

#: Values of the split column and the LFADS split their trials go to; other values are dropped.
SPLIT_VALUES = {"train": "train", "val": "valid"}


def load_nwb(
    path: str | os.PathLike[str],
    *,
    bin_ms: float = 5.0,
    align_to: str = "start_time",
    window_ms: tuple[float, float] = (0.0, 700.0),
    forward_ms: float = 0.0,
    behavior: str | None = None,
    condition: str | None = None,
    heldout: str | Sequence[int] | None = None,
    valid_fraction: float = 0.2,
    split_column: str | None = "split",
    seed: int = 0,
) -> LFADSDataset:
    """Bin an NWB file's spikes per trial into a validated LFADS data set.

    Args:
        path: the NWB (HDF5) file.
        bin_ms: bin width, ms.
        align_to: trials-table column of alignment times, seconds (e.g.
            ``start_time``, ``move_onset_time``). Trials whose alignment
            time is NaN are dropped with a warning.
        window_ms: (start, end) of the observed window around the alignment
            time, ms; a whole number of bins.
        forward_ms: length of the forward-prediction window after it, ms; a
            whole number of bins (0: none).
        behavior: name of a TimeSeries in ``acquisition`` or any processing
            module (e.g. NLB's ``hand_vel``), averaged over each observed bin
            (``resample_to_bins``) into extras ``{split}_behavior``.
        condition: trials-table column (numbers or text) whose sorted unique
            values become condition ids 0, 1, ..., extras ``{split}_conditions``.
        heldout: None (no held-out units), a list of unit indices, or the
            name of a boolean column of the units table (NLB's ``heldout``).
        valid_fraction: share of trials in ``valid`` for a random split.
        split_column: trials-table column of ``'train'`` / ``'val'`` /
            ``'test'`` labels (NLB's ``split``): train -> ``train``, val ->
            ``valid``, test and any other label are dropped. Without such a
            column (or with None) the split is random: ``valid_fraction`` of
            the trials, drawn with ``seed``.

    Returns:
        The data set (counts), with ``source`` = ``str(path)`` and ``bin_width_s`` = ``bin_ms`` / 1000.

    Raises:
        InputError: one line ``<path>: <key>: <problem>``: bad arguments, a
            missing or unreadable file, no units or trials table, unknown
            columns or series (the available ones listed), a heldout column
            that is not boolean, unit indices out of range, no held-in unit,
            or no trial left in a split.
    """
    source = str(path)
    bin_s, window_s, n_forward = _check_bins(source, bin_ms, window_ms, forward_ms)
    if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, Real) or not 0 < valid_fraction < 1:
        raise InputError(f"{source}: valid_fraction: must be a number in (0, 1), got {valid_fraction!r}")
    with _open(Path(path), source) as nwbfile:
        units, spikes = _spike_times(nwbfile, source)
        order, n_heldin = _unit_order(source, heldout, units, len(spikes))
        trials = _trials(nwbfile, source)
        align = _column(trials, source, align_to, numeric=True)
        labels = _column(trials, source, split_column) if split_column in trials.colnames else None
        ids = _condition_ids(source, condition, _column(trials, source, condition)) if condition else None
        series = _behavior(nwbfile, source, behavior) if behavior else None
    rows = _split_rows(source, align_to, align, labels, split_column, valid_fraction, seed)

    values: dict[str, object] = {}
    extras: dict[str, np.ndarray] = {}
    for split, index in rows.items():
        starts, n_observed = align_windows(align[index], window_s, bin_s, source=source)
        counts = bin_spike_times(spikes, starts, n_observed + n_forward, bin_s, source=source,
                                 name="units.spike_times")[:, :, order]
        values[split] = counts[:, :n_observed, :n_heldin]
        values[f"{split}_recon"] = counts
        values[f"{split}_inds"] = index
        if series is not None:
            extras[f"{split}_behavior"] = resample_to_bins(*series, starts, n_observed, bin_s, source=source,
                                                           name=behavior)
        if ids is not None:
            extras[f"{split}_conditions"] = ids[index]
    dataset = dataset_from_arrays(**values, bin_width_s=bin_s, extras=extras, support="counts")
    dataset.source = source
    return dataset


# ---------------------------------------------------------------- arguments


def _check_bins(
    source: str, bin_ms: object, window_ms: object, forward_ms: object
) -> tuple[float, tuple[float, float], int]:
    """Check the window arguments (ms); return (bin_s, window_s, forward bins)."""
    if isinstance(bin_ms, bool) or not isinstance(bin_ms, Real) or not np.isfinite(bin_ms) or bin_ms <= 0:
        raise InputError(f"{source}: bin_ms: must be a positive number, got {bin_ms!r}")
    try:
        begin, end = (float(value) for value in window_ms)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise InputError(f"{source}: window_ms: must be a pair (start, end) of numbers, got {window_ms!r}") from None
    if not (np.isfinite(begin) and np.isfinite(end)) or end <= begin:
        raise InputError(f"{source}: window_ms: end must be after start, got ({begin:g}, {end:g})")
    if isinstance(forward_ms, bool) or not isinstance(forward_ms, Real) or not 0 <= forward_ms < np.inf:
        raise InputError(f"{source}: forward_ms: must be a number >= 0, got {forward_ms!r}")
    bins = {}
    for key, length in (("window_ms", end - begin), ("forward_ms", float(forward_ms))):
        ratio = length / bin_ms
        bins[key] = int(round(ratio))
        if abs(ratio - bins[key]) > WINDOW_TOLERANCE:
            raise InputError(f"{source}: {key}: length {length:g} ms is not a whole number of {bin_ms:g} ms bins")
    return float(bin_ms) / 1000, (begin / 1000, end / 1000), bins["forward_ms"]


# ---------------------------------------------------------------- reading


@contextmanager
def _open(path: Path, source: str) -> Iterator[object]:
    """Yield the NWBFile of ``path``, open for reading."""
    try:
        import pynwb
    except ImportError:
        raise InputError(f"{source}: reading NWB needs pynwb: pip install 'pynwb>=2.5' (or pip install '.[nwb]' "
                         "in a source checkout)") from None
    if not path.exists():
        raise InputError(f"{source}: file does not exist")
    if path.is_dir():
        raise InputError(f"{source}: is a directory, not a file")
    if not h5py.is_hdf5(path):
        raise InputError(f"{source}: is not an NWB file (no HDF5 signature found)")
    # pynwb and hdmf raise TypeError, ValueError, KeyError, OSError, ... for
    # files that are not NWB or are damaged; any of them means unreadable.
    try:
        io = pynwb.NWBHDF5IO(str(path), "r")
    except Exception as exc:
        raise InputError(f"{source}: cannot be opened as NWB: {one_line(exc)}") from None
    with io:
        try:
            nwbfile = io.read()
        except Exception as exc:
            raise InputError(f"{source}: is not a readable NWB file: {one_line(exc)}") from None
        yield nwbfile


def _spike_times(nwbfile, source: str) -> tuple[object, list[np.ndarray]]:
    """The units table and its spike times (seconds), one array per unit."""
    units = nwbfile.units
    if units is None:
        raise InputError(f"{source}: units: the file has no units table (nwbfile.units); spike times come from it")
    if "spike_times" not in units.colnames:
        raise InputError(f"{source}: units.spike_times: missing; the units table has columns "
                         f"{', '.join(units.colnames) or '(none)'}")
    try:
        flat = np.asarray(units.spike_times.data[:], dtype=np.float64)
        ends = np.asarray(units.spike_times_index.data[:], dtype=np.int64)
    except Exception as exc:
        raise InputError(f"{source}: units.spike_times: cannot be read: {one_line(exc)}") from None
    return units, np.split(flat, ends[:-1]) if ends.size else []


def _unit_order(source: str, heldout: object, units, n_units: int) -> tuple[np.ndarray, int]:
    """Unit indices, held-in then held-out (each in file order), and the number held in."""
    if n_units == 0:
        raise InputError(f"{source}: units: the units table has no units")
    mask = np.zeros(n_units, dtype=bool)
    if isinstance(heldout, str):
        if heldout not in units.colnames:
            raise InputError(f"{source}: units.{heldout}: no such column; the units table has "
                             f"{', '.join(units.colnames)}")
        mask = _column(units, source, heldout, "units")
        if mask.dtype != bool or mask.shape != (n_units,):
            raise InputError(f"{source}: units.{heldout}: holds {mask.dtype}, not booleans; "
                             "a heldout column marks held-out units True")
    elif heldout is not None:
        index = np.asarray(heldout)
        if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
            raise InputError(f"{source}: heldout: must be a column name or a list of unit indices, got {heldout!r}")
        outside = index[(index < 0) | (index >= n_units)]
        if outside.size:
            raise InputError(f"{source}: heldout: unit indices {listed(outside)} are out of range; "
                             f"the file has {n_units} units (0 to {n_units - 1})")
        mask[index.astype(np.int64)] = True
    if mask.all():
        raise InputError(f"{source}: heldout: all {n_units} units are held out; the encoder needs held-in units")
    return np.concatenate([np.flatnonzero(~mask), np.flatnonzero(mask)]), int((~mask).sum())


def _trials(nwbfile, source: str):
    trials = nwbfile.trials
    if trials is None or len(trials) == 0:
        raise InputError(f"{source}: trials: the file has no trials table (nwbfile.trials); "
                         "windows are aligned to its trials")
    return trials


def _column(table, source: str, name: str, table_name: str = "trials", numeric: bool = False) -> np.ndarray:
    """A column of a table (one value per row) as a numpy array, text as str."""
    if name not in table.colnames:
        raise InputError(f"{source}: {table_name}.{name}: no such column; the {table_name} table has "
                         f"{', '.join(table.colnames)}")
    column = table[name]
    if hasattr(column, "target"):
        raise InputError(f"{source}: {table_name}.{name}: is a ragged column, not one value per row")
    try:
        values = np.asarray(column.data[:])
    except Exception as exc:
        raise InputError(f"{source}: {table_name}.{name}: cannot be read: {one_line(exc)}") from None
    if values.dtype.kind in "OS":
        values = np.array([value.decode() if isinstance(value, bytes) else str(value) for value in values], dtype=str)
    if numeric and (values.ndim != 1 or values.dtype.kind not in "iuf"):
        raise InputError(f"{source}: trials.{name}: holds {values.dtype} with shape {values.shape}; "
                         "alignment times must be numbers (seconds), one per trial")
    return values


def _condition_ids(source: str, name: str, values: np.ndarray) -> np.ndarray:
    if values.ndim != 1:
        raise InputError(f"{source}: trials.{name}: must hold one value per trial, got shape {values.shape}")
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise InputError(f"{source}: trials.{name}: {int(np.isnan(values).sum())} values are NaN; "
                         "every trial needs a condition")
    return np.unique(values, return_inverse=True)[1].astype(np.int64).reshape(-1)


def _behavior(nwbfile, source: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps, data) of the TimeSeries ``name`` in acquisition or a processing module."""
    from pynwb import TimeSeries

    places = [("acquisition", nwbfile.acquisition)]
    places += [(f"processing/{module}", nwbfile.processing[module].data_interfaces) for module in nwbfile.processing]
    for where, container in places:
        if name in container:
            series = container[name]
            if not isinstance(series, TimeSeries):
                raise InputError(f"{source}: {name}: {where}/{name} is a {type(series).__name__}, not a TimeSeries")
            try:
                return np.asarray(series.get_timestamps()[:], dtype=np.float64), np.asarray(series.data[:])
            except Exception as exc:
                raise InputError(f"{source}: {name}: cannot be read: {one_line(exc)}") from None
    available = [f"{where}/{key}" for where, container in places
                 for key, value in container.items() if isinstance(value, TimeSeries)]
    raise InputError(f"{source}: {name}: no TimeSeries of that name in acquisition or any processing module; "
                     f"available: {', '.join(available) or '(none)'}")


# ---------------------------------------------------------------- trials


def _split_rows(
    source: str,
    align_to: str,
    align: np.ndarray,
    labels: np.ndarray | None,
    split_column: str | None,
    valid_fraction: float,
    seed: int,
) -> dict[str, np.ndarray]:
    """Rows of the trials table in each LFADS split, without NaN-aligned trials."""
    used = np.ones(align.shape[0], dtype=bool)
    if labels is not None:
        used = np.isin(labels, list(SPLIT_VALUES))
        for label in SPLIT_VALUES:
            if not np.any(labels == label):
                raise InputError(f"{source}: trials.{split_column}: has no {label!r} trials (values: "
                                 f"{', '.join(repr(str(value)) for value in np.unique(labels)[:MAX_LISTED])}); "
                                 "pass split_column=None for a random split")
    nan = np.flatnonzero(used & np.isnan(align))
    if nan.size:
        warnings.warn(f"{source}: trials.{align_to}: {nan.size} trials have NaN alignment times and are dropped "
                      f"(rows {listed(nan)})", stacklevel=3)
    kept = used & ~np.isnan(align)
    if not kept.any():
        raise InputError(f"{source}: trials.{align_to}: no trial is left once trials with NaN alignment are dropped")
    if labels is not None:
        rows = {split: np.flatnonzero(kept & (labels == label)) for label, split in SPLIT_VALUES.items()}
        for split, index in rows.items():
            if index.size == 0:
                raise InputError(f"{source}: trials.{align_to}: every {split} trial has a NaN alignment time")
        return rows
    index = np.flatnonzero(kept)
    if index.size < 2:
        raise InputError(f"{source}: trials: {index.size} usable trial; a train/valid split needs at least 2")
    n_valid = min(max(int(round(valid_fraction * index.size)), 1), index.size - 1)
    valid = np.zeros(index.size, dtype=bool)
    valid[np.random.default_rng(seed).permutation(index.size)[:n_valid]] = True
    return {"train": index[~valid], "valid": index[valid]}
