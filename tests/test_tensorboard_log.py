"""TensorBoard event files of a fit: the curve's numbers by epoch, purged on resume, absent without tensorboard."""

from __future__ import annotations

import json
import sys

import pytest

from pyro_lfads.fitting.run import CURVE_FILE, LAST, Run, RunInfo
from pyro_lfads.fitting.tensorboard_log import EVENT_FILES, scalars, tensorboard_log
from pyro_lfads.fitting.train import fit

RECORD = {"epoch": 3, "step": 12, "lr": 0.01, "batch_size": 16, "kl_weight": 0.5, "train_loss": 9.5,
          "train_recon": 8.0, "train_kl": 1.5, "valid_loss": 10.0, "valid_recon": 8.5, "valid_kl": 1.5,
          "valid_sv_recon": 0.25, "seconds": 0.5, "stop_reason": ""}


def _scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series TensorBoard reads from ``run_dir``: {tag: [(step, value), ...]}."""
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    reader = event_accumulator.EventAccumulator(str(run_dir))
    reader.Reload()
    return {tag: [(event.step, event.value) for event in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]}


def test_a_record_becomes_tagged_scalars_without_its_epoch_and_words():
    assert scalars(RECORD) == {"step": 12.0, "lr": 0.01, "batch_size": 16.0, "kl_weight": 0.5, "train/loss": 9.5,
                               "train/recon": 8.0, "train/kl": 1.5, "valid/loss": 10.0, "valid/recon": 8.5,
                               "valid/kl": 1.5, "valid/sv_recon": 0.25, "seconds": 0.5}


def test_the_log_writes_each_record_at_its_epoch_and_a_resume_replaces_the_epochs_after_its_checkpoint(tmp_path):
    pytest.importorskip("tensorboard")
    with tensorboard_log(tmp_path, 0) as log_epoch:
        for epoch in (1, 2, 3):
            log_epoch({**RECORD, "epoch": epoch, "train_loss": float(epoch)})
    with tensorboard_log(tmp_path, 2) as log_epoch:  # resumed from the checkpoint of epoch 2
        for epoch in (3, 4):
            log_epoch({**RECORD, "epoch": epoch, "train_loss": 10.0 * epoch})
    assert len(list(tmp_path.glob(EVENT_FILES))) == 2
    series = _scalars(tmp_path)
    assert series["train/loss"] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
    assert set(series) == set(scalars(RECORD))


def test_without_tensorboard_the_log_does_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # its import now fails
    with tensorboard_log(tmp_path, 0) as log_epoch:
        log_epoch(RECORD)
    assert list(tmp_path.iterdir()) == []


def test_a_fit_writes_its_curve_to_tensorboard(tiny_lorenz, tiny_config, tmp_path):
    pytest.importorskip("tensorboard")
    run = fit(tiny_lorenz, tiny_config.replace(max_epochs=2, co_dim=0), tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (run.directory / CURVE_FILE).read_text().splitlines()]
    series = _scalars(run.directory)
    for key, tag in (("train_loss", "train/loss"), ("valid_recon", "valid/recon"), ("lr", "lr")):
        assert series[tag] == [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in records], tag


def test_a_fresh_start_removes_the_old_event_files(tiny_lorenz, tiny_config, tmp_path):
    info = RunInfo.describe(tiny_lorenz, tiny_config)
    Run.create(tmp_path, tiny_config, info)
    old = tmp_path / "events.out.tfevents.1.host.1.0"
    old.write_bytes(b"old")
    (tmp_path / LAST).parent.mkdir()
    (tmp_path / LAST).write_bytes(b"x")
    assert Run.begin_fit(tmp_path, tiny_config, info)[1] and old.exists()  # a resume keeps them
    Run.begin_fit(tmp_path, tiny_config.replace(gen_dim=12), info, overwrite=True)
    assert not old.exists()
