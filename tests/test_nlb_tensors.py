"""Tests for pyro_lfads.data.nlb: NLB tensor files <-> LFADS data sets."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from pyro_lfads.data import dataset_from_arrays, load_dataset, save_dataset
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.run import dataset_sha256
from pyro_lfads.data.nlb import is_nlb_file, load_nlb_tensors, read_nlb_inputs
from pyro_lfads.data.nlb_writing import save_nlb_tensors

N_TRAIN, N_EVAL, T, T_FWD, N_IN, N_OUT, B = 6, 4, 10, 3, 5, 2, 2


def nlb_arrays(forward=True, extras=True, seed=0) -> dict:
    """An NLB tensor file as a dict of arrays (float64 spikes, like nlb_tools)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", N_TRAIN), ("eval", N_EVAL)):
        arrays[f"{split}_spikes_heldin"] = rng.poisson(1.0, (n, T, N_IN)).astype(float)
        arrays[f"{split}_spikes_heldout"] = rng.poisson(1.0, (n, T, N_OUT)).astype(float)
        if forward:
            arrays[f"{split}_spikes_heldin_forward"] = rng.poisson(1.0, (n, T_FWD, N_IN)).astype(float)
            arrays[f"{split}_spikes_heldout_forward"] = rng.poisson(1.0, (n, T_FWD, N_OUT)).astype(float)
        if extras:
            arrays[f"{split}_behavior"] = rng.normal(size=(n, T, B))
            arrays[f"{split}_condition"] = rng.integers(0, 3, n)
            arrays[f"{split}_truth"] = rng.uniform(0, 2, (n, T + T_FWD * forward, N_IN + N_OUT))
    if extras:
        arrays["train_behavior"][0, 2] = np.nan  # NLB marks unknown behaviour with NaN
        arrays["conversion_factor"] = np.float64(0.5)
    return arrays


def write(path: Path, arrays: dict) -> Path:
    with h5py.File(path, "w") as handle:
        for key, value in arrays.items():
            handle.create_dataset(key, data=value)
    return path


@pytest.fixture
def nlb_file(tmp_path) -> Path:
    return write(tmp_path / "mc_maze.h5", nlb_arrays())


def test_load_follows_the_conventions(nlb_file):
    a = nlb_arrays()
    ds = load_nlb_tensors(nlb_file)
    assert ds.source == str(nlb_file)
    for split, nlb in (("train", "train"), ("valid", "eval")):
        part = getattr(ds, split)
        assert part.encod_data.shape == (len(a[f"{nlb}_spikes_heldin"]), T, N_IN)
        assert part.recon_data.shape == (len(a[f"{nlb}_spikes_heldin"]), T + T_FWD, N_IN + N_OUT)
        assert part.encod_data.dtype == part.recon_data.dtype == np.float32
        np.testing.assert_array_equal(part.recon_data[:, :T, :N_IN], part.encod_data)
        np.testing.assert_array_equal(part.encod_data, a[f"{nlb}_spikes_heldin"])
        np.testing.assert_array_equal(part.recon_data[:, :T, N_IN:], a[f"{nlb}_spikes_heldout"])
        np.testing.assert_array_equal(part.recon_data[:, T:, :N_IN], a[f"{nlb}_spikes_heldin_forward"])
        np.testing.assert_array_equal(part.recon_data[:, T:, N_IN:], a[f"{nlb}_spikes_heldout_forward"])
        np.testing.assert_allclose(part.truth, a[f"{nlb}_truth"], rtol=1e-6)
        behavior = ds.extras[f"{split}_behavior"]
        assert behavior.dtype == np.float32
        np.testing.assert_allclose(behavior, a[f"{nlb}_behavior"], rtol=1e-6)
        conditions = ds.extras[f"{split}_conditions"]
        assert conditions.dtype == np.int64
        np.testing.assert_array_equal(conditions, a[f"{nlb}_condition"])
    assert ds.conversion_factor == 0.5
    assert np.isnan(ds.extras["train_behavior"][0, 2]).all()


def test_load_without_forward_or_extras(tmp_path):
    ds = load_nlb_tensors(write(tmp_path / "f.h5", nlb_arrays(forward=False, extras=False)))
    assert ds.train.recon_data.shape == (N_TRAIN, T, N_IN + N_OUT)
    assert ds.extras == {} and ds.conversion_factor is None and ds.train.truth is None


def arrays_of_test_phase(forward=True) -> dict:
    """An NLB file of the test phase: eval trials with held-in spikes only."""
    a = nlb_arrays(forward=forward)
    for key in ("eval_spikes_heldout", "eval_spikes_heldin_forward", "eval_spikes_heldout_forward", "eval_behavior",
                "eval_condition", "eval_truth"):
        a.pop(key, None)
    return a


