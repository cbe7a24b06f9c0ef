"""LFADS as a Pyro probabilistic program.

The Python API in a few names (see README.md and examples/):

    dataset = load_dataset("data.h5")            # or dataset_from_arrays(...), make_lorenz_dataset()
    run = fit(dataset, LFADSConfig(), "run")     # SVI; writes the run directory, returns its Run
    draws = predictive(run, num_samples=50)(dataset.valid)   # a pyro.infer.Predictive: {"rates": (S, B, T, N), ...}
    write_posterior(run)                         # posterior means and stds of its draws -> run/posterior.h5
    write_posterior_of(run, "day2.h5", "day2_posterior.h5")  # the fitted model applied to new trials
    evaluate_run(run)                            # NLB figures, LFADS next to smoothing and GPFA
    run = Run.open("run")                        # a run directory written before, opened once

Every function that reads a run takes a :class:`Run` or its directory.
"""

from pyro_lfads.version import __version__  # noqa: E402

from pyro_lfads.config import LFADSConfig  # noqa: E402
from pyro_lfads.data import dataset_from_arrays, load_dataset, save_dataset  # noqa: E402
from pyro_lfads.evaluation.table import evaluate_run  # noqa: E402
from pyro_lfads.fitting.new_data import write_posterior_of  # noqa: E402
from pyro_lfads.fitting.posterior import read_posterior, write_posterior  # noqa: E402
from pyro_lfads.fitting.predictive import predictive  # noqa: E402
from pyro_lfads.fitting.run import Run, load_fitted  # noqa: E402
from pyro_lfads.fitting.train import fit  # noqa: E402

__all__ = ["LFADSConfig", "load_dataset", "save_dataset", "dataset_from_arrays", "fit", "Run", "predictive",
           "write_posterior", "write_posterior_of", "read_posterior", "evaluate_run", "load_fitted", "__version__"]
