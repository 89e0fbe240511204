import dataclasses
import json

import numpy as np
import pytest

from experiments import cnn
from jaxadl.experiment import host_cpu
from tests.helpers import lines


def _run(argv, capsys):
    code = cnn.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--optimizer=lbfgs"], "invalid choice: 'lbfgs'"),
        (["--epochs=0"], "--epochs must be >= 1, got 0"),
        (["--batch-size=0"], "--batch-size must be >= 1"),
        (["--val-fraction=1.5"], "--val-fraction must be in [0, 1)"),
        (
            ["--dataset=synthetic", "--val-fraction=0.2"],
            "--val-fraction=0.2 is not used with --dataset=synthetic",
        ),
        (["--cv-folds=5", "--val-fraction=0"], "--val-fraction=0.0 is not used with --cv-folds"),
        (
            ["--cv-folds=5", "--val-fraction=0.1"],
            "--val-fraction=0.1 is not used with --cv-folds",
        ),  # at default
        (["--synthetic-train=100"], "--synthetic-train=100 is not used with --dataset=gtsrb"),
        (["--max-step=0.1"], "--max-step=0.1 is not used without Rprop (--optimizer=rprop)"),
        (["--optimizer=sgd", "--eta-minus=0.7"], "--eta-minus=0.7 is not used without Rprop"),
        (["--nesterov"], "--nesterov=True is not used without SGD (--optimizer=sgd)"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--ema=1.5"], "--ema must be in [0, 1), got 1.5"),
        (["--keep=-1"], "--keep must be >= 0, got -1"),
        (["--devices=0"], "--devices must be >= 1, got 0"),
        (["--eta-minus=1.5"], "--eta-minus must be in (0, 1), got 1.5"),
        (["--eta-plus=0.9"], "--eta-plus must be > 1, got 0.9"),
        (["--scale=1.5"], "--scale must be < 1, got 1.5"),
        (
            ["--recipe=report", "--rotate-deg=20"],
            "--rotate-deg=20.0 is not used without augmentation (add --augment)",
        ),
    ],
)
def test_usage_errors_exit_2_before_training(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        cnn.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_batch_larger_than_training_set_exits_2(tmp_path, capsys):
    code, _, err = _run(["--dataset=synthetic", "--synthetic-train=100", f"--out={tmp_path}/r"], capsys)
    assert code == 2
    assert "--batch-size 128 is larger than the training set (100 examples)" in err
    assert not (tmp_path / "r" / "results.json").exists()


def test_missing_gtsrb_without_download_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("JAXADL_GTSRB_DIR", raising=False)
    code, _, err = _run(["--no-download", f"--cache-dir={tmp_path}/c", f"--out={tmp_path}/r"], capsys)
    assert code == 2
    assert "GTSRB_Final_Training_Images.zip" in err and "--dataset=synthetic" in err


def test_mistyped_data_dir_is_an_error_naming_it(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("JAXADL_GTSRB_DIR", raising=False)
    code, _, err = _run(
        [f"--data-dir={tmp_path}/typo", f"--cache-dir={tmp_path}/c", f"--out={tmp_path}/r"], capsys
    )
    assert code == 2
    assert f"error: --data-dir {tmp_path}/typo does not exist. Put the official archives" in err
    assert "pass it with --data-dir or the environment variable" in err and "(data_dir" not in err
    assert not (tmp_path / "c").exists() and not (tmp_path / "r").exists()


def test_help_lists_every_option_with_defaults(capsys):
    with pytest.raises(SystemExit) as info:
        cnn.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--optimizer",
        "--batch-norm",
        "--trials",
        "--epochs",
        "--batch-size",
        "--lr",
        "--seed",
        "--dataset",
        "--out",
        "--full-batch",
        "--recipe",
        "--grid",
    ):
        assert flag in out
    assert "{adam,sgd,rprop}" in out


def test_recipe_defaults_and_overrides():
    cfg = cnn.CNNConfig(recipe="report", optimizer="sgd")
    assert cfg.resolved("sgd").lr == 1e-3 and cfg.resolved("sgd").augment is False
    strong = cnn.CNNConfig(lr=0.123)
    assert strong.resolved("adam").lr == 0.123
    assert strong.resolved("adam").augment is True
    assert strong.resolved("sgd").momentum == 0.9
    assert strong.resolved("adam").tta is True and strong.resolved("adam").epochs == 30
    rprop = strong.resolved("rprop")
    assert rprop.full_batch is True and rprop.image_norm is True
    assert (rprop.epochs, rprop.label_smoothing) == (150, 0.2)
    assert (cnn.CNNConfig().resolved("rprop").lr, rprop.eta_plus) == (3e-3, 1.5)
    assert cnn.CNNConfig(recipe="report").resolved("rprop").eta_plus == 1.2
    assert cnn.CNNConfig(eta_plus=1.3).resolved("rprop").eta_plus == 1.3
    assert cnn.CNNConfig(full_batch=False).resolved("rprop").full_batch is False
    assert cnn.CNNConfig(recipe="report").resolved("adam").tta is False


@pytest.mark.slow
def test_tiny_grid_run_writes_the_run_folder(tmp_path, capsys, figures):
    out = tmp_path / "run"
    code, stdout, _ = _run(
        [
            "--dataset=synthetic",
            "--synthetic-train=430",
            "--grid",
            "--trials=1",
            "--epochs=1",
            "--batch-size=43",
            "--recipe=report",
            f"--out={out}",
        ],
        capsys,
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert [t["variant"] for t in results["trials"]] == ["baseline", "batch norm", "SGD", "Rprop"]
    from jaxadl.predict import load

    test = cnn.load_data(cnn.CNNConfig(dataset="synthetic", synthetic_train=430)).test
    for t in results["trials"]:
        assert t["eval"]["accuracy"]["n"] == 215 == len(test)
        # the reported accuracy is that of the saved model, classified again outside the run
        ids = load(out, variant=t["variant"]).classify(test.images).ids
        assert t["eval"]["accuracy"]["mean"] == pytest.approx(np.mean(ids == test.labels), abs=1e-6)
    assert results["eval_split"] == "test"
    assert results["environment"]["cpu"] == host_cpu()  # which host's rounding the run's numbers carry
    md = (out / "results.md").read_text()
    assert "| baseline | 1 |" in md and "mean ± std" in md
    records = (out / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 4 and json.loads(records[0])["epoch"] == 1
    config = json.loads((out / "config.json").read_text())
    assert config["experiment"] == "cnn" and config["cli"]["lr"] is None  # raw flags, and the values used:
    assert config["resolved"]["sgd"]["lr"] == 1e-3 and config["resolved"]["rprop"]["eta_plus"] == 1.2
    assert "Recipe: report" in md and "| selected epoch |" in md and "| 1 | 1 |" in md
    for slug in ("baseline", "batch-norm", "sgd", "rprop"):
        assert (out / "plots" / f"{slug}_trial1_loss.png").stat().st_size > 1000
    # the figures show the run's own histories: train and val per epoch, every variant overlaid
    hist = results["trials"][0]["history"]
    loss_ax, acc_ax = figures["baseline_trial1_history.png"].axes
    loss, acc = lines(loss_ax), lines(acc_ax)
    np.testing.assert_allclose(loss["val: cross-entropy"], [r["val_loss"] for r in hist], rtol=1e-6)
    np.testing.assert_allclose(acc["val"], [r["val_accuracy"] for r in hist], rtol=1e-6)
    assert "train: cross-entropy (augmented batches, during the epoch)" in loss
    objective_ax, val_ax = figures["variants.png"].axes
    assert set(lines(val_ax)) == {f"{v} (1 trial)" for v in ("baseline", "batch norm", "SGD", "Rprop")}
    assert val_ax.get_ylabel() == "val accuracy"
    assert "img/s" in stdout and "compiled in" in stdout


def test_out_folder_of_another_experiment_is_refused(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"experiment": "unet"}))
    code, _, err = _run(
        [
            "--dataset=synthetic",
            "--synthetic-train=430",
            "--batch-size=43",
            "--epochs=1",
            f"--out={tmp_path}",
        ],
        capsys,
    )
    assert code == 2
    assert "holds a 'unet' run" in err


def test_each_run_gets_a_new_folder_by_default(tmp_path, monkeypatch):
    from experiments.cli import default_out

    monkeypatch.chdir(tmp_path)
    first = default_out("cnn")
    (tmp_path / first).mkdir(parents=True)
    second = default_out("cnn")
    assert first.startswith("runs/cnn-") and second != first


def test_resume_needs_an_out_folder(capsys):
    assert cnn.main(["--dataset=synthetic", "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err


def test_seed_keeps_the_validation_split_and_split_seed_moves_it(tmp_path):
    from tests import gtsrb_fixtures as fx

    src = fx.write_zips(tmp_path / "src")
    common = dict(data_dir=str(src), cache_dir=str(tmp_path / "cache"), download=False, image_size=16)
    common["val_fraction"] = 0.5
    base = cnn.load_data(cnn.CNNConfig(**common))
    same = cnn.load_data(cnn.CNNConfig(**common, seed=1))
    moved = [cnn.load_data(cnn.CNNConfig(**common, split_seed=s)).val.images for s in (1, 2, 3)]
    np.testing.assert_array_equal(same.val.images, base.val.images)
    assert any(m.shape != base.val.images.shape or (m != base.val.images).any() for m in moved)

    synth = dict(dataset="synthetic", synthetic_train=60, image_size=16)
    a, b = cnn.load_data(cnn.CNNConfig(**synth)), cnn.load_data(cnn.CNNConfig(**synth, seed=1))
    np.testing.assert_array_equal(a.train.images, b.train.images)
    c = cnn.load_data(cnn.CNNConfig(**synth, split_seed=1))
    assert (c.train.images != a.train.images).any()


def test_runs_saved_before_split_seed_keep_their_split_on_eval_only(tmp_path):
    from experiments.cli import saved_config

    cli = {k: v for k, v in dataclasses.asdict(cnn.CNNConfig(seed=3)).items() if k != "split_seed"}
    (tmp_path / "config.json").write_text(json.dumps({"experiment": "cnn", "cli": cli}))
    cfg = saved_config(cnn.CNNConfig, cnn.CNNConfig(from_run=str(tmp_path), eval_only=True), "cnn")
    assert (cfg.seed, cfg.split_seed, cfg.eval_only) == (3, 3, False)


def test_eval_only_takes_a_flag_given_at_its_default_value(tmp_path):
    from experiments.cli import parse, saved_config

    cli = dataclasses.asdict(cnn.CNNConfig(dataset="synthetic", seed=3))  # a run on the synthetic signs
    (tmp_path / "config.json").write_text(json.dumps({"experiment": "cnn", "cli": cli}))
    again = lambda *flags: saved_config(
        cnn.CNNConfig, parse(cnn.CNNConfig, ["--eval-only", f"--from-run={tmp_path}", *flags], ""), "cnn"
    )
    assert again().dataset == "synthetic"
    cfg = again("--dataset=gtsrb", "--data-dir=GTSRB_DIR")  # re-evaluated on GTSRB, the default dataset
    assert (cfg.dataset, cfg.data_dir, cfg.seed) == ("gtsrb", "GTSRB_DIR", 3)
    with pytest.raises(ValueError, match="so --seed would not be used"):  # given, though equal to the default
        again("--seed=0")
    # a GTSRB run with --val-fraction=0 re-evaluated on an npz: the saved flag was used then, not now
    cli = dataclasses.asdict(cnn.CNNConfig(val_fraction=0.0))
    (tmp_path / "config.json").write_text(json.dumps({"experiment": "cnn", "cli": cli}))
    assert again("--dataset=npz", "--data-dir=x.npz").dataset == "npz"


def test_a_diverging_trial_is_recorded_the_next_runs_and_the_exit_code_says_so(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["--dataset=synthetic", "--synthetic-train=258", "--batch-size=43", "--epochs=2", "--recipe=report",
            "--optimizer=sgd", "--lr=1e6", "--trials=2", f"--out={out}"]  # fmt: skip
    code, stdout, err = _run(argv, capsys)
    trials = json.loads((out / "results.json").read_text())["trials"]
    assert [t["trial"] for t in trials] == [1, 2]  # the second trial ran after the first diverged
    assert "non-finite" in trials[0]["failed"] and trials[0]["failed_step"] >= 1
    failed = sum(bool(t.get("failed")) for t in trials)
    assert code == 3 and f"{failed} of 2 trials diverged" in err and "results.md" in err
    md = (out / "results.md").read_text()
    assert md.count("| SGD | 1 | failed: training diverged: non-finite loss at step") == 1
    assert "going on with the next trial" in stdout


@pytest.mark.slow
def test_default_cli_learns_on_small_synthetic_signs(tmp_path, capsys):
    """The default (strong) recipe through the command line, 4 epochs: far above chance (1/43)."""
    out = tmp_path / "run"
    code, stdout, _ = _run(
        ["--dataset=synthetic", "--synthetic-train=1720", "--epochs=4", f"--out={out}"], capsys
    )
    assert code == 0
    acc = json.loads((out / "results.json").read_text())["trials"][0]["eval"]["accuracy"]
    assert acc["n"] == 860 and acc["mean"] > 0.15  # measured 0.33 (2026-11-27)
    assert "plan: 1 trial(s)" in stdout and "no better than chance" not in stdout


def test_keep_overwrite_and_devices_flags(tmp_path, capsys):
    out = tmp_path / "r"
    tiny = [
        "--dataset=synthetic",
        "--synthetic-train=258",
        "--batch-size=43",
        "--recipe=report",
        f"--out={out}",
    ]
    assert cnn.main([*tiny, "--epochs=2", "--keep=1", "--trials=2"]) == 0
    assert sorted(p.name for p in (out / "checkpoints" / "baseline_trial1" / "last").iterdir()) == ["2"]
    first = json.loads((out / "results.json").read_text())
    assert first["devices"] == 1 and [t["seed"] for t in first["trials"]] == [0, 1]
    assert cnn.main([*tiny, "--epochs=2", "--keep=2", "--seed=5"]) == 2  # a run is there: refused
    assert "--overwrite to replace it" in capsys.readouterr().err
    assert cnn.main([*tiny, "--epochs=2", "--keep=2", "--seed=5", "--overwrite"]) == 0
    again = json.loads((out / "results.json").read_text())["trials"]
    assert [(t["trial"], t["seed"]) for t in again] == [(1, 5)]  # replaced, not merged
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["baseline_trial1.json"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["baseline_trial1"]
    assert sorted(p.name for p in (out / "checkpoints" / "baseline_trial1" / "last").iterdir()) == ["1", "2"]
    capsys.readouterr()
    assert cnn.main([*tiny, "--epochs=1", "--devices=2", "--overwrite"]) == 2
    assert "--devices=2: between 1 and 1 devices are available" in capsys.readouterr().err


def test_equalize_reaches_the_task_on_by_default_for_adam_and_rprop():
    from experiments.cli import parse

    cfg = parse(cnn.CNNConfig, ["--equalize", "--optimizer=sgd"], "")
    assert cfg.resolved("sgd").task(43, (0.5,), (0.2,)).equalize is True
    assert (
        cnn.CNNConfig().resolved("adam").task(43, (0.5,), (0.2,)).equalize is True
    )  # the track folds' lever
    assert cnn.CNNConfig(optimizer="sgd").resolved("sgd").equalize is False  # not measured there yet
    assert cnn.CNNConfig().resolved("rprop").task(43, (0.5,), (0.2,)).equalize is True  # as on the folds
    assert (
        parse(cnn.CNNConfig, ["--optimizer=rprop", "--no-equalize"], "").resolved("rprop").equalize is False
    )
    assert cnn.CNNConfig(recipe="report").resolved("adam").equalize is False
    off = parse(cnn.CNNConfig, ["--no-equalize"], "")
    assert off.resolved("adam").task(43, (0.5,), (0.2,)).equalize is False


def test_host_cpu_reads_the_model_and_vector_extensions_of_the_first_core(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480C\nflags\t\t: fpu sse4_2 avx2 fma avx512f\n\n"
        "processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n"
    )
    cpu = host_cpu(cpuinfo)
    assert cpu["model"] == "Intel(R) Xeon(R) Platinum 8480C"
    assert cpu["simd"] == ["sse4_2", "avx2", "fma", "avx512f"]
    assert host_cpu(tmp_path / "missing")["simd"] == []
