"""Binning spike times and resampling continuous signals onto trial-aligned bins.

Times are in seconds. A trial's window starts at ``starts[trial]`` and holds
``n_bins`` half-open bins ``[start + k * bin_s, start + (k + 1) * bin_s)``.

- ``align_windows``: alignment times and a window around them -> window
  starts (trials,) and the number of bins.
- ``bin_spike_times``: one array of spike times per unit -> counts
  (trials, n_bins, units), float32.
- ``resample_to_bins``: a sampled signal (samples, dims) -> its mean in each
  bin (trials, n_bins, dims), float32.

Bad input raises ``InputError`` with one line ``<source>: <key>: <problem>``;
``source`` defaults to ``"<arrays>"`` and keys are the argument names unless a
caller names the series (e.g. the NWB reader passes the file and column names).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pyro_lfads.data.validation import listed
from pyro_lfads.errors import InputError

#: Allowed distance of (window length / bin width) from a whole number.
WINDOW_TOLERANCE = 1e-9


def align_windows(
    align_times: np.ndarray,
    window_s: tuple[float, float],
    bin_s: float,
    *,
    source: str = "<arrays>",
) -> tuple[np.ndarray, int]:
    """Window starts and bin count for windows ``[align + window_s[0], align + window_s[1])``.

    Args:
        align_times: (trials,) alignment time of each trial, seconds; no NaN.
        window_s: (start, end) of the window relative to the alignment time,
            seconds; ``end - start`` must be a whole number of bins.
        bin_s: bin width, seconds.

    Returns:
        (starts, n_bins): starts (trials,) float64 seconds, and the number of
        bins in each window.
    """
    align = _times(align_times, source, "align_times", "alignment times", "trials")
    bin_s = _positive(bin_s, source, "bin_s")
    try:
        begin, end = (float(value) for value in window_s)
    except (TypeError, ValueError):
        raise InputError(f"{source}: window_s: must be a pair (start, end) of numbers, got {window_s!r}") from None
    if not (np.isfinite(begin) and np.isfinite(end)):
        raise InputError(f"{source}: window_s: must be finite, got ({begin:g}, {end:g})")
    if end <= begin:
        raise InputError(f"{source}: window_s: end {end:g} s must be after start {begin:g} s")
    ratio = (end - begin) / bin_s
    n_bins = int(round(ratio))
    if abs(ratio - n_bins) > WINDOW_TOLERANCE:
        raise InputError(
            f"{source}: window_s: length {end - begin:g} s is not a whole number of {bin_s:g} s bins "
            f"({ratio:g} bins)"
        )
    return align + begin, n_bins


def bin_spike_times(
    spike_times_per_unit: Sequence[np.ndarray],
    starts: np.ndarray,
    n_bins: int,
    bin_s: float,
    *,
    source: str = "<arrays>",
    name: str = "spike_times_per_unit",
) -> np.ndarray:
    """Spike counts per bin, (trials, n_bins, units) float32.

    Args:
        spike_times_per_unit: one 1-D array of spike times (seconds) per
            unit; sorted if they are not.
        starts: (trials,) window starts, seconds.
        n_bins: bins per window.
        bin_s: bin width, seconds; bins are half-open, ``[a, b)``.
        name: the key naming a unit's spike times in messages, as ``name[i]``.
    """
    starts, n_bins, bin_s = _windows(starts, n_bins, bin_s, source)
    if isinstance(spike_times_per_unit, (str, bytes)) or (
        isinstance(spike_times_per_unit, np.ndarray) and spike_times_per_unit.dtype != object
    ):
        raise InputError(f"{source}: {name}: must be a list of 1-D arrays of spike times, one per unit")
    units = list(spike_times_per_unit)
    edges = _edges(starts, n_bins, bin_s)
    counts = np.zeros((starts.shape[0], n_bins, len(units)), dtype=np.float32)
    for unit, times in enumerate(units):
        times = _times(times, source, f"{name}[{unit}]", "spike times", "positions")
        if np.any(times[1:] < times[:-1]):
            times = np.sort(times)
        counts[:, :, unit] = np.diff(np.searchsorted(times, edges, side="left"), axis=1)
    return counts


def resample_to_bins(
    timestamps: np.ndarray,
    values: np.ndarray,
    starts: np.ndarray,
    n_bins: int,
    bin_s: float,
    *,
    source: str = "<arrays>",
    name: str | None = None,
) -> np.ndarray:
    """Mean of a sampled signal in each bin, (trials, n_bins, dims) float32.

    A bin's value is the mean of the samples with times in ``[a, b)``; a bin
    with no sample gets the signal linearly interpolated at the bin centre.
    Bins that a NaN or infinite sample enters are NaN (unknown), as NLB marks
    missing behaviour.

    Args:
        timestamps: (samples,) sample times, seconds, not decreasing.
        values: (samples, dims) or (samples,) sample values (one dim).
        starts, n_bins, bin_s: the windows, as in ``bin_spike_times``; each
            window must lie within ``[timestamps[0], timestamps[-1]]``.
        name: the series' name in messages (keys ``name.timestamps`` and
            ``name.data``); without it the keys are ``timestamps`` and ``values``.

    Raises:
        InputError: bad shapes, dtypes or timestamps, or a window outside
            the series.
    """
    time_key = "timestamps" if name is None else f"{name}.timestamps"
    value_key = "values" if name is None else f"{name}.data"
    starts, n_bins, bin_s = _windows(starts, n_bins, bin_s, source)
    times = _times(timestamps, source, time_key, "timestamps", "samples")
    decreasing = np.flatnonzero(times[1:] < times[:-1])
    if decreasing.size:
        raise InputError(f"{source}: {time_key}: must not decrease, but sample {decreasing[0] + 1} is "
                         f"earlier than sample {decreasing[0]}")
    data = np.asarray(values)
    if data.dtype.kind not in "biuf":
        raise InputError(f"{source}: {value_key}: has dtype {data.dtype}, not numbers")
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[0] != times.shape[0]:
        raise InputError(
            f"{source}: {value_key}: must be (samples,) or (samples, dims) with {times.shape[0]} samples "
            f"like {time_key}, got shape {np.shape(values)}"
        )
    if data.shape[1] == 0 or times.shape[0] == 0:
        raise InputError(f"{source}: {value_key}: is empty (shape {np.shape(values)})")
    data = data.astype(np.float64, copy=False)
    edges = _edges(starts, n_bins, bin_s)
    first, last = times[0], times[-1]
    outside = np.flatnonzero((edges[:, 0] < first - WINDOW_TOLERANCE) | (edges[:, -1] > last + WINDOW_TOLERANCE))
    if outside.size:
        raise InputError(
            f"{source}: {time_key}: windows of trials {listed(outside)} lie outside the series' "
            f"time range [{first:g}, {last:g}] s"
        )
    index = np.searchsorted(times, edges, side="left")
    low, high = index[:, :-1], index[:, 1:]
    finite = np.isfinite(data).all(axis=1)
    total = np.concatenate([np.zeros((1, data.shape[1])), np.cumsum(np.where(finite[:, None], data, 0.0), axis=0)])
    n_bad = np.concatenate([[0], np.cumsum(~finite)])
    count = (high - low)[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (total[high] - total[low]) / count
    empty = count[..., 0] == 0
    if empty.any():
        centres = (edges[:, :-1] + 0.5 * bin_s)[empty]
        means[empty] = np.stack([np.interp(centres, times, data[:, dim]) for dim in range(data.shape[1])], axis=-1)
    means[(n_bad[high] - n_bad[low] > 0) | ~np.isfinite(means).all(axis=-1)] = np.nan
    return means.astype(np.float32)


# ---------------------------------------------------------------- checks


def _windows(starts: object, n_bins: object, bin_s: object, source: str) -> tuple[np.ndarray, int, float]:
    starts = _times(starts, source, "starts", "window starts", "trials")
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise InputError(f"{source}: n_bins: must be a positive integer, got {n_bins!r}")
    return starts, int(n_bins), _positive(bin_s, source, "bin_s")


def _positive(value: object, source: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{source}: {key}: must be a positive number, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"{source}: {key}: must be a positive finite number, got {value!r}")
    return float(value)


def _times(value: object, source: str, key: str, what: str, index: str) -> np.ndarray:
    """A 1-D float64 array of finite times; ``index`` names its entries in messages."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{source}: {key}: cannot be made an array of {what}: {exc}") from None
    if array.dtype.kind not in "iuf":
        raise InputError(f"{source}: {key}: has dtype {array.dtype}; {what} must be numbers (seconds)")
    if array.ndim != 1:
        raise InputError(f"{source}: {key}: must be 1-D, got shape {array.shape}")
    array = array.astype(np.float64, copy=False)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise InputError(f"{source}: {key}: {bad.size} {what} are NaN or infinite ({index} {listed(bad)})")
    return array


def _edges(starts: np.ndarray, n_bins: int, bin_s: float) -> np.ndarray:
    """(trials, n_bins + 1) bin edges."""
    return starts[:, None] + np.arange(n_bins + 1) * bin_s
