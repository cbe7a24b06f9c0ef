"""The jPCA rotation figure (Churchland et al. 2012 Fig. 3; the LFADS paper's Fig. 3): trajectories in the top plane."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from pyro_lfads.analysis.checks import positive_number
from pyro_lfads.analysis.jpca import JPCAResult
from pyro_lfads.diagnostics.drawing import save_png


def plot_jpca(result: JPCAResult, averaged: object, path: str | Path, *, bin_s: float | None = None) -> Path:
    """Draw each condition's trajectory in the top jPCA plane; save a PNG at ``path`` and return ``Path(path)``.

    ``averaged`` is (conditions, time, dims), the data ``result`` was fitted to (or data of the same dims and
    time bins). Each trajectory is coloured by where it starts along jPC1 (red high, green low, as
    Churchland et al.), with a dot at its start and an arrowhead at its end. ``bin_s`` (s per bin) gives
    the title's frequency in Hz; by default the result's own ``bin_s``, else the frequency is in rad/bin.

    Raises:
        InputError: ``averaged`` does not match the fit (see :meth:`JPCAResult.project`), or ``bin_s`` <= 0.
    """
    projected = result.project(averaged)  # (conditions, time, 2)
    bin_s = result.bin_s if bin_s is None else positive_number("bin_s", bin_s)
    start = projected[:, 0, 0]
    span = np.ptp(start)
    shade = (start - start.min()) / span if span > 0 else np.full(start.shape, 0.5)
    cmap = plt.get_cmap("RdYlGn_r")
    fig, ax = plt.subplots(figsize=(5.5, 5.0))
    for trajectory, level in zip(projected, shade):
        color = cmap(level)
        ax.plot(trajectory[:, 0], trajectory[:, 1], color=color, lw=1.2)
        ax.plot(trajectory[0, 0], trajectory[0, 1], "o", color=color, ms=3.5)
        if len(trajectory) > 1:
            ax.annotate("", xy=trajectory[-1], xytext=trajectory[-2],
                        arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.2, "mutation_scale": 12})
    if bin_s is None:
        speed = f"{result.frequency_rad_per_bin:.3g} rad/bin"
    else:
        speed = f"{result.frequency_rad_per_bin / (2.0 * np.pi * bin_s):.3g} Hz"
    ax.set_title(f"top jPCA plane: {100 * result.variance_fraction:.0f}% of variance, {speed}\n"
                 f"R² of dX/dt: skew-symmetric {result.r2_skew:.2f}, unconstrained {result.r2_best:.2f}",
                 fontsize=10)
    ax.set_xlabel("jPC1")
    ax.set_ylabel("jPC2")
    ax.set_aspect("equal", adjustable="datalim")
    colorbar = fig.colorbar(plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(start.min(), start.max())), ax=ax,
                            shrink=0.7)
    colorbar.set_label("jPC1 at the start")
    return save_png(fig, path)
