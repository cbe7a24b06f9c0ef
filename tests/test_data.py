"""Tests for pyro_lfads.data: the LFADS HDF5 / .npz formats and validation."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyro_lfads.data import (
    LFADSDataset,
    Split,
    dataset_from_arrays,
    ensure_valid,
    load_dataset,
    save_dataset,
    validate_dataset,
)
from pyro_lfads.errors import InputError

SUFFIXES = (".h5", ".npz")


def write_raw(path: Path, arrays: dict) -> Path:
    """Write ``arrays`` as they are, by hand: h5py for .h5/.hdf5, np.savez for .npz."""
    if path.suffix == ".npz":
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
    else:
        with h5py.File(path, "w") as handle:
            for key, value in arrays.items():
                if np.asarray(value).dtype.kind == "U":
                    handle.create_dataset(key, data=np.asarray(value, dtype=object), dtype=h5py.string_dtype())
                else:
                    handle.create_dataset(key, data=value)
    return path


def good_arrays(rng=None, n_train=6, n_valid=4, time=12, neurons=5, inputs=2) -> dict:
    """A valid lfads-torch style file, as a dict of arrays (counts data)."""
    rng = rng or np.random.default_rng(0)
    return {
        "train_encod_data": rng.poisson(2.0, (n_train, time, neurons)).astype(np.int64),
        "train_recon_data": rng.poisson(2.0, (n_train, time, neurons)).astype(np.int64),
        "valid_encod_data": rng.poisson(2.0, (n_valid, time, neurons)).astype(np.int64),
        "valid_recon_data": rng.poisson(2.0, (n_valid, time, neurons)).astype(np.int64),
        "train_ext_input": rng.normal(size=(n_train, time, inputs)),
        "valid_ext_input": rng.normal(size=(n_valid, time, inputs)),
        "train_truth": rng.uniform(0.0, 3.0, (n_train, time, neurons)),
        "valid_truth": rng.uniform(0.0, 3.0, (n_valid, time, neurons)),
        "train_inds": np.arange(n_train),
        "valid_inds": np.arange(n_train, n_train + n_valid),
        "conversion_factor": np.float64(2.5),
    }


def make_dataset(optional: bool, extras: bool) -> LFADSDataset:
    rng = np.random.default_rng(1)
    a = good_arrays(rng)
    kwargs = {}
    if optional:
        kwargs = dict(
            train_ext_input=a["train_ext_input"],
            valid_ext_input=a["valid_ext_input"],
            train_truth=a["train_truth"],
            valid_truth=a["valid_truth"],
            train_inds=a["train_inds"],
            valid_inds=a["valid_inds"],
            conversion_factor=2.5,
        )
    if extras:
        kwargs["extras"] = {
            "train_conditions": rng.integers(0, 3, 6),
            "valid_latents": rng.normal(size=(4, 12, 3)).astype(np.float32),
            "train_labels": np.array(["left", "right", "up", "down", "left", "up"]),
            "valid_flags": np.array([True, False, True, True]),
        }
    return dataset_from_arrays(
        a["train_encod_data"],
        a["valid_encod_data"],
        train_recon=a["train_recon_data"],
        valid_recon=a["valid_recon_data"],
        **kwargs,
    )


def assert_same(a: LFADSDataset, b: LFADSDataset) -> None:
    for split in ("train", "valid"):
        for name in ("encod_data", "recon_data", "ext_input", "truth", "inds"):
            x, y = getattr(getattr(a, split), name), getattr(getattr(b, split), name)
            assert (x is None) == (y is None), (split, name)
            if x is not None:
                assert x.dtype == y.dtype, (split, name)
                np.testing.assert_array_equal(x, y)
    assert a.conversion_factor == b.conversion_factor
    assert set(a.extras) == set(b.extras)
    for key in a.extras:
        assert a.extras[key].dtype.kind == b.extras[key].dtype.kind, key
        np.testing.assert_array_equal(a.extras[key], b.extras[key])


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", SUFFIXES + (".hdf5",))
@pytest.mark.parametrize("optional", [False, True])
@pytest.mark.parametrize("extras", [False, True])
def test_round_trip(tmp_path, suffix, optional, extras):
    dataset = make_dataset(optional, extras)
    path = tmp_path / f"data{suffix}"
    save_dataset(dataset, path)
    loaded = load_dataset(path)
    assert_same(dataset, loaded)
    assert loaded.source == str(path)
    assert loaded.train.recon_data.dtype == np.float32
    if optional:
        assert loaded.train.inds.dtype == np.int64
    assert os.listdir(tmp_path) == [path.name]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_save_overwrites_and_writes_modern_keys(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    save_dataset(make_dataset(True, True), path)
    save_dataset(make_dataset(False, False), path)
    assert_same(make_dataset(False, False), load_dataset(path))
    if suffix == ".npz":
        with np.load(path) as archive:
            keys = set(archive.files)
    else:
        with h5py.File(path, "r") as handle:
            keys = set(handle.keys())
    assert keys == {"train_encod_data", "train_recon_data", "valid_encod_data", "valid_recon_data"}


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_legacy_keys_load_with_encod_equal_recon(tmp_path, suffix):
    """The original LFADS layout: train_data / valid_data, truth and a scalar factor."""
    rng = np.random.default_rng(2)
    arrays = {
        "train_data": rng.poisson(1.0, (5, 8, 3)),
        "valid_data": rng.poisson(1.0, (2, 8, 3)),
        "train_truth": rng.uniform(0, 1, (5, 8, 3)),
        "valid_truth": rng.uniform(0, 1, (2, 8, 3)),
        "conversion_factor": np.float64(100.0),
        "train_percentage": np.float64(0.8),
        "nreplications": np.int64(1),
    }
    path = write_raw(tmp_path / f"legacy{suffix}", arrays)
    loaded = load_dataset(path)
    for split in ("train", "valid"):
        part = getattr(loaded, split)
        assert part.encod_data is part.recon_data
        np.testing.assert_array_equal(part.recon_data, arrays[f"{split}_data"])
        assert part.recon_data.dtype == np.float32
    assert loaded.conversion_factor == 100.0
    assert list(loaded.extras) == ["train_percentage"]  # scalars with a split prefix are kept too
    assert loaded.extras["train_percentage"] == 0.8
    np.testing.assert_allclose(loaded.truth_counts("train"), arrays["train_truth"] / 100.0, rtol=1e-6)
    saved = tmp_path / f"modern{suffix}"
    save_dataset(loaded, saved)
    again = load_dataset(saved)
    np.testing.assert_array_equal(again.train.encod_data, again.train.recon_data)


def test_lfads_torch_layout_written_by_hand(tmp_path):
    """Held-in neurons in encod, all neurons in recon, forward prediction, extras."""
    rng = np.random.default_rng(3)
    recon_train = rng.poisson(1.5, (7, 20, 10)).astype(np.float64)
    recon_valid = rng.poisson(1.5, (3, 20, 10)).astype(np.float64)
    path = tmp_path / "lfads_torch.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("train_encod_data", data=recon_train[:, :15, :8], compression="gzip")
        handle.create_dataset("train_recon_data", data=recon_train, compression="gzip")
        handle.create_dataset("valid_encod_data", data=recon_valid[:, :15, :8], compression="gzip")
        handle.create_dataset("valid_recon_data", data=recon_valid, compression="gzip")
        handle.create_dataset("train_inds", data=np.arange(7, dtype=np.int32))
        handle.create_dataset("valid_inds", data=np.arange(7, 10, dtype=np.int32))
        handle.create_dataset("train_behavior", data=rng.normal(size=(7, 20, 2)))
        handle.create_dataset("valid_behavior", data=rng.normal(size=(3, 20, 2)))
        handle.create_dataset("train_cond_names", data=["a", "b", "c", "a", "b", "c", "a"], dtype=h5py.string_dtype())
        handle.create_dataset("dt", data=0.01)
        handle.attrs["note"] = "made by hand"
    loaded = load_dataset(path, min_time_bins=15)
    assert loaded.train.encod_data.shape == (7, 15, 8)
    assert loaded.train.recon_data.shape == (7, 20, 10)
    assert loaded.valid.n_trials == 3 and loaded.valid.n_time == 20 and loaded.valid.n_neurons == 10
    np.testing.assert_array_equal(loaded.train.encod_data, recon_train[:, :15, :8])
    assert loaded.valid.inds.dtype == np.int64
    np.testing.assert_array_equal(loaded.valid.inds, [7, 8, 9])
    assert loaded.train.ext_input is None and loaded.conversion_factor is None
    assert sorted(loaded.extras) == ["train_behavior", "train_cond_names", "valid_behavior"]
    assert loaded.extras["train_behavior"].dtype == np.float64
    assert list(loaded.extras["train_cond_names"]) == ["a", "b", "c", "a", "b", "c", "a"]


def test_continuous_support(tmp_path):
    arrays = good_arrays()
    arrays["train_recon_data"] = np.abs(arrays["train_recon_data"] + 0.5)
    path = write_raw(tmp_path / "rates.npz", arrays)
    assert load_dataset(path, support="nonnegative").train.recon_data.dtype == np.float32
    arrays["train_recon_data"] = arrays["train_recon_data"] - 10.0
    arrays["train_truth"] = -arrays["train_truth"]
    path = write_raw(tmp_path / "real.npz", arrays)
    load_dataset(path, support="real")
    with pytest.raises(InputError, match="real.npz: train_recon_data: .* negative"):
        load_dataset(path, support="nonnegative")


def test_dataset_from_arrays_defaults():
    train = np.ones((3, 4, 2), dtype=np.float32)
    dataset = dataset_from_arrays(train, [[[0, 1]], [[2, 3]], [[1, 1]]])
    assert dataset.train.encod_data is train and dataset.train.recon_data is train
    assert dataset.valid.recon_data.dtype == np.float32 and dataset.valid.recon_data.shape == (3, 1, 2)
    assert dataset.source == "<arrays>" and dataset.extras == {}
    validate_dataset(dataset)


# ---------------------------------------------------------------- bad input


def _set(**changes):
    """A file = good_arrays() with keys replaced (value None removes the key)."""

    def build():
        arrays = good_arrays()
        for key, value in changes.items():
            if value is None:
                arrays.pop(key, None)
            else:
                arrays[key] = value(arrays) if callable(value) else value
        return arrays

    return build


def _nan(a):
    x = a["train_recon_data"].astype(np.float64)
    x[0, 0, :2] = np.nan
    x[1, 1, 1] = np.inf
    return x


BAD_FILES = [
    # (id, arrays builder, kwargs for load_dataset, key in message, fragment of message)
    ("missing-keys", _set(valid_encod_data=None, valid_recon_data=None), {}, "valid_encod_data, valid_recon_data", "the file has keys: "),
    ("missing-legacy", lambda: {"train_data": np.ones((2, 3, 4))}, {}, "valid_data", "missing"),
    ("recon-2d", _set(train_recon_data=np.ones((6, 12))), {}, "train_recon_data", "must be 3-D"),
    ("encod-4d", _set(valid_encod_data=np.ones((4, 12, 5, 1))), {}, "valid_encod_data", "must be 3-D"),
    ("truth-2d", _set(train_truth=np.ones((6, 12))), {}, "train_truth", "must be 3-D"),
    ("ext-1d", _set(valid_ext_input=np.ones(4)), {}, "valid_ext_input", "must be 3-D"),
    ("inds-2d", _set(train_inds=np.ones((6, 1), dtype=int)), {}, "train_inds", "must be 1-D"),
    ("strings", _set(train_recon_data=np.full((6, 12, 5), b"x")), {}, "train_recon_data", "holds text"),
    ("complex", _set(valid_recon_data=np.ones((4, 12, 5), dtype=complex)), {}, "valid_recon_data", "complex"),
    ("string-inds", _set(valid_inds=np.array([b"a", b"b", b"c", b"d"])), {}, "valid_inds", "trial indices must be integers"),
    ("fractional-inds", _set(valid_inds=np.array([0.0, 1.5, 2.0, 3.0])), {}, "valid_inds", "not whole numbers"),
    ("negative-inds", _set(valid_inds=np.array([0, -1, 2, 3])), {}, "valid_inds", "negative"),
    ("nan", _set(train_recon_data=_nan), {}, "train_recon_data", "3 values are not finite (2 NaN, 1 infinite)"),
    ("nan-truth", _set(valid_truth=np.full((4, 12, 5), np.nan)), {}, "valid_truth", "240 values are not finite"),
    ("inf-ext", _set(train_ext_input=np.full((6, 12, 2), -np.inf)), {}, "train_ext_input", "not finite"),
    ("negative-counts", _set(train_recon_data=lambda a: a["train_recon_data"] - 100), {}, "train_recon_data",
     "360 values are negative, but a Poisson/count likelihood needs non-negative integer counts"),
    ("fractional-counts", _set(valid_encod_data=lambda a: a["valid_encod_data"] + 0.25), {}, "valid_encod_data", "not whole numbers (e.g. "),
    ("negative-nonnegative", _set(valid_recon_data=lambda a: a["valid_recon_data"] - 0.5), {"support": "nonnegative"},
     "valid_recon_data", "support='nonnegative' needs values >= 0"),
    ("negative-truth", _set(train_truth=lambda a: -a["train_truth"] - 1), {}, "train_truth", "true rates must be non-negative"),
    ("recon-neurons", _set(valid_recon_data=np.ones((4, 12, 6)), valid_truth=None), {}, "valid_recon_data", "has 6 neurons but train_recon_data has 5"),
    ("encod-neurons", _set(valid_encod_data=np.ones((4, 12, 3))), {}, "valid_encod_data", "has 3 neurons but train_encod_data has 5"),
    ("ext-inputs", _set(valid_ext_input=np.ones((4, 12, 3))), {}, "valid_ext_input", "has 3 inputs but train_ext_input has 2"),
    ("ext-one-split", _set(valid_ext_input=None), {}, "valid_ext_input", "is missing but train_ext_input is present"),
    ("encod-trials", _set(train_encod_data=np.ones((5, 12, 5))), {}, "train_encod_data", "has 5 trials but train_recon_data has 6"),
    ("encod-longer", _set(train_encod_data=np.ones((6, 13, 5))), {}, "train_encod_data", "more than the 12 of train_recon_data"),
    ("ext-trials", _set(train_ext_input=np.ones((5, 12, 2))), {}, "train_ext_input", "has 5 trials but train_recon_data has 6"),
    ("ext-time", _set(valid_ext_input=np.ones((4, 11, 2))), {}, "valid_ext_input", "has 11 time bins but valid_recon_data has 12"),
    ("truth-time", _set(train_truth=np.ones((6, 10, 5))), {}, "train_truth", "has 10 time bins"),
    ("truth-neurons", _set(valid_truth=np.ones((4, 12, 4))), {}, "valid_truth", "has 4 neurons but valid_recon_data has 5"),
    ("inds-length", _set(train_inds=np.arange(5)), {}, "train_inds", "has 5 entries but train_recon_data has 6 trials"),
    ("empty-trials", _set(valid_encod_data=np.ones((0, 12, 5)), valid_recon_data=np.ones((0, 12, 5)),
                          valid_ext_input=None, valid_truth=None, valid_inds=None, train_ext_input=None),
     {}, "valid_encod_data", "is empty"),
    ("empty-time", _set(train_recon_data=np.ones((6, 0, 5))), {}, "train_recon_data", "is empty"),
    ("empty-neurons", _set(train_encod_data=np.ones((6, 12, 0))), {}, "train_encod_data", "is empty"),
    ("min-time-bins", _set(), {"min_time_bins": 13}, "train_encod_data", "has 12 time bins, fewer than min_time_bins=13"),
    ("factor-negative", _set(conversion_factor=np.float64(-1.0)), {}, "conversion_factor", "positive finite scalar"),
    ("factor-nan", _set(conversion_factor=np.float64(np.nan)), {}, "conversion_factor", "positive finite scalar"),
    ("factor-zero", _set(conversion_factor=np.int64(0)), {}, "conversion_factor", "positive finite scalar"),
    ("factor-array", _set(conversion_factor=np.ones(3)), {}, "conversion_factor", "got shape (3,)"),
    ("factor-text", _set(conversion_factor=np.bytes_(b"2.0")), {}, "conversion_factor", "positive finite scalar"),
    ("support", _set(), {"support": "poisson"}, "support", "'poisson' is not one of 'counts', 'nonnegative', 'positive', 'real'"),
    ("min-time-bins-bad", _set(), {"min_time_bins": 0}, "min_time_bins", "positive integer"),
]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("build, kwargs, key, fragment", [case[1:] for case in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_file_contents(tmp_path, suffix, build, kwargs, key, fragment):
    path = write_raw(tmp_path / f"bad{suffix}", build())
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(InputError) as info:
        load_dataset(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}: "), message
    assert fragment in message, message
    assert info.value.__cause__ is None
    assert sorted(os.listdir(tmp_path)) == before


def _truncated(path: Path, suffix: str) -> None:
    save_dataset(make_dataset(True, True), path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


BAD_FILE_LEVEL = [
    ("missing", lambda p, s: None, "does not exist"),
    ("text", lambda p, s: p.write_text("train_encod_data = [1, 2, 3]\n"), "not a"),
    ("empty", lambda p, s: p.write_bytes(b""), "is empty (0 bytes)"),
    ("truncated", _truncated, ""),
    ("directory", lambda p, s: p.mkdir(), "is a directory"),
]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("make, fragment", [c[1:] for c in BAD_FILE_LEVEL], ids=[c[0] for c in BAD_FILE_LEVEL])
def test_unreadable_files(tmp_path, suffix, make, fragment):
    path = tmp_path / f"broken{suffix}"
    make(path, suffix)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(InputError) as info:
        load_dataset(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    assert fragment in message, message
    assert sorted(os.listdir(tmp_path)) == before


def test_unknown_suffix(tmp_path):
    path = tmp_path / "data.mat"
    path.write_bytes(b"whatever")
    with pytest.raises(InputError, match=r"data\.mat: unknown file type '\.mat'"):
        load_dataset(path)
    with pytest.raises(InputError, match=r"data\.csv: unknown file type '\.csv'"):
        save_dataset(make_dataset(False, False), tmp_path / "data.csv")
    assert os.listdir(tmp_path) == ["data.mat"]


def test_group_in_place_of_data(tmp_path):
    path = tmp_path / "group.h5"
    with h5py.File(path, "w") as handle:
        for key, value in good_arrays().items():
            if key == "valid_recon_data":
                handle.create_group(key)
            else:
                handle.create_dataset(key, data=value)
        handle.create_group("train_extra_group")
    with pytest.raises(InputError, match="group.h5: valid_recon_data: is an HDF5 Group, not an array"):
        load_dataset(path)
    with h5py.File(path, "a") as handle:
        del handle["valid_recon_data"]
        handle.create_dataset("valid_recon_data", data=good_arrays()["valid_recon_data"])
    with pytest.warns(UserWarning, match="group.h5: train_extra_group: skipped: is an HDF5 Group"):
        loaded = load_dataset(path)
    assert loaded.extras == {}


def test_unusable_extras_are_skipped_with_a_warning(tmp_path):
    arrays = good_arrays()
    arrays["train_when"] = np.array(["2020-01-01"], dtype="datetime64[D]")
    arrays["valid_ok"] = np.arange(3)
    path = write_raw(tmp_path / "extras.npz", arrays)
    with pytest.warns(UserWarning, match="extras.npz: train_when: skipped"):
        loaded = load_dataset(path)
    assert list(loaded.extras) == ["valid_ok"]


# ---------------------------------------------------------------- arrays and validate


def test_dataset_from_arrays_errors():
    good = np.ones((3, 4, 2))
    with pytest.raises(InputError, match=r"^<arrays>: support: 'gauss' is not one of 'counts', 'nonnegative', 'positive', 'real'$"):
        dataset_from_arrays(good, good, support="gauss")
    with pytest.raises(InputError, match=r"^<arrays>: train_recon_data: 1 values are not finite \(1 NaN, 0 infinite\)"):
        bad = good.copy()
        bad[0, 0, 0] = np.nan
        dataset_from_arrays(good, good, train_recon=bad)
    with pytest.raises(InputError, match="^<arrays>: valid_encod_data: cannot be made a numpy array"):
        dataset_from_arrays(good, [[[1, 2]], [[1]]])
    with pytest.raises(InputError, match="^<arrays>: conversion_factor: must be a positive finite scalar"):
        dataset_from_arrays(good, good, conversion_factor=0.0)
    with pytest.raises(InputError, match="^<arrays>: stuff: extras keys must start with 'train_' or 'valid_'"):
        dataset_from_arrays(good, good, extras={"stuff": np.ones(3)})
    with pytest.raises(InputError, match="^<arrays>: train_truth: is a standard LFADS key"):
        dataset_from_arrays(good, good, extras={"train_truth": np.ones(3)})
    with pytest.raises(InputError, match="^<arrays>: valid_recon_data: has 1 neurons but train_recon_data has 2"):
        dataset_from_arrays(good, np.ones((3, 4, 1)))


def test_validate_dataset_built_by_hand():
    good = np.ones((3, 4, 2), dtype=np.float32)
    dataset = LFADSDataset(Split(good, good), Split(good, [[1.0]]), source="mine")
    with pytest.raises(InputError, match="^mine: valid_recon_data: is list, not a numpy array$"):
        validate_dataset(dataset)
    dataset = LFADSDataset(Split(good, good), Split(good, good), conversion_factor=float("inf"))
    with pytest.raises(InputError, match="^<arrays>: conversion_factor: must be a positive finite scalar"):
        validate_dataset(dataset)
    dataset = LFADSDataset(Split(good, good), Split(good, good), extras={"valid_x": [1, 2]})
    with pytest.raises(InputError, match="^<arrays>: valid_x: is list, not a numpy array$"):
        validate_dataset(dataset)


# ---------------------------------------------------------------- atomic save


def test_save_rejects_invalid_dataset_and_writes_nothing(tmp_path):
    bad = np.ones((3, 4, 2))
    bad[0, 0, 0] = np.inf
    dataset = LFADSDataset(Split(bad, bad), Split(np.ones((3, 4, 2)), np.ones((3, 4, 2))), source="mem")
    with pytest.raises(InputError, match="^mem: train_encod_data: 1 values are not finite"):
        save_dataset(dataset, tmp_path / "out.h5")
    with pytest.raises(InputError, match="does not exist"):
        save_dataset(make_dataset(False, False), tmp_path / "no_such_dir" / "out.h5")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt, OSError])
def test_interrupted_save_leaves_no_partial_file(tmp_path, monkeypatch, suffix, existing, error):
    path = tmp_path / f"out{suffix}"
    old = make_dataset(False, False)
    if existing:
        save_dataset(old, path)
    old_bytes = path.read_bytes() if existing else None

    if suffix == ".npz":

        def broken_writer(handle, **arrays):
            handle.write(b"PK\x03\x04 partial archive")
            handle.flush()
            raise error("disk on fire")

        monkeypatch.setattr(np, "savez_compressed", broken_writer)
    else:
        real = h5py.Group.create_dataset
        calls = []

        def broken_writer(self, *args, **kwargs):
            calls.append(args)
            if len(calls) == 3:
                raise error("disk on fire")
            return real(self, *args, **kwargs)

        monkeypatch.setattr(h5py.Group, "create_dataset", broken_writer)

    expected = InputError if error is OSError else error
    with pytest.raises(expected):
        save_dataset(make_dataset(True, True), path)
    monkeypatch.undo()

    assert sorted(os.listdir(tmp_path)) == ([path.name] if existing else [])
    if existing:
        assert path.read_bytes() == old_bytes
        assert_same(old, load_dataset(path))


# ---------------------------------------------------------------- property test

_DTYPES = ["float32", "float64", "int64", "uint8", "bool", "complex64", "text"]


def _rarely(draw, one_in: int) -> bool:
    return draw(st.sampled_from([False] * (one_in - 1) + [True]))


@st.composite
def lfads_files(draw):
    """Mostly well-formed LFADS files with rare defects of every kind."""
    n = {"train": draw(st.integers(1, 4)), "valid": draw(st.integers(1, 3))}
    time, neurons, inputs = draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(st.integers(1, 2))
    if _rarely(draw, 5):  # an empty dimension somewhere
        n[draw(st.sampled_from(["train", "valid"]))] = 0 if draw(st.booleans()) else n["train"]
        time = 0 if draw(st.booleans()) else time
        neurons = 0 if draw(st.booleans()) else neurons
    legacy = draw(st.booleans())
    data_names = ["data"] if legacy else ["encod_data", "recon_data"]
    arrays = {}
    for name in data_names + ["ext_input", "truth", "inds", "extra", "text"]:
        required = name in data_names
        pair_present = not _rarely(draw, 40) if required else draw(st.booleans())
        for split in ("train", "valid"):
            if pair_present == _rarely(draw, 20):  # rarely only one split has it
                continue
            key = f"{split}_{name}"
            if name == "text":
                arrays[key] = np.array(["a", "bc", "d"][: draw(st.integers(0, 3))])
                continue
            shape = (n[split],) if name == "inds" else (n[split], time, inputs if name == "ext_input" else neurons)
            if _rarely(draw, 15):  # a wrong shape
                shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=4)))
            dtype = draw(st.sampled_from(_DTYPES)) if _rarely(draw, 10) else "float64"
            values = draw(st.integers(0, 3).map(float)) + np.zeros(shape)
            if values.size and _rarely(draw, 8):
                flat = values.reshape(-1)
                for _ in range(draw(st.integers(1, 3))):
                    flat[draw(st.integers(0, flat.size - 1))] = draw(
                        st.sampled_from([np.nan, np.inf, -np.inf, -1.0, 0.5, 1e40])
                    )
            if dtype == "text":
                arrays[key] = values.astype(str).astype("S")
            else:
                with np.errstate(invalid="ignore", over="ignore"):
                    arrays[key] = values.astype(dtype)
    if draw(st.booleans()):
        factor = np.asarray(draw(st.sampled_from([2.0, 7, 2.0, 0.0, -1.0, np.nan, np.inf])))
        arrays["conversion_factor"] = np.full(draw(st.integers(0, 3)), factor) if _rarely(draw, 8) else factor
    return arrays


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    arrays=lfads_files(),
    suffix=st.sampled_from([".h5", ".npz"]),
    truncate=st.sampled_from([None] * 8 + [0.3, 0.9]),
    support=st.sampled_from(["counts"] * 4 + ["nonnegative", "real", "real", "bogus"]),
    min_time_bins=st.sampled_from([None] * 5 + [1, 3, 0]),
)
def test_load_returns_valid_dataset_or_raises_input_error(arrays, suffix, truncate, support, min_time_bins):
    with tempfile.TemporaryDirectory() as directory:
        path = write_raw(Path(directory) / f"file{suffix}", arrays)
        if truncate is not None:
            raw = path.read_bytes()
            path.write_bytes(raw[: int(len(raw) * truncate)])
        try:
            dataset = load_dataset(path, support=support, min_time_bins=min_time_bins)
        except InputError as error:
            message = str(error)
            assert message.startswith(f"{path}: ") and "\n" not in message, message
            assert error.__cause__ is None
            return
        validate_dataset(dataset, support=support, min_time_bins=min_time_bins)
        for part in (dataset.train, dataset.valid):
            assert part.encod_data.dtype == np.float32 and part.recon_data.dtype == np.float32
            assert part.inds is None or part.inds.dtype == np.int64
        resaved = Path(directory) / f"again{suffix}"
        save_dataset(dataset, resaved)
        assert_same(dataset, load_dataset(resaved, support=support, min_time_bins=min_time_bins))


def test_a_validated_data_set_is_not_checked_again_until_what_it_holds_changes(tmp_path, monkeypatch):
    import pyro_lfads.data.validation as validation

    path = tmp_path / "data.h5"
    save_dataset(make_dataset(True, True), path)
    dataset = load_dataset(path, support="counts", min_time_bins=10)
    checks = []
    original = validation.check_dataset
    monkeypatch.setattr(validation, "check_dataset", lambda *args: checks.append(args[1:3]) or original(*args))
    # Covered by the load's validation: the same settings, a weaker support, fewer time bins.
    for support, min_time_bins in (("counts", 10), ("nonnegative", None), ("real", 5)):
        ensure_valid(dataset, support=support, min_time_bins=min_time_bins)
    assert checks == []
    # Not covered: a stricter support, more time bins; a failed check leaves the record as it was.
    with pytest.raises(InputError, match=r"train_encod_data: \d+ values are 0, but support='positive'"):
        ensure_valid(dataset, support="positive")
    with pytest.raises(InputError, match="fewer than min_time_bins=13"):
        ensure_valid(dataset, min_time_bins=13)
    assert checks == [("positive", None), ("counts", 13)]
    ensure_valid(dataset, min_time_bins=10)
    assert len(checks) == 2
    # Replacing an array (or an extra) makes the record stale: the next call checks again.
    bad = dataset.valid.recon_data.copy()
    bad[0, 0, 0] = -1.0
    dataset.valid.recon_data = bad
    with pytest.raises(InputError, match="valid_recon_data: 1 values are negative"):
        ensure_valid(dataset)
    dataset.valid.recon_data = np.abs(bad)
    ensure_valid(dataset)
    dataset.extras["train_more"] = np.zeros(3)
    ensure_valid(dataset)
    assert len(checks) == 5
    # A data set built by hand carries no record until something validates it.
    by_hand = LFADSDataset(train=dataset.train, valid=dataset.valid)
    assert by_hand.validated is None
    ensure_valid(by_hand)
    assert by_hand.validated.support == "counts" and len(checks) == 6


@pytest.mark.parametrize("layout", ["lfads", "nlb"])
def test_load_dataset_opens_the_file_once_and_validates_once(tmp_path, monkeypatch, layout):
    import pyro_lfads.data.loading as loading
    import pyro_lfads.data.validation as validation

    path = tmp_path / "data.h5"
    if layout == "lfads":
        save_dataset(make_dataset(True, False), path)
    else:
        rng = np.random.default_rng(0)
        with h5py.File(path, "w") as handle:
            for split in ("train", "eval"):
                handle[f"{split}_spikes_heldin"] = rng.poisson(1.0, (4, 10, 3)).astype(np.float64)
                handle[f"{split}_spikes_heldout"] = rng.poisson(1.0, (4, 10, 2)).astype(np.float64)
    opened, checked = [], []
    real_file, real_check = h5py.File, validation.check_dataset
    monkeypatch.setattr(h5py, "File", lambda *args, **kwargs: opened.append(args[0]) or real_file(*args, **kwargs))
    monkeypatch.setattr(loading, "check_dataset", lambda *args: checked.append(args[1]) or real_check(*args))
    monkeypatch.setattr(validation, "check_dataset", lambda *args: checked.append(args[1]) or real_check(*args))
    dataset = load_dataset(path, support="real")
    assert opened == [path] and checked == ["real"]
    assert dataset.validated.support == "real" and dataset.source == str(path)
