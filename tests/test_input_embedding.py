"""Embedding of single-trial inferred inputs: pulse trials separate from noise trials, random labels do not."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import silhouette_score
from sklearn.model_selection import LeaveOneOut, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from pyro_lfads.analysis.input_embedding import InputEmbedding, embed_inputs, plot_input_embedding
from pyro_lfads.errors import InputError

WINDOW = (6, 28)


def pulse_inputs(seed=0, n_trials=80, n_time=40):
    """(inputs (trials, time, 2), labels (trials,)): odd trials get a smooth pulse in bins [10, 20), even ones noise."""
    rng = np.random.default_rng(seed)
    inputs = 0.3 * rng.normal(size=(n_trials, n_time, 2))
    labels = np.arange(n_trials) % 2
    t = np.arange(n_time)
    for trial in np.flatnonzero(labels):
        inputs[trial, :, 0] += 2.0 * np.exp(-0.5 * ((t - rng.integers(10, 20)) / 2.5) ** 2)
    return inputs, labels


@pytest.fixture(scope="module")
def pulses():
    inputs, labels = pulse_inputs()
    return inputs, labels, embed_inputs(inputs, labels, window=WINDOW)


def test_pulse_trials_separate_from_noise_trials(pulses):
    result = pulses[2]
    assert isinstance(result, InputEmbedding)
    assert result.knn_accuracy > 0.9
    assert result.silhouette > 0.3
    assert result.chance_accuracy == 0.5
    assert result.embedding.shape == (80, 2) and np.isfinite(result.embedding).all()
    assert result.classes == (0, 1) and result.labels.tolist() == pulses[1].tolist()
    assert result.window == WINDOW and result.n_neighbors == 5


def test_the_scores_are_sklearns_on_the_standardised_window(pulses):
    inputs, labels, result = pulses
    vectors = StandardScaler().fit_transform(inputs[:, WINDOW[0]:WINDOW[1]].reshape(80, -1))
    loo = cross_val_score(KNeighborsClassifier(n_neighbors=5), vectors, labels, cv=LeaveOneOut()).mean()
    assert result.knn_accuracy == pytest.approx(loo)
    assert result.silhouette_high_dim == pytest.approx(silhouette_score(vectors, labels))
    assert result.silhouette == pytest.approx(silhouette_score(result.embedding, labels))


def test_the_perplexity_is_capped_below_the_trials(pulses):
    assert pulses[2].perplexity == pytest.approx(79 / 3)
    small = embed_inputs(*pulse_inputs(n_trials=20), perplexity=3.0)
    assert small.perplexity == 3.0 and small.window == (0, 40)


def test_random_labels_score_near_chance(pulses):
    inputs, labels, _ = pulses
    shuffled = np.random.default_rng(1).permutation(labels)
    result = embed_inputs(inputs, shuffled, window=WINDOW)
    assert result.knn_accuracy < 0.7
    assert abs(result.silhouette) < 0.1


def test_the_embedding_is_reproducible_and_labels_may_be_any_hashables():
    inputs, labels = pulse_inputs(n_trials=24)
    names = ["pulse" if label else "none" for label in labels]
    first = embed_inputs(inputs, names, random_state=3)
    second = embed_inputs(inputs, names, random_state=3)
    np.testing.assert_array_equal(first.embedding, second.embedding)
    assert first.classes == ("none", "pulse") and first.labels[1] == "pulse"
    pairs = embed_inputs(inputs, [(int(label), "x") for label in labels], random_state=3)
    assert pairs.classes == ((0, "x"), (1, "x")) and pairs.labels.shape == (24,)
    assert pairs.knn_accuracy == first.knn_accuracy


@pytest.mark.parametrize("labels, message", [
    (np.zeros(79), "79 labels for 80 trials"),
    (np.zeros(80), "one label"),
    (np.zeros((80, 1)), "one label per trial"),
    ("ab" * 40, "one label per trial"),
    (5, "sequence"),
    ([[0]] * 80, "not hashable"),
    (np.r_[np.nan, np.arange(79) % 2.0], "label 0 is NaN"),
    (np.arange(80), "80 distinct labels"),
])
def test_bad_labels_are_refused(labels, message):
    inputs, _ = pulse_inputs()
    with pytest.raises(InputError, match=message):
        embed_inputs(inputs, labels)


@pytest.mark.parametrize("change, options, message", [
    (lambda x: np.where(x > 1.5, np.nan, x), {}, "NaN"),
    (lambda x: x[:, :, 0], {}, "must have 3 axes"),
    (lambda x: np.zeros_like(x), {}, "every trial is the same"),
    (lambda x: x, {"window": (5, 5)}, "window stop"),
    (lambda x: x, {"window": (-1, 5)}, "window start"),
    (lambda x: x, {"window": (0, 41)}, "window stop"),
    (lambda x: x, {"window": 3}, r"\(start, stop\)"),
    (lambda x: x, {"n_neighbors": 80}, "n_neighbors"),
    (lambda x: x, {"perplexity": 0.0}, "perplexity"),
])
def test_bad_inputs_and_options_are_refused(change, options, message):
    inputs, labels = pulse_inputs()
    with pytest.raises(InputError, match=message):
        embed_inputs(change(inputs), labels, **options)


def test_plot_input_embedding_writes_a_png(pulses, tmp_path):
    path = plot_input_embedding(pulses[2], tmp_path / "embedding.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    inputs, _ = pulse_inputs(n_trials=50)
    many = embed_inputs(inputs, np.arange(50) % 25)  # more labels than a legend holds
    assert plot_input_embedding(many, tmp_path / "many.png").stat().st_size > 0
