"""The command line derived from a frozen config dataclass: one flag per field, defaults and choices shown."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import io
import math
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

C = TypeVar("C")

# Exit codes of both experiment CLIs: 0 all trials trained, 2 usage or data error (nothing trained),
# 3 some trial diverged (the others ran; results.json/md record which), 130 interrupted.
EXIT_USAGE, EXIT_DIVERGED = 2, 3


CONFIG_CLASSES = {"cnn": "CNNConfig", "unet": "UNetConfig"}  # experiment -> its config dataclass's name


def config_class(experiment: str) -> type:
    """The config dataclass of `python -m experiments.<experiment>` (imported when asked: it brings in JAX)."""
    return getattr(importlib.import_module(f"experiments.{experiment}"), CONFIG_CLASSES[experiment])


def flag_of(name: str) -> str:
    """The command-line flag of a config field or a library argument: data_dir -> --data-dir."""
    return "--" + name.replace("_", "-")


GIVEN = "_flags_given"  # the attribute parse() sets on a config: the names of the flags on the command line


def check_cv_flags(folds: int, fold: int) -> None:
    """--cv-folds and --cv-fold, as both experiments take them: 0 (off) or N >= 2, and K in 0..N-1."""
    from jaxadl.data.base import check_cv

    check_cv(folds, fold, ("--cv-folds", "--cv-fold"))


def check_seed_flags(seed: int, split_seed: int) -> None:
    """--seed and --split-seed, as both experiments take them: >= 0 (numpy's generators refuse others)."""
    for flag, value in (("--seed", seed), ("--split-seed", split_seed)):
        if value < 0:
            raise ValueError(f"{flag} must be >= 0, got {value}")


def refuse_unused(cfg: Any) -> None:
    """A usage error for a flag that was given (_given) and that the run would not use (cfg.unused() names
    them, with why): a silently ignored flag reads as a result it never had."""
    given = set(_given(cfg))
    for name, reason in cfg.unused() if hasattr(cfg, "unused") else ():  # the experiments' configs have it
        if name in given:
            raise ValueError(f"{flag_of(name)}={getattr(cfg, name)} is not used {reason}")


def opt(
    default: Any,
    help: str,
    choices: Sequence[Any] | None = None,
    shown: str | None = None,
    group: str | None = None,
) -> Any:
    """A config field with its help text (and choices) for the derived command line.

    `shown` is how --help describes the default (fields defaulting to None take the recipe's value);
    `group` titles the --help section it is listed in, after the ungrouped flags.
    """
    return dataclasses.field(
        default=default, metadata={"help": help, "choices": choices, "shown": shown, "group": group}
    )


RUN_FOLDER = "run folder (where a run writes, resumes and is re-evaluated from)"


@dataclasses.dataclass(frozen=True)
class RunFolderFlags:
    """The flags every experiment shares: its run folder, checkpoints, devices, and re-evaluating a finished
    run. The experiments' configs inherit them; --help lists them last, under their own heading."""

    out: str | None = opt(
        None,
        "run folder to write",
        shown="runs/<experiment>-<date>-<time>, a new folder each run",
        group=RUN_FOLDER,
    )
    resume: bool = opt(
        False,
        "continue the run in --out from its newest checkpoints (same options, or more --epochs at a constant "
        "learning rate); starts it when --out holds none",
        group=RUN_FOLDER,
    )
    overwrite: bool = opt(False, "replace the run in --out", group=RUN_FOLDER)
    devices: int | None = opt(
        None, "data-parallel over the first N devices", shown="all visible devices", group=RUN_FOLDER
    )
    trials_together: bool = opt(
        False,
        "train a variant's trials as one program (a stacked state; vmap on GPU/TPU): faster on an accelerator, "
        "results equal separate runs within float tolerance",
        group=RUN_FOLDER,
    )
    keep: int = opt(
        2,
        "checkpoints kept per trial (plus the best one); 0: none (no --resume, no predict.load)",
        group=RUN_FOLDER,
    )
    eval_only: bool = opt(
        False,
        "re-evaluate the finished run given by --from-run, without training; --tta evaluates it with TTA",
        group=RUN_FOLDER,
    )
    from_run: str | None = opt(
        None, "run folder to re-evaluate with --eval-only", shown="none", group=RUN_FOLDER
    )

    def __post_init__(self) -> None:
        """Checks the shared flags; an experiment's config checks its own after calling this."""
        if self.devices is not None and self.devices < 1:
            raise ValueError(f"--devices must be >= 1, got {self.devices}")
        if self.keep < 0:
            raise ValueError(f"--keep must be >= 0, got {self.keep}")
        if self.eval_only and not self.from_run:
            raise ValueError("--eval-only needs --from-run=RUN_FOLDER")


def flag_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of a config dataclass in the order its flags are listed: its own, then the grouped ones."""
    return sorted(dataclasses.fields(cls), key=lambda f: f.metadata.get("group") is not None)


def _base_type(tp: Any) -> Any:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def finite_float(text: str) -> float:
    """A float flag's value: NaN or inf would pass range checks written `x >= 0` and train on to a diverged run."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def parser_for(
    cls: type, description: str, prog: str | None = None, *, given_only: bool = False
) -> argparse.ArgumentParser:
    """An argparse parser with `--field-name` for every field of the dataclass `cls`; with `given_only`,
    one whose namespace holds only the flags on the command line (no defaults)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    hints = typing.get_type_hints(cls)
    groups: dict[str, Any] = {}
    for f in flag_fields(cls):
        group = f.metadata.get("group")
        if group and group not in groups:
            groups[group] = parser.add_argument_group(group)
        target = groups[group] if group else parser
        tp = _base_type(hints[f.name])
        flag = flag_of(f.name)
        help_text = f.metadata.get("help", "")
        default = f.default
        shown = f.metadata.get("shown") or ("from the recipe" if default is None else default)
        if given_only:
            default = argparse.SUPPRESS
        if tp is bool:  # off-by-default switches get no --no-... form; the others can be turned off
            target.add_argument(
                flag,
                action="store_true" if f.default is False else argparse.BooleanOptionalAction,
                default=default,
                help=help_text if f.default is False else f"{help_text} (default: {shown})",
            )
        else:
            target.add_argument(
                flag,
                type=finite_float if tp is float else tp,
                default=default,
                choices=f.metadata.get("choices"),
                metavar=None if f.metadata.get("choices") else f.name.upper(),
                help=f"{help_text} (default: {shown})",
            )
    return parser


def argv_for(cls: type, values: dict[str, Any], against: dict[str, Any] | None = None) -> list[str]:
    """The flags parser_for(cls) reads back as `values`: one per field whose value differs from `against`
    (a field missing there: its default); a switch turned off is `--no-<flag>`."""
    out, against = [], against or {}
    for f in flag_fields(cls):
        value = values.get(f.name, f.default)
        if value == against.get(f.name, f.default):
            continue
        flag = flag_of(f.name)
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        elif value is not None:
            out.append(f"{flag}={value}")
    return out


def parse(cls: type[C], argv: Sequence[str] | None, description: str, prog: str | None = None) -> C:
    """Parse argv into a `cls` instance; bad flags or values exit with code 2 and a message."""
    parser = parser_for(cls, description, prog)
    args = parser.parse_args(argv)
    try:
        cfg = cls(**vars(args))
    except ValueError as e:
        parser.error(as_flag(str(e), cls))
    given = vars(parser_for(cls, description, prog, given_only=True).parse_args(argv))
    object.__setattr__(cfg, GIVEN, frozenset(given))  # beside the fields: not saved, not compared
    try:
        refuse_unused(cfg)
    except ValueError as e:
        parser.error(as_flag(str(e), cls))
    return cfg


def raising(call: Callable[[], C]) -> C:
    """`call()`, a parse by one of these parsers, with its usage-error exit raised as ValueError(the message,
    without the usage text): for callers that check many command lines and name the one refused."""
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return call()
    except SystemExit:
        lines = said.getvalue().strip().splitlines() or ["refused"]
        raise ValueError(lines[-1].split("error: ", 1)[-1]) from None


def as_flag(message: str, cls: type | None) -> str:
    """A library error that begins with an option's name ("lr must be > 0, ...") begins with its flag."""
    head = message.split(" ", 1)[0]
    if cls is None or head not in {f.name for f in dataclasses.fields(cls)}:
        return message
    return flag_of(head) + message[len(head) :]


