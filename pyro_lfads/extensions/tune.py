"""AutoLFADS: population-based training (PBT) of LFADS hyperparameters on Ray Tune.

A population of members trains side by side. Every generation each member
trains ``epochs_per_generation`` epochs and reports its validation metric,
lower is better (``objective``):

- ``"sv"`` (the default): sample validation's, the reconstruction cost of a
  fixed fraction of entries (``sv_rate``, 0.1 unless the config sets one)
  that no encoder and no training step ever sees, nats per entry. A member
  cannot lower it by copying spikes or fitting their noise.
- ``"recon"``: the reconstruction cost of the validation trials, nats per
  trial (lfads-torch's AutoLFADS objective, with coordinated dropout always
  on). Measured on the Lorenz set it selects members that lower the KL
  weight on the inputs and fit noise through the controller (rate R2 0.916
  against the default's 0.947).
- ``"elbo"``: the validation -ELBO per trial at KL weight 1. Measured on the
  Lorenz set it selects members that raise the KL weight on g0 (rate R2
  0.944 against 0.947).

Then Ray's :class:`~ray.tune.schedulers.PopulationBasedTraining` (synchronous: one
generation at a time) lets the worst quarter *exploit* the best quarter: such
a member restarts from a best member's checkpoint (weights, optimiser,
trainer state and random-number states, the format ``fit`` writes and
resumes) and *explores*: each hyperparameter is the donor's times 0.8 or 1.2,
clipped to its range, or with probability 0.25 drawn afresh. The metric is
scored on held-out trials (at KL weight 1 for the -ELBO) whatever weights a
member trains with, so the population does not select models that fit only
their training trials. Each member's best checkpoint is chosen by the same
metric (``checkpoint_metric``).

Every member's Ray checkpoint is a whole run directory, so the best member's
last checkpoint, copied to ``OUT/best``, is read by ``posterior``, ``evaluate`` and ``report`` like any run.
Ray is an optional dependency (``pip install "ray[tune]>=2.40"``, or ``pip install ".[tune]"`` in a source
checkout), imported only when tuning starts.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pyro_lfads.config import LFADSConfig
from pyro_lfads.data import LFADSDataset, ensure_valid, load_dataset
from pyro_lfads.data.validation import one_line
from pyro_lfads.errors import InputError, TrainingDiverged
from pyro_lfads.fitting.masking import check_heldin_layout
from pyro_lfads.fitting.checkpoints import load_checkpoint, save_checkpoint
from pyro_lfads.fitting.run import CONFIG_FILE, LAST, Run, RunInfo, read_training_curve
from pyro_lfads.fitting.train import Trainer, new_trainer, validation_score
from pyro_lfads.models.likelihoods import data_support
from pyro_lfads.fitting.run_lock import LOCK_FILE, writes_into

INSTALL_HINT = 'tune needs Ray: pip install "ray[tune]>=2.40" (or pip install ".[tune]" in a source checkout)'
#: The objective every member reports, lower is better.
METRIC = "valid_metric"
#: Ray's PBT defaults: the fraction of members that exploit (and of donors), the probability of
#: drawing a value afresh, and the factors of a perturbation.
QUANTILE_FRACTION, RESAMPLE_PROBABILITY, PERTURBATION_FACTORS = 0.25, 0.25, (1.2, 0.8)
#: A file in each member's checkpoint naming the member that wrote it and its generation.
MEMBER_FILE = "member.json"
POPULATION_FILE, PLOT_FILE, BEST_DIR, RAY_DIR = "population.csv", "hyperparameters.png", "best", "ray"


@dataclass(frozen=True)
class Range:
    """Where PBT looks for one hyperparameter: [low, high], drawn log-uniformly when ``log``."""

    low: float
    high: float
    log: bool

    def clip(self, value: float) -> float:
        return min(max(float(value), self.low), self.high)


#: AutoLFADS's search space in this package's units (see LFADSConfig). The KL scales multiply the
#: true ELBO's KL terms: they bracket the default 0.1 and reach the ELBO's 1; the L2 scales bracket the default 2000 (generator) and
#: reach down to about nothing (controller, default 0); dropout and coordinated dropout as AutoLFADS.
SEARCH_SPACE: dict[str, Range] = {
    "learning_rate": Range(2e-3, 5e-2, log=True),    # Adam step, around the default 0.01
    "dropout": Range(0.0, 0.6, log=False),           # dropout probability
    "cd_rate": Range(0.01, 0.7, log=False),          # coordinated dropout: fraction of input entries dropped
    "kl_ic_scale": Range(0.02, 2.0, log=True),       # weight of KL(q(g0) || p(g0)); 1 = the ELBO
    "kl_co_scale": Range(0.02, 2.0, log=True),       # weight of KL(q(u) || p(u)); 1 = the ELBO
    "l2_gen_scale": Range(200.0, 2e4, log=True),     # L2 on the generator's recurrent weights
    "l2_con_scale": Range(1.0, 1e4, log=True),       # L2 on the controller's recurrent weights
}
#: The validation metrics PBT can minimise (module docstring); sample validation's fraction when the
#: config has none.
OBJECTIVES, DEFAULT_SV_RATE = ("sv", "recon", "elbo"), 0.1
#: Hyperparameters that exist only in a model with inferred inputs (co_dim > 0).
CONTROLLER_ONLY = ("kl_co_scale", "l2_con_scale")


def search_space(config: LFADSConfig) -> dict[str, Range]:
    """The hyperparameters to tune for ``config``: all of SEARCH_SPACE, less the controller's
    when the model has no inferred inputs."""
    return {name: r for name, r in SEARCH_SPACE.items() if config.co_dim > 0 or name not in CONTROLLER_ONLY}


def objective_config(config: LFADSConfig, objective: str) -> LFADSConfig:
    """``config`` set to report ``objective`` (one of OBJECTIVES) as its validation metric.

    Raises:
        InputError: an unknown objective, or "recon" / "elbo" with sample validation on (whose
            metric would override theirs).
    """
    if objective not in OBJECTIVES:
        raise InputError(f"objective: {objective!r} is not one of {', '.join(OBJECTIVES)}")
    if objective == "sv":
        return config if config.sv_rate > 0 else config.replace(sv_rate=DEFAULT_SV_RATE)
    if config.sv_rate > 0:
        raise InputError(f"objective {objective!r}: the config turns on sample validation (sv_rate "
                         f"{config.sv_rate:g}), whose metric would be used instead; set sv_rate: 0 or use "
                         "objective 'sv'")
    return config.replace(checkpoint_metric=objective)


def initial_members(base: LFADSConfig, space: dict[str, Range], population: int, seed: int) -> list[dict]:
    """The population's starting points, one dict per member: ``init_seed`` (seed + k, which draws
    member k's weights) and a value per hyperparameter. Member 0 starts from ``base``'s own values
    (clipped to the ranges), so the population starts no worse than the configuration it tunes; the
    others are drawn from ``numpy.random.default_rng(seed)``, log-uniformly on a log range."""
    rng = np.random.default_rng(seed)
    own = {name: r.clip(base.coordinated_dropout_rate if name == "cd_rate" else getattr(base, name))
           for name, r in space.items()}
    members = [{"init_seed": seed, **own}]
    for k in range(1, population):
        drawn = {name: float(np.exp(rng.uniform(np.log(r.low), np.log(r.high))) if r.log
                             else rng.uniform(r.low, r.high)) for name, r in space.items()}
        members.append({"init_seed": seed + k, **drawn})
    return members


def clip_to(space: dict[str, Range]) -> Callable[[dict], dict]:
    """PBT's ``custom_explore_fn``: the perturbed config with every hyperparameter clipped to its range."""
    def clip(config: dict) -> dict:
        return {**config, **{name: r.clip(config[name]) for name, r in space.items()}}
    return clip


