"""The NLB submission file: written from a fitted run's rates for NLB train and eval (or test) trials, read back."""

from __future__ import annotations

import re
import warnings

import h5py
import numpy as np
import pytest

from pyro_lfads.cli.commands import main
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data.nlb import load_nlb_tensors, read_nlb_inputs
from pyro_lfads.data.nlb_writing import save_nlb_tensors
from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.metrics import co_bps, fp_bps
from pyro_lfads.evaluation.nlb_submission import (NLB_NAMES, SUBMISSION_KEYS, heldin_rates, nlb_submission,
                                                  read_submission, save_submission, write_nlb_submission)
from pyro_lfads.fitting.posterior import read_posterior, write_posterior
from pyro_lfads.fitting.train import fit
from pyro_lfads.synthetic.lorenz_nlb import make_nlb_lorenz_dataset

N_IN, N_OUT, T, T_FWD = 12, 4, 30, 6


def rates(n_train=5, n_eval=3, forward=True, seed=0) -> dict:
    """Submission arrays of positive rates."""
    rng = np.random.default_rng(seed)
    shapes = {"train_rates_heldin": (n_train, T, N_IN), "train_rates_heldout": (n_train, T, N_OUT),
              "eval_rates_heldin": (n_eval, T, N_IN), "eval_rates_heldout": (n_eval, T, N_OUT),
              "eval_rates_heldin_forward": (n_eval, T_FWD, N_IN), "eval_rates_heldout_forward": (n_eval, T_FWD, N_OUT)}
    return {key: rng.uniform(0.01, 2.0, shape) for key, shape in shapes.items() if forward or "forward" not in key}


def test_the_submission_round_trips_and_keeps_other_data_sets(tmp_path):
    path = tmp_path / "submission.h5"
    first, second, third = rates(), rates(forward=False, seed=1), rates(seed=2)
    save_submission(path, "mc_maze", first)
    save_submission(path, "area2_bump_20", second)
    back = read_submission(path)
    assert sorted(back) == ["area2_bump_20", "mc_maze"] and sorted(back["area2_bump_20"]) == sorted(second)
    for name, arrays in (("mc_maze", first), ("area2_bump_20", second)):
        for key, array in arrays.items():
            assert back[name][key].dtype == np.float32
            np.testing.assert_array_equal(back[name][key], array.astype(np.float32))
    save_submission(path, "mc_maze", third)  # replaces its own group only
    back = read_submission(path)
    np.testing.assert_array_equal(back["mc_maze"]["eval_rates_heldout"], third["eval_rates_heldout"].astype(np.float32))
    np.testing.assert_array_equal(back["area2_bump_20"]["train_rates_heldin"],
                                  second["train_rates_heldin"].astype(np.float32))
    with h5py.File(path) as handle:  # the layout nlb_tools.evaluation.evaluate reads
        assert handle["mc_maze"]["eval_rates_heldin_forward"].compression == "gzip"
        assert sorted(handle["mc_maze"]) == sorted(SUBMISSION_KEYS)


def _edited(change):
    arrays = rates()
    change(arrays)
    return arrays


BAD_ARRAYS = [
    (lambda a: a.pop("eval_rates_heldout"), r"arrays: eval_rates_heldout: missing; a submission holds"),
    (lambda a: a.pop("eval_rates_heldout_forward"), r"arrays: eval_rates_heldout_forward: missing; .*both forward"),
    (lambda a: a.update(eval_spikes=a["eval_rates_heldin"]), r"arrays: eval_spikes: unknown"),
    (lambda a: a.update(eval_rates_heldin=a["eval_rates_heldin"][0]), r"eval_rates_heldin: must be a 3-D array"),
    (lambda a: a["train_rates_heldout"].__setitem__((0, 0, 0), np.nan), r"train_rates_heldout: rates must be finite"),
    (lambda a: a["train_rates_heldout"].__setitem__((0, 0, 0), -1.0), r"train_rates_heldout: rates must be .* >= 0"),
    (lambda a: a.update(train_rates_heldout=a["train_rates_heldout"][1:]),
     r"train_rates_heldout: shape \(4, 30, 4\) does not fit train_rates_heldin's \(5, 30, 12\)"),
    (lambda a: a.update(eval_rates_heldin=a["eval_rates_heldin"][:, :, 1:]),
     r"eval_rates_heldin: shape \(3, 30, 11\) does not fit train_rates_heldin's"),
    (lambda a: a.update(eval_rates_heldout_forward=a["eval_rates_heldout_forward"][:, 1:]),
     r"eval_rates_heldout_forward: shape \(3, 5, 4\) does not fit eval_rates_heldin_forward's"),
]


@pytest.mark.parametrize("change, match", BAD_ARRAYS)
def test_bad_submissions_get_one_line_and_write_nothing(change, match, tmp_path):
    with pytest.raises(InputError, match=match) as info:
        save_submission(tmp_path / "s.h5", "mc_maze", _edited(change))
    assert "\n" not in str(info.value) and not (tmp_path / "s.h5").exists()


