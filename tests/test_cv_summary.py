"""tools/cv_summary pools a cross-validation sweep's run folders per lever (#33)."""

import json
import os

import pytest

from tools import cv_summary


@pytest.fixture
def results(tmp_path, monkeypatch):
    """A copy of docs/results.json that --record writes to in place of the real one."""
    from tools import docs

    path = tmp_path / "results.json"
    path.write_text(docs.RESULTS.read_text())
    monkeypatch.setattr(docs, "RESULTS", path)
    return path


def _run(sweep, name, trials):
    (sweep / name / "trials").mkdir(parents=True)
    for i, record in enumerate(trials, 1):
        (sweep / name / "trials" / f"baseline_trial{i}.json").write_text(json.dumps(record))


def _lungs(cases, f1):
    return {
        "per_image": {"cases": cases, "f1": f1, "f1_post": f1},
        "eval": {"f1": {"mean": sum(f1) / len(f1)}},
    }


def test_segmentation_folds_are_pooled_per_lever(tmp_path, capsys):
    _run(tmp_path, "default_f0", [_lungs(["A", "B"], [0.98, 0.90])])
    _run(tmp_path, "default_f1", [_lungs(["C", "D"], [0.97, 0.99])])
    _run(tmp_path, "aspect15_f0", [_lungs(["A", "B"], [0.97, 0.95]), {"failed": "diverged"}])
    (tmp_path / "notes").mkdir()  # not a fold's folder: ignored
    # nor a zero-padded fold (its folder would be rebuilt as padded_f1)
    _run(tmp_path, "padded_f01", [_lungs(["A"], [0.5])])
    assert cv_summary.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    default = next(line for line in out if line.startswith("| default |"))
    # 4 cases pooled: mean 0.96, 5th percentile (linear) 0.9105, min 0.90 on case B
    assert default == "| default | 0,1 | 4 | 0.9600 | 0.9105 | 0.9000 | B |"
    assert (
        next(line for line in out if line.startswith("| aspect15 |"))
        == "| aspect15 | 0 | 2 | 0.9600 | 0.9510 | 0.9500 | B |"
    )
    assert [line.split(" |")[0] for line in out if line.startswith("| ")][1:] == ["| aspect15", "| default"]


def test_classification_folds_give_the_mean_accuracy(tmp_path, capsys):
    for k, acc in enumerate([0.98, 0.99]):
        _run(tmp_path, f"baseline_f{k}", [{"eval": {"accuracy": {"mean": acc}}}])
    assert cv_summary.main([str(tmp_path)]) == 0
    assert "| baseline | 0,1 | 2 runs | 98.50 % | 98.00 % |" in capsys.readouterr().out


def test_folds_whose_runs_scored_the_test_split_pool_their_validation(tmp_path, capsys):
    # the official test split was there too: each run's eval is the test; the fold's figure is the val
    # accuracy of the epoch the run kept
    for k, (test, val) in enumerate([(0.97, 0.99), (0.96, 0.98)]):
        history = [{"val_accuracy": 0.5}, {"val_accuracy": val}]
        _run(
            tmp_path,
            f"baseline_f{k}",
            [{"eval": {"accuracy": {"mean": test}}, "history": history, "best_epoch": 2}],
        )
        (tmp_path / f"baseline_f{k}" / "results.json").write_text(json.dumps({"eval_split": "test"}))
    assert cv_summary.main([str(tmp_path)]) == 0
    assert "| baseline | 0,1 | 2 runs | 98.50 % | 98.00 % |" in capsys.readouterr().out
    _run(tmp_path, "lungs_f0", [_lungs(["A", "B"], [0.98, 0.90])])
    (tmp_path / "lungs_f0" / "results.json").write_text(json.dumps({"eval_split": "test"}))
    with pytest.raises(SystemExit) as e:
        cv_summary.main([str(tmp_path)])
    assert e.value.code == 2 and "lungs_f0 was evaluated on its test split" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--worst=-3"], "--worst=-3: the number of cases, 1 or more"),
        (["--recorded=unet_cv"], "--recorded=unet_cv: only with --worst"),
        (["--machine=cpu2"], "--machine=cpu2: only with --record"),
        (["--data-name=LUNGS_DIR"], "--data-name=LUNGS_DIR: only with --record"),
        (["--record=unet_cv"], "--record needs --machine=KEY"),
    ],
)
def test_flags_without_what_they_need_are_usage_errors(tmp_path, argv, message, capsys):
    """Before anything is read or written: a flag that would be ignored says so."""
    with pytest.raises(SystemExit) as e:
        cv_summary.main([str(tmp_path), *argv])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_a_folder_without_fold_runs_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cv_summary.main([str(tmp_path)])
    assert e.value.code == 2 and "no finished run folders" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cv_summary.main([str(tmp_path / "missing")])
    assert e.value.code == 2


