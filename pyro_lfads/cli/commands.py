"""The ``pyro-lfads`` command: synth, from-nwb, from-continuous, fit, tune, posterior, evaluate, nlb-submission,
decode, analyze, diagnose, report, demo.

Bad input gives one line on stderr (``pyro-lfads: error: ...``) and exit status 2. The library's
messages name its arguments; :func:`in_flags` words them as this command's flags.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import re
import sys
import time
import warnings
from pathlib import Path

from pyro_lfads.cli.parser import build_parser
from pyro_lfads.data.validation import one_line
from pyro_lfads.errors import InputError


def cmd_synth(args) -> None:
    from pyro_lfads.data import save_dataset
    from pyro_lfads.data.nlb_writing import save_nlb_tensors
    from pyro_lfads.synthetic.behavior_lorenz import make_behavior_lorenz_dataset
    from pyro_lfads.synthetic.calcium import make_calcium_dataset
    from pyro_lfads.synthetic.chaotic_rnn import make_chaotic_rnn_dataset, make_pulse_dataset
    from pyro_lfads.synthetic.integrate_to_bound import make_integrate_to_bound_dataset
    from pyro_lfads.synthetic.lorenz import make_lorenz_dataset
    from pyro_lfads.synthetic.lorenz_nlb import make_nlb_lorenz_dataset
    from pyro_lfads.synthetic.multisession import make_multisession_datasets

    if args.likelihood != "poisson" and args.system != "lorenz":
        raise InputError(f"--likelihood: applies to 'synth lorenz' only, not {args.system}")
    if args.format != "lfads" and args.system != "nlb-lorenz":
        raise InputError(f"--format: applies to 'synth nlb-lorenz' only, not {args.system}")
    if args.gamma != 1.5 and args.system not in ("chaotic-rnn", "pulses"):
        raise InputError(f"--gamma: applies to 'synth chaotic-rnn' and 'synth pulses' only, not {args.system}")
    if args.pulse_fraction != 1.0 and args.system != "pulses":
        raise InputError(f"--pulse-fraction: applies to 'synth pulses' only, not {args.system}")
    if args.system == "calcium":
        dataset = make_calcium_dataset(seed=args.seed)
    elif args.system == "nlb-lorenz":
        dataset = make_nlb_lorenz_dataset(seed=args.seed)
    elif args.system == "chaotic-rnn":
        dataset = make_chaotic_rnn_dataset(seed=args.seed, gamma=args.gamma)
    elif args.system == "pulses":
        dataset = make_pulse_dataset(seed=args.seed, gamma=args.gamma, pulse_fraction=args.pulse_fraction)
    elif args.system == "integrate-to-bound":
        dataset = make_integrate_to_bound_dataset(seed=args.seed)
    elif args.system == "behavior-lorenz":
        dataset = make_behavior_lorenz_dataset(seed=args.seed)
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
    from pyro_lfads.data import save_dataset

    for k, dataset in enumerate(sessions):
        path = out.with_name(f"{out.stem}_session{k}{out.suffix}")
        dataset.source = str(path)
        save_dataset(dataset, path)
        print(f"wrote {path}: {dataset.train.n_trials} train + {dataset.valid.n_trials} valid trials, "
              f"{dataset.train.n_time} bins, {dataset.train.n_neurons} neurons")


def cmd_from_nwb(args) -> None:
    from pyro_lfads.data import save_dataset
    from pyro_lfads.data.nwb import load_nwb

    dataset = load_nwb(args.nwb_file, bin_ms=args.bin_ms, align_to=args.align_to, window_ms=tuple(args.window_ms),
                       forward_ms=args.forward_ms, behavior=args.behavior, condition=args.condition,
                       heldout=args.heldout, valid_fraction=args.valid_fraction, seed=args.seed)
    save_dataset(dataset, args.out)
    split = dataset.train
    print(f"wrote {args.out}: {split.n_trials} train and {dataset.valid.n_trials} valid trials, "
          f"{split.encod_data.shape[1]} observed + {split.n_time - split.encod_data.shape[1]} forward bins "
          f"of {args.bin_ms:g} ms, "
          f"{split.encod_data.shape[2]} held-in + {split.n_neurons - split.encod_data.shape[2]} held-out neurons")


def cmd_from_continuous(args) -> None:
    from pyro_lfads.data import save_dataset
    from pyro_lfads.data.continuous import continuous_dataset
    from pyro_lfads.data.continuous_files import read_continuous

    spikes, behavior = read_continuous(args.file, args.spikes, args.behavior, behavior_dims=args.behavior_dims,
                                       transpose=args.transpose)
    dataset = continuous_dataset(spikes, args.window_bins, args.overlap_bins, behavior=behavior,
                                 valid_every=args.valid_every, block_windows=args.block_windows,
                                 bin_width_s=None if args.bin_ms is None else args.bin_ms / 1000, source=str(args.file))
    save_dataset(dataset, args.out)
    print(f"wrote {args.out}: {spikes.shape[0]} bins of {spikes.shape[1]} neurons cut into {dataset.train.n_trials} "
          f"train and {dataset.valid.n_trials} valid windows of {args.window_bins} bins"
          + ("" if behavior is None else f", with {behavior.shape[1]} behaviour dims"))


def _config_for(args):
    from pyro_lfads.config import LFADSConfig

    config = LFADSConfig.from_yaml(args.config) if args.config else LFADSConfig()
    overrides = (("max_epochs", args.max_epochs), ("seed", args.seed), ("likelihood", args.likelihood))
    changes = {k: v for k, v in overrides if v is not None}
    return config.replace(**changes)


def cmd_fit(args) -> None:
    from pyro_lfads.data import load_dataset
    from pyro_lfads.fitting.devices import resolve_device
    from pyro_lfads.fitting.train import fit, resume_fit
    from pyro_lfads.models.likelihoods import data_support

    device = resolve_device(args.device)
    if args.resume is not None:
        if args.data or args.out or args.config or args.likelihood or args.seed is not None or args.overwrite:
            raise InputError("--resume: takes the data and config the run records; give only --max-epochs, "
                             "--device and --quiet with it")
        print(device_line(args.device, device), flush=True)
        run = resume_fit(args.resume, max_epochs=args.max_epochs, device=device, progress=not args.quiet)
    else:
        if not args.data or args.out is None:
            raise InputError("fit: needs DATA and --out RUN_DIR (or --resume RUN_DIR)")
        if args.out.exists() and not args.out.is_dir():
            raise InputError(f"--out: {args.out} is a file, not a folder; name a folder for the run (a new one, "
                             "or a run to continue)")
        config = _config_for(args)
        sessions = [load_dataset(path, support=data_support(config.likelihood), min_time_bins=config.time_bins)
                    for path in data_paths(args.data)]
        print(device_line(args.device, device), flush=True)
        run = fit(sessions if len(sessions) > 1 else sessions[0], config, args.out, device=device,
                  overwrite=args.overwrite, progress=not args.quiet)
    st = run.training
    best = (f"best sample-validation cost {st.best_valid:.4f} nats/entry" if run.config.sv_rate > 0 else
            f"best validation loss {st.best_valid:.2f} nats/trial")
    print(f"fitted {st.epoch} epochs ({st.step} steps, stopped: {STOP_WORDS.get(st.stopped, 'resumable')}); "
          f"{best} at epoch {st.best_epoch}; run in {run.directory}")


def device_line(requested: str, device: str) -> str:
    """The line ``fit`` and ``demo`` start with: the device they compute on, and why."""
    import torch

    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
    reason = ", ".join(filter(None, [name, "--device auto" if requested == "auto" else None,
                                     "no CUDA device found" if requested == "auto" and device == "cpu" else None]))
    return f"device: {device}" + (f" ({reason})" if reason else "")


STOP_WORDS = {"plateau": "plateau, no progress of the validation objective for the config's patience",
              "lr_min": "the learning rate reached lr_min", "max_epochs": "max_epochs reached"}


def cmd_tune(args) -> None:
    from pyro_lfads.config import LFADSConfig
    from pyro_lfads.data import load_dataset
    from pyro_lfads.extensions.tune import METRIC, require_ray, tune
    from pyro_lfads.models.likelihoods import data_support

    require_ray()
    config = LFADSConfig.from_yaml(args.config) if args.config else LFADSConfig()
    dataset = load_dataset(args.data.resolve(), support=data_support(config.likelihood),
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
    from pyro_lfads.fitting.new_data import write_posterior_of
    from pyro_lfads.fitting.posterior import write_posterior
    from pyro_lfads.fitting.devices import resolve_device

    if (args.data is None) != (args.out is None):
        raise InputError("--data and --out go together: the new trials' posterior goes to a file of its own "
                         "(RUN_DIR/posterior.h5 holds the run's own data)")
    if args.data is None and args.session:
        raise InputError("--session: applies with --data only (without it every session is written)")
    device = resolve_device(args.device)
    if args.data is None:
        paths = write_posterior(args.run_dir, samples=args.samples, means=args.means, device=device,
                                progress=not args.quiet)
    else:
        paths = [write_posterior_of(args.run_dir, args.data, args.out, session=args.session, samples=args.samples,
                                    means=args.means, device=device, progress=not args.quiet)]
    print("wrote " + ", ".join(str(path) for path in paths))


def cmd_evaluate(args) -> None:
    from pyro_lfads.evaluation.table import evaluate_run, format_table, with_in_sample
    from pyro_lfads.fitting.run import Run

    run = Run.open(args.run_dir)
    sessions = [args.session] if args.session is not None else range(run.n_sessions)
    results = {session: evaluate_run(run, baselines=args.baselines, lag_bins=args.lag_bins,
                                     psth_sigma_bins=args.psth_sigma_bins, session=session)
               for session in sessions}
    if run.n_sessions == 1:
        result = results[0]
        print(json.dumps(with_in_sample(result)) if args.json else format_table(result))
    elif args.json:
        print(json.dumps({f"session{k}": with_in_sample(result) for k, result in results.items()}))
    else:
        print("\n\n".join(f"session {k}\n{format_table(result)}" for k, result in results.items()))


def cmd_nlb_submission(args) -> None:
    from pyro_lfads.evaluation.nlb_submission import write_nlb_submission
    from pyro_lfads.fitting.devices import resolve_device

    out = write_nlb_submission(args.run_dir, args.out, args.name, args.data, samples=args.samples,
                               device=resolve_device(args.device), session=args.session, progress=not args.quiet)
    print(f"wrote {out}: group {args.name} (train_rates_*, eval_rates_*), for nlb_tools.evaluation.evaluate")


def cmd_decode(args) -> None:
    from pyro_lfads.evaluation.decoding import decode_run

    print(json.dumps(decode_run(args.run_dir, method=args.method, source=args.source, lag_bins=args.lag_bins,
                                session=args.session)))


def cmd_analyze(args) -> None:
    from pyro_lfads.analysis.run_analysis import ANALYSES, analyze_run

    chosen = tuple(name for name, flag in zip(ANALYSES, (args.jpca, args.inputs_embedding)) if flag) or ANALYSES
    print(json.dumps(analyze_run(args.run_dir, chosen, split=args.split, labels=args.labels, source=args.source,
                                 k=args.k, window=args.window, out=args.out, session=args.session)))


def cmd_diagnose(args) -> None:
    from pyro_lfads.diagnostics.summary import diagnose_run
    from pyro_lfads.fitting.run import Run
    from pyro_lfads.fitting.devices import resolve_device

    device = resolve_device(args.device)
    run = Run.open(args.run_dir)
    summaries = {f"session{k}": diagnose_run(run, samples=args.samples, importance_samples=args.importance_samples,
                                             split=args.split, bin_ms=args.bin_ms, device=device,
                                             progress=not args.quiet, session=k)
                 for k in range(run.n_sessions)}
    print(json.dumps(summaries["session0"] if run.n_sessions == 1 else summaries))


def cmd_report(args) -> None:
    from pyro_lfads.diagnostics.report import write_report
    from pyro_lfads.fitting.devices import resolve_device

    index = write_report(args.run_dir, out=args.out, bin_ms=args.bin_ms, device=resolve_device(args.device),
                         progress=not args.quiet)
    print(f"wrote {index}")


def cmd_demo(args) -> None:
    from pyro_lfads.cli.demo import run_demo
    from pyro_lfads.fitting.devices import resolve_device

    device = resolve_device(args.device)
    print(device_line(args.device, device), flush=True)
    run_demo(args.out, device=device, max_epochs=args.max_epochs, progress=not args.quiet)


COMMANDS = {"synth": cmd_synth, "from-nwb": cmd_from_nwb, "from-continuous": cmd_from_continuous, "fit": cmd_fit,
            "tune": cmd_tune, "posterior": cmd_posterior, "evaluate": cmd_evaluate,
            "nlb-submission": cmd_nlb_submission, "decode": cmd_decode, "analyze": cmd_analyze,
            "diagnose": cmd_diagnose,
            "report": cmd_report, "demo": cmd_demo}


#: Where a command's flag is named otherwise than the library's argument: (pattern of the library's words
#: in its error messages, the flag's words), per command.
_DEVICE = ((r"^device:", "--device:"),)
_BIN_MS = ((r"^bin_ms:", "--bin-ms:"), (r"leave bin_ms out", "leave --bin-ms out"))
#: A stale derived file names the command that makes it again.
_RERUN = ((r"rerun write_posterior on (.+)$", r"rerun 'pyro-lfads posterior \1'"),
          (r"rerun diagnose_run on (.+)$", r"rerun 'pyro-lfads diagnose \1'"))
FLAG_WORDS = {
    "fit": _DEVICE + ((r"pass overwrite=True", "pass --overwrite"), (r"^config: likelihood:", "--likelihood:")),
    "from-continuous": ((r"(^|: )(window_bins|overlap_bins|behavior_dims):",
                         lambda m: f"{m[1]}--{m[2].replace('_', '-')}:"),
                        (r"\b(valid_every|block_windows)=", lambda m: f"--{m[1].replace('_', '-')} "),
                        (r"pass transpose=True", "pass --transpose")),
    "posterior": _DEVICE + ((r"^samples:", "--samples:"), (r"^out:", "--out:"), (r"^session:", "--session:")),
    "evaluate": _RERUN + ((r"^session:", "--session:"),),
    "nlb-submission": _DEVICE + ((r"^(samples|name|session):", r"--\1:"), (r"\(data\)$", "(--data)")),
    "decode": _RERUN + ((r"^source:", "--from:"), (r"^session:", "--session:"), (r"^method:", "--method:"),
                        (r"use method '(\w+)'", r"use --method \1")),
    "analyze": _RERUN + ((r"^(labels|session|window|k):", r"--\1:"), (r"^source:", "--from:"),
                         (r"^inputs_embedding:", "--inputs-embedding:")),
    "diagnose": _DEVICE + _BIN_MS,
    "report": _DEVICE + _RERUN + _BIN_MS,
    "demo": _DEVICE,
    "tune": ((r"^objective '(\w+)'", r"--objective \1"), (r"use objective '(\w+)'", r"use --objective \1"),
             (r"^(objective|population|generations|address):", r"--\1:"),
             (r"^epochs_per_generation:", "--epochs-per-generation:"), (r"^cpus_per_trial:", "--cpus-per-trial:"),
             (r"^gpus_per_trial:", "--gpus-per-trial:"), (r"choose a new out$", "choose a new --out")),
}


def in_flags(message: str, command: str) -> str:
    """A library error ``message`` worded as ``command``'s flags (:data:`FLAG_WORDS`)."""
    for pattern, flag in FLAG_WORDS.get(command, ()):
        message = re.sub(pattern, flag, message)
    return message


