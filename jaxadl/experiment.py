"""Variants x trials -> a run folder: config.json, metrics.jsonl, results.json, results.md and plots.

Both command-line experiments (experiments/cnn.py, experiments/unet.py) are thin wrappers around
`run_experiment`; a notebook can call it the same way.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import jax

from jaxadl import plots, report
from jaxadl.data.base import Dataset
from jaxadl.parallel import is_main_process, make_mesh, on_main_first
from jaxadl.run_folder import (
    RunFolder,
    RunFolderError,
    read_record,
    recipe_changes,
    recipe_values,
    write_json,
)
from jaxadl.saved_runs import ensembles, eval_split
from jaxadl.trainer import check_batch_size
from jaxadl.trials import RunContext, Variant, run_trials

# the vector extensions XLA:CPU compiles for when the host has them: runs on hosts that differ in these can
# differ in rounding, and a long run (Rprop's sign-driven steps above all) in its result
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")


def host_cpu(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, Any]:
    """The host CPU's model, logical cores and vector extensions (from /proc/cpuinfo where there is one)."""
    try:
        fields = [line.partition(":") for line in Path(cpuinfo).read_text().splitlines()]
    except OSError:
        fields = []
    first = {}
    for key, _, value in fields:
        first.setdefault(key.strip(), value.strip())
    flags = set(first.get("flags", "").split())
    model = first.get("model name") or platform.processor() or "unknown"
    return {"model": model, "cores": os.cpu_count(), "simd": [f for f in SIMD_FLAGS if f in flags]}


def environment() -> dict[str, Any]:
    """Library versions, the device and the host CPU, recorded in results.json."""
    versions = {}
    for pkg in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    dev = jax.devices()[0]
    return {
        "versions": versions,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "cpu": host_cpu(),
    }


# options that change how a run is carried out, not its results: a run may resume with others
RUN_ONLY_KEYS = ("resume", "overwrite", "out", "eval_only", "from_run", "trials_together")


