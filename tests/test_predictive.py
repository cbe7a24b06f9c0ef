"""pyro_lfads.predictive: a pyro.infer.Predictive whose draws are the posterior that write_posterior averages;
Pyro's plate-vectorised forward (parallel=True) on the same model and guide; PathNormal with a sample_shape."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import Predictive

import pyro_lfads
from pyro_lfads.blocks.distributions import PathNormal
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import Split
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.batch import split_batch
from pyro_lfads.fitting.posterior import posterior_chunks, read_posterior, write_posterior
from pyro_lfads.fitting.train import fit
from pyro_lfads.guides.lfads import LFADSGuide
from pyro_lfads.models.lfads import LFADSModel
from pyro_lfads.models.likelihoods import LIKELIHOODS


def pair(config, n_neurons=7, n_ext=0):
    model = LFADSModel(config, n_neurons, n_ext).eval()
    return model, LFADSGuide(model, n_neurons).eval()


def assert_same_mean(draws: torch.Tensor, mean: np.ndarray, samples: int, spread: torch.Tensor | None = None):
    """The mean over ``draws`` (S, ...) and ``mean``, an average of ``samples`` other draws (or exact: samples=0),
    differ by Monte Carlo error: z-scores with the spread of ``draws`` (or ``spread``), none past 10, mean square < 2.

    Rates are log-normal in g0, so one draw in a few thousand lies far out: with ``mean`` an average of 20
    draws, the largest of some 20,000 z-scores ranged 4.3 to 8.7 over 13 seeds of the draws, while their mean
    square stayed within 1.00 to 1.11.
    """
    sd = draws.std(0) if spread is None else spread
    error = sd * np.sqrt(1 / draws.shape[0] + (1 / samples if samples else 0))
    scored = error > 1e-6
    z = (draws.mean(0) - torch.as_tensor(mean))[scored] / error[scored]
    assert scored.any() and z.abs().max() < 10 and (z**2).mean() < 2, (z.abs().max(), (z**2).mean())


def test_path_normal_with_a_sample_shape_repeats_its_path_and_scores_each_copy():
    loc, scale, path = torch.randn(3, 5, 2), torch.rand(3, 5, 2) + 0.1, torch.randn(3, 5, 2)
    d = PathNormal(loc, scale, path)
    draws = d.rsample((4, 2))
    assert draws.shape == (4, 2, 3, 5, 2) == d.shape((4, 2))
    assert torch.equal(draws, path.expand(4, 2, 3, 5, 2)) and torch.equal(d.sample((4,))[1], path)
    expected = torch.distributions.Normal(loc, scale).log_prob(path).sum((-2, -1))
    torch.testing.assert_close(d.log_prob(draws), expected.expand(4, 2, 3))
    assert d.expand((6, 3)).rsample((2,)).shape == (2, 6, 3, 5, 2)


@pytest.mark.parametrize("n_ext", [0, 3])
def test_model_and_guide_run_each_row_of_a_leading_sample_dimension_as_its_own_trials(tiny_config, counts_batch,
                                                                                      n_ext):
    """What parallel=True asks of them: latents (S, B, ...) give, row by row, what (B, ...) gives."""
    batch = counts_batch(n_ext=n_ext)
    model, guide = pair(tiny_config, n_ext=n_ext)
    g0 = torch.randn(2, batch.n_trials, tiny_config.gen_dim)
    x = guide.encoder_input(batch)
    with torch.no_grad():
        both = guide.controller_and_generator(x, g0, batch, sample=False)
        for s in range(2):
            alone = guide.controller_and_generator(x, g0[s], batch, sample=False)
            for a, b in zip((*both[:2], both[2].inputs, both[2].states, both[2].factors),
                            (*alone[:2], alone[2].inputs, alone[2].states, alone[2].factors)):
                torch.testing.assert_close(a[s], b)
            states = model.generator.run(g0, both[2].inputs, batch.ext_input, batch.n_time)
            torch.testing.assert_close(states[s], model.generator.run(g0[s], alone[2].inputs, batch.ext_input,
                                                                      batch.n_time))
            torch.testing.assert_close(states[s], alone[2].states)


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_the_built_in_observation_models_take_a_leading_sample_dimension(tiny_config, name):
    likelihood = LIKELIHOODS[name](tiny_config.fac_dim, 7)
    factors = torch.randn(2, 5, 12, tiny_config.fac_dim)
    both = likelihood(factors)
    for s in range(2):
        alone = likelihood(factors[s])
        torch.testing.assert_close(both.rates[s], alone.rates)
        torch.testing.assert_close(both.mean[s], alone.mean)
    assert both.distribution.batch_shape == (2, 5, 12, 7)


@pytest.mark.parametrize("co_dim", [2, 0])
def test_predictive_of_a_model_and_guide_returns_the_sites_in_predictives_layout(tiny_config, counts_batch, co_dim):
    config = tiny_config.replace(co_dim=co_dim)
    model, guide = pair(config)
    batch = counts_batch(n_trials=5, n_time=12)
    for parallel in (False, True):
        predictive = pyro_lfads.predictive((model, guide), num_samples=3, parallel=parallel)
        assert isinstance(predictive, Predictive)
        draws = predictive(batch)
        expected = {"g0": (3, 5, config.gen_dim), "factors": (3, 5, 12, config.fac_dim), "rates": (3, 5, 12, 7)}
        if co_dim:
            expected["u"] = (3, 5, 12, co_dim)
        assert {site: tuple(value.shape) for site, value in draws.items()} == expected
        assert not torch.equal(draws["g0"][0], draws["g0"][1])  # S draws, not one repeated
    obs = pyro_lfads.predictive((model, guide), 3, return_sites=["obs", "rates"])(batch)
    assert obs["obs"].shape == (3, 5, 12, 7) and not torch.equal(obs["obs"][0], batch.recon_data)  # simulated
    assert pyro_lfads.predictive((model, guide)).num_samples == config.posterior_samples


def test_the_one_pass_and_pyros_vectorised_forward_draw_the_same_posterior(tiny_config, counts_batch):
    """parallel=False hands the guide's generator run to the model; parallel=True conditions the model on
    the guide's g0 and u and runs the generator again: the same posterior, within Monte Carlo error."""
    model, guide = pair(tiny_config.replace(co_dim=2), n_ext=3)
    batch = counts_batch(n_ext=3)
    one_pass = pyro_lfads.predictive((model, guide), 400)(batch)
    vectorised = pyro_lfads.predictive((model, guide), 400, parallel=True)(batch)
    for site in ("g0", "u", "factors", "rates"):
        assert_same_mean(vectorised[site], one_pass[site].mean(0).numpy(), 400, one_pass[site].std(0))


