"""A whole GRU recurrence as one autograd node, its backward written out: the fast path of the
encoders and of a generator whose inputs are known in advance.

The update is torch's GRU (and :meth:`~pyro_lfads.blocks.networks.ClippedGRUCell.step`'s):

    [h_r, h_z, h_n] = W_hh h_(t-1) + b_hh,   [x_r, x_z, x_n] = the input gates of bin t
    r = sigmoid(x_r + h_r),  z = sigmoid(x_z + h_z),  n = tanh(x_n + r h_n)
    h_t = n + z (h_(t-1) - n),   clipped to [-clip, clip] where the clip can bind

Why it is faster than autograd through the bins: the forward keeps no graph and writes each bin's
gates into buffers made once; the backward runs the bins in reverse with about a dozen
element-wise operations and one product per bin, on tensors of one bin (which stay in the
processor's cache), and the weight gradients are one product over all bins after the loop.

The clip: with |n| < 1, |h_t| <= max(|h_(t-1)|, 1), so a clip >= 1 can bind at the first bin only
(an initial state beyond it); a clip below 1 can bind at any bin, and is applied at every bin.

Shapes: T bins, B rows (trials), H units.
"""

from __future__ import annotations

import torch


def clipped_bins(clip: float | None, n_bins: int) -> int:
    """How many leading bins the clip can bind at: none without one, the first for a clip >= 1, all below 1."""
    if clip is None:
        return 0
    return 1 if clip >= 1 else n_bins


def clip_in_place(h: torch.Tensor, clip: float, inside: torch.Tensor) -> None:
    """Clamp h to [-clip, clip] in place, keeping where it was inside (the clamp's gradient) in ``inside``."""
    torch.logical_and(h >= -clip, h <= clip, out=inside)
    h.clamp_(-clip, clip)


def gru_update(x_rz: torch.Tensor, x_n: torch.Tensor, h_rz: torch.Tensor, h_n: torch.Tensor, h: torch.Tensor,
               rz: torch.Tensor, r: torch.Tensor, z: torch.Tensor, n: torch.Tensor, out: torch.Tensor) -> None:
    """One GRU update into buffers (all of one bin; the caller slices them, once for all bins):
    from the input gates' r, z part x_rz (B, 2H) and candidate part x_n (B, H), the hidden gates' h_rz and
    h_n likewise, and h = h_(t-1) (B, H) -> r and z into rz (B, 2H) (whose halves are the views r and z),
    the candidate into n (B, H), h_t into out (B, H) (unclipped)."""
    torch.add(x_rz, h_rz, out=rz).sigmoid_()
    torch.addcmul(x_n, r, h_n, out=n).tanh_()
    torch.lerp(n, h, z, out=out)


def gru_update_backward(dh: torch.Tensor, h_prev: torch.Tensor, h_n: torch.Tensor, rz: torch.Tensor,
                        r: torch.Tensor, z: torch.Tensor, n: torch.Tensor, d_h_rz: torch.Tensor,
                        d_h_n: torch.Tensor, d_x_n: torch.Tensor) -> None:
    """The backward of :func:`gru_update` for one bin, into buffers.

    From dh (B, H), the gradient of h_t (after the clip's), and the forward's h_(t-1), h_n, rz (r, z) and n:
    the gradient of the hidden gates W_hh h_(t-1) + b_hh into d_h_rz (B, 2H) and d_h_n (B, H), and that of
    the input gates' candidate part into d_x_n (B, H). The input gates' r and z parts have the hidden
    gates' gradient, d_h_rz. The gradient through z (h_(t-1) - n), dh z, is the caller's.
    """
    torch.mul(torch.addcmul(dh, dh, z, value=-1), 1 - n * n, out=d_x_n)  # dh (1 - z) (1 - n^2)
    torch.mul(d_x_n, r, out=d_h_n)
    outer = torch.cat([d_x_n * h_n, (h_prev - n).mul_(dh)], dim=1)  # what multiplies r' and z'
    torch.mul(outer, torch.addcmul(rz, rz, rz, value=-1), out=d_h_rz)


def gate_views(gates: torch.Tensor, hidden: int) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """gates (T, B, 3H) -> the views of each bin's r, z part (B, 2H) and candidate part (B, H)."""
    return gates[..., : 2 * hidden].unbind(0), gates[..., 2 * hidden:].unbind(0)


