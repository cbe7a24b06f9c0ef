"""Fault injection: training killed with SIGKILL at random moments of its progress, then resumed with
``fit --resume``, ends with exactly the parameters of an uninterrupted run (bitwise, on CPU).

The kills wait for observed progress (epochs written to the training curve), not for fixed sleeps, so
they land inside the fit on a fast machine and a slow one alike."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from pyro_lfads.data import save_dataset
from pyro_lfads.fitting.run import LAST, load_checkpoint
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset

CONFIG = "gen_dim: 16\nfac_dim: 4\nic_enc_dim: 8\nci_enc_dim: 8\ncon_dim: 8\nco_dim: 1\nbatch_size: 16\n" \
         "kl_ramp_steps: 20\nmax_epochs: 8\n"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _fit(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pyro_lfads.cli", "fit", *args, "--quiet"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _epochs_written(run) -> int:
    """Complete lines of the run's training curve: the epochs it has finished (0 before the first)."""
    path = run / "training_curve.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def _wait_for_epochs(process: subprocess.Popen, run, epochs: int, timeout_s: float = 300.0) -> None:
    """Return once the run has written ``epochs`` curve lines, or the process has ended."""
    deadline = time.monotonic() + timeout_s
    while _epochs_written(run) < epochs and process.poll() is None:
        assert time.monotonic() < deadline, f"no progress past epoch {_epochs_written(run)} in {timeout_s} s"
        time.sleep(0.005)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    data = tmp_path / "lorenz.h5"
    save_dataset(make_lorenz_dataset(seed=1, n_conditions=8, trials_per_condition=10, n_neurons=12, n_time=30), data)
    (tmp_path / "config.yaml").write_text(CONFIG)
    straight = _fit(str(data), "--out", str(tmp_path / "straight"), "--config", str(tmp_path / "config.yaml"))
    assert straight.wait(timeout=300) == 0, straight.stderr.read()
    epoch_seconds = min(json.loads(line)["seconds"] for line in
                        (tmp_path / "straight" / "training_curve.jsonl").read_text().splitlines())

    rng = random.Random(0)
    run = tmp_path / "killed"
    process = _fit(str(data), "--out", str(run), "--config", str(tmp_path / "config.yaml"))
    killed_after = []  # epochs written when each kill landed
    for epochs in (2, 4, 6):  # of 8: kill at a random moment inside the epoch after these, resume after each
        _wait_for_epochs(process, run, epochs)
        time.sleep(rng.uniform(0.0, 0.8) * epoch_seconds)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed_after.append(_epochs_written(run))
        process = _fit("--resume", str(run))
    assert process.wait(timeout=300) == 0, process.stderr.read()
    assert killed_after, "the fit ended before any kill landed"

    a, b = load_checkpoint(tmp_path / "straight" / LAST), load_checkpoint(run / LAST)
    assert a["epoch"] == b["epoch"] == 8
    for part in ("model", "guide"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), f"{part}.{key}"
    curve = lambda d: [line.split('"seconds"')[0] for line in (d / "training_curve.jsonl").read_text().splitlines()]
    assert curve(tmp_path / "straight") == curve(run)


def test_resume_takes_no_data_and_refuses_a_missing_run(tmp_path, capsys):
    from pyro_lfads.cli import main

    assert main(["fit", "--resume", str(tmp_path / "nothing")]) == 2
    assert "not a pyro-lfads run directory" in capsys.readouterr().err
    assert main(["fit", "x.h5", "--resume", str(tmp_path)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["fit", "x.h5"]) == 2
    assert "--out" in capsys.readouterr().err


def _new_trainer(dataset, config, run_dir):
    from pyro_lfads.fitting.run import Run, RunInfo
    from pyro_lfads.fitting.train import new_trainer

    run, _ = Run.begin_fit(run_dir, config, RunInfo.describe(dataset, config))
    return new_trainer(run, [dataset], init_seed=config.seed, progress=False)


def test_a_step_whose_distribution_meets_invalid_parameters_is_undone_and_counted(tiny_lorenz, tiny_config,
                                                                                  tmp_path):
    from pyro_lfads.fitting.batch import split_batch

    trainer = _new_trainer(tiny_lorenz, tiny_config, tmp_path)
    batch = split_batch(tiny_lorenz.train, slice(0, 16))
    original, calls = trainer._loss, [0]

    def loss(*args):  # the first call meets NaN rates, as Pyro does when the weights have blown up
        calls[0] += 1
        value = original(*args)
        if calls[0] == 1:
            torch.distributions.Poisson(torch.full((2,), float("nan")))
        return value
    trainer._loss = loss
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert trainer.step(batch, 1.0) is None
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, before[key]), key  # nothing moved
    assert all(not opt.state_dict()["state"] for opt in trainer.optim.optim_objs.values())  # Adam took no step
    assert trainer.state.faults == trainer.state.faults_in_a_row == 1
    assert trainer.state.lr == pytest.approx(tiny_config.learning_rate * tiny_config.lr_decay)
    assert trainer.step(batch, 1.0) is not None and trainer.state.faults_in_a_row == 0


def test_a_learning_rate_that_blows_the_weights_up_stops_the_fit_in_one_line(tiny_lorenz, tmp_path):
    from pyro_lfads.config import LFADSConfig
    from pyro_lfads.errors import TrainingDiverged
    from pyro_lfads.fitting.train import fit

    config = LFADSConfig(gen_dim=8, fac_dim=2, ic_enc_dim=4, co_dim=0, batch_size=16, max_epochs=3)
    config.learning_rate = 1000.0  # past the config's ceiling (set after its checks): the weights overflow
    with pytest.raises(TrainingDiverged) as info:
        fit(tiny_lorenz, config, tmp_path, progress=False)
    message = str(info.value)
    assert "\n" not in message and message.startswith("training stopped") and "learning rate" in message
