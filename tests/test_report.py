"""``pyro-lfads diagnose`` and ``report`` on a tiny fitted run: the JSON, the files, the page (its evaluation
table and best epoch)."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import arviz as az
import numpy as np
import pytest

from pyro_lfads.cli import main
from pyro_lfads.data import save_dataset
from pyro_lfads.diagnostics.report import best_epoch, write_report
from pyro_lfads.evaluation.table import IN_SAMPLE, evaluate_run
from pyro_lfads.fitting.checkpoints import load_checkpoint
from pyro_lfads.fitting.run import CURVE_FILE
from pyro_lfads.fitting.train import fit


class _Images(HTMLParser):
    """Collects the ``src`` of every <img>, the page's text, its h2 headings, the key numbers (the first cell
    after each row's heading, {heading: text}) and the evaluation tables' cells ({(method, figure): (text,
    classes)}, one dict per table)."""

    def __init__(self):
        super().__init__()
        self.sources, self.text, self.headings, self.numbers, self.tables = [], [], [], {}, []
        self._open = None  # what the text being read belongs to

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.sources.append(attrs["src"])
        elif tag == "table" and attrs.get("class") == "evaluation":
            self.tables.append({})
        elif tag == "td" and "data-method" in attrs:
            self._open = ("cell", attrs["data-method"], attrs["data-figure"], attrs.get("class") or "")
            self.tables[-1][self._open[1:3]] = ("", self._open[3])
        elif tag == "th":
            self._open = ("th", "")
        elif tag == "td" and self._open is not None and self._open[0] == "th":
            self._open = ("number", self._open[1])
            self.numbers[self._open[1]] = ""
        elif tag == "h2":
            self._open = ("h2",)
            self.headings.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "h2") or (tag == "tr"):
            self._open = None

    def handle_data(self, data):
        self.text.append(data)
        kind = self._open[0] if self._open else None
        if kind == "cell":
            self.tables[-1][self._open[1:3]] = (data, self._open[3])
        elif kind == "th":
            self._open = ("th", self._open[1] + data)
        elif kind == "number":
            self.numbers[self._open[1]] += data
        elif kind == "h2":
            self.headings[-1] += data


def _page(path) -> _Images:
    page = _Images()
    page.feed(path.read_text())
    return page


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
    page = _page(out / "index.html")
    expected = {"training.png", "raster.png", "rates.png", "rate_scatter.png", "rate_r2_by_bin.png", "factors.png",
                "inputs.png", "inputs_embedding.png", "ppc.png", "khat.png"}
    assert set(page.sources) == expected
    for name in expected:
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    text = " ".join(page.text)
    for number in ("khat_fraction_below_0_7", "iwae_minus_elbo", "rate R2 vs truth", "ppc_psth_coverage",
                   "inputs embedding: k-NN accuracy of conditions (chance)"):
        assert number in text, number


@pytest.mark.slow
def test_the_report_shows_lfads_against_the_smoothing_baseline_with_in_sample_figures_marked(tiny_run):
    """The page's evaluation table holds evaluate_run's figures (the posterior the report made first), every
    in-sample figure marked and no other."""
    index = write_report(tiny_run, progress=False)
    (table,) = _page(index).tables
    expected = evaluate_run(tiny_run, baselines=("smoothing",))
    assert {method for method, _ in table} == {"lfads", "smoothing"}
    shown = 0
    for method, figures in expected.items():
        for figure, value in figures.items():
            if isinstance(value, (str, list)):  # notes and per-bin curves are not table cells
                continue
            text, classes = table[method, figure]
            assert text.split(" ")[0] == f"{value:.4g}", (method, figure)
            assert ("in-sample" in classes) == (figure in IN_SAMPLE) == text.endswith("\u2020"), (method, figure)
            shown += 1
    assert {"heldin_bps", "rate_r2", "psth_r2"} <= set(expected["smoothing"]) and shown >= 12
    assert "in-sample" in table["smoothing", "heldin_bps"][1] and "in-sample" not in table["smoothing", "rate_r2"][1]
    assert "GPFA" in " ".join(_page(index).text)  # left out, and the page says where to get it


def test_best_epoch_is_chosen_by_the_metric_that_chose_best_pt(tiny_config):
    records = [{"epoch": 1, "valid_loss": 5.0, "valid_recon": 3.0},
               {"epoch": 2, "valid_loss": 4.0, "valid_recon": 3.5},
               {"epoch": 3, "valid_loss": 4.5, "valid_recon": 2.5},
               {"epoch": 4, "valid_loss": 4.2, "valid_recon": 2.5}]
    assert best_epoch(records, tiny_config) == (2, "valid_loss")
    assert best_epoch(records, tiny_config.replace(checkpoint_metric="recon")) == (3, "valid_recon")  # first of ties
    with_sv = [{**record, "valid_sv_recon": 1.0 / record["epoch"]} for record in records]
    assert best_epoch(with_sv, tiny_config.replace(checkpoint_metric="recon")) == (4, "valid_sv_recon")


@pytest.mark.slow
def test_under_checkpoint_metric_recon_the_report_shows_the_recon_best_epoch(tiny_lorenz, tiny_config, tmp_path):
    run = fit(tiny_lorenz, tiny_config.replace(checkpoint_metric="recon", co_dim=0, max_epochs=4), tmp_path / "run",
              progress=False)
    curve = run.directory / CURVE_FILE
    records = [json.loads(line) for line in curve.read_text().splitlines()]
    recon_best = min(records, key=lambda record: record["valid_recon"])["epoch"]
    assert load_checkpoint(run.checkpoint_path("best"))["epoch"] == recon_best
    for record in records:  # the lowest -ELBO elsewhere, so a report that read valid_loss would show another epoch
        record["valid_loss"] = -1.0 if record["epoch"] != recon_best else 1e9
    curve.write_text("".join(json.dumps(record) + "\n" for record in records))
    page = _page(write_report(run, tiny_lorenz, progress=False))
    assert page.numbers["best epoch"] == str(recon_best) and page.numbers["best epoch chosen by"] == "valid_recon"


def test_diagnose_and_report_refuse_bad_input_in_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not a pyro-lfads run directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["diagnose", str(tmp_path), "--samples", "1"])
    assert "--samples" in capsys.readouterr().err