def test_program_runs_per_call(tiny_config, counts_batch):
    """The counts the docs quote: the one pass runs guide and model once each; Pyro's vectorised forward three
    times each; plain Predictive (sequential) S + 2 times each."""
    model, guide = pair(tiny_config)
    calls = {"model": 0, "guide": 0}

    def counted(name, program):
        def run(*args):
            calls[name] += 1
            return program(*args)
        return run

    programs = counted("model", model), counted("guide", guide)
    runs = {}
    for name, predictive in {"one pass": pyro_lfads.predictive(programs, 5),
                             "parallel": pyro_lfads.predictive(programs, 5, parallel=True),
                             "plain": Predictive(programs[0], guide=programs[1], num_samples=5)}.items():
        calls.update(model=0, guide=0)
        predictive(counts_batch(), 1.0)
        runs[name] = dict(calls)
    assert runs == {"one pass": {"model": 1, "guide": 1}, "parallel": {"model": 3, "guide": 3},
                    "plain": {"model": 7, "guide": 7}}


def test_posterior_chunks_average_the_predictives_draws(tiny_lorenz, tiny_config):
    model, guide = pair(tiny_config, n_neurons=tiny_lorenz.valid.n_neurons)
    split = tiny_lorenz.valid
    chunks = list(posterior_chunks(model, guide, split, samples=50, max_rows=500))
    assert len(chunks) == 3  # 24 trials, 10 per chunk
    written = {key: np.concatenate([out[key] for _, out in chunks]) for key in chunks[0][1]}
    draws = pyro_lfads.predictive((model, guide), 200)(split)
    assert_same_mean(draws["rates"], written["output_params"], 50)
    assert_same_mean(draws["u"], written["co_means"], 50)
    assert_same_mean(draws["g0"], written["ic_mean"], 0, spread=torch.as_tensor(written["ic_std"]))


@pytest.mark.parametrize("bad, words", [
    (dict(num_samples=0), "num_samples: an integer >= 1"),
    (dict(num_samples=2.5), "num_samples: an integer >= 1"),
    (dict(return_sites="rates"), "return_sites: a list of one or more site names"),
    (dict(return_sites=[]), "return_sites: a list of one or more site names"),
    (dict(parallel="yes"), "parallel: True or False"),
])
def test_bad_options_are_one_line(tiny_config, bad, words):
    with pytest.raises(InputError, match=words):
        pyro_lfads.predictive(pair(tiny_config), **bad)


def test_bad_arguments_and_missing_sites_are_one_line(tiny_config, counts_batch, tmp_path):
    with pytest.raises(InputError, match="run_or_model_and_guide: a Run, a run directory or a"):
        pyro_lfads.predictive(42)
    with pytest.raises(InputError, match="not a pyro-lfads run directory"):
        pyro_lfads.predictive(tmp_path)
    predictive = pyro_lfads.predictive(pair(tiny_config.replace(co_dim=0)), 2, return_sites=["u", "rates"])
    with pytest.raises(InputError, match="data: a Split or a Batch of trials, got ndarray"):
        predictive(np.zeros((5, 12, 7)))
    with pytest.raises(InputError, match="return_sites: the model has no site 'u'"):
        predictive(counts_batch())


