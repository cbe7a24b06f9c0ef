"""Tests for pyro_lfads.data.binning: spike counts, window alignment and resampling, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pyro_lfads.data.binning import align_windows, bin_spike_times, resample_to_bins
from pyro_lfads.errors import InputError

# Bin widths that are exact in binary floating point keep the edge cases exact.
BIN = 0.25


def test_counts_by_hand_with_half_open_edges():
    unit0 = np.array([1.0, 1.1, 1.25, 1.74, 1.75, 2.0, 3.0])  # 1.0 is a start, 2.0 the end of trial 0
    unit1 = np.array([0.5, 3.0, 3.24, 3.25])  # 0.5: before every window
    counts = bin_spike_times([unit0, unit1], starts=np.array([1.0, 3.0]), n_bins=4, bin_s=BIN)
    assert counts.dtype == np.float32 and counts.shape == (2, 4, 2)
    # Trial 0: bins [1, 1.25) [1.25, 1.5) [1.5, 1.75) [1.75, 2); 2.0 falls outside.
    np.testing.assert_array_equal(counts[0, :, 0], [2, 1, 1, 1])
    np.testing.assert_array_equal(counts[0, :, 1], [0, 0, 0, 0])
    # Trial 1: bins from 3.0; unit 0 spikes once at 3.0, unit 1 at 3.0, 3.24 and 3.25.
    np.testing.assert_array_equal(counts[1, :, 0], [1, 0, 0, 0])
    np.testing.assert_array_equal(counts[1, :, 1], [2, 1, 0, 0])


def test_unsorted_spike_times_are_sorted_and_windows_may_overlap():
    counts = bin_spike_times([[1.6, 1.1, 1.3]], starts=[1.0, 1.25], n_bins=2, bin_s=BIN)
    np.testing.assert_array_equal(counts[:, :, 0], [[1, 1], [1, 1]])


def test_a_unit_without_spikes_and_no_units():
    assert not bin_spike_times([np.array([])], [0.0], 3, BIN).any()
    assert bin_spike_times([], [0.0, 1.0], 3, BIN).shape == (2, 3, 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(spike_times_per_unit=np.zeros((2, 3))), r"<arrays>: spike_times_per_unit: must be a list of 1-D"),
        (dict(spike_times_per_unit=[[0.1], [np.nan, 0.2]]), r"spike_times_per_unit\[1\]: 1 spike times are NaN"),
        (dict(spike_times_per_unit=[[[0.1]]]), r"spike_times_per_unit\[0\]: must be 1-D"),
        (dict(spike_times_per_unit=[["a"]]), r"spike_times_per_unit\[0\]: has dtype <U1"),
        (dict(starts=[0.0, np.inf]), r"starts: 1 window starts are NaN or infinite \(trials 1\)"),
        (dict(n_bins=0), r"n_bins: must be a positive integer, got 0"),
        (dict(n_bins=2.0), r"n_bins: must be a positive integer"),
        (dict(bin_s=0.0), r"bin_s: must be a positive finite number, got 0.0"),
        (dict(bin_s="1"), r"bin_s: must be a positive number"),
    ],
)
def test_bin_spike_times_errors(kwargs, match):
    args = dict(spike_times_per_unit=[[0.1]], starts=[0.0], n_bins=2, bin_s=BIN) | kwargs
    with pytest.raises(InputError, match=match):
        bin_spike_times(**args)


def test_bin_spike_times_names_the_source_and_series():
    with pytest.raises(InputError, match=r"^f\.nwb: units\.spike_times\[0\]: "):
        bin_spike_times([[np.nan]], [0.0], 1, BIN, source="f.nwb", name="units.spike_times")


def test_align_windows():
    starts, n_bins = align_windows(np.array([10.0, 20.5]), (-0.25, 0.5), BIN)
    np.testing.assert_array_equal(starts, [9.75, 20.25])
    assert n_bins == 3
    # Not exact in binary, but a whole number of bins within the tolerance.
    assert align_windows([0.0], (0.0, 0.7), 0.005)[1] == 140


@pytest.mark.parametrize(
    "align, window, bin_s, match",
    [
        ([0.0, np.nan, 1.0, np.nan], (0.0, 1.0), BIN, r"align_times: 2 alignment times are NaN .*\(trials 1, 3\)"),
        ([0.0], (0.5, 0.5), BIN, r"window_s: end 0.5 s must be after start 0.5 s"),
        ([0.0], (0.5, 0.0), BIN, r"window_s: end 0 s must be after start 0.5 s"),
        ([0.0], (0.0, 1.0), 0.0, r"bin_s: must be a positive finite number"),
        ([0.0], (0.0, 1.0), -0.1, r"bin_s: must be a positive finite number"),
        ([0.0], (0.0, 0.6), BIN, r"window_s: length 0.6 s is not a whole number of 0.25 s bins \(2.4 bins\)"),
        ([0.0], (0.0,), BIN, r"window_s: must be a pair"),
        ([0.0], (0.0, np.inf), BIN, r"window_s: must be finite"),
        ([[0.0]], (0.0, 1.0), BIN, r"align_times: must be 1-D"),
    ],
)
def test_align_windows_errors(align, window, bin_s, match):
    with pytest.raises(InputError, match=match):
        align_windows(align, window, bin_s)


def test_resample_means_the_samples_in_each_bin():
    times = np.array([0.0, 0.1, 0.3, 0.6, 0.7, 0.8, 1.0])
    values = np.stack([np.array([1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0]), np.arange(7.0)], axis=1)
    out = resample_to_bins(times, values, starts=[0.0], n_bins=4, bin_s=BIN)
    assert out.dtype == np.float32 and out.shape == (1, 4, 2)
    # [0, .25): samples 0, 1; [.25, .5): sample 2; [.5, .75): samples 3, 4; [.75, 1): sample 5.
    np.testing.assert_allclose(out[0, :, 0], [2.0, 5.0, 8.0, 11.0])
    np.testing.assert_allclose(out[0, :, 1], [0.5, 2.0, 3.5, 5.0])


def test_resample_interpolates_empty_bins_at_their_centre():
    times = np.array([0.0, 1.0])
    out = resample_to_bins(times, np.array([0.0, 10.0]), starts=[0.25, 0.0], n_bins=2, bin_s=BIN)
    # Trial 0: centres 0.375 and 0.625; trial 1: bin [0, .25) holds sample 0, centre .375 interpolated.
    np.testing.assert_allclose(out[:, :, 0], [[3.75, 6.25], [0.0, 3.75]])


def test_resample_marks_bins_with_nan_samples_unknown():
    times = np.arange(8) * 0.125
    values = np.arange(8.0)
    values[3] = np.nan
    out = resample_to_bins(times, values, starts=[0.0], n_bins=3, bin_s=BIN)
    np.testing.assert_allclose(out[0, :, 0], [0.5, np.nan, 4.5])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(starts=[0.9]), r"timestamps: windows of trials 0 lie outside the series' time range \[0, 1\] s"),
        (dict(starts=[-0.1, 0.0, 0.6]), r"timestamps: windows of trials 0, 2 lie outside"),
        (dict(timestamps=[0.0, 0.5, 0.4, 1.0]), r"timestamps: must not decrease, but sample 2 is earlier"),
        (dict(timestamps=[0.0, np.nan, 0.6, 1.0]), r"timestamps: 1 timestamps are NaN or infinite \(samples 1\)"),
        (dict(values=np.zeros((3, 2))), r"values: must be \(samples,\) or \(samples, dims\) with 4 samples"),
        (dict(values=np.zeros((4, 2, 1))), r"values: must be \(samples,\) or \(samples, dims\)"),
        (dict(values=np.zeros((4, 0))), r"values: is empty"),
        (dict(values=np.array(["a"] * 4)), r"values: has dtype <U1, not numbers"),
        (dict(n_bins=-1), r"n_bins: must be a positive integer"),
        (dict(bin_s=np.nan), r"bin_s: must be a positive finite number"),
    ],
)
def test_resample_errors(kwargs, match):
    args = dict(timestamps=[0.0, 0.4, 0.6, 1.0], values=np.zeros(4), starts=[0.0], n_bins=2, bin_s=BIN) | kwargs
    with pytest.raises(InputError, match=match):
        resample_to_bins(**args)


def test_resample_names_the_series():
    with pytest.raises(InputError, match=r"^f\.nwb: hand_vel\.timestamps: windows of trials 0 lie outside"):
        resample_to_bins([0.0, 1.0], [0.0, 1.0], [2.0], 1, BIN, source="f.nwb", name="hand_vel")
    with pytest.raises(InputError, match=r"^f\.nwb: hand_vel\.data: must be"):
        resample_to_bins([0.0, 1.0], [0.0], [0.0], 1, BIN, source="f.nwb", name="hand_vel")
