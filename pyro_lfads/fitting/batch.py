"""What one SVI step sees: a ``Batch`` of trials as tensors, and batch iteration; the noise of posterior
draws seeded trial by trial."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import numpy as np
import torch

from pyro_lfads.data import Split


@dataclass(frozen=True)
class LatentNoise:
    """Standard normal draws the guide turns into its samples of the latents, one row per row of a batch:
    g0 = loc + scale * ``g0``, u_t = loc_t + scale_t * ``u[:, t]``.

    Attributes:
        g0: (B, G) for the initial condition.
        u: (B, T, U) for the inferred inputs; None for a model without them.
    """

    g0: torch.Tensor
    u: torch.Tensor | None


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
            :mod:`pyro_lfads.fitting.masking`).
        session: which recording session the trials come from (0 for
            single-session data): it picks the session's read-in and read-out.
        encoder_repeats: each row of ``encod_data`` stands for this many
            consecutive trials of the other fields (:meth:`repeat_trials`): the
            encoders, deterministic once dropout is off, read each trial once
            and their outputs are repeated.
        noise: the standard normal draws the guide's samples are made of, one row
            per trial (:func:`trial_noise`); None draws fresh ones from torch's
            generator.
        behavior: (B, T, D) behaviour a behaviour model observes
            (:mod:`pyro_lfads.models.behavior`); None when it observes none. The
            guide never reads it.
    """

    encod_data: torch.Tensor
    recon_data: torch.Tensor | None
    ext_input: torch.Tensor | None
    n_time: int
    recon_weight: torch.Tensor | None = None
    session: int = 0
    encoder_repeats: int = 1
    noise: LatentNoise | None = None
    behavior: torch.Tensor | None = None

    @property
    def n_trials(self) -> int:
        return int(self.encod_data.shape[0]) * self.encoder_repeats

    def repeat_trials(self, times: int) -> "Batch":
        """Each trial ``times`` times in a row: trial i becomes rows i*times .. i*times+times-1.

        ``encod_data`` keeps one row per trial (``encoder_repeats`` grows instead): for
        drawing many posterior samples per trial with dropout off. The copy has no ``noise``.
        """
        def rep(x):
            return None if x is None else x.repeat_interleave(times, dim=0)
        return Batch(self.encod_data, rep(self.recon_data), rep(self.ext_input), self.n_time,
                     rep(self.recon_weight), self.session, self.encoder_repeats * times, behavior=rep(self.behavior))

    def replace(self, **changes) -> "Batch":
        """A copy with some fields changed."""
        return replace(self, **changes)


def trial_noise(batch: Batch, samples: int, seed: int, gen_dim: int, co_dim: int) -> LatentNoise:
    """The noise of ``samples`` draws of each trial of ``batch`` (one row per trial), rows trial-major as
    :meth:`Batch.repeat_trials` lays them out (row b * samples + s: draw s of trial b).

    Each trial's noise comes from a generator seeded by ``seed`` and the trial itself (the sha256 of its
    encoder input and external input): a trial gets the same draws whichever trials share its batch, file
    or split, and however the trials are cut into chunks.
    """
    n_time, rows = batch.n_time, []
    for trial in range(batch.encod_data.shape[0]):
        digest = hashlib.sha256(str(seed).encode())
        for array in (batch.encod_data[trial], None if batch.ext_input is None else batch.ext_input[trial]):
            if array is not None:
                digest.update(array.detach().cpu().numpy().astype(np.float32).tobytes())
        generator = torch.Generator().manual_seed(int.from_bytes(digest.digest()[:8], "little") >> 1)
        rows.append(torch.randn(samples, gen_dim + n_time * co_dim, generator=generator))
    noise = torch.cat(rows).to(batch.encod_data.device)
    u = noise[:, gen_dim:].reshape(-1, n_time, co_dim) if co_dim else None
    return LatentNoise(noise[:, :gen_dim], u)


def split_batch(split: Split, index, device: torch.device | str = "cpu", time_bins: int | None = None,
                session: int = 0) -> Batch:
    """The trials ``index`` (array, list or slice) of ``split`` (from session ``session``) as a Batch on ``device``.

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
    behavior = tensor(split.behavior, recon.shape[1])
    return Batch(encod, recon, ext, int(recon.shape[1]), weight, session, behavior=behavior)


def iterate_batches(split: Split, batch_size: int, generator: torch.Generator | None,
                    device: torch.device | str = "cpu", time_bins: int | None = None,
                    session: int = 0) -> Iterator[Batch]:
    """Batches covering every trial once; shuffled with ``generator``, in order when None."""
    for index in _batch_indices(split.n_trials, batch_size, generator):
        yield split_batch(split, index, device, time_bins, session)


def trial_chunks(split: Split, *, max_rows: int, repeats: int = 1, device: torch.device | str = "cpu",
                 time_bins: int | None = None, session: int = 0) -> Iterator[tuple[slice, Batch]]:
    """(trial slice, Batch) for consecutive chunks of ``split``'s trials, in order, each trial
    ``repeats`` times in a row (:meth:`Batch.repeat_trials`: its encoders read it once), at most
    ``max_rows`` rows per batch (at least one trial). For passes over whole splits with bounded
    memory: posterior draws, importance weights, mean paths."""
    chunk = max(1, max_rows // repeats)
    for start in range(0, split.n_trials, chunk):
        trials = slice(start, min(start + chunk, split.n_trials))
        batch = split_batch(split, trials, device, time_bins, session)
        yield trials, batch if repeats == 1 else batch.repeat_trials(repeats)


def iterate_session_batches(splits: Sequence[Split], batch_size: int, generator: torch.Generator | None,
                            device: torch.device | str = "cpu", time_bins: int | None = None) -> Iterator[Batch]:
    """Batches covering every trial of every session once, each batch from one session (Methods 1.8).

    Each session's trials are cut into batches as :func:`iterate_batches`
    does; with ``generator`` the batches of all sessions are then visited in
    a shuffled order, so consecutive steps move different sessions' read-ins
    and read-outs while the shared parameters move at every step. Without
    it, session by session, in order. One session gives exactly
    :func:`iterate_batches`'s batches.
    """
    if len(splits) == 1:
        yield from iterate_batches(splits[0], batch_size, generator, device, time_bins)
        return
    jobs = [(session, index) for session, split in enumerate(splits)
            for index in _batch_indices(split.n_trials, batch_size, generator)]
    order = torch.randperm(len(jobs), generator=generator).tolist() if generator is not None else range(len(jobs))
    for job in order:
        session, index = jobs[job]
        yield split_batch(splits[session], index, device, time_bins, session)


def _batch_indices(n_trials: int, batch_size: int, generator: torch.Generator | None) -> list[np.ndarray]:
    """Sorted trial indices of consecutive batches of a permutation (identity when ``generator`` is None)."""
    order = torch.randperm(n_trials, generator=generator).numpy() if generator is not None else np.arange(n_trials)
    return [np.sort(order[start:start + batch_size]) for start in range(0, n_trials, batch_size)]
