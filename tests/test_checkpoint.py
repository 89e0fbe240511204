import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from experiments import cnn
from jaxadl import Classification, OptimConfig, Segmentation, SignCNN, TrainConfig, Trainer, fit
from jaxadl.checkpoint import Checkpointer, CheckpointError, restore_weights
from jaxadl.predict import load
from jaxadl.saved_runs import ensembles
from tests.helpers import colour_squares

TRAIN = colour_squares(160, seed=0)
VAL = colour_squares(50, seed=1)
TASK = Classification(num_classes=10)


class Crash(Exception):
    pass


@pytest.mark.parametrize("bn,select", [(False, "last"), pytest.param(True, "best", marks=pytest.mark.slow)])
def test_resume_after_a_crash_gives_the_same_numbers(tmp_path, bn, select):
    cfg = TrainConfig(
        epochs=3,
        batch_size=32,
        optim=OptimConfig("adam", 1e-3, schedule="onecycle"),
        eval_batch_size=50,
        select=select,
    )
    model = SignCNN(num_classes=10, batch_norm=bn)
    whole = fit(model, TASK, TRAIN, cfg, VAL, checkpoint_dir=tmp_path / "a")

    def crash_after_two(record):
        if record["epoch"] == 2:
            raise Crash

    with pytest.raises(Crash):
        fit(model, TASK, TRAIN, cfg, VAL, checkpoint_dir=tmp_path / "b", on_epoch=crash_after_two)
    # only the remaining epoch runs: one epoch record, one epoch of steps, the step counter carried on
    trainer, ran, steps = Trainer(model, TASK, cfg, len(TRAIN), scan=False), [], []
    trainer.on_step = lambda done, total, loss: steps.append(done)
    resumed = fit(
        model, TASK, TRAIN, cfg, VAL, checkpoint_dir=tmp_path / "b", resume=True, trainer=trainer,
        on_epoch=lambda r: ran.append(r["epoch"]),
    )  # fmt: skip
    assert ran == [3] and len(steps) == trainer.steps_per_epoch == len(TRAIN) // 32
    assert int(resumed.state.step) == 3 * trainer.steps_per_epoch
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    np.testing.assert_array_equal(whole.step_losses, resumed.step_losses)
    assert [r["val_loss"] for r in whole.history] == [r["val_loss"] for r in resumed.history]
    assert whole.best_epoch == resumed.best_epoch
    for a, b in zip(
        np.asarray(whole.state.params["fc"]["kernel"]),
        np.asarray(resumed.state.params["fc"]["kernel"]),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    # last N kept, plus the best
    assert sorted(os.listdir(tmp_path / "a" / "last")) == ["2", "3"]
    assert len(os.listdir(tmp_path / "a" / "best")) == 1


def test_checkpoint_of_another_model_is_a_clear_error(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=32, eval_batch_size=50)
    fit(SignCNN(num_classes=10), TASK, TRAIN, cfg, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="another model config"):
        fit(SignCNN(num_classes=10, batch_norm=True), TASK, TRAIN, cfg, checkpoint_dir=tmp_path, resume=True)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=32, eval_batch_size=50)
    fit(SignCNN(num_classes=10), TASK, TRAIN, cfg, checkpoint_dir=tmp_path)
    for f in (tmp_path / "last" / "1" / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 100:
            f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(CheckpointError, match=str(tmp_path / "last")):
        fit(SignCNN(num_classes=10), TASK, TRAIN, cfg, checkpoint_dir=tmp_path, resume=True)


ARGS = ["--dataset=synthetic", "--synthetic-train=258", "--batch-size=43", "--epochs=3", "--recipe=report"]


@pytest.mark.slow
def test_cli_sigkill_then_resume_matches_uninterrupted(tmp_path, capsys):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    whole = tmp_path / "whole"
    assert cnn.main([*ARGS, f"--out={whole}"]) == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.cnn", *ARGS, f"--out={killed}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # orbax writes this file last, when epoch 1's checkpoint is complete: kill only after it exists
    marker = killed / "checkpoints" / "baseline_trial1" / "last" / "1" / "_CHECKPOINT_METADATA"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None:
        assert time.time() < deadline, "no finished checkpoint of epoch 1 after 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert marker.exists(), f"the run ended (code {proc.returncode}) before its first checkpoint"
    assert not (killed / "results.json").exists()
    assert cnn.main([*ARGS, f"--out={killed}"]) == 2  # refuses to overwrite without --resume
    capsys.readouterr()
    assert cnn.main([*ARGS, f"--out={killed}", "--resume"]) == 0
    log = capsys.readouterr().out
    assert "epoch   1/3" not in log and "epoch   3/3" in log  # continued, not retrained from scratch
    a = json.loads((whole / "results.json").read_text())["trials"][0]
    b = json.loads((killed / "results.json").read_text())["trials"][0]
    assert a["eval"] == b["eval"]
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]


