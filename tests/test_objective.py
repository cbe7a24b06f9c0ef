"""The objective module: the draw Pyro's Trace_ELBO used is kept, its terms and weights add up."""

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


@pytest.mark.parametrize("pyro_elbo", [Trace_ELBO, TraceMeanField_ELBO])
@pytest.mark.parametrize("co_dim", [0, 2])
def test_a_traced_pair_keeps_the_draw_the_elbo_used(tiny_config, counts_batch, pyro_elbo, co_dim):
    config = tiny_config.replace(co_dim=co_dim, dropout=0.0, kl_ic_scale=1.0, kl_co_scale=1.0)
    model = LFADSModel(config, 7)
    pair = objective.TracedPair(model, LFADSGuide(model, 7))
    pyro.set_rng_seed(3)
    loss = pyro_elbo().differentiable_loss(pair.model, pair.guide, counts_batch(), 0.25)
    model_trace, guide_trace = pair.traces()
    recon, kl = objective.elbo_terms(model_trace, guide_trace)
    if pyro_elbo is Trace_ELBO:  # the loss at that draw: reconstruction plus the annealed KL estimate
        torch.testing.assert_close(loss, torch.tensor(recon + 0.25 * kl), rtol=1e-5, atol=1e-3)
    else:  # the analytic KL of g0 replaces its estimate; the reconstruction is that draw's
        kl_g0 = torch.distributions.kl_divergence(guide_trace.nodes["g0"]["fn"], model_trace.nodes["g0"]["fn"]).sum()
        kl_u = (guide_trace.nodes["u"]["log_prob_sum"] - model_trace.nodes["u"]["log_prob_sum"]) if co_dim else 0.0
        torch.testing.assert_close(loss, torch.as_tensor(recon + 0.25 * kl_g0 + kl_u, dtype=loss.dtype),
                                   rtol=1e-5, atol=1e-3)


def test_terms_and_importance_weights_add_up_to_the_unannealed_elbo(tiny_config, counts_batch):
    model = LFADSModel(tiny_config.replace(kl_ic_scale=1.0, kl_co_scale=1.0), 7).eval()
    guide = LFADSGuide(model, 7).eval()
    model_trace, guide_trace = objective.guide_and_model_traces(model, guide, counts_batch(), 0.2)
    recon, kl = objective.elbo_terms(model_trace, guide_trace)
    log_w = objective.log_importance_weights(model_trace, guide_trace)
    assert log_w.shape == (5,)
    torch.testing.assert_close(log_w.sum(), torch.tensor(-(recon + kl)), rtol=1e-5, atol=1e-3)


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
