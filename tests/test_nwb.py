"""Tests for pyro_lfads.data.nwb: a small NWB file with known counts, read back with load_nwb."""

from __future__ import annotations

import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")

from pyro_lfads.errors import InputError  # noqa: E402
from pyro_lfads.data.nwb import load_nwb  # noqa: E402

BIN_MS, WINDOW_MS, FORWARD_MS = 10.0, (-50.0, 50.0), 20.0
N_OBS, N_FWD = 10, 2
HELDOUT = [False, True, False]  # units 0 and 2 held in, unit 1 held out
SPLITS = ["train", "train", "val", "test", "train", "val"]
CONDITIONS = ["b", "a", "b", "c", "a", "b"]  # ids a=0, b=1, c=2
N_TRIALS, N_UNITS = len(SPLITS), len(HELDOUT)
ONSETS = 2.0 * np.arange(N_TRIALS) + 1.3  # move_onset_time = start_time + 0.3
COUNTS = np.random.default_rng(0).integers(0, 3, (N_TRIALS, N_OBS + N_FWD, N_UNITS))


def bin_centres(row: int, n_bins: int = N_OBS + N_FWD) -> np.ndarray:
    return ONSETS[row] + WINDOW_MS[0] / 1000 + (np.arange(n_bins) + 0.5) * BIN_MS / 1000


def write_nwb(path: Path, *, units: bool = True, trials: bool = True, nan_row: int | None = None) -> Path:
    """COUNTS[row, k, unit] spikes at the centre of bin k of each trial, plus spikes outside every window.

    hand_vel is sampled every ms, half a ms off the bin edges, with value (t, -2 t): its mean over
    a bin is the bin centre times (1, -2).
    """
    nwbfile = pynwb.NWBFile(session_description="test", identifier="test",
                            session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    if units:
        nwbfile.add_unit_column("heldout", "held-out unit")
        nwbfile.add_unit_column("depth", "not a boolean")
        for unit in range(N_UNITS):
            times = [np.repeat(bin_centres(row), COUNTS[row, :, unit]) for row in range(N_TRIALS)]
            times += [ONSETS - 0.2, ONSETS + 0.5]  # before and after the windows
            nwbfile.add_unit(spike_times=np.sort(np.concatenate(times)), heldout=HELDOUT[unit], depth=1.0 * unit)
    if trials:
        for name in ("move_onset_time", "condition", "split"):
            nwbfile.add_trial_column(name, name)
        for row in range(N_TRIALS):
            onset = np.nan if row == nan_row else ONSETS[row]
            nwbfile.add_trial(start_time=ONSETS[row] - 0.3, stop_time=ONSETS[row] + 0.7, move_onset_time=onset,
                              condition=CONDITIONS[row], split=SPLITS[row])
    times = 0.0005 + 0.001 * np.arange(15000)
    module = nwbfile.create_processing_module("behavior", "behaviour")
    module.add(pynwb.TimeSeries(name="hand_vel", data=np.stack([times, -2 * times], axis=1), unit="m/s",
                                timestamps=times))
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    return path


@pytest.fixture(scope="module")
def nwb_file(tmp_path_factory) -> Path:
    return write_nwb(tmp_path_factory.mktemp("nwb") / "session.nwb")


def load(path, **kwargs):
    options = dict(bin_ms=BIN_MS, align_to="move_onset_time", window_ms=WINDOW_MS, forward_ms=FORWARD_MS,
                   behavior="hand_vel", condition="condition", heldout="heldout") | kwargs
    return load_nwb(path, **options)


def test_counts_order_behaviour_conditions_and_split(nwb_file):
    ds = load(nwb_file)
    assert ds.source == str(nwb_file)
    rows = {"train": [0, 1, 4], "valid": [2, 5]}  # row 3 is a 'test' trial: dropped
    order = [0, 2, 1]  # held-in units, then held-out
    for split, index in rows.items():
        part = getattr(ds, split)
        np.testing.assert_array_equal(part.inds, index)
        np.testing.assert_array_equal(part.recon_data, COUNTS[index][:, :, order])
        np.testing.assert_array_equal(part.encod_data, COUNTS[index][:, :N_OBS, [0, 2]])
        assert part.encod_data.dtype == np.float32
        expected = np.stack([bin_centres(row, N_OBS) for row in index])[..., None] * np.array([1.0, -2.0])
        np.testing.assert_allclose(ds.extras[f"{split}_behavior"], expected, rtol=1e-6)
        assert ds.extras[f"{split}_behavior"].dtype == np.float32
    np.testing.assert_array_equal(ds.extras["train_conditions"], [1, 0, 0])
    np.testing.assert_array_equal(ds.extras["valid_conditions"], [1, 1])
    assert ds.extras["valid_conditions"].dtype == np.int64


def test_no_heldout_no_forward_and_listed_heldout(nwb_file):
    ds = load_nwb(nwb_file, bin_ms=BIN_MS, align_to="move_onset_time", window_ms=WINDOW_MS)
    np.testing.assert_array_equal(ds.train.recon_data, COUNTS[[0, 1, 4], :N_OBS])
    np.testing.assert_array_equal(ds.train.encod_data, ds.train.recon_data)
    assert ds.extras == {}
    listed = load(nwb_file, heldout=[0], behavior=None, condition=None)
    np.testing.assert_array_equal(listed.valid.recon_data, COUNTS[[2, 5]][:, :, [1, 2, 0]])


def test_random_split_without_a_split_column(nwb_file):
    ds = load(nwb_file, split_column=None, valid_fraction=0.34, seed=3)
    train, valid = ds.train.inds, ds.valid.inds
    assert len(valid) == 2 and sorted(np.concatenate([train, valid])) == list(range(N_TRIALS))
    np.testing.assert_array_equal(ds.train.recon_data, COUNTS[train][:, :, [0, 2, 1]])
    again = load(nwb_file, split_column=None, valid_fraction=0.34, seed=3)
    np.testing.assert_array_equal(again.valid.inds, valid)


def test_nan_alignment_drops_the_trial_with_a_warning(tmp_path):
    path = write_nwb(tmp_path / "nan.nwb", nan_row=1)
    with pytest.warns(UserWarning, match=r"trials\.move_onset_time: 1 trials have NaN alignment times .*rows 1\)"):
        ds = load(path)
    np.testing.assert_array_equal(ds.train.inds, [0, 4])
    np.testing.assert_array_equal(ds.train.recon_data, COUNTS[[0, 4]][:, :, [0, 2, 1]])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(align_to="go_time"),
         r"trials\.go_time: no such column; the trials table has start_time, stop_time, move_onset_time, "
         r"condition, split$"),
        (dict(behavior="hand_pos"),
         r"hand_pos: no TimeSeries of that name in acquisition or any processing module; "
         r"available: processing/behavior/hand_vel$"),
        (dict(condition="maze_id"), r"trials\.maze_id: no such column"),
        (dict(heldout="depth"), r"units\.depth: holds float64, not booleans"),
        (dict(heldout="is_heldout"), r"units\.is_heldout: no such column; the units table has"),
        (dict(heldout=[1, 5, -1]), r"heldout: unit indices 5, -1 are out of range; the file has 3 units"),
        (dict(heldout=[0, 1, 2]), r"heldout: all 3 units are held out"),
        (dict(heldout=[True, False]), r"heldout: must be a column name or a list of unit indices"),
        (dict(align_to="condition"), r"trials\.condition: holds <U1 .*alignment times must be numbers"),
        (dict(split_column="condition"), r"trials\.condition: has no 'train' trials \(values: 'a', 'b', 'c'\)"),
        (dict(window_ms=(-1400.0, 0.0)),
         r"hand_vel\.timestamps: windows of trials 0 lie outside the series' time range"),
        (dict(window_ms=(0.0, 55.0)), r"window_ms: length 55 ms is not a whole number of 10 ms bins$"),
        (dict(window_ms=(10.0, 0.0)), r"window_ms: end must be after start"),
        (dict(forward_ms=-10.0), r"forward_ms: must be a number >= 0"),
        (dict(forward_ms=15.0), r"forward_ms: length 15 ms is not a whole number of 10 ms bins"),
        (dict(bin_ms=0), r"bin_ms: must be a positive number, got 0$"),
        (dict(valid_fraction=1.0), r"valid_fraction: must be a number in \(0, 1\)"),
    ],
)
def test_bad_arguments(nwb_file, kwargs, match):
    with pytest.raises(InputError, match="^" + re.escape(str(nwb_file)) + ": " + match):
        load(nwb_file, **kwargs)


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match=r"absent\.nwb: file does not exist$"):
        load_nwb(tmp_path / "absent.nwb")
    junk = tmp_path / "junk.nwb"
    junk.write_bytes(np.random.default_rng(0).bytes(512))
    with pytest.raises(InputError, match=r"junk\.nwb: is not an NWB file \(no HDF5 signature found\)$"):
        load_nwb(junk)
    plain = tmp_path / "plain.nwb"
    with h5py.File(plain, "w") as handle:
        handle["train_spikes_heldin"] = np.zeros((2, 3, 4))
    with pytest.raises(InputError, match=r"plain\.nwb: is not a readable NWB file: .*not a valid NWB file"):
        load_nwb(plain)
    with pytest.raises(InputError, match=r"no_trials\.nwb: trials: the file has no trials table"):
        load_nwb(write_nwb(tmp_path / "no_trials.nwb", trials=False))
    with pytest.raises(InputError, match=r"no_units\.nwb: units: the file has no units table"):
        load_nwb(write_nwb(tmp_path / "no_units.nwb", units=False))