def test_resume_with_other_options_is_refused(tmp_path, capsys):
    out = tmp_path / "r"
    assert cnn.main([*ARGS[:-2], "--epochs=1", "--recipe=report", f"--out={out}"]) == 0
    assert cnn.main([*ARGS[:-2], "--epochs=1", "--recipe=strong", f"--out={out}", "--resume"]) == 2
    assert "other options (recipe)" in capsys.readouterr().err


def test_resume_with_more_epochs_at_a_constant_rate_continues_the_finished_run(tmp_path, capsys):
    """--resume --epochs=N on a finished run with a constant learning rate goes on from its last checkpoint
    and ends where a run asked for N epochs from the start ends; a schedule shaped by the length refuses."""
    whole, longer = tmp_path / "whole", tmp_path / "longer"
    assert cnn.main([*ARGS, f"--out={whole}"]) == 0  # 3 epochs
    two = [*ARGS[:-2], "--epochs=2", "--recipe=report"]
    assert cnn.main([*two, f"--out={longer}"]) == 0
    capsys.readouterr()
    assert cnn.main([*ARGS, f"--out={longer}", "--resume"]) == 0
    log = capsys.readouterr().out
    assert "baseline trial 1: finished 2 epochs before; goes on to 3 from its last checkpoint" in log
    assert "epoch   2/3" not in log and "epoch   3/3" in log
    a, b = (json.loads((d / "results.json").read_text())["trials"][0] for d in (whole, longer))
    assert b["epochs_run"] == 3 and a["eval"] == b["eval"]
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    assert json.loads((longer / "config.json").read_text())["cli"]["epochs"] == 3
    assert cnn.main([*two, f"--out={longer}", "--resume"]) == 2  # fewer epochs: another run
    assert "other options (epochs)" in capsys.readouterr().err
    cycle = tmp_path / "cycle"
    assert cnn.main([*two, "--schedule=onecycle", f"--out={cycle}"]) == 0
    capsys.readouterr()
    assert cnn.main([*ARGS, "--schedule=onecycle", f"--out={cycle}", "--resume"]) == 2
    assert "other options (epochs)" in capsys.readouterr().err


def test_a_longer_run_cut_short_leaves_no_results_of_the_shorter_one(tmp_path, monkeypatch):
    """While a finished run trains on to more epochs, its old results and trial records are gone (a sweep or
    tools.cv_summary would read them as the longer run's); its checkpoints stay to go on from."""
    import jaxadl.trials

    out = tmp_path / "r"
    assert cnn.main([*ARGS[:-2], "--epochs=2", "--recipe=report", f"--out={out}"]) == 0

    def killed(*args, **kwargs):  # the process dies as training starts
        raise Crash

    monkeypatch.setattr(jaxadl.trials, "fit", killed)
    with pytest.raises(Crash):
        cnn.main([*ARGS, f"--out={out}", "--resume"])
    left = {
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and "checkpoints" not in p.parts
    }
    assert not left & {"results.json", "results.md", "trials/baseline_trial1.json"}
    assert (out / "checkpoints" / "baseline_trial1" / "last" / "2").is_dir()
    monkeypatch.undo()
    assert cnn.main([*ARGS, f"--out={out}", "--resume"]) == 0
    assert json.loads((out / "results.json").read_text())["trials"][0]["epochs_run"] == 3