#: What to do about an input/output error, by its errno.
IO_ADVICE = {
    errno.EACCES: "check the permissions of the file and its folder, or choose another place",
    errno.EPERM: "check the permissions of the file and its folder, or choose another place",
    errno.EROFS: "the file system is read-only; choose another place",
    errno.ENOSPC: "the disk is full; free some space, then run the command again",
    errno.EDQUOT: "the disk quota is used up; free some space, then run the command again",
    errno.EFBIG: "the file outgrew the size this system allows (a file-size limit, ulimit -f); raise the limit or "
                 "choose another place, then run the command again",
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.EISDIR: "this is a folder, where a file was expected",
}
#: Words of errors that libraries (HDF5, netCDF) raise as RuntimeError for a failed read or write.
_IO_FAILURE_WORDS = ("No space left on device", "File too large", "Disk quota exceeded", "Permission denied",
                     "Read-only file system", "file write failed")


def io_error_message(exc: OSError | RuntimeError) -> str:
    """One line for an input/output error: the file, what went wrong, what to do (nothing was left
    half-written: files are written whole or not at all)."""
    if not isinstance(exc, OSError):
        return f"cannot write or read a file: {one_line(exc)}"
    where = f"{exc.filename}: " if exc.filename else ""
    what = " ".join(exc.strerror.split()) if exc.strerror else one_line(exc)
    advice = IO_ADVICE.get(exc.errno)
    return f"{where}{what}" + (f"; {advice}" if advice else "")


