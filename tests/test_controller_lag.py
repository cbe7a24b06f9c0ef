"""The controller's view of the data lags by ``ci_lag`` bins: the inferred input u_t never reads x_t."""

from __future__ import annotations

import pytest
import torch

from pyro_lfads.blocks.networks import BidirectionalEncoder, ForwardEncoder
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.batch import Batch
from pyro_lfads.guides.lfads import LFADSGuide
from pyro_lfads.models.lfads import LFADSModel


def _controller_means(config, x):
    """Per-bin means of q(u_t) (B, T, U) on the posterior-mean path, g0 fixed at 0."""
    torch.manual_seed(0)
    model = LFADSModel(config, x.shape[-1])
    guide = LFADSGuide(model, x.shape[-1]).eval()
    batch = Batch(x, x, None, x.shape[1])
    with torch.no_grad():
        g0 = torch.zeros(x.shape[0], config.gen_dim)
        loc, _, _ = guide.controller_and_generator(guide.encoder_input(batch), g0, batch, sample=False)
    return loc


def test_a_causal_controller_with_a_lag_sets_u_1_to_u_t_without_the_counts_of_bin_t(tiny_config):
    x = torch.poisson(torch.full((3, 12, 7), 1.0, dtype=torch.float32))
    t = 6
    changed = x.clone()
    changed[:, t] += 5.0
    for lag, moves in ((1, False), (0, True)):
        config = tiny_config.replace(ci_lag=lag, causal=True, ic_enc_seq_len=12)
        before, after = _controller_means(config, x), _controller_means(config, changed)
        assert torch.allclose(before[:, : t + 1], after[:, : t + 1]) != moves


@pytest.mark.parametrize("encoder", [BidirectionalEncoder, ForwardEncoder])
def test_with_a_lag_the_encoders_view_at_bin_t_leaves_out_bin_t(encoder):
    torch.manual_seed(2)
    enc = encoder(5, 4)
    x = torch.randn(2, 9, 5)
    changed = x.clone()
    changed[:, 4] += 3.0
    assert torch.equal(enc.lagged_sequence(x, 1)[:, 4], enc.lagged_sequence(changed, 1)[:, 4])
    assert not torch.allclose(enc.lagged_sequence(x, 0)[:, 4], enc.lagged_sequence(changed, 0)[:, 4])


@pytest.mark.parametrize("encoder", [BidirectionalEncoder, ForwardEncoder])
@pytest.mark.parametrize("lag", [0, 1, 2, 30])
def test_the_lagged_sequence_is_the_sequence_moved_by_lag_bins_with_the_initial_states_at_the_ends(encoder, lag):
    torch.manual_seed(1)
    enc = encoder(5, 4)
    with torch.no_grad():
        enc.h0.normal_()
    x = torch.randn(2, 9, 5)
    sequence, _ = enc(x)
    lagged = enc.lagged_sequence(x, lag)
    assert lagged.shape == sequence.shape
    forward, n = sequence[..., :4], 9
    k = min(lag, n)
    torch.testing.assert_close(lagged[:, k:, :4], forward[:, : n - k])
    torch.testing.assert_close(lagged[:, :k, :4], enc.h0[0].expand(2, k, 4))
    if encoder is BidirectionalEncoder:
        backward = sequence[..., 4:]
        torch.testing.assert_close(lagged[:, : n - k, 4:], backward[:, k:])
        torch.testing.assert_close(lagged[:, n - k:, 4:], enc.h0[1].expand(2, k, 4))


def test_a_negative_lag_is_refused_in_one_line(tiny_config):
    with pytest.raises(InputError, match="ci_lag"):
        tiny_config.replace(ci_lag=-1)