def test_resume_of_a_folder_without_a_run_says_it_starts_one(tmp_path, capsys):
    out = tmp_path / "r"
    assert cnn.main([*ARGS[:-2], "--epochs=1", "--recipe=report", f"--out={out}", "--resume"]) == 0
    assert f"--resume: {out} holds no run yet; starting one" in capsys.readouterr().out
    assert (out / "results.json").exists()


def _saved_run(tmp_path):
    """A one-epoch run's argv, its saved config.json as a dict, and a function that writes the dict back."""
    out = tmp_path / "r"
    argv = [*ARGS[:-2], "--epochs=1", "--recipe=report", f"--out={out}"]
    assert cnn.main(argv) == 0
    path = out / "config.json"
    return argv, json.loads(path.read_text()), lambda config: path.write_text(json.dumps(config))


def test_resume_of_a_run_saved_before_an_option_existed_continues(tmp_path, capsys):
    argv, config, save = _saved_run(tmp_path)
    del config["cli"]["max_step"]  # as if saved before --max-step was added
    save(config)
    assert cnn.main([*argv, "--resume"]) == 0


def test_resume_of_a_run_saved_when_a_flag_had_a_fixed_default_continues_when_the_recipe_gives_it(
    tmp_path, capsys
):
    argv, config, save = _saved_run(tmp_path)
    assert config["cli"]["eta_minus"] is None and config["resolved"]["adam"]["eta_minus"] == 0.5
    config["cli"]["eta_minus"] = 0.5  # as saved when --eta-minus defaulted to 0.5 outside the recipe
    save(config)
    assert cnn.main([*argv, "--resume"]) == 0  # the recipe gives 0.5 today: the same run
    config["cli"]["eta_minus"] = 0.7  # given then; left to the recipe (0.5) now: another run
    save(config)
    capsys.readouterr()
    assert cnn.main([*argv, "--resume"]) == 2
    assert "other options (eta_minus)" in capsys.readouterr().err


def test_resume_after_the_recipes_defaults_changed_is_refused_unless_the_flags_say_the_old_values(
    tmp_path, capsys
):
    argv, config, save = _saved_run(tmp_path)
    assert config["cli"]["select"] is None and config["resolved"]["adam"]["select"] == "last"
    config["resolved"]["adam"]["select"] = "best"  # as if run when the recipe kept the best epoch
    save(config)
    capsys.readouterr()
    assert cnn.main([*argv, "--resume"]) == 2
    assert "recipe's defaults were other (adam.select: best -> last)" in capsys.readouterr().err
    assert cnn.main([*argv, "--resume", "--select=last"]) == 2  # another value than it ran with
    assert cnn.main([*argv, "--resume", "--select=best"]) == 0  # the value it ran with: the same run


