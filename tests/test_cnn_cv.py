"""Cross-validation of the CNN over GTSRB track folds: track_folds, load_gtsrb(cv_folds=...) and the flags."""

import dataclasses
import json
import urllib.request

import numpy as np
import pytest

from experiments import cnn
from jaxadl.data.base import DatasetError
from jaxadl.data.gtsrb import load_gtsrb, track_folds
from tests import gtsrb_fixtures as fx


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """No test here downloads; GTSRB comes from the fixtures' zips."""

    def forbidden(*args, **kwargs):
        raise AssertionError("network access in a test")

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    monkeypatch.delenv("JAXADL_GTSRB_DIR", raising=False)
    monkeypatch.delenv("JAXADL_DATA_DIR", raising=False)


def _rows(seed=0):
    """Labels and tracks of shuffled rows: classes with 1, 2, 3, 5 and 8 tracks of 2..4 frames each; track
    numbers restart in every class, as in GTSRB, so only (class, track) names a track."""
    rng = np.random.default_rng(seed)
    labels, tracks = [], []
    for c, n_tracks in zip((0, 3, 7, 8, 42), (1, 2, 3, 5, 8), strict=True):
        for t in range(n_tracks):
            frames = int(rng.integers(2, 5))
            labels += [c] * frames
            tracks += [t] * frames
    order = rng.permutation(len(labels))
    return np.asarray(labels)[order], np.asarray(tracks)[order]


def _groups(labels, tracks, mask):
    return set(zip(labels[mask].tolist(), tracks[mask].tolist(), strict=True))


def test_folds_validate_every_track_once_and_never_split_one():
    labels, tracks = _rows()
    folds = 4
    masks = [track_folds(labels, tracks, folds, k, seed=3) for k in range(folds)]
    single = labels == 0  # the one class with a single track: it always trains
    np.testing.assert_array_equal(np.sum(masks, axis=0), np.where(single, 0, 1))
    sizes = []
    for mask in masks:
        assert not _groups(labels, tracks, mask) & _groups(labels, tracks, ~mask)  # whole tracks only
        for c in np.unique(labels):  # every class keeps a track in train
            assert ((labels == c) & ~mask).any()
        sizes.append(len(_groups(labels, tracks, mask)))
    assert sorted(sizes) == [4, 4, 5, 5]  # 18 tracks to deal (2 + 3 + 5 + 8), near-equal folds
    # the class with 8 tracks gives 2 to every fold; the one with 2 misses from two folds
    assert [len(_groups(labels, tracks, m & (labels == 42))) for m in masks] == [2, 2, 2, 2]
    assert sorted(len(_groups(labels, tracks, m & (labels == 3))) for m in masks) == [0, 0, 1, 1]


def test_folds_depend_on_the_seed_not_on_the_row_order():
    labels, tracks = _rows()
    a = track_folds(labels, tracks, 3, 1, seed=0)
    np.testing.assert_array_equal(a, track_folds(labels, tracks, 3, 1, seed=0))
    others = [track_folds(labels, tracks, 3, 1, seed=s) for s in (1, 2, 3)]
    assert any((o != a).any() for o in others)
    order = np.random.default_rng(9).permutation(len(labels))
    shuffled = track_folds(labels[order], tracks[order], 3, 1, seed=0)
    assert _groups(labels[order], tracks[order], shuffled) == _groups(labels, tracks, a)


def test_bad_folds_raise_naming_the_argument():
    labels, tracks = _rows()
    with pytest.raises(ValueError, match=r"^folds must be >= 2, got 1"):
        track_folds(labels, tracks, 1, 0, seed=0)
    with pytest.raises(ValueError, match=r"^fold must be in 0\.\.2, got 3"):
        track_folds(labels, tracks, 3, 3, seed=0)
    with pytest.raises(DatasetError, match="19 cross-validation folds need 19 or more tracks.*there are 18"):
        track_folds(labels, tracks, 19, 0, seed=0)
    for kw, message in (
        (dict(cv_folds=1), "cv_folds must be 0 (off) or >= 2, got 1"),
        (dict(cv_folds=3, cv_fold=3), "cv_fold must be in 0..2 with cv_folds=3, got 3"),
        (dict(cv_fold=2), "cv_fold=2 needs cv_folds=N (cross-validation is off)"),
    ):
        with pytest.raises(ValueError) as info:  # checked before any data is looked for
            load_gtsrb("/nonexistent", download=False, **kw)
        assert str(info.value) == message


