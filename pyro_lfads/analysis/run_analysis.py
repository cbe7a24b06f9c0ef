"""The paper's analyses of a fitted run: jPCA of condition-averaged factors, a t-SNE of single-trial inferred inputs.

Both read the run's posterior means (``pyro-lfads posterior``) of one split and the split's labels from the
run's data file (``{split}_conditions`` by default, or any other ``{split}_<key>`` with one label per trial),
and write into ``out`` (default RUN_DIR/analysis):

    jpca.png, inputs_embedding.png   the figures
    analysis.json                    the figures' numbers, as :func:`analyze_run` returns them
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pyro_lfads.analysis.input_embedding import embed_inputs, label_classes, plot_input_embedding
from pyro_lfads.analysis.jpca import jpca
from pyro_lfads.analysis.jpca_figure import plot_jpca
from pyro_lfads.data.atomic_files import write_atomically
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.posterior import read_posterior
from pyro_lfads.fitting.derived_files import ANALYSIS_DIR
from pyro_lfads.fitting.run import Run, dataset_sha256
from pyro_lfads.fitting.run_lock import writes_into

ANALYSES = ("jpca", "inputs_embedding")
#: What jPCA averages: posterior key and whether to soft-normalise (rates, by 5 spikes/s as Churchland et al.).
JPCA_SOURCES = {"factors": "factors", "rates": "output_params"}
SOFT_NORMALIZE_HZ = 5.0


def condition_means(values: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, list]:
    """(conditions, time, dims) means over the trials of each label of values (trials, time, dims), and the labels."""
    classes = label_classes(labels.tolist())
    return np.stack([values[labels == label].mean(axis=0) for label in classes]), classes


def _labels(dataset, split: str, key: str) -> np.ndarray:
    """(trials,) the labels ``{split}_{key}`` of the data set's extras."""
    labels = dataset.extras.get(f"{split}_{key}")
    n_trials = getattr(dataset, split).n_trials
    if labels is None:
        held = sorted(name[len(split) + 1:] for name in dataset.extras if name.startswith(f"{split}_"))
        raise InputError(f"labels: {dataset.source} has no {split}_{key}; one label per trial is needed "
                         f"(the file's {split}_ keys: {', '.join(held) or 'none'})")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n_trials:
        raise InputError(f"labels: {split}_{key} has shape {labels.shape}; one label per trial ({n_trials},) "
                         "is needed")
    return labels


def _jpca(run: Run, posterior: dict, labels: np.ndarray, source: str, k: int, out: Path, session: int) -> dict:
    bin_ms = run.bin_ms(session=session)
    values = posterior[JPCA_SOURCES[source]]
    soft = None
    if source == "rates" and bin_ms is not None:
        values, soft = values * (1000.0 / bin_ms), SOFT_NORMALIZE_HZ  # spikes/s
    averaged, classes = condition_means(values, labels)
    k = min(k, averaged.shape[2] - averaged.shape[2] % 2)
    result = jpca(averaged, k=k, soft_normalize=soft, bin_s=None if bin_ms is None else bin_ms / 1000.0)
    figure = plot_jpca(result, averaged, out / "jpca.png")
    return {"from": source, "conditions": len(classes), "k": k, "r2_skew": result.r2_skew,
            "r2_best": result.r2_best, "variance_fraction": result.variance_fraction,
            "frequency_rad_per_bin": result.frequency_rad_per_bin, "frequency_hz": result.frequency_hz,
            "figure": str(figure)}


def _embedding(run: Run, posterior: dict, labels: np.ndarray, window, out: Path) -> dict:
    co_dim = run.config.co_dim
    if co_dim == 0:
        raise InputError(f"inputs_embedding: {run.directory} has no inferred inputs (co_dim 0)")
    result = embed_inputs(posterior["gen_inputs"][..., :co_dim], labels, window=window)
    figure = plot_input_embedding(result, out / "inputs_embedding.png")
    return {"classes": len(result.classes), "window": list(result.window), "perplexity": result.perplexity,
            "silhouette": result.silhouette, "silhouette_high_dim": result.silhouette_high_dim,
            "knn_accuracy": result.knn_accuracy, "chance_accuracy": result.chance_accuracy,
            "n_neighbors": result.n_neighbors, "figure": str(figure)}


@writes_into("run")
def analyze_run(run: Run | str | Path, analyses: tuple[str, ...] = ANALYSES, dataset=None, *, split: str = "valid",
                labels: str = "conditions", source: str = "factors", k: int = 6,
                window: tuple[int, int] | None = None, out: str | Path | None = None, session: int = 0) -> dict:
    """Run ``analyses`` (of :data:`ANALYSES`) on a run's posterior means; write figures and analysis.json.

    Args:
        dataset: the data set whose labels are read (default: the run's own, from its file).
        split: "valid" or "train", the trials analysed.
        labels: the data file's ``{split}_<labels>`` key: conditions for jPCA's averages, classes of the embedding.
        source: what jPCA averages, "factors" (default) or "rates" (spikes/s, soft-normalised by 5 spikes/s).
        k: jPCA's principal components (even; at most the factors' or neurons' count, rounded down to even).
        window: (start, stop) bins of the inferred inputs the embedding reads; None reads all.
        out: the folder of the outputs (default RUN_DIR/analysis).

    Returns:
        ``{"split", "labels", "jpca": {...}, "inputs_embedding": {...}}`` with the analyses run: jPCA's
        ``r2_skew``, ``r2_best``, ``variance_fraction``, ``frequency_hz``, ...; the embedding's
        ``knn_accuracy``, ``chance_accuracy``, ``silhouette``, ... (see :mod:`pyro_lfads.analysis`).
    """
    unknown = [name for name in analyses if name not in ANALYSES]
    if unknown or not analyses:
        raise InputError(f"analyses: choose from {', '.join(ANALYSES)}, got {', '.join(unknown) or 'none'}")
    if split not in ("valid", "train"):
        raise InputError(f"split: 'valid' or 'train', got {split!r}")
    if source not in JPCA_SOURCES:
        raise InputError(f"source: {source!r} is not one of {', '.join(JPCA_SOURCES)}")
    run = Run.open(run)
    out = Path(out) if out is not None else run.directory / ANALYSIS_DIR
    data_sha256 = None if dataset is None else dataset_sha256(dataset)
    label_values = _labels(run.scored_data(dataset, session), split, labels)
    posterior = read_posterior(run, split, session, data_sha256=data_sha256)
    out.mkdir(parents=True, exist_ok=True)
    result = {"split": split, "labels": labels}
    if "jpca" in analyses:
        result["jpca"] = _jpca(run, posterior, label_values, source, k, out, session)
    if "inputs_embedding" in analyses:
        result["inputs_embedding"] = _embedding(run, posterior, label_values, window, out)
    write_atomically(out / "analysis.json", json.dumps(result, indent=2).encode())
    return result