def require_ray():
    """``ray.tune``, or an InputError saying how to install it."""
    try:
        from ray import tune as ray_tune
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return ray_tune


@dataclass
class TuneResult:
    """What :func:`tune` leaves in OUT: the best member's run directory, the population table and
    figure, the best member's hyperparameters and metric, and Ray's ResultGrid."""

    best_dir: Path
    population_csv: Path
    plot: Path
    best_hyperparameters: dict
    best_metric: float
    grid: object


# --- one member -----------------------------------------------------------------------------
def start_member(dataset: LFADSDataset, config: LFADSConfig, run_dir: Path, *, init_seed: int,
                 device: str = "cpu", checkpoint_dir: Path | None = None) -> Trainer:
    """A Trainer for one member writing into ``run_dir``: fresh (weights drawn with ``init_seed``),
    or continuing the run directory saved in ``checkpoint_dir`` under the hyperparameters of ``config``.

    Continuing is ``fit``'s resume (weights, optimiser, trainer state, random states) on a model built
    from ``config``, so a changed dropout or KL or L2 weight takes effect; a changed learning rate
    replaces the checkpoint's in its trainer state and optimiser state before the resume.
    """
    if checkpoint_dir is not None:
        shutil.copytree(checkpoint_dir, run_dir, dirs_exist_ok=True)
        if LFADSConfig.from_yaml(run_dir / CONFIG_FILE).learning_rate != config.learning_rate:
            _set_checkpoint_lr(run_dir / LAST, config.learning_rate)
    run = Run.create(run_dir, config, RunInfo.describe(dataset, config))
    trainer = new_trainer(run, [dataset], init_seed=init_seed, device=device, progress=False)
    if checkpoint_dir is not None:
        trainer.resume(run_dir / LAST)
    return trainer