def main_guard(run: Callable[[], int], cls: type | None = None) -> int:
    """Run a CLI body, turning usage and data errors (ValueError, DatasetError, ...) into exit code 2;
    an error about one of `cls`'s options names its flag."""
    from jaxadl.checkpoint import CheckpointError
    from jaxadl.data.base import DatasetError
    from jaxadl.run_folder import RunFolderError

    try:
        return run()
    except (ValueError, FileNotFoundError, DatasetError, RunFolderError, CheckpointError) as e:
        named = isinstance(e, DatasetError) and e.arg  # the library's argument, named by its flag
        message = e.naming(flag_of(e.arg)) if named else str(e)
        print(f"error: {as_flag(message, cls)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# what --eval-only takes from its own command line: where the data is now, and how to evaluate
EVAL_DATA_FLAGS = ("dataset", "data_dir", "cache_dir")
EVAL_OPTIONS = ("tta", "eval_batch_size")


def _given(cfg: Any) -> list[str]:
    """The flags given on the command line (parse records them, a default value given included), else,
    for a config built in Python, the fields whose value is not their default."""
    given = getattr(cfg, GIVEN, None)
    if given is not None:
        return [f.name for f in flag_fields(type(cfg)) if f.name in given]
    return [f.name for f in flag_fields(type(cfg)) if getattr(cfg, f.name) != f.default]


def eval_options(cfg: Any) -> dict[str, Any]:
    """The evaluation options given with --eval-only (--tta, --eval-batch-size), to use instead of the run's."""
    return {name: getattr(cfg, name) for name in _given(cfg) if name in EVAL_OPTIONS}


def saved_config(cls: type[C], cfg: Any, experiment: str) -> C:
    """The config of the run in cfg.from_run, with this invocation's data-location flags; a flag that
    re-evaluating would not use (a training option, --out) is an error, not silently dropped."""

    from jaxadl.run_folder import RunFolder, read_record

    folder = RunFolder(cfg.from_run)
    unused = [n for n in _given(cfg) if n not in (*EVAL_DATA_FLAGS, *EVAL_OPTIONS, "eval_only", "from_run")]
    if unused:
        flags = ", ".join(flag_of(n) for n in unused)
        takes = ", ".join(flag_of(n) for n in (*EVAL_OPTIONS, *EVAL_DATA_FLAGS) if hasattr(cfg, n))
        raise ValueError(
            f"--eval-only re-evaluates {folder.root} as it was trained and writes into it, so {flags} would "
            f"not be used; drop {'them' if len(unused) > 1 else 'it'} (it takes {takes})"
        )
    if folder.root.is_file():
        raise ValueError(f"--from-run {folder.root} is a file, not a run folder; pass the folder a run wrote")
    path = folder.config
    try:
        saved = read_record(path)
    except ValueError as e:
        raise ValueError(f"--from-run: {e}") from e
    if saved.get("experiment") != experiment:
        raise ValueError(f"--from-run: {path} is a {saved.get('experiment')!r} run, not a {experiment} run")
    fields = {f.name for f in dataclasses.fields(cls)}
    old = {k: v for k, v in saved["cli"].items() if k in fields}
    if "split_seed" in fields and "split_seed" not in old:  # saved before --split-seed: --seed drew the split
        old["split_seed"] = old.get("seed", 0)
    overrides = {k: getattr(cfg, k) for k in _given(cfg) if k in EVAL_DATA_FLAGS}
    return dataclasses.replace(cls(**old), **overrides, eval_only=False)


def default_out(experiment: str) -> str:
    """A fresh run folder per invocation, so repeated runs never collide: runs/<experiment>-<date>-<time>."""
    import time
    from pathlib import Path

    stamp = time.strftime("%Y%m%d-%H%M%S")
    out, n = Path("runs") / f"{experiment}-{stamp}", 1
    while out.exists():
        n += 1
        out = Path("runs") / f"{experiment}-{stamp}-{n}"
    return str(out)


def run_cli(experiment: str, cfg: Any, load_data: Callable, build_variants: Callable, config: dict) -> int:
    """The body both experiment CLIs share: join a multi-host run, then re-evaluate or train and report.

    Returns the exit code: 0, or EXIT_DIVERGED when a trial's loss turned non-finite (the run still
    finishes its other trials and writes every file)."""

    def run() -> int:
        refuse_unused(cfg)  # parse() did for a command line; this is for a config built in Python
        import jaxadl  # noqa: F401  (sets the fast XLA:CPU flags before JAX starts)
        from jaxadl.experiment import check_out_folder, run_experiment
        from jaxadl.parallel import broadcast_text, initialize_distributed, on_main_first
        from jaxadl.saved_runs import evaluate_run

        several = initialize_distributed()
        if cfg.eval_only:
            if several:
                raise ValueError("--eval-only runs in one process: start it without JAX_COORDINATOR_ADDRESS")
            evaluate_run(
                cfg.from_run, load_data(saved_config(type(cfg), cfg, experiment)), **eval_options(cfg)
            )
            return 0
        if cfg.resume and not cfg.out:
            raise ValueError("--resume needs --out=RUN_FOLDER (the run to continue)")
        if cfg.out:  # before the data is read, which may take minutes
            check_out_folder(cfg.out)
        # process 0 prepares a dataset cache before the others read it, and names the run folder for all
        data = on_main_first(lambda: load_data(cfg))
        variants = build_variants(cfg, data)
        out = broadcast_text(cfg.out or default_out(experiment))
        if cfg.out and out != cfg.out:
            print(f"note: process 0 writes the run folder {out}; --out={cfg.out} is not used here")
        results = run_experiment(
            experiment,
            data,
            variants,
            out,
            {"cli": dataclasses.asdict(cfg), **config},
            resume=cfg.resume,
            overwrite=cfg.overwrite,
            keep=cfg.keep,
            devices=cfg.devices,
            together=cfg.trials_together,
        )
        failed = [t for t in results["trials"] if t.get("failed")]
        if failed:
            print(
                f"error: {len(failed)} of {len(results['trials'])} trials diverged (non-finite loss); "
                f"their rows in {out}/results.md say where (exit code {EXIT_DIVERGED})",
                file=sys.stderr,
            )
            return EXIT_DIVERGED
        return 0

    return main_guard(run, type(cfg))