def test_a_sweep_still_running_compares_levers_on_common_folds(tmp_path, capsys):
    _run(tmp_path, "default_f0", [_lungs(["A", "B"], [0.98, 0.90])])
    _run(tmp_path, "default_f1", [_lungs(["C", "D"], [0.97, 0.99])])
    _run(tmp_path, "focus1_f0", [_lungs(["A", "B"], [0.97, 0.95])])
    (tmp_path / "focus1_f1" / "trials").mkdir(parents=True)  # started, nothing finished
    assert cv_summary.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| default | 0,1 | 4 |" in out and "| focus1 | 0 | 2 |" in out
    assert cv_summary.main([str(tmp_path), "--common-folds"]) == 0
    out = capsys.readouterr().out
    assert "folds every lever with a finished run finished: 0" in out
    assert "| default | 0 | 2 | 0.9400 |" in out and "| focus1 | 0 | 2 | 0.9600 |" in out
    (tmp_path / "seed1_f0" / "trials").mkdir(parents=True)  # a lever just begun does not hold the others up
    assert cv_summary.main([str(tmp_path), "--common-folds"]) == 0
    out = capsys.readouterr().out
    assert "| seed1 | none finished |" in out and "| focus1 | 0 | 2 | 0.9600 |" in out
    _run(tmp_path, "seed1_f1", [_lungs(["C", "D"], [0.96, 0.99])])  # finished levers sharing no fold
    (tmp_path / "default_f0" / "trials" / "baseline_trial1.json").unlink()
    with pytest.raises(SystemExit) as e:
        cv_summary.main([str(tmp_path), "--common-folds"])
    assert e.value.code == 2 and "no fold is finished by every lever" in capsys.readouterr().err


def test_the_worst_cases_of_the_reference_lever_are_paired_across_levers(tmp_path, capsys):
    _run(tmp_path, "default_f0", [_lungs(["A", "B", "C"], [0.98, 0.90, 0.95])])
    two_seeds = [_lungs(["A", "B", "C"], [0.97, 0.93, 0.96]), _lungs(["A", "B", "C"], [0.97, 0.89, 0.96])]
    _run(tmp_path, "focus1_f0", two_seeds)  # a case scored by two trials: their mean
    assert cv_summary.main([str(tmp_path), "--worst=2"]) == 0
    out = capsys.readouterr().out
    assert (
        "| case | default | focus1 |\n|---|---|---|\n| B | 0.9000 | 0.9100 |\n| C | 0.9500 | 0.9600 |\n"
        in out
    )
    with pytest.raises(SystemExit) as e:
        cv_summary.main([str(tmp_path), "--worst=2", "--reference=seed1"])
    assert e.value.code == 2 and "seed1" in capsys.readouterr().err


def test_record_writes_each_lever_with_its_flags_and_command(tmp_path, results, capsys):
    sweep = tmp_path / "sweep"
    common = {"dataset": "folder:/data/lungs", "test_fraction": 0.0, "cv_folds": 5, "select": "last"}
    for name, extra, f1 in [
        ("default", {}, [0.98, 0.90]),
        ("aspect15", {"aspect": 0.15, "augment": False, "resume": True}, [0.97, 0.95]),  # resumed: same run
    ]:
        _run(sweep, f"{name}_f0", [_lungs(["A", "B"], f1)])
        cli = {**common, **extra, "cv_fold": 0, "out": str(sweep / f"{name}_f0")}
        (sweep / f"{name}_f0" / "config.json").write_text(json.dumps({"experiment": "unet", "cli": cli}))
    finished = 1_700_000_000  # 2023-11-14 22:13 UTC: each row is dated by its last finished fold
    os.utime(sweep / "default_f0" / "trials" / "baseline_trial1.json", (finished, finished))
    argv = [str(sweep), "--record=unet_cv", "--machine=cpu2", "--data-name=LUNGS_DIR"]
    assert cv_summary.main(argv) == 0
    assert "recorded 2 levers" in capsys.readouterr().out
    rows = {r["variant"]: r for r in json.loads(results.read_text())["tables"]["unet_cv"]["rows"]}
    assert rows["default"]["original"] == "none (the reference)"
    assert rows["aspect15"]["original"] == "`--no-augment` `--aspect=0.15`"
    assert "--resume" not in rows["aspect15"]["command"]
    assert rows["aspect15"]["value"] == "0.9600 / 0.9510 / 0.9500"
    assert rows["default"]["detail"] == "2 cases; lowest B; folds 0"
    assert rows["default"]["command"] == (
        "python -m experiments.unet --dataset=folder:LUNGS_DIR --test-fraction=0.0 --select=last "
        "--cv-folds=5 --cv-fold=K"
    )
    assert rows["aspect15"]["machine"] == "cpu2"
    assert rows["default"]["date"] == "2023-11-14"
    for bad in (["--machine=nowhere"], ["--record=no_table", "--machine=cpu2"]):
        with pytest.raises(SystemExit) as e:
            cv_summary.main([str(sweep), *(["--record=unet_cv"] if "--machine=nowhere" in bad else []), *bad])
        assert e.value.code == 2


