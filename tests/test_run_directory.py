"""A run directory that cannot be corrupted: stale derived files are refused, a foreign folder is left
alone, and one writer at a time holds the run's lock."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap

import pytest

from pyro_lfads.cli import main
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import save_dataset
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.derived_files import REPORT_FILES
from pyro_lfads.fitting.run import BEST, CURVE_FILE, INFO_FILE, LAST, Run, RunInfo
from pyro_lfads.fitting.run_lock import LOCK_FILE, _open_locked, run_lock
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset

TINY = LFADSConfig(gen_dim=16, fac_dim=4, ic_enc_dim=8, co_dim=0, batch_size=32, kl_ramp_steps=10,
                   max_epochs=1, posterior_samples=2)
DERIVED = ("posterior.h5", "decoding_session1.h5", "diagnostics.json", "inference_data.nc", "report/index.html",
           "report/khat.png")


@pytest.fixture
def files(tiny_lorenz, tmp_path):
    """(data file with behaviour, other data file of the same shapes, config file) in tmp_path."""
    data, other, config = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "tiny.yaml"
    with_behavior = copy.copy(tiny_lorenz)
    with_behavior.extras = {**tiny_lorenz.extras, **{f"{split}_behavior": tiny_lorenz.extras[f"{split}_latents"][..., :2]
                                                     for split in ("train", "valid")}}
    save_dataset(with_behavior, data)
    save_dataset(make_lorenz_dataset(seed=4, n_conditions=12, trials_per_condition=10, n_neurons=20, n_time=40),
                 other)
    TINY.to_yaml(config)
    return data, other, config


def _call(capsys, *args) -> tuple[int, str]:
    """(exit status, stderr) of ``pyro-lfads ARGS`` run in this process; its stdout is dropped."""
    capsys.readouterr()
    code = main([str(arg) for arg in args])
    return code, capsys.readouterr().err


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("pyro-lfads: error: ") and "Traceback" not in err, err
    return err


def _listing(folder) -> dict:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def _run_folder(folder, tiny_lorenz, extra=()) -> tuple[RunInfo, list]:
    """A run record of TINY on tiny_lorenz in ``folder`` (no fit), a last checkpoint, the derived files and
    ``extra`` (files of the user's); returns the record and the paths written."""
    info = RunInfo.describe(tiny_lorenz, TINY)
    Run.create(folder, TINY, info)
    written = [folder / name for name in (LAST, BEST, CURVE_FILE, *DERIVED, *extra)]
    for path in written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    return info, written


# --- derived files -------------------------------------------------------------------------------
def test_starting_afresh_removes_the_derived_files_and_nothing_else(tiny_lorenz, tmp_path):
    mine = ("notes.txt", "report/mine.png", "checkpoints/my_model.pt", "posterior_backup.h5")
    info, written = _run_folder(tmp_path, tiny_lorenz, mine)
    Run.begin_fit(tmp_path, TINY.replace(gen_dim=12), info, overwrite=True)
    assert sorted(path.name for path in written if path.exists()) == sorted(os.path.basename(m) for m in mine)


def test_a_resume_keeps_the_derived_files_for_their_records_to_judge(tiny_lorenz, tmp_path):
    info, written = _run_folder(tmp_path, tiny_lorenz)
    _, resume = Run.begin_fit(tmp_path, TINY.replace(max_epochs=3), info)
    assert resume and all(path.exists() for path in written)


def test_the_report_names_every_figure_it_draws_as_a_derived_file():
    from pyro_lfads.diagnostics.report_page import CAPTIONS

    assert set(CAPTIONS) <= set(REPORT_FILES)


@pytest.mark.slow
def test_a_refit_on_other_data_makes_the_old_posterior_stale(files, tmp_path, capsys):
    data, other, config = files
    run = tmp_path / "run"
    assert _call(capsys, "fit", data, "--out", run, "--config", config, "--quiet")[0] == 0
    assert _call(capsys, "posterior", run, "--quiet")[0] == 0
    old = (run / "posterior.h5").read_bytes()
    assert _call(capsys, "fit", other, "--out", run, "--config", config, "--overwrite", "--quiet")[0] == 0
    assert not (run / "posterior.h5").exists()  # removed by the fresh start
    code, err = _call(capsys, "evaluate", run, "--baselines", "none")
    assert code == 2 and "no posterior yet" in _one_line(err)
    (run / "posterior.h5").write_bytes(old)  # a stale posterior put back (a copy, a backup) is refused
    code, err = _call(capsys, "evaluate", run, "--baselines", "none")
    assert code == 2 and "posterior.h5: was made from another checkpoint (epoch 1)" in _one_line(err)
    assert err.rstrip().endswith(f"rerun 'pyro-lfads posterior {run}'")
    assert _call(capsys, "posterior", run, "--quiet")[0] == 0
    assert _call(capsys, "evaluate", run, "--baselines", "none")[0] == 0


@pytest.mark.slow
def test_a_resume_to_more_epochs_makes_evaluate_decode_and_report_refuse_until_posterior(files, tmp_path, capsys,
                                                                                        monkeypatch):
    from pyro_lfads.diagnostics import report
    from pyro_lfads.diagnostics.summary import read_diagnostics

    data, _, config = files
    run = tmp_path / "run"
    assert _call(capsys, "fit", data, "--out", run, "--config", config, "--quiet")[0] == 0
    assert _call(capsys, "posterior", run, "--quiet")[0] == 0
    assert _call(capsys, "diagnose", run, "--samples", "2", "--importance-samples", "4", "--quiet")[0] == 0
    before = (run / BEST).read_bytes()
    assert _call(capsys, "fit", "--resume", run, "--max-epochs", "4", "--quiet")[0] == 0
    assert (run / BEST).read_bytes() != before, "the resumed fit found no better epoch: the test shows nothing"
    for command in (("evaluate", run, "--baselines", "none"), ("decode", run)):
        code, err = _call(capsys, *command)
        assert code == 2 and "was made from another checkpoint (epoch 1)" in _one_line(err), command
    with pytest.raises(InputError, match=r"diagnostics.json: was made from another checkpoint \(epoch 1\).*"
                                         "rerun diagnose_run"):
        read_diagnostics(run)
    assert _call(capsys, "posterior", run, "--quiet")[0] == 0
    assert _call(capsys, "evaluate", run, "--baselines", "none")[0] == 0

    made, diagnose = [], report.diagnose_run
    monkeypatch.setattr(report, "diagnose_run", lambda *args, **kwargs: made.append(1) or diagnose(*args, **kwargs))
    assert _call(capsys, "report", run, "--quiet")[0] == 0  # the stale diagnostics are made again
    os.utime(run / BEST)  # a newer file time alone is no reason to diagnose again
    assert _call(capsys, "report", run, "--quiet")[0] == 0
    assert made == [1]
    assert "of epoch" in (run / "report" / "index.html").read_text()


# --- a foreign folder ----------------------------------------------------------------------------
def test_a_foreign_folder_is_refused_without_overwrite_and_left_unchanged(tiny_lorenz, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "config.yaml").write_text("someone: else\n")
    before = _listing(tmp_path)
    with pytest.raises(InputError, match="is not empty and holds no pyro-lfads run.*pass overwrite=True"):
        Run.begin_fit(tmp_path, TINY, RunInfo.describe(tiny_lorenz, TINY))
    assert _listing(tmp_path) == before


@pytest.mark.slow
def test_fit_into_a_foreign_folder_needs_overwrite_and_keeps_its_other_files(files, tmp_path, capsys):
    data, _, config = files
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "config.yaml").write_text("someone: else\n")
    before = _listing(folder)
    code, err = _call(capsys, "fit", data, "--out", folder, "--config", config, "--quiet")
    assert code == 2 and "holds no pyro-lfads run" in _one_line(err) and "--overwrite" in err
    assert _listing(folder) == before
    assert _call(capsys, "fit", data, "--out", folder, "--config", config, "--overwrite", "--quiet")[0] == 0
    assert (folder / "notes.txt").read_text() == "mine" and (folder / INFO_FILE).is_file()
    assert not (folder / LOCK_FILE).exists()