def test_names_and_files_that_are_not_submissions(tmp_path):
    assert "mc_rtt_20" in NLB_NAMES and len(NLB_NAMES) == 14
    with pytest.raises(InputError, match=r"^name: 'lorenz' is not a data set the NLB evaluation scores; one of mc_maze"):
        save_submission(tmp_path / "s.h5", "lorenz", rates())
    with pytest.raises(InputError, match=r"directory .* does not exist"):
        save_submission(tmp_path / "nowhere" / "s.h5", "mc_maze", rates())
    flat = tmp_path / "flat.h5"
    with h5py.File(flat, "w") as handle:
        handle.create_dataset("eval_rates_heldin", data=np.ones((2, 2, 2)))
    with pytest.raises(InputError, match=r"flat\.h5: eval_rates_heldin: not a group of arrays"):
        save_submission(flat, "mc_maze", rates())
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(InputError, match=r"junk\.h5: is not an HDF5 file"):
        read_submission(junk)
    with pytest.raises(InputError, match=r"absent\.h5: file does not exist"):
        read_submission(tmp_path / "absent.h5")
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match=r"folder: is a directory, not a file"):
        save_submission(tmp_path / "folder", "mc_maze", rates())


@pytest.fixture(scope="module")
def nlb_files(tmp_path_factory):
    """An NLB file of the validation phase (eval trials with held-out and forward spikes), the same file of
    the test phase (eval trials with held-in spikes only), and a run fitted on the first, with its posterior."""
    folder = tmp_path_factory.mktemp("nlb_submission")
    dataset = make_nlb_lorenz_dataset(seed=2, n_conditions=8, trials_per_condition=10, n_heldin=N_IN, n_heldout=N_OUT,
                                      n_time=T, n_forward=T_FWD)
    val, test = folder / "val.h5", folder / "test.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # latents and truth of the synthetic set: not NLB keys
        save_nlb_tensors(dataset, val, n_heldin=N_IN)
    with h5py.File(val) as source, h5py.File(test, "w") as target:
        for key in source:
            if key == "eval_spikes_heldin" or not key.startswith("eval_"):
                target.create_dataset(key, data=source[key][()])
    config = LFADSConfig(gen_dim=16, fac_dim=4, ic_enc_dim=16, co_dim=0, batch_size=16, kl_ramp_steps=50,
                         max_epochs=15, posterior_samples=20)
    run = folder / "run"
    fit(load_nlb_tensors(val), config, run, progress=False)
    write_posterior(run, progress=False)
    return val, test, run


@pytest.mark.slow
def test_a_run_predicts_every_neuron_and_bin_of_the_nlb_trials(nlb_files):
    val, test, run = nlb_files
    arrays = nlb_submission(run)  # the file the run was fitted on
    inputs = read_nlb_inputs(val)
    n_train, n_eval = inputs.train_heldin.shape[0], inputs.eval_heldin.shape[0]
    assert {key: a.shape for key, a in arrays.items()} == {
        "train_rates_heldin": (n_train, T, N_IN), "train_rates_heldout": (n_train, T, N_OUT),
        "eval_rates_heldin": (n_eval, T, N_IN), "eval_rates_heldout": (n_eval, T, N_OUT),
        "eval_rates_heldin_forward": (n_eval, T_FWD, N_IN), "eval_rates_heldout_forward": (n_eval, T_FWD, N_OUT)}
    posterior = read_posterior(run, "valid")["output_params"]  # the eval trials are the run's valid split
    eval_rates = np.concatenate([np.dstack([arrays["eval_rates_heldin"], arrays["eval_rates_heldout"]]),
                                 np.dstack([arrays["eval_rates_heldin_forward"], arrays["eval_rates_heldout_forward"]])],
                                axis=1)
    assert np.corrcoef(eval_rates.ravel(), posterior.ravel())[0, 1] > 0.99  # the same posterior, other draws
    again = nlb_submission(run, val)
    for key, array in arrays.items():  # seeded by the config's seed
        np.testing.assert_array_equal(again[key], array)
    with h5py.File(val) as handle:
        spikes = handle["eval_spikes_heldout"][()]
    assert co_bps(arrays["eval_rates_heldout"], spikes) > 0
    one = heldin_rates(run, inputs.eval_heldin[:1], samples=3)
    assert one.shape == (1, T + T_FWD, N_IN + N_OUT) and np.all(one > 0)
    with pytest.raises(InputError, match=r"^heldin: must be \(trials, T, N_in\) .* T <= the run's 36 bins"):
        heldin_rates(run, np.zeros((1, 40, N_IN)))
    with pytest.raises(InputError, match=r"^data: 11 encoder input neurons, the run was fitted on 12"):
        heldin_rates(run, inputs.eval_heldin[:1, :, 1:])
    with pytest.raises(InputError, match=r"^samples: must be an integer >= 1"):
        heldin_rates(run, inputs.eval_heldin[:1], samples=0)


