"""tools/cv_ensemble: the mean of several levers' logits on each cross-validation fold, as a lever (#33)."""

import json
import shutil

import pytest

from experiments import unet
from tests.test_cli_unet import TINY as UNET_TINY
from tools import cv_ensemble, cv_summary, docs

# test_cli_unet's tiny synthetic run, with no test split (so each fold's validation cases are the ones
# scored), two folds, and the checkpoints kept for the ensemble to load
TINY = [
    *(a for a in UNET_TINY if not a.startswith("--synthetic-test=")),
    "--synthetic-test=0",
    "--batch-size=4",
    "--cv-folds=2",
    "--keep=1",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Lever a on fold 0 (and, copied, fold 1), lever b (another seed) on fold 0; c a copy of a's fold 0; e as a
    on fold 0 with a weight average kept beside the weights."""
    out = tmp_path_factory.mktemp("sweep")
    assert unet.main([*TINY, "--cv-fold=0", f"--out={out / 'a_f0'}"]) == 0
    assert unet.main([*TINY, "--cv-fold=0", "--seed=1", f"--out={out / 'b_f0'}"]) == 0
    assert unet.main([*TINY, "--cv-fold=0", "--ema=0.9", f"--out={out / 'e_f0'}"]) == 0
    shutil.copytree(out / "a_f0", out / "c_f0")
    shutil.copytree(out / "a_f0", out / "a_f1")  # a finished fold 1 that c lacks
    return out


def _trial(folder):
    (path,) = (folder / "trials").glob("*.json")
    return json.loads(path.read_text())


def _recorded_rows(sweep, tmp_path, monkeypatch):
    """The sweep recorded by cv_summary into a copy of docs/results.json: table unet_cv's rows by variant."""
    results = tmp_path / "results.json"
    results.write_text(docs.RESULTS.read_text())
    monkeypatch.setattr(docs, "RESULTS", results)
    assert cv_summary.main([str(sweep), "--reference=a", "--record=unet_cv", "--machine=cpu2"]) == 0
    return {r["variant"]: r for r in json.loads(results.read_text())["tables"]["unet_cv"]["rows"]}


def test_the_mean_of_identical_models_scores_each_case_as_the_run_did(sweep, capsys):
    assert cv_ensemble.main([str(sweep), "--levers=a,c", "--name=same"]) == 0
    assert "on folds 0 ->" in capsys.readouterr().out  # c has no fold 1
    assert not (sweep / "same_f1").exists()
    own, mean = _trial(sweep / "a_f0"), _trial(sweep / "same_f0")
    assert mean["per_image"]["cases"] == own["per_image"]["cases"]
    assert mean["per_image"]["f1"] == pytest.approx(own["per_image"]["f1"], abs=1e-5)
    assert mean["ensemble_of"] == ["a_f0", "c_f0"]
    assert mean["eval_split"] == "val" and len(mean["per_image"]["cases"]) == 5  # fold 0 of the 10
    written = (sweep / "same_f0" / "config.json").stat().st_mtime_ns
    assert cv_ensemble.main([str(sweep), "--levers=a,c", "--name=same"]) == 0  # again, as a sweep goes on
    assert "folds 0: same_f<K> already written (kept)" in capsys.readouterr().out
    assert (sweep / "same_f0" / "config.json").stat().st_mtime_ns == written


def test_two_seeds_averaged_become_a_lever_cv_summary_pools_and_records(sweep, tmp_path, monkeypatch, capsys):
    assert cv_ensemble.main([str(sweep), "--levers=a,b"]) == 0
    a, b, mean = (_trial(sweep / f"{n}_f0")["per_image"]["f1"] for n in ("a", "b", "a+b"))
    assert len(mean) == len(a) and mean != a and mean != b
    assert all(0.0 <= v <= 1.0 for v in mean)
    capsys.readouterr()
    rows = _recorded_rows(sweep, tmp_path, monkeypatch)
    assert "| a+b | 0 | 5 |" in capsys.readouterr().out
    assert rows["a+b"]["original"] == "the mean of the logits of a and b"
    assert rows["a+b"]["command"] == f"python -m tools.cv_ensemble {sweep.name} --levers=a,b"
    assert rows["b"]["original"] == "`--seed=1`"


def test_one_lever_with_tta_is_a_lever_and_scores_as_eval_only_with_tta(sweep, tmp_path, monkeypatch, capsys):
    assert cv_ensemble.main([str(sweep), "--levers=a", "--tta"]) == 0
    said = capsys.readouterr()
    assert "mean of a with test-time augmentation on folds 0,1 -> a_tta_f<K>" in said.out
    assert "--tta changes nothing" not in said.err  # a was trained without it
    own, shifted = _trial(sweep / "a_f0")["per_image"], _trial(sweep / "a_tta_f0")["per_image"]
    assert shifted["cases"] == own["cases"] and shifted["f1"] != pytest.approx(own["f1"], abs=1e-5)
    # --eval-only --tta on a copy of the same run scores every case the same, beside (not over) the plain one
    assert unet.main(["--eval-only", f"--from-run={sweep / 'c_f0'}"]) == 0
    assert unet.main(["--eval-only", f"--from-run={sweep / 'c_f0'}", "--tta"]) == 0
    plain, again = (json.loads((sweep / "c_f0" / f).read_text()) for f in ("eval.json", "eval_tta.json"))
    assert again["eval_options"] == {"tta": True} and again["trials"][0]["train_config"]["tta"] is True
    assert again["trials"][0]["per_image"]["f1"] == pytest.approx(shifted["f1"], abs=1e-5)
    assert "eval_options" not in plain and plain["trials"][0]["per_image"]["f1"] == pytest.approx(
        own["f1"], abs=1e-5
    )
    assert "tta=True" in (sweep / "c_f0" / "eval_tta.md").read_text()
    rows = _recorded_rows(sweep, tmp_path, monkeypatch)
    assert rows["a_tta"]["original"] == "a evaluated with `--tta`"
    assert rows["a_tta"]["command"] == f"python -m tools.cv_ensemble {sweep.name} --levers=a --tta"


def test_tta_beside_runs_that_already_evaluate_with_it_says_it_changes_nothing(sweep, tmp_path, capsys):
    """The strong CNN recipe evaluates with TTA, so --tta names no new lever there: a note, not an error."""
    shutil.copytree(sweep / "a_f0", tmp_path / "t_f0")
    (path,) = (tmp_path / "t_f0" / "trials").glob("*.json")
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "train_config": {**record["train_config"], "tta": True}}))
    shutil.copytree(tmp_path / "t_f0", tmp_path / "t_f1")
    assert cv_ensemble.main([str(tmp_path), "--levers=t", "--tta"]) == 0
    said = capsys.readouterr().err
    assert said.count("note: --tta changes nothing here: t already evaluate(s)") == 1  # once, not per fold
    assert _trial(tmp_path / "t_tta_f0")["eval_options"] == {"tta": True}


