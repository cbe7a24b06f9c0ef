"""The ``pyro-lfads`` command: synth, fit, posterior, evaluate, demo.

Bad input gives one line on stderr (``pyro-lfads: error: ...``) and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import InputError
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


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu",
                        help="where to compute: cpu (default), cuda or cuda:N")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyro-lfads",
        description="LFADS (Latent Factor Analysis via Dynamical Systems) as a Pyro program: "
                    "denoised single-trial rates, latent factors and inferred inputs from spike counts.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = sub.add_parser("synth", help="write a synthetic data set with known ground truth")
    synth.add_argument("system", choices=["lorenz", "calcium"],
                       help="lorenz: the paper's Lorenz benchmark (Methods 2.1); calcium: dF/F imaging of it")
    synth.add_argument("--out", required=True, type=Path, help="output file, .h5 or .npz (LFADS format)")
    synth.add_argument("--seed", type=_nonnegative_int, default=0, help="random seed (default 0)")
    synth.add_argument("--likelihood", default="poisson", choices=OBSERVATIONS,
                       help="lorenz only: how the rates are observed (default poisson)")

    fit = sub.add_parser("fit", help="fit LFADS to a data file, writing a run directory")
    fit.add_argument("data", type=Path, help="LFADS-format data file (.h5/.hdf5 or .npz)")
    fit.add_argument("--out", required=True, type=Path, help="run directory to write (created if needed)")
    fit.add_argument("--config", type=Path, help="YAML file of config keys (see LFADSConfig); others keep defaults")
    fit.add_argument("--max-epochs", type=_positive_int, help="override the config's max_epochs")
    fit.add_argument("--seed", type=_nonnegative_int, help="override the config's seed")
    fit.add_argument("--likelihood", help="override the config's observation model: "
                                          "poisson, gaussian, negbinom, gamma, zig or calcium")
    fit.add_argument("--overwrite", action="store_true",
                     help="replace a different run already in --out (default: refuse)")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(fit)

    post = sub.add_parser("posterior", help="posterior averages of a fitted run into RUN_DIR/posterior.h5")
    post.add_argument("run_dir", type=Path, help="run directory written by 'fit'")
    post.add_argument("--samples", type=_positive_int, help="samples of (g0, u) per trial (default: config, 50)")
    post.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(post)

    ev = sub.add_parser("evaluate", help="score a run's validation trials against truth and smoothing")
    ev.add_argument("run_dir", type=Path, help="run directory with a posterior")
    ev.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    demo = sub.add_parser("demo", help="synthesise Lorenz data, fit, average, evaluate and plot")
    demo.add_argument("--out", type=Path, default=Path("lfads_demo"), help="output directory (default ./lfads_demo)")
    demo.add_argument("--max-epochs", type=_positive_int, default=None,
                      help="training epochs (default: the demo config's)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_device(demo)
    return parser


def cmd_synth(args) -> None:
    from .data import save_dataset
    from .synthetic.calcium import make_calcium_dataset
    from .synthetic.lorenz import make_lorenz_dataset

    if args.system == "calcium":
        if args.likelihood != "poisson":
            raise InputError("--likelihood: applies to 'synth lorenz' only; calcium data is dF/F")
        dataset = make_calcium_dataset(seed=args.seed)
    else:
        dataset = make_lorenz_dataset(seed=args.seed, likelihood=args.likelihood)
    save_dataset(dataset, args.out)
    print(f"wrote {args.out}: {dataset.train.n_trials} train and {dataset.valid.n_trials} valid trials, "
          f"{dataset.train.n_time} bins, {dataset.train.n_neurons} neurons")


def _config_for(args):
    from .config import LFADSConfig

    config = LFADSConfig.from_yaml(args.config) if args.config else LFADSConfig()
    overrides = (("max_epochs", args.max_epochs), ("seed", args.seed), ("likelihood", args.likelihood))
    changes = {k: v for k, v in overrides if v is not None}
    return config.replace(**changes)


def cmd_fit(args) -> None:
    from .data import load_dataset
    from .models.likelihoods import LIKELIHOODS
    from .train import check_device, fit

    config = _config_for(args)
    check_device(args.device)
    dataset = load_dataset(args.data, support=LIKELIHOODS[config.likelihood].support,
                           min_time_bins=config.time_bins)
    trainer = fit(dataset, config, args.out, device=args.device, overwrite=args.overwrite, progress=not args.quiet)
    st = trainer.state
    best = (f"best sample-validation cost {st.best_valid:.4f} nats/entry" if config.sv_rate > 0 else
            f"best validation loss {st.best_valid:.2f} nats/trial")
    print(f"fitted {st.epoch} epochs ({st.step} steps, stopped: {st.stopped or 'resumable'}); "
          f"{best} at epoch {st.best_epoch}; run in {args.out}")


def cmd_posterior(args) -> None:
    from .evaluate import run_dataset
    from .posterior import write_posterior
    from .train import check_device

    check_device(args.device)
    path = write_posterior(args.run_dir, run_dataset(args.run_dir), samples=args.samples, device=args.device,
                           progress=not args.quiet)
    print(f"wrote {path}")


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate_run

    result = evaluate_run(args.run_dir)
    if args.json:
        print(json.dumps(result))
    else:
        width = max(map(len, result))
        for key, value in result.items():
            print(f"{key:<{width}}  {value:.4f}" if isinstance(value, float) else f"{key:<{width}}  {value}")


def cmd_demo(args) -> None:
    from .demo import run_demo

    run_demo(args.out, device=args.device, max_epochs=args.max_epochs, progress=not args.quiet)


COMMANDS = {"synth": cmd_synth, "fit": cmd_fit, "posterior": cmd_posterior, "evaluate": cmd_evaluate,
            "demo": cmd_demo}


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
    if args.command in ("fit", "posterior", "demo"):
        print(f"done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
