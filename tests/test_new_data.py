"""A fitted run applied to new trials (``posterior RUN --data NEW --out FILE``), and its output files read as
lfads-torch's output files are read."""

from __future__ import annotations

import hashlib
import warnings

import h5py
import numpy as np
import pytest
import torch

from pyro_lfads.cli import main
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import load_dataset, save_dataset
from pyro_lfads.data.loading import load_trials
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.batch import split_batch
from pyro_lfads.fitting.new_data import write_posterior_of
from pyro_lfads.fitting.predictive import PosteriorPredictive
from pyro_lfads.fitting.run import Run
from pyro_lfads.fitting.train import fit
from pyro_lfads.models.lfads import GENERATOR_RUN

#: The fields of lfads-torch's per-session output, each written as ``{split}_{field}``.
LFADS_TORCH_FIELDS = ("output_params", "factors", "ic_mean", "ic_std", "co_means", "co_stds", "gen_states",
                      "gen_init", "gen_inputs", "con_states")


@pytest.fixture(scope="module")
def fitted(tiny_lorenz, tmp_path_factory):
    """(run directory, data file, data set): 1 epoch with 2 inferred inputs on a data file, and its posterior.h5
    written by the command line; about 5 s."""
    root = tmp_path_factory.mktemp("new_data")
    data = root / "data.h5"
    save_dataset(tiny_lorenz, data)
    dataset = load_dataset(data)
    config = LFADSConfig(gen_dim=16, fac_dim=4, ic_enc_dim=8, ci_enc_dim=8, con_dim=8, co_dim=2, batch_size=16,
                         max_epochs=1, posterior_samples=5)
    fit(dataset, config, root / "run", progress=False)
    assert main(["posterior", str(root / "run"), "--quiet"]) == 0
    return root / "run", data, dataset


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_file(path, **arrays):
    with h5py.File(path, "w") as h5:
        for key, value in arrays.items():
            h5[key] = value
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pyro-lfads: error: "), err
    return err


@pytest.mark.slow
def test_the_runs_own_data_through_data_gives_posterior_h5_again(fitted, tmp_path):
    run, data, _ = fitted
    out = tmp_path / "again.h5"
    assert main(["posterior", str(run), "--data", str(data), "--out", str(out), "--quiet"]) == 0
    with h5py.File(run / "posterior.h5") as own, h5py.File(out) as again:
        assert sorted(own) == sorted(again)
        for key in own:
            np.testing.assert_allclose(again[key][()], own[key][()], rtol=1e-5, atol=1e-6, err_msg=key)
        assert dict(own.attrs) == dict(again.attrs)


@pytest.mark.slow
def test_a_file_with_other_trials_gives_the_runs_own_rates_on_the_trials_they_share(fitted, tmp_path):
    """One split only (valid_*), five training trials and the validation trials backwards: every shared trial gets
    the very averages posterior.h5 holds for it (draws seeded by the run's seed and the trial)."""
    run, _, dataset = fitted
    rows = np.concatenate([dataset.train.recon_data[:5], dataset.valid.recon_data[::-1]])
    new = write_file(tmp_path / "day2.h5", valid_encod_data=rows, valid_recon_data=rows, bin_width_s=0.01)
    before = sha256(run / "posterior.h5")
    out = write_posterior_of(run, new, tmp_path / "day2_posterior.h5", progress=False)
    assert sha256(run / "posterior.h5") == before
    with h5py.File(run / "posterior.h5") as own, h5py.File(out) as h5:
        assert not any(key.startswith("train_") for key in h5)
        np.testing.assert_array_equal(h5["valid_inds"][()], np.arange(len(rows)))  # the file has none: file order
        for field in LFADS_TORCH_FIELDS:
            shared = h5[f"valid_{field}"][()]
            np.testing.assert_allclose(shared[:5], own[f"train_{field}"][:5], rtol=1e-5, atol=1e-6, err_msg=field)
            np.testing.assert_allclose(shared[5:][::-1], own[f"valid_{field}"][()], rtol=1e-5, atol=1e-6,
                                       err_msg=field)


