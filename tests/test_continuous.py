"""Continuous recordings: windows cut and merged back without a seam, edge windows, the data set of the
windows, the array files, the command and the merged posterior and decoding of a fitted run."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy.io import savemat

from pyro_lfads.cli import main
from pyro_lfads.data import load_dataset
from pyro_lfads.data.continuous import (chop_windows, continuous_dataset, is_continuous, merge_splits, merge_weights,
                                        merge_windows, split_bins, window_starts)
from pyro_lfads.data.continuous_files import read_continuous
from pyro_lfads.errors import InputError


def smooth_signal(n_bins: int, dims: int = 3) -> np.ndarray:
    """(n_bins, dims) sums of slow sinusoids."""
    t = np.arange(n_bins)[:, None]
    return np.sin(t / 9.0 + np.arange(dims)) + 0.5 * np.cos(t / 23.0 * (1 + np.arange(dims)))


def recording(n_bins: int = 600, n_neurons: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Poisson spikes (n_bins, n_neurons) of rates driven by a 2-D latent, and that latent as behaviour."""
    rng = np.random.default_rng(seed)
    latent = smooth_signal(n_bins, 2)
    rates = np.exp(0.2 + latent @ rng.normal(0, 0.7, (2, n_neurons)))
    return rng.poisson(rates), latent


@pytest.mark.parametrize("n_bins, window, overlap", [(100, 20, 6), (137, 20, 5), (120, 20, 0), (97, 25, 12),
                                                     (64, 16, 15), (30, 30, 10)])
def test_a_smooth_signal_cut_and_merged_back_is_recovered_exactly(n_bins, window, overlap):
    signal = smooth_signal(n_bins)
    starts = window_starts(n_bins, window, overlap)
    windows = chop_windows(signal, starts, window)
    assert windows.shape == (starts.size, window, 3)
    np.testing.assert_allclose(merge_windows(windows, starts), signal, rtol=0, atol=1e-12)
    weights = merge_weights(starts, window)
    assert (weights > 0).all()
    total = np.zeros(n_bins)
    np.add.at(total, starts[:, None] + np.arange(window), weights)
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


@pytest.mark.parametrize("n_bins, window, overlap", [(100, 20, 6), (137, 20, 5), (120, 20, 0), (97, 25, 12)])
def test_the_last_window_is_aligned_to_the_end_and_every_bin_is_in_a_window(n_bins, window, overlap):
    starts = window_starts(n_bins, window, overlap)
    assert starts[0] == 0 and starts[-1] + window == n_bins
    steps = np.diff(starts)
    assert (steps[:-1] == window - overlap).all() and 0 < steps[-1] < 2 * (window - overlap)
    held = np.zeros(n_bins, dtype=int)
    np.add.at(held, starts[:, None] + np.arange(window), 1)
    assert held.min() == 1 and held.max() <= 2  # every bin, and no more than two windows where overlap <= window / 2


def test_one_window_a_stride_that_lands_on_the_end_and_a_window_the_end_window_makes_redundant():
    assert window_starts(30, 30, 10).tolist() == [0]
    assert window_starts(100, 20, 0).tolist() == [0, 20, 40, 60, 80]
    assert window_starts(35, 10, 3).tolist() == [0, 7, 14, 21, 25]
    assert window_starts(27, 10, 5).tolist() == [0, 5, 10, 17]  # [15, 25) lies within [10, 20) and [17, 27)


@pytest.mark.parametrize("n_bins, window, overlap", [(110, 20, 8), (100, 20, 6), (97, 25, 12)])
def test_windows_that_disagree_cross_over_linearly_with_no_seam(n_bins, window, overlap):
    starts = window_starts(n_bins, window, overlap)
    levels = np.arange(starts.size, dtype=float)  # window k says k everywhere: neighbours disagree by 1
    merged = merge_windows(np.broadcast_to(levels[:, None], (starts.size, window)), starts)
    expected = np.zeros(n_bins)
    for k, start in enumerate(starts):
        expected[start:] = k
        overlap_k = starts[k - 1] + window - start if k else 0  # the end window's overlap may differ
        expected[start:start + overlap_k] = k - 1 + (np.arange(overlap_k) + 0.5) / overlap_k
    np.testing.assert_allclose(merged, expected, atol=1e-12)
    # a seam would jump by 1: the merge climbs 1/L per bin through an overlap of L bins, and is flat elsewhere
    overlaps = starts[:-1] + window - starts[1:]
    assert np.abs(np.diff(merged)).max() == pytest.approx(1.0 / overlaps.min())


