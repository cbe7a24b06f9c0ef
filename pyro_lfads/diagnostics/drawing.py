"""What the figure modules share: matplotlib's Agg backend, saving a PNG atomically, time axes, quantiles, colours."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pyro_lfads.data.atomic_files import atomic_path  # noqa: E402


def save_png(fig, path: str | Path) -> Path:
    """Lay out, save as PNG (atomically: the whole file or none), close; return the path."""
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def bin_times_s(n_time: int, bin_ms: float) -> np.ndarray:
    """Bin start times in seconds."""
    return np.arange(n_time) * bin_ms / 1000.0


def central_interval(draws: np.ndarray, interval: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower bound, median and upper bound of the central ``interval`` over the first axis."""
    tail = (1.0 - interval) / 2.0
    lower, median, upper = np.quantile(draws, [tail, 0.5, 1.0 - tail], axis=0)
    return lower, median, upper


def category_colors(n: int) -> list:
    """``n`` distinguishable colours: tab10/tab20 when they suffice, else evenly spaced hues."""
    if n <= 20:
        cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
        return [cmap(i) for i in range(n)]
    return [plt.get_cmap("hsv")(i / n) for i in range(n)]
