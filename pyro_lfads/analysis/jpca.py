"""jPCA (Churchland et al. 2012, the LFADS paper's Fig. 3): the plane where condition-averaged dynamics rotate.

Steps, on (conditions, time, dims) condition-averaged factors or rates: optionally soft-normalise each dim
(divide by its range + a constant), optionally subtract the cross-condition mean at each time, keep the top
k principal components, and fit the derivative of the states with a linear map, ``dX = X M`` (states as
rows, derivatives in units per bin), once with any M (``m_best``) and once with M skew-symmetric
(``m_skew``, by closed-form least squares). The eigenvalues of ``m_skew`` come in pairs ±iω; the pair
with the largest ω spans the top rotational plane, whose states turn counter-clockwise from jPC1 to jPC2.

One departure from Churchland et al.'s code: the derivative ``x_{t+1} - x_t`` is paired with the midpoint
state ``(x_t + x_{t+1}) / 2``, not with ``x_t``. For a discrete rotation by θ per bin this makes the
exact fit skew-symmetric, ``M = 2 tan(θ/2) J`` (the Cayley transform), so the angle per bin is recovered
as ``θ = 2 arctan(ω/2)`` without the O(θ²) bias of a forward difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyro_lfads.analysis.checks import positive_number, real_array, whole_number
from pyro_lfads.errors import InputError

_AXES = ("conditions", "time", "dims")


@dataclass(frozen=True, eq=False)
class JPCAResult:
    """The top jPCA plane of condition-averaged data and the fits that found it (k PCs, dims input dims).

    Attributes:
        plane: (dims, 2) orthonormal jPC1, jPC2 in the preprocessed input space (input / ``scale``).
        pcs: (dims, k) orthonormal principal directions the fits were made in.
        center: (dims,) mean of the preprocessed data over conditions and time, removed before projecting.
        scale: (dims,) divisor of the soft normalisation (range + soft_normalize; ones when off).
        cross_condition_mean: (time, dims) the mean over conditions subtracted at each time, or None.
        m_skew: (k, k) skew-symmetric least-squares M of ``dX = X M`` in PC coordinates, 1/bin.
        m_best: (k, k) unconstrained least-squares M, 1/bin.
        r2_skew: fraction of the sum of squares of dX explained by ``X m_skew`` (Churchland's R², uncentred).
        r2_best: the same for ``X m_best`` (>= r2_skew).
        eigenvalues: (k,) complex eigenvalues of ``m_skew``, ±iω pairs, +iω first, largest ω first, 1/bin.
        frequency_rad_per_bin: angle turned per bin in the top plane, 2 arctan(ω/2), radians.
        frequency_hz: that angle in turns per second, or None without ``bin_s``.
        variance_fraction: fraction of the preprocessed data's variance in the top plane (0 to 1).
        bin_s: bin width in seconds, or None.
    """

    plane: np.ndarray
    pcs: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    cross_condition_mean: np.ndarray | None
    m_skew: np.ndarray
    m_best: np.ndarray
    r2_skew: float
    r2_best: float
    eigenvalues: np.ndarray
    frequency_rad_per_bin: float
    frequency_hz: float | None
    variance_fraction: float
    bin_s: float | None

    def project(self, x: object) -> np.ndarray:
        """(conditions, time, 2) projection of (conditions, time, dims) data onto jPC1, jPC2.

        The data go through the fit's own preprocessing (its scale, its cross-condition mean, its center),
        so ``project(averaged)`` gives the fitted trajectories.

        Raises:
            InputError: ``x`` is not finite (conditions, time, dims) with the fit's dims, or, where the fit
                subtracted a cross-condition mean, with its number of time bins.
        """
        array = real_array("x", x, _AXES)
        n_dims = self.plane.shape[0]
        if array.shape[2] != n_dims:
            raise InputError(f"x: has {array.shape[2]} dims, the jPCA fit was made on {n_dims}")
        mean = 0.0
        if self.cross_condition_mean is not None:
            if array.shape[1] != self.cross_condition_mean.shape[0]:
                raise InputError(f"x: has {array.shape[1]} time bins, the jPCA fit subtracted a cross-condition "
                                 f"mean of {self.cross_condition_mean.shape[0]}")
            mean = self.cross_condition_mean
        return (array / self.scale - mean - self.center) @ self.plane


def jpca(averaged: object, *, k: int = 6, subtract_mean: bool = True, soft_normalize: float | None = None,
         bin_s: float | None = None) -> JPCAResult:
    """Fit jPCA to condition-averaged data.

    Args:
        averaged: (conditions, time, dims) condition-averaged factors or rates, finite.
        k: principal components to fit in; even, 2 <= k <= dims.
        subtract_mean: subtract the mean over conditions at each time first (Churchland et al. do).
        soft_normalize: divide each dim by (its range over conditions and time + this), e.g. 5 spikes/s
            for rates; None (the default) leaves the data unscaled.
        bin_s: bin width in seconds (> 0), for ``frequency_hz``; None leaves it None.

    Returns:
        A :class:`JPCAResult`.

    Raises:
        InputError: ``averaged`` is not finite with three axes, has fewer than 2 time bins, too few states
            to fit k PCs, no variance, or no change over time; ``k`` is odd, < 2 or > dims; ``soft_normalize``
            or ``bin_s`` is not > 0.
    """
    x = real_array("averaged", averaged, _AXES)
    n_conditions, n_time, n_dims = x.shape
    if n_time < 2:
        raise InputError(f"averaged: needs at least 2 time bins to take a derivative, got {n_time}")
    k = whole_number("k", k, 2, n_dims)
    if k % 2:
        raise InputError(f"k: must be even (rotations come in planes), got {k}")
    if n_conditions * (n_time - 1) < k:
        raise InputError(f"averaged: {n_conditions} condition(s) x {n_time - 1} time step(s) are fewer than "
                         f"the k = {k} PCs to fit")
    bin_s = None if bin_s is None else positive_number("bin_s", bin_s)
    scale = np.ones(n_dims)
    if soft_normalize is not None:
        scale = np.ptp(x.reshape(-1, n_dims), axis=0) + positive_number("soft_normalize", soft_normalize)
    pre = x / scale
    mean = pre.mean(axis=0) if subtract_mean else None
    if mean is not None:
        pre = pre - mean
    flat = pre.reshape(-1, n_dims)
    center = flat.mean(axis=0)
    centred = flat - center
    total = float(np.sum(centred**2))
    if total == 0.0:
        raise InputError("averaged: has no variance left to analyse (after the options' preprocessing)")
    pcs = np.linalg.svd(centred, full_matrices=False)[2][:k].T
    z = (pre - center) @ pcs  # (conditions, time, k)
    states = (0.5 * (z[:, 1:] + z[:, :-1])).reshape(-1, k)
    derivatives = np.diff(z, axis=1).reshape(-1, k)
    scale_d = float(np.sum(derivatives**2))
    if scale_d == 0.0:
        raise InputError("averaged: does not change over time in its top PCs; there is no dynamics to fit")
    m_skew = fit_skew_symmetric(states, derivatives)
    m_best = np.linalg.lstsq(states, derivatives, rcond=None)[0]
    eigenvalues, plane_pcs = _top_plane(m_skew, z[:, 0])
    omega = float(eigenvalues[0].imag)
    frequency = 2.0 * float(np.arctan(omega / 2.0))
    plane = pcs @ plane_pcs
    return JPCAResult(
        plane=_frozen(plane), pcs=_frozen(pcs), center=_frozen(center), scale=_frozen(scale),
        cross_condition_mean=None if mean is None else _frozen(mean),
        m_skew=_frozen(m_skew), m_best=_frozen(m_best),
        r2_skew=1.0 - float(np.sum((derivatives - states @ m_skew) ** 2)) / scale_d,
        r2_best=1.0 - float(np.sum((derivatives - states @ m_best) ** 2)) / scale_d,
        eigenvalues=_frozen(eigenvalues), frequency_rad_per_bin=frequency,
        frequency_hz=None if bin_s is None else frequency / (2.0 * np.pi * bin_s),
        variance_fraction=float(np.sum((centred @ plane) ** 2)) / total, bin_s=bin_s)


def fit_skew_symmetric(states: object, derivatives: object) -> np.ndarray:
    """(k, k) skew-symmetric M minimising ||derivatives - states M|| (Frobenius), in closed form.

    M has k(k-1)/2 free entries h (M[i, j] = h_p = -M[j, i] for the p-th pair i < j). With
    vec(states M) = (I ⊗ states) H h, the normal equations are ``Hᵀ (I ⊗ C) H h = Hᵀ vec(D)``, where
    C = statesᵀ states and D = statesᵀ derivatives; they are solved by least squares (the minimum-norm h
    where the states do not span k dims).

    Args:
        states: (samples, k) states, one per row.
        derivatives: (samples, k) their derivatives, in units per bin.

    Raises:
        InputError: not finite 2-D arrays of the same shape with k >= 2.
    """
    x = real_array("states", states, ("samples", "k"))
    dx = real_array("derivatives", derivatives, ("samples", "k"))
    if x.shape != dx.shape:
        raise InputError(f"derivatives: shape {dx.shape} differs from the states' {x.shape}")
    k = x.shape[1]
    if k < 2:
        raise InputError(f"states: need k >= 2 dims for a rotation, got {k}")
    rows, cols = np.triu_indices(k, 1)
    basis = np.zeros((k * k, rows.size))  # H: column-major vec(M) of each free entry
    basis[rows + cols * k, np.arange(rows.size)] = 1.0
    basis[cols + rows * k, np.arange(rows.size)] = -1.0
    gram = basis.T @ np.kron(np.eye(k), x.T @ x) @ basis
    target = basis.T @ (x.T @ dx).ravel(order="F")
    free = np.linalg.lstsq(gram, target, rcond=None)[0]
    return (basis @ free).reshape(k, k, order="F")


def _top_plane(m_skew: np.ndarray, initial: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted eigenvalues (k,) of ``m_skew`` and its top plane (k, 2) in PC coordinates.

    The plane is spanned by the real and imaginary parts of the eigenvector of the largest ω, oriented so
    that ``dX = X M`` turns jPC1 towards jPC2, then rotated within itself so that the initial states
    ``initial`` (conditions, k) spread most along jPC1 (Churchland et al.), jPC1's largest entry positive.
    """
    # i M is Hermitian: its eigenvalues mu are real, and M's are -i mu with the same eigenvectors.
    mu, vectors = np.linalg.eigh(1j * m_skew)
    order = np.argsort(-np.abs(mu), kind="stable")
    mu, vectors = mu[order], vectors[:, order]
    if np.abs(mu[0]) <= 1e-12 * max(1.0, np.abs(m_skew).max()):
        raise InputError("averaged: the skew-symmetric fit is zero; the data hold no rotation to find")
    pairs = np.stack([-np.abs(mu[0::2]), np.abs(mu[0::2])], axis=1).ravel()  # -iμ = +i|μ| first
    eigenvalues = -1j * pairs
    top = vectors[:, 0]
    plane = np.linalg.qr(np.stack([top.real, top.imag], axis=1))[0]
    if (plane.T @ m_skew @ plane)[0, 1] < 0:
        plane[:, 1] *= -1.0
    spread = initial @ plane
    _, axes = np.linalg.eigh(np.cov(spread, rowvar=False) if spread.shape[0] > 1 else np.eye(2))
    first = axes[:, -1]
    turned = plane @ np.array([[first[0], -first[1]], [first[1], first[0]]])  # a rotation keeps the turn's sense
    if turned[np.argmax(np.abs(turned[:, 0])), 0] < 0:
        turned = -turned
    return eigenvalues, turned


def _frozen(array: np.ndarray) -> np.ndarray:
    """The array, made read-only so the frozen result cannot be changed in place."""
    array = np.array(array)
    array.setflags(write=False)
    return array
