"""The ``pyro-lfads`` command: synth, from-nwb, fit, tune, posterior, evaluate, decode, diagnose, report, demo.

Bad input gives one line on stderr (``pyro-lfads: error: ...``) and exit status 2.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
import warnings
from pathlib import Path

from .config import LFADSConfig
from .diagnose import DEFAULT_DRAWS, DEFAULT_IMPORTANCE_SAMPLES
from .errors import InputError
from .schedule import MIN_STEPS_PER_EPOCH
from .synthetic.observations import OBSERVATIONS


def _int_at_least(minimum: int):
    """An argparse type: an integer >= minimum, with a one-line message otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


_positive_int, _nonnegative_int = _int_at_least(1), _int_at_least(0)


def _float_above(minimum: float, inclusive: bool):
    """An argparse type: a number > minimum (>= when ``inclusive``), with a one-line message otherwise."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (value >= minimum if inclusive else value > minimum):
            raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {minimum:g}, got {text}")
        return value
    return parse


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu",
                        help="where to compute: cpu (default), cuda or cuda:N")


def _add_scoring(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lag-bins", type=_nonnegative_int, default=0,
                        help="velocity decoding: behaviour at bin t is decoded from rates at t - LAG (default 0)")
    parser.add_argument("--psth-sigma-bins", type=float, default=5.0,
                        help="PSTH R2: std of the Gaussian that smooths the reference spikes, bins (default 5)")


def _add_bin_ms(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bin-ms", type=float, default=10.0,
                        help="the data's bin width in ms, for time axes and spikes/s (default 10, as 'synth' "
                             "writes; for 'from-nwb' files, its --bin-ms)")


def _baseline_list(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated baseline names, or 'none'."""
    from .scoring import BASELINES

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if names == ("none",):
        return ()
    unknown = [name for name in names if name not in BASELINES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(BASELINES)} or none, "
                                         f"got {text!r}")
    return names