def test_raw_scores_the_trained_weights_of_a_run_that_kept_a_weight_average(sweep, tmp_path, monkeypatch):
    assert cv_ensemble.main([str(sweep), "--levers=e", "--raw"]) == 0
    trained, average, plain = (_trial(sweep / f"{n}_f0") for n in ("e_raw", "e", "a"))
    assert (
        trained["eval_weights"] == "trained" and trained["per_image"]["cases"] == plain["per_image"]["cases"]
    )
    # the average changes nothing in training, so the trained weights score every case as the run without it
    assert trained["per_image"]["f1"] == pytest.approx(plain["per_image"]["f1"], abs=1e-5)
    assert average["per_image"]["f1"] != pytest.approx(plain["per_image"]["f1"], abs=1e-5)
    rows = _recorded_rows(sweep, tmp_path, monkeypatch)
    assert rows["e_raw"]["original"] == "e's trained weights, not a weight average"
    assert rows["e_raw"]["command"] == f"python -m tools.cv_ensemble {sweep.name} --levers=e --raw"


def test_raw_takes_a_run_without_a_weight_average_beside_one_with_it(sweep, capsys):
    assert cv_ensemble.main([str(sweep), "--levers=a,e", "--raw"]) == 0
    mean, plain = _trial(sweep / "a+e_raw_f0"), _trial(sweep / "a_f0")
    # e trained the same weights as a (the average changes nothing in training): the mean of the two is a
    assert mean["per_image"]["f1"] == pytest.approx(plain["per_image"]["f1"], abs=1e-5)
    assert mean["ensemble_of"] == ["a_f0", "e_f0"] and mean["eval_weights"] == "trained"


