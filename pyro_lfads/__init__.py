"""LFADS as a Pyro probabilistic program.

The Python API in a few names (see README.md and examples/):

    dataset = load_dataset("data.h5")            # or dataset_from_arrays(...), make_lorenz_dataset()
    fit(dataset, LFADSConfig(), "run")           # SVI; writes the run directory
    write_posterior("run", dataset)              # Predictive posterior averages -> run/posterior.h5
    evaluate_run("run", dataset)                 # NLB figures, LFADS next to smoothing and GPFA
"""

__version__ = "0.1.0"

from .config import LFADSConfig  # noqa: E402
from .data import dataset_from_arrays, load_dataset, save_dataset  # noqa: E402
from .evaluate import evaluate_run  # noqa: E402
from .posterior import read_posterior, write_posterior  # noqa: E402
from .run import load_fitted  # noqa: E402
from .train import fit  # noqa: E402

__all__ = ["LFADSConfig", "load_dataset", "save_dataset", "dataset_from_arrays", "fit", "write_posterior",
           "read_posterior", "evaluate_run", "load_fitted", "__version__"]
