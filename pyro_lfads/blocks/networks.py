"""Network blocks that the model and the guide share.

Shapes: B trials, T time bins, I inputs, H hidden units, F factors.
Weights are initialised as in Methods 1.9: Normal(0, 1/K) with K the input
dimension of the matrix, biases 0.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn


def _init_normal(weight: torch.Tensor, fan_in: int) -> None:
    nn.init.normal_(weight, mean=0.0, std=1.0 / math.sqrt(max(fan_in, 1)))


class FusedClippedGRUStep(torch.autograd.Function):
    """:meth:`ClippedGRUCell.plain_step` as one autograd node: the forward without autograd's
    bookkeeping, the backward written out (about 15 operations instead of about 30 nodes).

    Shapes: x_proj (B, 3H), h (B, H), weight_hh (3H, H), bias_hh (3H,) -> (B, H).
    """

    @staticmethod
    def forward(ctx, x_proj, h, weight_hh, bias_hh, clip: float):
        hidden = h.shape[-1]
        h_proj = torch.addmm(bias_hh, h, weight_hh.t())
        rz = torch.sigmoid(x_proj[:, : 2 * hidden] + h_proj[:, : 2 * hidden])
        r, z = rz[:, :hidden], rz[:, hidden:]
        h_n = h_proj[:, 2 * hidden:]
        n = torch.tanh(torch.addcmul(x_proj[:, 2 * hidden:], r, h_n))
        h_new = torch.lerp(n, h, z)  # n + z (h - n)
        ctx.save_for_backward(h, weight_hh, rz, n, h_n, h_new)
        ctx.clip = clip
        return h_new.clamp(-clip, clip)

    @staticmethod
    def backward(ctx, grad):
        h, weight_hh, rz, n, h_n, h_new = ctx.saved_tensors
        hidden = h.shape[-1]
        r, z = rz[:, :hidden], rz[:, hidden:]
        grad = grad * ((h_new >= -ctx.clip) & (h_new <= ctx.clip))  # the clamp passes the inside
        grad_n_pre = grad * (1 - z) * (1 - n * n)  # through h_new = (1 - z) n + z h, then tanh
        grad_rz_pre = torch.cat([grad_n_pre * h_n, grad * (h - n)], dim=1) * rz * (1 - rz)
        grad_x_proj = torch.cat([grad_rz_pre, grad_n_pre], dim=1)
        grad_h_proj = torch.cat([grad_rz_pre, grad_n_pre * r], dim=1)
        grad_h = torch.addmm(grad * z, grad_h_proj, weight_hh)
        return grad_x_proj, grad_h, grad_h_proj.t() @ h, grad_h_proj.sum(0), None


class ClippedGRUCell(nn.Module):
    """A GRU cell whose hidden state is clipped to [-clip, clip] (Methods 1.9).

    Gates follow torch's fused GRU: r and z from [x, h], the candidate
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.
    Inputs are projected separately (:meth:`project_inputs`) so a caller that
    knows all inputs in advance projects them for every time step at once.
    """

    def __init__(self, input_size: int, hidden_size: int, clip: float, fused: bool = True):
        super().__init__()
        self.input_size, self.hidden_size, self.clip, self.fused = input_size, hidden_size, clip, fused
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.zeros(3 * hidden_size))
        self.bias_hh = nn.Parameter(torch.zeros(3 * hidden_size))
        _init_normal(self.weight_ih, input_size)
        _init_normal(self.weight_hh, hidden_size)

    def project_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """(..., I) inputs -> (..., 3H) input contributions to the gates."""
        if self.input_size == 0:
            return self.bias_ih.expand(*x.shape[:-1], 3 * self.hidden_size)
        return torch.nn.functional.linear(x, self.weight_ih, self.bias_ih)

    def step(self, x_proj: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One update: x_proj (B, 3H) from :meth:`project_inputs`, h (B, H) -> (B, H).

        Runs :class:`FusedClippedGRUStep` (one autograd node with a hand-written backward) when
        ``fused`` is on and the arguments are 2-D, else :meth:`plain_step`; both give the same values
        and gradients.
        """
        if self.fused and x_proj.dim() == 2 and h.dim() == 2:
            return FusedClippedGRUStep.apply(x_proj, h, self.weight_hh, self.bias_hh, self.clip)
        return self.plain_step(x_proj, h)

    def plain_step(self, x_proj: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """:meth:`step` written out, the reference: torch's autograd differentiates it."""
        h_proj = torch.nn.functional.linear(h, self.weight_hh, self.bias_hh)
        x_r, x_z, x_n = x_proj.chunk(3, dim=-1)
        h_r, h_z, h_n = h_proj.chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h_new = n + z * (h - n)
        return h_new.clamp(-self.clip, self.clip)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One update from raw inputs x (B, I) and state h (B, H)."""
        return self.step(self.project_inputs(x), h)

    def scan(self, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        """All updates over inputs known in advance: x (B, T, I), h0 (B, H) -> states h_1:T (B, T, H).

        The same values and gradients as T calls of :meth:`forward`, but bins 2..T run in
        torch's fused GRU. That is exact: h' = (1 - z) n + z h with |n| < 1 gives
        |h'| <= max(|h|, 1) per unit, so once the first update has clipped the state into
        [-clip, clip] the clip (>= 1) never binds again. A clip below 1 can bind at any
        step, and then every step runs here one by one.
        """
        h1 = self.forward(x[:, 0], h0)
        if x.shape[1] == 1 or self.clip < 1:
            states = [h1]
            for t in range(1, x.shape[1]):
                states.append(self.forward(x[:, t], states[-1]))
            return torch.stack(states, dim=1)
        rest = x[:, 1:]
        weight_ih = self.weight_ih
        if self.input_size == 0:  # torch's GRU needs an input: one column of zeros, weighted 0
            rest = rest.new_zeros(*rest.shape[:-1], 1)
            weight_ih = weight_ih.new_zeros(3 * self.hidden_size, 1)
        fused = _fused_gru(max(self.input_size, 1), self.hidden_size)
        weights = {"weight_ih_l0": weight_ih, "weight_hh_l0": self.weight_hh,
                   "bias_ih_l0": self.bias_ih, "bias_hh_l0": self.bias_hh}
        later, _ = torch.func.functional_call(fused, weights, (rest, h1.unsqueeze(0).contiguous()))
        return torch.cat([h1.unsqueeze(1), later], dim=1)


class InPlaceGRUStep:
    """The update of :meth:`ClippedGRUCell.plain_step` (or of a one-layer forward torch GRU, unclipped)
    for S streams, computed in buffers made once: nothing is allocated per step (online inference,
    :mod:`pyro_lfads.extensions.streaming`). It reads the module's own weights.

    Per step: write the input gates W_ih x + b_ih (S, 3H) into ``x_gates`` (:meth:`project` does it
    for a whole input x (S, I)), then :meth:`update` advances h (S, H) in place.
    """

    def __init__(self, module: "ClippedGRUCell | nn.GRU", streams: int):
        if isinstance(module, ClippedGRUCell):
            weight_ih, weight_hh, self.bias_ih, self.bias_hh = (module.weight_ih, module.weight_hh,
                                                                module.bias_ih, module.bias_hh)
            self.clip = module.clip
        else:
            weight_ih, weight_hh, self.bias_ih, self.bias_hh = (module.weight_ih_l0, module.weight_hh_l0,
                                                                module.bias_ih_l0, module.bias_hh_l0)
            self.clip = None  # the encoders' states stay in (-1, 1)
        hidden = weight_hh.shape[1]
        self.weight_ih_t, self.weight_hh_t = weight_ih.t().contiguous(), weight_hh.t().contiguous()
        self.x_gates = weight_hh.new_zeros(streams, 3 * hidden)
        self._h_gates = weight_hh.new_zeros(streams, 3 * hidden)
        self._x_rz, self._x_n = self.x_gates[:, : 2 * hidden], self.x_gates[:, 2 * hidden:]
        self._h_rz, self._h_n = self._h_gates[:, : 2 * hidden], self._h_gates[:, 2 * hidden:]
        self._r, self._z = self.x_gates[:, :hidden], self.x_gates[:, hidden: 2 * hidden]

    def project(self, x: torch.Tensor) -> None:
        """x_gates <- W_ih x + b_ih for inputs x (S, I)."""
        torch.addmm(self.bias_ih, x, self.weight_ih_t, out=self.x_gates)

    def update(self, h: torch.Tensor) -> None:
        """Advance h (S, H) by one step from the input gates in ``x_gates`` (which it overwrites):
        r, z = sigmoid(x_rz + h_rz), n = tanh(x_n + r h_n), h' = n + z (h - n), clipped."""
        torch.addmm(self.bias_hh, h, self.weight_hh_t, out=self._h_gates)
        self._x_rz.add_(self._h_rz).sigmoid_()
        self._h_n.mul_(self._r)
        self._x_n.add_(self._h_n).tanh_()
        h.sub_(self._x_n).mul_(self._z).add_(self._x_n)
        if self.clip is not None:
            h.clamp_(-self.clip, self.clip)


@functools.lru_cache(maxsize=None)
def _fused_gru(input_size: int, hidden_size: int) -> nn.GRU:
    """A torch GRU of these sizes whose parameters :meth:`ClippedGRUCell.scan` replaces by its own."""
    return nn.GRU(input_size, hidden_size, batch_first=True)


class BidirectionalEncoder(nn.Module):
    """A bidirectional GRU over a trial (Methods 1.3, eqs. 9-10).

    Uses torch's fused GRU; its states stay in (-1, 1), so the clip of the
    other cells is never reached and is not applied. The initial states of
    both directions are learnable, initialised to 0.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.output_size = 2 * hidden_size
        self.gru = nn.GRU(input_size, hidden_size, batch_first=True, bidirectional=True)
        _init_gru(self.gru, input_size, hidden_size)
        self.h0 = nn.Parameter(torch.zeros(2, 1, hidden_size))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, I) -> (sequence (B, T, 2H), final (B, 2H)).

        ``final`` concatenates the forward state after the last bin and the
        backward state after the first bin.
        """
        h0 = self.h0.expand(2, x.shape[0], self.hidden_size).contiguous()
        sequence, h_n = self.gru(x, h0)
        final = torch.cat([h_n[0], h_n[1]], dim=-1)
        return sequence, final

    def lagged_sequence(self, x: torch.Tensor, lag: int) -> torch.Tensor:
        """x (B, T, I) -> (B, T, 2H): at bin t the forward state after bin t - lag and the backward
        state after bin t + lag (each direction's initial state where that bin is outside the trial)."""
        sequence, _ = self(x)
        if lag == 0:
            return sequence
        forward, backward = sequence.split(self.hidden_size, dim=-1)
        return torch.cat([_delayed(forward, self.h0[0], lag), _delayed(backward.flip(1), self.h0[1], lag).flip(1)],
                         dim=-1)


class ForwardEncoder(nn.Module):
    """A forward-only GRU over a trial: the causal model's encoder. State t has read bins 1..t.

    The same interface as :class:`BidirectionalEncoder`; its learnable initial
    state starts at 0.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = self.output_size = hidden_size
        self.gru = nn.GRU(input_size, hidden_size, batch_first=True)
        _init_gru(self.gru, input_size, hidden_size)
        self.h0 = nn.Parameter(torch.zeros(1, 1, hidden_size))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, I) -> (sequence (B, T, H), final (B, H), the state after the last bin)."""
        sequence, h_n = self.gru(x, self.h0.expand(1, x.shape[0], self.hidden_size).contiguous())
        return sequence, h_n[0]

    def lagged_sequence(self, x: torch.Tensor, lag: int) -> torch.Tensor:
        """x (B, T, I) -> (B, T, H): at bin t the state after bin t - lag (the initial state before bin 1)."""
        sequence, _ = self(x)
        return _delayed(sequence, self.h0[0], lag)


def _delayed(sequence: torch.Tensor, first: torch.Tensor, lag: int) -> torch.Tensor:
    """sequence (B, T, H) moved ``lag`` bins later, the first ``lag`` bins filled with ``first`` (1, H)."""
    if lag == 0:
        return sequence
    n_bins = sequence.shape[1]
    fill = first.expand(sequence.shape[0], min(lag, n_bins), sequence.shape[-1])
    return torch.cat([fill, sequence[:, : max(n_bins - lag, 0)]], dim=1)


def _init_gru(gru: nn.GRU, input_size: int, hidden_size: int) -> None:
    """Methods 1.9 initialisation of a torch GRU: Normal(0, 1/fan_in) weights, zero biases."""
    for name, param in gru.named_parameters():
        if name.startswith("weight_ih"):
            _init_normal(param, input_size)
        elif name.startswith("weight_hh"):
            _init_normal(param, hidden_size)
        else:
            nn.init.zeros_(param)


def make_encoder(input_size: int, hidden_size: int, causal: bool) -> nn.Module:
    """A :class:`ForwardEncoder` for a causal model, else a :class:`BidirectionalEncoder`."""
    return (ForwardEncoder if causal else BidirectionalEncoder)(input_size, hidden_size)


class FactorReadout(nn.Module):
    """f = W_fac g with each row of W_fac normalised to unit length (Methods 1.9)."""

    def __init__(self, gen_dim: int, fac_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(fac_dim, gen_dim))
        _init_normal(self.weight, gen_dim)

    def normalized_weight(self) -> torch.Tensor:
        """W_fac (F, H), each row of unit length."""
        return self.weight / self.weight.norm(dim=1, keepdim=True)

    def forward(self, g: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """g (..., H) -> factors (..., F); ``weight``: :meth:`normalized_weight`, when a loop over bins
        has computed it once."""
        return torch.nn.functional.linear(g, self.normalized_weight() if weight is None else weight)


class ReadIn(nn.Module):
    """A session's read-in matrix (Methods 1.8): x (..., N_s) -> W_in x (..., F), no bias.

    ``trainable=False`` keeps W_in as a buffer: saved with the model, never
    moved by the optimiser (after its principal-components initialisation).
    """

    def __init__(self, n_neurons: int, width: int, trainable: bool = True):
        super().__init__()
        weight = torch.empty(width, n_neurons)
        _init_normal(weight, n_neurons)
        if trainable:
            self.weight = nn.Parameter(weight)
        else:
            self.register_buffer("weight", weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, self.weight)
