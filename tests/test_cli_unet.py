"""`python -m experiments.unet`: usage errors exit 2 before training, the recipes, a tiny grid run."""

import json

import numpy as np
import pytest

from experiments import unet

TINY = [
    "--dataset=synthetic",
    "--image-size=16",
    "--depth=1",
    "--width=4",
    "--epochs=1",
    "--synthetic-train=8",
    "--synthetic-val=2",
    "--synthetic-test=3",
]


def _run(argv, capsys):
    code = unet.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--upsample=bicubic"], "invalid choice: 'bicubic'"),
        (["--activation=gelu"], "invalid choice: 'gelu'"),
        (["--dataset=gtsrb"], "--dataset 'gtsrb' is not one of jsrt, synthetic, npz, folder:PATH"),
        (["--dataset=npz"], "--dataset=npz needs --data-dir=FILE.npz"),
        (["--keep=-1"], "--keep must be >= 0, got -1"),
        (["--dataset=folder:"], "--dataset=folder:PATH needs a path"),
        (
            ["--image-size=100"],
            "--image-size 100 is not divisible by 2**depth = 32 (--depth 5); try --image-size=96",
        ),
        (["--image-size=40", "--recipe=report"], "2**depth = 16 (--depth 4); try --image-size=32"),
        (["--image-size=36", "--depth=3"], "--image-size 36 is not divisible by 2**depth = 8"),
        (["--epochs=0"], "--epochs must be >= 1, got 0"),
        (["--batch-size=0"], "--batch-size must be >= 1"),
        (["--trials=0"], "--trials must be >= 1"),
        (["--test-fraction=1"], "--test-fraction must be in [0, 1)"),
        (["--synthetic-val=0", "--synthetic-test=0"], "nothing to evaluate on"),
        (["--lr=0"], "--lr must be > 0"),
        (["--ema=1"], "--ema must be in [0, 1), got 1.0"),
        (["--cv-folds=1"], "--cv-folds must be 0 (off) or >= 2, got 1"),
        (["--cv-fold=2"], "--cv-fold=2 needs --cv-folds=N"),
        (["--cv-folds=3", "--cv-fold=3"], "--cv-fold must be in 0..2 with --cv-folds=3, got 3"),
        (
            ["--dataset=synthetic", "--val-fraction=0"],
            "--val-fraction=0.0 is not used with --dataset=synthetic",
        ),
        (["--cv-folds=5", "--val-fraction=0.2"], "--val-fraction=0.2 is not used with --cv-folds"),
        (["--dataset=synthetic", "--val-fraction=0.1"], "--val-fraction=0.1 is not used"),  # given at default
        (["--test-fraction=0.3"], "--test-fraction=0.3 is not used with --dataset=jsrt"),
        (["--synthetic-train=8"], "--synthetic-train=8 is not used with --dataset=jsrt"),
    ],
)
def test_usage_errors_exit_2_before_training(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        unet.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_jsrt_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("JAXADL_JSRT_DIR", raising=False)
    code, _, err = _run([f"--cache-dir={tmp_path}/c", f"--out={tmp_path}/r"], capsys)
    assert code == 2
    assert "pass it with --data-dir or set $JAXADL_JSRT_DIR" in err and "--dataset=synthetic" in err
    assert "data_dir" not in err and not (tmp_path / "r").exists()
    code, _, err = _run([f"--data-dir={tmp_path}/typo", f"--out={tmp_path}/r"], capsys)
    assert code == 2 and f"error: --data-dir {tmp_path}/typo does not exist (the JSRT directory)" in err
    (tmp_path / "empty").mkdir()
    code, _, err = _run([f"--data-dir={tmp_path}/empty", f"--out={tmp_path}/r"], capsys)
    assert code == 2 and "no .IMG files found" in err


def test_batch_larger_than_training_set_exits_2(tmp_path, capsys):
    code, _, err = _run([*TINY, "--batch-size=9", f"--out={tmp_path}/r"], capsys)
    assert code == 2
    assert "--batch-size 9 is larger than the training set (8 examples)" in err
    assert not (tmp_path / "r" / "results.json").exists()


def test_help_lists_every_option_with_defaults(capsys):
    with pytest.raises(SystemExit) as info:
        unet.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--dataset",
        "--data-dir",
        "--cache-dir",
        "--image-size",
        "--upsample",
        "--activation",
        "--batch-norm",
        "--depth",
        "--width",
        "--grid",
        "--trials",
        "--epochs",
        "--batch-size",
        "--lr",
        "--dice-weight",
        "--augment",
        "--no-augment",
        "--seed",
        "--out",
        "--val-fraction",
        "--test-fraction",
        "--synthetic-train",
        "--recipe",
    ):
        assert flag in out
    assert "{bilinear,nearest,transpose}" in out and "{relu,elu}" in out
    assert "python -m experiments.unet --grid" in out and "folder:PATH" in out


