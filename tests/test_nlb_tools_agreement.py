"""This project's NLB metrics and submission file against the nlb_tools package's own evaluation code.

Skipped when nlb_tools cannot be imported. It pins an old pandas, so install it without its
dependencies (its evaluation module needs only numpy, scipy, scikit-learn and h5py):

    pip install --no-deps nlb-tools==0.0.4
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV

from pyro_lfads.evaluation.metrics import co_bps, condition_psth, fp_bps, psth_r2, velocity_r2
from pyro_lfads.evaluation.nlb_submission import read_submission, save_submission

try:
    from nlb_tools import evaluation as nlb
except ImportError as exc:  # not installed, or a piece of it does not import here
    pytest.skip(f"nlb_tools cannot be imported ({exc}): pip install --no-deps nlb-tools==0.0.4",
                allow_module_level=True)

N_TRAIN, N_EVAL, T, T_FWD, N_IN, N_OUT, B, C = 30, 12, 20, 5, 8, 4, 2, 4
#: The ridge penalties nlb_tools' decoder searches (``fit_and_eval_decoder``).
NLB_ALPHAS = np.logspace(-4, 0, 9)


@pytest.fixture(scope="module")
def arrays() -> dict:
    """Spikes, rates that follow them, behaviour read from the rates, conditions: an NLB data set."""
    rng = np.random.default_rng(0)
    conditions = {"train": np.arange(N_TRAIN) % C, "eval": np.arange(N_EVAL) % C}
    conditions["eval"][-1] = C - 1  # every condition has eval trials but one, which has two
    conditions["eval"][conditions["eval"] == 1] = 2  # condition 1: train trials only
    shape = {"heldin": N_IN, "heldout": N_OUT}
    a = {}
    for split, n in (("train", N_TRAIN), ("eval", N_EVAL)):
        base = rng.gamma(2.0, 0.3, (C, T + T_FWD, N_IN + N_OUT))[conditions[split]]
        rates = base * rng.uniform(0.7, 1.3, (n, 1, N_IN + N_OUT))
        spikes = rng.poisson(rates).astype(float)
        spikes[..., N_IN] = 0.0  # the first held-out neuron never fires
        weights = rng.normal(size=(N_IN + N_OUT, B))
        behavior = rates[:, :T] @ weights + 0.1 * rng.normal(size=(n, T, B))
        behavior[0, :3] = np.nan  # NLB marks unknown behaviour with NaN in every dimension
        a[f"{split}_behavior"] = behavior
        a[f"{split}_condition"] = conditions[split]
        noisy = rates * rng.uniform(0.8, 1.2, rates.shape)  # a method's predicted rates
        for part, (lo, hi) in (("heldin", (0, N_IN)), ("heldout", (N_IN, N_IN + N_OUT))):
            a[f"{split}_spikes_{part}"] = spikes[:, :T, lo:hi]
            a[f"{split}_spikes_{part}_forward"] = spikes[:, T:, lo:hi]
            a[f"{split}_rates_{part}"] = noisy[:, :T, lo:hi].astype(np.float32).astype(float)
            a[f"{split}_rates_{part}_forward"] = noisy[:, T:, lo:hi].astype(np.float32).astype(float)
    return a


def test_co_bps_equals_nlb_tools(arrays):
    rates, spikes = arrays["eval_rates_heldout"], arrays["eval_spikes_heldout"]
    assert co_bps(rates[..., 1:], spikes[..., 1:]) == pytest.approx(nlb.bits_per_spike(rates[..., 1:], spikes[..., 1:]),
                                                                    rel=1e-12)
    # a neuron without spikes: nlb_tools gives it a null rate of 1e-9 (it refuses 0), this project 0
    assert not spikes[..., 0].any()
    assert co_bps(rates, spikes) == pytest.approx(nlb.bits_per_spike(rates, spikes), rel=1e-7)


def test_fp_bps_equals_nlb_tools(arrays):
    rates = np.dstack([arrays["eval_rates_heldin_forward"], arrays["eval_rates_heldout_forward"]])
    spikes = np.dstack([arrays["eval_spikes_heldin_forward"], arrays["eval_spikes_heldout_forward"]])
    firing = spikes.any(axis=(0, 1))
    assert fp_bps(rates[..., firing], spikes[..., firing]) == pytest.approx(
        nlb.bits_per_spike(rates[..., firing], spikes[..., firing]), rel=1e-12)
    assert fp_bps(rates, spikes) == pytest.approx(nlb.bits_per_spike(rates, spikes), rel=1e-7)


def _all_rates(arrays, split):
    return np.concatenate([arrays[f"{split}_rates_heldin"], arrays[f"{split}_rates_heldout"]], axis=2)


def test_velocity_r2_equals_nlb_tools_with_the_same_penalty(arrays):
    train, evaluation = _all_rates(arrays, "train"), _all_rates(arrays, "eval")
    behavior = arrays["train_behavior"], arrays["eval_behavior"]
    ours = velocity_r2(train, behavior[0], evaluation, behavior[1], alphas=(1e-2,))
    flat = [x.reshape(-1, x.shape[2]) for x in (train, behavior[0], evaluation, behavior[1])]
    assert ours == pytest.approx(nlb.fit_and_eval_decoder(*flat, grid_search=False), rel=1e-9)
    masks = np.ones((N_TRAIN, 1), bool), np.ones((N_EVAL, 1), bool)
    assert ours == pytest.approx(nlb.velocity_decoding(train, behavior[0], masks[0], evaluation, behavior[1],
                                                       masks[1], grid_search=False), rel=1e-9)


def test_velocity_r2_equals_nlb_tools_grid_search_given_its_chosen_penalty(arrays):
    """nlb_tools picks the penalty by 5-fold CV over bins; this project by folds of whole trials over a wider
    grid. Given the penalty nlb_tools picks, the R2 is the same."""
    train, evaluation = _all_rates(arrays, "train"), _all_rates(arrays, "eval")
    behavior = arrays["train_behavior"], arrays["eval_behavior"]
    x, y = train.reshape(-1, N_IN + N_OUT), behavior[0].reshape(-1, B)
    known = ~np.isnan(y[:, 0])
    alpha = GridSearchCV(Ridge(), {"alpha": NLB_ALPHAS}).fit(x[known], y[known]).best_params_["alpha"]
    masks = np.ones((N_TRAIN, 1), bool), np.ones((N_EVAL, 1), bool)
    theirs = nlb.velocity_decoding(train, behavior[0], masks[0], evaluation, behavior[1], masks[1])
    assert velocity_r2(train, behavior[0], evaluation, behavior[1], alphas=(alpha,)) == pytest.approx(theirs, rel=1e-9)


def test_psth_r2_equals_nlb_tools_on_the_same_psth(arrays):
    spikes = np.concatenate([np.concatenate([arrays[f"{s}_spikes_heldin"], arrays[f"{s}_spikes_heldout"]], axis=2)
                             for s in ("train", "eval")])
    ids, psth = condition_psth(spikes, np.concatenate([arrays["train_condition"], arrays["eval_condition"]]), 5.0)
    rates, conditions = _all_rates(arrays, "eval"), arrays["eval_condition"]
    cond_idx = [np.flatnonzero(conditions == c) for c in ids]
    assert any(index.size == 0 for index in cond_idx)  # a condition without eval trials: both leave it out
    assert psth_r2(rates, conditions, psth, ids) == pytest.approx(nlb.eval_psth(psth, rates, cond_idx), rel=1e-9)


def test_nlb_tools_scores_the_submission_file_as_this_project_does(arrays, tmp_path):
    keys = ("train_rates_heldin", "train_rates_heldout", "eval_rates_heldin", "eval_rates_heldout",
            "eval_rates_heldin_forward", "eval_rates_heldout_forward")
    path = tmp_path / "submission.h5"
    save_submission(path, "mc_maze", {key: arrays[key] for key in keys})
    back = read_submission(path)["mc_maze"]
    for key in keys:
        np.testing.assert_array_equal(back[key], arrays[key])  # the rates are float32 values already
    ids = np.unique(np.concatenate([arrays["train_condition"], arrays["eval_condition"]]))
    spikes = np.concatenate([np.concatenate([arrays[f"{s}_spikes_heldin"], arrays[f"{s}_spikes_heldout"]], axis=2)
                             for s in ("train", "eval")])
    _, psth = condition_psth(spikes, np.concatenate([arrays["train_condition"], arrays["eval_condition"]]), 5.0)
    target = {"mc_maze": {key: arrays[key] for key in ("eval_spikes_heldout", "train_behavior", "eval_behavior",
                                                       "eval_spikes_heldin_forward", "eval_spikes_heldout_forward")}}
    target["mc_maze"]["psth"] = psth
    cond_idx = np.empty(len(ids), dtype=object)  # one array of trial indices per condition, as NLB stores them
    cond_idx[:] = [np.flatnonzero(arrays["eval_condition"] == c) for c in ids]
    target["mc_maze"]["eval_cond_idx"] = cond_idx
    [result] = nlb.evaluate(target, str(path))
    figures = result["mc_maze_split"]
    assert set(figures) == {"co-bps", "vel R2", "psth R2", "fp-bps"}
    assert figures["co-bps"] == pytest.approx(co_bps(back["eval_rates_heldout"], arrays["eval_spikes_heldout"]),
                                              rel=1e-7)
    forward = [np.dstack([back[f"eval_rates_{p}_forward"] for p in ("heldin", "heldout")]),
               np.dstack([arrays[f"eval_spikes_{p}_forward"] for p in ("heldin", "heldout")])]
    assert figures["fp-bps"] == pytest.approx(fp_bps(*forward), rel=1e-7)
    rates = {s: np.dstack([back[f"{s}_rates_heldin"], back[f"{s}_rates_heldout"]]) for s in ("train", "eval")}
    assert figures["psth R2"] == pytest.approx(psth_r2(rates["eval"], arrays["eval_condition"], psth, ids), rel=1e-6)
    x, y = rates["train"].reshape(-1, N_IN + N_OUT).astype(float), arrays["train_behavior"].reshape(-1, B)
    known = ~np.isnan(y[:, 0])
    alpha = GridSearchCV(Ridge(), {"alpha": NLB_ALPHAS}).fit(x[known], y[known]).best_params_["alpha"]
    ours = velocity_r2(rates["train"], arrays["train_behavior"], rates["eval"], arrays["eval_behavior"],
                       alphas=(alpha,))
    assert figures["vel R2"] == pytest.approx(ours, rel=1e-6)
