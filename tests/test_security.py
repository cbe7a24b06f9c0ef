"""A hostile or unlucky run directory: no code runs from a checkpoint, the data is found from another
working directory or a moved project folder, no write follows a symbolic link out of the run directory,
and the temporary files of killed writes are removed by the next command."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyro_lfads.cli import main
from pyro_lfads.data import save_dataset
from pyro_lfads.data.atomic_files import RUN_RECORD, TEMPORARY_NAME, atomic_path
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.run import INFO_FILE, Run
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset

TINY = "gen_dim: 8\nfac_dim: 2\nic_enc_dim: 4\nco_dim: 0\nbatch_size: 8\nmax_epochs: 2\nposterior_samples: 2\n"


def _make_project(folder: Path) -> Path:
    """folder/data.h5, folder/tiny.yaml and folder/run, fitted from inside folder with relative paths."""
    folder.mkdir(parents=True, exist_ok=True)
    save_dataset(make_lorenz_dataset(seed=0, n_conditions=4, trials_per_condition=5, n_neurons=6, n_time=12),
                 folder / "data.h5")
    (folder / "tiny.yaml").write_text(TINY)
    here = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["fit", "data.h5", "--out", "run", "--config", "tiny.yaml", "--quiet"]) == 0
    finally:
        os.chdir(here)
    return folder


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fitted tiny run (2 epochs: best.pt and last.pt) with its posterior, next to its data."""
    folder = _make_project(tmp_path_factory.mktemp("project"))
    assert main(["posterior", str(folder / "run"), "--quiet"]) == 0
    return folder


@pytest.fixture
def copied(project, tmp_path) -> Path:
    """A copy of the project's folder (run and data), this test's own."""
    return Path(shutil.copytree(project, tmp_path / "project", symlinks=True))


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pyro-lfads: error: "), err
    assert "Traceback" not in err
    return lines[0]


# --- 1. no code runs from a checkpoint --------------------------------------------------------
class _CreatesFile:
    """Unpickled by a plain unpickler, this opens (so creates) the file ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _craft(path: Path, marker: Path, kind: str = "torch") -> None:
    """A checkpoint-looking file at ``path`` whose unpickling would create ``marker``."""
    state = {"model": _CreatesFile(marker), "guide": {}, "epoch": 1}
    if kind == "torch":
        torch.save(state, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(state, handle)


def test_the_crafted_checkpoint_runs_code_under_a_plain_unpickler(tmp_path):
    """The test's own check: without weights_only the crafted file does create the marker."""
    _craft(tmp_path / "best.pt", tmp_path / "marker")
    torch.load(tmp_path / "best.pt", weights_only=False)
    assert (tmp_path / "marker").exists()


#: Every command that loads a checkpoint, with the checkpoint it loads.
LOADERS = {
    "posterior": ("best", lambda p: ["posterior", str(p / "run"), "--quiet"]),
    "evaluate": ("best", lambda p: ["evaluate", str(p / "run"), "--baselines", "none"]),
    "diagnose": ("best", lambda p: ["diagnose", str(p / "run"), "--samples", "2", "--importance-samples", "2",
                                    "--quiet"]),
    "report": ("best", lambda p: ["report", str(p / "run"), "--quiet"]),
    "fit --resume": ("last", lambda p: ["fit", "--resume", str(p / "run"), "--max-epochs", "3", "--quiet"]),
    "fit DATA --out RUN": ("last", lambda p: ["fit", str(p / "data.h5"), "--out", str(p / "run"), "--config",
                                              str(p / "tiny.yaml"), "--max-epochs", "3", "--quiet"]),
}


@pytest.mark.parametrize("command", list(LOADERS))
def test_a_crafted_checkpoint_is_refused_and_runs_nothing(command, copied, tmp_path, capsys):
    which, argv = LOADERS[command]
    marker = tmp_path / "marker"
    _craft(copied / "run" / "checkpoints" / f"{which}.pt", marker)
    capsys.readouterr()
    assert main(argv(copied)) == 2
    line = _one_error_line(capsys.readouterr().err)
    if command == "evaluate":  # the posterior it scores is checked against best.pt's digest first
        assert "posterior.h5: was made from another checkpoint" in line, line
    else:
        assert f"{which}.pt: not a pyro-lfads checkpoint" in line and "nothing in it was run" in line, line
    assert not marker.exists()