@pytest.fixture(scope="module")
def run_with_inputs(tiny_lorenz, tmp_path_factory):
    """(run directory, data set): 1 epoch with 2 inferred inputs, and its posterior.h5 of 20 samples: about 3 s."""
    run_dir = tmp_path_factory.mktemp("run_with_inputs")
    pyro.clear_param_store()
    config = LFADSConfig(gen_dim=16, fac_dim=4, ic_enc_dim=8, ci_enc_dim=8, con_dim=8, co_dim=2, batch_size=16,
                         max_epochs=1, posterior_samples=20)
    fit(tiny_lorenz, config, run_dir, progress=False)
    write_posterior(run_dir, tiny_lorenz, progress=False)
    return run_dir, tiny_lorenz


@pytest.mark.slow
@pytest.mark.parametrize("fitted", ["run_with_inputs", "fitted_tiny_lorenz"])
def test_a_runs_predictive_is_a_pyro_predictive_whose_means_match_posterior_h5(fitted, request):
    run_dir, dataset = request.getfixturevalue(fitted)
    assert isinstance(pyro_lfads.predictive(run_dir, num_samples=10), Predictive)
    written, samples = read_posterior(run_dir, "valid"), pyro_lfads.Run.open(run_dir).config.posterior_samples
    model, guide = pyro_lfads.Run.open(run_dir).fitted()
    batch = split_batch(dataset.valid, slice(None))
    pyro.set_rng_seed(1)
    plain = Predictive(model, guide=guide, num_samples=100, return_sites=["rates"])(batch, 1.0)
    assert_same_mean(plain["rates"], written["output_params"], samples)
    for parallel in (False, True):
        draws = pyro_lfads.predictive(run_dir, num_samples=200, parallel=parallel)(dataset.valid)
        assert sorted(draws) == sorted(["g0", "factors", "rates"] + (["u"] if written["co_means"].shape[2] else []))
        assert_same_mean(draws["rates"], written["output_params"], samples)
        assert_same_mean(draws["factors"], written["factors"], samples)
        assert_same_mean(draws["g0"], written["ic_mean"], 0, spread=torch.as_tensor(written["ic_std"]))
        if "u" in draws:
            assert_same_mean(draws["u"], written["co_means"], samples)


@pytest.mark.slow
def test_a_runs_predictive_refuses_data_of_other_shapes(run_with_inputs):
    run_dir, dataset = run_with_inputs
    predictive = pyro_lfads.predictive(run_dir, num_samples=2)
    fewer = Split(dataset.valid.encod_data[..., :5], dataset.valid.recon_data[..., :5])
    with pytest.raises(InputError, match="data: 5 encoder input neurons, the run was fitted on 20"):
        predictive(fewer)
    with pytest.raises(InputError, match="data: session 1, the run has sessions 0 to 0"):
        predictive(split_batch(dataset.valid, slice(None), session=1))
    with pytest.raises(InputError, match="which: 'best' or 'last'"):
        pyro_lfads.predictive(run_dir, which="first")


def test_a_stitched_pairs_predictive_draws_each_sessions_trials_with_its_read_in_and_read_out(tiny_config):
    model = LFADSModel(tiny_config, [7, 9]).eval()
    guide = LFADSGuide(model, [7, 9]).eval()
    counts = torch.poisson(torch.full((4, 12, 9), 0.3))
    batch = split_batch(Split(counts.numpy(), counts.numpy()), slice(None), session=1)
    for parallel in (False, True):
        draws = pyro_lfads.predictive((model, guide), 3, parallel=parallel)(batch)
        assert draws["rates"].shape == (3, 4, 12, 9) and draws["u"].shape == (3, 4, 12, tiny_config.co_dim)


def test_the_python_functions_take_device_auto_and_refuse_an_unknown_device_in_one_line(run_with_inputs, tmp_path):
    from pyro_lfads.diagnostics.summary import diagnose_run
    from pyro_lfads.fitting.new_data import write_posterior_of
    from pyro_lfads.fitting.posterior import write_posterior

    run_dir, dataset = run_with_inputs
    assert pyro_lfads.predictive(run_dir, num_samples=2, device="auto")(dataset.valid)["rates"].shape[0] == 2
    write_posterior(run_dir, dataset, samples=2, device="auto", progress=False)
    for call in (lambda: write_posterior(run_dir, dataset, device="gpu", progress=False),
                 lambda: write_posterior_of(run_dir, dataset, tmp_path / "new.h5", device="gpu", progress=False),
                 lambda: diagnose_run(run_dir, dataset, device="gpu", progress=False),
                 lambda: pyro_lfads.predictive(run_dir, device="gpu")):
        with pytest.raises(InputError, match=r"^device: 'gpu' is not one of auto, cpu, cuda, cuda:N$"):
            call()