def test_eval_only_and_predict_from_a_run_folder(tmp_path, capsys):
    out = tmp_path / "r"
    assert cnn.main([*ARGS[:-2], "--epochs=1", "--recipe=report", f"--out={out}"]) == 0
    trained = json.loads((out / "results.json").read_text())["trials"][0]["eval"]["accuracy"]["mean"]
    capsys.readouterr()
    assert cnn.main(["--eval-only", f"--from-run={out}"]) == 0
    assert f"wrote {out / 'eval.json'} and {out / 'eval.md'}" in capsys.readouterr().out
    again = json.loads((out / "eval.json").read_text())["trials"][0]["eval"]["accuracy"]["mean"]
    assert again == pytest.approx(trained, abs=1e-6)
    predictor = load(out)
    from jaxadl.data.synthetic import CLASS_NAMES, synthetic_signs

    data = synthetic_signs(0, 0, 43, seed=0)
    ids, probs, names = predictor.classify(data.test.images)
    assert ids.shape == (43,) and probs.shape == (43, 43)
    assert names == [CLASS_NAMES[i] for i in ids] and predictor.class_names == list(CLASS_NAMES)
    shown = repr(predictor)
    assert len(shown) < 200 and "SignCNN" in shown and "variant='baseline'" in shown and "epoch=1" in shown
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    from PIL import Image

    Image.fromarray(data.test.images[0]).save(tmp_path / "sign.png")
    one = predictor.classify(str(tmp_path / "sign.png")).ids
    assert one.shape == (1,) and one[0] == ids[0]
    # float arrays are read as [0, 1]; any other range or type is refused, never guessed
    as_float = data.test.images[:4].astype(np.float32) / 255.0
    np.testing.assert_array_equal(predictor.classify(as_float).ids, ids[:4])
    with pytest.raises(ValueError, match="float image arrays must hold values in \\[0, 1\\], got 29 to 230"):
        predictor.classify(data.test.images[:1].astype(np.float32))
    with pytest.raises(ValueError, match="uint8 \\(0-255\\) or float in \\[0, 1\\], got int64"):
        predictor.classify(data.test.images[:1].astype(np.int64))
    with pytest.raises(ValueError, match="no finished trial 2"):
        load(out, trial=2)


def test_predictor_of_all_trials_averages_their_logits(tmp_path):
    out = tmp_path / "r"
    assert cnn.main([*ARGS[:-2], "--epochs=1", "--recipe=report", "--trials=2", f"--out={out}"]) == 0
    from jaxadl.data.synthetic import synthetic_signs

    images = synthetic_signs(0, 0, 43, seed=0).test.images
    first, second = load(out, trial=1).logits(images), load(out, trial=2).logits(images)
    assert not np.allclose(first, second, atol=1e-3)  # two seeds, two models
    both = load(out, trial="all")
    np.testing.assert_allclose(both.logits(images), (first + second) / 2, rtol=1e-5, atol=1e-5)
    assert repr(both) == "Predictor(SignCNN, variant='baseline', mean of 2 trials)"
    assert both.classify(images).ids.shape == (43,)
    with pytest.raises(ValueError, match="no finished trial of variant 'bn'"):
        load(out, variant="bn", trial="all")
    with pytest.raises(ValueError, match="a trial number or 'all', got 'both'"):
        load(out, trial="both")
    # the run reported the same average on its test split: a row of its own, beside the trials
    test = synthetic_signs(0, 0, 43, seed=0).test
    (row,) = ensembles(out, json.loads((out / "results.json").read_text())["trials"], test, [], log=print)
    expected = np.mean(both.logits(test.images).argmax(-1) == test.labels)
    assert row["variant"] == "baseline" and row["trials"] == [1, 2]
    assert row["eval"]["accuracy"]["mean"] == pytest.approx(expected) and row["eval"]["accuracy"]["n"] == 43
    (reported,) = json.loads((out / "results.json").read_text())["ensembles"]
    acc = reported["eval"]["accuracy"]["mean"] * 100
    assert (
        reported["trials"] == [1, 2]
        and f"| baseline | mean of trials 1, 2 | {acc:.2f} % |" in (out / "results.md").read_text()
    )
    assert cnn.main(["--eval-only", f"--from-run={out}"]) == 0  # re-evaluated: the same
    (again,) = json.loads((out / "eval.json").read_text())["ensembles"]
    assert again["eval"]["accuracy"]["mean"] == pytest.approx(reported["eval"]["accuracy"]["mean"])