# --- the lock ------------------------------------------------------------------------------------
def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    holder = _open_locked(tmp_path / LOCK_FILE, "fit")  # another open file description: another writer
    try:
        with pytest.raises(InputError, match=rf"in use by another command \(pid {os.getpid()}, fit \(.*\), "
                                             r"started \d{4}-\d\d-\d\d [\d:]+\); wait until it ends"):
            with run_lock(tmp_path, "write_posterior"):
                pass
    finally:
        os.close(holder)
    with run_lock(tmp_path, "write_posterior"):
        with run_lock(tmp_path, "diagnose_run"):  # held again by the same process
            assert json.loads((tmp_path / LOCK_FILE).read_text())["command"] == "write_posterior"
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_refused_writer_leaves_no_folder_behind(tmp_path):
    with pytest.raises(InputError, match="not a pyro-lfads run directory"):
        from pyro_lfads.fitting.posterior import write_posterior

        write_posterior(tmp_path / "nothing", progress=False)
    assert not (tmp_path / "nothing").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="exists and is not a directory"):
        with run_lock(tmp_path / "file", "fit"):
            pass


HOLD = textwrap.dedent("""
    import sys
    from pyro_lfads.fitting.run_lock import run_lock
    with run_lock(sys.argv[1], "fit"):
        print("held", flush=True)
        sys.stdin.readline()
""")


@pytest.mark.slow
def test_fit_and_posterior_refuse_while_another_process_holds_the_run(files, tmp_path, capsys):
    data, _, config = files
    run = tmp_path / "run"
    assert _call(capsys, "fit", data, "--out", run, "--config", config, "--quiet")[0] == 0
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        before = _listing(run)
        for command in (("fit", data, "--out", run, "--config", config, "--max-epochs", "2", "--quiet"),
                        ("posterior", run, "--quiet"), ("fit", "--resume", run, "--max-epochs", "2", "--quiet")):
            code, err = _call(capsys, *command)
            assert code == 2 and f"in use by another command (pid {holder.pid}, fit" in _one_line(err), command
        assert _listing(run) == before
    finally:
        holder.communicate("\n", timeout=60)
    assert _call(capsys, "posterior", run, "--quiet")[0] == 0
    assert _call(capsys, "fit", "--resume", run, "--max-epochs", "2", "--quiet")[0] == 0


@pytest.mark.slow
def test_two_identical_fits_at_once_write_each_epoch_once(files, tmp_path):
    data, _, config = files
    run = tmp_path / "run"
    command = [sys.executable, "-m", "pyro_lfads.cli", "fit", str(data), "--out", str(run), "--config", str(config),
               "--max-epochs", "3", "--quiet"]
    processes = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(process.wait(timeout=600), process.stderr.read()) for process in processes]
    assert sorted(code for code, _ in results)[0] == 0 and {code for code, _ in results} <= {0, 2}, results
    for code, err in results:
        if code == 2:
            assert err.count("\n") == 1 and "in use by another command" in err, err
    epochs = [json.loads(line)["epoch"] for line in (run / CURVE_FILE).read_text().splitlines()]
    assert epochs == [1, 2, 3]
