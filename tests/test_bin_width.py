"""The bin width travels: data files carry ``bin_width_s``, run.json records it, and ``diagnose``, ``report`` and
the spikes/s axes use it; an explicit ``--bin-ms`` that contradicts it is one line."""

from __future__ import annotations

import dataclasses
import json

import arviz as az
import h5py
import numpy as np
import pytest

from pyro_lfads.cli import main
from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import dataset_from_arrays, load_dataset, save_dataset
from pyro_lfads.data.nlb_writing import save_nlb_tensors
from pyro_lfads.diagnostics import report
from pyro_lfads.diagnostics.summary import diagnose_run
from pyro_lfads.errors import InputError
from pyro_lfads.fitting.run import Run
from pyro_lfads.fitting.train import fit
from pyro_lfads.synthetic.calcium import make_calcium_dataset
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset
from pyro_lfads.synthetic.lorenz_nlb import make_nlb_lorenz_dataset

TINY = LFADSConfig(gen_dim=8, fac_dim=3, ic_enc_dim=8, co_dim=0, batch_size=16, max_epochs=1, posterior_samples=2)


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_data_files_carry_the_bin_width_and_files_without_it_read_as_unknown(tiny_lorenz, tmp_path, suffix):
    assert tiny_lorenz.bin_width_s == 0.01
    save_dataset(tiny_lorenz, tmp_path / f"with{suffix}")
    assert load_dataset(tmp_path / f"with{suffix}").bin_width_s == 0.01
    save_dataset(dataclasses.replace(tiny_lorenz, bin_width_s=None), tmp_path / f"without{suffix}")
    assert load_dataset(tmp_path / f"without{suffix}").bin_width_s is None


def test_a_bin_width_is_a_positive_number(tiny_lorenz):
    counts = tiny_lorenz.train.recon_data
    assert dataset_from_arrays(counts, counts, bin_width_s=0.005).bin_width_s == 0.005
    for bad in (0.0, -0.01, float("nan")):
        with pytest.raises(InputError, match="<arrays>: bin_width_s: must be a positive finite scalar"):
            dataset_from_arrays(counts, counts, bin_width_s=bad)
    with pytest.raises(InputError, match="bin_width_s: must be a positive finite scalar, got shape"):
        dataset_from_arrays(counts, counts, bin_width_s=[0.01, 0.02])


@pytest.mark.filterwarnings("ignore:.*not written \\(not part of the NLB layout\\)")
def test_every_synthetic_system_and_the_nlb_layout_record_their_width(tmp_path):
    assert make_lorenz_dataset(seed=0, n_conditions=2, trials_per_condition=5, n_time=10, bin_ms=20.0).bin_width_s \
        == 0.02
    calcium = make_calcium_dataset(seed=0, n_conditions=2, trials_per_condition=5, n_frames=6, frame_bins=3)
    assert calcium.bin_width_s == pytest.approx(0.03)  # one frame of 3 fine bins of 10 ms
    nlb = make_nlb_lorenz_dataset(seed=0)
    save_nlb_tensors(nlb, tmp_path / "nlb.h5", n_heldin=nlb.train.encod_data.shape[2])
    assert load_dataset(tmp_path / "nlb.h5").bin_width_s == nlb.bin_width_s == 0.01
    assert main(["synth", "lorenz", "--out", str(tmp_path / "lorenz.h5")]) == 0
    with h5py.File(tmp_path / "lorenz.h5") as h5:
        assert h5["bin_width_s"][()] == 0.01


@pytest.fixture(scope="module")
def run_20ms(tmp_path_factory):
    """A 1-epoch run on a file of 20 ms bins (fitted through the command line)."""
    root = tmp_path_factory.mktemp("bin_width")
    save_dataset(make_lorenz_dataset(seed=1, n_conditions=6, trials_per_condition=8, n_neurons=10, n_time=20,
                                     bin_ms=20.0), root / "data.h5")
    TINY.to_yaml(root / "tiny.yaml")
    assert main(["fit", str(root / "data.h5"), "--out", str(root / "run"), "--config", str(root / "tiny.yaml"),
                 "--quiet"]) == 0
    return root / "run"


@pytest.mark.slow
def test_run_json_records_the_width_and_an_override_must_agree(run_20ms, tiny_lorenz, tmp_path):
    assert json.loads((run_20ms / "run.json").read_text())["bin_width_s"] == 0.02
    run = Run.open(run_20ms)
    assert run.bin_ms() == run.bin_ms(20.0) == pytest.approx(20.0)
    with pytest.raises(InputError, match=r"^bin_ms: 10 ms contradicts the bin width of 20 ms recorded for .*; "
                                         r"leave bin_ms out to use the recorded width$"):
        run.bin_ms(10.0)
    with pytest.raises(InputError, match="^bin_ms: must be a positive number of milliseconds, got -1"):
        run.bin_ms(-1)
    unknown = fit(dataclasses.replace(tiny_lorenz, bin_width_s=None), TINY, tmp_path / "unknown", progress=False)
    assert unknown.info.bin_width_s is None and unknown.bin_ms() is None and unknown.bin_ms(7.0) == 7.0


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Estimated shape parameter:UserWarning")
def test_diagnose_and_report_use_the_recorded_width(run_20ms, monkeypatch, capsys):
    diagnose_run(run_20ms, samples=2, importance_samples=30, progress=False)
    data = az.from_netcdf(str(run_20ms / "inference_data.nc"))
    np.testing.assert_allclose(data.posterior["time"].values[:3], [0.0, 20.0, 40.0])  # ms, 20 ms bins
    drawn = []
    original = report.plot_rates

    def spy(*args, bin_ms, **kwargs):
        drawn.append(bin_ms)
        return original(*args, bin_ms=bin_ms, **kwargs)

    monkeypatch.setattr(report, "plot_rates", spy)
    index = report.write_report(run_20ms, progress=False)
    assert drawn == [pytest.approx(20.0)]  # counts per bin x 50 = spikes/s
    assert "20 ms (recorded)" in index.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["diagnose", "report"])
def test_an_explicit_bin_ms_that_contradicts_the_recorded_width_is_one_line(run_20ms, capsys, command):
    capsys.readouterr()
    assert main([command, str(run_20ms), "--bin-ms", "5", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == (f"pyro-lfads: error: --bin-ms: 5 ms contradicts the bin width of 20 ms recorded for {run_20ms} "
                   "(from its data file); leave --bin-ms out to use the recorded width\n")


@pytest.mark.slow
def test_a_report_of_data_without_a_width_says_what_it_assumes(tiny_lorenz, tmp_path):
    run = fit(dataclasses.replace(tiny_lorenz, bin_width_s=None), TINY, tmp_path / "run", progress=False)
    with pytest.warns(UserWarning, match="records no bin width .* assume 10 ms bins"):
        index = report.write_report(run, dataclasses.replace(tiny_lorenz, bin_width_s=None), progress=False)
    assert "10 ms (assumed, the data records none)" in index.read_text()