@pytest.mark.slow
def test_eval_only_reproduces_a_run_with_weight_averaging_and_tta(tmp_path):
    out = tmp_path / "r"
    assert cnn.main([*ARGS[:-2], "--epochs=2", "--ema=0.9", "--tta", f"--out={out}"]) == 0
    trial = json.loads((out / "results.json").read_text())["trials"][0]
    assert trial["train_config"]["ema"] == 0.9 and trial["train_config"]["tta"] is True
    assert cnn.main(["--eval-only", f"--from-run={out}"]) == 0
    again = json.loads((out / "eval.json").read_text())["trials"][0]["eval"]
    assert again["accuracy"]["mean"] == pytest.approx(trial["eval"]["accuracy"]["mean"], abs=1e-6)
    assert again["loss"]["mean"] == pytest.approx(trial["eval"]["loss"]["mean"], rel=1e-5)


@pytest.mark.slow
def test_unet_resume_after_a_crash_gives_the_same_numbers(tmp_path):
    from jaxadl import UNet
    from jaxadl.data.lungs import synthetic_lungs

    lungs = synthetic_lungs(8, 4, 0, image_size=32, seed=0)
    task = Segmentation(dice_weight=1.0)
    cfg = TrainConfig(
        epochs=2, batch_size=4, eval_batch_size=4, optim=OptimConfig("adam", 1e-3), select="best"
    )
    model = UNet(depth=2, base_features=4)
    whole = fit(model, task, lungs.train, cfg, lungs.val, checkpoint_dir=tmp_path / "a")

    def crash_after_one(record):
        if record["epoch"] == 1:
            raise Crash

    with pytest.raises(Crash):
        fit(model, task, lungs.train, cfg, lungs.val, checkpoint_dir=tmp_path / "b", on_epoch=crash_after_one)
    resumed = fit(model, task, lungs.train, cfg, lungs.val, checkpoint_dir=tmp_path / "b", resume=True)
    np.testing.assert_array_equal(whole.step_losses, resumed.step_losses)
    assert [r["val_f1"] for r in whole.history] == [r["val_f1"] for r in resumed.history]


@pytest.mark.slow
def test_segment_from_a_unet_run_folder(tmp_path):
    from experiments import unet

    out = tmp_path / "u"
    argv = [
        "--dataset=synthetic",
        "--image-size=32",
        "--depth=2",
        "--width=4",
        "--epochs=1",
        "--batch-size=4",
        "--synthetic-train=8",
        "--synthetic-val=2",
        "--synthetic-test=3",
        f"--out={out}",
    ]
    assert unet.main(argv) == 0
    predictor = load(out)
    from jaxadl.data.lungs import synthetic_lungs

    images = synthetic_lungs(1, 0, 2, image_size=32, seed=5).test.images
    masks = predictor.segment(images, save=tmp_path / "mask.png")
    assert masks.shape == (2, 32, 32) and set(np.unique(masks)) <= {0, 1}
    from PIL import Image

    saved = np.asarray(Image.open(tmp_path / "mask.png"))
    np.testing.assert_array_equal(saved > 0, masks[0] > 0)
    from jaxadl.postprocess import clean_mask

    cleaned = predictor.segment(images, clean=True)
    for raw, tidy in zip(masks, cleaned, strict=True):
        np.testing.assert_array_equal(tidy, clean_mask(raw > 0).astype(np.uint8))


def test_restore_weights_names_the_folder_when_there_is_nothing_to_restore(tmp_path):

    with pytest.raises(CheckpointError, match=f"no checkpoint in {tmp_path / 'best'}"):
        restore_weights(tmp_path / "best")
    ckpt = Checkpointer(tmp_path / "t", keep=1)
    state = {"params": {"w": np.arange(3.0, dtype=np.float32)}}
    ckpt.save(1, state, {"history": []}, is_best=True)
    ckpt.close()
    np.testing.assert_array_equal(restore_weights(tmp_path / "t" / "best")["params"]["w"], [0.0, 1.0, 2.0])
    step = tmp_path / "t" / "best" / "1" / "state"
    for f in step.rglob("*"):  # a truncated checkpoint: its files emptied
        if f.is_file():
            f.write_bytes(b"")
    with pytest.raises(CheckpointError, match="cannot restore"):
        restore_weights(tmp_path / "t" / "best")
