"""A run folder's saved trials evaluated again: `--eval-only` (evaluate_run) and the mean of a variant's
trials' logits (ensembles), which a run also adds to its own results."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxadl import report
from jaxadl.data.base import Dataset, Split
from jaxadl.evaluator import Evaluator, evaluate
from jaxadl.metrics import summarize
from jaxadl.predict import Predictor, load, restore_trial
from jaxadl.run_folder import RunFolder, RunFolderError, write_json
from jaxadl.step import StepSpec
from jaxadl.tasks import Evaluation, Task, from_record


def eval_split(data: Dataset) -> tuple[str, Split]:
    """The split a run is evaluated on: test, else val."""
    if data.test is not None:
        return "test", data.test
    if data.val is None:
        source = data.meta.get("source", data.name) if isinstance(data.meta, dict) else data.name
        raise ValueError(f"{source}: the dataset has neither a test nor a validation split to evaluate on")
    return "val", data.val


def case_names(data: Dataset, split: str, n: int) -> list[str]:
    """Names of the split's cases from the dataset's meta (file stems), else their indices."""
    names = (data.meta.get("cases") or {}).get(split) if isinstance(data.meta, dict) else None
    return [str(c) for c in names] if names is not None and len(names) == n else [str(i) for i in range(n)]


def summary(evaluation: Evaluation) -> dict[str, dict[str, float]]:
    """Mean, std, min, max and count of each per-example metric: a trial's `eval`, in a run and re-evaluated."""
    return {k: summarize(v) for k, v in evaluation.per_example.items()}


def with_options(record: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """A trial's record with evaluation options (tta, eval_batch_size) in place of those it was trained with."""
    return {**record, "train_config": {**record.get("train_config", {}), **options}} if options else record


def load_all(
    run_dir: str | Path, variant: str | None, options: dict[str, Any] | None = None, *, average: bool = True
) -> Predictor:
    """Every finished trial of a variant as one predictor (predict.load(trial="all")), evaluating with
    `options` (with_options) in place of the run's; `average=False`: the trained weights, not the average."""
    predictor = load(run_dir, variant, trial="all", average=average)
    return dataclasses.replace(predictor, record=with_options(predictor.record, options or {}))


def evaluate_run(
    run_dir: str | Path,
    data: Dataset,
    *,
    tta: bool | None = None,
    eval_batch_size: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Re-evaluate every finished trial of a run folder on `data`'s test split (else val), without training;
    `tta` and `eval_batch_size` replace the run's own where given (None: as the run evaluated).

    Writes eval.json, eval.md and, where the task draws one, each trial's and average's example figure
    (plots/*_eval_example.png, beside the training run's own) into the run folder; with `tta` given,
    eval_tta.* (eval_no_tta.*) instead, so both ways are kept. Returns the same dict.
    """
    folder = RunFolder(run_dir)
    run_dir = folder.root
    split, eval_data = eval_split(data)
    options = {k: v for k, v in (("tta", tta), ("eval_batch_size", eval_batch_size)) if v is not None}
    records = [with_options(rec, options) for rec in folder.trial_records()]
    stem = folder.eval_stem(tta)
    out_json, out_md = folder.root / f"{stem}.json", folder.root / f"{stem}.md"
    if not records:
        raise RunFolderError(f"{run_dir} holds no finished trials to evaluate (no trials/*.json)")
    cases = case_names(data, split, len(eval_data))
    trials, drawn = [], False
    for rec in records:
        if rec.get("failed"):
            trials.append(rec)
            continue
        record, task, evaluation = _evaluate_trial(run_dir, rec, eval_data, cases)
        trials.append(record)
        title = f"{rec['variant']}, trial {rec['trial']} (re-evaluated)"
        path = folder.plot(rec["variant"], rec["trial"], f"{stem}_example")
        drawn |= report.for_task(task).example_figure(eval_data, split, evaluation, title, path) is not None
        metric = task.main_metric
        log(
            f"{rec['variant']} trial {rec['trial']}: {split} {metric} {trials[-1]['eval'][metric]['mean']:.4f}"
        )
    together = ensembles(
        run_dir, trials, eval_data, cases, split, log=log, figure=f"{stem}_example", options=options
    )
    table = report.table(from_record(records[0]["task"]), trials, split, together)
    results = {
        "run": str(run_dir),
        "dataset": data.name,
        "eval_split": split,
        **({"eval_options": options} if options else {}),
        "trials": trials,
        "ensembles": together,
    }
    write_json(out_json, results)
    given = "".join(f", {k}={v}" for k, v in options.items())
    out_md.write_text(f"# re-evaluation of {run_dir} on {data.name} ({split}{given})\n\n{table}\n")
    log("\n" + table)
    figures = f", figures {folder.root / 'plots'}/*_{stem}_example.png" if drawn else ""
    log(f"\nwrote {out_json} and {out_md}{figures}")
    return results


def ensembles(
    run_dir: str | Path,
    trials: list[dict[str, Any]],
    split: Split,
    cases: list[str],
    split_name: str = "test",
    *,
    log: Callable[[str], None] = print,
    figure: str | None = None,
    options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """For each variant with two or more finished trials: the mean of their logits on `split`, evaluated
    like one trial (predict.load(run, variant, trial="all")). Averaging evens out seed-to-seed spread.
    `figure`: also draw the task's example figure of each average, plots/<variant>_mean_of_trials_<figure>.png;
    `options`: evaluation options in place of the run's (with_options)."""
    out = []
    for name, runs in report.by_variant(trials).items():
        done = [t for t in runs if not t.get("failed")]
        if len(done) < 2:
            continue
        predictor = load_all(run_dir, name, options)
        batch = int(done[0]["train_config"].get("eval_batch_size", 500))
        evaluation = predictor.task.evaluate_logits(predictor.batch_logits(split.images, batch), split, cases)
        summarized = summary(evaluation)
        out.append(
            {"variant": name, "trials": [t["trial"] for t in done], **evaluation.record, "eval": summarized}
        )
        reporter = report.for_task(predictor.task)
        if figure:
            title = f"{name}, {report.ensemble_label(out[-1])}"
            reporter.example_figure(
                split, split_name, evaluation, title, RunFolder(run_dir).ensemble_plot(name, figure)
            )
        metric, note = predictor.task.main_metric, reporter.note(summarized)
        log(
            f"{name}, mean of {len(done)} trials' logits: {split_name} {metric} {summarized[metric]['mean']:.4f}{note}"
        )
    return out


def _evaluate_trial(
    run_dir: Path, rec: dict[str, Any], eval_data: Split, cases: list[str]
) -> tuple[dict[str, Any], Task, Evaluation]:
    """A finished trial's record with its saved weights evaluated again, by its task as the run evaluated it;
    the task and the evaluation too, for its figure."""
    model, task, variables = restore_trial(run_dir, rec)
    cfg = rec["train_config"]
    evaluator = Evaluator(
        StepSpec(model, task, tta=bool(cfg.get("tta"))), int(cfg.get("eval_batch_size", 500))
    )
    evaluation = evaluate(
        evaluator, (variables["params"], variables.get("batch_stats", {})), eval_data, cases
    )
    return {**rec, **evaluation.record, "eval": summary(evaluation)}, task, evaluation
