"""Bad input stops with one clear line that names the file, flag or value (exit code 2 at the CLI), no
traceback, and leaves nothing half-written (issue #32): --out naming a file, a fixed-split lung folder
without train/, a GTSRB class CSV without rows, a damaged checkpoint."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments import cnn, unet
from jaxadl.checkpoint import Checkpointer, CheckpointError
from jaxadl.data.base import DatasetError
from jaxadl.experiment import RunFolderError, prepare_folder
from tests import gtsrb_fixtures as fx


def _run(main, argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line(err: str) -> str:
    """The CLI's error line; fails unless stderr is that one line (no traceback, no dump)."""
    assert err.startswith("error: ") and err.endswith("\n"), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err[len("error: ") : -1]


# ---- --out names a file ----------------------------------------------------------------------------


@pytest.mark.parametrize("cli", [cnn, unet], ids=["cnn", "unet"])
def test_out_naming_a_file_exits_2_before_reading_data(cli, tmp_path, capsys, monkeypatch):
    def read_data(cfg):
        raise AssertionError("the data was read before --out was checked")

    monkeypatch.setattr(cli, "load_data", read_data)
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    for out, message in (
        (afile, f"--out {afile} is a file, not a folder; choose another --out"),
        (afile / "run", f"--out {afile}/run: {afile} is a file, not a folder; choose another --out"),
    ):
        code, _, err = _run(cli.main, ["--dataset=synthetic", f"--out={out}"], capsys)
        assert code == 2
        assert _one_line(err) == message
    assert afile.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_prepare_folder_refuses_a_file(tmp_path):
    afile = tmp_path / "run"
    afile.write_text("")
    with pytest.raises(
        RunFolderError, match=f"^--out {afile} is a file, not a folder; choose another --out$"
    ):
        prepare_folder(afile, "cnn", {"cli": {}})


def test_from_run_naming_a_file_exits_2(tmp_path, capsys):
    afile = tmp_path / "run.txt"
    afile.write_text("")
    code, _, err = _run(unet.main, ["--eval-only", f"--from-run={afile}"], capsys)
    assert code == 2
    assert _one_line(err) == f"--from-run {afile} is a file, not a run folder; pass the folder a run wrote"


@pytest.mark.parametrize(
    "text, cause",
    [
        ("{bad", "cannot be read as JSON (Expecting"),
        ("[1, 2]", "holds a JSON list, not the object a run writes"),
    ],
    ids=["cut", "list"],
)
def test_a_damaged_config_json_is_one_line_naming_it(tmp_path, capsys, text, cause):
    """A run folder whose config.json is cut or of another shape: --out (resuming or not) and --from-run say
    which file, in one line with exit 2, and leave the file as it was."""
    config = tmp_path / "config.json"
    config.write_text(text)
    for argv in (
        ["--dataset=synthetic", f"--out={tmp_path}"],
        ["--dataset=synthetic", f"--out={tmp_path}", "--resume"],
        ["--eval-only", f"--from-run={tmp_path}"],
    ):
        code, _, err = _run(cnn.main, argv, capsys)
        assert code == 2
        assert f"{config}: {cause}" in _one_line(err), argv
    assert config.read_text() == text and sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_eval_only_refuses_the_flags_it_would_not_use(tmp_path, capsys):
    argv = ["--eval-only", f"--from-run={tmp_path}", "--lr=0.1", f"--out={tmp_path / 'elsewhere'}", "--tta"]
    code, _, err = _run(unet.main, argv, capsys)
    assert code == 2
    assert _one_line(err) == (
        f"--eval-only re-evaluates {tmp_path} as it was trained and writes into it, so --lr, --out would not "
        "be used; drop them (it takes --tta, --eval-batch-size, --dataset, --data-dir, --cache-dir)"
    )
    assert not (tmp_path / "elsewhere").exists()


# ---- a fixed-split lung folder without train/ ------------------------------------------------------


