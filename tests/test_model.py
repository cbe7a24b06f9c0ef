"""The generative program, the guide and the custom distributions."""

from __future__ import annotations

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

from pyro_lfads.blocks.distributions import AR1Process, PathNormal
from pyro_lfads.guides.lfads import LFADSGuide
from pyro_lfads.models.lfads import GENERATOR_RUN, GeneratorRun, LFADSModel
from pyro_lfads.fitting.objective import guide_and_model_traces


traced = guide_and_model_traces


@pytest.mark.parametrize("co_dim,n_ext", [(2, 0), (0, 0), (2, 3), (0, 3)])
def test_model_sites_and_shapes(tiny_config, co_dim, n_ext, counts_batch):
    cfg = tiny_config.replace(co_dim=co_dim)
    batch = counts_batch(n_trials=5, n_time=12, n_neurons=7, n_ext=n_ext)
    model = LFADSModel(cfg, n_neurons=7, n_ext_inputs=n_ext)
    guide = LFADSGuide(model, n_encod_neurons=7)
    model_trace, guide_trace = traced(model, guide, batch)
    nodes = model_trace.nodes
    assert nodes["g0"]["value"].shape == (5, cfg.gen_dim)
    assert nodes["obs"]["value"].shape == (5, 12, 7) and nodes["obs"]["is_observed"]
    assert nodes["factors"]["value"].shape == (5, 12, cfg.fac_dim)
    assert nodes["rates"]["value"].shape == (5, 12, 7)
    assert nodes["gen_states"]["value"].shape == (5, 12, cfg.gen_dim)
    for name in ("factors", "rates"):
        assert nodes[name]["infer"].get("_deterministic")
    if co_dim:
        assert nodes["u"]["value"].shape == (5, 12, co_dim)
        assert set(guide_trace.stochastic_nodes) - {"trials"} == {"g0", "u"}
    else:
        assert "u" not in nodes
        assert set(guide_trace.stochastic_nodes) - {"trials"} == {"g0"}
        assert not hasattr(guide, "controller")
    assert torch.isfinite(model_trace.log_prob_sum())


def test_rates_positive_and_factor_readout_row_normalised(tiny_config, counts_batch):
    model = LFADSModel(tiny_config, n_neurons=7)
    with torch.no_grad():
        model.generator.readout.weight.mul_(5.0)
    g = torch.randn(3, tiny_config.gen_dim)
    w = model.generator.readout.weight
    expected = g @ (w / w.norm(dim=1, keepdim=True)).T
    torch.testing.assert_close(model.generator.readout(g), expected)
    rates = poutine.trace(model).get_trace(counts_batch(n_neurons=7), 1.0).nodes["rates"]["value"]
    assert (rates > 0).all()


def test_ar1_log_density_equals_multivariate_normal():
    tau = torch.tensor([3.0, 10.0])
    var = torch.tensor([0.5, 0.1])
    prior = AR1Process(tau, var, n_time=9)
    values = torch.randn(4, 9, 2)
    mvn = torch.distributions.MultivariateNormal(torch.zeros(9), covariance_matrix=prior.covariance())
    expected = mvn.log_prob(values.transpose(-1, -2)).sum(-1)  # (4, 2) summed over dims
    torch.testing.assert_close(prior.log_prob(values), expected, rtol=1e-5, atol=1e-5)


def test_ar1_samples_are_stationary_with_the_right_autocorrelation():
    prior = AR1Process(torch.tensor([5.0]), torch.tensor([0.2]), n_time=30)
    torch.manual_seed(0)
    draws = prior.sample((20000,))[..., 0]  # (20000, 30)
    assert draws.var(0).sub(0.2).abs().max() < 0.02  # same variance at every bin
    lag1 = (draws[:, 1:] * draws[:, :-1]).mean() / 0.2
    assert abs(lag1 - torch.exp(torch.tensor(-1 / 5.0))) < 0.02


