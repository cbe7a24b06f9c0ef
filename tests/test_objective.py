"""The objective module: its loss is Pyro's Trace_ELBO / TraceMeanField_ELBO estimator, its terms and weights add up."""

from __future__ import annotations

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from pyro_lfads.fitting import objective
from pyro_lfads.fitting.batch import trial_chunks
from pyro_lfads.data import Split
from pyro_lfads.guides.lfads import LFADSGuide
from pyro_lfads.models.lfads import LFADSModel


@pytest.mark.parametrize("mean_field, pyro_elbo", [(False, Trace_ELBO), (True, TraceMeanField_ELBO)])
@pytest.mark.parametrize("co_dim", [0, 2])
def test_negative_elbo_is_pyros_estimator_value_and_gradient(tiny_config, counts_batch, mean_field, pyro_elbo, co_dim):
    config = tiny_config.replace(co_dim=co_dim, dropout=0.0)
    batch = counts_batch()
    model = LFADSModel(config, 7)
    guide = LFADSGuide(model, 7)
    params = list(model.parameters()) + list(guide.parameters())
    pyro.set_rng_seed(3)
    ours = objective.negative_elbo(*objective.guide_and_model_traces(model, guide, batch, 0.3), mean_field=mean_field)
    pyro.set_rng_seed(3)
    theirs = pyro_elbo().differentiable_loss(model, guide, batch, 0.3)
    torch.testing.assert_close(ours, theirs)
    for a, b in zip(torch.autograd.grad(ours, params, allow_unused=True),
                    torch.autograd.grad(theirs, params, allow_unused=True)):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_the_mean_field_loss_uses_the_analytic_kl_of_g0(tiny_config, counts_batch):
    model = LFADSModel(tiny_config.replace(co_dim=0), 7).eval()
    guide = LFADSGuide(model, 7).eval()
    traces = objective.guide_and_model_traces(model, guide, counts_batch())
    model_trace, guide_trace = traces
    sampled = objective.negative_elbo(*traces)
    analytic = objective.negative_elbo(*traces, mean_field=True)
    kl = torch.distributions.kl_divergence(guide_trace.nodes["g0"]["fn"], model_trace.nodes["g0"]["fn"])
    recon = -model_trace.nodes["obs"]["log_prob_sum"]
    torch.testing.assert_close(analytic, recon + tiny_config.kl_ic_scale * kl.sum())
    assert not torch.isclose(sampled, analytic)


def test_terms_and_importance_weights_add_up_to_the_unannealed_elbo(tiny_config, counts_batch):
    model = LFADSModel(tiny_config.replace(kl_ic_scale=1.0, kl_co_scale=1.0), 7).eval()
    guide = LFADSGuide(model, 7).eval()
    model_trace, guide_trace = objective.guide_and_model_traces(model, guide, counts_batch(), 0.2)
    recon, kl = objective.elbo_terms(model_trace, guide_trace)
    log_w = objective.log_importance_weights(model_trace, guide_trace)
    assert log_w.shape == (5,)
    torch.testing.assert_close(log_w.sum(), torch.tensor(-(recon + kl)), rtol=1e-5, atol=1e-3)
    # the annealed loss (kl_scale 0.2) scales the KL part only
    annealed = objective.negative_elbo(model_trace, guide_trace)
    torch.testing.assert_close(annealed, torch.tensor(recon + 0.2 * kl), rtol=1e-5, atol=1e-3)


def test_trial_chunks_cover_every_trial_once_in_order_with_repeats():
    counts = torch.arange(10 * 3 * 2, dtype=torch.float32).reshape(10, 3, 2).numpy()
    split = Split(counts, counts)
    seen = []
    for trials, batch in trial_chunks(split, max_rows=9, repeats=4):
        assert batch.n_trials == 4 * (trials.stop - trials.start) <= 9
        torch.testing.assert_close(batch.recon_data[::4], torch.as_tensor(counts[trials]))
        seen.extend(range(trials.start, trials.stop))
    assert seen == list(range(10))
    assert [t for t, _ in trial_chunks(split, max_rows=3, repeats=5)][-1] == slice(9, 10)  # one trial at least
