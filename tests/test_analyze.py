"""`pyro-lfads analyze`: jPCA and the inputs embedding of a fitted run's posterior means, as figures and JSON."""

from __future__ import annotations

import json

import numpy as np
import pyro
import pytest

from pyro_lfads.analysis.input_embedding import embed_inputs
from pyro_lfads.analysis.jpca import jpca
from pyro_lfads.analysis.run_analysis import analyze_run, condition_means
from pyro_lfads.cli import main
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import load_dataset, save_dataset
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.posterior import read_posterior, write_posterior
from pyro_lfads.fitting.train import fit
from pyro_lfads.synthetic.chaotic_rnn import make_pulse_dataset


@pytest.fixture(scope="module")
def pulse_run(tmp_path_factory):
    """A briefly trained run with one inferred input on pulse data where half the trials are pulsed."""
    folder = tmp_path_factory.mktemp("pulse_run")
    save_dataset(make_pulse_dataset(seed=1, n_conditions=12, trials_per_condition=8, n_units=20, n_time=40,
                                    pulse_window_ms=(100.0, 300.0), pulse_fraction=0.5), folder / "pulses.h5")
    dataset = load_dataset(folder / "pulses.h5")
    pyro.clear_param_store()
    config = LFADSConfig(gen_dim=16, fac_dim=6, ic_enc_dim=8, ci_enc_dim=8, con_dim=8, co_dim=1, batch_size=16,
                         max_epochs=3, posterior_samples=4)
    fit(dataset, config, folder / "run", progress=False)
    write_posterior(folder / "run", progress=False)
    return folder / "run", dataset


def test_analyze_writes_the_figures_and_the_numbers_of_both_analyses(pulse_run, capsys):
    run_dir, dataset = pulse_run
    assert main(["analyze", str(run_dir), "--labels", "pulsed", "--window", "5", "35"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((run_dir / "analysis" / "analysis.json").read_text())
    assert (run_dir / "analysis" / "jpca.png").is_file() and (run_dir / "analysis" / "inputs_embedding.png").is_file()
    posterior = read_posterior(run_dir, "valid")
    labels = dataset.extras["valid_pulsed"]
    embedding = embed_inputs(posterior["gen_inputs"][..., :1], labels, window=(5, 35))
    assert printed["inputs_embedding"]["knn_accuracy"] == pytest.approx(embedding.knn_accuracy)
    assert printed["inputs_embedding"]["silhouette"] == pytest.approx(embedding.silhouette)
    assert printed["inputs_embedding"]["classes"] == 2 and printed["inputs_embedding"]["window"] == [5, 35]
    averaged, classes = condition_means(posterior["factors"], labels)
    assert classes == [0, 1] and averaged.shape == (2, 40, 6)
    expected = jpca(averaged, k=6, bin_s=0.01)
    assert printed["jpca"]["r2_skew"] == pytest.approx(expected.r2_skew)
    assert printed["jpca"]["frequency_hz"] == pytest.approx(expected.frequency_hz)
    assert printed["jpca"]["conditions"] == 2 and printed["split"] == "valid"


def test_jpca_of_rates_averages_each_condition_in_spikes_per_second(pulse_run, tmp_path):
    run_dir, dataset = pulse_run
    result = analyze_run(run_dir, ("jpca",), source="rates", k=4, split="train", out=tmp_path)
    rates = read_posterior(run_dir, "train")["output_params"] * 100.0
    averaged, classes = condition_means(rates, dataset.extras["train_conditions"])
    assert len(classes) == 12 and result["jpca"]["conditions"] == 12
    assert result["jpca"]["r2_skew"] == pytest.approx(jpca(averaged, k=4, soft_normalize=5.0).r2_skew)
    assert "inputs_embedding" not in result and (tmp_path / "jpca.png").is_file()


def test_condition_means_average_the_trials_of_each_label():
    values = np.arange(24, dtype=float).reshape(4, 3, 2)
    averaged, classes = condition_means(values, np.array(["b", "a", "b", "a"]))
    assert classes == ["a", "b"]
    np.testing.assert_allclose(averaged, [values[[1, 3]].mean(0), values[[0, 2]].mean(0)])


def test_analyze_says_what_is_missing(pulse_run, fitted_tiny_lorenz, capsys):
    run_dir, _ = pulse_run
    assert main(["analyze", str(run_dir), "--labels", "colour"]) == 2
    error = capsys.readouterr().err
    assert "--labels: " in error and "has no valid_colour" in error and "pulsed" in error
    assert main(["analyze", str(run_dir), "--inputs-embedding", "--window", "30", "10"]) == 2
    assert "window" in capsys.readouterr().err
    lorenz_dir, lorenz = fitted_tiny_lorenz
    with pytest.raises(InputError, match=r"has no inferred inputs \(co_dim 0\)"):
        analyze_run(lorenz_dir, ("inputs_embedding",), lorenz)
    with pytest.raises(InputError, match="analyses: choose from jpca, inputs_embedding, got tsne"):
        analyze_run(lorenz_dir, ("tsne",), lorenz)