def test_path_normal_returns_its_path_and_scores_it():
    loc, scale, path = torch.randn(3, 5, 2), torch.rand(3, 5, 2) + 0.1, torch.randn(3, 5, 2)
    d = PathNormal(loc, scale, path)
    assert d.rsample() is path
    expected = torch.distributions.Normal(loc, scale).log_prob(path).sum((-2, -1))
    torch.testing.assert_close(d.log_prob(path), expected)


def test_model_and_guide_share_one_generator(tiny_config, counts_batch):
    model = LFADSModel(tiny_config, n_neurons=7)
    guide = LFADSGuide(model, n_encod_neurons=7)
    assert guide.generator is model.generator
    model_ids = {id(p) for p in model.parameters()}
    assert not model_ids & {id(p) for p in guide.parameters()}  # the guide holds no copy
    batch = counts_batch(n_neurons=7)
    model_trace, guide_trace = traced(model, guide, batch)
    model_params = {n for n, s in model_trace.nodes.items() if s["type"] == "param"}
    assert "lfads_model$$$generator.cell.weight_hh" in model_params
    # a gradient step through the guide's controller moves the generator the model owns
    loss = Trace_ELBO().differentiable_loss(model, guide, batch, 1.0)
    loss.backward()
    assert model.generator.cell.weight_hh.grad is not None


def test_guide_log_q_u_is_the_density_of_the_path_the_generator_consumed(tiny_config, counts_batch):
    tiny_config = tiny_config.replace(kl_ic_scale=1.0, kl_co_scale=1.0)  # the true ELBO: log_prob unscaled
    model = LFADSModel(tiny_config, n_neurons=7).eval()  # eval: no dropout, so runs are comparable
    guide = LFADSGuide(model, n_encod_neurons=7).eval()
    batch = counts_batch(n_neurons=7)
    model_trace, guide_trace = traced(model, guide, batch)
    u_site = guide_trace.nodes["u"]
    assert torch.equal(model_trace.nodes["u"]["value"], u_site["value"])
    q = u_site["fn"]
    expected = torch.distributions.Normal(q.loc, q.scale).log_prob(u_site["value"]).sum((-2, -1))
    torch.testing.assert_close(u_site["log_prob"], expected)
    # re-running the controller loop with the same noise gives the same path: the locs of step t
    # depend on u_<t through the shared generator, and the model's generator states match
    g0 = guide_trace.nodes["g0"]["value"]
    g, states = g0, []
    for t in range(batch.n_time):
        g = model.generator.step(g, u_site["value"][:, t])
        states.append(g)
    torch.testing.assert_close(torch.stack(states, 1), model_trace.nodes["gen_states"]["value"])


def test_annealing_scales_the_kl_terms_and_nothing_else(tiny_config, counts_batch):
    tiny_config = tiny_config.replace(kl_ic_scale=1.0, kl_co_scale=1.0)  # the ramp alone scales the KL terms
    model = LFADSModel(tiny_config, n_neurons=7).eval()
    guide = LFADSGuide(model, n_encod_neurons=7).eval()
    batch = counts_batch(n_neurons=7)
    losses = {}
    for scale in (1.0, 0.25):
        torch.manual_seed(11)
        model_trace, guide_trace = traced(model, guide, batch, kl_scale=scale)
        for name in ("g0", "u"):
            assert model_trace.nodes[name]["scale"] == scale and guide_trace.nodes[name]["scale"] == scale
        assert model_trace.nodes["obs"]["scale"] == 1.0
        recon = model_trace.nodes["obs"]["log_prob_sum"]
        kl = sum(guide_trace.nodes[n]["log_prob_sum"] - model_trace.nodes[n]["log_prob_sum"] for n in ("g0", "u"))
        kl_unscaled = sum(guide_trace.nodes[n]["unscaled_log_prob"].sum()
                          - model_trace.nodes[n]["unscaled_log_prob"].sum() for n in ("g0", "u"))
        torch.testing.assert_close(kl, scale * kl_unscaled)
        losses[scale] = (recon, kl_unscaled, -(recon - kl))
        torch.manual_seed(11)
        elbo_loss = Trace_ELBO().differentiable_loss(model, guide, batch, scale)
        torch.testing.assert_close(elbo_loss, -(recon - kl))
    torch.testing.assert_close(losses[1.0][0], losses[0.25][0])  # same samples: same reconstruction
    torch.testing.assert_close(losses[1.0][1], losses[0.25][1])
    torch.testing.assert_close(losses[1.0][2] - losses[0.25][2], 0.75 * losses[1.0][1])