def test_lung_folder_with_test_and_val_but_no_train_names_train(tmp_path, capsys):
    root = tmp_path / "lungs"
    for split in ("test", "val"):
        for kind in ("images", "masks"):
            (root / split / kind).mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / split / kind / "case01.png")
    argv = [f"--dataset=folder:{root}", f"--cache-dir={tmp_path}/cache", f"--out={tmp_path}/run"]
    code, _, err = _run(unet.main, argv, capsys)
    assert code == 2
    assert _one_line(err) == (
        f"missing folder {root}/train: {root} has test/ and val/, so it is read as the fixed-split layout, "
        f"which needs train/images and train/masks (or use the flat layout: {root}/images and {root}/masks)"
    )
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


# ---- a GTSRB class CSV with a header but no rows ---------------------------------------------------


def test_gtsrb_class_csv_without_rows_stops_preparation(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("JAXADL_GTSRB_DIR", raising=False)
    src = fx.write_tree(tmp_path / "src", fx.official_files())
    csv = src / "GTSRB/Final_Training/Images/00005/GT-00005.csv"
    csv.write_text(fx.HEADER + "\n")
    cache = tmp_path / "cache"
    argv = [f"--data-dir={src}", f"--cache-dir={cache}", "--no-download", f"--out={tmp_path}/run"]
    code, _, err = _run(cnn.main, argv, capsys)
    assert code == 2
    assert _one_line(err) == (
        f"{csv}: the CSV has a header but no rows (no images of class 5); "
        "replace it with the original from GTSRB_Final_Training_Images.zip"
    )
    # nothing that looks prepared: no TFDS info, no array copy, no half-written folder; no run folder
    assert not [p for p in cache.rglob("*") if p.is_file()]
    assert not [p for p in cache.rglob("*") if "incomplete" in p.name or p.name.startswith("tmp")]
    assert not (tmp_path / "run").exists()
    # a second attempt reads the source again (no cache to take) and stops the same way
    from jaxadl.data.gtsrb import load_gtsrb

    with pytest.raises(DatasetError, match="GT-00005.csv: the CSV has a header but no rows"):
        load_gtsrb(src, cache_dir=cache, download=False, progress=False)


# ---- a damaged checkpoint --------------------------------------------------------------------------


def _truncate_data_files(checkpoint: Path) -> None:
    """Cut every array data file of an orbax checkpoint to 50 bytes, as an interrupted copy would."""
    data = [f for f in checkpoint.rglob("*") if f.is_file() and "d" in f.relative_to(checkpoint).parts[:-1]]
    assert data, f"no data files under {checkpoint}"
    for f in data:
        f.write_bytes(f.read_bytes()[:50])


@pytest.fixture(scope="module")
def damaged_run(tmp_path_factory):
    """A finished one-trial CNN run whose evaluated checkpoint (last/1) is truncated."""
    out = tmp_path_factory.mktemp("damaged") / "run"
    argv = ["--dataset=synthetic", "--synthetic-train=86", "--batch-size=43", "--epochs=1", "--recipe=report"]
    assert cnn.main([*argv, f"--out={out}"]) == 0
    _truncate_data_files(out / "checkpoints/baseline_trial1/last/1")
    return out


def _damaged_message(run: Path) -> str:
    return (
        f"cannot restore the checkpoint {run}/checkpoints/baseline_trial1/last/1: it is damaged (truncated or "
        "partly written; orbax raised ValueError); to train baseline trial 1 again, delete "
        f"{run}/checkpoints/baseline_trial1 and {run}/trials/baseline_trial1.json, then re-run the run's "
        f"command with --out={run} --resume"
    )


def test_eval_only_on_a_damaged_checkpoint_is_one_line(damaged_run, capsys, monkeypatch):
    # unraisable reports (TensorStore reads finishing into orbax's closed event loop) print to stderr
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    code = cnn.main(["--eval-only", f"--from-run={damaged_run}"])
    time.sleep(0.3)  # reads still in flight report after the failure
    err = capsys.readouterr().err
    assert code == 2
    assert _one_line(err) == _damaged_message(damaged_run)
    assert not (damaged_run / "eval.json").exists()


def test_predict_load_on_a_damaged_checkpoint_keeps_the_cause(damaged_run):
    from jaxadl.predict import load

    with pytest.raises(CheckpointError) as info:
        load(damaged_run)
    assert str(info.value) == _damaged_message(damaged_run)
    causes, e = [], info.value.__cause__
    while e is not None:
        causes.append(e)
        e = e.__cause__
    assert any("tensorstore_spec" in str(c) for c in causes)  # orbax's own error, chained for debugging


def test_resuming_over_a_cut_trial_record_is_one_line_naming_it(damaged_run, tmp_path, capsys):
    """A finished trial's record cut short (a copy interrupted): --resume names the file, exit 2."""
    run = tmp_path / "run"
    shutil.copytree(damaged_run, run)
    record = run / "trials" / "baseline_trial1.json"
    record.write_text(record.read_text()[:40])
    argv = ["--dataset=synthetic", "--synthetic-train=86", "--batch-size=43", "--epochs=1", "--recipe=report"]
    code, _, err = _run(cnn.main, [*argv, f"--out={run}", "--resume"], capsys)
    assert code == 2
    assert _one_line(err).startswith(f"{record}: cannot be read as JSON (")


def test_resuming_from_a_damaged_checkpoint_is_one_short_line(tmp_path):
    state = {"params": {"w": np.arange(4096.0, dtype=np.float32)}}
    ckpt = Checkpointer(tmp_path / "t", keep=1)
    ckpt.save(1, state, {"history": []})
    ckpt.close()
    _truncate_data_files(tmp_path / "t" / "last" / "1")
    ckpt = Checkpointer(tmp_path / "t", keep=1)
    with pytest.raises(CheckpointError) as info:
        ckpt.restore_last(state)
    ckpt.close()
    message = str(info.value)
    assert message.startswith(f"cannot restore the checkpoint in {tmp_path}/t/last/1: ValueError: ")
    assert "\n" not in message and "tensorstore_spec" not in message and len(message) < 400


def test_closed_event_loop_reports_after_a_failed_restore_are_dropped(monkeypatch):
    """Deterministically what the end-to-end tests above see only when reads are still in flight."""
    from types import SimpleNamespace

    from jaxadl.checkpoint import _quiet_closed_loop

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda report: seen.append(str(report.exc_value)))
    with pytest.raises(ValueError), _quiet_closed_loop():
        raise ValueError("a damaged checkpoint")
    for e in (RuntimeError("Event loop is closed"), RuntimeError("something else")):
        sys.unraisablehook(SimpleNamespace(exc_value=e))
    assert seen == ["something else"]


