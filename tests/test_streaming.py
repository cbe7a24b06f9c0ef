"""The causal variant and streaming inference: one bin at a time equals the batch causal model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyro_lfads.fitting.batch import Batch
from pyro_lfads.config import CAUSAL_IC_BINS, LFADSConfig
from pyro_lfads.errors import InputError
from pyro_lfads.guides.lfads import LFADSGuide
from pyro_lfads.models.lfads import LFADSModel
from pyro_lfads.extensions.streaming import StreamingLFADS, mean_path, replay_split, split_mean_path
from pyro_lfads.fitting.objective import guide_and_model_traces

ATOL = 1e-5


def _pair(config, n_neurons, n_ext=0, seed=0):
    torch.manual_seed(seed)
    model = LFADSModel(config, n_neurons, n_ext_inputs=n_ext)
    guide = LFADSGuide(model, n_neurons)
    # nonzero biases and initial states, so that a mix-up of any of them shows
    with torch.no_grad():
        for module in (model, guide):
            for name, param in module.named_parameters():
                if "bias" in name or name.endswith("h0"):
                    param.normal_(0.0, 0.3)
    return model.eval(), guide.eval()


def _stream(streamer, x, ext=None):
    """Feed (S, T, N) bin by bin; the rates and factors of every bin, (S, T, N) and (S, T, F)."""
    rates, factors = [], []
    for t in range(x.shape[1]):
        out = streamer.step(x[:, t], None if ext is None else ext[:, t])
        rates.append(out.rates.clone())
        factors.append(out.factors.clone())
    return torch.stack(rates, 1), torch.stack(factors, 1)


def _truncated(model, guide, x, ext, t, session):
    """The batch causal model's outputs at bin t for the trials cut after bin t."""
    cut = Batch(x[:, : t + 1], x[:, : t + 1], None if ext is None else ext[:, : t + 1], t + 1, session=session)
    path = mean_path(model, guide, cut)
    return path["rates"][:, t], path["factors"][:, t]


def _check_equal_to_batch(model, guide, x, ext=None, session=0):
    streamer = StreamingLFADS(model, guide, streams=x.shape[0], session=session)
    rates, factors = _stream(streamer, x, ext)
    batch = Batch(x, x, ext, x.shape[1], session=session)
    path = mean_path(model, guide, batch)
    window = model.config.ic_window
    # from the end of the initial-condition window on: the batch causal model on the whole trial
    torch.testing.assert_close(rates[:, window - 1:], path["rates"][:, window - 1:], atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(factors[:, window - 1:], path["factors"][:, window - 1:], atol=ATOL, rtol=1e-4)
    # inside it: the batch causal model on the trial so far
    for t in range(window - 1):
        want_rates, want_factors = _truncated(model, guide, x, ext, t, session)
        torch.testing.assert_close(rates[:, t], want_rates, atol=ATOL, rtol=1e-4)
        torch.testing.assert_close(factors[:, t], want_factors, atol=ATOL, rtol=1e-4)


def _counts(n_trials, n_time, n_neurons, seed=0, rate=0.6):
    gen = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((n_trials, n_time, n_neurons), rate), generator=gen)


@pytest.mark.parametrize("co_dim, ci_lag", [(1, 1), (2, 1), (0, 1), (2, 0), (2, 3)])
def test_streaming_equals_batch_causal_model(tiny_config, co_dim, ci_lag):
    config = tiny_config.replace(causal=True, co_dim=co_dim, ci_lag=ci_lag)
    model, guide = _pair(config, 9)
    _check_equal_to_batch(model, guide, _counts(4, 25, 9))


@pytest.mark.parametrize("window", [1, 3, 12])
def test_streaming_equals_batch_for_any_ic_window(tiny_config, window):
    config = tiny_config.replace(causal=True, ic_enc_seq_len=window)
    model, guide = _pair(config, 6, seed=window)
    _check_equal_to_batch(model, guide, _counts(2, 20, 6, seed=window))


def test_streaming_with_external_inputs(tiny_config):
    config = tiny_config.replace(causal=True)
    model, guide = _pair(config, 5, n_ext=3)
    x = _counts(3, 15, 5)
    ext = torch.randn(3, 15, 3, generator=torch.Generator().manual_seed(1))
    _check_equal_to_batch(model, guide, x, ext)


