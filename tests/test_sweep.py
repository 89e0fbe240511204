"""experiments.sweep: a jobs file -> parallel runs -> one table."""

import ast
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

import pytest

from experiments import sweep

ROOT = Path(__file__).resolve().parents[1]
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
    # the table's numbers are the run's own: its per-epoch validation accuracies and their best
    (trial,) = json.loads((out / "adam" / "results.json").read_text())["trials"]
    assert adam["history"] == [r["val_accuracy"] for r in trial["history"]]
    assert adam["best"] == max(adam["history"]) == trial["best_val"]
    assert adam["best_epoch"] == adam["history"].index(adam["best"]) + 1
    assert adam["train_seconds"] > 0 and runs["sgd"]["rows"][0]["epochs"] == 1
    md = (out / "sweep.md").read_text()
    assert "| adam | done | baseline | 2 |" in md and "| sgd | done | SGD | 1 |" in md
    assert (out / "adam" / "results.json").exists() and (out / "sgd.log").exists()
    assert "[sweep] start adam" in capsys.readouterr().out


@pytest.mark.slow
def test_a_failing_run_is_reported_and_the_exit_code_says_so(tmp_path):
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("bad: --epochs=1 --devices=99\n")  # valid flags, refused once the run sees the machine
    code = sweep.main([f"--jobs={jobs}", f"--common={TINY}", f"--out={tmp_path / 's'}"])
    assert code == 1
    (run,) = json.loads((tmp_path / "s" / "sweep.json").read_text())["runs"]
    assert run["status"] == "failed (exit 2)" and run["rows"] == []
    assert "--devices=99: between 1 and" in (tmp_path / "s" / "bad.log").read_text()