def test_record_keeps_other_levers_and_reads_an_absent_reference_from_its_row(tmp_path, results, capsys):
    before = {r["variant"]: r for r in json.loads(results.read_text())["tables"]["unet_cv"]["rows"]}
    assert "depth5" in before and "--select=last" in before["depth5"]["command"]  # the default recipe's lever
    sweep = tmp_path / "later-sweep"  # a new folder: the reference's runs are not in it
    cli = {"dataset": "folder:/elsewhere/lungs", "test_fraction": 0.0, "cv_folds": 5, "cv_fold": 0}
    cli |= {"select": "last", "keep": 1, "upsample": "nearest", "depth": 5, "out": str(sweep / "probe_f0")}
    _run(sweep, "probe_f0", [_lungs(["A", "B"], [0.96, 0.94]), _lungs(["A", "B"], [0.96, 0.90])])  # 2 trials
    (sweep / "probe_f0" / "config.json").write_text(json.dumps({"experiment": "unet", "cli": cli}))
    argv = [str(sweep), "--record=unet_cv", "--machine=cpu2", "--data-name=LUNGS_DIR", "--reference=depth5"]
    assert cv_summary.main(argv) == 0
    assert f"recorded 1 levers in results.json's table unet_cv; kept {len(before)}" in capsys.readouterr().out
    rows = json.loads(results.read_text())["tables"]["unet_cv"]["rows"]
    assert [r["variant"] for r in rows] == sorted([*before, "probe"])
    after = {r["variant"]: r for r in rows}
    assert all(after[name] == row for name, row in before.items())
    assert after["probe"]["original"] == "`--upsample=nearest`"  # not the data path, not the common flags
    assert after["probe"]["source"] == "python -m tools.cv_summary later-sweep"
    assert after["probe"]["cases"] == {
        "A": 0.96,
        "B": 0.92,
    }  # kept for pairing (each case's mean over trials)
    table = json.loads(results.read_text())
    table["tables"]["unet_cv"]["rows"] = [r for r in rows if r["variant"] != "depth5"]
    results.write_text(json.dumps(table))
    with pytest.raises(SystemExit) as e:
        cv_summary.main(argv)
    assert e.value.code == 2
    assert "nor a recorded row" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command,message",
    [
        (
            "python -m tools.cv_ensemble cv --levers=a,b",
            "the reference ref's recorded command is not an experiment's",
        ),
        (
            "python -m experiments.unet --gone=1 --cv-folds=5 --cv-fold=K",
            "the reference ref's recorded command no longer parses (unrecognized arguments: --gone=1)",
        ),
    ],
)
def test_a_recorded_reference_that_cannot_be_read_back_is_a_usage_error(
    tmp_path, results, command, message, capsys
):
    table = json.loads(results.read_text())
    table["tables"]["unet_cv"]["rows"].append({"variant": "ref", "command": command})
    results.write_text(json.dumps(table))
    sweep = tmp_path / "sweep"
    _run(sweep, "probe_f0", [_lungs(["A", "B"], [0.96, 0.94])])
    cli = {"dataset": "folder:/lungs", "test_fraction": 0.0, "cv_folds": 5, "cv_fold": 0, "depth": 5}
    (sweep / "probe_f0" / "config.json").write_text(json.dumps({"experiment": "unet", "cli": cli}))
    with pytest.raises(SystemExit) as e:
        cv_summary.main([str(sweep), "--record=unet_cv", "--machine=cpu2", "--reference=ref"])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_worst_cases_pair_a_new_lever_with_the_recorded_references_cases(tmp_path, monkeypatch, capsys):
    from tools import docs

    results = tmp_path / "results.json"
    table = json.loads(docs.RESULTS.read_text())
    default = {"variant": "default", "cases": {"A": 0.90, "B": 0.95, "C": 0.97}}
    table["tables"]["unet_cv"]["rows"] = [default, {"variant": "old", "value": "no cases kept"}]
    results.write_text(json.dumps(table))
    monkeypatch.setattr(docs, "RESULTS", results)
    sweep = tmp_path / "sweep"
    _run(sweep, "probe_f0", [_lungs(["A", "B", "C"], [0.93, 0.94, 0.99])])
    assert cv_summary.main([str(sweep), "--worst=2", "--recorded=unet_cv"]) == 0
    out = capsys.readouterr().out
    assert (
        "| case | default | probe |\n|---|---|---|\n| A | 0.9000 | 0.9300 |\n| B | 0.9500 | 0.9400 |" in out
    )
    for argv in (["--worst=2"], ["--worst=2", "--recorded=no_table"]):
        with pytest.raises(SystemExit) as e:
            cv_summary.main([str(sweep), *argv])
        assert e.value.code == 2