@pytest.mark.parametrize("forward", [True, False])
def test_test_trials_are_read_and_a_fifth_of_the_train_trials_validates(forward, tmp_path):
    a = arrays_of_test_phase(forward)
    path = write(tmp_path / "test_phase.h5", a)
    with pytest.warns(UserWarning, match=r"eval_spikes_heldout: absent, so the 4 eval trials are test trials .* "
                                         r"validates on 1 of the 6 train trials \(valid_inds\)"):
        ds = load_nlb_tensors(path)
    with pytest.warns(UserWarning, match="test trials"):
        assert dataset_sha256(load_dataset(path)) == dataset_sha256(ds)
    inds = {split: getattr(ds, split).inds for split in ("train", "valid")}
    assert inds["valid"].size == 1 and inds["train"].size == N_TRAIN - 1
    np.testing.assert_array_equal(np.sort(np.concatenate(list(inds.values()))), np.arange(N_TRAIN))
    heldout = np.concatenate([a["train_spikes_heldin"], a["train_spikes_heldout"]], axis=2)
    if forward:
        ahead = np.concatenate([a["train_spikes_heldin_forward"], a["train_spikes_heldout_forward"]], axis=2)
        heldout = np.concatenate([heldout, ahead], axis=1)
    for split, index in inds.items():
        part = getattr(ds, split)
        np.testing.assert_array_equal(part.encod_data, a["train_spikes_heldin"][index])
        np.testing.assert_array_equal(part.recon_data, heldout[index])
        np.testing.assert_allclose(part.truth, a["train_truth"][index], rtol=1e-6)
        np.testing.assert_allclose(ds.extras[f"{split}_behavior"], a["train_behavior"][index], rtol=1e-6)
        np.testing.assert_array_equal(ds.extras[f"{split}_conditions"], a["train_condition"][index])
    inputs = read_nlb_inputs(path)
    assert inputs.test and inputs.n_heldout == N_OUT and inputs.n_forward == T_FWD * forward
    np.testing.assert_array_equal(inputs.train_heldin, a["train_spikes_heldin"])
    np.testing.assert_array_equal(inputs.eval_heldin, a["eval_spikes_heldin"])
    assert inputs.eval_heldin.dtype == np.float32


def test_inputs_of_a_file_with_held_out_eval_spikes(nlb_file):
    inputs = read_nlb_inputs(nlb_file)
    assert not inputs.test and (inputs.n_heldout, inputs.n_forward) == (N_OUT, T_FWD)
    np.testing.assert_array_equal(inputs.eval_heldin, nlb_arrays()["eval_spikes_heldin"])


def test_test_trials_need_two_train_trials(tmp_path):
    a = arrays_of_test_phase()
    for key in [k for k in a if k.startswith("train_")]:
        a[key] = a[key][:1]
    with pytest.raises(InputError, match=r"train_spikes_heldin: has 1 trial; with test trials, a fifth"):
        load_nlb_tensors(write(tmp_path / "one.h5", a))


def test_round_trip_is_exact(nlb_file, tmp_path):
    ds = load_nlb_tensors(nlb_file)
    out = tmp_path / "again.h5"
    save_nlb_tensors(ds, out, n_heldin=N_IN)
    assert is_nlb_file(out) and sorted(p.name for p in tmp_path.iterdir()) == ["again.h5", "mc_maze.h5"]
    back = load_nlb_tensors(out)
    for split in ("train", "valid"):
        for name in ("encod_data", "recon_data", "truth"):
            np.testing.assert_array_equal(getattr(getattr(back, split), name), getattr(getattr(ds, split), name))
    assert back.extras.keys() == ds.extras.keys()
    for key, value in ds.extras.items():
        assert back.extras[key].dtype == value.dtype
        np.testing.assert_array_equal(back.extras[key], value)
    assert back.conversion_factor == ds.conversion_factor
    with h5py.File(out) as handle:
        assert sorted(handle) == sorted(nlb_arrays())


def test_save_without_forward_bins_and_with_fields_nlb_lacks(tmp_path):
    rng = np.random.default_rng(1)
    spikes = {s: rng.poisson(1.0, (n, T, N_IN + N_OUT)).astype(np.float32) for s, n in (("train", 3), ("valid", 2))}
    ds = dataset_from_arrays(spikes["train"][..., :N_IN], spikes["valid"][..., :N_IN],
                             train_recon=spikes["train"], valid_recon=spikes["valid"],
                             train_inds=np.arange(3), valid_inds=np.arange(3, 5))
    with pytest.warns(UserWarning, match=r"not written \(not part of the NLB layout\): train_inds, valid_inds"):
        save_nlb_tensors(ds, tmp_path / "f.h5", n_heldin=N_IN)
    back = load_nlb_tensors(tmp_path / "f.h5")
    np.testing.assert_array_equal(back.train.recon_data, spikes["train"])
    np.testing.assert_array_equal(back.valid.recon_data, spikes["valid"])