@pytest.mark.parametrize("which", ["best", "last"])
def test_a_crafted_plain_pickle_is_refused_too(which, copied, tmp_path, capsys):
    marker = tmp_path / "marker"
    _craft(copied / "run" / "checkpoints" / f"{which}.pt", marker, kind="pickle")
    argv = (["posterior", str(copied / "run"), "--quiet"] if which == "best" else
            ["fit", "--resume", str(copied / "run"), "--quiet"])
    assert main(argv) == 2
    _one_error_line(capsys.readouterr().err)
    assert not marker.exists()


def test_a_checkpoint_holding_plain_values_of_another_shape_is_refused(copied, capsys):
    torch.save({"model": [1, 2], "guide": {}, "epoch": 1}, copied / "run" / "checkpoints" / "best.pt")
    assert main(["posterior", str(copied / "run"), "--quiet"]) == 2
    assert _one_error_line(capsys.readouterr().err).endswith("best.pt: not a pyro-lfads checkpoint")


@pytest.mark.slow
def test_the_installed_command_refuses_a_crafted_checkpoint(copied, tmp_path):
    marker = tmp_path / "marker"
    _craft(copied / "run" / "checkpoints" / "best.pt", marker)
    command = Path(sys.executable).with_name("pyro-lfads")
    prefix = [str(command)] if command.exists() else [sys.executable, "-m", "pyro_lfads.cli"]
    result = subprocess.run([*prefix, "posterior", str(copied / "run"), "--quiet"], capture_output=True, text=True)
    assert result.returncode == 2
    _one_error_line(result.stderr)
    assert not marker.exists()


# --- 2. the data path in run.json ---------------------------------------------------------------
def test_run_json_holds_the_resolved_data_path_and_the_one_relative_to_the_run(project):
    info = json.loads((project / "run" / INFO_FILE).read_text())
    assert info["data_source"] == str((project / "data.h5").resolve())
    assert info["data_relative"] == os.path.join("..", "data.h5")


def test_a_run_fitted_on_a_relative_path_works_from_another_directory(copied, tmp_path, monkeypatch, capsys):
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["posterior", str(copied / "run"), "--quiet"]) == 0
    assert main(["fit", "--resume", str(copied / "run"), "--max-epochs", "3", "--quiet"]) == 0


