"""The panel of data sets the default configuration must serve, each fitted as a new user would.

Every data set is written to an LFADS HDF5 file and fitted with ``pyro-lfads fit DATA --out RUN``
and no config (``--config YAML`` to try other settings), then ``pyro-lfads posterior``; the
validation trials are scored in Python. The data sets:

- Lorenz variants (the paper's system, Methods 2.1, generated here with settings that are not
  the demo's): bins (50, 100), bin width (10, 20 ms), firing rates (about 3, 8 and 20 spikes/s),
  trials (200, 1300, 3000) and neurons (20, 30, 100);
- the chaotic RNN (Methods 2.2, gamma 1.5);
- the real M1 recording ``../shared/data/m1_stevenson_2011.mat`` (171 units, 50 ms bins, 13
  minutes of continuous reaching), cut into windows of ``M1_WINDOW_BINS`` bins, every fifth
  window for validation; skipped with a message when the file is absent.

One JSON line per data set: ``dataset``, ``trials`` (train + valid), ``bins``, ``neurons``,
``spikes_per_s``, ``epochs``, ``best_epoch``, ``stop_reason``, ``fit_seconds`` (the fit command's
wall time, start-up included), ``bits_per_spike``, and ``rate_r2`` with ``first_bins_r2_gap`` (synthetic) or
``velocity_r2`` with ``smoothing_velocity_r2`` (real: ridge decoders of hand velocity from
LFADS rates and from the NLB smoothing baseline's). With ``--tuned`` the data sets of fewer
than 1000 trials or 30 neurons are fitted a second time, 5x as long (``max_epochs`` five times
the default fit's epochs, no early stop, ramp and learning-rate patience five times as long;
best checkpoint by the same validation objective): ``tuned_rate_r2`` and ``tuned_epochs``.

Run alone (timings): python benchmarks/defaults.py [--datasets a,b] [--config YAML] [--tuned] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import LFADSDataset, Split, save_dataset
from pyro_lfads.fitting.posterior import read_posterior
from pyro_lfads.fitting.run import read_training_curve
from pyro_lfads.evaluation.nlb_figures import baseline_rates, score_rates
from pyro_lfads.synthetic.chaotic_rnn import make_chaotic_rnn_dataset
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset

M1_FILE = Path(__file__).resolve().parents[2] / "shared" / "data" / "m1_stevenson_2011.mat"
M1_WINDOW_BINS = 20  # 1 s of 50 ms bins
M1_VALID_EVERY = 5

#: name -> make_lorenz_dataset arguments (20 trials per condition, 80% of each condition to train)
LORENZ = {
    "lorenz_50x20ms": dict(n_conditions=65, n_time=50, bin_ms=20.0, seed=11),
    "lorenz_100x10ms": dict(n_conditions=65, n_time=100, bin_ms=10.0, seed=12),
    "lorenz_low_rate": dict(n_conditions=65, n_time=50, bin_ms=20.0, baseline_rate_hz=2.0, seed=13),
    "lorenz_high_rate": dict(n_conditions=50, n_time=100, bin_ms=10.0, baseline_rate_hz=12.0, seed=14),
    "lorenz_200_trials": dict(n_conditions=10, n_time=50, bin_ms=20.0, seed=15),
    "lorenz_3000_trials": dict(n_conditions=150, n_time=50, bin_ms=20.0, seed=16),
    "lorenz_20_neurons": dict(n_conditions=65, n_time=50, bin_ms=20.0, n_neurons=20, seed=17),
    "lorenz_100_neurons": dict(n_conditions=65, n_time=50, bin_ms=20.0, n_neurons=100, seed=18),
}
DATASETS = (*LORENZ, "chaotic_rnn", "m1_stevenson")


def make_dataset(name: str) -> LFADSDataset | None:
    """The panel's data set ``name``; None for the real recording when its file is absent."""
    if name in LORENZ:
        return make_lorenz_dataset(**{"trials_per_condition": 20, **LORENZ[name]})
    if name == "chaotic_rnn":
        return make_chaotic_rnn_dataset(seed=19, n_conditions=100)
    if not M1_FILE.is_file():
        print(f"m1_stevenson: skipped, {M1_FILE} is absent", file=sys.stderr)
        return None
    return m1_windows(M1_FILE)