def test_cond_idx_is_used_only_when_it_holds_one_id_per_trial(tmp_path):
    a = nlb_arrays()
    a["train_cond_idx"] = a.pop("train_condition")
    del a["eval_condition"]
    a["eval_cond_idx"] = np.array([[0, 1], [2, 3]])  # NLB-style: trial indices per condition
    with pytest.warns(UserWarning, match=r"eval_cond_idx: skipped: not one condition id >= 0 per trial"):
        ds = load_nlb_tensors(write(tmp_path / "f.h5", a))
    np.testing.assert_array_equal(ds.extras["train_conditions"], a["train_cond_idx"])
    assert "valid_conditions" not in ds.extras


def test_conversion_factor_without_truth_is_ignored(tmp_path):
    a = nlb_arrays(extras=False)
    a["conversion_factor"] = np.float64(2.0)
    with pytest.warns(UserWarning, match="conversion_factor: ignored"):
        assert load_nlb_tensors(write(tmp_path / "f.h5", a)).conversion_factor is None


def test_is_nlb_file(nlb_file, tmp_path):
    assert is_nlb_file(nlb_file)
    lfads = tmp_path / "lfads.h5"
    x = np.ones((2, 3, 4), dtype=np.float32)
    save_dataset(dataset_from_arrays(x, x), lfads)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    assert not any(is_nlb_file(p) for p in (lfads, junk, tmp_path / "absent.h5", tmp_path))


def _edit(change):
    def edited():
        a = nlb_arrays()
        change(a)
        return a
    return edited


def _set(key, index, value):
    return _edit(lambda a: a[key].__setitem__(index, value))


def _replace(key, value):
    return _edit(lambda a: a.__setitem__(key, value(a[key]) if callable(value) else value))


BAD_FILES = [
    (_edit(lambda a: a.pop("train_spikes_heldin")),
     r"train_spikes_heldin: missing; an NLB tensor file needs train_spikes_heldin, train_spikes_heldout, "
     r"eval_spikes_heldin \(nlb_tools make_train_input_tensors.*\), and eval_spikes_heldout "
     r"\(make_eval_target_tensors\) to validate on the eval trials; the file has keys: conversion_factor"),
    (_edit(lambda a: a.pop("eval_spikes_heldin")), r"eval_spikes_heldin: missing; "),
    (_edit(lambda a: a.pop("eval_spikes_heldout")),
     r"eval_spikes_heldin_forward: present, but eval_spikes_heldout is missing; test trials have held-in spikes only"),
    (_edit(lambda a: [a.pop(k) for k in ("eval_spikes_heldout", "eval_spikes_heldin_forward",
                                         "eval_spikes_heldout_forward", "train_spikes_heldout_forward")]),
     r"train_spikes_heldout_forward: missing, but train_spikes_heldin_forward present; forward-prediction spikes "
     r"need both train keys or none"),
    (_edit(lambda a: [a.pop(k) for k in ("eval_spikes_heldout", "eval_spikes_heldin_forward",
                                         "eval_spikes_heldout_forward")] and a.__setitem__(
                                             "eval_spikes_heldin", a["eval_spikes_heldin"][:, 1:])),
     r"eval_spikes_heldin: has 9 time bins but train_spikes_heldin has 10"),
    (_replace("train_spikes_heldout", lambda x: x[:-1]),
     r"train_spikes_heldout: has 5 trials but train_spikes_heldin has 6"),
    (_replace("eval_spikes_heldout", lambda x: x[:, :-1]),
     r"eval_spikes_heldout: has 9 time bins but eval_spikes_heldin has 10"),
    (_replace("eval_spikes_heldin", lambda x: x[..., :-1]),
     r"eval_spikes_heldin: has 4 neurons but train_spikes_heldin has 5"),
    (_edit(lambda a: a.pop("eval_spikes_heldout_forward")),
     r"eval_spikes_heldout_forward: missing, but train_spikes_heldin_forward, train_spikes_heldout_forward, "
     r"eval_spikes_heldin_forward present; forward-prediction spikes need all four keys or none"),
    (_replace("train_spikes_heldin_forward", lambda x: x[:-1]),
     r"train_spikes_heldin_forward: has 5 trials but train_spikes_heldin has 6"),
    (_replace("eval_spikes_heldout_forward", lambda x: x[:, :-1]),
     r"eval_spikes_heldout_forward: has 2 time bins but eval_spikes_heldin_forward has 3"),
    (_replace("train_behavior", lambda x: x[:-1]), r"train_behavior: has 5 trials but train_spikes_heldin has 6"),
    (_replace("eval_behavior", lambda x: x[:, 1:]), r"eval_behavior: has 9 time bins but eval_spikes_heldin has 10"),
    (_replace("eval_behavior", lambda x: x[..., :1]), r"eval_behavior: has 1 behaviour dims but train_behavior has 2"),
    (_replace("train_behavior", lambda x: x[:, 0]), r"train_behavior: must be 3-D \(trials, time bins, behaviour"),
    (_set("eval_behavior", (0, 0, 0), np.inf), r"eval_behavior: 1 values are infinite"),
    (_set("eval_spikes_heldin", (1, 2, 3), np.nan), r"eval_spikes_heldin: 1 values are NaN \(nlb_tools pads"),
    (_set("train_spikes_heldout_forward", (0, 0, 0), -1.0),
     r"train_spikes_heldout_forward: 1 values are negative, but spike counts must be >= 0"),
    (_set("eval_spikes_heldout", (0, 0, 0), 0.5),
     r"eval_spikes_heldout: 1 values are not whole numbers \(e.g. 0.5\), but spike counts must be integers"),
    (_replace("train_spikes_heldin", lambda x: x.astype("S")), r"train_spikes_heldin: has dtype \|S32, not numbers"),
    (_replace("train_spikes_heldin", lambda x: x[0]), r"train_spikes_heldin: must be 3-D"),
    (_set("train_condition", 0, -1), r"train_condition: 1 ids are negative; .*leave the key out"),
    (_replace("eval_condition", lambda x: x[:-1]), r"eval_condition: must be 1-D with one id per trial \(4,\)"),
    (_replace("eval_condition", lambda x: x.astype(float)), r"eval_condition: has dtype float64; .*integers"),
    (_replace("eval_truth", lambda x: x[:, :T]),
     r"eval_truth: has shape \(4, 10, 7\), but the spikes give \(4, 13, 7\) \(trials, T \+ T_fwd, N_in \+ N_out\)"),
    (_set("train_truth", (0, 0, 0), -1.0), r"train_truth: 1 values are NaN or negative"),
    (_replace("conversion_factor", np.float64(-2.0)), r"conversion_factor: must be a positive finite scalar"),
]


