"""The fused recurrences (blocks/fused_gru.py, blocks/fused_controller.py) against the readable code:
the same values and gradients, with the clip binding, dropout on, and in every model variant."""

from __future__ import annotations

import pytest
import pyro
import torch
from pyro.infer import Trace_ELBO

from pyro_lfads.blocks.fused_controller import ScanWeights, controller_generator_scan
from pyro_lfads.blocks.fused_gru import gru_sequence
from pyro_lfads.blocks.networks import BidirectionalEncoder, ClippedGRUCell, ForwardEncoder
from pyro_lfads.guides.lfads import LFADSGuide
from pyro_lfads.models.lfads import LFADSModel

DOUBLE = torch.float64


@pytest.mark.parametrize("shape", [(7, 3, 5), (1, 2, 4), (12, 1, 3)])
@pytest.mark.parametrize("clip", [None, 5.0, 0.5])
def test_the_gru_sequence_passes_gradcheck(shape, clip):
    """gru_sequence's hand-written backward against finite differences, in float64, over shapes (bins,
    rows, units), with an initial state beyond the clip (so that a clip of 5 binds at the first bin and
    one of 0.5 at many)."""
    torch.manual_seed(0)
    n_bins, rows, hidden = shape
    x_gates = torch.randn(n_bins, rows, 3 * hidden, dtype=DOUBLE, requires_grad=True)
    h0 = torch.randn(rows, hidden, dtype=DOUBLE) * 8
    weight = torch.randn(3 * hidden, hidden, dtype=DOUBLE, requires_grad=True)
    bias = torch.randn(3 * hidden, dtype=DOUBLE)
    h0[0, 0], bias[hidden] = 40.0, 10.0  # z near 1 keeps this unit's state beyond the clip at the first bin
    h0.requires_grad_(), bias.requires_grad_()
    states = gru_sequence(x_gates, h0, weight, bias, clip)
    if clip is not None:
        assert (states.abs() == clip).any()
    assert torch.autograd.gradcheck(lambda *args: gru_sequence(*args, clip), (x_gates, h0, weight, bias))