def test_recipes_defaults_and_overrides():
    strong = unet.UNetConfig()
    r = strong.resolved()
    assert (r.batch_size, r.dice_weight, r.augment, r.select) == (4, 1.0, True, "best")
    assert (r.epochs, r.batch_norm, r.image_norm, r.lr) == (25, True, True, 1e-3)
    report = unet.UNetConfig(recipe="report", dice_weight=0.5)
    r = report.resolved()
    assert (r.epochs, r.lr, r.schedule, r.augment, r.normalize) == (
        25,
        1e-3,
        "constant",
        False,
        False,
    )
    assert r.dice_weight == 0.5
    assert unet.UNetConfig(dataset="folder:/x/y").dataset_kind() == ("folder", "/x/y")


def test_variants_grid_and_single():
    from jaxadl.data.lungs import synthetic_lungs

    data = synthetic_lungs(4, 1, 1, image_size=32)
    grid = unet.build_variants(unet.UNetConfig(grid=True, image_size=32), data)
    assert [v.name for v in grid] == ["baseline", "nearest", "ELU"]
    assert [(v.model.upsample, v.model.activation, v.trials) for v in grid] == [
        ("bilinear", "relu", 2),
        ("nearest", "relu", 2),
        ("bilinear", "elu", 2),
    ]
    assert grid[0].task.dice_weight == 1.0 and grid[0].task.image_norm
    assert all(v.model.batch_norm for v in grid)  # the strong recipe's batch norm is not a row label
    assert grid[0].train.epochs == 25 and grid[0].train.optim.schedule == "onecycle"
    assert grid[0].train.augment.translate_px == pytest.approx(0.03 * 32)
    (one,) = unet.build_variants(
        unet.UNetConfig(upsample="nearest", activation="elu", batch_norm=True, trials=3, recipe="report"),
        data,
    )
    assert one.name == "nearest + ELU + batch norm" and one.trials == 3 and one.model.batch_norm
    assert one.task.mean == (0.0,) and one.train.augment is None and one.train.optim.schedule == "constant"
    assert not one.task.image_norm
    (plain,) = unet.build_variants(unet.UNetConfig(batch_norm=False, image_size=32), data)
    assert plain.name == "no batch norm" and not plain.model.batch_norm
    no_bn = unet.build_variants(unet.UNetConfig(grid=True, batch_norm=False, image_size=32), data)
    assert [v.name for v in no_bn] == [
        "baseline + no batch norm",
        "nearest + no batch norm",
        "ELU + no batch norm",
    ]


