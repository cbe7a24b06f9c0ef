"""``pyro-lfads diagnose`` and ``report`` on a tiny fitted run: the JSON, the files, the page."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import arviz as az
import numpy as np
import pytest

from pyro_lfads.cli import main
from pyro_lfads.data import save_dataset


class _Images(HTMLParser):
    """Collects the ``src`` of every <img> and the page's text."""

    def __init__(self):
        super().__init__()
        self.sources, self.text = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def tiny_run(tiny_lorenz, tmp_path_factory):
    """A 2-epoch run with one inferred input, fitted through the command line on a data file."""
    root = tmp_path_factory.mktemp("report")
    data = root / "tiny.h5"
    save_dataset(tiny_lorenz, data)
    config = root / "tiny.yaml"
    config.write_text("gen_dim: 16\nfac_dim: 4\nic_enc_dim: 8\nci_enc_dim: 8\ncon_dim: 8\nco_dim: 1\n"
                      "batch_size: 32\nkl_ramp_steps: 10\n")
    run = root / "run"
    assert main(["fit", str(data), "--out", str(run), "--config", str(config), "--max-epochs", "2", "--quiet"]) == 0
    return run


@pytest.mark.filterwarnings("ignore:Estimated shape parameter:UserWarning")  # az.loo on a 2-epoch model
@pytest.mark.slow
def test_diagnose_prints_the_summary_and_writes_netcdf(tiny_run, tiny_lorenz, capsys):
    capsys.readouterr()
    assert main(["diagnose", str(tiny_run), "--samples", "4", "--importance-samples", "30", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("khat_fraction_below_0_7", "khat_median", "iwae_minus_elbo", "ppc_count_total_variation",
                "ppc_fano_coverage", "ppc_psth_coverage", "ppc_psth_r2"):
        assert isinstance(summary[key], float), key
    assert summary["n_trials"] == tiny_lorenz.valid.n_trials
    data = az.from_netcdf(str(tiny_run / "inference_data.nc"))
    assert data.posterior["u"].shape[:3] == (1, 4, tiny_lorenz.valid.n_trials)
    assert data.posterior["time"].values[1] == 10.0  # --bin-ms 10 by default
    loo = az.loo(data)  # pointwise over every (trial, bin, neuron) of the validation split
    assert np.isfinite(loo.elpd_loo) and loo.n_data_points == tiny_lorenz.valid.recon_data.size
    saved = json.loads((tiny_run / "diagnostics.json").read_text())
    assert saved["summary"] == summary and len(saved["per_trial"]["khat"]) == tiny_lorenz.valid.n_trials
    per_trial = saved["per_trial"]
    assert summary["iwae_minus_elbo"] == pytest.approx(np.mean(np.subtract(per_trial["iwae"], per_trial["elbo"])))
    assert summary["khat_median"] == pytest.approx(np.median(per_trial["khat"]))


@pytest.mark.slow
def test_report_writes_every_figure_and_a_page_that_shows_them(tiny_run, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(tiny_run), "--out", str(out), "--quiet"]) == 0
    assert str(out / "index.html") in capsys.readouterr().out
    page = _Images()
    page.feed((out / "index.html").read_text())
    expected = {"training.png", "raster.png", "rates.png", "rate_scatter.png", "factors.png", "inputs.png",
                "ppc.png", "khat.png"}
    assert set(page.sources) == expected
    for name in expected:
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    text = " ".join(page.text)
    for number in ("khat_fraction_below_0_7", "iwae_minus_elbo", "rate R2 vs truth", "ppc_psth_coverage"):
        assert number in text, number


def test_diagnose_and_report_refuse_bad_input_in_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not a pyro-lfads run directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["diagnose", str(tmp_path), "--samples", "1"])
    assert "--samples" in capsys.readouterr().err
