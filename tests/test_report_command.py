"""`python -m experiments.report`: both grids trained into one folder, the document written, and a second
invocation on the same --out reusing the finished trials instead of training them again."""

from __future__ import annotations

import json

import pytest

from experiments import cnn, report, unet

TINY = report.Profile(cnn_epochs=1, rprop_steps=2, unet_epochs=1)


@pytest.fixture
def tiny_grids(monkeypatch):
    """The report's grids on tiny synthetic data, one epoch (two Rprop steps) per trial."""
    monkeypatch.setitem(report.PROFILES, "quick", TINY)
    monkeypatch.setattr(
        report.ReportConfig,
        "cnn_config",
        lambda self: cnn.CNNConfig(
            dataset="synthetic", synthetic_train=256, grid=True, cache_dir=self.cache_dir
        ),
    )
    small = dict(synthetic_train=8, synthetic_val=4, synthetic_test=6, image_size=32, depth=2, width=4)
    monkeypatch.setattr(
        report.ReportConfig,
        "unet_config",
        lambda self: unet.UNetConfig(dataset="synthetic", grid=True, cache_dir=self.cache_dir, **small),
    )


def _trained_epochs(folder) -> int:
    return len((folder / "metrics.jsonl").read_text().splitlines())


@pytest.mark.slow  # fourteen tiny trials: about a minute on 2 idle cores
def test_the_report_trains_both_grids_then_reuses_them(tmp_path, tiny_grids, capsys):
    out = tmp_path / "report"
    assert report.main(["--synthetic", f"--out={out}"]) == 0
    results = {name: json.loads((out / name / "results.json").read_text()) for name in ("cnn", "unet")}
    trials = {name: [(t["variant"], t["trial"]) for t in r["trials"]] for name, r in results.items()}
    assert trials["cnn"] == [("baseline", 1), ("baseline", 2), ("baseline", 3)] + [
        ("batch norm", 1),
        ("batch norm", 2),
        ("batch norm", 3),
        ("SGD", 1),
        ("Rprop", 1),
    ]
    assert trials["unet"] == [(v, t) for v in ("baseline", "nearest", "ELU") for t in (1, 2)]
    epochs = {t["variant"]: t["epochs_run"] for t in results["cnn"]["trials"]}
    assert epochs == {"baseline": 1, "batch norm": 1, "SGD": 1, "Rprop": 2}  # the profile's epochs and steps
    assert (out / "report.md").exists() and (out / "report.html").exists()
    assert "quick profile: CNN 1 epochs" in (out / "report.md").read_text()
    trained = {name: _trained_epochs(out / name) for name in ("cnn", "unet")}
    assert trained == {"cnn": 3 + 3 + 1 + 2, "unet": 6}
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/trials/*.json")}

    (out / "report.md").unlink()
    assert report.main(["--synthetic", f"--out={out}"]) == 0  # again: every trial is taken as finished
    assert {name: _trained_epochs(out / name) for name in ("cnn", "unet")} == trained
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/trials/*.json")} == stamps
    assert "finished before; taken from" in capsys.readouterr().out
    assert (out / "report.md").exists()


def test_the_differences_come_from_the_recipes():
    rows = {aspect: (a, b) for aspect, a, b in report._differences()}
    strong = report.cnn_recipes.RECIPES["strong"]
    assert rows["CNN: epochs"] == ("10", str(strong["adam"].epochs))
    assert rows["CNN: augment"] == ("False", "True")
    assert rows["U-Net: batch norm"] == ("False", "True")
    assert "CNN, SGD: momentum" in rows and "CNN, SGD: epochs" not in rows  # shown once, for the baseline


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--synthetic", "--gtsrb=/nowhere"], "--synthetic trains on the bundled synthetic data"),
        (["--gtsrb=/nowhere/at/all"], "--gtsrb /nowhere/at/all is not a folder"),
        (["--profile=slow"], "invalid choice: 'slow'"),
    ],
)
def test_bad_options_exit_2_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        report.main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_an_out_that_is_a_file_exits_2_naming_it(tmp_path, capsys):
    taken = tmp_path / "report"
    taken.write_text("not a folder")
    assert report.main(["--synthetic", f"--out={taken}"]) == 2
    assert f"--out {taken} is a file, not a folder" in capsys.readouterr().err


def test_missing_lungs_stop_the_report_before_any_training(tmp_path, tiny_grids, monkeypatch, capsys):
    """Every dataset is read before the first grid trains: no JSRT folder is an error at once, not after the
    CNN grid's hour."""
    monkeypatch.delenv("JAXADL_JSRT_DIR", raising=False)
    monkeypatch.setattr(report.ReportConfig, "unet_config", lambda self: unet.UNetConfig(grid=True))
    out = tmp_path / "report"
    assert report.main(["--synthetic", f"--out={out}"]) == 2
    assert "JSRT" in capsys.readouterr().err
    assert not (out / "cnn").exists()


def test_a_diverged_trial_gives_exit_code_3_after_the_report_is_written(
    tmp_path, tiny_grids, monkeypatch, capsys
):
    diverging = cnn.CNNConfig(
        dataset="synthetic", synthetic_train=258, batch_size=43, recipe="report", optimizer="sgd", lr=1e6
    )
    monkeypatch.setattr(report.ReportConfig, "cnn_config", lambda self: diverging)
    out = tmp_path / "report"
    assert report.main(["--synthetic", "--only=cnn", f"--out={out}"]) == 3
    assert "1 trials diverged (non-finite loss): cnn: SGD trial 1" in capsys.readouterr().err
    assert (out / "report.md").exists()
    assert json.loads((out / "cnn" / "config.json").read_text())["resolved"]["sgd"]["lr"] == 1e6


def test_a_grid_made_by_another_command_is_refused_naming_out_and_profile(tmp_path, tiny_grids, capsys):
    out = tmp_path / "report"
    (out / "cnn").mkdir(parents=True)
    earlier = {"experiment": "cnn", "cli": {"dataset": "gtsrb", "data_dir": "/elsewhere"}}
    (out / "cnn" / "config.json").write_text(json.dumps(earlier))
    assert report.main(["--synthetic", "--only=cnn", f"--out={out}"]) == 2
    err = capsys.readouterr().err
    assert f"--out: {out / 'cnn'} holds this report's cnn grid made by another command" in err
    assert "the same --profile and data), or choose another --out" in err and "give the values" not in err


def test_a_gtsrb_folder_without_the_data_names_the_reports_flag(tmp_path, capsys):
    empty = tmp_path / "g"
    empty.mkdir()
    argv = [f"--gtsrb={empty}", "--only=cnn", f"--out={tmp_path / 'r'}", f"--cache-dir={tmp_path / 'c'}"]
    assert report.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --gtsrb {empty} holds no GTSRB archives")
    assert "pass it with --gtsrb or the environment variable" in err and "--data-dir" not in err
    assert not (tmp_path / "r").exists()


def test_a_gtsrb_folder_of_other_files_names_the_flag_and_path_once(tmp_path, capsys):
    """A folder with files but no GTSRB layout: the message names --gtsrb and the folder once, not twice."""
    other = tmp_path / "g"
    other.mkdir()
    (other / "notes.txt").write_text("hello")
    argv = [f"--gtsrb={other}", "--only=cnn", f"--out={tmp_path / 'r'}", f"--cache-dir={tmp_path / 'c'}"]
    assert report.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --gtsrb {other}: no GTSRB training data found among 1 file(s)")
    assert err.count(str(other)) == 1 and "--data-dir" not in err