def test_a_moved_project_folder_still_finds_its_data(tmp_path, monkeypatch, capsys):
    original = _make_project(tmp_path / "project")
    moved = original.rename(tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    assert not Path(json.loads((moved / "run" / INFO_FILE).read_text())["data_source"]).exists()
    assert main(["posterior", str(moved / "run"), "--quiet"]) == 0
    assert main(["fit", "--resume", str(moved / "run"), "--max-epochs", "3", "--quiet"]) == 0


def test_data_gone_from_both_places_is_one_line(tmp_path, capsys):
    project = _make_project(tmp_path / "project")
    (project / "data.h5").unlink()
    capsys.readouterr()
    assert main(["posterior", str(project / "run"), "--quiet"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "data.h5: the data this run was fitted on is gone" in line, line


# --- 3. no write follows a symbolic link out of the run directory --------------------------------
@pytest.mark.parametrize("command", ["fit --resume", "fit DATA --out RUN"])
def test_a_linked_training_curve_is_refused_and_the_file_it_names_is_unchanged(command, copied, tmp_path, capsys):
    outside = tmp_path / "outside.jsonl"
    outside.write_text("precious\nlines\nkept\n")
    curve = copied / "run" / "training_curve.jsonl"
    curve.unlink()
    curve.symlink_to(outside)
    capsys.readouterr()
    assert main(LOADERS[command][1](copied)) == 2
    assert "training_curve.jsonl: is a symbolic link" in _one_error_line(capsys.readouterr().err)
    assert outside.read_text() == "precious\nlines\nkept\n"


def test_a_linked_posterior_file_is_refused_and_the_file_it_names_is_unchanged(copied, tmp_path, capsys):
    outside = tmp_path / "outside.h5"
    outside.write_bytes(b"someone else's")
    posterior = copied / "run" / "posterior.h5"
    posterior.unlink()
    posterior.symlink_to(outside)
    assert main(["posterior", str(copied / "run"), "--quiet"]) == 2
    assert "posterior.h5: is a symbolic link" in _one_error_line(capsys.readouterr().err)
    assert outside.read_bytes() == b"someone else's"


def test_a_linked_checkpoints_folder_is_not_written(copied, tmp_path, capsys):
    outside = Path(shutil.move(copied / "run" / "checkpoints", tmp_path / "outside"))
    (copied / "run" / "checkpoints").symlink_to(outside, target_is_directory=True)
    before = {path.name: path.read_bytes() for path in outside.iterdir()}
    assert main(["fit", "--resume", str(copied / "run"), "--max-epochs", "3", "--quiet"]) == 2
    assert "its folder is a symbolic link to" in _one_error_line(capsys.readouterr().err)
    assert {path.name: path.read_bytes() for path in outside.iterdir()} == before


def test_a_linked_report_folder_is_not_written(tmp_path):
    run, outside = tmp_path / "run", tmp_path / "outside"
    run.mkdir()
    outside.mkdir()
    (run / RUN_RECORD).write_text("{}")
    (run / "report").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match="its folder is a symbolic link"):
        with atomic_path(run / "report" / "rates.png") as tmp:
            tmp.write_bytes(b"figure")
    assert list(outside.iterdir()) == []


def test_outside_a_run_directory_writes_are_as_before(tmp_path):
    """A data file written through a linked folder (no run.json around) is written."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    with atomic_path(tmp_path / "link" / "data.h5") as tmp:
        tmp.write_bytes(b"data")
    assert (tmp_path / "real" / "data.h5").read_bytes() == b"data"


def test_the_atomic_writer_knows_the_run_record_by_its_name():
    assert RUN_RECORD == INFO_FILE


# --- 4. temporary files of killed writes ------------------------------------------------------------
def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_the_atomic_writer_names_its_temporary_files_for_the_cleaner(tmp_path):
    with atomic_path(tmp_path / "posterior.h5") as tmp:
        tmp.write_bytes(b"x")
        match = TEMPORARY_NAME.fullmatch(tmp.name)
    assert match is not None and int(match["pid"]) == os.getpid()


def _leave_temporaries(run: Path) -> tuple[list[Path], list[Path]]:
    """(leftovers of killed writes, files that must stay) created in ``run``."""
    dead = _dead_pid()
    (run / "report").mkdir(exist_ok=True)
    leftovers = [run / ".posterior.h5.0123456789ab.tmp", run / f".inference_data.nc.{dead}-0123456789ab.tmp",
                 run / "report" / f".rates.png.{dead}-abcdef012345.tmp",
                 run / "checkpoints" / f".last.pt.{dead}-abcdef012345.tmp"]
    stays = [run / f".decoding.h5.{os.getpid()}-0123456789ab.tmp",  # a write in progress
             run / ".notes.tmp", run / "notes.txt", run / "report" / ".x.png.zz.tmp"]
    for path in leftovers + stays:
        path.write_bytes(b"partial")
    return leftovers, stays


def test_opening_a_run_removes_the_leftovers_of_killed_writes_only(copied):
    leftovers, stays = _leave_temporaries(copied / "run")
    Run.open(copied / "run")
    assert [path for path in leftovers if path.exists()] == []
    assert all(path.exists() for path in stays)


def test_the_next_command_on_a_run_removes_the_leftovers(copied, capsys):
    leftovers, _ = _leave_temporaries(copied / "run")
    assert main(["evaluate", str(copied / "run"), "--baselines", "none"]) == 0
    assert [path for path in leftovers if path.exists()] == []


def test_tunes_checkpoint_rewrite_refuses_a_crafted_file_and_runs_nothing(tmp_path):
    from pyro_lfads.extensions.tune import _set_checkpoint_lr  # the one place tune reads a checkpoint

    marker = tmp_path / "marker"
    _craft(tmp_path / "last.pt", marker)
    with pytest.raises(InputError, match="not a pyro-lfads checkpoint"):
        _set_checkpoint_lr(tmp_path / "last.pt", 0.001)
    assert not marker.exists()