def test_by_epoch_compares_the_epoch_selection_rules_over_folds(tmp_path, capsys):
    curves = [[0.90, 0.95, 0.94, 0.93], [0.91, 0.92, 0.955, 0.95], [0.92, 0.97, 0.93, 0.935]]
    sweep = tmp_path / "sweep"
    for fold, curve in enumerate(curves):
        record = {"eval": {"accuracy": {"mean": curve[-1]}}, "history": [{"val_accuracy": v} for v in curve]}
        _run(sweep, f"base_f{fold}", [record])
    assert cv_summary.main([str(sweep), "--by-epoch"]) == 0
    out = capsys.readouterr().out
    assert "| base | last epoch | 0.9383 | epoch 4 |" in out
    # fold K scored at the epoch that maximises the mean of the other folds: epochs 2, 2, 3
    assert "| base | epoch chosen on the other folds | 0.9333 | epochs 2,2,3 |" in out
    assert "| base | best fixed epoch (optimistic) | 0.9467 | epoch 2 |" in out
    assert "| base | each fold's best epoch (optimistic) | 0.9583 | epochs 2,3,2 |" in out


def test_by_epoch_averages_a_folds_trials_and_names_a_fold_without_history(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    two = [{"per_image": {"cases": ["A"], "f1": [v]}, "history": [{"val_f1": v}]} for v in (0.90, 0.96)]
    _run(sweep, "seeds_f0", two)
    _run(sweep, "bare_f0", [_lungs(["A"], [0.9])])
    no_val = {"per_image": {"cases": ["A"], "f1": [0.9]}, "history": [{"loss": 0.1}]}  # --val-fraction=0
    _run(sweep, "mixed_f0", [two[0], no_val])
    assert cv_summary.main([str(sweep), "--by-epoch"]) == 0
    out = capsys.readouterr().out
    assert "| seeds | last epoch | 0.9300 | epoch 1 |" in out
    assert "| bare | fold 0 has no validation history | | |" in out
    assert "| mixed | fold 0 has no validation history | | |" in out


def test_top_up_finishes_a_recorded_lever_from_a_new_folder(tmp_path, results, capsys):
    cli = {"dataset": "folder:/data/lungs", "test_fraction": 0.0, "cv_folds": 3, "select": "last"}

    def fold(sweep, name, k, cases, f1, **extra):
        _run(sweep, f"{name}_f{k}", [_lungs(cases, f1)])
        config = {"experiment": "unet", "cli": {**cli, **extra, "cv_fold": k}}
        (sweep / f"{name}_f{k}" / "config.json").write_text(json.dumps(config))

    first, later = tmp_path / "cut-short", tmp_path / "later"
    fold(first, "deep", 0, ["A", "B"], [0.98, 0.90], depth=5)
    fold(first, "deep", 1, ["C"], [0.97], depth=5)
    fold(first, "wide", 0, ["A", "B"], [0.95, 0.95], width=32)
    argv = ["--record=unet_cv", "--machine=cpu2", "--data-name=LUNGS_DIR", "--reference=depth5"]
    assert cv_summary.main([str(first), *argv]) == 0
    rows = {r["variant"]: r for r in json.loads(results.read_text())["tables"]["unet_cv"]["rows"]}
    assert rows["deep"]["case_folds"] == {"0": ["A", "B"], "1": ["C"]}
    fold(later, "deep", 1, ["C"], [0.99], depth=5)  # fold 1 again: the folder's run replaces the recorded one
    fold(later, "deep", 2, ["D"], [0.96], depth=5)
    fold(later, "wide", 1, ["C"], [0.95], width=64)  # not the recorded command: not topped up
    capsys.readouterr()
    assert cv_summary.main([str(later), *argv, "--top-up"]) == 0
    out = capsys.readouterr().out
    assert "top-up: deep: folds 0 added from its recorded row" in out
    assert "top-up: wide: recorded as" in out and "--width=64" in out and "not topped up" in out
    assert "| deep | 0,1,2 | 4 | 0.9575 |" in out  # the printed table pools the topped-up folds
    rows = {r["variant"]: r for r in json.loads(results.read_text())["tables"]["unet_cv"]["rows"]}
    assert rows["deep"]["cases"] == {"A": 0.98, "B": 0.90, "C": 0.99, "D": 0.96}
    assert rows["deep"]["case_folds"] == {"0": ["A", "B"], "1": ["C"], "2": ["D"]}
    assert rows["deep"]["detail"] == "4 cases; lowest B; folds 0,1,2"
    assert rows["wide"]["cases"] == {"C": 0.95}  # replaced by the folder's run, as without --top-up
    with pytest.raises(SystemExit) as e:
        cv_summary.main([str(later), "--top-up"])
    assert e.value.code == 2


def test_classification_levers_are_paired_with_the_reference_fold_by_fold(tmp_path, results, capsys):
    # folds differ more than levers do: the lever is judged by its difference on each fold the reference
    # finished too, printed and recorded (with each fold's accuracy, so a later folder pairs with it)
    sweep = tmp_path / "sweep"
    cli = {"data_dir": "/data/gtsrb", "cv_folds": 3, "select": "last"}
    for name, accs, extra in [("base", [0.99, 0.98, 0.97], {}), ("eq", [0.992, 0.975], {"equalize": True})]:
        for k, acc in enumerate(accs):
            _run(sweep, f"{name}_f{k}", [{"eval": {"accuracy": {"mean": acc}}}])
            config = {"experiment": "cnn", "cli": {**cli, **extra, "cv_fold": k}}
            (sweep / f"{name}_f{k}" / "config.json").write_text(json.dumps(config))
    argv = [str(sweep), "--reference=base"]
    assert cv_summary.main(argv) == 0
    out = capsys.readouterr().out
    assert (
        "| eq | 0,1 | 2 runs | 98.35 % | 97.50 % | against base on folds 0,1: -0.15 points (higher on 1 of 2) |"
        in out
    )
    assert "| base | 0,1,2 | 3 runs | 98.00 % | 97.00 % | — |" in out
    assert cv_summary.main([*argv, "--record=cnn_cv", "--machine=cpu2", "--data-name=GTSRB_DIR"]) == 0
    rows = {r["variant"]: r for r in json.loads(results.read_text())["tables"]["cnn_cv"]["rows"]}
    assert rows["eq"]["detail"] == (
        "2 folds; lowest fold 97.50 %; against base on folds 0,1: -0.15 points (higher on 1 of 2); folds 0,1"
    )
    assert rows["base"]["fold_accuracy"] == {"0": 0.99, "1": 0.98, "2": 0.97}
    later = tmp_path / "later"  # the reference's runs gone: paired with its recorded folds
    _run(later, "eq_f2", [{"eval": {"accuracy": {"mean": 0.975}}}])
    config = {"experiment": "cnn", "cli": {**cli, "equalize": True, "cv_fold": 2}}
    (later / "eq_f2" / "config.json").write_text(json.dumps(config))
    record = ["--reference=base", "--record=cnn_cv", "--machine=cpu2", "--data-name=GTSRB_DIR"]
    capsys.readouterr()
    assert cv_summary.main([str(later), *record, "--top-up"]) == 0  # eq's folds 0 and 1 from its row
    assert "eq: folds 0,1 added from its recorded row" in capsys.readouterr().out
    rows = {r["variant"]: r for r in json.loads(results.read_text())["tables"]["cnn_cv"]["rows"]}
    assert rows["eq"]["value"] == "98.07 %"
    assert rows["eq"]["fold_accuracy"] == {"0": 0.992, "1": 0.975, "2": 0.975}
    assert "against base on folds 0,1,2: +0.07 points (higher on 2 of 3)" in rows["eq"]["detail"]
    other = tmp_path / "other"  # folds dealt with another seed hold other tracks: not paired
    _run(other, "eq_f0", [{"eval": {"accuracy": {"mean": 0.99}}}])
    config = {"experiment": "cnn", "cli": {**cli, "equalize": True, "cv_fold": 0, "split_seed": 1}}
    (other / "eq_f0" / "config.json").write_text(json.dumps(config))
    assert cv_summary.main([str(other), *record]) == 0
    rows = {r["variant"]: r for r in json.loads(results.read_text())["tables"]["cnn_cv"]["rows"]}
    assert "not paired with base: other folds" in rows["eq"]["detail"]


def _cnn_fold0(sweep, name, cfg, then=None):
    """A finished fold-0 run of the CNN config `cfg` whose saved recipe is today's, changed by `then`."""
    import dataclasses

    resolved = {cfg.optimizer: {**dataclasses.asdict(cfg.resolved(cfg.optimizer)), **(then or {})}}
    _run(sweep, f"{name}_f0", [{"eval": {"accuracy": {"mean": 0.99}}}])
    config = {"experiment": "cnn", "cli": dataclasses.asdict(cfg), "resolved": resolved}
    (sweep / f"{name}_f0" / "config.json").write_text(json.dumps(config))


def test_a_run_from_before_a_recipe_default_changed_is_recorded_with_the_values_it_ran_with(
    tmp_path, results, capsys
):
    # its flags were left to the recipe (None); the recipe resolved them otherwise then than today
    from experiments.cnn import CNNConfig

    sweep = tmp_path / "sweep"
    _cnn_fold0(sweep, "today", CNNConfig(data_dir="/data/gtsrb", cv_folds=5))
    # --select=best given on the command line: kept as given, beside the recipe's "last"
    old = CNNConfig(data_dir="/data/gtsrb", cv_folds=5, select="best")
    _cnn_fold0(sweep, "old", old, {"tta": False, "lr": 0.001, "select": "last"})
    pinned = cv_summary.pinned(json.loads((sweep / "old_f0" / "config.json").read_text()))["cli"]
    assert (pinned["tta"], pinned["lr"], pinned["select"], pinned["epochs"]) == (
        False,
        0.001,
        "best",
        None,
    )
    argv = [str(sweep), "--reference=today", "--record=cnn_cv", "--machine=cpu2", "--data-name=GTSRB_DIR"]
    assert cv_summary.main(argv) == 0
    rows = {r["variant"]: r for r in json.loads(results.read_text())["tables"]["cnn_cv"]["rows"]}
    assert rows["old"]["original"] == "`--lr=0.001` `--select=best` `--no-tta`"
    assert "--lr=0.001" in rows["old"]["command"] and "--no-tta" in rows["old"]["command"]
    assert rows["today"]["original"] == "none (the reference)"


def test_a_flag_left_to_the_recipe_reads_as_the_value_it_resolved_against_the_references(
    tmp_path, results, capsys
):
    # sgd left --equalize to its recipe (off) while the reference gave --equalize: the two differ there
    from experiments.cnn import CNNConfig

    sweep = tmp_path / "sweep"
    for name, given in [
        ("ref", {"equalize": True}),
        ("sgd", {"optimizer": "sgd"}),
        ("sgd_eq", {"optimizer": "sgd", "equalize": True}),
        ("rprop", {"optimizer": "rprop", "equalize": True, "val_every": 10}),
        ("best", {"equalize": True, "val_every": 2, "select": "best"}),
    ]:
        _cnn_fold0(sweep, name, CNNConfig(data_dir="/data/gtsrb", cv_folds=5, **given))
    argv = [str(sweep), "--reference=ref", "--record=cnn_cv", "--machine=cpu2", "--data-name=GTSRB_DIR"]
    assert cv_summary.main(argv) == 0
    rows = {r["variant"]: r for r in json.loads(results.read_text())["tables"]["cnn_cv"]["rows"]}
    assert rows["sgd"]["original"] == "`--optimizer=sgd` `--no-equalize`"
    assert rows["sgd_eq"]["original"] == "`--optimizer=sgd`"
    assert "--equalize" not in rows["sgd"]["command"]  # the command stays as run: the recipe's own value
    # how often a run validated changes nothing it keeps at the last epoch: not a lever, but in the command
    assert rows["rprop"]["original"] == "`--optimizer=rprop`"
    assert "--val-every=10" in rows["rprop"]["command"]
    assert rows["best"]["original"] == "`--select=best` `--val-every=2`"  # it picks the epoch it keeps
