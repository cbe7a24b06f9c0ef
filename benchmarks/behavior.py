"""The behaviour model (``model: behavior``) against plain LFADS, on synthetic truth and on the real M1 recording.

Data:

- ``synthetic``: :func:`pyro_lfads.synthetic.behavior_lorenz.make_behavior_lorenz_dataset` (1300 trials, 50 bins
  of 20 ms, 30 neurons: 15 read Lorenz system A, which also drives the 2-D behaviour, 15 read an independent
  system B);
- ``m1``: the M1 recording of ``../shared/data/`` cut into 1 s windows with hand velocity
  (``benchmarks/defaults.py``'s), skipped with a message when the file is absent.

Each is fitted twice with ``pyro-lfads fit`` and the default config: ``model: lfads`` and ``model: behavior``
(``--behavior-weight``, ``--behavior-factors``, default the config's), then ``pyro-lfads posterior``.

One JSON line per fit: ``data``, ``model``, ``behavior_r2`` (validation trials: the behaviour model's own
prediction from spikes, ``behavior_pred``; for LFADS a ridge decoder of its rates fitted on the training
trials), ``bits_per_spike`` (validation spikes), ``fit_seconds``, ``epochs``, and for synthetic data
``relevant_r2`` and ``irrelevant_r2``: the R2 on validation trials of a ridge map (fitted on the training
trials, penalty by cross-validation) from the relevant factors (the behaviour model's first
``behavior_factors``; plain LFADS's all) to system A's and to system B's state.

Run alone (timings): python benchmarks/behavior.py [--data synthetic,m1] [--behavior-weight W] [--behavior-factors K]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from defaults import M1_FILE, m1_windows, pyro_lfads, saved_datasets  # noqa: E402

from pyro_lfads.config import LFADSConfig  # noqa: E402
from pyro_lfads.data import LFADSDataset  # noqa: E402
from pyro_lfads.evaluation.table import evaluate_run  # noqa: E402
from pyro_lfads.fitting.posterior import read_posterior  # noqa: E402
from pyro_lfads.fitting.run import read_training_curve  # noqa: E402
from pyro_lfads.synthetic.behavior_lorenz import make_behavior_lorenz_dataset  # noqa: E402

DATA = ("synthetic", "m1")
MODELS = ("lfads", "behavior")


def make_data(name: str) -> LFADSDataset | None:
    if name == "synthetic":
        return make_behavior_lorenz_dataset(seed=0)
    if not M1_FILE.is_file():
        print(f"m1: skipped, {M1_FILE} is absent", file=sys.stderr)
        return None
    return m1_windows(M1_FILE)


def state_r2(train_factors: np.ndarray, train_state: np.ndarray, valid_factors: np.ndarray,
             valid_state: np.ndarray) -> float:
    """R2 on the validation bins of a ridge map from factors (trials, T, K) to a state (trials, T, d)."""
    flat = lambda x: x.reshape(-1, x.shape[-1])  # noqa: E731
    ridge = RidgeCV(alphas=np.logspace(-4, 3, 15)).fit(flat(train_factors), flat(train_state))
    return float(r2_score(flat(valid_state), ridge.predict(flat(valid_factors)), multioutput="uniform_average"))


def fit_model(dataset: LFADSDataset, data_path: Path, run_dir: Path, keys: dict) -> dict:
    """Fit one model with the default config and ``keys``; its figures."""
    config_path = run_dir.with_suffix(".yaml")
    config_path.write_text(yaml.safe_dump(keys))
    seconds = pyro_lfads("fit", str(data_path), "--out", str(run_dir), "--quiet", "--overwrite",
                         "--config", str(config_path))
    pyro_lfads("posterior", str(run_dir), "--quiet")
    lfads = evaluate_run(run_dir, baselines=())["lfads"]
    behavior_r2 = lfads["behavior_r2"] if keys["model"] == "behavior" else lfads["vel_r2"]
    row = {"model": keys["model"], "behavior_r2": round(behavior_r2, 4),
           "bits_per_spike": round(lfads["bits_per_spike"], 4), "fit_seconds": round(seconds, 1),
           "epochs": read_training_curve(run_dir)[-1]["epoch"]}
    if "train_irrelevant_latents" in dataset.extras:
        relevant = keys.get("behavior_factors", LFADSConfig.behavior_factors) if keys["model"] == "behavior" else None
        factors = [read_posterior(run_dir, split)["factors"][..., :relevant] for split in ("train", "valid")]
        for figure, key in (("relevant_r2", "latents"), ("irrelevant_r2", "irrelevant_latents")):
            row[figure] = round(state_r2(factors[0], dataset.extras[f"train_{key}"], factors[1],
                                         dataset.extras[f"valid_{key}"]), 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=",".join(DATA), help=f"comma-separated, of {', '.join(DATA)}")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--behavior-weight", type=float, help="the behaviour model's behavior_weight")
    parser.add_argument("--behavior-factors", type=int, help="the behaviour model's behavior_factors")
    parser.add_argument("--out", type=Path, help="keep data and runs here (default: a temporary folder)")
    args = parser.parse_args()
    names, models = args.data.split(","), args.models.split(",")
    if set(names) - set(DATA) or set(models) - set(MODELS):
        parser.error(f"--data of {', '.join(DATA)}; --models of {', '.join(MODELS)}")
    behavior_keys = {key: value for key, value in (("behavior_weight", args.behavior_weight),
                                                    ("behavior_factors", args.behavior_factors)) if value is not None}
    for name, dataset, data_path, out in saved_datasets(names, make_data, args.out):
        for model in models:
            keys = {"model": model, **(behavior_keys if model == "behavior" else {})}
            row = fit_model(dataset, data_path, out / f"{name}_{model}", keys)
            print(json.dumps({"data": name, **row, **(behavior_keys if model == "behavior" else {})}), flush=True)


if __name__ == "__main__":
    main()