def test_folds_beside_a_test_split_are_scored_on_their_validation_cases(tmp_path, capsys):
    """A fold's run that also had a test split scored the test; the ensemble scores the fold's validation cases
    (5 of the 10 train + val, not the 3 test), which cv_summary pools, and refuses the run's own test figure
    even while the run has no results.json yet (its trial records say where they were evaluated)."""
    with_test = [a for a in TINY if not a.startswith("--synthetic-test=")] + ["--synthetic-test=3"]
    assert unet.main([*with_test, "--cv-fold=0", "--ema=0.9", f"--out={tmp_path / 't_f0'}"]) == 0
    own = _trial(tmp_path / "t_f0")
    assert own["eval_split"] == "test" and len(own["per_image"]["cases"]) == 3
    assert cv_ensemble.main([str(tmp_path), "--levers=t", "--raw"]) == 0
    mean = _trial(tmp_path / "t_raw_f0")
    assert mean["eval_split"] == "val" and len(mean["per_image"]["cases"]) == 5
    (tmp_path / "t_f0").rename(tmp_path / "t_f0.kept")  # pooled alone: the ensemble's validation cases
    capsys.readouterr()
    assert cv_summary.main([str(tmp_path)]) == 0
    assert "| t_raw | 0 | 5 |" in capsys.readouterr().out
    (tmp_path / "t_f0.kept").rename(tmp_path / "t_f0")
    (tmp_path / "t_f0" / "results.json").unlink()  # as if still running
    with pytest.raises(SystemExit) as e:
        cv_summary.main([str(tmp_path)])
    assert e.value.code == 2 and "t_f0 was evaluated on its test split" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--levers=a"], "name two or more different levers"),
        (["--levers=a,a", "--tta"], "name one or more different levers with --tta"),
        (["--levers=a", "--raw"], "kept no weight average (trained without --ema), so --raw changes nothing"),
        (
            ["--levers=a,b", "--raw"],
            "b_f0 kept a weight average (trained without --ema), so --raw changes nothing",
        ),
        (
            ["--levers=a,c", "--name=same", "--tta"],
            "already holds same_f0, not of these levers evaluated this way",
        ),
        (["--levers=a,a"], "name two or more different levers"),
        (["--levers=a,nothing"], "no finished run of nothing"),
        (["--levers=a,b", "--name=same"], "already holds same_f0, not of these levers"),
        (["--levers=a,c", "--name=no/slash"], "not usable as a run folder's name"),
        (["--levers=a,moved"], "was evaluated on other data"),
        (["--levers=a,bare"], "fold 0: no checkpoint in"),
    ],
)
def test_bad_levers_are_usage_errors(sweep, argv, message, capsys):
    if not (sweep / "bare_f0").exists():  # a run that kept no checkpoint (--keep=0)
        shutil.copytree(sweep / "a_f0", sweep / "bare_f0")
        shutil.rmtree(sweep / "bare_f0" / "checkpoints")
    if not (sweep / "moved_f0").exists():  # the same model, but its fold drawn with another split seed
        shutil.copytree(sweep / "a_f0", sweep / "moved_f0")
        config = json.loads((sweep / "moved_f0" / "config.json").read_text())
        config["cli"]["split_seed"] = 7
        (sweep / "moved_f0" / "config.json").write_text(json.dumps(config))
    if "--name=same" in argv and not (sweep / "same_f0").exists():
        cv_ensemble.main([str(sweep), "--levers=a,c", "--name=same"])
    with pytest.raises(SystemExit) as e:
        cv_ensemble.main([str(sweep), *argv])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "levers,tta,raw,text",
    [
        (["a"], True, False, "a evaluated with `--tta`"),
        (["e"], True, True, "e's trained weights, not a weight average, with `--tta`"),
        (
            ["e", "f"],
            True,
            True,
            "the mean of the logits of e and f, each with its trained weights, not a weight average,"
            " each with `--tta`",
        ),
    ],
)
def test_ensemble_text_says_how_each_lever_was_evaluated(levers, tta, raw, text):
    assert cv_summary.ensemble_text(levers, tta, raw) == text
