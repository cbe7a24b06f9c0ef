"""jPCA: a planted rotation is found (plane, frequency, R²), pure decay is not; the skew fit is least squares."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import subspace_angles

from pyro_lfads.analysis.jpca import JPCAResult, fit_skew_symmetric, jpca
from pyro_lfads.analysis.jpca_figure import plot_jpca
from pyro_lfads.errors import InputError

OMEGA = 0.12  # rad per bin
BIN_S = 0.01


def planted(seed=0, n_conditions=40, n_time=60, n_dims=10, noise=0.01, rotate=True):
    """(data (conditions, time, dims), basis (dims, 4)): a rotation (or decay) in basis[:, :2], a decay in [:, 2:]."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(n_dims, 4)))[0]
    t = np.arange(n_time)
    start = 3.0 * rng.normal(size=(n_conditions, 2))
    if rotate:
        cos, sin = np.cos(OMEGA * t), np.sin(OMEGA * t)
        first = np.stack([start[:, :1] * cos - start[:, 1:] * sin, start[:, :1] * sin + start[:, 1:] * cos], -1)
    else:
        first = start[:, None] * np.exp(-t / np.array([[15.0], [30.0]])).T[None]
    decay = 2.0 * rng.normal(size=(n_conditions, 1, 2)) * np.exp(-t / 20.0)[None, :, None]
    latent = np.concatenate([first, decay], axis=-1)
    data = latent @ basis.T + noise * rng.normal(size=(n_conditions, n_time, n_dims)) + rng.normal(size=n_dims)
    return data, basis


@pytest.fixture(scope="module")
def rotation():
    data, basis = planted()
    return data, basis, jpca(data, bin_s=BIN_S)


def test_the_planted_plane_is_found(rotation):
    _, basis, result = rotation
    assert np.degrees(subspace_angles(result.plane, basis[:, :2])).max() < 2.0
    np.testing.assert_allclose(result.plane.T @ result.plane, np.eye(2), atol=1e-10)
    assert result.plane.shape == (10, 2) and result.pcs.shape == (10, 6)


def test_the_planted_frequency_is_found(rotation):
    result = rotation[2]
    assert result.frequency_rad_per_bin == pytest.approx(OMEGA, rel=0.02)
    assert result.frequency_hz == pytest.approx(OMEGA / (2 * np.pi * BIN_S), rel=0.02)
    assert result.bin_s == BIN_S


def test_a_rotation_is_explained_by_the_skew_fit(rotation):
    result = rotation[2]
    assert result.r2_skew > 0.9
    assert result.r2_best >= result.r2_skew
    assert result.r2_best <= 1.0


def test_m_skew_is_skew_symmetric_with_imaginary_eigenvalue_pairs(rotation):
    result = rotation[2]
    np.testing.assert_allclose(result.m_skew, -result.m_skew.T, atol=1e-14)
    values = result.eigenvalues
    assert values.shape == (6,)
    np.testing.assert_allclose(values.real, 0.0, atol=1e-14)
    np.testing.assert_allclose(values[0::2], -values[1::2])
    assert values[0].imag > 0 and np.all(np.diff(np.abs(values.imag[0::2])) <= 0)
    np.testing.assert_allclose(np.sort(np.linalg.eigvals(result.m_skew).imag), np.sort(values.imag), atol=1e-12)
    assert 2 * np.arctan(values[0].imag / 2) == pytest.approx(result.frequency_rad_per_bin)


def test_the_variance_fraction_is_the_planted_planes(rotation):
    data, basis, result = rotation
    centred = (data - data.mean(axis=0)).reshape(-1, data.shape[2])
    centred = centred - centred.mean(axis=0)
    expected = np.sum((centred @ basis[:, :2]) ** 2) / np.sum(centred**2)
    assert result.variance_fraction == pytest.approx(expected, abs=0.01)
    assert 0.5 < result.variance_fraction < 1.0


def test_project_turns_counter_clockwise_and_spreads_the_starts_along_jpc1(rotation):
    data, _, result = rotation
    z = result.project(data)
    assert z.shape == (40, 60, 2)
    turn = z[:, :-1, 0] * np.diff(z[:, :, 1], axis=1) - z[:, :-1, 1] * np.diff(z[:, :, 0], axis=1)
    assert np.mean(turn > 0) > 0.95
    assert np.var(z[:, 0, 0]) >= np.var(z[:, 0, 1])