@pytest.mark.parametrize("n_inputs, clip", [(0, 5.0), (3, 5.0), (2, 1.0), (2, 0.5)])
def test_the_fused_scan_equals_the_clipped_step_by_step_recurrence(n_inputs, clip):
    """ClippedGRUCell.scan (one autograd node): values and gradients equal T clipped steps, with the clip
    binding at the first step (|h0| up to 3 clip)."""
    torch.manual_seed(0)
    cell = ClippedGRUCell(n_inputs, 16, clip)
    x = torch.randn(5, 30, n_inputs, requires_grad=True)
    h0 = (torch.randn(5, 16) * 3 * clip).requires_grad_()
    assert (h0.abs() > clip).any()
    fused = cell.scan(x, h0)
    cell.fused = False
    plain = cell.scan(x, h0)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    weights = torch.randn_like(plain)
    wrt = [h0, *cell.parameters()] + ([x] if n_inputs else [])
    for a, b in zip(torch.autograd.grad((fused * weights).sum(), wrt, allow_unused=True),
                    torch.autograd.grad((plain * weights).sum(), wrt, allow_unused=True)):
        if b is None:  # weight_ih of a cell without inputs
            continue
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n_inputs, clip", [(0, 5.0), (3, 5.0), (2, 0.5)])
def test_the_cuda_scan_on_torchs_gru_equals_the_plain_recurrence(n_inputs, clip):
    """The scan CUDA runs (bins 2..T in torch's GRU, exact once the first step has clipped) run here on the CPU:
    the same values and gradients as T clipped steps."""
    torch.manual_seed(1)
    cell = ClippedGRUCell(n_inputs, 8, clip, fused=False)
    x = torch.randn(4, 12, n_inputs, requires_grad=True)
    h0 = (torch.randn(4, 8) * 3 * clip).requires_grad_()
    got, want = cell._cudnn_scan(x, h0), cell.scan(x, h0)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    wrt = [h0, cell.weight_hh, cell.bias_hh, cell.bias_ih] + ([x, cell.weight_ih] if n_inputs else [])
    weights = torch.randn_like(want)
    for a, b in zip(torch.autograd.grad((got * weights).sum(), wrt), torch.autograd.grad((want * weights).sum(), wrt)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("encoder", [BidirectionalEncoder, ForwardEncoder])
def test_a_fused_encoder_equals_torchs_gru(encoder):
    """The encoders on gru_sequence (both directions stacked) against torch's own GRU: sequence, final
    state and every gradient."""
    torch.manual_seed(3)
    fused = encoder(6, 9, fused=True)
    plain = encoder(6, 9, fused=False)
    plain.load_state_dict(fused.state_dict())
    with torch.no_grad():
        for p in fused.parameters():
            p.add_(0.3 * torch.randn_like(p))  # initial states and biases away from 0
        plain.load_state_dict(fused.state_dict())
    x = torch.randn(4, 11, 6)
    outputs = [module(x) for module in (fused, plain)]
    weights = [torch.randn_like(t) for t in outputs[0]]
    grads = []
    for module, (sequence, final) in zip((fused, plain), outputs):
        loss = (sequence * weights[0]).sum() + (final * weights[1]).sum()
        grads.append(torch.autograd.grad(loss, list(module.parameters())))
    for a, b in zip(outputs[0], outputs[1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _plain_controller_path(enc, c0, g0, noise, gen_in, mask, con_clip, gen_clip, w: ScanWeights):
    """The scan's recurrence written with ClippedGRUCell-style steps, for autograd to differentiate."""
    def step(x_gates, h_gates, h, clip):
        hidden = h.shape[-1]
        r = torch.sigmoid(x_gates[:, :hidden] + h_gates[:, :hidden])
        z = torch.sigmoid(x_gates[:, hidden: 2 * hidden] + h_gates[:, hidden: 2 * hidden])
        n = torch.tanh(x_gates[:, 2 * hidden:] + r * h_gates[:, 2 * hidden:])
        return (n + z * (h - n)).clamp(-clip, clip)

    c, g, n_in = c0, g0, noise.shape[-1]
    path = [[], [], [], [], []]
    for t in range(enc.shape[0]):
        read = g if mask is None else g * mask[t]
        c = step(enc[t] + read @ w.con_factor_weight.t(), c @ w.con_weight_hh.t() + w.con_bias_hh, c, con_clip)
        post = c @ w.posterior_weight.t() + w.posterior_bias
        loc, scale = post[:, :n_in], (0.5 * post[:, n_in:]).exp()
        u = loc + scale * noise[t]
        g = step(gen_in[t] + u @ w.gen_input_weight.t(), g @ w.gen_weight_hh.t() + w.gen_bias_hh, g, gen_clip)
        for trace, value in zip(path, (c, loc, scale, u, g)):
            trace.append(value)
    return [torch.stack(trace) for trace in path]


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("clips", [(5.0, 5.0), (0.6, 0.4)])
def test_the_controller_scan_equals_autograd_and_passes_gradcheck(with_mask, clips):
    """controller_generator_scan against the same recurrence through autograd (values, gradients) and
    finite differences, in float64, with a dropout mask or none and the clips binding."""
    torch.manual_seed(4)
    n_bins, rows, con, gen, n_in = 6, 3, 4, 5, 2
    enc = torch.randn(n_bins, rows, 3 * con, dtype=DOUBLE, requires_grad=True)
    c0 = (torch.randn(rows, con, dtype=DOUBLE) * 3).requires_grad_()
    g0 = (torch.randn(rows, gen, dtype=DOUBLE) * 3).requires_grad_()
    gen_in = torch.randn(n_bins, rows, 3 * gen, dtype=DOUBLE, requires_grad=True)
    noise = torch.randn(n_bins, rows, n_in, dtype=DOUBLE)
    mask = (torch.rand(n_bins + 1, rows, gen, dtype=DOUBLE) > 0.3) / 0.7 if with_mask else None
    shapes = [(3 * con, con), (3 * con,), (3 * con, gen), (2 * n_in, con), (2 * n_in,), (3 * gen, n_in),
              (3 * gen, gen), (3 * gen,)]
    weights = [(0.5 * torch.randn(shape, dtype=DOUBLE)).requires_grad_() for shape in shapes]

    def fused(enc, c0, g0, gen_in, *weights):
        path = controller_generator_scan(enc, c0, g0, noise, gen_in, mask, *clips, ScanWeights(*weights))
        return path.controller_states, path.loc, path.scale, path.inputs, path.states

    args = (enc, c0, g0, gen_in, *weights)
    got = fused(*args)
    want = _plain_controller_path(enc, c0, g0, noise, gen_in, mask, *clips, ScanWeights(*weights))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    assert (got[0].abs() == clips[0]).any() and (got[4].abs() == clips[1]).any()
    cotangents = [torch.randn_like(t) for t in got]
    for a, b in zip(torch.autograd.grad(sum((t * w).sum() for t, w in zip(got, cotangents)), args),
                    torch.autograd.grad(sum((t * w).sum() for t, w in zip(want, cotangents)), args)):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(fused, args)


VARIANTS = {
    "default": dict(),
    "dropout": dict(dropout=0.3),
    "lag 0": dict(ci_lag=0),
    "causal": dict(causal=True),
    "clip binding": dict(cell_clip=0.5),
    "no controller": dict(co_dim=0),
    "g0 map": dict(g0_map=True),
}


@pytest.mark.parametrize("variant", [*VARIANTS, "external inputs", "stitched"])
def test_the_fused_path_gives_the_plain_paths_elbo_and_gradients(variant, tiny_config, counts_batch):
    """One training step's -ELBO and gradients, fused_recurrence on and off, from the same weights and
    the same random draws (noise, dropout masks): equal to float32 tolerance, in every variant."""
    config = tiny_config.replace(**VARIANTS.get(variant, {}))
    sessions = [7, 9] if variant == "stitched" else [7]
    n_ext = 2 if variant == "external inputs" else 0
    batch = counts_batch(n_neurons=sessions[-1], n_ext=n_ext, n_time=15)
    if variant == "stitched":
        batch = batch.replace(session=1)
    pairs = []
    for fused in (True, False):
        torch.manual_seed(5)
        pyro.clear_param_store()
        model = LFADSModel(config.replace(fused_recurrence=fused), sessions if len(sessions) > 1 else sessions[0],
                           n_ext_inputs=n_ext)
        guide = LFADSGuide(model, sessions if len(sessions) > 1 else sessions[0])
        if pairs:
            model.load_state_dict(pairs[0][0].state_dict())
            guide.load_state_dict(pairs[0][1].state_dict())
        pyro.set_rng_seed(6)
        loss = Trace_ELBO().differentiable_loss(model.train(), guide.train(), batch, 0.5)
        params = [*model.parameters(), *guide.parameters()]
        pairs.append((model, guide, loss, torch.autograd.grad(loss, params, allow_unused=True)))
    (_, _, fused_loss, fused_grads), (_, _, plain_loss, plain_grads) = pairs
    torch.testing.assert_close(fused_loss, plain_loss, rtol=1e-5, atol=1e-3)
    for a, b in zip(fused_grads, plain_grads):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