@pytest.mark.slow
def test_tiny_grid_run_writes_the_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*TINY, "--grid", "--trials=1", "--batch-size=4", "--no-augment", f"--out={out}"]
    code, stdout, _ = _run(argv, capsys)
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["eval_split"] == "test" and results["dataset"] == "synthetic-lungs"
    assert [t["variant"] for t in results["trials"]] == ["baseline", "nearest", "ELU"]
    from experiments.cli import parse
    from jaxadl.predict import load

    test = unet.load_data(parse(unet.UNetConfig, argv, "")).test
    truth = test.labels[..., 0] > 0
    for t in results["trials"]:
        f1 = t["eval"]["f1"]
        # the reported F1 is that of the saved model's masks, scored again here per image: 2TP / (2TP + FP + FN)
        pred = load(out, variant=t["variant"]).segment(test.images) > 0
        tp, wrong = (pred & truth).sum((1, 2)), (pred ^ truth).sum((1, 2))
        per_image = np.where(2 * tp + wrong > 0, 2 * tp / np.maximum(2 * tp + wrong, 1), 1.0)  # both empty: 1
        assert f1["n"] == 3 == len(test)
        assert f1["mean"] == pytest.approx(per_image.mean(), abs=1e-6)
        assert f1["min"] == pytest.approx(per_image.min(), abs=1e-6)
    md = (out / "results.md").read_text()
    assert "| modification | trial | test cases | mean F1 | std F1 | min F1 | cleaned mean F1 |" in md
    assert "| baseline | 1 | 3 |" in md and "| ELU | 1 | 3 |" in md
    config = json.loads((out / "config.json").read_text())
    assert config["experiment"] == "unet" and config["cli"]["grid"] is True
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    for slug in ("baseline", "nearest", "elu"):
        for kind in ("loss", "history", "example"):
            assert (out / "plots" / f"{slug}_trial1_{kind}.png").stat().st_size > 1000
    assert "img/s" in stdout and "val_f1" in stdout


@pytest.mark.slow
def test_rerun_needs_resume_and_eval_only_reads_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*TINY, "--batch-size=4", "--no-augment", "--ema=0.5", "--tta", f"--out={out}"]
    assert _run(argv, capsys)[0] == 0
    code, _, err = _run(argv, capsys)
    assert code == 2 and "--resume" in err
    code, stdout, _ = _run([*argv, "--resume"], capsys)
    assert code == 0 and "finished before" in stdout
    with pytest.raises(SystemExit):
        unet.main(["--eval-only"])
    assert "--eval-only needs --from-run" in capsys.readouterr().err
    code, _, _ = _run(["--eval-only", f"--from-run={out}"], capsys)
    assert code == 0
    # the predictor evaluates what training evaluated: the weight average, with TTA
    again = json.loads((out / "eval.json").read_text())["trials"][0]
    trained = json.loads((out / "results.json").read_text())["trials"][0]
    for metric in ("f1", "f1_post"):  # the same task evaluation as the run's, clean-up included
        assert again["eval"][metric]["mean"] == pytest.approx(trained["eval"][metric]["mean"], abs=1e-5)
        assert again["eval"][metric]["min"] == pytest.approx(trained["eval"][metric]["min"], abs=1e-5)
    assert again["per_image"]["cases"] == trained["per_image"]["cases"]
    np.testing.assert_allclose(again["per_image"]["f1"], trained["per_image"]["f1"], atol=1e-5)


def test_seed_keeps_the_data_and_split_seed_draws_other_images():
    small = dict(dataset="synthetic", image_size=32, synthetic_train=4, synthetic_val=2, synthetic_test=2)
    a, b = unet.load_data(unet.UNetConfig(**small)), unet.load_data(unet.UNetConfig(**small, seed=1))
    np.testing.assert_array_equal(a.val.images, b.val.images)
    c = unet.load_data(unet.UNetConfig(**small, split_seed=1))
    assert (c.val.images != a.val.images).any()


def test_cv_folds_validate_each_case_once_and_keep_the_test_split():
    small = dict(dataset="synthetic", image_size=32, synthetic_train=7, synthetic_val=2, synthetic_test=3)
    plain = unet.load_data(unet.UNetConfig(**small))
    pool = {x.tobytes() for x in (*plain.train.images, *plain.val.images)}
    seen = []
    for fold in range(3):
        data = unet.load_data(unet.UNetConfig(**small, cv_folds=3, cv_fold=fold))
        assert (len(data.train), len(data.val)) == (6, 3)
        assert {x.tobytes() for x in (*data.train.images, *data.val.images)} == pool
        np.testing.assert_array_equal(data.test.images, plain.test.images)
        assert data.meta["cross_validation"] == {"folds": 3, "fold": fold, "seed": 0}
        seen += [x.tobytes() for x in data.val.images]
    assert len(seen) == 9 and set(seen) == pool