def test_bins_no_window_holds_are_nan():
    starts = np.array([0, 30])
    merged = merge_windows(np.ones((2, 10, 2)), starts, n_bins=50)
    assert np.isnan(merged[10:30]).all() and np.isnan(merged[40:]).all()
    assert (merged[:10] == 1).all() and (merged[30:40] == 1).all()


@pytest.mark.parametrize("args, message", [
    ((100, 120, 5), "window_bins: 120 is longer than the recording's 100 bins"),
    ((100, 20, 20), "overlap_bins: must be less than the 20 bins of a window, got 20"),
    ((100, 20, -1), "overlap_bins: must be an integer >= 0, got -1"),
    ((100, 0, 0), "window_bins: must be an integer >= 1, got 0"),
    ((100, 20.0, 5), "window_bins: must be an integer >= 1, got 20.0"),
    ((100, True, 0), "window_bins: must be an integer >= 1, got True"),
])
def test_bad_window_arguments_are_one_line(args, message):
    with pytest.raises(InputError) as caught:
        window_starts(*args)
    assert str(caught.value) == message


def test_the_data_set_of_the_windows_and_its_merge():
    spikes, behavior = recording()
    dataset = continuous_dataset(spikes, 40, 10, behavior=behavior, heldout_neurons=[7, 2], block_windows=2)
    assert is_continuous(dataset)
    starts = window_starts(600, 40, 10)
    order = [0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 2, 7]  # held in first, then held out
    all_starts = np.concatenate([dataset.extras["train_window_starts"], dataset.extras["valid_window_starts"]])
    assert sorted(all_starts.tolist()) == starts.tolist()
    assert dataset.valid.inds.tolist() == [k for k in range(starts.size) if (k // 2) % 5 == 4]
    for split in (dataset.train, dataset.valid):
        assert split.encod_data.shape[1:] == (40, 10) and split.recon_data.shape[1:] == (40, 12)
        np.testing.assert_array_equal(split.recon_data, chop_windows(spikes[:, order], starts[split.inds], 40))
    merged = merge_splits(dataset, dataset.train.recon_data, dataset.valid.recon_data)
    np.testing.assert_allclose(merged, spikes[:, order], atol=1e-5)
    merged_behavior = merge_splits(dataset, dataset.extras["train_behavior"], dataset.extras["valid_behavior"])
    np.testing.assert_allclose(merged_behavior, behavior, atol=1e-6)
    train_bins, valid_bins = split_bins(dataset)
    assert not (train_bins & valid_bins).any()
    in_valid = np.zeros(600, dtype=bool)
    in_valid[dataset.extras["valid_window_starts"][:, None] + np.arange(40)] = True
    assert valid_bins.any() and (in_valid[valid_bins]).all() and not in_valid[train_bins].any()
    seams = ~(train_bins | valid_bins)
    assert 0 < seams.sum() <= 2 * 10 * np.count_nonzero(np.diff(in_valid.astype(int)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(spikes=np.zeros(50)), "<arrays>: spikes: must be 2-D (bins, neurons), got shape (50,)"),
    (dict(behavior=np.zeros((599, 2))), "<arrays>: behavior: must be 2-D (bins, dims) with the 600 bins of the "
                                        "spikes, got shape (599, 2)"),
    (dict(heldout_neurons=[3, 3]), "<arrays>: heldout_neurons: must be distinct indices in 0..11"),
    (dict(heldout_neurons=[12]), "<arrays>: heldout_neurons: must be distinct indices in 0..11"),
    (dict(heldout_neurons=list(range(12))), "<arrays>: heldout_neurons: holds out all 12 neurons; the encoders "
                                            "need some"),
    (dict(window_bins=300), "<arrays>: 3 windows of 300 bins leave no validation window (valid_every=5, "
                            "block_windows=1); use shorter windows or a longer recording"),
    (dict(valid_every=1), "valid_every: must be an integer >= 2, got 1"),
])
def test_bad_recordings_and_options_are_one_line(kwargs, message):
    spikes, _ = recording()
    arguments = dict(spikes=spikes, window_bins=40, overlap_bins=10) | kwargs
    with pytest.raises(InputError) as caught:
        continuous_dataset(**arguments)
    assert str(caught.value) == message


def test_negative_spikes_are_refused_by_the_data_set_checks():
    spikes, _ = recording()
    spikes[5, 3] = -1
    with pytest.raises(InputError, match="train_encod_data"):
        continuous_dataset(spikes, 40, 10)


@pytest.mark.parametrize("suffix", [".mat", ".npz", ".h5", "-v73.mat"])
def test_array_files_read_alike(tmp_path, suffix):
    spikes, behavior = recording()
    path = tmp_path / f"rec{suffix}"
    stored = {"spk": spikes.T, "vel": np.c_[behavior, np.ones(600)].T}  # (neurons, bins), as MATLAB files keep them
    if suffix == ".mat":
        savemat(path, stored)
    elif suffix == ".npz":
        np.savez(path, **stored)
    else:
        with h5py.File(path, "w") as h5:  # MATLAB v7.3 is HDF5 with the axes reversed
            for key, value in stored.items():
                h5[key] = value.T if suffix.endswith(".mat") else value
    got_spikes, got_behavior = read_continuous(path, "spk", "vel", behavior_dims=[0, 1], transpose=True)
    np.testing.assert_array_equal(got_spikes, spikes)
    np.testing.assert_allclose(got_behavior, behavior)


def test_bad_array_files_are_one_line(tmp_path):
    spikes, behavior = recording()
    path = tmp_path / "rec.npz"
    np.savez(path, spikes=spikes, vel=behavior.T)
    cases = [((tmp_path / "none.npz",), "file does not exist"),
             ((path, "spk"), "spk: missing; the file has keys: spikes, vel"),
             ((path, "spikes", "vel"), "vel: has 2 bins but spikes has 600 (arrays stored (neurons, bins)? "
                                       "pass transpose=True)"),
             ((tmp_path / "rec.txt",), "unknown file type '.txt'")]
    (tmp_path / "rec.txt").write_text("1 2 3")
    for args, message in cases:
        with pytest.raises(InputError) as caught:
            read_continuous(*args)
        assert str(caught.value) == f"{args[0]}: {message}" or message in str(caught.value)
        assert "\n" not in str(caught.value)


def test_the_command_writes_windows_that_load_and_words_errors_as_flags(tmp_path, capsys):
    spikes, behavior = recording()
    source, out = tmp_path / "rec.mat", tmp_path / "windows.h5"
    savemat(source, {"spikes": spikes.T, "handVel": behavior.T})
    assert main(["from-continuous", str(source), "--out", str(out), "--window-bins", "40", "--overlap-bins", "10",
                 "--behavior", "handVel", "--transpose"]) == 0
    assert "cut into 16 train and 4 valid windows of 40 bins, with 2 behaviour dims" in capsys.readouterr().out
    dataset = load_dataset(out)
    assert is_continuous(dataset) and dataset.extras["train_behavior"].shape == (16, 40, 2)
    for flags, message in [(["--window-bins", "40", "--overlap-bins", "40"], "--overlap-bins: must be less than"),
                           (["--window-bins", "900", "--overlap-bins", "0"], "--window-bins: 900 is longer"),
                           (["--window-bins", "40", "--overlap-bins", "0", "--behavior", "handVel"],
                            "pass --transpose"),
                           (["--window-bins", "40", "--overlap-bins", "0", "--valid-every", "30", "--transpose"],
                            "(--valid-every 30, --block-windows 1)")]:
        assert main(["from-continuous", str(source), "--out", str(out), *flags]) == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1, error


@pytest.mark.slow
def test_posterior_and_decode_merge_a_fitted_runs_windows(tmp_path, capsys):
    from pyro_lfads.data import save_dataset
    from pyro_lfads.fitting.posterior import read_posterior

    spikes, behavior = recording(n_bins=800)
    dataset = continuous_dataset(spikes, 40, 10, behavior=behavior, block_windows=2)
    data, run = tmp_path / "windows.h5", tmp_path / "run"
    save_dataset(dataset, data)
    (tmp_path / "tiny.yaml").write_text("gen_dim: 16\nfac_dim: 4\nic_enc_dim: 8\nci_enc_dim: 8\ncon_dim: 8\n"
                                        "co_dim: 1\nbatch_size: 8\nkl_ramp_steps: 10\nposterior_samples: 3\n")
    assert main(["fit", str(data), "--out", str(run), "--config", str(tmp_path / "tiny.yaml"), "--max-epochs", "2",
                 "--quiet"]) == 0
    assert main(["posterior", str(run), "--quiet"]) == 0
    merged = read_posterior(run, "continuous")
    assert set(merged) == {"output_params", "factors", "gen_states", "co_means"}
    assert merged["output_params"].shape == (800, 12) and merged["factors"].shape == (800, 4)
    splits = [read_posterior(run, split)["output_params"] for split in ("train", "valid")]
    np.testing.assert_allclose(merged["output_params"], merge_splits(dataset, *splits), rtol=1e-6)
    capsys.readouterr()
    assert main(["decode", str(run)]) == 0
    assert '"vel_r2"' in capsys.readouterr().out
    with h5py.File(run / "decoding.h5") as h5:
        assert h5["continuous_behavior_pred"].shape == (800, 2) and np.isfinite(h5.attrs["vel_r2"])
