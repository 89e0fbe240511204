"""experiments.sweep: a jobs file -> parallel runs -> one table."""

import json

import pytest

from experiments import sweep

TINY = "--dataset=synthetic --synthetic-train=430 --batch-size=43 --recipe=report"


@pytest.mark.slow
def test_two_runs_in_parallel_are_tabulated(tmp_path, capsys):
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("# two tiny runs\nadam: --epochs=2\nsgd: --epochs=1 --optimizer=sgd  # a comment\n")
    out = tmp_path / "sweep"
    code = sweep.main([f"--jobs={jobs}", "--parallel=2", f"--common={TINY}", f"--out={out}"])
    assert code == 0
    runs = {r["name"]: r for r in json.loads((out / "sweep.json").read_text())["runs"]}
    assert set(runs) == {"adam", "sgd"} and all(r["status"] == "done" for r in runs.values())
    (adam,) = runs["adam"]["rows"]
    assert adam["epochs"] == 2 and adam["metric"] == "val_accuracy" and len(adam["history"]) == 2
    assert adam["best"] == max(adam["history"]) and 0.0 <= adam["best"] <= 1.0
    assert adam["train_seconds"] > 0 and runs["sgd"]["rows"][0]["epochs"] == 1
    md = (out / "sweep.md").read_text()
    assert "| adam | done | baseline | 2 |" in md and "| sgd | done | SGD | 1 |" in md
    assert (out / "adam" / "results.json").exists() and (out / "sgd.log").exists()
    assert "[sweep] start adam" in capsys.readouterr().out


@pytest.mark.slow
def test_a_failing_run_is_reported_and_the_exit_code_says_so(tmp_path):
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("bad: --epochs=1 --optimizer=lbfgs\n")
    code = sweep.main([f"--jobs={jobs}", f"--common={TINY}", f"--out={tmp_path / 's'}"])
    assert code == 1
    (run,) = json.loads((tmp_path / "s" / "sweep.json").read_text())["runs"]
    assert run["status"] == "failed (exit 2)" and run["rows"] == []
    assert "invalid choice: 'lbfgs'" in (tmp_path / "s" / "bad.log").read_text()


@pytest.mark.parametrize(
    "text,message",
    [
        ("a --epochs=1\n", "jobs.txt:1: expected 'name: flags'"),
        ("a: --epochs=1\n\na: --epochs=2\n", "jobs.txt:3: run name 'a' is used twice"),
        ("# nothing\n", "jobs.txt: no runs in it"),
    ],
)
def test_malformed_jobs_files_exit_2_naming_the_line(tmp_path, capsys, text, message):
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(text)
    assert sweep.main([f"--jobs={jobs}", f"--out={tmp_path / 's'}"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_usage_errors(capsys):
    with pytest.raises(SystemExit) as info:
        sweep.main([])
    assert info.value.code == 2 and "--jobs=FILE is required" in capsys.readouterr().err


def test_the_metric_is_the_recorded_tasks_main_metric(tmp_path):
    """Not guessed from the keys: a history with other val_ keys still tabulates the task's main metric."""
    from jaxadl import Segmentation

    history = [
        {"variant": "a", "trial": 1, "epoch": e, "val_dice": 0.0, "val_f1": f}
        for e, f in ((1, 0.5), (2, 0.7))
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    (tmp_path / "config.json").write_text(json.dumps({"tasks": {"a": Segmentation().to_record()}}))
    (row,) = sweep.summarize_run(tmp_path)
    assert row["metric"] == "val_f1" and row["best"] == 0.7 and row["best_epoch"] == 2
