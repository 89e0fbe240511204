"""Datasets as one .npz of arrays (jaxadl.data.arrays) and `--dataset=npz` on the command line."""

import json

import numpy as np
import pytest

from experiments import cnn
from jaxadl.data.arrays import load_npz, save_npz
from jaxadl.data.base import DatasetError
from jaxadl.data.synthetic import synthetic_signs


def test_round_trip_keeps_every_split(tmp_path):
    data = synthetic_signs(86, 43, 43, seed=0)
    path = save_npz(data, tmp_path / "signs.npz")
    back = load_npz(path)
    assert back.name == "signs" and back.num_classes == 43 and back.meta["source"] == str(path)
    for name, split in data.splits().items():
        got = back.splits()[name]
        np.testing.assert_array_equal(got.images, split.images)
        np.testing.assert_array_equal(got.labels, split.labels)
        assert got.labels.dtype == np.int32
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_train_only_file_infers_classes(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, train_images=np.zeros((4, 8, 8, 3), np.uint8), train_labels=np.array([0, 2, 1, 2]))
    data = load_npz(path)
    assert data.val is None and data.test is None and data.num_classes == 3


@pytest.mark.parametrize(
    "arrays,message",
    [
        (dict(val_images=np.zeros((2, 8, 8, 3), np.uint8), val_labels=np.zeros(2)), "no 'train_images'"),
        (dict(train_images=np.zeros((2, 8, 8, 3), np.uint8)), "has train arrays but no 'train_labels'"),
        (
            dict(train_images=np.zeros((2, 8, 8, 3), np.float32), train_labels=np.zeros(2)),
            "train split: images must be uint8",
        ),
        (
            dict(train_images=np.zeros((2, 8, 8, 3), np.uint8), train_labels=np.zeros(3)),
            "train split: 2 images but 3 labels",
        ),
        (
            dict(train_images=np.zeros((0, 8, 8, 3), np.uint8), train_labels=np.zeros(0)),
            "train split has no examples",
        ),
        (
            dict(train_images=np.zeros((2, 8, 8, 3), np.uint8), train_labels=np.array([0, -1])),
            r"train_labels run from -1 to 0, outside the classes 0\.\.0",
        ),
        (
            dict(
                train_images=np.zeros((2, 8, 8, 3), np.uint8),
                train_labels=np.array([0, 1]),
                test_images=np.zeros((1, 8, 8, 3), np.uint8),
                test_labels=np.array([9]),
                num_classes=2,
            ),
            r"test_labels run from 9 to 9, outside the classes 0\.\.1",
        ),
        (
            dict(
                train_images=np.zeros((2, 8, 8, 1), np.uint8),
                train_labels=np.full((2, 8, 8, 1), 255, np.uint8),
            ),
            "train_labels are masks from 255 to 255; a mask holds 0 and 1",
        ),
    ],
)
def test_malformed_files_name_the_file_and_the_problem(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=message) as info:
        load_npz(path)
    assert str(path) in str(info.value)


def test_missing_or_unreadable_file(tmp_path):
    with pytest.raises(DatasetError, match="no such .npz file"):
        load_npz(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DatasetError, match="junk.npz: not a readable .npz file"):
        load_npz(tmp_path / "junk.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(DatasetError, match="empty.npz: not a readable .npz file"):
        load_npz(tmp_path / "empty.npz")


def test_cli_trains_on_an_npz_and_evaluates_its_test_split(tmp_path, capsys):
    path = save_npz(synthetic_signs(430, 86, 129, seed=0), tmp_path / "signs.npz")
    out = tmp_path / "run"
    argv = ["--dataset=npz", f"--data-dir={path}", "--epochs=1", "--batch-size=43", f"--out={out}"]
    assert cnn.main([*argv, "--recipe=report"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"] == "signs" and results["eval_split"] == "test"
    assert results["trials"][0]["eval"]["accuracy"]["n"] == 129


def test_cli_npz_without_a_file_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        cnn.main(["--dataset=npz"])
    assert info.value.code == 2
    assert "--dataset=npz needs --data-dir=FILE.npz" in capsys.readouterr().err


def test_cli_npz_file_not_found_exits_2(tmp_path, capsys):
    code = cnn.main(["--dataset=npz", f"--data-dir={tmp_path}/x.npz", f"--out={tmp_path}/r"])
    assert code == 2
    assert "x.npz: no such .npz file" in capsys.readouterr().err
    assert not (tmp_path / "r" / "results.json").exists()


def test_cli_refuses_a_file_with_nothing_to_evaluate_on_naming_it(tmp_path, capsys):
    path = tmp_path / "train_only.npz"
    np.savez(path, train_images=np.zeros((4, 8, 8, 3), np.uint8), train_labels=np.array([0, 2, 1, 2]))
    code = cnn.main(
        [
            "--dataset=npz",
            f"--data-dir={path}",
            f"--out={tmp_path / 'run'}",
            "--image-size=8",
            "--batch-size=2",
        ]
    )
    assert code == 2
    assert capsys.readouterr().err == (
        f"error: {path}: the dataset has neither a test nor a validation split to evaluate on\n"
    )
    assert not (tmp_path / "run").exists()
