"""The schedule of a fit: batch size, the KL ramp, the learning-rate decay and the stop on a plateau,
on small synthetic validation curves, each rule with a case that must act and one that must not."""

import math

import pytest

from pyro_lfads.config import LFADSConfig
from pyro_lfads.fitting.schedule import (MIN_STEPS_PER_EPOCH, PlateauRule, epoch_batch_size, ramp_steps, ramp_weight,
                                 steps_per_epoch)


def replay(rule: PlateauRule, scores: list[float]) -> list[str]:
    """The rule's action after each epoch of a validation curve, as the Trainer books it."""
    reference, progress_epoch, last_decay, actions = math.inf, 0, 0, []
    for epoch, score in enumerate(scores, start=1):
        if rule.is_progress(score, reference):
            reference, progress_epoch = score, epoch
        action = rule.action(epoch, progress_epoch, last_decay)
        if action == "decay":
            last_decay = epoch
        actions.append(action)
        if action == "stop":
            break
    return actions


RULE = PlateauRule(patience=6, lr_patience=2, min_improvement=1e-3, ramp_end_epoch=3)


def test_a_curve_that_keeps_improving_never_stops_nor_decays():
    scores = [100.0 - epoch for epoch in range(40)]
    assert set(replay(RULE, scores)) == {""}


def test_a_flat_curve_after_the_ramp_decays_every_lr_patience_epochs_then_stops_after_patience():
    actions = replay(RULE, [100.0, 90.0, 80.0] + [80.0] * 20)
    # progress at epoch 3 (the ramp's end): decays at 5 and 7, the stop at 3 + 6 = 9
    assert [epoch for epoch, a in enumerate(actions, 1) if a == "decay"] == [5, 7]
    assert len(actions) == 9 and actions[-1] == "stop"


def test_falls_smaller_than_the_relative_margin_are_no_progress():
    creeping = [100.0, 90.0, 80.0] + [80.0 - 0.01 * k for k in range(1, 20)]  # 0.0125% an epoch
    assert replay(RULE, creeping)[-1] == "stop"
    real = [100.0, 90.0, 80.0] + [80.0 - 0.5 * k for k in range(1, 20)]  # 0.6% an epoch
    assert "stop" not in replay(RULE, real)


def test_nothing_is_counted_while_the_ramp_runs():
    rule = PlateauRule(patience=3, lr_patience=2, min_improvement=1e-3, ramp_end_epoch=10)
    actions = replay(rule, [50.0] + [60.0] * 20)  # best at epoch 1, worse ever after
    assert actions[:11] == [""] * 11
    assert actions[11] == "decay" and len(actions) == 13 and actions[-1] == "stop"


def test_patience_zero_never_stops():
    rule = PlateauRule(patience=0, lr_patience=2, min_improvement=1e-3, ramp_end_epoch=1)
    actions = replay(rule, [10.0] * 50)
    assert "stop" not in actions and actions.count("decay") == 24


def test_the_ramp_rises_linearly_to_one_and_stays_there():
    weights = [ramp_weight(step, 4) for step in range(6)]
    assert weights == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_the_ramp_lasts_kl_ramp_epochs_whatever_the_data_size_unless_steps_are_given():
    config = LFADSConfig(kl_ramp_epochs=30)
    assert ramp_steps(config, 1) == 30 and ramp_steps(config, 25) == 750
    assert ramp_steps(config.replace(kl_ramp_steps=2000), 25) == 2000
    rule = PlateauRule.for_run(config, 25)
    assert rule.ramp_end_epoch == 30


@pytest.mark.parametrize("n_trials, batch_size, expected", [
    (1040, 128, 128),  # a large data set keeps the configured batch
    (72, 128, 18),  # a small one gets MIN_STEPS_PER_EPOCH steps an epoch
    (3, 128, 1),
    (400, 64, 64),
])
def test_batches_shrink_to_give_every_epoch_a_few_steps(n_trials, batch_size, expected):
    size = epoch_batch_size(n_trials, batch_size)
    assert size == expected
    assert steps_per_epoch([n_trials], size) >= min(MIN_STEPS_PER_EPOCH, n_trials)


def test_steps_per_epoch_adds_up_the_sessions_batches():
    assert steps_per_epoch([100, 30, 128], 64) == 2 + 1 + 2