def test_ic_encoder_reads_only_its_window(tiny_config, counts_batch):
    config = tiny_config.replace(ic_enc_seq_len=5)
    model = LFADSModel(config, n_neurons=7)
    guide = LFADSGuide(model, 7).eval()
    batch = counts_batch(n_trials=3, n_time=12)
    later = batch.encod_data.clone()
    later[:, 5:] += 3.0  # changes after the window
    earlier = batch.encod_data.clone()
    earlier[:, 4] += 3.0  # a change inside it
    with torch.no_grad():
        base = guide.initial_condition(batch.encod_data)
        for same, other in zip(base, guide.initial_condition(later)):
            torch.testing.assert_close(same, other)
        assert not torch.allclose(base[0], guide.initial_condition(earlier)[0])


@pytest.mark.parametrize("n_ext", [0, 3])
def test_model_reuses_the_guides_generator_run_with_the_same_values_and_gradients(tiny_config, counts_batch, n_ext):
    """The model replaying the guide's g0 and u takes the states the guide computed (the GeneratorRun
    handed over on the u site, no second recurrence) and gets exactly what a second run would give,
    gradients included."""
    config = tiny_config.replace(dropout=0.0)
    batch = counts_batch(n_ext=n_ext)
    model = LFADSModel(config, batch.recon_data.shape[2], n_ext)
    guide = LFADSGuide(model, batch.encod_data.shape[2])
    calls = []
    original_scan = model.generator.cell.scan  # the whole recurrence over inputs known in advance
    model.generator.cell.scan = lambda *args: calls.append(1) or original_scan(*args)

    def loss(reuse: bool):
        pyro.set_rng_seed(1)
        guide_trace = poutine.trace(guide).get_trace(batch, 1.0)
        run = guide_trace.nodes["u"]["infer"][GENERATOR_RUN]
        assert isinstance(run, GeneratorRun)
        assert torch.equal(run.inputs, guide_trace.nodes["u"]["value"])
        assert torch.equal(run.g0, guide_trace.nodes["g0"]["value"])
        if not reuse:  # a guide that hands nothing over: the model runs the generator itself
            guide_trace.nodes["u"]["infer"] = {}
        calls.clear()
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(batch, 1.0)
        model_runs = len(calls)
        elbo = model_trace.log_prob_sum() - guide_trace.log_prob_sum()
        params = list(model.parameters()) + list(guide.parameters())
        grads = torch.autograd.grad(-elbo, params, allow_unused=True)
        return elbo.detach(), model_trace.nodes["rates"]["value"].detach(), grads, model_runs

    elbo_reused, rates_reused, grads_reused, runs_reused = loss(reuse=True)
    elbo_rerun, rates_rerun, grads_rerun, runs_rerun = loss(reuse=False)
    assert runs_reused == 0 and runs_rerun == 1
    torch.testing.assert_close(rates_reused, rates_rerun)
    torch.testing.assert_close(elbo_reused, elbo_rerun)
    for a, b in zip(grads_reused, grads_rerun):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_the_rates_are_made_from_the_factors_the_controller_read(tiny_config, counts_batch):
    """With dropout on (training), the factors f_t that the controller read to choose u_(t+1) are the
    model's ``factors`` site at t, dropout mask and all (not a second readout with a fresh mask). The
    readable loop reads them bin by bin (the fused scan, tested equal to it, reads no factors inside)."""
    config = tiny_config.replace(dropout=0.5, fused_recurrence=False)
    batch = counts_batch(n_time=12)
    model = LFADSModel(config, 7).train()
    guide = LFADSGuide(model, 7).train()
    read = []
    original_factors = model.generator.factors
    model.generator.factors = lambda *args, **kwargs: read.append(original_factors(*args, **kwargs)) or read[-1]
    guide_trace = poutine.trace(guide).get_trace(batch, 1.0)
    read_by_controller = torch.stack(read[1:], 1)  # f_1..f_T after f_0 (from g0); the controller reads f_1..f_(T-1)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(batch, 1.0)
    factors = model_trace.nodes["factors"]["value"]
    torch.testing.assert_close(factors[:, : batch.n_time - 1], read_by_controller[:, : batch.n_time - 1], rtol=0, atol=0)
    readout = model.generator.readout(model_trace.nodes["gen_states"]["value"])
    assert not torch.allclose(factors, readout)  # dropout acted: without it the two would be equal
    rates = model.likelihood(factors).rates
    torch.testing.assert_close(model_trace.nodes["rates"]["value"], rates)