def test_a_cv_fold_run_says_and_records_its_fold(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*TINY, "--cv-folds=4", "--cv-fold=1", "--batch-size=4", "--keep=0", f"--out={out}"]
    code, stdout, _ = _run(argv, capsys)
    assert code == 0
    assert "validating on fold 1 of 4 (0..3, seed 0)" in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["dataset_meta"]["cross_validation"] == {"folds": 4, "fold": 1, "seed": 0}


@pytest.mark.slow
def test_npz_dataset_draws_validation_and_names_the_cases(tmp_path, capsys):
    from jaxadl.data.arrays import save_npz
    from jaxadl.data.lungs import synthetic_lungs

    data = synthetic_lungs(8, 0, 0, image_size=16, seed=4)
    path = save_npz(data, tmp_path / "lungs.npz")
    out = tmp_path / "run"
    argv = ["--dataset=npz", f"--data-dir={path}", "--image-size=16", "--depth=1", "--width=4"]
    argv += ["--epochs=1", "--batch-size=2", "--val-fraction=0.25", "--keep=0", f"--out={out}"]
    code, stdout, _ = _run(argv, capsys)
    assert code == 0, stdout
    results = json.loads((out / "results.json").read_text())
    assert results["eval_split"] == "val"  # no test split: validation is evaluated
    (trial,) = results["trials"]
    per_image = trial["per_image"]
    assert len(per_image["f1"]) == len(per_image["f1_post"]) == len(per_image["cases"]) == 2
    assert trial["eval"]["f1"]["mean"] == pytest.approx(np.mean(per_image["f1"]), abs=1e-6)
    assert trial["eval"]["f1_post"]["n"] == 2
    assert results["dataset_meta"]["val_from_train"] == {"fraction": 0.25, "seed": 0}
    assert not (out / "checkpoints").exists()  # --keep=0: no checkpoints
    assert "6 train / 2 val / 2 val" in stdout and "cleaned up:" in stdout


def test_two_trials_report_and_draw_the_mean_of_their_logits(tmp_path, capsys):
    from jaxadl.predict import load

    out = tmp_path / "run"
    argv = [*TINY, "--trials=2", "--batch-size=4", "--no-augment", "--keep=1", f"--out={out}"]
    code, stdout, _ = _run(argv, capsys)
    assert code == 0, stdout
    results = json.loads((out / "results.json").read_text())
    (row,) = results["ensembles"]
    assert row["variant"] == "baseline" and row["trials"] == [1, 2]
    # the row is the averaged predictor's per-image F1 on the same 3 test images
    from jaxadl import metrics
    from jaxadl.data.lungs import synthetic_lungs

    test = synthetic_lungs(8, 2, 3, image_size=16, seed=0).test
    logits = load(out, trial="all").batch_logits(test.images, 16)
    expected = np.asarray(metrics.f1_per_image(logits, test.labels))
    np.testing.assert_allclose(row["per_image"]["f1"], expected, atol=1e-5)
    assert row["eval"]["f1"]["min"] == pytest.approx(expected.min(), abs=1e-5)
    assert "| baseline | mean of trials 1, 2 | 3 |" in (out / "results.md").read_text()
    assert (out / "plots" / "baseline_mean_of_trials_example.png").stat().st_size > 1000
    assert "baseline, mean of 2 trials' logits: test f1" in stdout
    # --eval-only draws its own figures beside the run's, for each trial and the average
    code, stdout, _ = _run(["--eval-only", f"--from-run={out}"], capsys)
    assert code == 0 and "_eval_example.png" in stdout
    again = json.loads((out / "eval.json").read_text())
    np.testing.assert_allclose(again["ensembles"][0]["per_image"]["f1"], expected, atol=1e-5)
    for name in ("trial1", "trial2", "mean_of_trials"):
        assert (out / "plots" / f"baseline_{name}_eval_example.png").stat().st_size > 1000
