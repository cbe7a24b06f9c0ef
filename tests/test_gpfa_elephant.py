"""Our GPFA against elephant's (the implementation NLB's GPFA baseline uses), on the same binned counts.

Skips when elephant is absent (``pip install elephant``, in the ``dev`` extra)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy.linalg import subspace_angles

from pyro_lfads.evaluation.gpfa import GPFA, VAR_FLOOR_FRACTION

elephant_gpfa = pytest.importorskip("elephant.gpfa", reason="elephant is not installed: pip install elephant")
neo = pytest.importorskip("neo")
pq = pytest.importorskip("quantities")

BIN_S = 0.02


def spike_trains(counts: np.ndarray) -> list[list]:
    """Counts (N, T, q) per bin of BIN_S seconds -> per trial, one neo.SpikeTrain per neuron whose spikes sit
    at the centres of their bins, so elephant's binning gives the counts back."""
    n_time = counts.shape[1]
    centres = (np.arange(n_time) + 0.5) * BIN_S
    return [[neo.SpikeTrain(np.repeat(centres, trial[:, j].astype(int)) * pq.s, t_stop=n_time * BIN_S * pq.s)
             for j in range(trial.shape[1])] for trial in counts]


@pytest.fixture(scope="module")
def counts():
    """Poisson counts (60, 50, 30) from 2 smooth latents."""
    rng = np.random.default_rng(5)
    time = np.arange(50)
    phases = rng.uniform(0, 2 * np.pi, size=(60, 2, 1))
    factors = np.sin(2 * np.pi * time / np.array([40.0, 25.0])[None, :, None] + phases).transpose(0, 2, 1)
    log_rates = factors @ rng.normal(scale=0.8, size=(2, 30)) + np.log(rng.uniform(0.2, 1.0, 30))
    return rng.poisson(np.exp(log_rates)).astype(float)


@pytest.mark.slow
def test_our_gpfa_finds_elephants_latent_subspace_and_rates(counts):
    theirs = elephant_gpfa.GPFA(bin_size=BIN_S * pq.s, x_dim=2, em_max_iters=300, min_var_frac=VAR_FLOOR_FRACTION,
                                verbose=False)  # square-root counts, as ours by default
    their_latents = theirs.fit_transform(spike_trains(counts))  # (N,) of (2, T), orthonormalised
    loading, offset = theirs.params_estimated["C"], theirs.params_estimated["d"]
    ours = GPFA(n_latents=2, max_iter=300).fit(counts)
    angles = np.degrees(subspace_angles(ours.C_, loading))
    assert np.max(angles) < 5.0, angles
    # the smoothed data C E[x_t] + d, from each one's orthonormalised latents
    smoothed_ours = ours.transform(counts) @ np.linalg.svd(ours.C_, full_matrices=False)[0].T + ours.d_
    smoothed_theirs = np.stack([(theirs.params_estimated["Corth"] @ x).T for x in their_latents]) + offset
    assert np.corrcoef(smoothed_ours.ravel(), smoothed_theirs.ravel())[0, 1] > 0.99
    # the timescales agree loosely (the likelihood is flat along the slow one: measured 0.19 s against 0.15 s),
    # and ours, converged, is at least as likely as elephant's parameters under the same objective
    their_taus = BIN_S / np.sqrt(theirs.params_estimated["gamma"])
    np.testing.assert_allclose(np.sort(ours.tau_) * BIN_S, np.sort(their_taus), rtol=0.3)
    as_theirs = copy.deepcopy(ours)
    as_theirs.C_, as_theirs.d_ = loading, offset
    as_theirs.R_, as_theirs.tau_ = np.diag(theirs.params_estimated["R"]).copy(), their_taus / BIN_S
    assert ours.score(counts) >= as_theirs.score(counts) - 1e-3 * abs(as_theirs.score(counts))