def test_without_pynwb_the_error_says_how_to_install_it(nwb_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynwb", None)
    hint = r"reading NWB needs pynwb: pip install 'pynwb>=2\.5' \(or pip install '\.\[nwb\]' in a source checkout\)$"
    with pytest.raises(InputError, match=hint):
        load_nwb(nwb_file)


def test_cli_from_nwb_writes_a_data_file_that_loads_alike(nwb_file, tmp_path, capsys):
    from pyro_lfads.cli import main
    from pyro_lfads.data import load_dataset

    out = tmp_path / "session.h5"
    assert main(["from-nwb", str(nwb_file), "--out", str(out), "--bin-ms", str(BIN_MS),
                 "--align-to", "move_onset_time", "--window-ms", *map(str, WINDOW_MS),
                 "--forward-ms", str(FORWARD_MS), "--behavior", "hand_vel", "--condition", "condition",
                 "--heldout", "heldout"]) == 0
    assert (f"10 observed + 2 forward bins of {BIN_MS:g} ms, 2 held-in + 1 held-out neurons"
            in capsys.readouterr().out)
    expected, written = load(nwb_file), load_dataset(out)
    assert written.bin_width_s == expected.bin_width_s == BIN_MS / 1000  # from-nwb records its bin width
    np.testing.assert_array_equal(written.valid.recon_data, expected.valid.recon_data)
    np.testing.assert_array_equal(written.train.encod_data, expected.train.encod_data)
    np.testing.assert_array_equal(written.extras["train_behavior"], expected.extras["train_behavior"])
    assert main(["from-nwb", str(nwb_file), "--out", str(out), "--align-to", "nope"]) == 2