def _is_io_failure(exc: RuntimeError) -> bool:
    return any(words in str(exc) for words in _IO_FAILURE_WORDS)


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning as one ``pyro-lfads: warning: ...`` line, without the source file it came from."""
    text = one_line(message) if isinstance(message, BaseException) else " ".join(str(message).split())
    print(f"pyro-lfads: warning: {text}", file=sys.stderr if file is None else file)


def _search_working_directory() -> None:
    """Let ``--likelihood package.module:ClassName``, and a run's config.yaml that records one, name a module
    in the working directory, after the installed packages (``python -m`` puts it first)."""
    try:
        here = os.getcwd()
    except OSError:  # the working directory was removed
        return
    if "" not in sys.path and here not in sys.path:
        sys.path.append(here)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _search_working_directory()
    start = time.perf_counter()
    shown, unraisable_hook, unraisable = warnings.showwarning, sys.unraisablehook, []
    warnings.showwarning = _warning_line
    sys.unraisablehook = unraisable.append  # HDF5's objects report a failed close so; shown on success only
    try:
        COMMANDS[args.command](args)
        for report in unraisable:
            unraisable_hook(report)
    except InputError as exc:
        print(f"pyro-lfads: error: {in_flags(str(exc), args.command)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"pyro-lfads: error: {io_error_message(exc)}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if not _is_io_failure(exc):
            raise
        print(f"pyro-lfads: error: {io_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pyro-lfads: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning, sys.unraisablehook = shown, unraisable_hook
    if args.command in ("fit", "tune", "posterior", "nlb-submission", "diagnose", "report", "demo"):
        print(f"done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0

