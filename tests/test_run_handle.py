"""The Run handle: a run directory opened once, its data and checkpoints loaded on demand, once."""

from __future__ import annotations

from pathlib import Path

import pytest

import pyro_lfads.fitting.run as run_module
from pyro_lfads.data import save_dataset
from pyro_lfads.errors import InputError
from pyro_lfads.evaluation.table import evaluate_run
from pyro_lfads.fitting.posterior import write_posterior
from pyro_lfads.fitting.run import INFO_FILE, Run, RunInfo
from pyro_lfads.fitting.train import fit, resume_fit


@pytest.fixture(scope="module")
def fitted(tiny_lorenz, tmp_path_factory):
    """(run directory, the Run fit returned) of a 2-epoch fit on tiny_lorenz saved to a file."""
    from pyro_lfads.config import LFADSConfig

    folder = tmp_path_factory.mktemp("run_handle")
    dataset = tiny_lorenz
    save_dataset(dataset, folder / "data.h5")
    dataset.source = str(folder / "data.h5")
    config = LFADSConfig(gen_dim=16, fac_dim=4, ic_enc_dim=8, co_dim=0, batch_size=16, kl_ramp_steps=20,
                         max_epochs=2, posterior_samples=2)
    run = fit(dataset, config, folder / "run", progress=False)
    return folder / "run", run


@pytest.fixture
def counted(monkeypatch):
    """Counts of run.json reads and of data checksums while the test runs."""
    counts = {"run.json": 0, "sha256": 0}
    read_text, sha256 = Path.read_text, run_module.dataset_sha256

    def counting_read_text(self, *args, **kwargs):
        counts["run.json"] += self.name == INFO_FILE
        return read_text(self, *args, **kwargs)

    def counting_sha256(dataset):
        counts["sha256"] += 1
        return sha256(dataset)

    monkeypatch.setattr(Path, "read_text", counting_read_text)
    monkeypatch.setattr(run_module, "dataset_sha256", counting_sha256)
    return counts


def test_fit_returns_a_run_with_its_config_record_and_final_state(fitted):
    run_dir, run = fitted
    assert isinstance(run, Run) and run.directory == run_dir
    assert run.config.max_epochs == 2 and run.info.n_neurons == 20 and run.n_sessions == 1
    assert run.training.epoch == 2 and run.training.stopped == "max_epochs"
    assert run.checkpoint_path("best") == run_dir / "checkpoints" / "best.pt"
    assert run.session_file("posterior.h5") == run_dir / "posterior.h5"


def test_open_reads_the_directory_once_and_loads_nothing_else(fitted, counted):
    run_dir, fitted_run = fitted
    run = Run.open(run_dir)
    assert counted == {"run.json": 1, "sha256": 0}
    assert run.config == fitted_run.config and run.info == fitted_run.info
    assert Run.open(run) is run and counted["run.json"] == 1  # a Run opens as itself
    assert run._datasets == {} and run._fitted == {}


def test_data_and_checkpoints_load_on_demand_once(fitted, counted):
    run = Run.open(fitted[0])
    dataset = run.dataset()
    assert counted["sha256"] == 1 and run.dataset() is dataset and run.sessions() == [dataset]
    assert counted["sha256"] == 1
    model, guide = run.fitted("best")
    assert run.fitted("best") == (model, guide) and not model.training and not guide.training
    assert run.fitted("last")[0] is not model


def test_a_command_reads_run_json_once(fitted, counted):
    run_dir, _ = fitted
    write_posterior(run_dir, samples=2, progress=False)
    assert counted == {"run.json": 1, "sha256": 1}
    counted.update({"run.json": 0, "sha256": 0})
    evaluate_run(run_dir, baselines=())
    assert counted == {"run.json": 1, "sha256": 1}


def test_resume_reads_run_json_and_checksums_the_data_once(fitted, counted):
    run_dir, _ = fitted
    run = resume_fit(run_dir, max_epochs=3, progress=False)
    assert counted == {"run.json": 1, "sha256": 1}
    assert run.training.epoch == 3 and Run.open(run_dir).config.max_epochs == 3


def test_the_fit_policy_resumes_the_same_run_and_refuses_another(fitted, tmp_path):
    run_dir, run = fitted
    again, resume = Run.begin_fit(run, run.config.replace(max_epochs=9), run.info)
    assert resume and again.directory == run_dir
    other = RunInfo(**{**vars(run.info), "data_sha256": "0" * 64})
    with pytest.raises(InputError, match="different run.*pass overwrite=True$"):
        Run.begin_fit(run_dir, run.config, other)
    fresh, resume = Run.begin_fit(tmp_path / "new", run.config, run.info)
    assert not resume and (tmp_path / "new" / INFO_FILE).is_file()


def test_errors_name_the_arguments(fitted, tmp_path):
    run_dir, _ = fitted
    with pytest.raises(InputError, match="^session: .* has sessions 0 to 0, got 1$"):
        Run.open(run_dir).session_info(1)
    with pytest.raises(InputError, match="^samples: must be an integer >= 1"):
        write_posterior(run_dir, samples=0, progress=False)
    with pytest.raises(InputError, match="not a pyro-lfads run directory"):
        Run.open(tmp_path)
