"""Every figure function writes a readable PNG, with and without its optional arguments."""

from __future__ import annotations

import types

import matplotlib.image as mpimg
import numpy as np
import pytest

from pyro_lfads.diagnostics.check_figures import plot_khat, plot_ppc, plot_training_curves
from pyro_lfads.diagnostics.input_figures import plot_inputs
from pyro_lfads.diagnostics.rate_figures import (plot_factor_pcs, plot_raster, plot_rate_scatter, plot_rates,
                                                 plot_session_factors)

K, T, N = 6, 20, 5


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def counts(rng):
    rates = rng.uniform(0.05, 1.0, size=(K, T, N))
    return rates, rng.poisson(rates)


def assert_png(path):
    assert path.read_bytes()[:4] == b"\x89PNG"
    height, width = mpimg.imread(path).shape[:2]
    assert 200 <= height <= 3000 and 200 <= width <= 3000


@pytest.mark.parametrize("with_truth", [False, True])
def test_plot_raster(tmp_path, counts, with_truth):
    rates, spikes = counts
    extra = np.zeros((K, 4, N), dtype=spikes.dtype)  # spikes longer than rates: only T bins are shown
    path = plot_raster(np.concatenate([spikes, extra], axis=1), rates, tmp_path / "raster.png",
                             truth=rates * 1.1 if with_truth else None, bin_ms=20.0)
    assert_png(path)


@pytest.mark.parametrize("n_factors, with_conditions", [(4, True), (2, False)])  # 2 factors: one panel
def test_plot_factor_pcs(tmp_path, rng, n_factors, with_conditions):
    factors = rng.normal(size=(K, T, n_factors))
    conditions = np.arange(K) % 3 if with_conditions else None
    assert_png(plot_factor_pcs(factors, tmp_path / "pcs.png", conditions=conditions, max_trials=4))


def test_plot_factor_pcs_needs_two_factors(tmp_path, rng):
    with pytest.raises(ValueError, match="at least 2 factors"):
        plot_factor_pcs(rng.normal(size=(K, T, 1)), tmp_path / "pcs.png")


@pytest.mark.parametrize("with_options", [False, True])
def test_plot_inputs(tmp_path, rng, with_options):
    inputs = rng.normal(size=(K, T, 2))
    options = dict(inputs_std=np.full_like(inputs, 0.3), truth=rng.normal(size=(K, T, 3))) if with_options else {}
    assert_png(plot_inputs(inputs, tmp_path / "inputs.png", trials=(0, 1), **options))


def _records(n_epochs, with_sv):
    records = []
    for epoch in range(n_epochs):
        record = dict(epoch=epoch, step=10 * epoch, lr=1e-2 * 0.9 ** epoch, kl_weight=min(1.0, epoch / 3),
                      train_loss=100.0 / (epoch + 1), train_recon=90.0 / (epoch + 1), train_kl=10.0,
                      valid_loss=110.0 / (epoch + 1), valid_recon=95.0 / (epoch + 1), valid_kl=15.0, seconds=0.5)
        if with_sv:
            record["valid_sv_recon"] = 20.0 / (epoch + 1)
        records.append(record)
    return records


@pytest.mark.parametrize("with_sv", [False, True])
def test_plot_training_curves(tmp_path, with_sv):
    assert_png(plot_training_curves(_records(5, with_sv), tmp_path / "curves.png"))


def test_plot_training_curves_empty(tmp_path):
    with pytest.raises(ValueError, match="no training records"):
        plot_training_curves([], tmp_path / "curves.png")


@pytest.mark.parametrize("with_smoothed", [False, True])
def test_plot_rate_scatter(tmp_path, counts, rng, with_smoothed):
    rates, _ = counts
    smoothed = rates + rng.normal(0, 0.1, rates.shape) if with_smoothed else None
    path = plot_rate_scatter(rates, rates * 0.9, tmp_path / "scatter.png", smoothed=smoothed, max_points=100)
    assert_png(path)


def _ppc(rng, is_integer, with_fano, draws=7, conditions=3):
    values = np.arange(5.0) if is_integer else np.linspace(-2, 2, 9)
    count_replicated = rng.dirichlet(np.ones(values.size), size=draws)
    return types.SimpleNamespace(
        values=values, is_integer=is_integer, count_observed=count_replicated.mean(axis=0),
        count_replicated=count_replicated,
        fano_observed=rng.uniform(0.8, 1.5, N) if with_fano else None,
        fano_replicated=rng.uniform(0.8, 1.5, (draws, N)) if with_fano else None,
        psth_observed=rng.uniform(0, 1, (conditions, T, N)),
        psth_replicated=rng.uniform(0, 1, (draws, conditions, T, N)), interval=0.9)


def test_plot_ppc_counts(tmp_path, rng):
    assert_png(plot_ppc(_ppc(rng, is_integer=True, with_fano=True), tmp_path / "ppc.png"))


def test_plot_ppc_real_values_one_condition_two_neurons(tmp_path, rng):
    ppc = _ppc(rng, is_integer=False, with_fano=False, conditions=1)
    ppc.psth_observed, ppc.psth_replicated = ppc.psth_observed[..., :2], ppc.psth_replicated[..., :2]
    assert_png(plot_ppc(ppc, tmp_path / "ppc.png"))


def test_plot_khat(tmp_path, rng):
    assert_png(plot_khat(rng.uniform(-0.2, 1.2, size=40), tmp_path / "khat.png"))


def test_plot_rates_unchanged(tmp_path, counts):
    rates, spikes = counts
    assert_png(plot_rates(spikes, rates, tmp_path / "rates.png", truth=rates, smoothed=rates))


def test_pulse_aligned_inputs_and_input_recovery_figures(tmp_path):
    from pyro_lfads.diagnostics.input_figures import plot_input_recovery, plot_pulse_aligned_inputs

    rng = np.random.default_rng(0)
    inputs = rng.normal(0, 0.1, size=(8, 100, 1))
    pulse_bins = rng.integers(25, 75, size=8)
    inputs[np.arange(8), pulse_bins, 0] -= 3.0  # negative peaks: the figure flips the sign
    path = plot_pulse_aligned_inputs(inputs, pulse_bins * 10.0, tmp_path / "pulses.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    true = rng.normal(size=(8, 100, 1))
    path = plot_input_recovery(-2 * true + rng.normal(0, 0.5, size=true.shape), true, tmp_path / "itb.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("n_sessions", [2, 5])
def test_plot_session_factors(tmp_path, rng, n_sessions):
    base = rng.normal(size=(6, T, 4))
    sessions = [base + 0.05 * rng.normal(size=base.shape) for _ in range(n_sessions)]
    assert_png(plot_session_factors(sessions, tmp_path / "sessions.png", conditions=(0, 2, 9)))
