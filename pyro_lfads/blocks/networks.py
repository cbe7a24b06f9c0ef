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

from pyro_lfads.blocks.fused_gru import gru_sequence


def _init_normal(weight: torch.Tensor, fan_in: int) -> None:
    nn.init.normal_(weight, mean=0.0, std=1.0 / math.sqrt(max(fan_in, 1)))


class ClippedGRUCell(nn.Module):
    """A GRU cell whose hidden state is clipped to [-clip, clip] (Methods 1.9).

    Gates follow torch's fused GRU: r and z from [x, h], the candidate
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.
    Inputs are projected separately (:meth:`project_inputs`) so a caller that
    knows all inputs in advance projects them for every time step at once.

    ``fused``: :meth:`scan` runs the whole recurrence as one autograd node
    (:mod:`pyro_lfads.blocks.fused_gru`; torch's cuDNN GRU on CUDA) instead of
    autograd through T steps; values and gradients are the same.
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
        """One update: x_proj (..., 3H) from :meth:`project_inputs`, h (..., H) -> (..., H)."""
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
        """All updates over inputs known in advance: x (B, T, I), h0 (B, H) -> states h_1:T (B, T, H),
        the same values and gradients as T calls of :meth:`forward` (which is what runs when ``fused`` is off)."""
        if not self.fused:
            states = [h0]
            for t in range(x.shape[1]):
                states.append(self.forward(x[:, t], states[-1]))
            return torch.stack(states[1:], dim=1)
        if x.is_cuda or not torch.is_grad_enabled():  # torch's GRU: cuDNN, or the C++ forward for posterior draws
            return self._cudnn_scan(x, h0)
        x_gates = self.project_inputs(x).transpose(0, 1)  # (T, B, 3H)
        return gru_sequence(x_gates, h0, self.weight_hh, self.bias_hh, self.clip).transpose(0, 1)

    def _cudnn_scan(self, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        """:meth:`scan` with bins 2..T in torch's cuDNN GRU. That is exact: h' = (1 - z) n + z h with |n| < 1
        gives |h'| <= max(|h|, 1) per unit, so once the first update has clipped the state into
        [-clip, clip] the clip (>= 1) never binds again; a clip below 1 runs step by step."""
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
        weights = {"weight_ih_l0": weight_ih, "weight_hh_l0": self.weight_hh,
                   "bias_ih_l0": self.bias_ih, "bias_hh_l0": self.bias_hh}
        gru = _torch_gru(max(self.input_size, 1), self.hidden_size)
        later, _ = torch.func.functional_call(gru, weights, (rest, h1.unsqueeze(0).contiguous()))
        return torch.cat([h1.unsqueeze(1), later], dim=1)


class InPlaceGRUStep:
    """The update of :meth:`ClippedGRUCell.step` (or of a one-layer forward torch GRU, unclipped)
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
def _torch_gru(input_size: int, hidden_size: int) -> nn.GRU:
    """A torch GRU of these sizes whose parameters :meth:`ClippedGRUCell._cudnn_scan` replaces by its own."""
    return nn.GRU(input_size, hidden_size, batch_first=True)


def run_torch_gru(gru: nn.GRU, x: torch.Tensor, h0: torch.Tensor, fused: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``gru(x, h0)`` for a one-layer batch-first GRU of D directions: x (B, T, I), h0 (D, B, H) ->
    (sequence (B, T, D H), last states (D, B, H)). With ``fused`` on a CPU and gradients on, each direction's
    weights run in :func:`~pyro_lfads.blocks.fused_gru.gru_sequence`; else torch's own GRU (cuDNN on CUDA; on
    a CPU without gradients, posterior draws, its C++ forward is the faster). The same values and gradients."""
    if not fused or x.is_cuda or not torch.is_grad_enabled():
        return gru(x, h0)
    suffixes = ("_l0", "_l0_reverse") if gru.bidirectional else ("_l0",)
    in_time = x.transpose(0, 1)  # (T, B, I)
    directions = []
    for d, suffix in enumerate(suffixes):
        inputs = in_time if d == 0 else in_time.flip(0)
        x_gates = torch.nn.functional.linear(inputs, getattr(gru, "weight_ih" + suffix), getattr(gru, "bias_ih" + suffix))
        directions.append(gru_sequence(x_gates, h0[d], getattr(gru, "weight_hh" + suffix), getattr(gru, "bias_hh" + suffix)))
    last = torch.stack([states[-1] for states in directions])
    if gru.bidirectional:
        directions[1] = directions[1].flip(0)
    return torch.cat(directions, dim=-1).transpose(0, 1), last


class BidirectionalEncoder(nn.Module):
    """A bidirectional GRU over a trial (Methods 1.3, eqs. 9-10).

    A torch GRU's weights (run by :func:`run_torch_gru`); its states stay in (-1, 1), so the clip of the
    other cells is never reached and is not applied. The initial states of
    both directions are learnable, initialised to 0.
    """

    def __init__(self, input_size: int, hidden_size: int, fused: bool = True):
        super().__init__()
        self.fused = fused
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
        sequence, h_n = run_torch_gru(self.gru, x, h0, self.fused)
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

    def __init__(self, input_size: int, hidden_size: int, fused: bool = True):
        super().__init__()
        self.fused = fused
        self.hidden_size = self.output_size = hidden_size
        self.gru = nn.GRU(input_size, hidden_size, batch_first=True)
        _init_gru(self.gru, input_size, hidden_size)
        self.h0 = nn.Parameter(torch.zeros(1, 1, hidden_size))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, I) -> (sequence (B, T, H), final (B, H), the state after the last bin)."""
        sequence, h_n = run_torch_gru(self.gru, x, self.h0.expand(1, x.shape[0], self.hidden_size).contiguous(),
                                      self.fused)
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


def make_encoder(input_size: int, hidden_size: int, causal: bool, fused: bool = True) -> nn.Module:
    """A :class:`ForwardEncoder` for a causal model, else a :class:`BidirectionalEncoder`."""
    return (ForwardEncoder if causal else BidirectionalEncoder)(input_size, hidden_size, fused)


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