def bad_files(dataset):
    """{case: (file, the words its one-line error holds)}: new data that does not fit the run."""
    valid = dataset.valid.recon_data
    fractional = valid.copy()
    fractional[0, 0, 0] = 0.5
    ext = np.zeros((*valid.shape[:2], 1), np.float32)
    return {
        "neurons": ({"valid_encod_data": valid[..., :19], "valid_recon_data": valid[..., :19]},
                    "valid_recon_data: 19 neurons, but"),
        "bins": ({"valid_encod_data": valid[:, :30], "valid_recon_data": valid[:, :30]},
                 "valid_recon_data: 30 time bins, but"),
        "support": ({"valid_encod_data": fractional, "valid_recon_data": fractional},
                    "valid_encod_data: 1 values are not whole numbers"),
        "bin width": ({"valid_encod_data": valid, "valid_recon_data": valid, "bin_width_s": 0.02},
                      "bin_width_s: 20 ms bins, but"),
        "external inputs": ({"valid_encod_data": valid, "valid_recon_data": valid, "valid_ext_input": ext},
                            "valid_ext_input: 1 external inputs, but"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", ["neurons", "bins", "support", "bin width", "external inputs"])
def test_new_data_that_does_not_fit_the_run_is_one_line_and_exit_2(fitted, tmp_path, capsys, case):
    run, _, dataset = fitted
    arrays, words = bad_files(dataset)[case]
    new, out = write_file(tmp_path / "bad.h5", **arrays), tmp_path / "out.h5"
    capsys.readouterr()
    assert main(["posterior", str(run), "--data", str(new), "--out", str(out), "--quiet"]) == 2
    assert words in one_error_line(capsys)
    assert not out.exists()


@pytest.mark.slow
def test_out_never_replaces_the_runs_files_nor_the_data(fitted, tmp_path, capsys):
    run, data, _ = fitted
    before = {name: sha256(run / name) for name in ("posterior.h5", "run.json", "checkpoints/best.pt")}
    for out, words in ((run / "posterior.h5", "own posterior.h5, which this never replaces"),
                       (run / "checkpoints" / "best.pt", "--out: "), (run / "run.json", "--out: "),
                       (data, "is the data file itself"),
                       (tmp_path / "out.npz", "name an HDF5 file")):
        capsys.readouterr()
        assert main(["posterior", str(run), "--data", str(data), "--out", str(out), "--quiet"]) == 2, out
        assert words in one_error_line(capsys), out
    assert main(["posterior", str(run), "--data", str(data), "--quiet"]) == 2
    assert "--data and --out go together" in one_error_line(capsys)
    assert {name: sha256(run / name) for name in before} == before


def test_a_file_of_one_split_reads_as_that_split_and_names_its_own_keys(tiny_lorenz, tmp_path):
    counts = tiny_lorenz.train.recon_data
    only_train = write_file(tmp_path / "train.h5", train_encod_data=counts, train_recon_data=counts,
                            train_cond_idx=np.arange(len(counts)))
    dataset, splits = load_trials(only_train)
    assert splits == ("train",)
    np.testing.assert_array_equal(dataset.train.recon_data, counts)
    np.testing.assert_array_equal(dataset.extras["train_conditions"], np.arange(len(counts)))
    fractional = counts.copy()
    fractional[1, 2, 3] = 0.25
    write_file(tmp_path / "valid.h5", valid_data=fractional)  # the older layout
    with pytest.raises(InputError, match=r"valid\.h5: valid_data: 1 values are not whole numbers"):
        load_trials(tmp_path / "valid.h5")
    with pytest.raises(InputError, match="valid_encod_data, valid_recon_data: missing"):
        load_dataset(only_train)  # a data set to fit on needs both


def test_cond_idx_is_read_as_conditions(tiny_lorenz, tmp_path):
    counts = tiny_lorenz.train.recon_data
    path = write_file(tmp_path / "m1.h5", train_encod_data=counts, train_recon_data=counts,
                      valid_encod_data=counts[:4], valid_recon_data=counts[:4],
                      train_cond_idx=np.arange(len(counts)) % 3, valid_cond_idx=np.zeros((4, 2), int))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset(path)
    np.testing.assert_array_equal(dataset.extras["train_conditions"], np.arange(len(counts)) % 3)
    assert "valid_conditions" not in dataset.extras and "train_cond_idx" in dataset.extras
    assert any("valid_cond_idx: not read as conditions" in str(w.message) for w in caught)


def read_like_lfads_torch(path) -> dict:
    """What analysis code written for lfads-torch's output files does with one: per split, the output fields
    and the data copied in, then every trial's rates put back in recording order by ``{split}_inds``."""
    with h5py.File(path, "r") as h5:
        splits = {split: {key[len(split) + 1:]: h5[key][()] for key in h5 if key.startswith(f"{split}_")}
                  for split in ("train", "valid")}
    n_trials = sum(len(part["inds"]) for part in splits.values())
    merged = np.full((n_trials, *splits["train"]["output_params"].shape[1:]), np.nan)
    for part in splits.values():
        merged[part["inds"]] = part["output_params"]
    return {"splits": splits, "merged_rates": merged}


@pytest.mark.slow
def initial_states(model, g0_draws: torch.Tensor) -> np.ndarray:
    """(S, B, G) draws of g0 -> (B, G) the generator's state before bin 1 (W_0 g0 + b_0 with g0_map), averaged."""
    with torch.no_grad():
        return model.generator.initial_state(g0_draws).mean(0).numpy()


def test_posterior_h5_reads_as_lfads_torch_output_keys_shapes_and_meanings(fitted):
    run_dir, _, dataset = fitted
    read = read_like_lfads_torch(run_dir / "posterior.h5")
    run = Run.open(run_dir)
    config, (model, guide) = run.config, run.fitted()
    assert not np.isnan(read["merged_rates"]).any()  # the inds cover every trial once
    for split in ("train", "valid"):
        out, part = read["splits"][split], getattr(dataset, split)
        n, t = part.n_trials, part.n_time
        expected = {"output_params": (n, t, part.n_neurons), "factors": (n, t, config.fac_dim),
                    "ic_mean": (n, config.gen_dim), "ic_std": (n, config.gen_dim),
                    "co_means": (n, t, config.co_dim), "co_stds": (n, t, config.co_dim),
                    "gen_states": (n, t, config.gen_dim), "gen_init": (n, config.gen_dim),
                    "gen_inputs": (n, t, config.co_dim), "con_states": (n, t, config.con_dim)}
        assert {field: out[field].shape for field in LFADS_TORCH_FIELDS} == expected
        for key in ("encod_data", "recon_data", "truth", "inds", "conditions"):
            value = getattr(part, key) if key != "conditions" else dataset.extras[f"{split}_conditions"]
            np.testing.assert_array_equal(out[key], value, err_msg=key)
    with h5py.File(run_dir / "posterior.h5") as h5:
        assert h5["bin_width_s"][()] == 0.01 and h5["conversion_factor"][()] == dataset.conversion_factor
    # the meanings: the same seeded draws, read off the guide's and the model's traces
    samples, valid = config.posterior_samples, read["splits"]["valid"]
    predictive = PosteriorPredictive(model, guide, samples, return_sites=["g0", "u", "rates", "factors"],
                                     seed=config.seed)
    draws, trace = predictive.draw(split_batch(dataset.valid, slice(None)))
    q_u, generator_run = trace.nodes["u"]["fn"], trace.nodes["u"]["infer"][GENERATOR_RUN]

    def per_trial(rows):
        return rows.reshape(dataset.valid.n_trials, samples, *rows.shape[1:]).mean(1).numpy()

    meanings = {"co_stds": per_trial(q_u.scale),  # the standard deviation of q(u_t), not the spread of draws of u
                "co_means": per_trial(q_u.loc), "con_states": per_trial(generator_run.controller_states),
                "gen_init": initial_states(model, draws["g0"]), "gen_inputs": draws["u"].mean(0).numpy(),
                "output_params": draws["rates"].mean(0).numpy(), "factors": draws["factors"].mean(0).numpy()}
    for field, value in meanings.items():
        np.testing.assert_allclose(valid[field], value, rtol=1e-5, atol=1e-6, err_msg=field)
    with torch.no_grad():
        loc, scale = guide.initial_condition(torch.as_tensor(dataset.valid.encod_data))
    np.testing.assert_allclose(valid["ic_mean"], loc.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(valid["ic_std"], scale.numpy(), rtol=1e-5, atol=1e-6)