def summed_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The sum over bins and rows of a^T b: a (T, B, M), b (T, B, K) -> (M, K)."""
    return a.reshape(-1, a.shape[-1]).t() @ b.reshape(-1, b.shape[-1])


class GRUSequence(torch.autograd.Function):
    """A GRU recurrence over T bins: x_gates (T, B, 3H) (W_ih x_t + b_ih for every bin), h0 (B, H),
    weight_hh (3H, H), bias_hh (3H,), clip (a number or None) -> states h_1:T (T, B, H).

    Each bin's views into the buffers are made once, before the loop (``unbind``): indexing inside the
    loop would cost as much as the arithmetic. Values and gradients equal autograd through T updates
    (``tests/test_fused_recurrence.py``).
    """

    @staticmethod
    def forward(ctx, x_gates, h0, weight_hh, bias_hh, clip):
        n_bins, (rows, hidden) = x_gates.shape[0], h0.shape
        new = x_gates.new_empty
        states, h_gates, rz, n = new(n_bins + 1, rows, hidden), new(n_bins, rows, 3 * hidden), \
            new(n_bins, rows, 2 * hidden), new(n_bins, rows, hidden)
        n_clipped = clipped_bins(clip, n_bins)
        inside = new(n_clipped, rows, hidden, dtype=torch.bool)
        states[0] = h0
        weight_t = weight_hh.t()
        bins = zip(range(n_bins), states.unbind(0), states[1:].unbind(0), h_gates.unbind(0),
                   *gate_views(h_gates, hidden), *gate_views(x_gates, hidden), rz.unbind(0),
                   rz[..., :hidden].unbind(0), rz[..., hidden:].unbind(0), n.unbind(0))
        for t, h, h_next, gates, gates_rz, gates_n, x_rz, x_n, rz_t, r_t, z_t, n_t in bins:
            torch.addmm(bias_hh, h, weight_t, out=gates)
            gru_update(x_rz, x_n, gates_rz, gates_n, h, rz_t, r_t, z_t, n_t, h_next)
            if t < n_clipped:
                clip_in_place(h_next, clip, inside[t])
        ctx.save_for_backward(weight_hh, states, h_gates, rz, n, inside)
        return states[1:]

    @staticmethod
    def backward(ctx, grad):
        weight_hh, states, h_gates, rz, n, inside = ctx.saved_tensors
        n_bins, hidden = n.shape[0], n.shape[-1]
        grad = grad.contiguous()
        dh = grad.clone()  # becomes the gradient of each h_t
        d_gates = torch.empty_like(h_gates)  # of W_hh h_(t-1) + b_hh, then of the input gates
        d_x_n = torch.empty_like(n)
        bins = zip(range(n_bins), dh.unbind(0), previous_bins(dh), previous_bins(grad), states.unbind(0),
                   h_gates[..., 2 * hidden:].unbind(0), rz.unbind(0), rz[..., :hidden].unbind(0),
                   rz[..., hidden:].unbind(0), n.unbind(0), d_gates.unbind(0), *gate_views(d_gates, hidden),
                   d_x_n.unbind(0))
        carry = None
        for t, dh_t, dh_prev, grad_prev, h_prev, h_n, rz_t, r_t, z_t, n_t, d_gates_t, d_rz, d_n, d_x_n_t in \
                reversed(list(bins)):
            if t < inside.shape[0]:
                dh_t.mul_(inside[t])
            gru_update_backward(dh_t, h_prev, h_n, rz_t, r_t, z_t, n_t, d_rz, d_n, d_x_n_t)
            # the gradient of h_(t-1): through z (h_(t-1) - n) and through W_hh h_(t-1)
            carry = torch.addcmul(grad_prev, dh_t, z_t, out=dh_prev) if t else dh_t * z_t
            carry.addmm_(d_gates_t, weight_hh)
        d_weight, d_bias = summed_product(d_gates, states[:-1]), d_gates.sum((0, 1))
        d_gates[..., 2 * hidden:] = d_x_n
        return d_gates, carry, d_weight, d_bias, None


def previous_bins(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """x (T, ...) as T views, that of bin t being x[t - 1] (bin 0's: x[0], a placeholder)."""
    return (x[0], *x[:-1].unbind(0))


def gru_sequence(x_gates: torch.Tensor, h0: torch.Tensor, weight_hh: torch.Tensor, bias_hh: torch.Tensor,
                 clip: float | None = None) -> torch.Tensor:
    """:class:`GRUSequence` on its arguments: x_gates (T, B, 3H), h0 (B, H), weight_hh (3H, H), bias_hh (3H,)
    -> states (T, B, H)."""
    return GRUSequence.apply(x_gates, h0, weight_hh, bias_hh, clip)
