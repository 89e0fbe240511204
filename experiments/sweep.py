"""Many runs of one experiment side by side, tabulated: `python -m experiments.sweep --jobs=FILE`.

FILE holds one run per line, `name: flags` (flags of `python -m experiments.cnn` or `.unet`); `#` starts
a comment. Each run is its own process writing OUT/<name>/ (log in OUT/<name>.log); OUT/sweep.md and
sweep.json give per run the best validation metric and its epoch, the metric after 10, 20 and 30
epochs, and compile and training seconds. One GPU holds several small runs at once (`--parallel`);
this is how the strong recipe's choices in experiments/cnn.py were measured. To end a sweep early but
keep what is running, create the file OUT/stop: no run starts after that, the running ones finish, and
the table is written. To go on with a sweep that was cut (a stop file, a time limit, a restarted machine),
run the same command with `--resume`: finished runs are kept, cut ones continue from their checkpoints.
`--only=REGEX` runs the part of a jobs file whose names it finds (one fold, one lever).

Example:
  printf 'base: --epochs=30\\nwd: --epochs=30 --weight-decay=0.05\\n' > jobs.txt
  python -m experiments.sweep --jobs=jobs.txt --parallel=2 --common='--data-dir=GTSRB_DIR'
  python -m experiments.sweep --jobs=experiments/sweeps/cnn_track_folds.txt --only='^batchnorm_f' \\
    --common='--data-dir=GTSRB_DIR --cv-folds=5 --select=last'
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from experiments.cli import config_class, default_out, main_guard, opt, parse, raising
from experiments.sweep_pace import SweepPace
from jaxadl.run_folder import RunFolder, read_record
from jaxadl.tasks import from_record

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
RESERVED = {"stop", "sweep.md", "sweep.json"}  # the sweep's own files in its folder
KEPT = "done before (kept)"  # a run --resume found finished
FLAGS = "[sweep] flags: "  # the first line of each run's log: what it ran with, checked by --resume


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """Options of a sweep."""

    jobs: str | None = opt(None, "text file with one 'name: flags' line per run", shown="required")
    experiment: str = opt("cnn", "the experiment every line runs", ("cnn", "unet"))
    common: str = opt("", "flags given to every run, e.g. '--dataset=npz --data-dir=gtsrb.npz'", shown="none")
    parallel: int = opt(1, "runs at a time")
    time_limit: float = opt(0.0, "seconds for the whole sweep; runs still going then are stopped (0: none)")
    out: str | None = opt(None, "sweep folder", shown="runs/sweep-<date>-<time>")
    only: str = opt(
        "", "run only the jobs whose name this regular expression finds, e.g. '_f[12]$'", shown="all"
    )
    resume: bool = opt(
        False,
        "go on with the sweep in --out: its finished runs are kept, runs cut short continue (their --resume), "
        "the others start",
    )

    def __post_init__(self) -> None:
        if not self.jobs:
            raise ValueError("--jobs=FILE is required (one 'name: flags' line per run)")
        if self.parallel < 1:
            raise ValueError(f"--parallel must be >= 1, got {self.parallel}")
        if not self.time_limit >= 0:
            raise ValueError(f"--time-limit must be >= 0, got {self.time_limit}")
        try:
            re.compile(self.only)
        except re.error as e:
            raise ValueError(f"--only={self.only}: not a regular expression ({e})") from None


def read_jobs(path: str | Path) -> list[tuple[str, list[str]]]:
    """(name, flags) per line of a jobs file; errors name the file and line."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:  # UnicodeDecodeError: not a text file
        raise ValueError(f"--jobs: cannot read {path}: {e}") from e
    jobs: list[tuple[str, list[str]]] = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, flags = line.partition(":")
        name = name.strip()
        if not sep or not NAME.match(name):
            raise ValueError(
                f"{path}:{number}: expected 'name: flags' with a name of letters, digits, _ . - "
                "(starting with a letter or digit)"
            )
        if name in RESERVED:
            raise ValueError(f"{path}:{number}: run name {name!r} is the sweep's own file; choose another")
        if name in {n for n, _ in jobs}:
            raise ValueError(f"{path}:{number}: run name {name!r} is used twice")
        try:
            jobs.append((name, shlex.split(flags, comments=True)))  # a # inside quotes stays
        except ValueError as e:  # an unclosed quote
            raise ValueError(f"{path}:{number}: {e} in the flags") from e
    if not jobs:
        raise ValueError(f"{path}: no runs in it")
    return jobs