def test_pure_decay_is_not_explained_by_a_rotation():
    data, _ = planted(rotate=False)
    result = jpca(data)
    assert result.r2_skew < 0.3
    assert result.r2_best > 0.3 + result.r2_skew
    assert result.frequency_hz is None


def test_the_result_is_read_only(rotation):
    result = rotation[2]
    assert isinstance(result, JPCAResult)
    with pytest.raises(ValueError):
        result.plane[0, 0] = 1.0
    with pytest.raises(AttributeError):
        result.r2_skew = 0.0


def test_soft_normalisation_divides_each_dim_by_its_range_plus_the_constant():
    data, basis = planted(n_dims=8)
    result = jpca(data, soft_normalize=5.0, k=4)
    np.testing.assert_allclose(result.scale, np.ptp(data.reshape(-1, 8), axis=0) + 5.0)
    assert jpca(data, k=4).scale.tolist() == [1.0] * 8
    z = result.project(data)
    pre = data / result.scale - result.cross_condition_mean - result.center
    np.testing.assert_allclose(z, pre @ result.plane)


def test_without_mean_subtraction_any_number_of_bins_projects():
    data, _ = planted()
    result = jpca(data, subtract_mean=False, k=4)
    assert result.cross_condition_mean is None and result.m_skew.shape == (4, 4)
    assert result.project(data[:, :7]).shape == (40, 7, 2)
    with pytest.raises(InputError, match="time bins"):
        jpca(data).project(data[:, :7])


def test_fit_skew_symmetric_is_the_least_squares_skew_matrix():
    rng = np.random.default_rng(1)
    states, derivatives = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    m = fit_skew_symmetric(states, derivatives)
    np.testing.assert_allclose(m, -m.T)
    rows, cols = np.triu_indices(4, 1)
    design = np.stack([np.outer(states[:, i], np.eye(4)[j]) - np.outer(states[:, j], np.eye(4)[i])
                       for i, j in zip(rows, cols)], axis=-1).reshape(-1, rows.size)
    free = np.linalg.lstsq(design, derivatives.ravel(), rcond=None)[0]
    np.testing.assert_allclose(m[rows, cols], free, atol=1e-12)
    gradient = states.T @ (derivatives - states @ m)
    np.testing.assert_allclose(gradient - gradient.T, 0.0, atol=1e-10)


def test_fit_skew_symmetric_refuses_mismatched_shapes():
    with pytest.raises(InputError, match="differs"):
        fit_skew_symmetric(np.ones((5, 3)), np.ones((4, 3)))
    with pytest.raises(InputError, match="k >= 2"):
        fit_skew_symmetric(np.ones((5, 1)), np.ones((5, 1)))


@pytest.mark.parametrize("change, message", [
    (lambda x: x[0], "must have 3 axes"),
    (lambda x: np.where(np.arange(10) == 3, np.nan, x), "NaN"),
    (lambda x: x[:, :1], "at least 2 time bins"),
    (lambda x: "abc", "numeric array"),
    (lambda x: x[:, :, :0], "empty axis"),
    (lambda x: np.ones_like(x), "no variance"),
])
def test_bad_data_is_refused(change, message):
    data, _ = planted(n_conditions=5, n_time=8)
    with pytest.raises(InputError, match=message):
        jpca(change(data))


@pytest.mark.parametrize("options, message", [
    ({"k": 5}, "must be even"),
    ({"k": 12}, r"in \[2, 10\]"),
    ({"k": 0}, r"in \[2, 10\]"),
    ({"k": 2.0}, "integer"),
    ({"bin_s": 0.0}, "bin_s"),
    ({"soft_normalize": -1.0}, "soft_normalize"),
])
def test_bad_options_are_refused(options, message):
    data, _ = planted(n_conditions=5, n_time=8)
    with pytest.raises(InputError, match=message):
        jpca(data, **options)


def test_too_few_states_for_the_pcs_are_refused():
    data, _ = planted(n_conditions=1, n_time=4)
    with pytest.raises(InputError, match="fewer than"):
        jpca(data)


def test_project_refuses_other_dims(rotation):
    with pytest.raises(InputError, match="9 dims"):
        rotation[2].project(np.zeros((2, 60, 9)))


def test_plot_jpca_writes_a_png(rotation, tmp_path):
    data, _, result = rotation
    for bin_s in (None, 0.02):
        path = plot_jpca(result, data, tmp_path / f"jpca_{bin_s}.png", bin_s=bin_s)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="bin_s"):
        plot_jpca(result, data, tmp_path / "bad.png", bin_s=-1.0)