def check_out_folder(out: str | Path) -> None:
    """RunFolderError when `out`, or a folder above it, is a file: no run folder can be made there."""
    out = Path(out)
    blocker = next((p for p in (out, *out.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        what = f"--out {out}" if blocker == out else f"--out {out}: {blocker}"
        raise RunFolderError(f"{what} is a file, not a folder; choose another --out")


def _ran_with(resolved: Any, key: str, value: Any) -> bool:
    """Whether a flag left to the recipe then (None) took `value`: giving it now resumes the same run."""
    values = recipe_values(resolved, key)
    return bool(values) and all(v == value for v in values)


def _same_option(key: str, saved: Any, given: Any, was: Any, now: Any) -> bool:
    """Whether a flag names the same value as in the saved run: equal, or one side left it to the recipe
    (None) and the recipe resolved it to the other side's value (then or now)."""
    if saved == given:
        return True
    if saved is None:
        return _ran_with(was, key, given)
    return given is None and _ran_with(now, key, saved)


def _longer(was: Any, now: Any) -> bool:
    """Whether a resumed run asks for more epochs than it ran with, at a constant learning rate: its trials
    then go on from their last checkpoints exactly as a run asked for that many epochs from the start would
    (a schedule that depends on the length, one-cycle or cosine, would not)."""
    before, after = recipe_values(was, "epochs"), recipe_values(now, "epochs")
    schedules = recipe_values(was, "schedule") + recipe_values(now, "schedule")
    return (
        len(before) == len(after) > 0
        and all(b < a for b, a in zip(before, after, strict=True))
        and bool(schedules)
        and all(s == "constant" for s in schedules)
    )


def prepare_folder(
    out: str | Path, experiment: str, config: dict[str, Any], resume: bool = False, overwrite: bool = False
) -> Path:
    """Create the run folder. Refuse one holding another experiment's run, or (unless resuming with the
    same options, or overwriting) one that already holds a run."""
    check_out_folder(out)
    folder = RunFolder(out)
    out, cfg_path = folder.root, folder.config
    if cfg_path.exists():
        try:
            previous = read_record(cfg_path)
        except ValueError as e:
            raise RunFolderError(f"{e}; choose another --out") from e
        if previous.get("experiment") != experiment:
            raise RunFolderError(
                f"{out} holds a {previous.get('experiment')!r} run, not {experiment!r}; choose another --out"
            )
        if resume:
            old = {k: v for k, v in previous.get("cli", {}).items() if k not in RUN_ONLY_KEYS}
            new = {k: v for k, v in config.get("cli", {}).items() if k not in RUN_ONLY_KEYS}
            was = previous.get("resolved")
            now = json.loads(json.dumps(config.get("resolved"), default=str))  # as saved
            longer = _longer(was, now)  # more epochs at a constant rate: the saved run's own continuation
            diff = sorted(  # an option the saved run lacks was added since: it ran as that option's default
                k
                for k in old
                if not _same_option(k, old.get(k), new.get(k), was, now) and not (longer and k == "epochs")
            )
            if diff:
                raise RunFolderError(
                    f"--resume: {out} was run with other options ({', '.join(diff)}); resume with the same "
                    "options or choose another --out"
                )
            changed = [
                f"{k}: {a} -> {b}"
                for k, a, b in recipe_changes(was, now)
                if not (longer and k.rsplit(".", 1)[-1] == "epochs")
            ]
            if changed:
                raise RunFolderError(
                    f"--resume: {out} was run when the recipe's defaults were other ({'; '.join(changed)}); "
                    "give the values it ran with as flags to resume it as it was, or choose another --out"
                )
            if longer:  # the shorter run's results would read as this one's until it ends
                for stale in (folder.results_json, folder.results_md):
                    stale.unlink(missing_ok=True)
        elif not overwrite:
            raise RunFolderError(
                f"{out} already holds a {experiment} run; pass --resume to continue it, "
                "--overwrite to replace it, or choose another --out"
            )
        elif overwrite:
            for sub in (folder.checkpoints_dir, folder.trials_dir):
                if sub.exists():
                    shutil.rmtree(sub)
    out.mkdir(parents=True, exist_ok=True)
    return out


def run_experiment(
    experiment: str,
    data: Dataset,
    variants: list[Variant],
    out: str | Path,
    config: dict[str, Any],
    *,
    log: Callable[[str], None] = print,
    resume: bool = False,
    overwrite: bool = False,
    keep: int = 2,
    devices: int | None = None,
    together: bool = False,
) -> dict[str, Any]:
    """Train every variant's trials on `data`, evaluate on test (val when there is no test set), write all.

    Each trial checkpoints every epoch under checkpoints/<variant>_trialN/ and, when done, writes
    trials/<variant>_trialN.json; `resume` skips finished trials and continues unfinished ones.
    `together` trains each variant's unfinished trials as one program (jaxadl.together).
    """
    mesh = make_mesh(devices)
    for variant in variants:  # fail before any training when a batch does not fit the data or devices
        if not variant.train.full_batch:
            check_batch_size(variant.train.batch_size, len(data.train), mesh)
    split, eval_data = eval_split(data)
    ctx = RunContext(data, split, eval_data, RunFolder(out), mesh, log, resume, keep, together)
    folder = ctx.folder

    def start_folder() -> None:  # process 0 alone writes the run folder; all take part in checkpoints
        if resume and not folder.config.exists():  # a sweep's run cut before it began, or a new --out
            log(f"--resume: {folder.root} holds no run yet; starting one")
        prepare_folder(folder.root, experiment, config, resume=resume, overwrite=overwrite)
        tasks = {v.name: v.task.to_record() for v in variants}  # what each variant's metrics mean
        write_json(folder.config, {"experiment": experiment, **config, "tasks": tasks})
        if not resume or not folder.metrics.exists():
            folder.metrics.write_text("")

    on_main_first(start_folder, others=False)
    log(plan(variants, data, split, folder.root, mesh.devices.size))
    trials = run_trials(ctx, variants)
    together = []  # several processes would each restore every trial: there, --eval-only (one process) does it
    if keep and jax.process_count() == 1:
        together = ensembles(folder.root, trials, eval_data, ctx.cases, split, log=log, figure="example")
    results = {
        "experiment": experiment,
        "dataset": data.name,
        "dataset_meta": data.meta,
        "eval_split": split,
        "devices": int(mesh.devices.size),  # the data-parallel mesh the run trained on (--devices)
        "trials": trials,
        "ensembles": together,
        "environment": environment(),
    }
    if is_main_process():
        _write_results(ctx, variants, config.get("recipe"), results)
    return results


def _write_results(
    ctx: RunContext, variants: list[Variant], recipe: str | None, results: dict[str, Any]
) -> None:
    """The variants figure, results.json and results.md (the first variant's task's table)."""
    experiment, folder = results["experiment"], ctx.folder
    panels = report.variant_panels([v.task for v in variants], results["trials"])
    if panels:
        plots.overlay(panels, f"{experiment}: variants", folder.variants_plot)
    write_json(folder.results_json, results)
    table = report.table(variants[0].task, results["trials"], ctx.eval_split, results["ensembles"])
    recipe = f"Recipe: {recipe} (resolved values in config.json). " if recipe else ""
    folder.results_md.write_text(
        f"# {experiment} on {ctx.data.name}\n\n{recipe}Evaluated on the {ctx.eval_split} split "
        f"({len(ctx.eval_data)} examples); the selected epoch is the one evaluated.\n\n{table}\n"
    )
    ctx.log("\n" + table)
    ctx.log(f"\nwrote {folder.root}/results.md, results.json, metrics.jsonl and plots")


def plan(variants: list[Variant], data: Dataset, eval_split: str, out: Path, devices: int) -> str:
    """What a run is about to do, printed before the first compile: variants, trials, epochs, steps."""
    lines = [f"plan: {sum(v.trials for v in variants)} trial(s) on {devices} device(s), writing {out}"]
    if cv := data.meta.get("cross_validation"):
        lines.append(
            f"  validating on fold {cv['fold']} of {cv['folds']} (0..{cv['folds'] - 1}, seed {cv['seed']}) "
            f"of the {len(data.train) + len(data.val)} train + val cases"
        )
    for v in variants:
        c = v.train
        steps = 1 if c.full_batch else len(data.train) // c.batch_size
        batch = "the whole training set" if c.full_batch else f"batches of {c.batch_size}"
        lines.append(
            f"  {v.name}: {v.trials} trial(s) x {c.epochs} epochs x {steps} steps ({batch}), "
            f"{c.optim.name} lr {c.optim.lr:g} {c.optim.schedule}, keeps the {c.select} epoch, "
            f"evaluated on {eval_split}" + _val_every(c.val_every, data.val is not None)
        )
    return "\n".join(lines)


def _val_every(every: int, has_val: bool) -> str:
    """The plan's note on validating every N epochs, or that there is nothing to validate on."""
    if every == 1:
        return ""
    if has_val:
        return f"; validates every {every} epochs and the last"
    return f"; val_every={every} does nothing: there is no validation data"