def test_load_gtsrb_folds_whole_tracks_and_keeps_the_test_split(tmp_path):
    src, cache = fx.write_zips(tmp_path / "src"), tmp_path / "cache"
    common = dict(image_size=16, crop="none", cache_dir=cache, download=False, progress=False)
    plain = load_gtsrb(src, **common, val_fraction=0.0)
    margin = lambda split: (split.images[:, 0, 0, 1].astype(int) - 40) // 40  # the fixtures' track colour
    seen = []
    for fold in range(4):
        data = load_gtsrb(src, **common, seed=5, cv_folds=4, cv_fold=fold)
        train = set(zip(data.train.labels.tolist(), margin(data.train).tolist(), strict=True))
        val = set(zip(data.val.labels.tolist(), margin(data.val).tolist(), strict=True))
        assert not train & val and len(train | val) == len(fx.CLASSES) * fx.TRACKS
        assert sorted(c for c, _ in val) == sorted(fx.CLASSES)  # one of each class's 4 tracks
        assert len(data.train) + len(data.val) == len(plain.train)
        np.testing.assert_array_equal(data.test.images, plain.test.images)
        assert data.meta["cross_validation"] == {"folds": 4, "fold": fold, "seed": 5}
        assert data.meta["val_fraction"] is None and data.meta["tracks"] == {"train": 9, "val": 3}
        seen += sorted(val)
    assert len(seen) == len(set(seen)) == len(fx.CLASSES) * fx.TRACKS
    assert "cross_validation" not in plain.meta


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--cv-folds=1"], "--cv-folds must be 0 (off) or >= 2, got 1"),
        (["--cv-folds=-2"], "--cv-folds must be 0 (off) or >= 2, got -2"),
        (["--cv-fold=2"], "--cv-fold=2 needs --cv-folds=N (cross-validation is off)"),
        (["--cv-folds=3", "--cv-fold=3"], "--cv-fold must be in 0..2 with --cv-folds=3, got 3"),
        (["--cv-folds=3", "--cv-fold=-1"], "--cv-fold must be in 0..2 with --cv-folds=3, got -1"),
        (["--dataset=npz", "--data-dir=x.npz", "--cv-folds=3"], "--cv-folds works with --dataset=gtsrb"),
    ],
)
def test_usage_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        cnn.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_gtsrb_cv_flags_reach_the_loader(tmp_path):
    src = fx.write_zips(tmp_path / "src")
    common = dict(data_dir=str(src), cache_dir=str(tmp_path / "cache"), download=False, image_size=16)
    folds = [cnn.load_data(cnn.CNNConfig(**common, cv_folds=4, cv_fold=k, split_seed=2)) for k in range(4)]
    assert [d.meta["cross_validation"] for d in folds] == [
        {"folds": 4, "fold": k, "seed": 2} for k in range(4)
    ]
    assert sum(len(d.val) for d in folds) == len(folds[0].train) + len(folds[0].val)


def test_synthetic_folds_are_by_image(tmp_path):
    small = dict(dataset="synthetic", synthetic_train=20, image_size=16)
    plain = cnn.load_data(cnn.CNNConfig(**small))
    pool = {x.tobytes() for x in (*plain.train.images, *plain.val.images)}
    seen = []
    for fold in range(3):
        data = cnn.load_data(cnn.CNNConfig(**small, cv_folds=3, cv_fold=fold))
        assert {x.tobytes() for x in (*data.train.images, *data.val.images)} == pool
        np.testing.assert_array_equal(data.test.images, plain.test.images)
        assert data.meta["cross_validation"] == {"folds": 3, "fold": fold, "seed": 0}
        seen += [x.tobytes() for x in data.val.images]
    assert len(seen) == len(pool) == len(set(seen))


def test_a_cv_run_records_its_fold_and_eval_only_draws_it_again(tmp_path, capsys):
    from experiments.cli import parse, saved_config

    out = tmp_path / "run"
    argv = ["--dataset=synthetic", "--synthetic-train=86", "--image-size=16", "--batch-size=43", "--epochs=1",
            "--recipe=report", "--cv-folds=3", "--cv-fold=2", "--split-seed=4", "--keep=0", f"--out={out}"]  # fmt: skip
    assert cnn.main(argv) == 0
    assert "validating on fold 2 of 3 (0..2, seed 4) of the 129 train + val cases" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert (config["cli"]["cv_folds"], config["cli"]["cv_fold"]) == (3, 2)
    results = json.loads((out / "results.json").read_text())
    assert results["dataset_meta"]["cross_validation"] == {"folds": 3, "fold": 2, "seed": 4}
    again = saved_config(cnn.CNNConfig, cnn.CNNConfig(eval_only=True, from_run=str(out)), "cnn")
    assert (again.cv_folds, again.cv_fold, again.split_seed, again.eval_only) == (3, 2, 4, False)
    ran, redrawn = cnn.load_data(parse(cnn.CNNConfig, argv, "")), cnn.load_data(again)
    np.testing.assert_array_equal(redrawn.val.images, ran.val.images)
    np.testing.assert_array_equal(redrawn.train.images, ran.train.images)
    other = cnn.load_data(dataclasses.replace(again, cv_fold=1))
    assert (other.val.images != ran.val.images).any()