# ---- flag values that would train on to nonsense -----------------------------------------------------


@pytest.mark.parametrize(
    "cli,flag,message",
    [
        (cnn, "--lr=inf", "argument --lr: 'inf' is not a finite number"),
        (cnn, "--weight-decay=nan", "argument --weight-decay: 'nan' is not a finite number"),
        (cnn, "--rotate-deg=two", "argument --rotate-deg: 'two' is not a number"),
        (unet, "--dice-weight=nan", "argument --dice-weight: 'nan' is not a finite number"),
        (cnn, "--split-seed=-1", "--split-seed must be >= 0, got -1"),
        (unet, "--seed=-1", "--seed must be >= 0, got -1"),
        (cnn, "--synthetic-train=0", "--synthetic-train must be >= 1, got 0"),
    ],
)
def test_non_finite_or_negative_values_exit_2_naming_the_flag(
    cli, flag, message, tmp_path, capsys, monkeypatch
):
    def read_data(cfg):
        raise AssertionError("the data was read before the flags were checked")

    monkeypatch.setattr(cli, "load_data", read_data)
    with pytest.raises(SystemExit) as info:
        cli.main(["--dataset=synthetic", f"--out={tmp_path / 'run'}", flag])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].split("error: ", 1)[1] == message
    assert not (tmp_path / "run").exists()


def test_library_range_checks_refuse_nan():
    from jaxadl.augment import AugmentConfig
    from jaxadl.optim import OptimConfig
    from jaxadl.tasks import Segmentation

    nan = float("nan")
    with pytest.raises(ValueError, match="^weight_decay must be >= 0, got nan$"):
        OptimConfig("adam", 1e-3, weight_decay=nan)
    with pytest.raises(ValueError, match="^momentum must be >= 0, got nan$"):
        OptimConfig("sgd", 1e-3, momentum=nan)
    with pytest.raises(ValueError, match="^rotate_deg must be >= 0, got nan$"):
        AugmentConfig(rotate_deg=nan)
    with pytest.raises(ValueError, match="^dice_weight must be >= 0, got nan$"):
        Segmentation(dice_weight=nan)