def m1_windows(path: Path) -> LFADSDataset:
    """The continuous M1 recording cut into consecutive windows of M1_WINDOW_BINS bins; every
    M1_VALID_EVERY-th window is a validation trial. ``{split}_behavior`` holds hand velocity (x, y)."""
    from scipy.io import loadmat

    recording = loadmat(path)
    spikes = recording["spikes"].T.astype(np.float32)  # (bins, units)
    velocity = recording["handVel"][:2].T.astype(np.float32)  # (bins, 2)
    n_windows = spikes.shape[0] // M1_WINDOW_BINS
    keep = n_windows * M1_WINDOW_BINS
    spikes = spikes[:keep].reshape(n_windows, M1_WINDOW_BINS, -1)
    velocity = velocity[:keep].reshape(n_windows, M1_WINDOW_BINS, 2)
    is_valid = np.arange(n_windows) % M1_VALID_EVERY == M1_VALID_EVERY - 1
    splits, extras = {}, {}
    for name, rows in (("train", np.flatnonzero(~is_valid)), ("valid", np.flatnonzero(is_valid))):
        splits[name] = Split(spikes[rows], spikes[rows], None, None, rows.astype(np.int64))
        extras[f"{name}_behavior"] = velocity[rows]
    return LFADSDataset(splits["train"], splits["valid"], 20.0, str(path), extras)


def saved_datasets(names, make, out: Path | None):
    """Yield (name, data set, its file, the folder) for each of ``names`` whose ``make(name)`` is not None, each
    data set written to ``{folder}/{name}.h5``; the folder is ``out`` (created) or a temporary one."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            dataset = make(name)
            if dataset is not None:
                save_dataset(dataset, folder / f"{name}.h5")
                yield name, dataset, folder / f"{name}.h5", folder


def pyro_lfads(*args: str) -> float:
    """Run the ``pyro-lfads`` command; returns its wall time in seconds (raises on failure)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pyro_lfads.cli", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def fit_and_score(dataset: LFADSDataset, data_path: Path, run_dir: Path, config: Path | None) -> dict:
    """Fit, average the posterior and score the validation trials; the figures of one run."""
    fit_seconds = pyro_lfads("fit", str(data_path), "--out", str(run_dir), "--quiet", "--overwrite",
                             *(["--config", str(config)] if config else []))
    pyro_lfads("posterior", str(run_dir), "--quiet")
    curve = read_training_curve(run_dir)
    rates = [read_posterior(run_dir, split)["output_params"] for split in ("train", "valid")]
    scores = score_rates(dataset, *rates)
    best = min(curve, key=lambda record: record.get("valid_sv_recon", record["valid_loss"]))
    result = {"epochs": curve[-1]["epoch"], "best_epoch": best["epoch"], "stop_reason": curve[-1]["stop_reason"],
              "fit_seconds": round(fit_seconds, 1), "bits_per_spike": scores["heldin_bps"]}
    if "rate_r2" in scores:
        result.update(rate_r2=scores["rate_r2"], first_bins_r2_gap=round(scores["first_bins_r2_gap"], 4))
    if "vel_r2" in scores:
        result["velocity_r2"] = scores["vel_r2"]
        result["smoothing_velocity_r2"] = score_rates(dataset, *baseline_rates("smoothing", dataset))["vel_r2"]
    return result


def tuned_config(base: Path | None, epochs: int, out: Path) -> Path:
    """A config file for the fit 5x as long: ``base``'s keys, max_epochs 5 * epochs, no early stop, the
    ramp and the learning-rate patience five times as long."""
    keys = yaml.safe_load(base.read_text()) if base else {}
    keys.update(max_epochs=5 * epochs, patience=0,
                kl_ramp_epochs=5 * keys.get("kl_ramp_epochs", LFADSConfig.kl_ramp_epochs),
                lr_patience=5 * keys.get("lr_patience", LFADSConfig.lr_patience))
    out.write_text(yaml.safe_dump(keys))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"comma-separated subset of {', '.join(DATASETS)} (default: all)")
    parser.add_argument("--config", type=Path, help="YAML of config keys for every fit (default: none)")
    parser.add_argument("--tuned", action="store_true",
                        help="also fit the small data sets 5x as long (tuned_rate_r2)")
    parser.add_argument("--out", type=Path, help="keep data and runs here (default: a temporary folder)")
    args = parser.parse_args()
    names = [name for name in args.datasets.split(",") if name]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        parser.error(f"--datasets: unknown {unknown}; choose from {', '.join(DATASETS)}")
    for name, dataset, data_path, out in saved_datasets(names, make_dataset, args.out):
        spikes = dataset.train.recon_data
        row = {"dataset": name, "trials": dataset.train.n_trials + dataset.valid.n_trials,
               "bins": dataset.train.n_time, "neurons": dataset.train.n_neurons,
               "spikes_per_s": round(float(spikes.mean() * dataset.conversion_factor), 2)}
        row.update(fit_and_score(dataset, data_path, out / name, args.config))
        small = row["trials"] < 1000 or row["neurons"] < 30
        if args.tuned and small and "rate_r2" in row:
            config = tuned_config(args.config, row["epochs"], out / f"{name}_tuned.yaml")
            tuned = fit_and_score(dataset, data_path, out / f"{name}_tuned", config)
            row.update(tuned_rate_r2=tuned["rate_r2"], tuned_epochs=tuned["epochs"])
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