def select_jobs(jobs: list[tuple[str, list[str]]], only: str, path: str) -> list[tuple[str, list[str]]]:
    """The jobs whose name the regular expression `only` finds (all of them for ""), in the file's order."""
    chosen = [job for job in jobs if re.search(only, job[0])]
    if not chosen:
        names = ", ".join(name for name, _ in jobs[:5]) + (", ..." if len(jobs) > 5 else "")
        raise ValueError(f"--only={only}: no run of {path} has a name it finds (its runs: {names})")
    return chosen


def check_jobs(experiment: str, common: list[str], jobs: list[tuple[str, list[str]]], path: str) -> None:
    """Every job's flags read by its experiment's CLI before any run starts, so that a mistake on a late line
    is an error now, not hours into the sweep."""
    cls = config_class(experiment)
    for name, flags in jobs:
        command = f"python -m experiments.{experiment} {shlex.join([*common, *flags])}"
        try:
            cfg = raising(lambda: parse(cls, [*common, *flags], ""))  # noqa: B023 (called at once)
        except ValueError as e:
            raise ValueError(f"{path}: run {name}: {command}: {e}") from None
        for flag, data in cfg.data_paths():  # a typo in --common stops it now, not each run in turn
            if not Path(data).expanduser().exists():
                raise ValueError(f"{path}: run {name}: {command}: {flag} {data} does not exist")


def _flags_before(log: Path) -> list[str] | None:
    """The flags a run of an earlier sweep ran with (its log's first line); None where the log does not say."""
    try:
        with log.open() as f:
            first = f.readline()
    except OSError:
        return None
    return shlex.split(first[len(FLAGS) :]) if first.startswith(FLAGS) else None


def _metric_keys(run: RunFolder) -> dict[str, str]:
    """val_<main metric> per variant, from the tasks the run recorded (config.json, else finished trials)."""
    tasks = read_record(run.config).get("tasks", {}) if run.config.exists() else {}
    for t in run.trial_records():  # a run folder from before config.json recorded its tasks
        tasks.setdefault(t["variant"], t["task"])
    return {variant: from_record(task).key("val") for variant, task in tasks.items()}


def summarize_run(folder: Path) -> list[dict[str, Any]]:
    """One row per variant and trial of a run folder, from its metrics.jsonl and trials/*.json."""
    run = RunFolder(folder)
    path = run.metrics
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["variant"], r["trial"]), []).append(r)
    keys, rows = _metric_keys(run), []
    for (variant, trial), history in groups.items():
        key = keys.get(variant)
        validated = {r["epoch"]: r[key] for r in history if key in r}  # none without a val split
        key = key if validated else None
        # None for an epoch that did not validate (--val-every)
        values = [validated.get(r["epoch"]) for r in history] if key else []
        row: dict[str, Any] = {"variant": variant, "trial": trial, "epochs": len(history), "metric": key}
        if validated:
            best_epoch = max(validated, key=lambda e: (validated[e], -e))  # the first of equal bests
            row.update(best=validated[best_epoch], best_epoch=best_epoch, last=validated[max(validated)])
            row.update({f"at_{e}": validated[e] for e in (10, 20, 30) if e in validated})
        done = run.trial_record(variant, trial)
        if done.exists():
            t = read_record(done)
            row.update(compile_seconds=t.get("compile_seconds"), train_seconds=t.get("train_seconds"))
        row["history"] = values
        rows.append(row)
    return rows


