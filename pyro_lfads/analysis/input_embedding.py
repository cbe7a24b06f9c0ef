"""A 2-D t-SNE embedding of single-trial inferred inputs and how well it separates their labels (the paper's Fig. 6).

Each trial's inferred inputs in a window of bins are flattened to one vector of (bins x inputs) numbers,
each number standardised over trials; t-SNE embeds the vectors in 2-D. The labels' separation is scored
by silhouettes (on the embedding and on the vectors) and by the leave-one-out accuracy of a k-nearest-
neighbour vote on the vectors, to be read against ``chance_accuracy``.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from pyro_lfads.analysis.checks import positive_number, real_array, whole_number
from pyro_lfads.diagnostics.drawing import category_colors, save_png
from pyro_lfads.errors import InputError

#: Most classes drawn with a legend entry each; more are drawn without a legend.
MAX_LEGEND_ENTRIES = 20
#: Most trials embedded with exact t-SNE gradients (O(trials²) memory, faster below this and free of the
#: Barnes-Hut threads' stalls on a loaded machine); more use the Barnes-Hut approximation.
EXACT_TSNE_MAX_TRIALS = 1000


@dataclass(frozen=True, eq=False)
class InputEmbedding:
    """A t-SNE embedding of trials' inferred inputs and scores of how well it separates their labels.

    Attributes:
        embedding: (trials, 2) t-SNE coordinates (arbitrary units).
        labels: (trials,) each trial's label, as given.
        classes: the distinct labels, sorted where they can be, else in order of first appearance.
        silhouette: mean silhouette of the labels in the 2-D embedding (-1 to 1).
        silhouette_high_dim: mean silhouette of the labels on the standardised vectors (-1 to 1).
        knn_accuracy: fraction of trials whose label is the majority of their ``n_neighbors`` nearest other
            trials (standardised vectors, Euclidean; leave-one-out).
        chance_accuracy: fraction of trials in the largest class, what guessing it scores.
        window: (start, stop) the bins used, stop exclusive.
        perplexity: the t-SNE perplexity used.
        n_neighbors: neighbours in the vote.
    """

    embedding: np.ndarray
    labels: np.ndarray
    classes: tuple
    silhouette: float
    silhouette_high_dim: float
    knn_accuracy: float
    chance_accuracy: float
    window: tuple[int, int]
    perplexity: float
    n_neighbors: int


def embed_inputs(inputs: object, labels: object, *, window: tuple[int, int] | None = None,
                 perplexity: float = 30.0, n_neighbors: int = 5, random_state: int = 0) -> InputEmbedding:
    """Embed trials' inferred inputs in 2-D with t-SNE and score how well ``labels`` separate.

    Args:
        inputs: (trials, time, inputs) inferred inputs, e.g. a posterior's ``{split}_gen_inputs``, finite.
        labels: (trials,) a hashable label per trial (condition ids, strings, ...), at least 2 distinct and
            fewer distinct labels than trials.
        window: (start, stop) bins to use, 0 <= start < stop <= time; None uses all bins.
        perplexity: t-SNE perplexity (> 0), capped at (trials - 1) / 3 so that each trial has neighbours.
        n_neighbors: neighbours in the k-nearest-neighbour vote, 1 <= n_neighbors < trials.
        random_state: seed of t-SNE (with ``init="pca"`` the embedding is then reproducible). t-SNE's
            gradients are exact up to ``EXACT_TSNE_MAX_TRIALS`` trials, Barnes-Hut beyond.

    Returns:
        An :class:`InputEmbedding`.

    Raises:
        InputError: ``inputs`` is not finite with three axes, does not vary over trials in the window, or
            its trials do not match ``labels``; labels are unhashable, NaN or of one class only; an option is
            out of range.
    """
    x = real_array("inputs", inputs, ("trials", "time", "inputs"))
    n_trials, n_time, _ = x.shape
    label_list = _label_list(labels, n_trials)
    classes = label_classes(label_list)
    if len(classes) < 2:
        raise InputError(f"labels: all {n_trials} trials have the one label {classes[0]!r}; need 2 or more")
    if len(classes) >= n_trials:
        raise InputError(f"labels: {len(classes)} distinct labels for {n_trials} trials; need fewer labels "
                         "than trials to score their separation")
    start, stop = _window(window, n_time)
    n_neighbors = whole_number("n_neighbors", n_neighbors, 1, n_trials - 1)
    perplexity = min(positive_number("perplexity", perplexity), (n_trials - 1) / 3.0)
    random_state = whole_number("random_state", random_state, 0)
    flat = x[:, start:stop].reshape(n_trials, -1)
    if not np.ptp(flat, axis=0).any():
        raise InputError(f"inputs: every trial is the same in bins [{start}, {stop}); there is nothing to embed")
    vectors = StandardScaler().fit_transform(flat)
    index = {label: code for code, label in enumerate(classes)}
    codes = np.array([index[label] for label in label_list])
    method = "exact" if n_trials <= EXACT_TSNE_MAX_TRIALS else "barnes_hut"
    embedding = TSNE(n_components=2, perplexity=perplexity, init="pca", method=method,
                     random_state=random_state).fit_transform(vectors)
    predicted = KNeighborsClassifier(n_neighbors=n_neighbors).fit(vectors, codes).predict(None)  # leave-one-out
    embedding.setflags(write=False)
    return InputEmbedding(
        embedding=embedding, labels=_label_array(label_list), classes=tuple(classes),
        silhouette=float(silhouette_score(embedding, codes)),
        silhouette_high_dim=float(silhouette_score(vectors, codes)),
        knn_accuracy=float(np.mean(predicted == codes)),
        chance_accuracy=float(np.bincount(codes).max() / n_trials),
        window=(start, stop), perplexity=float(perplexity), n_neighbors=n_neighbors)


def plot_input_embedding(result: InputEmbedding, path: str | Path) -> Path:
    """Scatter the embedding, one colour per label (a legend up to 20 labels); save a PNG, return ``Path(path)``."""
    colors = category_colors(len(result.classes))
    fig, ax = plt.subplots(figsize=(6.0, 5.0))
    for label, color in zip(result.classes, colors):
        mine = np.array([item == label for item in result.labels], dtype=bool)
        ax.scatter(result.embedding[mine, 0], result.embedding[mine, 1], s=14, color=color, label=str(label),
                   alpha=0.85, linewidths=0)
    if len(result.classes) <= MAX_LEGEND_ENTRIES:
        ax.legend(title="label", fontsize=8, loc="best", markerscale=1.5)
    start, stop = result.window
    ax.set_title(f"t-SNE of inferred inputs, bins [{start}, {stop}), {len(result.classes)} labels\n"
                 f"silhouette {result.silhouette:.2f} (2-D), {result.silhouette_high_dim:.2f} (inputs); "
                 f"{result.n_neighbors}-NN accuracy {result.knn_accuracy:.2f} (chance {result.chance_accuracy:.2f})",
                 fontsize=9)
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    return save_png(fig, path)


def _label_list(labels: object, n_trials: int) -> list:
    """The labels as a list of ``n_trials`` hashable, non-NaN items."""
    if isinstance(labels, (str, bytes)) or (isinstance(labels, np.ndarray) and labels.ndim != 1):
        shape = getattr(labels, "shape", None)
        raise InputError(f"labels: must be one label per trial, a sequence of {n_trials}, got "
                         f"{type(labels).__name__}{'' if shape is None else f' of shape {shape}'}")
    try:
        label_list = list(labels)
    except TypeError:
        raise InputError(f"labels: must be a sequence of {n_trials} labels, got {type(labels).__name__}") from None
    if len(label_list) != n_trials:
        raise InputError(f"labels: has {len(label_list)} labels for {n_trials} trials of inputs")
    for position, label in enumerate(label_list):
        if not isinstance(label, Hashable):
            raise InputError(f"labels: label {position} ({type(label).__name__}) is not hashable")
        if isinstance(label, (float, np.floating)) and np.isnan(label):
            raise InputError(f"labels: label {position} is NaN")
    return label_list


def label_classes(label_list: list) -> list:
    """The distinct labels, sorted where they compare, else in order of first appearance."""
    distinct = list(dict.fromkeys(label_list))
    try:
        return sorted(distinct)
    except TypeError:
        return distinct


def _label_array(label_list: list) -> np.ndarray:
    """(trials,) read-only array of the labels: numpy's own dtype where it makes one, else objects."""
    array = np.array(label_list)
    if array.shape != (len(label_list),):
        array = np.empty(len(label_list), dtype=object)
        array[:] = label_list
    array.setflags(write=False)
    return array


def _window(window: object, n_time: int) -> tuple[int, int]:
    """(start, stop) of the window in bins, the whole trial for None."""
    if window is None:
        return 0, n_time
    try:
        start, stop = window
    except (TypeError, ValueError):
        raise InputError(f"window: must be (start, stop) in bins, got {window!r}") from None
    start = whole_number("window start", start, 0, n_time - 1)
    stop = whole_number("window stop", stop, start + 1, n_time)
    return start, stop