def _fit_length_text() -> str:
    """What sets a fit's length by default, from the config's defaults."""
    c = LFADSConfig
    return (f"Fit LFADS, writing a run directory. A run's length by default: a KL ramp of {c.kl_ramp_epochs} epochs; "
            f"then the learning rate ({c.learning_rate}) falls x{c.lr_decay} after {c.lr_patience} epochs without "
            f"progress of the validation objective (the one that picks best.pt; progress is a relative fall of "
            f"{c.min_improvement:g}), and the fit stops after {c.patience} such epochs, or at {c.max_epochs} epochs "
            f"at most (config keys kl_ramp_epochs, learning_rate, lr_decay, lr_patience, min_improvement, patience, "
            f"max_epochs). Batches hold {c.batch_size} trials, fewer when the data set has under "
            f"{MIN_STEPS_PER_EPOCH} batches. The last line says why the fit stopped.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyro-lfads",
        description="LFADS (Latent Factor Analysis via Dynamical Systems) as a Pyro program: "
                    "denoised single-trial rates, latent factors and inferred inputs from spike counts.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = sub.add_parser("synth", help="write a synthetic data set with known ground truth")
    synth.add_argument("system", choices=["lorenz", "calcium", "nlb-lorenz", "chaotic-rnn", "pulses",
                                          "integrate-to-bound", "multisession"],
                       help="lorenz: the paper's Lorenz benchmark (Methods 2.1); calcium: dF/F imaging of it; "
                            "nlb-lorenz: Lorenz with held-out neurons, forward bins, conditions and behaviour; "
                            "chaotic-rnn: a chaotic RNN's units (Methods 2.2); pulses: the same RNN kicked by one "
                            "input pulse per trial (Methods 2.3); integrate-to-bound: an RNN trained to integrate "
                            "white noise to a bound, about 20 s of training (Methods 2.4); the last two keep their "
                            "true inputs as *_inputs; multisession: 5 sessions of different neurons recording "
                            "the same Lorenz conditions, one file per session (for stitching)")
    synth.add_argument("--out", required=True, type=Path,
                       help="output file, .h5 or .npz (LFADS format); multisession writes OUT's stem + "
                            "_session0, _session1, ...")
    synth.add_argument("--seed", type=_nonnegative_int, default=0, help="random seed (default 0)")
    synth.add_argument("--likelihood", default="poisson", choices=OBSERVATIONS,
                       help="lorenz only: how the rates are observed (default poisson)")
    synth.add_argument("--gamma", type=float, default=1.5,
                       help="chaotic-rnn and pulses only: gain of the recurrent weights (default 1.5; the paper "
                            "also uses 2.5)")
    synth.add_argument("--format", default="lfads", choices=["lfads", "nlb"],
                       help="nlb-lorenz only: LFADS HDF5 keys (default) or NLB tensor keys "
                            "(train_spikes_heldin, ...); both load with 'fit'")

    nwb = sub.add_parser("from-nwb", help="bin an NWB file's spikes into trials: an LFADS data file")
    nwb.add_argument("nwb_file", type=Path, help="NWB file with a units table and a trials table")
    nwb.add_argument("--out", required=True, type=Path, help="LFADS data file to write (.h5 or .npz)")
    nwb.add_argument("--bin-ms", type=float, default=5.0, help="bin width in ms (default 5)")
    nwb.add_argument("--align-to", default="start_time", help="trials-table column of alignment times "
                                                               "(default start_time; e.g. move_onset_time)")
    nwb.add_argument("--window-ms", type=float, nargs=2, default=(0.0, 700.0), metavar=("START", "END"),
                     help="observed window around the alignment time, ms (default 0 700)")
    nwb.add_argument("--forward-ms", type=float, default=0.0, help="forward-prediction ms after the window")
    nwb.add_argument("--behavior", help="TimeSeries to bin as behaviour (e.g. hand_vel)")
    nwb.add_argument("--condition", help="trials-table column of condition labels")
    nwb.add_argument("--heldout", help="boolean units-table column marking held-out neurons (e.g. heldout)")
    nwb.add_argument("--valid-fraction", type=float, default=0.2,
                     help="fraction of trials for validation when the trials table has no 'split' column")
    nwb.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of that random split")

    fit = sub.add_parser("fit", help="fit LFADS to a data file (or stitch several sessions' files), "
                                     "writing a run directory",
                         description=_fit_length_text())
    fit.add_argument("data", nargs="*", help="LFADS-format data file (.h5/.hdf5 or .npz); several files or a "
                                             "quoted glob ('sessions_*.h5') stitch one model across sessions")
    fit.add_argument("--out", type=Path, help="run directory to write (created if needed)")
    fit.add_argument("--resume", type=Path, metavar="RUN_DIR",
                     help="continue RUN_DIR from its last complete checkpoint, on the data and config it records "
                          "(--max-epochs may extend it); no DATA, --out or --config then")
    fit.add_argument("--config", type=Path, help="YAML file of config keys (see LFADSConfig); others keep defaults")
    fit.add_argument("--max-epochs", type=_positive_int,
                     help=f"override the config's max_epochs, the ceiling (default {LFADSConfig.max_epochs}; the "
                          "fit usually stops earlier, on a plateau)")
    fit.add_argument("--seed", type=_nonnegative_int, help="override the config's seed")
    fit.add_argument("--likelihood", help="override the config's observation model: "
                                          "poisson, gaussian, negbinom, gamma, zig or calcium")
    fit.add_argument("--overwrite", action="store_true",
                     help="replace a different run already in --out (default: refuse)")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(fit)

    tun = sub.add_parser("tune", help="AutoLFADS: population-based training of the hyperparameters on Ray Tune; "
                                      "writes the best member's run directory to OUT/best")
    tun.add_argument("data", type=Path, help="LFADS-format data file (.h5/.hdf5 or .npz)")
    tun.add_argument("--out", required=True, type=Path, metavar="DIR",
                     help="new or empty directory for the results")
    tun.add_argument("--population", required=True, type=_int_at_least(2), metavar="N",
                     help="members trained side by side")
    tun.add_argument("--generations", required=True, type=_positive_int, metavar="G",
                     help="generations; after each but the last the worst quarter copies the best quarter")
    tun.add_argument("--epochs-per-generation", type=_positive_int, default=5, metavar="E",
                     help="epochs each member trains per generation (default 5)")
    tun.add_argument("--config", type=Path, metavar="YAML",
                     help="YAML file of config keys fixing everything that is not tuned")
    tun.add_argument("--objective", choices=("sv", "recon", "elbo"), default="sv",
                     help="validation metric PBT minimises: sample validation's reconstruction cost of entries no "
                          "encoder sees (default; sv_rate 0.1 unless the config sets one), the validation trials' "
                          "reconstruction cost, or their -ELBO")
    tun.add_argument("--seed", type=_nonnegative_int, metavar="S",
                     help="override the config's seed (initial draws and weights)")
    tun.add_argument("--address", metavar="A",
                     help="Ray cluster to run on (e.g. auto, or HOST:6379; default: RAY_ADDRESS if set, else Ray "
                          "started in this process on this machine's CPUs)")
    tun.add_argument("--cpus-per-trial", type=_float_above(0, inclusive=False), default=1.0, metavar="C",
                     help="CPUs per member (default 1)")
    tun.add_argument("--gpus-per-trial", type=_float_above(0, inclusive=True), default=0.0, metavar="F",
                     help="GPUs per member, fractions share a GPU (default 0; > 0 trains on cuda)")
    tun.add_argument("--quiet", action="store_true", help="no line per generation")

    post = sub.add_parser("posterior", help="posterior averages of a fitted run into RUN_DIR/posterior.h5 "
                                            "(posterior_session{k}.h5 per session of a stitched run)")
    post.add_argument("run_dir", type=Path, help="run directory written by 'fit'")
    post.add_argument("--samples", type=_positive_int, help="samples of (g0, u) per trial (default: config, 50)")
    post.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(post)

    ev = sub.add_parser("evaluate", help="score a run's validation trials, LFADS next to smoothing and GPFA")
    ev.add_argument("run_dir", type=Path, help="run directory with a posterior")
    ev.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ev.add_argument("--session", type=_nonnegative_int, default=None,
                    help="stitched runs: score this session only (default: every session)")
    _add_scoring(ev)
    ev.add_argument("--baselines", type=_baseline_list, default=("smoothing", "gpfa"),
                    help="comma-separated baselines to fit and score: smoothing, gpfa, or none "
                         "(default smoothing,gpfa)")

    dec = sub.add_parser("decode", help="fit a ridge decoder of behaviour from a run's rates or factors")
    dec.add_argument("run_dir", type=Path, help="run directory with a posterior, on data with *_behavior")
    dec.add_argument("--from", dest="source", choices=["rates", "factors"], default="rates",
                     help="decode from posterior mean rates (default) or factors")
    dec.add_argument("--lag-bins", type=_nonnegative_int, default=0,
                     help="behaviour at bin t is decoded from bin t - LAG (default 0)")
    dec.add_argument("--session", type=_nonnegative_int, default=0,
                     help="stitched runs: the session to decode (default 0)")

    diag = sub.add_parser("diagnose", help="PSIS k-hat, IWAE and posterior predictive checks of a run; "
                                           "writes RUN_DIR/inference_data.nc and diagnostics.json")
    diag.add_argument("run_dir", type=Path, help="run directory written by 'fit'")
    diag.add_argument("--split", choices=["valid", "train"], default="valid", help="trials to diagnose (default valid)")
    diag.add_argument("--samples", type=_int_at_least(2), default=DEFAULT_DRAWS,
                      help=f"posterior draws per trial kept in inference_data.nc and used by the predictive checks "
                           f"(default {DEFAULT_DRAWS}; the file grows with draws x trials x bins x neurons)")
    diag.add_argument("--importance-samples", type=_int_at_least(2), default=DEFAULT_IMPORTANCE_SAMPLES,
                      help=f"draws per trial for k-hat and IWAE (default {DEFAULT_IMPORTANCE_SAMPLES})")
    _add_bin_ms(diag)
    diag.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(diag)

    rep = sub.add_parser("report", help="figures of a run as PNG files and an index.html that shows them "
                                        "(runs 'diagnose' first when needed)")
    rep.add_argument("run_dir", type=Path, help="run directory written by 'fit'")
    rep.add_argument("--out", type=Path, help="directory for the PNGs and index.html (default RUN_DIR/report)")
    _add_bin_ms(rep)
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(rep)

    demo = sub.add_parser("demo", help="synthesise Lorenz data, fit, average, evaluate and plot")
    demo.add_argument("--out", type=Path, default=Path("lfads_demo"), help="output directory (default ./lfads_demo)")
    demo.add_argument("--max-epochs", type=_positive_int, default=None,
                      help="training epochs (default: the demo config's)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_device(demo)
    return parser


def cmd_synth(args) -> None:
    from .data import save_dataset
    from .nlb import save_nlb_tensors
    from .synthetic.calcium import make_calcium_dataset
    from .synthetic.chaotic_rnn import make_chaotic_rnn_dataset, make_pulse_dataset
    from .synthetic.integrate_to_bound import make_integrate_to_bound_dataset
    from .synthetic.lorenz import make_lorenz_dataset
    from .synthetic.lorenz_nlb import make_nlb_lorenz_dataset
    from .synthetic.multisession import make_multisession_datasets

    if args.likelihood != "poisson" and args.system != "lorenz":
        raise InputError(f"--likelihood: applies to 'synth lorenz' only, not {args.system}")
    if args.format != "lfads" and args.system != "nlb-lorenz":
        raise InputError(f"--format: applies to 'synth nlb-lorenz' only, not {args.system}")
    if args.gamma != 1.5 and args.system not in ("chaotic-rnn", "pulses"):
        raise InputError(f"--gamma: applies to 'synth chaotic-rnn' and 'synth pulses' only, not {args.system}")
    if args.system == "calcium":
        dataset = make_calcium_dataset(seed=args.seed)
    elif args.system == "nlb-lorenz":
        dataset = make_nlb_lorenz_dataset(seed=args.seed)
    elif args.system == "chaotic-rnn":
        dataset = make_chaotic_rnn_dataset(seed=args.seed, gamma=args.gamma)
    elif args.system == "pulses":
        dataset = make_pulse_dataset(seed=args.seed, gamma=args.gamma)
    elif args.system == "integrate-to-bound":
        dataset = make_integrate_to_bound_dataset(seed=args.seed)
    elif args.system == "multisession":
        _write_sessions(make_multisession_datasets(seed=args.seed), args.out)
        return
    else:
        dataset = make_lorenz_dataset(seed=args.seed, likelihood=args.likelihood)
    if args.format == "nlb":
        with warnings.catch_warnings(record=True) as caught:  # arrays NLB files have no key for
            warnings.simplefilter("always")
            save_nlb_tensors(dataset, args.out, n_heldin=dataset.train.encod_data.shape[2])
        for warning in caught:
            print(f"note: {warning.message}", file=sys.stderr)
    else:
        save_dataset(dataset, args.out)
    print(f"wrote {args.out}: {dataset.train.n_trials} train and {dataset.valid.n_trials} valid trials, "
          f"{dataset.train.n_time} bins, {dataset.train.n_neurons} neurons")


def _write_sessions(sessions, out: Path) -> None:
    """Write each session to OUT's stem + _session{k} + OUT's suffix."""
    from .data import save_dataset

    for k, dataset in enumerate(sessions):
        path = out.with_name(f"{out.stem}_session{k}{out.suffix}")
        dataset.source = str(path)
        save_dataset(dataset, path)
        print(f"wrote {path}: {dataset.train.n_trials} train + {dataset.valid.n_trials} valid trials, "
              f"{dataset.train.n_time} bins, {dataset.train.n_neurons} neurons")


def cmd_from_nwb(args) -> None:
    from .data import save_dataset
    from .nwb import load_nwb

    dataset = load_nwb(args.nwb_file, bin_ms=args.bin_ms, align_to=args.align_to, window_ms=tuple(args.window_ms),
                       forward_ms=args.forward_ms, behavior=args.behavior, condition=args.condition,
                       heldout=args.heldout, valid_fraction=args.valid_fraction, seed=args.seed)
    save_dataset(dataset, args.out)
    split = dataset.train
    print(f"wrote {args.out}: {split.n_trials} train and {dataset.valid.n_trials} valid trials, "
          f"{split.encod_data.shape[1]} observed + {split.n_time - split.encod_data.shape[1]} forward bins, "
          f"{split.encod_data.shape[2]} held-in + {split.n_neurons - split.encod_data.shape[2]} held-out neurons")


def _config_for(args):
    from .config import LFADSConfig

    config = LFADSConfig.from_yaml(args.config) if args.config else LFADSConfig()
    overrides = (("max_epochs", args.max_epochs), ("seed", args.seed), ("likelihood", args.likelihood))
    changes = {k: v for k, v in overrides if v is not None}
    return config.replace(**changes)


def cmd_fit(args) -> None:
    from .data import load_dataset
    from .models.likelihoods import LIKELIHOODS
    from .run import read_run, run_sessions
    from .train import check_device, fit

    check_device(args.device)
    if args.resume is not None:
        if args.data or args.out or args.config or args.likelihood or args.seed is not None or args.overwrite:
            raise InputError("--resume: takes the data and config the run records; give only --max-epochs, "
                             "--device and --quiet with it")
        config, _ = read_run(args.resume)
        if args.max_epochs is not None:
            config = config.replace(max_epochs=args.max_epochs)
        sessions, out = run_sessions(args.resume), args.resume
    else:
        if not args.data or args.out is None:
            raise InputError("fit: needs DATA and --out RUN_DIR (or --resume RUN_DIR)")
        config, out = _config_for(args), args.out
        sessions = [load_dataset(path, support=LIKELIHOODS[config.likelihood].support,
                                 min_time_bins=config.time_bins) for path in data_paths(args.data)]
    trainer = fit(sessions if len(sessions) > 1 else sessions[0], config, out, device=args.device,
                  overwrite=args.overwrite, progress=not args.quiet)
    st = trainer.state
    best = (f"best sample-validation cost {st.best_valid:.4f} nats/entry" if config.sv_rate > 0 else
            f"best validation loss {st.best_valid:.2f} nats/trial")
    print(f"fitted {st.epoch} epochs ({st.step} steps, stopped: {STOP_WORDS.get(st.stopped, 'resumable')}); "
          f"{best} at epoch {st.best_epoch}; run in {out}")


STOP_WORDS = {"plateau": "plateau, no progress of the validation objective for the config's patience",
              "lr_min": "the learning rate reached lr_min", "max_epochs": "max_epochs reached"}


def cmd_tune(args) -> None:
    from .config import LFADSConfig
    from .data import load_dataset
    from .models.likelihoods import LIKELIHOODS
    from .tune import METRIC, require_ray, tune

    require_ray()
    config = LFADSConfig.from_yaml(args.config) if args.config else LFADSConfig()
    dataset = load_dataset(args.data.resolve(), support=LIKELIHOODS[config.likelihood].support,
                           min_time_bins=config.time_bins)
    result = tune(dataset, args.out, population=args.population, generations=args.generations,
                  epochs_per_generation=args.epochs_per_generation, config=config, address=args.address,
                  cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, seed=args.seed,
                  objective=args.objective, progress=not args.quiet)
    print(f"best member: {METRIC} {result.best_metric:.4f}; hyperparameters {json.dumps(result.best_hyperparameters)}")
    print(f"wrote {result.best_dir} (a run directory: 'pyro-lfads posterior {result.best_dir}', then evaluate, "
          f"report), {result.population_csv}, {result.plot}")


def data_paths(patterns: list[str]) -> list[Path]:
    """The data files named by ``patterns``: paths, or globs expanded in sorted order."""
    paths = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise InputError(f"{pattern}: no file matches this pattern")
            paths.extend(Path(match) for match in matches)
        else:
            paths.append(Path(pattern))
    return paths


def cmd_posterior(args) -> None:
    from .posterior import write_posterior
    from .run import run_sessions
    from .train import check_device

    check_device(args.device)
    paths = write_posterior(args.run_dir, run_sessions(args.run_dir), samples=args.samples, device=args.device,
                            progress=not args.quiet)
    print("wrote " + ", ".join(str(path) for path in paths))


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate_run
    from .run import read_run

    n_sessions = len(read_run(args.run_dir)[1].session_infos())
    sessions = [args.session] if args.session is not None else range(n_sessions)
    results = {session: evaluate_run(args.run_dir, baselines=args.baselines, lag_bins=args.lag_bins,
                                     psth_sigma_bins=args.psth_sigma_bins, session=session)
               for session in sessions}
    if n_sessions == 1:
        result = results[0]
        print(json.dumps(result) if args.json else format_table(result))
    elif args.json:
        print(json.dumps({f"session{k}": result for k, result in results.items()}))
    else:
        print("\n\n".join(f"session {k}\n{format_table(result)}" for k, result in results.items()))


def format_table(result: dict) -> str:
    """Methods as columns, figures as rows; a blank where a method lacks a figure."""
    methods = list(result)
    rows = list(dict.fromkeys(key for figures in result.values() for key in figures))
    cells = [[_cell(result[m].get(row)) for m in methods] for row in rows]
    width = max(len(row) for row in rows)
    widths = [max(len(m), *(len(c[i]) for c in cells)) for i, m in enumerate(methods)]
    lines = [" " * width + "".join(f"  {m:>{w}}" for m, w in zip(methods, widths))]
    for row, cell in zip(rows, cells):
        lines.append(f"{row:<{width}}" + "".join(f"  {c:>{w}}" for c, w in zip(cell, widths)))
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def cmd_decode(args) -> None:
    from .decode import decode_run

    print(json.dumps(decode_run(args.run_dir, source=args.source, lag_bins=args.lag_bins, session=args.session)))


def cmd_diagnose(args) -> None:
    from .diagnose import diagnose_run
    from .train import check_device

    check_device(args.device)
    summary = diagnose_run(args.run_dir, samples=args.samples, importance_samples=args.importance_samples,
                           split=args.split, bin_ms=args.bin_ms, device=args.device, progress=not args.quiet)
    print(json.dumps(summary))


def cmd_report(args) -> None:
    from .report import write_report
    from .train import check_device

    check_device(args.device)
    index = write_report(args.run_dir, out=args.out, bin_ms=args.bin_ms, device=args.device,
                         progress=not args.quiet)
    print(f"wrote {index}")


def cmd_demo(args) -> None:
    from .demo import run_demo

    run_demo(args.out, device=args.device, max_epochs=args.max_epochs, progress=not args.quiet)


COMMANDS = {"synth": cmd_synth, "from-nwb": cmd_from_nwb, "fit": cmd_fit, "tune": cmd_tune,
            "posterior": cmd_posterior, "evaluate": cmd_evaluate, "decode": cmd_decode, "diagnose": cmd_diagnose,
            "report": cmd_report, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        COMMANDS[args.command](args)
    except InputError as exc:
        print(f"pyro-lfads: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pyro-lfads: interrupted", file=sys.stderr)
        return 130
    if args.command in ("fit", "tune", "posterior", "diagnose", "report", "demo"):
        print(f"done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