def readable_rows(folder: Path, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """summarize_run, or no rows (said in the log) where the run's records cannot be read (a line cut by a
    kill), so one damaged run leaves the others' table."""
    try:
        return summarize_run(folder)
    except (OSError, ValueError, KeyError, TypeError) as e:
        log(f"[sweep] {folder.name}: its records cannot be read ({type(e).__name__}: {e}); no rows for it")
        return []


def _pct(value: Any) -> str:
    """A metric value in % for the table, "-" where there is none."""
    return f"{100 * value:.2f}" if isinstance(value, float) else "-"


def table(results: list[dict[str, Any]]) -> str:
    """The sweep as a markdown table (metric values in %)."""
    head = "| run | status | variant | epochs | best | at epoch | @10 | @20 | @30 | compile s | train s | flags |"
    lines = [head, "|" + "---|" * 12]
    for res in results:
        rows = res["rows"] or [{}]
        for row in rows:
            secs = [row.get("compile_seconds"), row.get("train_seconds")]
            secs_text = [f"{s:.1f}" if isinstance(s, float) else "-" for s in secs]
            lines.append(
                f"| {res['name']} | {res['status']} | {row.get('variant', '-')} | {row.get('epochs', 0)} "
                f"| {_pct(row.get('best'))} | {row.get('best_epoch', '-')} | {_pct(row.get('at_10'))} "
                f"| {_pct(row.get('at_20'))} | {_pct(row.get('at_30'))} | {secs_text[0]} | {secs_text[1]} "
                f"| `{' '.join(res['flags'])}` |"
            )
    return "\n".join(lines)


def run_sweep(cfg: SweepConfig, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run every job of cfg.jobs, `parallel` at a time, within the time limit; write the table."""
    jobs = select_jobs(read_jobs(cfg.jobs), cfg.only, cfg.jobs)
    try:
        common = shlex.split(cfg.common)
    except ValueError as e:
        raise ValueError(f"--common={cfg.common}: {e}") from e
    check_jobs(cfg.experiment, common, jobs, cfg.jobs)
    out = Path(cfg.out or default_out("sweep"))
    taken = _check_out(out, jobs, common, cfg.resume)
    out.mkdir(parents=True, exist_ok=True)
    stop = out / "stop"
    if stop.exists():  # left by an earlier sweep in this folder
        stop.unlink()
    log(
        f"[sweep] {len(jobs)} runs into {out}; `touch {stop}` to start no more and let the running ones finish"
    )
    env = dict(os.environ)
    if cfg.parallel > 1:  # on a GPU each process would otherwise take 75 % of its memory
        env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 / cfg.parallel:.3f}")
    runner = _Runner(
        experiment=cfg.experiment,
        out=out,
        common=common,
        taken=frozenset(taken),
        env=env,
        deadline=time.monotonic() + cfg.time_limit if cfg.time_limit else None,
        pace=SweepPace(len(jobs), cfg.parallel),
        log=log,
    )
    with ThreadPoolExecutor(cfg.parallel) as pool:
        results = list(pool.map(runner.run, jobs))
    _write_table(cfg, out, results, log)
    return results


def _check_out(out: Path, jobs: list[tuple[str, list[str]]], common: list[str], resume: bool) -> list[str]:
    """The jobs whose folders an earlier sweep left in `out`; an error unless resuming with the same flags."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder; choose another --out")
    taken = [name for name, _ in jobs if (out / name).exists()]
    if taken and not resume:
        raise ValueError(
            f"{out} already holds runs named {', '.join(taken)}; choose another --out, or pass --resume to go "
            "on with that sweep"
        )
    for name, flags in jobs:
        before = _flags_before(out / f"{name}.log") if name in taken else None
        if before is not None and before != [*common, *flags]:
            raise ValueError(
                f"{out / name} ran with `{shlex.join(before)}`, not with `{shlex.join([*common, *flags])}` as "
                "the jobs and --common give now: --resume goes on only with the same flags; choose another --out"
            )
    return taken


@dataclasses.dataclass(frozen=True)
class _Runner:
    """Runs one job of a sweep as its own process (on a pool's thread) and returns its row of the table."""

    experiment: str
    out: Path
    common: list[str]
    taken: frozenset[str]  # with --resume: runs of an earlier sweep in this folder
    env: dict[str, str]
    deadline: float | None  # time.monotonic() at the time limit
    pace: SweepPace
    log: Callable[[str], None]

    def run(self, job: tuple[str, list[str]]) -> dict[str, Any]:
        name, flags = job
        again = name in self.taken
        result = {"name": name, "flags": flags}
        if again and RunFolder(self.out / name).results_json.exists():
            failed = any("failed" in r for r in RunFolder(self.out / name).trial_records())
            self.log(f"[sweep] {name}: {'failed' if failed else 'finished'} before, kept")
            self.pace.ended(None)
            status = "failed before (kept)" if failed else KEPT
            return {**result, "status": status, "rows": readable_rows(self.out / name, self.log)}
        left = None if self.deadline is None else self.deadline - time.monotonic()
        if left is not None and left < 1:
            self.log(f"[sweep] {name}: not started (time limit reached)")
            self.pace.not_started()
            return {**result, "status": "not started", "rows": []}
        stop = self.out / "stop"
        if stop.exists():
            self.log(f"[sweep] {name}: not started ({stop} exists)")
            self.pace.not_started()
            return {**result, "status": "not started (stop file)", "rows": []}
        self.log(f"[sweep] {'resume' if again else 'start'} {name}: {' '.join(flags)}")
        t0 = time.perf_counter()
        status = self._process(name, flags, again, left)
        rows = readable_rows(self.out / name, self.log)
        best = ", ".join(f"{_pct(r.get('best'))} @ {r.get('best_epoch', '-')}" for r in rows) or "-"
        seconds = time.perf_counter() - t0
        self.log(f"[sweep] {name}: {status} after {seconds:.0f}s; best {best}")
        self.log(f"[sweep] {self.pace.ended(seconds if status == 'done' and not again else None)}")
        return {**result, "status": status, "rows": rows}

    def _process(self, name: str, flags: list[str], again: bool, left: float | None) -> str:
        """Run the experiment into OUT/<name> (resuming it when `again`), its output in OUT/<name>.log."""
        command = [sys.executable, "-m", f"experiments.{self.experiment}", *self.common, *flags]
        command += [f"--out={self.out / name}", *(["--resume"] if again else [])]
        with (self.out / f"{name}.log").open("a" if again else "w") as f:
            if not again:
                f.write(FLAGS + shlex.join([*self.common, *flags]) + "\n")
                f.flush()
            try:
                rc = subprocess.run(
                    command, stdout=f, stderr=subprocess.STDOUT, env=self.env, timeout=left
                ).returncode
            except subprocess.TimeoutExpired:
                return "stopped at the time limit"
        return "done" if rc == 0 else f"failed (exit {rc})"


def _write_table(
    cfg: SweepConfig, out: Path, results: list[dict[str, Any]], log: Callable[[str], None]
) -> None:
    """OUT/sweep.md and sweep.json; each run that did not finish named on stderr with its log's last line."""
    text = table(results)
    (out / "sweep.md").write_text(f"# sweep of experiments.{cfg.experiment} ({cfg.jobs})\n\n{text}\n")
    (out / "sweep.json").write_text(
        json.dumps({"config": dataclasses.asdict(cfg), "runs": results}, indent=1)
    )
    log("\n" + text + f"\n\nwrote {out}/sweep.md, sweep.json and one folder and log per run")
    for r in results:  # on stderr, with the cause: the last line of the run's log (a usage or data error's)
        if r["status"] not in ("done", KEPT):
            path = out / f"{r['name']}.log"
            print(
                f"error: run {r['name']} {r['status']}; its log ends {last_line(path)!r} ({path})",
                file=sys.stderr,
            )


def last_line(path: Path) -> str:
    """The last non-blank line of a run's log, where a failed run says why."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "an empty log"


def say(line: str) -> None:
    """A line to stdout in one write, flushed: a log file sees it now, whole, whichever run's thread says it."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse(SweepConfig, argv, __doc__, prog="python -m experiments.sweep")

    def run() -> int:
        results = run_sweep(cfg, log=say)
        return 0 if all(r["status"] in ("done", KEPT) for r in results) else 1

    return main_guard(run)


if __name__ == "__main__":
    sys.exit(main())