@pytest.mark.parametrize("likelihood", ["gaussian", "zig", "negbinom"])
def test_streaming_with_other_likelihoods(tiny_config, likelihood):
    config = tiny_config.replace(causal=True, likelihood=likelihood)
    model, guide = _pair(config, 5)
    _check_equal_to_batch(model, guide, _counts(2, 12, 5))


def test_streaming_a_session_of_a_stitched_model(tiny_config):
    config = tiny_config.replace(causal=True)
    torch.manual_seed(0)
    model = LFADSModel(config, [4, 7])
    guide = LFADSGuide(model, [4, 7])
    model.eval(), guide.eval()
    _check_equal_to_batch(model, guide, _counts(2, 14, 7), session=1)


def test_streams_started_at_different_times(tiny_config):
    """Each stream's trial may start at any bin: its outputs are those of its own trial."""
    config = tiny_config.replace(causal=True, ic_enc_seq_len=4)
    model, guide = _pair(config, 6)
    x = _counts(3, 30, 6)
    starts = [0, 7, 2]
    streamer = StreamingLFADS(model, guide, streams=3)
    got = torch.zeros(3, 30, 6)
    for b in range(30):
        for s, start in enumerate(starts):
            if b == start:
                streamer.reset([s])
        counts = torch.stack([x[s, b - start] if b >= start else torch.zeros(6) for s, start in enumerate(starts)])
        got[:, b] = streamer.step(counts).rates
    for s, start in enumerate(starts):
        trial = x[s: s + 1, : 30 - start]
        want = mean_path(model, guide, Batch(trial, trial, None, trial.shape[1]))["rates"][0]
        torch.testing.assert_close(got[s, start + 3:], want[3:], atol=ATOL, rtol=1e-4)


def test_reset_starts_the_trial_again(tiny_config):
    model, guide = _pair(tiny_config.replace(causal=True), 5)
    x = _counts(1, 10, 5)
    streamer = StreamingLFADS(model, guide)
    first, _ = _stream(streamer, x)
    streamer.reset()
    again, _ = _stream(streamer, x)
    torch.testing.assert_close(first, again)


def test_the_causal_model_does_not_read_later_bins(tiny_config):
    """Changing bins after t leaves the causal outputs up to t (past the IC window) alone; the
    acausal model's change (so the check can fail)."""
    x = _counts(3, 20, 6)
    later = x.clone()
    later[:, 12:] = _counts(3, 8, 6, seed=5, rate=2.0)
    for causal in (True, False):
        model, guide = _pair(tiny_config.replace(causal=causal), 6)
        before, after = (mean_path(model, guide, Batch(d, d, None, 20))["rates"] for d in (x, later))
        unchanged = torch.allclose(before[:, :12], after[:, :12], atol=1e-6)
        assert unchanged == causal


def test_causal_encoders_are_forward_only(tiny_config):
    model, guide = _pair(tiny_config.replace(causal=True), 6)
    assert not guide.ic_encoder.gru.bidirectional and not guide.ci_encoder.gru.bidirectional
    acausal = _pair(tiny_config, 6)[1]
    assert acausal.ic_encoder.gru.bidirectional


def test_ic_window_defaults():
    assert LFADSConfig(causal=True).ic_window == CAUSAL_IC_BINS
    assert LFADSConfig(causal=True, ic_enc_seq_len=7).ic_window == 7
    assert LFADSConfig().ic_window is None


def test_kl_scales_weigh_each_latent_site(tiny_config, counts_batch):
    config = tiny_config.replace(kl_ic_scale=2.0, kl_co_scale=0.25)
    model = LFADSModel(config, 7)
    guide = LFADSGuide(model, 7)
    model_trace, guide_trace = guide_and_model_traces(model, guide, counts_batch(), kl_scale=0.5)
    for trace in (model_trace, guide_trace):
        assert trace.nodes["g0"]["scale"] == pytest.approx(1.0)
        assert trace.nodes["u"]["scale"] == pytest.approx(0.125)
    assert model_trace.nodes["obs"]["scale"] == 1.0


