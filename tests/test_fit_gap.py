"""tools/fit_gap: a fold's run scored on its training cases beside its validation cases."""

import json

import pytest

from experiments import cnn
from tools import fit_gap

# the strong recipe: scored with TTA, as the run scores (its accuracy differs without on these cases)
TINY = ["--dataset=synthetic", "--synthetic-train=430", "--epochs=4", "--batch-size=43", "--cv-folds=2"]
TINY += ["--keep=1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gap") / "r_f1"
    assert cnn.main([*TINY, "--cv-fold=1", f"--out={out}"]) == 0
    return out


def test_train_and_val_are_the_folds_cases_scored_as_the_run_scores(run, capsys):
    from jaxadl.predict import load

    assert fit_gap.main([str(run)]) == 0
    printed = capsys.readouterr().out
    data = cnn.load_data(cnn.CNNConfig(dataset="synthetic", synthetic_train=430, cv_folds=2, cv_fold=1))
    row = fit_gap.fit_gap(run)
    assert (row["train_cases"], row["val_cases"]) == (len(data.train), len(data.val))
    trained = (load(run).logits(data.train.images).argmax(-1) == data.train.labels).mean()
    assert row["train"] == pytest.approx(trained, abs=1e-6)
    (trial,) = (run / "trials").glob("*.json")
    last = json.loads(trial.read_text())["history"][-1]
    assert row["val"] == pytest.approx(last["val_accuracy"], abs=1e-6)  # the run's own last validation
    assert (
        f"| {100 * row['train']:.2f} % ({len(data.train)}) | {100 * row['val']:.2f} % ({len(data.val)}) |"
        in printed
    )
    assert f"| {100 * (row['train'] - row['val']):.2f} points |" in printed


@pytest.mark.parametrize(
    "argv,message",
    [
        (["{tmp}"], "is not a run folder (no config.json)"),
        (["{run}", "--raw"], "kept no weight average (trained without --ema), so --raw changes nothing"),
        (["{tmp}"], "{tmp}/config.json: holds a JSON list, not the object a run writes"),
    ],
)
def test_bad_runs_are_usage_errors(run, tmp_path, argv, message, capsys):
    if "JSON" in message:
        (tmp_path / "config.json").write_text("[]")
    with pytest.raises(SystemExit) as info:
        fit_gap.main([a.format(run=run, tmp=tmp_path) for a in argv])
    assert info.value.code == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err


def test_a_segmentation_fold_is_scored_by_mean_f1(tmp_path, capsys):
    from experiments import unet
    from tests.test_cli_unet import TINY as UNET_TINY

    out = tmp_path / "u_f0"
    assert unet.main([*UNET_TINY, "--cv-folds=2", "--cv-fold=0", "--keep=1", f"--out={out}"]) == 0
    row = fit_gap.fit_gap(out)
    (trial,) = (out / "trials").glob("*.json")
    assert row["metric"] == "f1" and row["train_cases"] == 5 and row["val_cases"] == 5
    assert row["val"] == pytest.approx(json.loads(trial.read_text())["history"][-1]["val_f1"], abs=1e-5)


def test_several_trials_are_scored_as_the_mean_of_their_logits_and_a_variant_is_named(tmp_path, capsys):
    from jaxadl.predict import load

    out = tmp_path / "two_f1"
    assert cnn.main([*TINY, "--cv-fold=1", "--trials=2", f"--out={out}"]) == 0
    data = cnn.load_data(cnn.CNNConfig(dataset="synthetic", synthetic_train=430, cv_folds=2, cv_fold=1))
    row = fit_gap.fit_gap(out, variant="baseline")
    mean = load(out, trial="all").logits(data.train.images)
    assert row["trials"] == 2 and row["train"] == pytest.approx((mean.argmax(-1) == data.train.labels).mean())
    capsys.readouterr()
    assert fit_gap.main([str(out), "--variant=baseline"]) == 0
    assert f"| {out} (2 trials: the mean of their logits) |" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        fit_gap.main([str(out), "--variant=nope"])
    assert info.value.code == 2 and "no finished trial of variant 'nope'" in capsys.readouterr().err
