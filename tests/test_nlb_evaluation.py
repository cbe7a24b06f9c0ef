"""The NLB-shaped synthetic set, scoring of any method's rates, LFADS against baselines, decoding, CLI."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest

from pyro_lfads.cli.commands import main
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import load_dataset, save_dataset
from pyro_lfads.evaluation.decoding import decode_run
from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.table import IN_SAMPLE_NOTE, evaluate_run, format_table, in_sample_figures, with_in_sample
from pyro_lfads.fitting.posterior import write_posterior
from pyro_lfads.evaluation.nlb_figures import Layout, baseline_rates, score_rates
from pyro_lfads.synthetic.lorenz_nlb import make_nlb_lorenz_dataset
from pyro_lfads.fitting.train import fit

SMALL = dict(n_conditions=8, trials_per_condition=10, n_heldin=12, n_heldout=4, n_time=30, n_forward=6)


@pytest.fixture(scope="module")
def small_nlb():
    return make_nlb_lorenz_dataset(seed=2, **SMALL)


@pytest.fixture(scope="module")
def fitted_small_nlb(small_nlb, tmp_path_factory):
    """A short fit with held-out neurons and forward bins, and its posterior."""
    run_dir = tmp_path_factory.mktemp("nlb_run")
    config = LFADSConfig(gen_dim=16, fac_dim=4, ic_enc_dim=16, co_dim=0, batch_size=16, kl_ramp_steps=50,
                         max_epochs=15, posterior_samples=4)
    fit(small_nlb, config, run_dir, progress=False)
    write_posterior(run_dir, small_nlb, progress=False)
    return run_dir


def test_synthetic_set_has_the_nlb_layout_and_every_ingredient(small_nlb):
    layout = Layout.of(small_nlb)
    assert layout == Layout(n_heldin=12, n_heldout=4, n_time=30, n_forward=6)
    train = small_nlb.train
    assert train.recon_data.shape == (train.n_trials, 36, 16) and train.truth.shape == train.recon_data.shape
    np.testing.assert_array_equal(train.encod_data, train.recon_data[:, :30, :12])
    assert small_nlb.extras["train_behavior"].shape == (train.n_trials, 30, 2)
    assert small_nlb.extras["valid_conditions"].shape == (small_nlb.valid.n_trials,)
    again = make_nlb_lorenz_dataset(seed=2, **SMALL)
    np.testing.assert_array_equal(again.valid.recon_data, small_nlb.valid.recon_data)


def test_behaviour_reads_the_latent_state_lag_bins_earlier():
    dataset = make_nlb_lorenz_dataset(seed=1, behavior_lag_bins=4, behavior_noise=0.0, **SMALL)
    latents = dataset.extras["train_latents"]  # (trials, 36, 3): the state during the trial
    behavior = dataset.extras["train_behavior"]  # (trials, 30, 2)

    def fit_r2(lag):  # least squares of behaviour at t on the state at t - lag
        x = latents[:, : 30 - lag].reshape(-1, 3)
        y = behavior[:, lag:].reshape(-1, 2)
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        return 1 - ((y - x @ coef) ** 2).sum() / ((y - y.mean(0)) ** 2).sum()

    assert fit_r2(4) > 0.999 and fit_r2(0) < 0.99


def test_bad_arguments_get_one_line_errors():
    with pytest.raises(InputError, match="n_heldin"):
        make_nlb_lorenz_dataset(n_heldin=0)
    with pytest.raises(InputError, match="train_fraction"):
        make_nlb_lorenz_dataset(trials_per_condition=2, train_fraction=0.9)


def test_true_rates_score_better_than_a_constant(small_nlb):
    truth = {s: small_nlb.truth_counts(s) for s in ("train", "valid")}
    best = score_rates(small_nlb, truth["train"], truth["valid"], lag_bins=5)
    assert best["rate_r2"] == 1.0 and best["co_bps"] > 0.2 and best["fp_bps"] > 0.2
    assert best["vel_r2"] > 0.5 and best["psth_r2"] > 0.3
    flat = {s: np.broadcast_to(small_nlb.train.recon_data.mean((0, 1)), truth[s].shape) for s in truth}
    constant = score_rates(small_nlb, flat["train"], flat["valid"])
    assert constant["co_bps"] < 0.05 and constant["fp_bps"] < 0.05 and constant["vel_r2"] < 0.05
    with pytest.raises(InputError, match="valid_rates: shape"):
        score_rates(small_nlb, truth["train"], truth["valid"][:, :30])


def test_behaviour_of_all_bins_is_decoded_on_the_observed_bins(small_nlb):
    truth = {s: small_nlb.truth_counts(s) for s in ("train", "valid")}
    observed = score_rates(small_nlb, truth["train"], truth["valid"], lag_bins=5)["vel_r2"]
    n_forward = small_nlb.train.recon_data.shape[1] - Layout.of(small_nlb).n_time
    assert n_forward > 0
    extras = dict(small_nlb.extras)
    for split in ("train", "valid"):  # behaviour continued over the forward bins, as lfads-torch stores it
        behavior = extras[f"{split}_behavior"]
        extras[f"{split}_behavior"] = np.concatenate([behavior, np.full((len(behavior), n_forward, behavior.shape[2]),
                                                                        1e6)], axis=1)
    longer = score_rates(dataclasses.replace(small_nlb, extras=extras), truth["train"], truth["valid"], lag_bins=5)["vel_r2"]
    assert longer == observed


#: An evaluate_run result of the shape the table prints (figures made up).
RESULT = {"lfads": {"likelihood": "poisson", "elbo_per_trial": -310.5, "bits_per_spike": 0.2, "co_bps": 0.31,
                    "heldin_bps": 0.23},
          "smoothing": {"co_bps": 0.2, "heldin_bps": 0.83},
          "gpfa": {"skipped": "GPFA's smallest latent dimension, 2, needs at least 2 held-in neurons, the data have 1"}}


def test_the_table_and_its_json_mark_the_same_in_sample_figures():
    assert in_sample_figures(RESULT) == ["elbo_per_trial", "bits_per_spike", "heldin_bps"]
    assert with_in_sample(RESULT) == {**RESULT, "in_sample": ["elbo_per_trial", "bits_per_spike", "heldin_bps"]}
    assert "in_sample" not in RESULT
    lines = format_table(RESULT).splitlines()
    assert lines[0].split() == ["lfads", "smoothing", "gpfa"]
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert list(rows) == ["likelihood", "elbo_per_trial", "bits_per_spike", "co_bps", "heldin_bps", "skipped"]
    marked = {row for row, line in rows.items() if line.rstrip().endswith("*") or " * " in line}
    assert marked == set(in_sample_figures(RESULT))
    assert rows["heldin_bps"].split()[1:] == ["0.2300", "*", "0.8300", "*"]
    assert rows["co_bps"].split()[1:] == ["0.3100", "0.2000"]
    assert lines[-1] == f"* {IN_SAMPLE_NOTE}" and "held-in spikes" in IN_SAMPLE_NOTE
    plain = format_table({"lfads": {"co_bps": 0.3}})
    assert plain.splitlines()[-1].split() == ["co_bps", "0.3000"] and "*" not in plain


def test_gpfas_left_neuron_out_held_in_figure_is_not_marked_in_sample():
    result = {"smoothing": {"heldin_bps": 0.83}, "gpfa": {"heldin_bps": 0.5}}
    heldin = next(line for line in format_table(result).splitlines() if line.startswith("heldin_bps")).split()
    assert heldin[1:] == ["0.8300", "*", "0.5000"]
    assert in_sample_figures({"gpfa": {"heldin_bps": 0.5}}) == []


@pytest.mark.slow
def test_baselines_give_rates_of_the_target_shape(small_nlb):
    for method in ("smoothing", "gpfa"):
        train, valid = baseline_rates(method, small_nlb)
        assert train.shape == small_nlb.train.recon_data.shape and valid.shape == small_nlb.valid.recon_data.shape
        assert np.all(valid > 0)
    with pytest.raises(InputError, match="baseline"):
        baseline_rates("pca", small_nlb)


@pytest.mark.slow
def test_evaluate_puts_lfads_next_to_the_baselines(fitted_small_nlb, small_nlb):
    result = evaluate_run(fitted_small_nlb, small_nlb, lag_bins=5)
    assert list(result) == ["lfads", "smoothing", "gpfa"]
    for method, figures in result.items():
        for key in ("co_bps", "fp_bps", "vel_r2", "psth_r2", "heldin_bps", "rate_r2"):
            assert np.isfinite(figures[key]), (method, key)
    table = format_table(result)
    assert table.splitlines()[0].split() == ["lfads", "smoothing", "gpfa"]
    assert any(line.startswith("co_bps") for line in table.splitlines())


@pytest.mark.slow
def test_decode_from_rates_and_factors(fitted_small_nlb, small_nlb):
    from_rates = decode_run(fitted_small_nlb, small_nlb, source="rates", lag_bins=5)
    from_factors = decode_run(fitted_small_nlb, small_nlb, source="factors", lag_bins=5)
    assert np.isfinite(from_rates["vel_r2"]) and np.isfinite(from_factors["vel_r2"])
    with h5py.File(fitted_small_nlb / "decoding.h5") as h5:
        assert h5["valid_behavior_pred"].shape == (small_nlb.valid.n_trials, 25, 2)
        assert h5.attrs["source"] == "factors"
    with pytest.raises(InputError, match="^source: 'spikes'"):
        decode_run(fitted_small_nlb, small_nlb, source="spikes")


def test_cli_synth_nlb_lorenz_in_both_formats_loads_alike(tmp_path):
    lfads_file, nlb_file = tmp_path / "a.h5", tmp_path / "b.h5"
    assert main(["synth", "nlb-lorenz", "--out", str(lfads_file)]) == 0
    assert main(["synth", "nlb-lorenz", "--out", str(nlb_file), "--format", "nlb"]) == 0
    with h5py.File(nlb_file) as h5:
        assert h5["train_spikes_heldin"].shape == (1040, 80, 30)
        assert h5["eval_spikes_heldout_forward"].shape == (260, 20, 10)
    a, b = load_dataset(lfads_file), load_dataset(nlb_file)
    np.testing.assert_array_equal(a.valid.recon_data, b.valid.recon_data)
    np.testing.assert_array_equal(a.extras["train_behavior"], b.extras["train_behavior"])
    assert main(["synth", "lorenz", "--out", str(tmp_path / "c.h5"), "--format", "nlb"]) == 2


@pytest.mark.slow
def test_cli_evaluate_table_json_and_decode(fitted_small_nlb, small_nlb, tmp_path, capsys):
    data = tmp_path / "small.h5"
    save_dataset(small_nlb, data)
    run = tmp_path / "run"
    fitted = fitted_small_nlb
    # the fitted run's data source is in-memory; point a copy of it at the file
    import shutil
    shutil.copytree(fitted, run)
    info = json.loads((run / "run.json").read_text())
    info["data_source"] = str(data)
    (run / "run.json").write_text(json.dumps(info))
    capsys.readouterr()
    assert main(["evaluate", str(run), "--baselines", "smoothing", "--lag-bins", "5"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["lfads", "smoothing"] and "vel_r2" in table
    lines = table.splitlines()
    heldin = next(line for line in lines if line.startswith("heldin_bps")).split()
    co = next(line for line in lines if line.startswith("co_bps")).split()
    assert heldin[2] == heldin[4] == "*" and "*" not in co and lines[-1] == f"* {IN_SAMPLE_NOTE}"
    assert main(["evaluate", str(run), "--json", "--baselines", "smoothing"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == ["lfads", "smoothing", "in_sample"]
    assert printed["in_sample"] == ["elbo_per_trial", "bits_per_spike", "poisson_nll_per_trial", "heldin_bps"]
    assert main(["evaluate", str(run), "--json", "--baselines", "none"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == ["lfads", "in_sample"]
    assert main(["decode", str(run), "--from", "factors", "--lag-bins", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["from"] == "factors"
    with pytest.raises(SystemExit):
        main(["evaluate", str(run), "--baselines", "pca"])