@pytest.mark.parametrize(
    "line,message",
    [
        (
            "late: --optimizer=lbfgs",
            "jobs.txt: run late: python -m experiments.cnn --epochs=1 --optimizer=lbfgs: ",
        ),
        ("late: --optimiser=sgd", "unrecognized arguments: --optimiser=sgd"),
        ("late: --epochs=0", "--epochs must be >= 1"),
        (
            "late: --data-dir=/no/such/gtsrb",
            "run late: python -m experiments.cnn --epochs=1 --data-dir=/no/such/gtsrb: "
            "--data-dir /no/such/gtsrb does not exist",
        ),
    ],
)
def test_every_jobs_flags_are_checked_before_any_run_starts(tmp_path, capsys, line, message):
    """A mistake on the last line is an error at once (exit 2, naming the run and the flag), nothing started."""
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(f"first: --optimizer=sgd\n{line}\n")
    assert sweep.main([f"--jobs={jobs}", "--common=--epochs=1", f"--out={tmp_path / 's'}"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_a_missing_data_folder_in_common_stops_the_sweep_before_any_run(tmp_path, capsys):
    """A mistyped folder in --common (--data-dir, the U-Net's --dataset=folder:PATH) is exit 2 naming it,
    before any run starts or any folder is made; folders that exist pass."""
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("a: --epochs=1\nb: --epochs=2\n")
    real = tmp_path / "data"
    real.mkdir()
    for experiment, common, named in (
        ("cnn", f"--data-dir={tmp_path}/typo", f"--data-dir {tmp_path}/typo does not exist"),
        ("unet", f"--dataset=folder:{tmp_path}/lungs", f"--dataset=folder: {tmp_path}/lungs does not exist"),
    ):
        argv = [
            f"--jobs={jobs}",
            f"--experiment={experiment}",
            f"--common={common}",
            f"--out={tmp_path / 's'}",
        ]
        assert sweep.main(argv) == 2
        assert (
            f"run a: python -m experiments.{experiment} {common} --epochs=1: {named}"
            in capsys.readouterr().err
        )
        assert not (tmp_path / "s").exists()
    sweep.check_jobs("cnn", [f"--data-dir={real}"], sweep.read_jobs(jobs), str(jobs))
    sweep.check_jobs("unet", [f"--dataset=folder:{real}"], sweep.read_jobs(jobs), str(jobs))


@pytest.mark.parametrize(
    "text,message",
    [
        ("a --epochs=1\n", "jobs.txt:1: expected 'name: flags'"),
        ("a: --epochs=1\n\na: --epochs=2\n", "jobs.txt:3: run name 'a' is used twice"),
        ("# nothing\n", "jobs.txt: no runs in it"),
        ("stop: --epochs=1\n", "jobs.txt:1: run name 'stop' is the sweep's own file"),
        ("..: --epochs=1\n", "jobs.txt:1: expected 'name: flags'"),
        ("a: --data-dir='x\n", "jobs.txt:1: No closing quotation in the flags"),
        (b"a: --epochs=1 \xff\n", "jobs.txt: 'utf-8' codec can't decode byte 0xff"),
    ],
)
def test_malformed_jobs_files_exit_2_naming_the_line(tmp_path, capsys, text, message):
    jobs = tmp_path / "jobs.txt"
    jobs.write_bytes(text) if isinstance(text, bytes) else jobs.write_text(text)
    assert sweep.main([f"--jobs={jobs}", f"--out={tmp_path / 's'}"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_jobs_lines_lose_their_comments_but_not_a_hash_inside_quotes(tmp_path):
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("# runs\n  # indented comment\na: --data-dir='/d/#1' --epochs=2  # two epochs\n")
    assert sweep.read_jobs(jobs) == [("a", ["--data-dir=/d/#1", "--epochs=2"])]


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


# A stand-in for `python -m experiments.X` (the sweep runs sys.executable with the job's flags): it
# records its pid, argv and start and end times in --state; waits until --wait-for runs have started (exit 3
# if that does not happen within --hold seconds), then until --linger-for have (at most --linger seconds);
# then sleeps --sleep seconds; creates the file --touch, if given.
FAKE_EXPERIMENT = """\
import os, sys, time
from pathlib import Path

args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
state, name = Path(args["state"]), Path(args["out"]).name
(state / f"{name}.pid").write_text(str(os.getpid()))
start = time.time()
(state / f"{name}.started").write_text(repr(start))
(state / f"{name}.argv").write_text(repr(sys.argv[1:]))
code = 0
def wait(count, seconds):
    t0 = time.time()
    while len(list(state.glob("*.started"))) < count:
        if time.time() > t0 + seconds:
            return False
        time.sleep(0.02)
    return True
if "wait-for" in args and not wait(int(args["wait-for"]), float(args["hold"])):
    code = 3
if "linger-for" in args:
    wait(int(args["linger-for"]), float(args["linger"]))
time.sleep(float(args.get("sleep", 0)))
if "touch" in args:
    Path(args["touch"]).touch()
if "fail" in args:
    print("error: " + args["fail"], file=sys.stderr)
    code = 2
(state / f"{name}.ended").write_text(repr(time.time()))
sys.exit(code)
"""


@pytest.fixture
def fake_experiment(tmp_path, monkeypatch):
    """Every run of the sweep is FAKE_EXPERIMENT; returns its --state folder."""
    script = tmp_path / "fake_python"
    script.write_text(f"#!{sys.executable}\n{FAKE_EXPERIMENT}")
    script.chmod(0o755)
    monkeypatch.setattr(sweep.sys, "executable", str(script))
    monkeypatch.setattr(sweep, "check_jobs", lambda *args: None)  # its flags are not the experiment's
    state = tmp_path / "state"
    state.mkdir()
    return state


def test_parallel_runs_overlap_and_never_exceed_the_limit(tmp_path, fake_experiment):
    """--parallel=2: each run waits until two have started, so one at a time fails them (exit 3 after 30 s);
    then for up to 1 s until all three have, so three at a time would overlap; the third must start only once
    one of the first two has ended."""
    state = fake_experiment
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("a: --wait-for=2\nb: --wait-for=2\nc: --wait-for=2\n")
    common = f"--state={state} --hold=30 --linger-for=3 --linger=1"
    out = tmp_path / "s"
    argv = [f"--jobs={jobs}", "--experiment=unet", "--parallel=2", f"--common={common}", f"--out={out}"]
    code = sweep.main(argv)
    runs = json.loads((out / "sweep.json").read_text())["runs"]
    assert [(r["name"], r["status"]) for r in runs] == [("a", "done"), ("b", "done"), ("c", "done")]
    assert code == 0
    assert ast.literal_eval((state / "a.argv").read_text()) == [
        "-m", "experiments.unet", *common.split(), "--wait-for=2", f"--out={out / 'a'}"
    ]  # fmt: skip
    spans = [
        (float((state / f"{n}.started").read_text()), float((state / f"{n}.ended").read_text()))
        for n in "abc"
    ]
    at_once = max(sum(s <= t <= e for s, e in spans) for t, _ in spans)
    assert at_once == 2


def test_the_time_limit_kills_a_running_job_and_skips_the_rest(tmp_path, fake_experiment):
    """--time-limit=3: a run that would sleep 30 s is killed at the limit and recorded as stopped; the next
    run is not started; the exit code is 1."""
    state = fake_experiment
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("slow: --sleep=30\nlater: --sleep=0\n")
    out = tmp_path / "s"
    t0 = time.monotonic()
    code = sweep.main([f"--jobs={jobs}", "--time-limit=3", f"--common=--state={state}", f"--out={out}"])
    elapsed = time.monotonic() - t0
    runs = json.loads((out / "sweep.json").read_text())["runs"]
    assert [(r["name"], r["status"]) for r in runs] == [
        ("slow", "stopped at the time limit"),
        ("later", "not started"),
    ]
    assert code == 1 and elapsed < 25
    md = (out / "sweep.md").read_text()
    assert "| slow | stopped at the time limit |" in md and "| later | not started |" in md
    with pytest.raises(ProcessLookupError):  # killed (and reaped), not left running
        os.kill(int((state / "slow.pid").read_text()), 0)
    assert not (state / "slow.ended").exists() and not (state / "later.started").exists()


def test_a_stop_file_lets_the_running_job_finish_and_starts_no_more(tmp_path, fake_experiment, capsys):
    """OUT/stop, created while the first run goes (here by that run itself), lets it finish and starts
    no other; the table is still written and the exit code is 1. A stop file left in OUT before the sweep
    is removed."""
    state, out = fake_experiment, tmp_path / "s"
    out.mkdir()
    (out / "stop").touch()
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(f"first: --sleep=0.5 --touch={out / 'stop'}\nsecond: --sleep=0\nthird: --sleep=0\n")
    code = sweep.main([f"--jobs={jobs}", f"--common=--state={state}", f"--out={out}"])
    runs = json.loads((out / "sweep.json").read_text())["runs"]
    assert [(r["name"], r["status"]) for r in runs] == [
        ("first", "done"),
        ("second", "not started (stop file)"),
        ("third", "not started (stop file)"),
    ]
    assert code == 1
    assert (state / "first.ended").exists() and not (state / "second.started").exists()
    assert f"`touch {out / 'stop'}`" in capsys.readouterr().out


def test_the_pace_leaves_runs_not_started_out_of_those_to_go(tmp_path, fake_experiment, capsys):
    """--parallel=2 and a stop file made by the first run: the third is not started, so the line the second
    prints when it ends counts it as not started, not as a run to go."""
    state, out = fake_experiment, tmp_path / "s"
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(f"first: --sleep=0.5 --touch={out / 'stop'}\nsecond: --sleep=4\nthird: --sleep=0\n")
    code = sweep.main([f"--jobs={jobs}", "--parallel=2", f"--common=--state={state}", f"--out={out}"])
    assert code == 1
    said = capsys.readouterr().out
    assert "[sweep] 1 of 3 runs ended; 2 to go" in said
    assert "[sweep] 2 of 3 runs ended, 1 not started\n" in said


def test_only_runs_the_jobs_whose_names_it_finds_in_the_files_order(tmp_path, fake_experiment):
    """--only=REGEX: the runs it finds start, in the file's order; the others neither start nor appear."""
    state, out = fake_experiment, tmp_path / "s"
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("base_f0: --sleep=0\nbase_f1: --sleep=0\nbn_f1: --sleep=0\nbn_f10: --sleep=0\n")
    code = sweep.main([f"--jobs={jobs}", "--only=_f1$", f"--common=--state={state}", f"--out={out}"])
    runs = json.loads((out / "sweep.json").read_text())["runs"]
    assert [(r["name"], r["status"]) for r in runs] == [("base_f1", "done"), ("bn_f1", "done")]
    assert code == 0
    assert sorted(p.name for p in state.glob("*.started")) == ["base_f1.started", "bn_f1.started"]


@pytest.mark.parametrize(
    "only, message",
    [
        ("_f[", "--only=_f[: not a regular expression"),
        ("^bn", "--only=^bn: no run of JOBS has a name it finds (its runs: base_f0, base_f1)"),
    ],
)
def test_only_that_is_no_pattern_or_finds_no_run_exits_2(tmp_path, capsys, only, message):
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("base_f0: --epochs=1\nbase_f1: --epochs=1\n")
    try:  # a bad pattern is the flag parser's error (SystemExit), no run found the sweep's (returned)
        code = sweep.main([f"--jobs={jobs}", f"--only={only}", f"--out={tmp_path / 's'}"])
    except SystemExit as e:
        code = e.code
    assert code == 2
    assert message.replace("JOBS", str(jobs)) in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_resume_keeps_finished_runs_continues_cut_ones_and_starts_the_rest(tmp_path, fake_experiment, capsys):
    """A sweep cut short left run `done` finished (results.json) and run `cut` part-way (its folder and log):
    the same command refuses the folder (exit 2, naming the runs and --resume); with --resume, `done` is kept
    and not started, `cut` continues with its own --resume (its log appended), `new` starts afresh."""
    state, out = fake_experiment, tmp_path / "s"
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("done: --sleep=0\ncut: --sleep=0\nnew: --sleep=0\n")
    (out / "done").mkdir(parents=True)
    (out / "done" / "results.json").write_text("{}")
    (out / "cut").mkdir()
    (out / "cut.log").write_text("epoch 12 of 100\n")
    argv = [f"--jobs={jobs}", f"--common=--state={state}", f"--out={out}"]
    assert sweep.main(argv) == 2
    assert "holds runs named done, cut; choose another --out, or pass --resume" in capsys.readouterr().err
    assert not list(state.glob("*.started"))
    assert sweep.main([*argv, "--resume"]) == 0
    runs = json.loads((out / "sweep.json").read_text())["runs"]
    assert [(r["name"], r["status"]) for r in runs] == [
        ("done", "done before (kept)"),
        ("cut", "done"),
        ("new", "done"),
    ]
    assert not (state / "done.started").exists()
    assert ast.literal_eval((state / "cut.argv").read_text())[-2:] == [f"--out={out / 'cut'}", "--resume"]
    assert ast.literal_eval((state / "new.argv").read_text())[-1] == f"--out={out / 'new'}"
    assert (out / "cut.log").read_text().startswith("epoch 12 of 100\n")
    assert (out / "new.log").read_text().startswith(f"[sweep] flags: --state={state} --sleep=0\n")
    printed = capsys.readouterr().out
    assert "[sweep] resume cut" in printed
    # the kept run counts as ended; the resumed one too, but its time is no run's whole time
    assert "[sweep] 2 of 3 runs ended\n" in printed and "[sweep] 3 of 3 runs ended\n" in printed


def test_a_failed_run_says_why_on_stderr_and_the_sweep_exits_1(tmp_path, fake_experiment, capsys):
    jobs, out = tmp_path / "jobs.txt", tmp_path / "s"
    jobs.write_text("ok: --sleep=0\nbad: --fail=no-data-here\n")
    assert sweep.main([f"--jobs={jobs}", f"--common=--state={fake_experiment}", f"--out={out}"]) == 1
    assert capsys.readouterr().err == (
        f"error: run bad failed (exit 2); its log ends 'error: no-data-here' ({out / 'bad.log'})\n"
    )


def test_out_naming_a_file_is_a_usage_error(tmp_path, capsys):
    jobs, afile = tmp_path / "jobs.txt", tmp_path / "notes.txt"
    jobs.write_text("a: --epochs=1\n")
    afile.write_text("mine")
    assert sweep.main([f"--jobs={jobs}", f"--out={afile}"]) == 2
    assert capsys.readouterr().err == f"error: --out {afile} is a file, not a folder; choose another --out\n"
    assert afile.read_text() == "mine"


def test_resume_refuses_changed_flags_and_keeps_a_failed_run_as_failed(tmp_path, fake_experiment, capsys):
    """A run's log starts with the flags it ran with: --resume with other flags for it is refused (exit 2,
    naming the run and both) before anything starts; a finished run with a failed trial is kept as failed, so
    the sweep's exit code still says so; a run whose records cannot be read leaves the table to the others."""
    state, out = fake_experiment, tmp_path / "s"
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("a: --sleep=0\nb: --sleep=0\n")
    argv = [f"--jobs={jobs}", f"--common=--state={state}", f"--out={out}"]
    assert sweep.main(argv) == 0
    from jaxadl import Classification

    task = Classification(num_classes=2).to_record()
    for name, failed in (("a", {}), ("b", {"failed": "the loss became nan"})):
        trial = {"variant": "v", "trial": 1, "task": task, **failed}
        (out / name / "trials").mkdir(parents=True)
        (out / name / "trials" / "v_trial1.json").write_text(json.dumps(trial))
        (out / name / "results.json").write_text("{}")
    jobs.write_text("a: --sleep=0.5\nb: --sleep=0\n")
    capsys.readouterr()
    assert sweep.main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'a'} ran with `--state={state} --sleep=0`, not with `--state={state} --sleep=0.5`" in err
    jobs.write_text("a: --sleep=0\nb: --sleep=0\n")
    (out / "a" / "metrics.jsonl").write_text('{"variant": "v", "trial": 1, "epo')  # a line cut by a kill
    assert sweep.main([*argv, "--resume"]) == 1
    runs = json.loads((out / "sweep.json").read_text())["runs"]
    assert [(r["name"], r["status"]) for r in runs] == [
        ("a", "done before (kept)"),
        ("b", "failed before (kept)"),
    ]
    printed = capsys.readouterr().out
    assert runs[0]["rows"] == [] and "[sweep] a: its records cannot be read (JSONDecodeError" in printed


def test_the_pace_counts_the_runs_ended_and_estimates_from_whole_runs_only():
    """The time left is the mean of the runs that ran whole here, times the runs to go, over the runs at once."""
    pace = sweep.SweepPace(runs=5, parallel=2)
    assert pace.ended(None) == "1 of 5 runs ended"  # kept or resumed: no whole run's time yet
    assert pace.ended(600.0) == "2 of 5 runs ended; 3 to go, ~15.0 min left at 10.0 min a run, 2 at a time"
    assert pace.ended(1200.0) == "3 of 5 runs ended; 2 to go, ~15.0 min left at 15.0 min a run, 2 at a time"
    assert pace.ended(None) == "4 of 5 runs ended; 1 to go, ~15.0 min left at 15.0 min a run, 1 at a time"
    assert pace.ended(300.0) == "5 of 5 runs ended"
    cut = sweep.SweepPace(runs=3, parallel=1)
    assert cut.ended(60.0) == "1 of 3 runs ended; 2 to go, ~2.0 min left at 60 s a run, 1 at a time"
    cut.not_started()
    assert cut.ended(60.0) == "2 of 3 runs ended, 1 not started"


@pytest.mark.parametrize(
    "jobs", sorted((ROOT / "experiments" / "sweeps").glob("*.txt")), ids=lambda p: p.name
)
def test_every_bundled_jobs_file_parses_with_its_experiment(jobs):
    """Each line of experiments/sweeps/*.txt, with the --common flags its header gives, is a valid command
    (the configs check their recipes' values when built)."""
    from experiments import cnn, unet
    from experiments.cli import parse

    text = jobs.read_text()
    config = unet.UNetConfig if "--experiment=unet" in text else cnn.CNNConfig
    common = shlex.split(re.search(r"--common='([^']*)'", text)[1])
    names = [name for name, flags in sweep.read_jobs(jobs) if parse(config, [*common, *flags], "")]
    assert len(names) == len(set(names)) > 1