@pytest.mark.parametrize("make, match", BAD_FILES)
def test_bad_files_name_the_nlb_key(make, match, tmp_path):
    path = write(tmp_path / "bad.h5", make())
    with pytest.raises(InputError, match="^" + re.escape(str(path)) + ": " + match) as info:
        load_nlb_tensors(path)
    assert "\n" not in str(info.value)


def test_missing_and_non_hdf5_files(tmp_path):
    with pytest.raises(InputError, match=r"absent\.h5: file does not exist$"):
        load_nlb_tensors(tmp_path / "absent.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match=r"junk\.h5: is not an HDF5 file"):
        load_nlb_tensors(junk)


def test_save_rejects_data_sets_not_in_the_nlb_layout(nlb_file, tmp_path):
    ds = load_nlb_tensors(nlb_file)
    with pytest.raises(InputError, match=r"train_encod_data: has 5 neurons .* but n_heldin=4"):
        save_nlb_tensors(ds, tmp_path / "out.h5", n_heldin=4)
    with pytest.raises(InputError, match=r"n_heldin: must be a positive integer"):
        save_nlb_tensors(ds, tmp_path / "out.h5", n_heldin=0)
    with pytest.raises(InputError, match=r"directory .* does not exist"):
        save_nlb_tensors(ds, tmp_path / "nowhere" / "out.h5", n_heldin=N_IN)
    ds.valid.recon_data = ds.valid.recon_data.copy()
    ds.valid.recon_data[0, 0, 0] += 1
    with pytest.raises(InputError, match=r"valid_recon_data: its first 10 bins and 5 neurons differ"):
        save_nlb_tensors(ds, tmp_path / "out.h5", n_heldin=N_IN)
    short = load_nlb_tensors(nlb_file)
    short.valid.recon_data = short.valid.recon_data[:, :T]
    short.valid.truth = short.valid.truth[:, :T]
    with pytest.raises(InputError, match=r"valid_recon_data: has no forward bins but the other split has"):
        save_nlb_tensors(short, tmp_path / "out.h5", n_heldin=N_IN)
    assert not (tmp_path / "out.h5").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_nlb_tensors(load_nlb_tensors(nlb_file), tmp_path / "out.h5", n_heldin=N_IN)
