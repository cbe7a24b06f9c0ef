"""``pyro-lfads demo``: the paper's Lorenz benchmark end to end, in minutes on a laptop CPU.

Synthesise, fit, average the posterior, score against the truth and a
smoothing baseline, diagnose (k-hat, IWAE, predictive checks) and write the
report (``RUN_DIR/report/index.html``).

The data are the paper's benchmark (65 conditions x 20 trials of 1 s, 30 neurons, one Euler step per
10 ms), counted in 20 ms bins (``DEMO_BINS``): the same spike trains as 100 bins of 10 ms, in half
the recurrent steps, which is what brings the whole demo under 3 minutes on 2 CPU cores.

The Lorenz system is autonomous (no inputs drive it), so the demo fits LFADS
without inferred inputs (``co_dim = 0``): the initial condition alone explains
each trial. Everything else is the default configuration, which stops the fit
by itself on a plateau of the validation objective.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import save_dataset
from pyro_lfads.diagnostics.summary import diagnose_run
from pyro_lfads.evaluation.table import evaluate_run, with_in_sample
from pyro_lfads.evaluation.nlb_figures import baseline_rates
from pyro_lfads.diagnostics.rate_figures import plot_rates
from pyro_lfads.fitting.posterior import read_posterior, write_posterior
from pyro_lfads.diagnostics.report import write_report
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset
from pyro_lfads.fitting.train import fit

DEMO_CONFIG = LFADSConfig(co_dim=0)
#: The demo's bins: make_lorenz_dataset's arguments (50 bins of 20 ms, two Euler steps each).
DEMO_BINS = dict(n_time=50, bin_ms=20.0, steps_per_bin=2)


def run_demo(out: str | Path, *, device: str = "cpu", max_epochs: int | None = None, progress: bool = True) -> dict:
    """Synthesise, fit, average, evaluate, plot, diagnose and report into ``out``; returns the evaluation dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = DEMO_CONFIG if max_epochs is None else DEMO_CONFIG.replace(max_epochs=max_epochs)
    data_path = out / "lorenz.h5"
    dataset = make_lorenz_dataset(seed=config.seed, **DEMO_BINS)
    save_dataset(dataset, data_path)
    dataset.source = str(data_path)
    print(f"[1/5] synthetic Lorenz data (65 conditions x 20 trials of 1 s, 30 neurons, 50 bins of 20 ms): {data_path}")

    run_dir = out / "run"
    print(f"[2/5] fitting LFADS until the validation objective stops improving ({config.max_epochs} epochs at most) "
          f"into {run_dir}")
    run = fit(dataset, config, run_dir, device=device, overwrite=True, progress=progress)
    state = run.training
    print(f"      {state.epoch} epochs, stopped: {state.stopped}; best epoch {state.best_epoch}")

    print(f"[3/5] posterior averages ({config.posterior_samples} samples per trial)")
    write_posterior(run, dataset, device=device, progress=progress)

    result = evaluate_run(run, dataset, baselines=("smoothing",))  # GPFA adds minutes: see 'evaluate'
    (out / "evaluation.json").write_text(json.dumps(with_in_sample(result), indent=2))
    posterior = read_posterior(run, "valid")
    _, smoothed = baseline_rates("smoothing", dataset)
    spread = tuple(int(i) for i in np.linspace(0, dataset.valid.n_trials - 1, 3))  # different conditions
    figure = plot_rates(dataset.valid.recon_data, posterior["output_params"], out / "rates.png",
                        truth=dataset.truth_counts("valid"), smoothed=smoothed, trials=spread)
    print(f"[4/5] evaluation: {out / 'evaluation.json'}; figure: {figure}")
    lfads, smoothing = result["lfads"], result["smoothing"]
    print(f"validation rate R2: LFADS {lfads['rate_r2']:.3f}, smoothing {smoothing['rate_r2']:.3f}; "
          f"PSTH R2: LFADS {lfads['psth_r2']:.3f}, smoothing {smoothing['psth_r2']:.3f}; "
          f"LFADS bits/spike {lfads['bits_per_spike']:.3f} (in-sample)")
    print(json.dumps(with_in_sample(result)))

    print("[5/5] diagnostics (PSIS k-hat, IWAE, posterior predictive checks) and the report")
    diagnostics = diagnose_run(run, dataset, device=device, progress=progress)
    index = write_report(run, dataset, device=device, progress=progress)
    print(f"k-hat below 0.7 on {diagnostics['khat_fraction_below_0_7']:.0%} of validation trials "
          f"(median {diagnostics['khat_median']:.2f}); IWAE - ELBO {diagnostics['iwae_minus_elbo']:.2f} nats/trial; "
          f"report: {index}")
    print(json.dumps(diagnostics))
    return result
