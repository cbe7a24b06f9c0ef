"""Training: ramps, the L2 penalty, a short fit that beats smoothing, checkpoints and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pyro.infer import TraceMeanField_ELBO

from pyro_lfads.evaluation.baselines import GaussianSmoothing
from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.metrics import rate_r2
from pyro_lfads.fitting.posterior import read_posterior, write_posterior
from pyro_lfads.fitting.run import BEST, CURVE_FILE, LAST, Run, RunInfo, load_checkpoint
from pyro_lfads.fitting.train import fit, l2_penalty, new_trainer, ramp_weight, validation_score


def test_ramp_is_linear_positive_and_reaches_one():
    weights = [ramp_weight(s, 4) for s in range(6)]
    assert weights == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_l2_penalty_is_on_recurrent_weights_only(tiny_config):
    from pyro_lfads.guides.lfads import LFADSGuide
    from pyro_lfads.models.lfads import LFADSModel

    cfg = tiny_config.replace(l2_gen_scale=2.0, l2_con_scale=3.0)
    model = LFADSModel(cfg, 7)
    guide = LFADSGuide(model, 7)
    w_gen, w_con = model.generator.cell.weight_hh, guide.controller.weight_hh
    expected = 0.5 * 2.0 * w_gen.pow(2).mean() + 0.5 * 3.0 * w_con.pow(2).mean()
    torch.testing.assert_close(l2_penalty(model, guide, cfg), expected)
    penalty = l2_penalty(model, guide, cfg)
    penalty.backward()
    assert model.generator.cell.weight_ih.grad is None and w_gen.grad is not None


def _state(run_dir, name=LAST):
    return load_checkpoint(run_dir / name)


def _fitted_trainer(dataset, config, run_dir):
    """The Trainer that ``fit(dataset, config, run_dir)`` trains (a new run), after its fit."""
    run, _ = Run.begin_fit(run_dir, config, RunInfo.describe(dataset, config))
    trainer = new_trainer(run, [dataset], init_seed=config.seed, progress=False)
    trainer.fit()
    return trainer


@pytest.mark.slow
def test_fit_writes_run_directory_and_curve(tiny_lorenz, tiny_config, tmp_path):
    fitted = fit(tiny_lorenz, tiny_config, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("config.yaml", "run.json", LAST, BEST, CURVE_FILE):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / CURVE_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for key in ("train_loss", "train_recon", "train_kl", "valid_loss", "valid_recon", "valid_kl", "lr", "kl_weight"):
        assert all(np.isfinite(r[key]) for r in records), key
    assert fitted.training.stopped == "max_epochs" and fitted.directory == run
    assert records[-1]["step"] == 3 * int(np.ceil(tiny_lorenz.train.n_trials / tiny_config.batch_size))


@pytest.mark.parametrize("checkpoint_metric,key", [("elbo", "valid_loss"), ("recon", "valid_recon")])
@pytest.mark.slow
def test_the_best_checkpoint_is_the_epoch_with_the_lowest_chosen_metric(tiny_lorenz, tiny_config, tmp_path,
                                                                      checkpoint_metric, key):
    config = tiny_config.replace(checkpoint_metric=checkpoint_metric, max_epochs=4)
    state = fit(tiny_lorenz, config, tmp_path / "run", progress=False).training
    records = [json.loads(line) for line in (tmp_path / "run" / CURVE_FILE).read_text().splitlines()]
    lowest = min(records, key=lambda r: r[key])
    assert state.best_valid == lowest[key]
    assert state.best_epoch == lowest["epoch"]
    assert validation_score({"loss": 2.0, "recon": 1.0, "kl": 1.0}, config) == (1.0 if checkpoint_metric == "recon"
                                                                                  else 2.0)
    assert validation_score({"loss": 2.0, "recon": 1.0, "kl": 1.0, "sv_recon": 0.5}, config) == 0.5


@pytest.mark.slow
def test_resume_continues_with_identical_parameters(tiny_lorenz, tiny_config, tmp_path):
    straight = tmp_path / "straight"
    fit(tiny_lorenz, tiny_config.replace(max_epochs=4), straight, progress=False)
    stopped = tmp_path / "stopped"
    fit(tiny_lorenz, tiny_config.replace(max_epochs=2), stopped, progress=False)
    # as if killed after epoch 2, then re-run with the full length: continues from last.pt
    fit(tiny_lorenz, tiny_config.replace(max_epochs=4), stopped, progress=False)
    a, b = _state(straight), _state(stopped)
    assert a["epoch"] == b["epoch"] == 4
    for part in ("model", "guide"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), key
    curve = lambda d: [json.loads(x) for x in (d / CURVE_FILE).read_text().splitlines()]
    # the shorter run's last record says it stopped at its max_epochs; the runs agree on everything else
    drop_time = lambda rs: [{k: v for k, v in r.items() if k not in ("seconds", "stop_reason")} for r in rs]
    assert drop_time(curve(straight)) == drop_time(curve(stopped))
    assert [r["stop_reason"] for r in curve(stopped)] == ["", "max_epochs", "", "max_epochs"]


def test_a_different_run_in_the_directory_is_refused(tiny_lorenz, tiny_config, tmp_path):
    fit(tiny_lorenz, tiny_config.replace(max_epochs=1), tmp_path, progress=False)
    before = (tmp_path / LAST).read_bytes()
    with pytest.raises(InputError, match="different run"):
        fit(tiny_lorenz, tiny_config.replace(max_epochs=1, gen_dim=12), tmp_path, progress=False)
    assert (tmp_path / LAST).read_bytes() == before  # nothing written
    fit(tiny_lorenz, tiny_config.replace(max_epochs=1, gen_dim=12), tmp_path, progress=False, overwrite=True)
    assert _state(tmp_path)["model"]["generator.cell.weight_hh"].shape[1] == 12


@pytest.mark.slow
def test_mean_field_elbo_trains(tiny_lorenz, tiny_config, tmp_path):
    trainer = _fitted_trainer(tiny_lorenz, tiny_config.replace(elbo="meanfield", max_epochs=2), tmp_path)
    records = [json.loads(line) for line in (tmp_path / CURVE_FILE).read_text().splitlines()]
    assert trainer.state.epoch == 2 and all(np.isfinite(r["train_loss"]) for r in records)
    assert isinstance(trainer.elbo, TraceMeanField_ELBO)


def test_bad_device_is_refused_in_one_line(tiny_lorenz, tiny_config, tmp_path):
    with pytest.raises(InputError, match="^device: 'tpu'"):
        fit(tiny_lorenz, tiny_config, tmp_path / "run", device="tpu", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_short_fit_on_tiny_lorenz_beats_smoothing(fitted_tiny_lorenz):
    run_dir, dataset = fitted_tiny_lorenz
    truth = dataset.truth_counts("valid")
    lfads_r2 = rate_r2(truth, read_posterior(run_dir)["output_params"])
    smoothing = GaussianSmoothing().fit(dataset.train.recon_data)
    smoothing_r2 = rate_r2(truth, smoothing.predict(dataset.valid.recon_data))
    assert lfads_r2 > smoothing_r2 + 0.05, (lfads_r2, smoothing_r2)

def test_encoder_may_read_fewer_neurons_and_bins_than_the_model_reconstructs(tiny_lorenz, tiny_config, tmp_path):
    """Held-out neurons (narrower encod data) and forward prediction (shorter encod data)."""
    from pyro_lfads.data import LFADSDataset, Split

    def narrow(split):
        return Split(split.recon_data[:, :30, :15], split.recon_data, truth=split.truth)

    dataset = LFADSDataset(narrow(tiny_lorenz.train), narrow(tiny_lorenz.valid), tiny_lorenz.conversion_factor)
    fit(dataset, tiny_config.replace(max_epochs=1), tmp_path, progress=False)
    write_posterior(tmp_path, dataset, samples=2, progress=False)
    rates = read_posterior(tmp_path)["output_params"]
    assert rates.shape == tiny_lorenz.valid.recon_data.shape  # all 20 neurons, all 40 bins
    assert np.isfinite(rates).all()


def _poison(trainer, from_call: int, calls: int = 10**9):
    """Make the loss NaN on calls from_call .. from_call + calls - 1 of trainer._loss."""
    original, count = trainer._loss, [0]

    def loss(*args):
        value = original(*args)
        count[0] += 1
        return value * float("nan") if from_call <= count[0] < from_call + calls else value
    trainer._loss = loss


def test_a_non_finite_step_is_undone_and_decays_the_learning_rate(tiny_lorenz, tiny_config, tmp_path):
    from pyro_lfads.fitting.batch import split_batch

    trainer = _fitted_trainer(tiny_lorenz, tiny_config.replace(max_epochs=1), tmp_path)
    batch = split_batch(tiny_lorenz.train, slice(0, 16))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    adam_steps = [opt.state_dict()["state"] for opt in trainer.optim.optim_objs.values()]
    lr = trainer.state.lr
    _poison(trainer, from_call=1, calls=1)
    assert trainer.step(batch, 1.0) is None
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, before[key]), key  # nothing moved
    assert [opt.state_dict()["state"] for opt in trainer.optim.optim_objs.values()] == adam_steps
    assert trainer.state.lr == pytest.approx(lr * tiny_config.lr_decay)
    assert trainer.state.faults == trainer.state.faults_in_a_row == 1
    assert np.isfinite(trainer.step(batch, 1.0))  # the next, finite step moves on
    assert trainer.state.faults_in_a_row == 0
    assert not torch.equal(trainer.model.state_dict()["generator.cell.weight_hh"], before["generator.cell.weight_hh"])


def test_repeated_faults_stop_training_with_a_message_and_keep_the_best_checkpoint(tiny_lorenz, tiny_config,
                                                                                   tmp_path):
    from pyro_lfads.errors import TrainingDiverged

    trainer = _fitted_trainer(tiny_lorenz, tiny_config.replace(max_epochs=1), tmp_path)
    best = (tmp_path / BEST).read_bytes()
    trainer.config = tiny_config.replace(max_epochs=3)
    _poison(trainer, from_call=1)
    with pytest.raises(TrainingDiverged, match=r"not finite in 5 steps in a row.*best checkpoint \(epoch 1\)") as info:
        trainer.fit()
    assert "\n" not in str(info.value)
    assert trainer.state.stopped == "non-finite" and trainer.state.epoch == 1
    assert (tmp_path / BEST).read_bytes() == best


@pytest.mark.slow
def test_a_fit_stops_by_itself_on_a_plateau_and_says_so_in_its_curve(tiny_lorenz, tiny_config, tmp_path):
    # every epoch after the first falls short of a 90% relative fall: no progress, so after the one-epoch
    # ramp the learning rate decays each epoch and the fit stops 3 epochs later
    config = tiny_config.replace(kl_ramp_steps=None, kl_ramp_epochs=1, patience=3, lr_patience=1,
                                 lr_decay=0.8, min_improvement=0.9, max_epochs=50)
    state = fit(tiny_lorenz, config, tmp_path, progress=False).training
    records = [json.loads(x) for x in (tmp_path / CURVE_FILE).read_text().splitlines()]
    assert state.stopped == "plateau" and state.epoch == len(records) == 4
    assert [r["stop_reason"] for r in records] == ["", "", "", "plateau"]
    assert [r["lr"] for r in records] == pytest.approx([0.01, 0.008, 0.0064, 0.0064])
    # the same run again resumes a finished fit: nothing more is trained
    assert fit(tiny_lorenz, config, tmp_path, progress=False).training.epoch == 4


@pytest.mark.slow
def test_a_fit_without_patience_runs_to_its_ceiling(tiny_lorenz, tiny_config, tmp_path):
    config = tiny_config.replace(kl_ramp_steps=None, kl_ramp_epochs=1, patience=0, lr_patience=100,
                                 min_improvement=0.9, max_epochs=5)
    state = fit(tiny_lorenz, config, tmp_path, progress=False).training
    assert state.stopped == "max_epochs" and state.epoch == 5 and state.lr == 0.01
