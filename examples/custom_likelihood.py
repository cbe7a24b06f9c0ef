"""Swap the likelihood: add a Student-t observation model for heavy-tailed signals.

The recipe: copy the observation model closest to yours from
``models/likelihoods.py`` (here ``GaussianLikelihood``) and edit its
distribution and parameters. Then, from Python, register it under a name
and set ``likelihood`` to that name; from the command line, name the class
where it lives, ``package.module:ClassName``:

    pyro-lfads fit data.h5 --out run --likelihood examples.custom_likelihood:StudentTLikelihood
    pyro-lfads posterior run && pyro-lfads evaluate run && pyro-lfads report run

(from the repository's folder, where ``examples.custom_likelihood`` is
importable; elsewhere put its folder on PYTHONPATH). config.yaml records the
name, and each later command imports the module again. Training, posterior
averaging and evaluation then work as for the built-in models.

    python examples/custom_likelihood.py --out studentt_example --max-epochs 150 --compare
    python examples/custom_likelihood.py --out studentt_example --max-epochs 150 --cli   # both ways
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyro.distributions as dist
import torch
from torch import nn

import pyro_lfads
from pyro_lfads.models.likelihoods import Observation, register_likelihood
from pyro_lfads.synthetic.lorenz import make_lorenz_dataset


class StudentTLikelihood(nn.Module):
    """x_t ~ StudentT(nu, m_t, s), m_t = W f_t + b, one scale s and one nu per neuron.

    Copied from GaussianLikelihood; the edits: a learned degrees-of-freedom nu
    per neuron, and StudentT in place of Normal.
    """

    support = "real"
    link = "identity"  # the readout gives the mean itself

    def __init__(self, fac_dim: int, n_neurons: int):
        super().__init__()
        self.readout = nn.Linear(fac_dim, n_neurons)
        nn.init.normal_(self.readout.weight, std=fac_dim ** -0.5)
        self.log_scale = nn.Parameter(torch.zeros(n_neurons))
        self.log_df = nn.Parameter(torch.full((n_neurons,), float(np.log(4.0))))  # edit: new parameter

    def init_from_data(self, data: torch.Tensor) -> None:
        flat = data.reshape(-1, data.shape[-1])
        with torch.no_grad():
            self.readout.bias.copy_(flat.median(0).values)
            mad = (flat - flat.median(0).values).abs().median(0).values
            self.log_scale.copy_(mad.clamp_min(1e-3).log())

    def forward(self, factors: torch.Tensor) -> Observation:
        mean = self.readout(factors)
        distribution = dist.StudentT(self.log_df.exp(), mean, self.log_scale.exp())  # edit: StudentT
        return Observation(distribution, mean, mean)


register_likelihood("studentt", StudentTLikelihood)  # the Python way: LFADSConfig(likelihood="studentt")
#: The command line's way: the class where it lives (importable from the repository's folder).
SPEC = "examples.custom_likelihood:StudentTLikelihood"
REPOSITORY = Path(__file__).resolve().parents[1]


def heavy_tailed_lorenz(n_conditions: int, seed: int = 0):
    """Lorenz-driven signals (the 'gaussian' set's mean) with Student-t noise, nu = 2."""
    clean = make_lorenz_dataset(seed=seed, n_conditions=n_conditions, likelihood="gaussian")
    rng = np.random.default_rng(seed + 1)
    splits = {}
    for name in ("train", "valid"):
        truth = getattr(clean, name).truth
        splits[name] = (truth + 0.5 * rng.standard_t(2.0, size=truth.shape)).astype("float32")
    return pyro_lfads.dataset_from_arrays(splits["train"], splits["valid"], train_truth=clean.train.truth,
                                          valid_truth=clean.valid.truth, support="real")


def fit_from_the_command_line(dataset, config, out: Path) -> dict:
    """The same fit through ``pyro-lfads`` (fit, posterior, evaluate), each command a new process run from
    the repository's folder; the evaluation's figures."""
    out.mkdir(parents=True, exist_ok=True)
    data, config_file = out / "heavy_tailed.h5", out / "config.yaml"
    pyro_lfads.save_dataset(dataset, data)
    config.to_yaml(config_file)
    command = [shutil.which("pyro-lfads", path=str(Path(sys.executable).parent)) or "pyro-lfads"]
    run_dir = out / "run"
    for args in (["fit", data, "--out", run_dir, "--config", config_file, "--likelihood", SPEC, "--overwrite",
                  "--quiet"], ["posterior", run_dir, "--quiet"], ["evaluate", run_dir, "--json"]):
        done = subprocess.run(command + [str(arg) for arg in args], cwd=REPOSITORY, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"pyro-lfads {args[0]} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("studentt_example"))
    parser.add_argument("--max-epochs", type=int, default=150)
    parser.add_argument("--conditions", type=int, default=65)
    parser.add_argument("--compare", action="store_true", help="also fit the Gaussian model, for comparison")
    parser.add_argument("--cli", action="store_true",
                        help=f"also fit the Student-t model through the pyro-lfads command (--likelihood {SPEC})")
    args = parser.parse_args()

    dataset = heavy_tailed_lorenz(args.conditions)
    results = {}
    base = pyro_lfads.LFADSConfig(co_dim=0, max_epochs=args.max_epochs, kl_ramp_steps=min(2000, 4 * args.max_epochs),
                                  posterior_samples=20)
    for likelihood in ["studentt"] + (["gaussian"] if args.compare else []):
        run_dir = args.out / likelihood
        pyro_lfads.fit(dataset, base.replace(likelihood=likelihood), run_dir, overwrite=True, progress=False)
        pyro_lfads.write_posterior(run_dir, dataset, progress=False)
        results[likelihood] = pyro_lfads.evaluate_run(run_dir, dataset)  # real-valued: LFADS figures only
    if args.cli:
        results["studentt_cli"] = fit_from_the_command_line(dataset, base, (args.out / "studentt_cli").resolve())
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