def _set_checkpoint_lr(path: Path, lr: float) -> None:
    """Rewrite the learning rate of the checkpoint at ``path``: its trainer state's and every
    parameter's Adam state's (which a resume loads at the first step)."""
    state = load_checkpoint(path)
    state["trainer"]["lr"] = lr
    for optimizer in state["optim"].values():
        for group in optimizer["param_groups"]:
            group["lr"] = lr
    save_checkpoint(path, state)


def member_config(base: LFADSConfig, hyperparameters: dict) -> LFADSConfig:
    """``base`` with the tuned hyperparameters (Ray's config may hold other keys)."""
    return base.replace(**{name: float(hyperparameters[name]) for name in search_space(base)})


def train_generation(trainer: Trainer, epochs: int) -> dict:
    """Train ``epochs`` more epochs (``fit``'s loop: curve, last and best checkpoints); returns the
    metrics a member reports. A member whose training diverges reports an infinite metric, so that
    PBT replaces it."""
    target = trainer.state.epoch + epochs
    trainer.config = trainer.config.replace(max_epochs=target)
    try:
        trainer.fit()
        last = read_training_curve(trainer.run_dir)[-1]
        metric = validation_score({key[len("valid_"):]: value for key, value in last.items()
                                   if key.startswith("valid_")}, trainer.config)
    except TrainingDiverged:
        metric = math.inf
    return {METRIC: float(metric), "best_valid_metric": float(trainer.state.best_valid),
            "epoch": trainer.state.epoch, "lr": trainer.state.lr}


def member_trainable(hyperparameters: dict, *, dataset: LFADSDataset, base: LFADSConfig, epochs: int,
                     device: str, threads: int) -> None:
    """Ray Tune's function trainable: one member, restored from Ray's checkpoint when there is one
    (its own after a pause, a donor's after an exploit), reporting a checkpoint every generation."""
    from ray import tune as ray_tune

    torch.set_num_threads(threads)
    config = member_config(base, hyperparameters)
    member = ray_tune.get_context().get_trial_id()
    checkpoint = ray_tune.get_checkpoint()
    with tempfile.TemporaryDirectory(prefix="pyro_lfads_member_") as tmp:
        run_dir = Path(tmp) / "run"
        if checkpoint is None:
            parent, generation = member, 0
            trainer = start_member(dataset, config, run_dir, init_seed=hyperparameters["init_seed"], device=device)
        else:
            with checkpoint.as_directory() as saved:
                record = json.loads((Path(saved) / MEMBER_FILE).read_text())
                parent, generation = record["member"], record["generation"]
                trainer = start_member(dataset, config, run_dir, init_seed=hyperparameters["init_seed"],
                                       device=device, checkpoint_dir=Path(saved))
        tuned = {name: getattr(config, name) for name in search_space(base)}
        while True:
            metrics = train_generation(trainer, epochs)
            generation += 1
            (run_dir / MEMBER_FILE).write_text(json.dumps({"member": member, "generation": generation}))
            ray_tune.report({"generation": generation, "member": member, "parent": parent, **tuned, **metrics},
                            checkpoint=ray_tune.Checkpoint.from_directory(run_dir))
            parent = member


