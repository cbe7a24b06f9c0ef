"""Continuous recordings: cut into overlapping windows for LFADS, and the windows merged back.

A continuous binned recording, spikes ``(bins, neurons)`` in counts per bin and any behaviour
``(bins, dims)`` that travels with it, is cut into windows of ``window_bins`` bins that start every
``window_bins - overlap_bins`` bins; when that stride does not land on the end, a last window is aligned to
the end of the recording (and a window it and its predecessor cover entirely is left out), so every bin is in
a window. The windows are the trials of an :class:`~pyro_lfads.data.containers.LFADSDataset`; each split keeps
its windows' first bins as the extra ``{split}_window_starts`` (windows,) int64, which is what marks a data set
as continuous and what :func:`merge_splits` needs.

Merging: where window ``k`` overlaps the window before it by ``L`` bins, its weight ramps up linearly over
those bins, ``(i + 1/2) / L`` at its ``i``-th bin; where it overlaps the window after it, it ramps down the
same way; it is 1 elsewhere. Where two windows overlap (every overlap, when ``overlap_bins <= window_bins /
2``) the two ramps sum to 1: values the windows agree on come back exactly and values they disagree on
cross over linearly, with no seam. Where more windows hold a bin, their weights are divided by their sum.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from pyro_lfads.data.containers import SPLITS, LFADSDataset, Split
from pyro_lfads.data.validation import NUMBER_KINDS, check_dataset, dtype_problem
from pyro_lfads.errors import InputError

#: The extra of each split that holds its windows' first bins, (windows,) int64.
STARTS_KEY = "{split}_window_starts"


def _integer(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InputError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def window_starts(n_bins: int, window_bins: int, overlap_bins: int) -> np.ndarray:
    """First bins (windows,) int64 of the windows that cover ``n_bins`` bins: every ``window_bins -
    overlap_bins`` bins, and a last window aligned to the end when the stride does not land there (a window
    that it and its predecessor cover entirely is then left out)."""
    n_bins = _integer(n_bins, "n_bins", 1)
    window_bins = _integer(window_bins, "window_bins", 1)
    overlap_bins = _integer(overlap_bins, "overlap_bins", 0)
    if overlap_bins >= window_bins:
        raise InputError(f"overlap_bins: must be less than the {window_bins} bins of a window, got {overlap_bins}")
    if window_bins > n_bins:
        raise InputError(f"window_bins: {window_bins} is longer than the recording's {n_bins} bins")
    starts = np.arange(0, n_bins - window_bins + 1, window_bins - overlap_bins, dtype=np.int64)
    last = n_bins - window_bins
    if starts[-1] < last:
        while starts.size > 1 and starts[-2] + window_bins > last:  # covered by its predecessor and the last
            starts = starts[:-1]
        starts = np.append(starts, last)
    return starts


def chop_windows(series: np.ndarray, starts: np.ndarray, window_bins: int) -> np.ndarray:
    """The windows (windows, window_bins, ...) of ``series`` (bins, ...) that begin at ``starts``."""
    return np.asarray(series)[np.asarray(starts)[:, None] + np.arange(window_bins)]


def merge_weights(starts: np.ndarray, window_bins: int, n_bins: int | None = None) -> np.ndarray:
    """Weights (windows, window_bins) of each window's bins in the merge (module docstring), > 0: at every
    bin some window holds, the weights of the windows that hold it sum to 1."""
    starts = np.asarray(starts, dtype=np.int64)
    n_bins = int(starts.max()) + window_bins if n_bins is None else n_bins
    order = np.argsort(starts, kind="stable")
    overlaps = np.maximum(0, starts[order[:-1]] + window_bins - starts[order[1:]])
    rise, fall = np.zeros(starts.size), np.zeros(starts.size)
    rise[order[1:]], fall[order[:-1]] = overlaps, overlaps
    position = np.arange(window_bins) + 0.5
    with np.errstate(divide="ignore"):  # no overlap: a ramp of 0 bins, weight 1
        ramps = np.minimum(position / rise[:, None], (window_bins - position) / fall[:, None])
    weights = np.minimum(ramps, 1.0)
    total = np.zeros(n_bins)
    np.add.at(total, starts[:, None] + np.arange(window_bins), weights)
    return weights / total[starts[:, None] + np.arange(window_bins)]


def merge_windows(windows: np.ndarray, starts: np.ndarray, n_bins: int | None = None) -> np.ndarray:
    """One continuous series (n_bins, ...) from ``windows`` (windows, window_bins, ...) that begin at
    ``starts`` (windows,), weighted as the module docstring says; NaN at bins no window holds.

    ``n_bins`` defaults to the end of the last window.
    """
    windows = np.asarray(windows, dtype=np.float64)
    starts = np.asarray(starts, dtype=np.int64)
    if windows.ndim < 2 or windows.shape[0] == 0 or starts.shape != (windows.shape[0],):
        raise InputError(f"windows: expected (windows, window_bins, ...) with one start per window, got shape "
                         f"{windows.shape} and {starts.size} starts")
    window_bins = windows.shape[1]
    n_bins = int(starts.max()) + window_bins if n_bins is None else n_bins
    if starts.min() < 0 or starts.max() + window_bins > n_bins:
        raise InputError(f"starts: windows of {window_bins} bins must lie within the {n_bins} bins")
    weights = merge_weights(starts, window_bins, n_bins).reshape(*starts.shape, window_bins, *[1] * (windows.ndim - 2))
    merged = np.zeros((n_bins, *windows.shape[2:]))
    np.add.at(merged, starts[:, None] + np.arange(window_bins), weights * windows)
    covered = np.zeros(n_bins, dtype=bool)
    covered[starts[:, None] + np.arange(window_bins)] = True
    merged[~covered] = np.nan
    return merged


def continuous_dataset(spikes: np.ndarray, window_bins: int, overlap_bins: int, *,
                       behavior: np.ndarray | None = None, heldout_neurons: Sequence[int] | None = None,
                       valid_every: int = 5, block_windows: int = 1, bin_width_s: float | None = None,
                       source: str = "<arrays>") -> LFADSDataset:
    """An LFADS data set of the overlapping windows of a continuous recording, validated for counts.

    Args:
        spikes: (bins, neurons) counts per bin.
        window_bins, overlap_bins: window length and the bins consecutive windows share,
            1 <= window_bins <= bins, 0 <= overlap_bins < window_bins.
        behavior: (bins, dims) behaviour (e.g. hand velocity) of the same bins, or None; it becomes
            ``{split}_behavior`` (windows, window_bins, dims). NaN marks an unknown bin.
        heldout_neurons: indices of neurons the encoders do not read: ``encod_data`` holds the others,
            ``recon_data`` those then these (the NLB layout, for co-bps); None holds out none.
        valid_every, block_windows: consecutive windows go in blocks of ``block_windows``; every
            ``valid_every``-th block is validation (``block_windows`` > 1 holds out whole stretches).
        bin_width_s: the width of one bin, seconds (recorded in the data set; None: unknown).
        source: named in error messages and kept as the data set's ``source``.

    Returns:
        The data set: windows in recording order in each split, ``inds`` their index in the
        recording, ``extras`` ``{split}_window_starts`` (and ``{split}_behavior``).
    """
    spikes = np.asarray(spikes)
    if spikes.ndim != 2:
        raise InputError(f"{source}: spikes: must be 2-D (bins, neurons), got shape {spikes.shape}")
    if spikes.dtype.kind not in NUMBER_KINDS:
        raise InputError(f"{source}: spikes: {dtype_problem(spikes.dtype)}")
    valid_every = _integer(valid_every, "valid_every", 2)
    block_windows = _integer(block_windows, "block_windows", 1)
    n_bins, n_neurons = spikes.shape
    starts = window_starts(n_bins, window_bins, overlap_bins)
    order, n_heldin = _neuron_order(heldout_neurons, n_neurons, source)
    is_valid = (np.arange(starts.size) // block_windows) % valid_every == valid_every - 1
    if is_valid.all() or not is_valid.any():
        raise InputError(f"{source}: {starts.size} windows of {window_bins} bins leave no "
                         f"{'training' if is_valid.all() else 'validation'} window (valid_every={valid_every}, "
                         f"block_windows={block_windows}); use shorter windows or a longer recording")
    if behavior is not None:
        behavior = np.asarray(behavior)
        if behavior.dtype.kind not in NUMBER_KINDS:
            raise InputError(f"{source}: behavior: {dtype_problem(behavior.dtype)}")
        if behavior.ndim != 2 or behavior.shape[0] != n_bins:
            raise InputError(f"{source}: behavior: must be 2-D (bins, dims) with the {n_bins} bins of the spikes, "
                             f"got shape {behavior.shape}")
    windows = chop_windows(spikes[:, order].astype(np.float32), starts, window_bins)
    splits, extras = {}, {}
    for split, rows in (("train", np.flatnonzero(~is_valid)), ("valid", np.flatnonzero(is_valid))):
        recon = windows[rows]
        encod = recon if n_heldin == n_neurons else recon[:, :, :n_heldin]
        splits[split] = Split(encod, recon, inds=rows.astype(np.int64))
        extras[STARTS_KEY.format(split=split)] = starts[rows]
        if behavior is not None:
            extras[f"{split}_behavior"] = chop_windows(behavior.astype(np.float32), starts[rows], window_bins)
    dataset = LFADSDataset(splits["train"], splits["valid"], source=source, extras=extras, bin_width_s=bin_width_s)
    check_dataset(dataset, "counts", None, {})
    return dataset


def _neuron_order(heldout: Sequence[int] | None, n_neurons: int, source: str) -> tuple[np.ndarray, int]:
    """Neuron indices with the held-in ones first, each group in increasing order; and how many are held in."""
    if heldout is None:
        return np.arange(n_neurons), n_neurons
    heldout = np.asarray(heldout)
    if heldout.ndim != 1 or heldout.dtype.kind not in "iu" or heldout.size == 0:
        raise InputError(f"{source}: heldout_neurons: must be a non-empty 1-D sequence of neuron indices")
    if heldout.min() < 0 or heldout.max() >= n_neurons or np.unique(heldout).size != heldout.size:
        raise InputError(f"{source}: heldout_neurons: must be distinct indices in 0..{n_neurons - 1}")
    if heldout.size == n_neurons:
        raise InputError(f"{source}: heldout_neurons: holds out all {n_neurons} neurons; the encoders need some")
    return np.concatenate([np.setdiff1d(np.arange(n_neurons), heldout), np.sort(heldout)]), n_neurons - heldout.size


def is_continuous(dataset: LFADSDataset) -> bool:
    """Whether ``dataset`` holds the windows of a continuous recording (:func:`continuous_dataset`)."""
    return all(STARTS_KEY.format(split=split) in dataset.extras for split in SPLITS)


def _all_starts(dataset: LFADSDataset) -> tuple[np.ndarray, np.ndarray]:
    """Window starts of both splits (train then valid), and whether each window is a validation window."""
    if not is_continuous(dataset):
        raise InputError(f"{dataset.source}: train_window_starts / valid_window_starts: missing; the data set "
                         "does not come from a continuous recording")
    starts = [np.asarray(dataset.extras[STARTS_KEY.format(split=split)], dtype=np.int64) for split in SPLITS]
    for split, part, values in zip(SPLITS, (dataset.train, dataset.valid), starts):
        if values.shape != (part.n_trials,):
            raise InputError(f"{dataset.source}: {STARTS_KEY.format(split=split)}: must hold one start per "
                             f"window, shape ({part.n_trials},), got {values.shape}")
    return np.concatenate(starts), np.repeat([False, True], [starts[0].size, starts[1].size])


def merge_splits(dataset: LFADSDataset, train_values: np.ndarray, valid_values: np.ndarray) -> np.ndarray:
    """The continuous series (bins, ...) of per-window values of both splits of a continuous data set:
    ``train_values`` (train windows, T, ...) and ``valid_values`` (valid windows, T, ...), e.g. posterior
    mean rates or factors, merged as :func:`merge_windows` does. With T under the windows' bins (a model
    that reads the first T bins of each window) the bins no window's first T hold are NaN."""
    starts, _ = _all_starts(dataset)
    train_values, valid_values = np.asarray(train_values), np.asarray(valid_values)
    window_bins = dataset.train.n_time
    for name, values, part in (("train_values", train_values, dataset.train),
                               ("valid_values", valid_values, dataset.valid)):
        if values.ndim < 2 or values.shape[0] != part.n_trials or not 0 < values.shape[1] <= window_bins \
                or values.shape[1] != train_values.shape[1]:
            raise InputError(f"{name}: expected ({part.n_trials} windows, at most {window_bins} bins, ...) like "
                             f"train_values, got shape {values.shape}")
    return merge_windows(np.concatenate([train_values, valid_values]), starts, int(starts.max()) + window_bins)


def split_bins(dataset: LFADSDataset) -> tuple[np.ndarray, np.ndarray]:
    """Masks (bins,) bool of the continuous bins that only training windows hold, and of those that
    only validation windows hold; bins at a seam between the two are in neither."""
    starts, is_valid = _all_starts(dataset)
    window_bins = dataset.train.n_time
    counts = np.zeros((2, int(starts.max()) + window_bins), dtype=np.int64)
    for row, chosen in enumerate((~is_valid, is_valid)):
        np.add.at(counts[row], starts[chosen][:, None] + np.arange(window_bins), 1)
    return (counts[0] > 0) & (counts[1] == 0), (counts[1] > 0) & (counts[0] == 0)