@pytest.mark.slow
def test_test_trials_get_rates_from_their_held_in_spikes_only(nlb_files, tmp_path):
    val, test, run = nlb_files
    path = write_nlb_submission(run, tmp_path / "s.h5", "mc_maze", test, samples=5)
    back = read_submission(path)["mc_maze"]
    n_test = read_nlb_inputs(test).eval_heldin.shape[0]
    assert back["eval_rates_heldout"].shape == (n_test, T, N_OUT)
    assert back["eval_rates_heldout_forward"].shape == (n_test, T_FWD, N_OUT)
    with h5py.File(val) as handle:  # the test file's trials are the validation file's: the same rates
        spikes = np.dstack([handle["eval_spikes_heldin_forward"][()], handle["eval_spikes_heldout_forward"][()]])
    forward = np.dstack([back["eval_rates_heldin_forward"], back["eval_rates_heldout_forward"]])
    assert np.isfinite(fp_bps(forward, spikes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the eval trials are test trials"
        fitted_on_test = tmp_path / "fitted_on_test"
        fit(load_nlb_tensors(test), LFADSConfig(gen_dim=8, fac_dim=2, ic_enc_dim=8, co_dim=0, max_epochs=1),
            fitted_on_test, progress=False)
    assert read_submission(write_nlb_submission(fitted_on_test, tmp_path / "t.h5", "mc_maze_20", samples=2))


@pytest.mark.slow
def test_the_command_writes_the_submission_and_refuses_other_data_in_one_line(nlb_files, tmp_path, capsys):
    val, test, run = nlb_files
    out = tmp_path / "submission.h5"
    assert main(["nlb-submission", str(run), "--name", "mc_maze", "--out", str(out), "--samples", "20",
                 "--quiet"]) == 0
    assert f"wrote {out}: group mc_maze" in capsys.readouterr().out
    expected = nlb_submission(run, samples=20)
    back = read_submission(out)["mc_maze"]
    for key, array in expected.items():
        np.testing.assert_array_equal(back[key], array)
    fewer = tmp_path / "fewer.h5"
    with h5py.File(val) as source, h5py.File(fewer, "w") as target:
        for key in (k for k in source if "truth" not in k and k != "conversion_factor"):
            target.create_dataset(key, data=source[key][()][..., 1:] if "heldin" in key else source[key][()])
    shorter = tmp_path / "shorter.h5"  # one observed bin fewer: the split of observed and forward bins differs
    with h5py.File(val) as source, h5py.File(shorter, "w") as target:
        for key in (k for k in source if "truth" not in k and k != "conversion_factor"):
            value = source[key][()]
            cut = ("spikes" in key or "behavior" in key) and "forward" not in key
            target.create_dataset(key, data=value[:, 1:] if cut else value)
    with h5py.File(val) as source:
        n_observed = source["train_spikes_heldin"].shape[1]
    bad = {("--name", "mc_maze", "--data", str(fewer)):
           r"fewer\.h5: train_spikes_heldin: 11 held-in neurons, but the run .* was fitted on 12",
           ("--name", "mc_maze", "--data", str(shorter)):
           rf"shorter\.h5: train_spikes_heldin: {n_observed - 1} observed bins, but the run .* was fitted on {n_observed}",
           ("--name", "mc_maze", "--data", str(out)):
           r"not an NLB tensor file .* needs the NLB file of the trials to predict \(--data\)$",
           ("--name", "lorenz"): r"--name: 'lorenz' is not a data set the NLB evaluation scores",
           ("--name", "mc_maze", "--session", "1"): r"--session: .* has sessions 0 to 0, got 1"}
    for flags, message in bad.items():
        assert main(["nlb-submission", str(run), "--out", str(tmp_path / "no.h5"), *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and re.search("^pyro-lfads: error: .*" + message, err), err
    assert not (tmp_path / "no.h5").exists()


@pytest.mark.slow
def test_nlb_tools_scores_a_runs_submission_as_this_project_does(nlb_files, tmp_path):
    try:
        from nlb_tools import evaluation as nlb
    except ImportError as exc:
        pytest.skip(f"nlb_tools cannot be imported ({exc}): pip install --no-deps nlb-tools==0.0.4")
    val, _, run = nlb_files
    path = write_nlb_submission(run, tmp_path / "s.h5", "mc_rtt", samples=5)
    with h5py.File(val) as handle:
        target = {"mc_rtt": {key: handle[key][()] for key in ("eval_spikes_heldout", "train_behavior", "eval_behavior",
                                                              "eval_spikes_heldin_forward",
                                                              "eval_spikes_heldout_forward")}}
    [result] = nlb.evaluate(target, str(path))
    back = read_submission(path)["mc_rtt"]
    figures = result["mc_rtt_split"]
    assert figures["co-bps"] == pytest.approx(co_bps(back["eval_rates_heldout"], target["mc_rtt"]["eval_spikes_heldout"]),
                                              rel=1e-7)
    forward = [np.dstack([back[f"eval_rates_{p}_forward"] for p in ("heldin", "heldout")]),
               np.dstack([target["mc_rtt"][f"eval_spikes_{p}_forward"] for p in ("heldin", "heldout")])]
    assert figures["fp-bps"] == pytest.approx(fp_bps(*forward), rel=1e-7)
    assert -1 < figures["vel R2"] <= 1