# --- the population -------------------------------------------------------------------------
@writes_into("out")
def tune(data: LFADSDataset | Run | str | Path, out: str | Path, *, population: int = 8, generations: int = 10,
         epochs_per_generation: int = 5, config: LFADSConfig | None = None, address: str | None = None,
         cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0, seed: int | None = None,
         objective: str = "sv", progress: bool = True) -> TuneResult:
    """Population-based training of ``population`` members for ``generations`` generations of
    ``epochs_per_generation`` epochs each, writing into ``out``.

    ``data`` is a data set, a data file, or a fitted :class:`~pyro_lfads.fitting.run.Run`, whose data
    set and config (unless ``config`` is given) are tuned. ``config`` (default LFADSConfig()) fixes
    everything but the tuned hyperparameters (:func:`search_space`). Ray runs in this process on this machine's CPUs (and GPUs), or on the
    cluster at ``address`` (default: the environment's RAY_ADDRESS, if set; then ``out`` must be
    on storage every node can reach). Each member takes ``cpus_per_trial`` CPUs and
    ``gpus_per_trial`` GPUs (cuda when > 0). ``seed`` (default: the config's) is the members'
    config seed and fixes the initial draws and the members' initial weights (member k's drawn
    with seed + k); PBT's later choices are random. ``objective`` (one of OBJECTIVES, see the
    module docstring) is the validation metric PBT minimises and chooses each member's best checkpoint.
    With ``progress`` one line per generation goes to stderr. Writes OUT/best (the best member's run
    directory), OUT/population.csv, OUT/hyperparameters.png and Ray's own records (every member's
    checkpoint of every generation) in OUT/ray.
    """
    ray_tune = require_ray()
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if isinstance(data, Run):
        config = data.config if config is None else config
        data = data.dataset()
    base = objective_config(config if config is not None else LFADSConfig(), objective)
    dataset = load_dataset(Path(data).resolve(), support=data_support(base.likelihood),
                           min_time_bins=base.time_bins) if isinstance(data, (str, Path)) else data
    out = Path(out).resolve()
    _check_request(dataset, base, out, population, generations, epochs_per_generation, cpus_per_trial,
                   gpus_per_trial, address)
    space = search_space(base)
    seed = base.seed if seed is None else seed
    # PBT decides how long members train: no member stops early on its own plateau
    base = base.replace(max_epochs=generations * epochs_per_generation, seed=seed, patience=0)

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the classic output, which verbose=0 silences
    started_here = not ray.is_initialized()
    if started_here:
        _start_ray(address)
    try:
        if address is None:
            _check_resources(ray, cpus_per_trial, gpus_per_trial)
        device = "cuda" if gpus_per_trial > 0 else "cpu"
        trainable = ray_tune.with_parameters(member_trainable, dataset=dataset, base=base,
                                             epochs=epochs_per_generation, device=device,
                                             threads=max(1, int(cpus_per_trial)))
        trainable = ray_tune.with_resources(trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
        domains = {name: (ray_tune.loguniform if r.log else ray_tune.uniform)(r.low, r.high)
                   for name, r in space.items()}
        scheduler = make_scheduler(space, domains)
        rows: list[dict] = []
        tuner = ray_tune.Tuner(
            trainable,
            param_space={"init_seed": seed, **domains},
            tune_config=ray_tune.TuneConfig(scheduler=scheduler, num_samples=population, reuse_actors=True,
                                            search_alg=_variants(initial_members(base, space, population, seed))),
            run_config=ray_tune.RunConfig(name="pbt", storage_path=str(out / RAY_DIR), verbose=0,
                                          stop={"generation": generations},
                                          callbacks=[_recorder(rows, population, generations, progress)]),
        )
        grid = tuner.fit()
        if grid.errors:
            raise InputError(f"tune: {len(grid.errors)} of {population} members failed; the first: "
                             f"{one_line(grid.errors[0], last_line=True)}")
        return _write_outputs(grid, rows, space, out)
    finally:
        if started_here:
            ray.shutdown()


def make_scheduler(space: dict[str, Range], domains: dict):
    """Ray's synchronous PBT on METRIC (min): one generation per perturbation, clipped exploration."""
    from ray.tune.schedulers import PopulationBasedTraining

    return PopulationBasedTraining(time_attr="generation", metric=METRIC, mode="min", perturbation_interval=1,
                                   hyperparam_mutations=domains, quantile_fraction=QUANTILE_FRACTION,
                                   resample_probability=RESAMPLE_PROBABILITY,
                                   perturbation_factors=PERTURBATION_FACTORS, custom_explore_fn=clip_to(space),
                                   synch=True, log_config=False)


def _variants(members: list[dict]):
    """Ray's search algorithm starting one member at each of ``members`` (every value given)."""
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(points_to_evaluate=members)


def _recorder(rows: list[dict], population: int, generations: int, progress: bool):
    """A Ray callback appending every member's report to ``rows`` (in the driver) and, with
    ``progress``, printing one line to stderr when a whole generation has reported."""
    from ray.tune import Callback

    start = time.perf_counter()

    class Recorder(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            rows.append({key: result[key] for key in ("generation", "member", "parent", "epoch", METRIC,
                                                      "best_valid_metric", "lr")}
                        | {key: value for key, value in result.items() if key in SEARCH_SPACE})
            generation = [row for row in rows if row["generation"] == result["generation"]]
            if progress and len(generation) == population:
                metrics = sorted(row[METRIC] for row in generation)
                exploits = sum(row["parent"] != row["member"] for row in generation)
                print(f"tune: generation {result['generation']}/{generations} (epoch {result['epoch']}): "
                      f"{METRIC} best {metrics[0]:.4g}, median {np.median(metrics):.4g}, worst {metrics[-1]:.4g}; "
                      f"{exploits} of {population} started from another member; "
                      f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return Recorder()


def _start_ray(address: str | None) -> None:
    import logging

    import ray

    quiet = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=os.cpu_count(), num_gpus=torch.cuda.device_count(), **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InputError(f"address: cannot start or reach Ray at {address or 'this machine'}: "
                         f"{one_line(exc, last_line=True)}") from None


def _check_resources(ray, cpus_per_trial: float, gpus_per_trial: float) -> None:
    """Refuse a member larger than this machine (Ray would wait for it forever)."""
    resources = ray.cluster_resources()
    for name, wanted, argument in (("CPU", cpus_per_trial, "cpus_per_trial"), ("GPU", gpus_per_trial,
                                                                                 "gpus_per_trial")):
        if wanted > resources.get(name, 0):
            raise InputError(f"{argument}: {wanted:g} requested per member but this machine has "
                             f"{resources.get(name, 0):g} {name}s")


def _check_request(dataset, config, out, population, generations, epochs, cpus, gpus, address) -> None:
    """One-line errors for a request that cannot run, before Ray starts."""
    checks = ((population >= 2, f"population: needs at least 2 members, got {population}"),
              (generations >= 1, f"generations: must be >= 1, got {generations}"),
              (epochs >= 1, f"epochs_per_generation: must be >= 1, got {epochs}"),
              (cpus > 0, f"cpus_per_trial: must be > 0, got {cpus}"),
              (gpus >= 0, f"gpus_per_trial: must be >= 0, got {gpus}"))
    for ok, problem in checks:
        if not ok:
            raise InputError(problem)
    if gpus > 0 and address is None and not torch.cuda.is_available():
        raise InputError(f"gpus_per_trial: {gpus:g} requested per member but CUDA is not available on this machine")
    if out.exists() and (not out.is_dir() or any(path.name != LOCK_FILE for path in out.iterdir())):
        raise InputError(f"{out}: already exists and is not an empty directory; choose a new out")
    ensure_valid(dataset, support=data_support(config.likelihood), min_time_bins=config.time_bins)
    check_heldin_layout(dataset)  # coordinated dropout is always tuned
    space = search_space(config)
    for end in ("low", "high"):  # every value of the space makes a valid config
        member_config(config, {name: getattr(r, end) for name, r in space.items()})




# --- what is left in OUT --------------------------------------------------------------------
def _write_outputs(grid, rows: list[dict], space: dict[str, Range], out: Path) -> TuneResult:
    """OUT/best from the member with the lowest best validation metric; the table; the figure."""
    from pyro_lfads.diagnostics.check_figures import plot_hyperparameter_trajectories

    finals = [result for result in grid if result.checkpoint is not None]
    if not finals:
        raise InputError("tune: no member reported a checkpoint")
    best = min(finals, key=lambda result: result.metrics["best_valid_metric"])
    best_dir = out / BEST_DIR
    with best.checkpoint.as_directory() as saved:
        shutil.copytree(saved, best_dir, ignore=shutil.ignore_patterns(MEMBER_FILE))
    members = {member: k for k, member in enumerate(sorted({row["member"] for row in rows}))}
    table = sorted(({**row, "member": members[row["member"]], "parent": members[row["parent"]]} for row in rows),
                   key=lambda row: (row["generation"], row["member"]))
    columns = ["generation", "member", "parent", "epoch", *space, "lr", METRIC, "best_valid_metric"]
    population_csv = out / POPULATION_FILE
    with open(population_csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(table)
    plot = plot_hyperparameter_trajectories(table, list(space), out / PLOT_FILE,
                                            log_names=[name for name, r in space.items() if r.log], metric=METRIC)
    hyperparameters = {name: best.metrics[name] for name in space}
    return TuneResult(best_dir, population_csv, plot, hyperparameters, float(best.metrics["best_valid_metric"]), grid)