def test_the_generator_and_the_config_exist_once(tiny_config, counts_batch):
    """The guide runs the model's generator and reads the model's config; Pyro's parameter store
    and ``parameters()`` hold every weight once."""
    model = LFADSModel(tiny_config, n_neurons=7)
    guide = LFADSGuide(model, n_encod_neurons=7)
    assert guide.config is model.config and guide.generator is model.generator
    assert not any(name.startswith("model.") or "generator" in name for name, _ in guide.named_parameters())
    assert "model.generator.cell.weight_hh" not in guide.state_dict()
    pyro.clear_param_store()
    traced(model, guide, counts_batch(n_neurons=7))
    store = pyro.get_param_store()
    names = list(store.keys())
    assert len(names) == len(list(model.parameters())) + len(list(guide.parameters()))
    assert len({id(store[name].unconstrained()) for name in names}) == len(names)
    assert sum(name.endswith("generator.cell.weight_hh") for name in names) == 1


def test_repeated_trials_encode_each_trial_once_with_the_same_posterior(tiny_config, counts_batch):
    batch = counts_batch()
    model = LFADSModel(tiny_config, batch.recon_data.shape[2])
    guide = LFADSGuide(model, batch.encod_data.shape[2])
    guide.eval()
    model.eval()
    repeated = batch.repeat_trials(3)
    explicit = batch.replace(encod_data=batch.encod_data.repeat_interleave(3, 0),
                             recon_data=batch.recon_data.repeat_interleave(3, 0))
    assert repeated.encod_data.shape[0] == batch.n_trials and repeated.n_trials == explicit.n_trials == 3 * batch.n_trials
    traces = []
    for b in (repeated, explicit):
        pyro.set_rng_seed(2)
        traces.append(poutine.trace(guide).get_trace(b, 1.0))
    for site in ("g0", "u"):
        torch.testing.assert_close(traces[0].nodes[site]["value"], traces[1].nodes[site]["value"])
        torch.testing.assert_close(traces[0].nodes[site]["fn"].log_prob(traces[0].nodes[site]["value"]),
                                   traces[1].nodes[site]["fn"].log_prob(traces[1].nodes[site]["value"]))


@pytest.mark.parametrize("clip", [5.0, 0.3, None])
def test_the_in_place_step_equals_the_cells_step(clip):
    """InPlaceGRUStep (the streamer's allocation-free step) against ClippedGRUCell.step, and
    against torch's GRU for an encoder (clip None)."""
    from pyro_lfads.blocks.networks import ClippedGRUCell, InPlaceGRUStep

    torch.manual_seed(2)
    x, h = torch.randn(6, 3), torch.randn(6, 16) * 2
    if clip is None:
        module = torch.nn.GRU(3, 16, batch_first=True)
        want = module(x[:, None], h[None])[1][0]
    else:
        module = ClippedGRUCell(3, 16, clip)
        want = module.step(module.project_inputs(x), h)
    with torch.no_grad():
        step = InPlaceGRUStep(module, streams=6)
        step.project(x)
        state = h.clone()
        step.update(state)
    torch.testing.assert_close(state, want.detach(), rtol=1e-5, atol=1e-6)
