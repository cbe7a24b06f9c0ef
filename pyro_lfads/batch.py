"""What one SVI step sees: a ``Batch`` of trials as tensors, and batch iteration."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import torch

from .data import Split


@dataclass(frozen=True)
class Batch:
    """Trials for one step of the model and guide.

    Attributes:
        encod_data: (B, T_enc, N_enc) what the encoders read.
        recon_data: (B, T, N) what the model scores; None to simulate.
        ext_input: (B, T, E) observed inputs to the generator, or None.
        n_time: T, the bins the generator runs (recon_data's when present).
        recon_weight: (B, T, N) weight of each entry of recon_data in the
            likelihood, 0 for unscored entries; None weighs all by 1 (see
            :mod:`pyro_lfads.masking`).
    """

    encod_data: torch.Tensor
    recon_data: torch.Tensor | None
    ext_input: torch.Tensor | None
    n_time: int
    recon_weight: torch.Tensor | None = None

    @property
    def n_trials(self) -> int:
        return int(self.encod_data.shape[0])

    def repeat_trials(self, times: int) -> "Batch":
        """Each trial ``times`` times in a row: trial i becomes rows i*times .. i*times+times-1."""
        def rep(x):
            return None if x is None else x.repeat_interleave(times, dim=0)
        return Batch(rep(self.encod_data), rep(self.recon_data), rep(self.ext_input), self.n_time,
                     rep(self.recon_weight))

    def replace(self, **changes) -> "Batch":
        """A copy with some fields changed."""
        return replace(self, **changes)


def split_batch(split: Split, index, device: torch.device | str = "cpu", time_bins: int | None = None) -> Batch:
    """The trials ``index`` (array, list or slice) of ``split`` as a Batch on ``device``.

    ``time_bins`` keeps the first bins of each trial (the config's time_bins).
    """
    def tensor(x, limit):
        if x is None:
            return None
        return torch.as_tensor(np.ascontiguousarray(x[index][:, :limit]), dtype=torch.float32, device=device)

    recon = tensor(split.recon_data, time_bins)
    encod = tensor(split.encod_data, time_bins)
    ext = tensor(split.ext_input, time_bins)
    weight = tensor(split.recon_mask, time_bins)  # scored entries weigh 1, the others 0
    return Batch(encod, recon, ext, int(recon.shape[1]), weight)


def iterate_batches(split: Split, batch_size: int, generator: torch.Generator | None,
                    device: torch.device | str = "cpu", time_bins: int | None = None) -> Iterator[Batch]:
    """Batches covering every trial once; shuffled with ``generator``, in order when None."""
    n = split.n_trials
    order = torch.randperm(n, generator=generator).numpy() if generator is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield split_batch(split, np.sort(order[start:start + batch_size]), device, time_bins)