@pytest.mark.parametrize("key", ["kl_ic_scale", "kl_co_scale"])
def test_kl_scales_must_be_positive(key):
    with pytest.raises(InputError, match=key):
        LFADSConfig(**{key: 0.0})


def test_streaming_refuses_bad_use(tiny_config):
    model, guide = _pair(tiny_config, 5)
    with pytest.raises(InputError, match="causal"):
        StreamingLFADS(model, guide)
    model, guide = _pair(tiny_config.replace(causal=True), 5)
    with pytest.raises(InputError, match="streams"):
        StreamingLFADS(model, guide, streams=0)
    with pytest.raises(InputError, match="session"):
        StreamingLFADS(model, guide, session=3)
    streamer = StreamingLFADS(model, guide, streams=2)
    with pytest.raises(InputError, match=r"expected shape \(2, 5\)"):
        streamer.step(np.zeros((2, 4)))
    with pytest.raises(InputError, match="stream 2"):
        streamer.reset([2])
    ext_model, ext_guide = _pair(tiny_config.replace(causal=True), 5, n_ext=2)
    with pytest.raises(InputError, match="ext_input"):
        StreamingLFADS(ext_model, ext_guide).step(np.zeros((1, 5)))


@pytest.mark.slow
def test_a_fitted_causal_run_streams_its_offline_outputs(tiny_lorenz, tmp_path):
    """From a run directory (a short real fit): the streamer reproduces the offline mean path of the
    validation trials, numpy counts in."""
    from pyro_lfads.fitting.train import fit

    config = LFADSConfig(gen_dim=16, fac_dim=4, ic_enc_dim=8, ci_enc_dim=8, con_dim=8, batch_size=32,
                         kl_ramp_steps=10, max_epochs=2, causal=True)
    fit(tiny_lorenz, config, tmp_path / "run", progress=False)
    streamer = StreamingLFADS.from_run(tmp_path / "run", streams=4)
    offline = split_mean_path(streamer.model, streamer.guide, tiny_lorenz.valid)["rates"][:4]
    counts = tiny_lorenz.valid.encod_data[:4].astype(np.float32)
    online = np.stack([streamer.step(counts[:, t]).rates.numpy().copy() for t in range(counts.shape[1])], 1)
    window = config.ic_window
    np.testing.assert_allclose(online[:, window - 1:], offline[:, window - 1:], rtol=1e-4, atol=ATOL)


def test_replay_split_is_the_streamer_on_every_trial(tiny_config):
    """replay_split: the streamed bins are a streamer's outputs; the forward bins are the batch causal
    model's predictions (no later counts exist to stream)."""
    from pyro_lfads.data import Split

    config = tiny_config.replace(causal=True, ic_enc_seq_len=4)
    model, guide = _pair(config, 5)
    counts = _counts(3, 16, 5).numpy()
    split = Split(encod_data=counts[:, :12], recon_data=counts)
    replayed = replay_split(model, guide, split)
    streamed, _ = _stream(StreamingLFADS(model, guide, streams=3), torch.as_tensor(counts[:, :12]))
    np.testing.assert_allclose(replayed["rates"][:, :12], streamed.numpy(), rtol=1e-4, atol=ATOL)
    batch = split_mean_path(model, guide, split)["rates"]
    np.testing.assert_allclose(replayed["rates"][:, 12:], batch[:, 12:])
    assert not np.allclose(replayed["rates"][:, :3], batch[:, :3], atol=1e-4)  # inside the window: online


@pytest.mark.parametrize("co_dim", [0, 2])
def test_streaming_a_model_with_a_learned_initial_map(tiny_config, co_dim):
    """g0_map: the streamer folds the generator's W_0 g0 + b_0 into its initial condition (weights moved off
    the identity, so that the map matters)."""
    config = tiny_config.replace(causal=True, co_dim=co_dim, g0_map=True)
    model, guide = _pair(config, 7, seed=3)
    with torch.no_grad():
        model.generator.initial_map.weight.add_(0.3 * torch.randn_like(model.generator.initial_map.weight))
        model.generator.initial_map.bias.add_(0.2)
    _check_equal_to_batch(model, guide, _counts(3, 20, 7))
